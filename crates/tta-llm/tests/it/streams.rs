//! Streams: the first token, the usage-only final chunk, and every way a stream can fail
//! after its first chunk as an error, never a clean end.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tta_core::{ErrorClass, StreamPrimitive, WorkflowContext};
use tta_llm::{ChatChunk, FinishReason};
use tta_tests::llm_server::{End, LlmServer, Reply};

use crate::{client, pipeline, request};

fn delta(content: &str) -> serde_json::Value {
    json!({"id": "chatcmpl-s", "model": "m", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
}

fn script(words: &[&str]) -> Vec<serde_json::Value> {
    let mut frames = vec![
        json!({"id": "chatcmpl-s", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
    ];
    frames.extend(words.iter().map(|w| delta(w)));
    frames.push(json!({"id": "chatcmpl-s", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
    frames.push(json!({"id": "chatcmpl-s", "model": "m", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}));
    frames
}

async fn collect(
    server: &LlmServer,
) -> Result<Vec<Result<ChatChunk, tta_core::Error>>, tta_core::Error> {
    let (_tt, t) = pipeline();
    crate::collect(&client(server, &t)).await
}

#[tokio::test]
async fn a_stream_skips_the_role_preamble_and_keeps_the_usage_only_chunk() {
    let server = LlmServer::start().await;
    server.push(Reply::events(
        &script(&["Hel", "lo", "."]),
        Duration::from_millis(5),
        true,
        End::Close,
    ));
    let chunks: Vec<ChatChunk> = collect(&server)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        chunks[0].delta, "Hel",
        "the first chunk is the first token, not the role"
    );
    let text: String = chunks.iter().map(|c| c.delta.as_str()).collect();
    assert_eq!(text, "Hello.");
    assert_eq!(
        chunks[chunks.len() - 2].finish_reason,
        Some(FinishReason::Stop)
    );
    let usage = chunks
        .last()
        .unwrap()
        .usage
        .expect("the usage-only chunk is not lost");
    assert_eq!((usage.input_tokens, usage.output_tokens), (9, 3));
    let sent = &server.requests()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "usage is requested"
    );
}

#[tokio::test]
async fn a_stream_without_its_terminator_a_cut_and_a_malformed_chunk_end_in_an_error() {
    for (reply, what) in [
        (
            Reply::events(&script(&["a", "b"]), Duration::ZERO, false, End::Close),
            "without [DONE]",
        ),
        (
            Reply::events(&[delta("a"), delta("b")], Duration::ZERO, false, End::Cut),
            "cut",
        ),
        (
            Reply::Events {
                frames: vec![
                    (Duration::ZERO, format!("data: {}\n\n", delta("a"))),
                    (Duration::ZERO, "data: {not json\n\n".to_owned()),
                ],
                end: End::Close,
            },
            "malformed",
        ),
        (
            Reply::Events {
                frames: vec![
                    (Duration::ZERO, format!("data: {}\n\n", delta("a"))),
                    (
                        Duration::ZERO,
                        "data: {\"choices\": [{\"delta\": {\"content\": 42}}]}\n\n".to_owned(),
                    ),
                ],
                end: End::Close,
            },
            "a field of the wrong type",
        ),
        (
            Reply::Events {
                frames: vec![
                    (Duration::ZERO, format!("data: {}\n\n", delta("a"))),
                    (
                        Duration::ZERO,
                        "event: error\ndata: {\"error\": {\"message\": \"overloaded\"}}\n\n"
                            .to_owned(),
                    ),
                ],
                end: End::Close,
            },
            "error event",
        ),
    ] {
        let server = LlmServer::start().await;
        server.push(reply);
        let items = collect(&server).await.unwrap();
        let (last, before) = items.split_last().unwrap();
        assert!(
            before.iter().all(Result::is_ok),
            "{what}: chunks before the end are delivered"
        );
        assert!(!before.is_empty(), "{what}: the first chunk came");
        let err = last.as_ref().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unavailable, "{what}: {err}");
    }
}

#[tokio::test]
async fn a_failure_before_the_first_chunk_is_an_error_of_the_head() {
    let server = LlmServer::start().await;
    server.push(Reply::status(429, &[("retry-after", "3")], ""));
    let err = collect(&server).await.unwrap_err();
    assert!(
        err.class().is_rate_limited(),
        "a router can fall back on it"
    );
    let server = LlmServer::start().await;
    server.push(Reply::events(&[], Duration::ZERO, true, End::Close));
    let err = collect(&server).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Unavailable,
        "an empty stream is no answer"
    );
}

#[tokio::test]
async fn a_stalled_stream_is_cut_by_a_timeouts_idle_limit() {
    let server = LlmServer::start().await;
    server.push(Reply::events(
        &[delta("a")],
        Duration::ZERO,
        false,
        End::Stall,
    ));
    let (_tt, t) = pipeline();
    let timeout = tta_timeout::TimeoutPrimitive::builder(client(&server, &t))
        .timeout(Duration::from_secs(5))
        .idle(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let items: Vec<_> = timeout
        .stream(request(), &WorkflowContext::new())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert!(items[1].as_ref().is_err_and(tta_core::Error::is_timeout));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_filtered_stream_hands_on_its_chunks_then_ends_in_a_content_filter_error_billed() {
    let server = LlmServer::start().await;
    let mut frames = script(&["Hel", "lo"]);
    frames[3] = json!({"id": "chatcmpl-s", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]});
    server.push(Reply::events(
        &frames,
        Duration::from_millis(2),
        true,
        End::Close,
    ));
    let items = collect(&server).await.unwrap();
    let text: String = items
        .iter()
        .filter_map(|item| item.as_ref().ok())
        .map(|c| c.delta.as_str())
        .collect();
    assert_eq!(text, "Hello", "the chunks before the filter were handed on");
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.class(), ErrorClass::ContentFilter);
    assert_eq!(
        err.billed_usage(),
        Some(tta_core::TokenUsage::new(9, 3)),
        "billed with the usage the provider reported"
    );
    assert_eq!(
        items.iter().filter(|item| item.is_err()).count(),
        1,
        "one error item ends the stream"
    );
}
