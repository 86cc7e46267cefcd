//! tta-llm against a scripted loopback provider: every row of the mapping table, calls
//! and streams, and what reaches telemetry.

mod anthropic;
mod calls;
mod cancel;
mod capture;
mod example;
mod route;
mod streams;

use futures_util::StreamExt;
use tta_core::{Error, StreamPrimitive, Telemetry, WorkflowContext};
use tta_llm::{ChatChunk, ChatRequest, Message, OpenAiCompatible};
use tta_tests::llm_server::LlmServer;
use tta_tests::telemetry::TestTelemetry;

pub(crate) fn client(server: &LlmServer, t: &Telemetry) -> OpenAiCompatible {
    OpenAiCompatible::builder(server.base_url())
        .api_key("sk-secret-test-key")
        .model("test-model")
        .telemetry(t)
        .build()
        .unwrap()
}

pub(crate) fn request() -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("Be brief."),
        Message::user("my card is 4111"),
    ])
    .max_tokens(32)
}

pub(crate) fn pipeline() -> (TestTelemetry, Telemetry) {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    (tt, t)
}

/// Every item of a client's stream of [`request`].
pub(crate) async fn collect<P>(llm: &P) -> Result<Vec<Result<ChatChunk, Error>>, Error>
where
    P: StreamPrimitive<ChatRequest, Chunk = ChatChunk>,
{
    Ok(llm
        .stream(request(), &WorkflowContext::new())
        .await?
        .collect()
        .await)
}

/// The client recorded spans and metrics, and no span or metric attribute holds any of
/// `secrets` (the prompt's text, the API key).
pub(crate) fn assert_telemetry_never_holds(tt: &TestTelemetry, secrets: &[&str]) {
    let spans = tt.spans();
    let points = tt.points();
    assert!(
        !spans.is_empty() && points.iter().any(|p| p.attrs.values().any(|v| v == "llm")),
        "the client's spans and metrics are recorded: {points:?}"
    );
    let span_values = spans
        .iter()
        .flat_map(|s| s.attributes.iter().map(|kv| kv.value.to_string()));
    let point_values = points.iter().flat_map(|p| p.attrs.values().cloned());
    for value in span_values.chain(point_values) {
        for secret in secrets {
            assert!(
                !value.contains(secret),
                "{secret:?} reached telemetry: {value}"
            );
        }
    }
}
