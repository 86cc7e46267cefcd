//! Calls: the request on the wire, the answer, and each HTTP failure's class.

use std::time::Duration;

use serde_json::json;
use tta_core::{ErrorClass, WorkflowContext, WorkflowPrimitive};
use tta_llm::{Anthropic, BuildError, ChatRequest, FinishReason, OpenAiCompatible, Usage};
use tta_tests::llm_server::{LlmServer, Reply};

use crate::{client, pipeline, request};

pub(crate) fn completion(finish: &str) -> serde_json::Value {
    json!({
        "id": "chatcmpl-1", "model": "test-model-0613",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello.",
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": "{\"order\":42}"}}]},
            "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 1}}
    })
}

#[tokio::test]
async fn a_call_sends_the_request_and_reads_the_answer_with_its_usage() {
    let server = LlmServer::start().await;
    let (tt, t) = pipeline();
    server.push(Reply::json(completion("tool_calls")));
    let llm = client(&server, &t);
    let req = request()
        .tools(&json!([{"type": "function", "function": {"name": "lookup"}}]))
        .extra("seed", 7);
    let answer = llm.execute(req, &WorkflowContext::new()).await.unwrap();
    assert_eq!(
        (
            answer.id.as_str(),
            answer.model.as_str(),
            answer.content.as_str()
        ),
        ("chatcmpl-1", "test-model-0613", "Hello.")
    );
    assert_eq!(answer.tool_calls[0].arguments, "{\"order\":42}");
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        answer.usage,
        Some(Usage {
            input_tokens: 12,
            output_tokens: 3,
            cached_input_tokens: Some(8),
            reasoning_tokens: Some(1)
        })
    );
    let sent = &server.requests()[0];
    assert_eq!(sent.body["model"], "test-model", "the default model");
    assert_eq!(sent.body["max_tokens"], 32);
    assert_eq!(sent.body["seed"], 7, "extra fields are sent verbatim");
    assert_eq!(
        sent.body["tools"][0]["function"]["name"], "lookup",
        "tools pass through"
    );
    assert_eq!(sent.body["messages"][0]["role"], "system");
    assert!(sent.body.get("stream").is_none());
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-secret-test-key")
    );
    // GenAI attributes on the client's span; no message text anywhere in telemetry.
    let spans = tt.spans_named("llm");
    let attr = |k| tta_tests::telemetry::span_attr(&spans[0], k);
    assert_eq!(attr("gen_ai.request.model").as_deref(), Some("test-model"));
    assert_eq!(
        attr("gen_ai.response.model").as_deref(),
        Some("test-model-0613")
    );
    assert_eq!(attr("gen_ai.response.id").as_deref(), Some("chatcmpl-1"));
    assert_eq!(attr("gen_ai.usage.input_tokens").as_deref(), Some("12"));
    crate::assert_telemetry_never_holds(&tt, &["4111", "sk-secret"]);
}

