//! The Anthropic client against the scripted provider: the request it sends, the answer
//! and usage it reads, its error mapping, and its event stream.

use std::time::Duration;

use serde_json::{Value, json};
use tta_core::{ErrorClass, Telemetry, WorkflowContext, WorkflowPrimitive};
use tta_llm::{Anthropic, BuildError, ChatChunk, FinishReason, Message, Role, ToolCall, Usage};
use tta_tests::llm_server::{End, LlmServer, Reply};

use crate::{pipeline, request};

fn client(server: &LlmServer, t: &Telemetry) -> Anthropic {
    Anthropic::builder(server.base_url())
        .api_key("sk-ant-secret")
        .model("claude-test")
        .telemetry(t)
        .build()
        .unwrap()
}

fn message(stop: &str) -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test-2025",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"order": 42}}
        ],
        "stop_reason": stop,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 30,
                  "cache_creation_input_tokens": 2}
    })
}

#[tokio::test]
async fn a_call_maps_system_tools_and_tool_results_and_reads_the_blocks_and_usage() {
    let server = LlmServer::start().await;
    let (tt, t) = pipeline();
    server.push(Reply::json(message("tool_use")));
    let mut assistant = Message::assistant("");
    assistant.tool_calls.push(ToolCall {
        id: "toolu_0".into(),
        name: "lookup".into(),
        arguments: "{\"order\":41}".into(),
    });
    let mut result = Message::new(Role::Tool, "shipped");
    result.tool_call_id = Some("toolu_0".into());
    let mut req = request();
    req.max_tokens = None;
    req.messages.extend([assistant, result]);
    req.stop = vec!["END".to_owned()];
    req = req.extra("stream", true).extra("top_k", 5);
    let answer = client(&server, &t)
        .execute(req, &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(answer.content, "Let me look.");
    assert_eq!(
        answer.tool_calls,
        vec![ToolCall {
            id: "toolu_1".into(),
            name: "lookup".into(),
            arguments: "{\"order\":42}".into()
        }]
    );
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        answer.usage,
        Some(Usage {
            input_tokens: 42,
            output_tokens: 5,
            cached_input_tokens: Some(30),
            reasoning_tokens: None
        }),
        "every input token counts, cache reads and writes included"
    );
    let sent = &server.requests()[0];
    assert_eq!(
        sent.body["system"], "Be brief.",
        "system messages become `system`"
    );
    assert_eq!(
        sent.body["max_tokens"], 4096,
        "the required max_tokens has a default"
    );
    assert_eq!(sent.body["stop_sequences"], json!(["END"]));
    assert_eq!(sent.body["top_k"], 5, "extra fields are sent");
    assert!(
        sent.body.get("stream").is_none(),
        "a call is never turned into a stream by an extra field"
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let messages = sent.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "no system message among the messages");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[1]["content"][0]["input"]["order"], 41);
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_0");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-secret"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let spans = tt.spans_named("llm");
    let attr = |k| tta_tests::telemetry::span_attr(&spans[0], k);
    assert_eq!(attr("gen_ai.provider.name").as_deref(), Some("anthropic"));
    assert_eq!(
        attr("gen_ai.response.model").as_deref(),
        Some("claude-test-2025")
    );
    assert_eq!(attr("gen_ai.usage.input_tokens").as_deref(), Some("42"));
    crate::assert_telemetry_never_holds(&tt, &["4111", "sk-ant"]);
}

