//! tta-llm against a scripted loopback provider: every row of the mapping table, calls
//! and streams, and what reaches telemetry.

mod anthropic;
mod calls;
mod example;
mod streams;

use tta_core::Telemetry;
use tta_llm::{ChatRequest, Message, OpenAiCompatible};
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