#[tokio::test]
async fn every_failing_status_maps_to_its_class_with_the_providers_message() {
    let server = LlmServer::start().await;
    let (_tt, t) = pipeline();
    let llm = client(&server, &t);
    let error_body = |code: &str, message: &str| {
        json!({"error": {"message": message, "type": "invalid_request_error", "code": code}})
            .to_string()
    };
    let later = std::time::SystemTime::now() + Duration::from_secs(120);
    let http_date = httpdate::fmt_http_date(later);
    /// A reply, the class it maps to, and the range its retry-after falls in (seconds).
    type Case = (Reply, ErrorClass, Option<(u64, u64)>);
    let cases: Vec<Case> = vec![
        (
            Reply::status(
                429,
                &[("retry-after", "17")],
                &error_body("rate_limit_exceeded", "slow down"),
            ),
            ErrorClass::RateLimited { retry_after: None },
            Some((17, 17)),
        ),
        (
            Reply::status(429, &[("retry-after", &http_date)], ""),
            ErrorClass::RateLimited { retry_after: None },
            Some((100, 120)),
        ),
        (
            Reply::status(429, &[("retry-after-ms", "1500"), ("retry-after", "9")], ""),
            ErrorClass::RateLimited { retry_after: None },
            Some((1, 2)),
        ),
        (
            Reply::status(
                429,
                &[
                    ("x-ratelimit-reset-requests", "1m30.5s"),
                    ("x-ratelimit-reset-tokens", "6m0s"),
                ],
                "",
            ),
            ErrorClass::RateLimited { retry_after: None },
            Some((360, 360)),
        ),
        (
            Reply::status(
                429,
                &[("x-ratelimit-reset-tokens", "20ms"), ("retry-after", "2")],
                "",
            ),
            ErrorClass::RateLimited { retry_after: None },
            Some((2, 2)),
        ),
        (Reply::status(500, &[], ""), ErrorClass::Unavailable, None),
        (
            Reply::status(
                502,
                &[("content-type", "text/html")],
                "<html><body>Bad gateway</body></html>",
            ),
            ErrorClass::Unavailable,
            None,
        ),
        (
            Reply::status(503, &[], &error_body("overloaded", "try later")),
            ErrorClass::Unavailable,
            None,
        ),
        (Reply::status(504, &[], ""), ErrorClass::Unavailable, None),
        (Reply::status(408, &[], ""), ErrorClass::Unavailable, None),
        (
            Reply::status(
                400,
                &[],
                &error_body(
                    "context_length_exceeded",
                    "This model's maximum context length is 8192 tokens",
                ),
            ),
            ErrorClass::ContextLength,
            None,
        ),
        (
            Reply::status(400, &[], &error_body("content_filter", "flagged")),
            ErrorClass::ContentFilter,
            None,
        ),
        (
            Reply::status(400, &[], &error_body("invalid_value", "bad temperature")),
            ErrorClass::InvalidRequest,
            None,
        ),
        (
            Reply::status(404, &[], &error_body("model_not_found", "no such model")),
            ErrorClass::InvalidRequest,
            None,
        ),
        (
            Reply::status(413, &[], ""),
            ErrorClass::InvalidRequest,
            None,
        ),
        (
            Reply::status(422, &[], ""),
            ErrorClass::InvalidRequest,
            None,
        ),
        (
            Reply::status(
                401,
                &[],
                &error_body("invalid_api_key", "Incorrect API key"),
            ),
            ErrorClass::Auth,
            None,
        ),
        (Reply::status(403, &[], ""), ErrorClass::Auth, None),
    ];
    for (reply, class, hint) in cases {
        server.push(reply.clone());
        let err = llm
            .execute(request(), &WorkflowContext::new())
            .await
            .unwrap_err();
        assert_eq!(err.class().as_str(), class.as_str(), "{reply:?}: {err}");
        if let Some((low, high)) = hint {
            let after = err.retry_after().expect("a retry-after").as_secs();
            assert!(
                (low..=high).contains(&after),
                "{reply:?}: retry after {after} s"
            );
        }
        let shown = err.to_string();
        assert!(
            !shown.contains("<html"),
            "a body that is not JSON is never copied: {shown}"
        );
        assert!(!shown.contains("sk-secret"));
    }
    server.push(Reply::status(
        429,
        &[("x-ratelimit-reset-requests", "soon")],
        "",
    ));
    let err = llm
        .execute(request(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(err.class().is_rate_limited());
    assert_eq!(err.retry_after(), None, "an unreadable reset is no hint");
    server.push(Reply::status(
        400,
        &[],
        &error_body("invalid_value", &"x".repeat(5_000)),
    ));
    let err = llm
        .execute(request(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().len() < 400,
        "the provider's message is bounded"
    );
}

#[tokio::test]
async fn a_content_filter_finish_and_an_unreadable_200_are_errors() {
    let server = LlmServer::start().await;
    let (_tt, t) = pipeline();
    let llm = client(&server, &t);
    server.push(Reply::json(completion("content_filter")));
    let err = llm
        .execute(request(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::ContentFilter);
    assert_eq!(
        err.billed_usage().map(|u| u.input),
        Some(12),
        "the filtered call was still billed"
    );
    for (body, says) in [
        ("", "not JSON"),
        ("<html>proxy</html>", "not JSON"),
        ("{\"choices\": []}", "no answer"),
        (
            "{\"choices\": [{\"message\": {\"content\": 42}}]}",
            "not a chat completion",
        ),
    ] {
        server.push(Reply::status(200, &[], body));
        let err = llm
            .execute(request(), &WorkflowContext::new())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unavailable, "{body:?}");
        assert!(err.to_string().contains(says), "{body:?}: {err}");
    }
}

#[tokio::test]
async fn a_refused_connection_and_a_silent_provider_are_unavailable_within_the_deadline() {
    let (_tt, t) = pipeline();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let refused = OpenAiCompatible::builder(url)
        .telemetry(&t)
        .build()
        .unwrap();
    let err = refused
        .execute(request(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");

    let server = LlmServer::start().await;
    server.push(Reply::Hang);
    let llm = client(&server, &t);
    let started = std::time::Instant::now();
    let cx = WorkflowContext::new().with_timeout(Duration::from_millis(300));
    let err = llm.execute(request(), &cx).await.unwrap_err();
    assert!(
        err.is_timeout() && err.class() == ErrorClass::Unavailable,
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the context's deadline"
    );
}

/// The keys of a JSON object text, in order, duplicates kept (a `serde_json::Map` keeps
/// only the last of each).
fn top_level_keys(text: &str) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut de, Keys).unwrap()
}

#[tokio::test]
async fn extra_fields_never_override_the_requests_own_and_passthrough_json_is_checked() {
    let server = LlmServer::start().await;
    let (_tt, t) = pipeline();
    let llm = client(&server, &t);
    server.push(Reply::json(completion("stop")));
    let mut req = request()
        .extra("max_tokens", 999)
        .extra("model", "other")
        .extra("stream", true)
        .extra("temperature", 0.25)
        .extra("seed", 7);
    req.tools = Some(r#"[ {"type": "function", "function": {"name": "lookup"}} ]"#.into());
    llm.execute(req, &WorkflowContext::new()).await.unwrap();
    let sent = &server.requests()[0];
    assert_eq!(sent.body["max_tokens"], 32, "the request's own max_tokens");
    assert_eq!(sent.body["model"], "test-model", "the client's model");
    assert!(
        sent.body.get("stream").is_none(),
        "a call is never turned into a stream by an extra field: {}",
        sent.text
    );
    assert_eq!(
        sent.body["temperature"], 0.25,
        "an extra the request leaves unset"
    );
    assert_eq!(sent.body["seed"], 7);
    assert_eq!(sent.body["tools"][0]["function"]["name"], "lookup");
    assert!(
        sent.text
            .contains(r#""tools":[ {"type": "function", "function": {"name": "lookup"}} ]"#),
        "the tools' text is sent as it was given: {}",
        sent.text
    );
    let mut keys = top_level_keys(&sent.text);
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(all, keys.len(), "no key twice: {}", sent.text);
    assert!(all >= 6, "{}", sent.text);
    assert_eq!(sent.header("content-type"), Some("application/json"));

    // A passthrough text that is not JSON fails the call before anything is sent.
    let before = server.requests().len();
    for (field, set) in [
        (
            "tools",
            (|r: &mut ChatRequest| r.tools = Some("[{".into())) as fn(&mut ChatRequest),
        ),
        ("tool_choice", |r| r.tool_choice = Some("auto".into())),
        ("seed", |r| {
            r.extra.insert("seed".into(), "7 8".into());
        }),
    ] {
        let mut req = request();
        set(&mut req);
        let err = llm.execute(req, &WorkflowContext::new()).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidRequest, "{field}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("the request's {field} is not JSON")),
            "{err}"
        );
    }
    assert_eq!(server.requests().len(), before, "nothing was sent");
}

#[test]
fn bad_settings_are_typed_build_errors_and_the_key_is_never_printed() {
    assert!(matches!(
        OpenAiCompatible::builder("ftp://x").build(),
        Err(BuildError::BaseUrl(_))
    ));
    // An http:// prefix with a host that cannot be one: at build time, not per request.
    for bad in ["http://exa mple.com", "https://", "http://[::1"] {
        assert!(
            matches!(
                OpenAiCompatible::builder(bad).build(),
                Err(BuildError::BaseUrl(url)) if url == bad
            ),
            "{bad}"
        );
        assert!(
            matches!(
                Anthropic::builder(bad).build(),
                Err(BuildError::BaseUrl(url)) if url == bad
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        OpenAiCompatible::builder("http://x").api_key_env("TTA_LLM_TEST_KEY_THAT_IS_NOT_SET").build(),
        Err(BuildError::MissingKey(var)) if var == "TTA_LLM_TEST_KEY_THAT_IS_NOT_SET"
    ));
    assert!(matches!(
        OpenAiCompatible::builder("http://x")
            .header("bad header", "v")
            .build(),
        Err(BuildError::Header(_))
    ));
    assert!(matches!(
        OpenAiCompatible::builder("http://x").name("a b").build(),
        Err(BuildError::Name(_))
    ));
    let builder = OpenAiCompatible::builder("http://x").api_key("sk-hidden");
    assert!(!format!("{builder:?}").contains("sk-hidden"));
    let client = builder.build().unwrap();
    assert!(!format!("{client:?}").contains("sk-hidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_idle_connections_bounds_the_connections_kept_between_bursts() {
    let (_tt, t) = pipeline();
    for (bound, kept) in [(Some(2), 2), (None, 8)] {
        let server = LlmServer::start().await;
        server.serve(Reply::After(
            Duration::from_millis(50),
            Box::new(Reply::json(completion("stop"))),
        ));
        let mut builder = OpenAiCompatible::builder(server.base_url())
            .model("m")
            .telemetry(&t);
        if let Some(bound) = bound {
            builder = builder.max_idle_connections(bound);
        }
        let llm = builder.build().unwrap();
        let cx = WorkflowContext::new();
        let burst = || futures_util::future::join_all((0..8).map(|_| llm.execute(request(), &cx)));
        assert!(burst().await.iter().all(Result::is_ok));
        assert_eq!(
            server.connections(),
            8,
            "eight at once need eight connections"
        );
        assert!(burst().await.iter().all(Result::is_ok));
        // The second burst reuses what the pool kept and opens the rest.
        assert_eq!(server.connections(), 8 + (8 - kept), "bound {bound:?}");
    }
}
