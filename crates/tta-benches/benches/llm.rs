//! `llm/*`: what the OpenAI-compatible client costs over a hand-written reqwest call of
//! the same request, against a loopback provider (the scripted `tta_tests` server), with
//! telemetry on (`tta_apm::init`).
//!
//! - `llm/reqwest_raw`: POST the same JSON with reqwest, parse the body with serde_json,
//!   take the content. `llm/openai_complete`: `OpenAiCompatible::execute`.
//! - `llm_stream/reqwest_raw`: POST with `stream: true`, parse the events with
//!   eventsource-stream and serde_json up to `[DONE]`, take each delta.
//!   `llm_stream/openai`: `OpenAiCompatible::stream`, every chunk read.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tta_observability_integration::llm::{ChatRequest, Message, OpenAiCompatible};
use tta_observability_integration::{StreamPrimitive, WorkflowContext, WorkflowPrimitive};
use tta_tests::llm_server::{End, LlmServer, Reply};

/// Chunks of the streamed answer.
const CHUNKS: usize = 32;

fn completion() -> Value {
    json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "The answer is 42."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6}
    })
}

fn events() -> Vec<Value> {
    let mut frames: Vec<Value> = (0..CHUNKS)
        .map(|i| json!({"id": "c", "model": "bench-model", "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}}]}))
        .collect();
    frames.push(json!({"id": "c", "model": "bench-model", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": CHUNKS}}));
    frames
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::user("What is the answer?")]).max_tokens(16)
}

/// The JSON `OpenAiCompatible` sends for [`request`], written by hand.
fn raw_body(stream: bool) -> Value {
    let mut body = json!({
        "model": "bench-model",
        "messages": [{"role": "user", "content": "What is the answer?"}],
        "max_tokens": 16,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn llm(c: &mut Criterion) {
    let (rt, _guard) = tta_benches::runtime_with_telemetry();
    let call_server = rt.block_on(LlmServer::start());
    call_server.always(Reply::json(completion()));
    let stream_server = rt.block_on(LlmServer::start());
    stream_server.always(Reply::events(&events(), Duration::ZERO, true, End::Close));
    let client = |server: &LlmServer| {
        OpenAiCompatible::builder(server.base_url())
            .api_key("sk-bench")
            .model("bench-model")
            .build()
            .expect("a client")
    };
    let (call_client, stream_client) = (client(&call_server), client(&stream_server));
    // After a tta client is built, rustls has its process-wide provider.
    let raw = reqwest::Client::new();
    let call_url = format!("{}/chat/completions", call_server.base_url());
    let stream_url = format!("{}/chat/completions", stream_server.base_url());

    let mut group = c.benchmark_group("llm");
    group.bench_function("reqwest_raw", |b| {
        b.to_async(&rt).iter(|| async {
            let response = raw
                .post(&call_url)
                .bearer_auth("sk-bench")
                .json(&raw_body(false))
                .send()
                .await
                .expect("a response");
            let value: Value = response.json().await.expect("JSON");
            black_box(
                value["choices"][0]["message"]["content"]
                    .as_str()
                    .map(str::to_owned),
            )
        });
    });
    group.bench_function("openai_complete", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                call_client
                    .execute(request(), &WorkflowContext::new())
                    .await
                    .expect("an answer"),
            )
        });
    });
    group.finish();

    let mut group = c.benchmark_group("llm_stream");
    group.throughput(Throughput::Elements(CHUNKS as u64));
    group.bench_function("reqwest_raw", |b| {
        b.to_async(&rt).iter(|| async {
            let response = raw
                .post(&stream_url)
                .bearer_auth("sk-bench")
                .json(&raw_body(true))
                .send()
                .await
                .expect("a response");
            let mut events = response.bytes_stream().eventsource();
            let mut deltas = 0usize;
            while let Some(event) = events.next().await {
                let event = event.expect("an event");
                if event.data == "[DONE]" {
                    break;
                }
                let value: Value = serde_json::from_str(&event.data).expect("JSON");
                if let Some(delta) = value["choices"][0]["delta"]["content"].as_str() {
                    deltas += black_box(delta).len();
                }
            }
            black_box(deltas)
        });
    });
    group.bench_function("openai", |b| {
        b.to_async(&rt).iter(|| async {
            let mut body = stream_client
                .stream(request(), &WorkflowContext::new())
                .await
                .expect("a stream");
            let mut deltas = 0usize;
            while let Some(chunk) = body.next().await {
                deltas += black_box(chunk.expect("a chunk")).delta.len();
            }
            black_box(deltas)
        });
    });
    group.finish();
}

criterion_group!(benches, llm);
criterion_main!(benches);
