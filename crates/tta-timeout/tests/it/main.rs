//! tta-timeout integration tests, on tokio's paused clock.

mod behaviour;
mod build;
mod stream;
mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tta_core::{Error, FnPrimitive, Telemetry, WorkflowContext, WorkflowPrimitive};
use tta_tests::telemetry::TestTelemetry;
use tta_timeout::TimeoutPrimitive;

/// Counts drops: proves the inner future was cancelled.
#[derive(Clone, Default)]
pub(crate) struct Drops(Arc<AtomicUsize>);

impl Drops {
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

pub(crate) struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A primitive that sleeps `ms` (its input), then returns it; counts its drops.
pub(crate) fn sleeper(
    drops: &Drops,
    t: &Telemetry,
) -> impl WorkflowPrimitive<u64, Output = u64> + use<> {
    let counter = Arc::clone(&drops.0);
    FnPrimitive::builder(move |ms: u64, _cx: WorkflowContext| {
        let guard = Guard(Arc::clone(&counter));
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Error>(ms)
        }
    })
    .name("llm")
    .telemetry(t)
    .build()
    .unwrap()
}

pub(crate) fn pipeline() -> (TestTelemetry, Telemetry) {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    (tt, t)
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A timeout named `name` of `timeout_ms` + `grace_ms` around a [`sleeper`].
pub(crate) fn guarded(
    drops: &Drops,
    t: &Telemetry,
    name: &str,
    timeout_ms: u64,
    grace_ms: u64,
) -> TimeoutPrimitive<impl WorkflowPrimitive<u64, Output = u64> + use<>> {
    TimeoutPrimitive::builder(sleeper(drops, t))
        .name(name)
        .timeout(ms(timeout_ms))
        .grace(ms(grace_ms))
        .telemetry(t)
        .build()
        .unwrap()
}