#[tokio::test]
async fn anthropic_errors_map_to_their_classes() {
    let server = LlmServer::start().await;
    let (_tt, t) = pipeline();
    let llm = client(&server, &t);
    let error = |kind: &str, message: &str| {
        json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
    };
    let cases = [
        (
            Reply::status(529, &[], &error("overloaded_error", "Overloaded")),
            ErrorClass::Unavailable,
        ),
        (
            Reply::status(
                400,
                &[],
                &error(
                    "invalid_request_error",
                    "prompt is too long: 210000 tokens > 200000 maximum",
                ),
            ),
            ErrorClass::ContextLength,
        ),
        (
            Reply::status(
                429,
                &[("retry-after", "5")],
                &error("rate_limit_error", "slow down"),
            ),
            ErrorClass::RateLimited { retry_after: None },
        ),
        (
            Reply::status(
                401,
                &[],
                &error("authentication_error", "invalid x-api-key"),
            ),
            ErrorClass::Auth,
        ),
        (
            Reply::status(
                400,
                &[],
                &error("invalid_request_error", "max_tokens: too large"),
            ),
            ErrorClass::InvalidRequest,
        ),
        (Reply::json(message("refusal")), ErrorClass::ContentFilter),
    ];
    for (reply, class) in cases {
        server.push(reply.clone());
        let err = llm
            .execute(request(), &WorkflowContext::new())
            .await
            .unwrap_err();
        assert_eq!(err.class().as_str(), class.as_str(), "{reply:?}: {err}");
        if class.is_rate_limited() {
            assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
        }
    }
    server.push(Reply::status(
        529,
        &[],
        &error("overloaded_error", "Overloaded"),
    ));
    let err = llm
        .execute(request(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Overloaded"),
        "the provider's message: {err}"
    );
}

fn start() -> Value {
    json!({"type": "message_start", "message": {"id": "msg_s", "model": "claude-test",
        "usage": {"input_tokens": 11, "output_tokens": 1, "cache_read_input_tokens": 4}}})
}

fn text(t: &str) -> Value {
    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
}

fn finish(stop: &str, output: u64) -> Value {
    json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": output}})
}

async fn collect(
    server: &LlmServer,
) -> Result<Vec<Result<ChatChunk, tta_core::Error>>, tta_core::Error> {
    let (_tt, t) = pipeline();
    crate::collect(&client(server, &t)).await
}

#[tokio::test]
async fn a_stream_reads_text_tool_deltas_and_the_whole_usage_and_ends_at_message_stop() {
    let server = LlmServer::start().await;
    server.push(Reply::typed_events(
        &[
            start(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "ping"}),
            text("Hel"),
            text("lo"),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"order\": 4"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "2}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            finish("tool_use", 7),
            json!({"type": "message_stop"}),
        ],
        Duration::from_millis(2),
        End::Close,
    ));
    let chunks: Vec<ChatChunk> = collect(&server)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunks[0].delta, "Hel", "the first chunk is the first token");
    let text: String = chunks.iter().map(|c| c.delta.as_str()).collect();
    assert_eq!(text, "Hello");
    let tool: Vec<_> = chunks.iter().flat_map(|c| &c.tool_calls).collect();
    assert_eq!(tool[0].id.as_deref(), Some("toolu_9"));
    assert_eq!(tool[0].name.as_deref(), Some("lookup"));
    let args: String = tool.iter().filter_map(|d| d.arguments.as_deref()).collect();
    assert_eq!(args, "{\"order\": 42}");
    assert!(tool.iter().all(|d| d.index == 1));
    let last = chunks.last().unwrap();
    assert_eq!(last.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        last.usage,
        Some(Usage {
            input_tokens: 15,
            output_tokens: 7,
            cached_input_tokens: Some(4),
            reasoning_tokens: None
        })
    );
    assert_eq!(server.requests()[0].body["stream"], true);
}

#[tokio::test]
async fn an_anthropic_stream_without_message_stop_or_with_an_error_event_ends_in_an_error() {
    for (reply, what) in [
        (
            Reply::typed_events(
                &[start(), text("a"), finish("end_turn", 1)],
                Duration::ZERO,
                End::Close,
            ),
            "without message_stop",
        ),
        (
            Reply::typed_events(
                &[
                    start(),
                    text("a"),
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ],
                Duration::ZERO,
                End::Close,
            ),
            "error event",
        ),
        (
            Reply::typed_events(&[start(), text("a")], Duration::ZERO, End::Cut),
            "cut",
        ),
    ] {
        let server = LlmServer::start().await;
        server.push(reply);
        let items = collect(&server).await.unwrap();
        let (last, before) = items.split_last().unwrap();
        assert!(
            !before.is_empty() && before.iter().all(Result::is_ok),
            "{what}"
        );
        let err = last.as_ref().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unavailable, "{what}: {err}");
    }
}

