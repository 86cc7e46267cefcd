//! Content capture: off by default (the other tests check no prompt reaches telemetry);
//! turned on, the messages are on the client's span as the GenAI conventions record
//! them, and still never on a metric.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tta_core::{StreamPrimitive, WorkflowContext, WorkflowPrimitive};
use tta_llm::OpenAiCompatible;
use tta_tests::llm_server::{End, LlmServer, Reply};
use tta_tests::telemetry::span_attr;

use crate::calls::completion;
use crate::{pipeline, request};

#[tokio::test]
async fn with_capture_on_the_span_holds_the_messages_and_no_metric_does() {
    let server = LlmServer::start().await;
    let (tt, t) = pipeline();
    let llm = OpenAiCompatible::builder(server.base_url())
        .model("test-model")
        .capture_content(true)
        .telemetry(&t)
        .build()
        .unwrap();
    server.push(Reply::json(completion("tool_calls")));
    llm.execute(request(), &WorkflowContext::new())
        .await
        .unwrap();
    server.push(Reply::events(
        &[
            json!({"id": "s", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"id": "s", "model": "m", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        ],
        Duration::ZERO,
        true,
        End::Close,
    ));
    let items: Vec<_> = llm
        .stream(request(), &WorkflowContext::new())
        .await
        .unwrap()
        .collect()
        .await;
    assert!(items.iter().all(Result::is_ok));

    let spans = tt.spans_named("llm");
    assert_eq!(spans.len(), 2);
    let json_attr = |i: usize, key: &str| -> Value {
        serde_json::from_str(&span_attr(&spans[i], key).expect(key)).unwrap()
    };
    let input = json!([
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "my card is 4111"}]}
    ]);
    for i in 0..2 {
        assert_eq!(json_attr(i, "gen_ai.input.messages"), input);
    }
    assert_eq!(
        json_attr(0, "gen_ai.output.messages"),
        json!([{"role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "text", "content": "Hello."},
            {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": "{\"order\":42}"}
        ]}])
    );
    assert_eq!(
        json_attr(1, "gen_ai.output.messages"),
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "text", "content": "Hello"}
        ]}]),
        "a stream's answer is the chunks' text joined"
    );
    for point in tt.points() {
        for value in point.attrs.values() {
            assert!(
                !value.contains("4111") && !value.contains("Hello"),
                "content reached a metric: {point:?}"
            );
        }
    }
}
