//! The OpenAI API through the gateway: async-openai calls and streams, tools passed
//! through, every error class, fallback before the first chunk, a cut stream, keys, and
//! bad input.

use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tta_tests::llm_server::{End, LlmServer, Reply};

use crate::{ACME_KEY, REVOKED_KEY, Running, body, chunks, completion, config_for, ms};

fn request(stream: bool) -> CreateChatCompletionRequest {
    let mut args = CreateChatCompletionRequestArgs::default();
    args.model("chat")
        .messages([ChatCompletionRequestUserMessage::from("What is tta?").into()])
        .max_tokens(32_u32);
    if stream {
        args.stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        });
    }
    args.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_openai_calls_and_streams_through_the_demos_simulated_providers() {
    let providers = tta_demo::providers::Providers::start_anywhere(42, 0.0)
        .await
        .unwrap();
    // frontier, budget and local speak OpenAI; balanced speaks Anthropic.
    let toml = format!(
        r#"listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
{}
[models.chat]
routes = [{{ provider = "balanced", model = "claude-haiku" }}, {{ provider = "budget", model = "mistral-small" }}, {{ provider = "frontier", model = "gpt-4o" }}]
{}"#,
        providers.gateway_toml(),
        crate::keys_and_tenants("")
    );
    let gw = Running::start(&toml).await;
    let client = gw.openai(ACME_KEY);
    let answer = client.chat().create(request(false)).await.unwrap();
    assert_eq!(answer.model, "chat");
    let text = answer.choices[0].message.content.clone().unwrap();
    assert!(!text.is_empty());
    assert!(answer.usage.unwrap().completion_tokens > 0);

    let mut stream = client.chat().create_stream(request(true)).await.unwrap();
    let mut streamed = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(c) = chunk.choices.first() {
            streamed.push_str(c.delta.content.as_deref().unwrap_or_default());
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
    }
    assert!(!streamed.is_empty());
    assert!(usage.is_some(), "include_usage gives the usage chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_and_unknown_fields_pass_through_and_tool_calls_come_back() {
    let server = LlmServer::start().await;
    server.serve(Reply::json(json!({
        "id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    })));
    let gw = Running::start(&config_for(&[server.base_url()], "", "")).await;
    let tools = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]);
    let response = gw
        .post(
            Some(ACME_KEY),
            body(json!({"tools": tools, "tool_choice": "auto", "seed": 7, "x_vendor": {"a": 1}})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    let sent = &server.requests()[0].body;
    assert_eq!(sent["tools"], tools);
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["seed"], 7, "an unknown field is passed through");
    assert_eq!(sent["x_vendor"]["a"], 1);
    assert_eq!(
        sent["model"], "m",
        "the route's model, not the exposed name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_maps_to_its_status_and_openai_code() {
    let filtered = json!({
        "id": "c", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "content_filter"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}
    });
    let cases: [(Reply, u16, &str); 7] = [
        (Reply::json(filtered), 400, "content_filter"),
        (
            Reply::status(
                429,
                &[("retry-after", "7")],
                r#"{"error":{"message":"slow down"}}"#,
            ),
            429,
            "rate_limit_exceeded",
        ),
        (
            Reply::status(503, &[], r#"{"error":{"message":"overloaded"}}"#),
            503,
            "unavailable",
        ),
        (
            Reply::status(
                400,
                &[],
                r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#,
            ),
            400,
            "context_length_exceeded",
        ),
        (
            Reply::status(401, &[], r#"{"error":{"message":"bad key"}}"#),
            502,
            "upstream_auth",
        ),
        (
            Reply::status(400, &[], r#"{"error":{"message":"bad field"}}"#),
            400,
            "invalid_request",
        ),
        (Reply::Hang, 504, "timeout"),
    ];
    for (reply, status, code) in cases {
        let server = LlmServer::start().await;
        server.serve(reply);
        let gw = Running::start(&config_for(&[server.base_url()], "", "")).await;
        let response = gw.post(Some(ACME_KEY), body(json!({}))).await;
        assert_eq!(response.status().as_u16(), status, "{code}");
        if status == 429 || status == 503 {
            assert!(response.headers().get("retry-after").is_some(), "{code}");
        }
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["code"], code);
        assert!(e["error"]["message"].is_string());
    }
    // async-openai reads the error object as an API error (a 400: it retries 429 and
    // 5xx on its own).
    let server = LlmServer::start().await;
    server.serve(Reply::status(
        400,
        &[],
        r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#,
    ));
    let gw = Running::start(&config_for(&[server.base_url()], "", "")).await;
    match gw.openai(ACME_KEY).chat().create(request(false)).await {
        Err(async_openai::error::OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 400);
            assert_eq!(e.api_error.code.as_deref(), Some("context_length_exceeded"));
            assert_eq!(e.api_error.r#type.as_deref(), Some("invalid_request_error"));
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_primary_falls_back_before_the_first_chunk() {
    let (slow, fast) = (LlmServer::start().await, LlmServer::start().await);
    slow.serve(Reply::After(
        ms(2_000),
        Box::new(Reply::events(&chunks(&["slow"]), ms(0), true, End::Close)),
    ));
    fast.serve(Reply::events(
        &chunks(&["fa", "st"]),
        ms(5),
        true,
        End::Close,
    ));
    let gw = Running::start(&config_for(&[slow.base_url(), fast.base_url()], "", "")).await;
    let started = std::time::Instant::now();
    let mut stream = gw
        .openai(ACME_KEY)
        .chat()
        .create_stream(request(true))
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        if let Some(c) = chunk.unwrap().choices.first() {
            text.push_str(c.delta.content.as_deref().unwrap_or_default());
        }
    }
    assert_eq!(text, "fast");
    assert!(started.elapsed() < ms(1_500), "{:?}", started.elapsed());
    assert_eq!(slow.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_midway_ends_with_an_error_event_not_done() {
    let server = LlmServer::start().await;
    let words = chunks(&["one ", "two "]);
    server.serve(Reply::events(&words[..2], ms(5), false, End::Cut));
    let gw = Running::start(&config_for(&[server.base_url()], "", "")).await;
    let response = gw.post(Some(ACME_KEY), body(json!({"stream": true}))).await;
    assert_eq!(
        response.status(),
        200,
        "the first chunk came: the answer started"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("one "), "{text}");
    assert!(
        !text.contains("[DONE]"),
        "a cut stream is not a success:\n{text}"
    );
    let last = text.trim_end().lines().last().unwrap();
    let event: Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap();
    assert!(event["error"]["code"].is_string(), "{last}");
    // async-openai sees the error too.
    let mut stream = gw
        .openai(ACME_KEY)
        .chat()
        .create_stream(request(true))
        .await
        .unwrap();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        failed |= item.is_err();
    }
    assert!(failed, "the client's stream ends in an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_revoked_keys_get_401_and_the_key_never_reaches_the_provider() {
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let gw = Running::start(&config_for(&[server.base_url()], "", "")).await;
    for key in [None, Some("sk-wrong"), Some(REVOKED_KEY), Some("")] {
        let response = gw.post(key, body(json!({}))).await;
        assert_eq!(response.status(), 401, "{key:?}");
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["code"], "invalid_api_key");
    }
    let models = crate::http()
        .get(gw.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    assert_eq!(server.requests().len(), 0);
    let ok = gw.post(Some(ACME_KEY), body(json!({}))).await;
    assert_eq!(ok.status(), 200);
    assert!(
        server.requests()[0]
            .header("authorization")
            .is_none_or(|v| !v.contains(ACME_KEY))
    );
    let models: Value = crate::http()
        .get(gw.url("/v1/models"))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "chat");
    for path in ["/healthz", "/readyz"] {
        let r = crate::http().get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_typed_400_or_413_and_the_gateway_keeps_serving() {
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let gw = Running::start(&config_for(&[server.base_url()], "", "")).await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"model\": \"chat\", ".to_vec(), 400, "invalid_json"),
        (b"\xff\xfe\x00".to_vec(), 400, "invalid_json"),
        (
            br#"{"model": 5, "messages": []}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            br#"{"model": "chat", "messages": [{"role": "user", "content": 5}]}"#.to_vec(),
            400,
            "invalid_value",
        ),
        (
            br#"{"model": "nope", "messages": [{"role": "user", "content": "x"}]}"#.to_vec(),
            404,
            "model_not_found",
        ),
    ];
    for (payload, status, code) in cases {
        let response = gw.post(Some(ACME_KEY), payload).await;
        assert_eq!(response.status().as_u16(), status, "{code}");
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["code"], code);
    }
    let e: Value = gw
        .post(
            Some(ACME_KEY),
            b"{\"model\": \"chat\",\n \"messages\": [}".to_vec(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("line 2"),
        "{e}"
    );
    // A client that sends half a body and stalls is cut after the body timeout, while
    // another client is answered.
    let addr = gw.addr;
    let slow = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ACME_KEY}\r\ncontent-length: 1000\r\n\r\n{{\"model\"").as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(ms(5_000), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    let ok = gw.post(Some(ACME_KEY), body(json!({}))).await;
    assert_eq!(ok.status(), 200);
    let cut = slow.await.unwrap();
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    // A client that never finishes its headers (slowloris) is disconnected after the
    // header timeout (300 ms here), and others are answered meanwhile.
    let slowloris = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let read = tokio::time::timeout(ms(5_000), s.read_to_end(&mut out)).await;
        (read.is_ok(), started.elapsed())
    });
    let ok = gw.post(Some(ACME_KEY), body(json!({}))).await;
    assert_eq!(ok.status(), 200);
    let (closed, after) = slowloris.await.unwrap();
    assert!(closed, "the connection was closed");
    assert!(after < ms(2_000), "closed after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_concurrency_cap_the_gateway_sheds_with_503_and_retry_after() {
    let server = LlmServer::start().await;
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    server.serve(Reply::events(&chunks(&words), ms(25), true, End::Close));
    let toml = config_for(&[server.base_url()], "max_concurrency = 2\n", "")
        .replace("attempt_timeout_ms = 300", "attempt_timeout_ms = 5000");
    let gw = Running::start(&toml).await;
    // Two streams hold the two slots while their bodies are read.
    let open: Vec<_> = futures_util::future::join_all(
        (0..2).map(|_| gw.post(Some(ACME_KEY), body(json!({"stream": true})))),
    )
    .await;
    assert!(open.iter().all(|r| r.status() == 200));
    let shed = gw.post(Some(ACME_KEY), body(json!({}))).await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let e: Value = shed.json().await.unwrap();
    assert_eq!(e["error"]["code"], "overloaded");
    for r in open {
        assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    // The slots are free again.
    let again = gw.post(Some(ACME_KEY), body(json!({"stream": true}))).await;
    assert_eq!(again.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_mebibyte_body_is_refused_from_its_declared_length_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = LlmServer::start().await;
    server.serve(Reply::json(completion("hi")));
    let gw = Running::start(&config_for(&[server.base_url()], "", "")).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ACME_KEY}\r\ncontent-length: {}\r\n\r\n",
        10 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = vec![0; 4096];
    let n = tokio::time::timeout(ms(5_000), s.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&out[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_too_large"), "{answer}");
    assert_eq!(server.requests().len(), 0);
    // Without a declared length (chunked), the body is cut at the limit (64 KiB here).
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let chunk = vec![b' '; 70_000];
    let mut request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ACME_KEY}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    s.write_all(&request).await.unwrap();
    let n = tokio::time::timeout(ms(5_000), s.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&out[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // The gateway serves the next client.
    assert_eq!(gw.post(Some(ACME_KEY), body(json!({}))).await.status(), 200);
}