#[test]
fn a_zero_max_tokens_is_a_build_error_and_the_key_is_never_printed() {
    let err = Anthropic::builder("http://127.0.0.1:1/v1")
        .max_tokens(0)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::MaxTokens);
    let builder = Anthropic::builder("http://127.0.0.1:1/v1").api_key("sk-ant-secret");
    assert!(!format!("{builder:?}").contains("sk-ant"));
    let client = builder.build().unwrap();
    assert!(!format!("{client:?}").contains("sk-ant"));
}

#[tokio::test]
async fn tools_in_openai_shape_are_sent_in_anthropic_shape() {
    let server = LlmServer::start().await;
    let (_tt, t) = pipeline();
    let llm = client(&server, &t);
    let openai_tools = json!([
        {"type": "function", "function": {"name": "lookup", "description": "Finds an order",
         "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}}}},
        {"type": "function", "function": {"name": "now"}},
        {"name": "native", "input_schema": {"type": "object"}}
    ]);
    let choices = [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "lookup"}}),
            json!({"type": "tool", "name": "lookup"}),
        ),
        (
            json!({"type": "tool", "name": "now"}),
            json!({"type": "tool", "name": "now"}),
        ),
    ];
    for (given, sent) in &choices {
        server.push(Reply::json(message("end_turn")));
        let mut req = request().tools(&openai_tools);
        req.tool_choice = Some(given.to_string());
        llm.execute(req, &WorkflowContext::new()).await.unwrap();
        let body = server.requests().pop().unwrap().body;
        assert_eq!(&body["tool_choice"], sent, "{given}");
        assert_eq!(
            body["tools"],
            json!([
                {"name": "lookup", "description": "Finds an order",
                 "input_schema": {"type": "object", "properties": {"order": {"type": "integer"}}}},
                {"name": "now", "input_schema": {"type": "object"}},
                {"name": "native", "input_schema": {"type": "object"}}
            ]),
            "OpenAI's function tools are translated, Anthropic's own pass as given"
        );
    }
}

#[tokio::test]
async fn a_429_without_retry_after_waits_for_the_latest_anthropic_reset() {
    let server = LlmServer::start().await;
    let (_tt, t) = pipeline();
    let llm = client(&server, &t);
    let error = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}})
        .to_string();
    // The provider's clock, not this machine's, is the reference: its `Date` is a day
    // ahead, the resets 20 s and 45 s after it (one with an offset).
    let date = std::time::SystemTime::now() + Duration::from_secs(86_400);
    let unix = date
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let rfc3339 = |secs: i64, offset_hours: i64| {
        let at = chrono::DateTime::from_timestamp(secs + offset_hours * 3600, 0).unwrap();
        format!("{}{:+03}:00", at.format("%Y-%m-%dT%H:%M:%S"), offset_hours)
    };
    let requests_reset = rfc3339(unix + 20, 0);
    let tokens_reset = rfc3339(unix + 45, 2);
    server.push(Reply::status(
        429,
        &[
            ("date", &httpdate::fmt_http_date(date)),
            ("anthropic-ratelimit-requests-reset", &requests_reset),
            ("anthropic-ratelimit-tokens-reset", &tokens_reset),
            ("anthropic-ratelimit-output-tokens-reset", "not a time"),
        ],
        &error,
    ));
    let err = llm
        .execute(request(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(err.class().is_rate_limited(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(45)));
    server.push(Reply::status(
        429,
        &[("anthropic-ratelimit-requests-reset", "2001-01-01T00:00:00Z")],
        &error,
    ));
    let err = llm
        .execute(request(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(Duration::ZERO),
        "a reset in the past: retry now"
    );
}
