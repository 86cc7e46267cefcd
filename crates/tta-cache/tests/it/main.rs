//! tta-cache integration tests: the memory store, single flight, telemetry, and a real
//! `redis-server` started on a free loopback port.

mod memory;
mod redis;
mod replicas;
mod single_flight;
mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tta_core::{
    AttemptKind, CostEntry, Error, Telemetry, TokenUsage, Usd, WorkflowContext, WorkflowPrimitive,
    from_fn,
};
use tta_tests::telemetry::TestTelemetry;

/// What one simulated LLM call costs.
pub(crate) const CALL_USAGE: TokenUsage = TokenUsage::new(1_000, 200);
pub(crate) fn call_cost() -> Usd {
    Usd::from_dollars(0.0123).unwrap()
}

/// A simulated LLM: counts calls, records its cost in the ledger like a router does,
/// optionally sleeps, and answers from the prompt.
pub(crate) fn llm(
    calls: &Arc<AtomicUsize>,
    delay: Duration,
) -> impl WorkflowPrimitive<String, Output = String> + use<> {
    let calls = Arc::clone(calls);
    from_fn(move |prompt: String, cx: WorkflowContext| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            cx.ledger().record(CostEntry::spent(
                AttemptKind::RouteCall,
                "llm",
                CALL_USAGE,
                call_cost(),
            ));
            Ok::<_, Error>(format!("answer to {prompt}"))
        }
    })
}

pub(crate) fn pipeline() -> (TestTelemetry, Telemetry) {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    (tt, t)
}

pub(crate) fn count(calls: &Arc<AtomicUsize>) -> usize {
    calls.load(Ordering::SeqCst)
}
