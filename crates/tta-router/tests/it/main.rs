//! tta-router integration tests, on tokio's paused clock unless they need threads.

mod accounting;
mod build;
mod classes;
mod fallback;
mod health;
mod strategies;
mod streams;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tta_core::{
    Error, FnPrimitive, ReportsUsage, Telemetry, TokenUsage, WorkflowContext, WorkflowPrimitive,
};
use tta_router::{Price, Route, RouterBuilder, RouterPrimitive};
use tta_tests::telemetry::TestTelemetry;

/// A simulated completion.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Completion {
    pub(crate) route: &'static str,
    pub(crate) usage: TokenUsage,
}

impl ReportsUsage for Completion {
    fn token_usage(&self) -> Option<TokenUsage> {
        Some(self.usage)
    }
}

/// How a simulated provider behaves on its n-th call (0-based).
pub(crate) type Behaviour = Arc<dyn Fn(usize) -> Result<Duration, Error> + Send + Sync>;

pub(crate) fn ok_after(ms: u64) -> Behaviour {
    Arc::new(move |_| Ok(Duration::from_millis(ms)))
}

pub(crate) fn always_fails() -> Behaviour {
    Arc::new(|_| Err(Error::msg("provider 503")))
}

/// A simulated provider: counts its calls, waits, then answers with `usage` or fails.
#[derive(Clone)]
pub(crate) struct Provider {
    pub(crate) name: &'static str,
    pub(crate) calls: Arc<AtomicUsize>,
    behaviour: Behaviour,
    usage: TokenUsage,
}

impl Provider {
    pub(crate) fn new(name: &'static str, behaviour: Behaviour) -> Self {
        Self {
            name,
            calls: Arc::new(AtomicUsize::new(0)),
            behaviour,
            usage: TokenUsage::new(1_000, 500),
        }
    }

    pub(crate) fn with_usage(mut self, usage: TokenUsage) -> Self {
        self.usage = usage;
        self
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn primitive(&self) -> impl WorkflowPrimitive<String, Output = Completion> + use<> {
        self.primitive_with(&Telemetry::global())
    }

    /// A route whose primitive reports its spans to `t`.
    pub(crate) fn traced_route(&self, t: &Telemetry) -> Route<String, Completion> {
        Route::new(self.name, self.primitive_with(t))
    }

    fn primitive_with(
        &self,
        t: &Telemetry,
    ) -> impl WorkflowPrimitive<String, Output = Completion> + use<> {
        let p = self.clone();
        FnPrimitive::builder(move |_prompt: String, _cx: WorkflowContext| {
            let n = p.calls.fetch_add(1, Ordering::SeqCst);
            let outcome = (p.behaviour)(n);
            let (name, usage) = (p.name, p.usage);
            async move {
                match outcome {
                    Ok(delay) => {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Ok(Completion { route: name, usage })
                    }
                    Err(e) => Err(e),
                }
            }
        })
        .telemetry(t)
        .build()
        .expect("the default name is valid")
    }

    pub(crate) fn route(&self) -> Route<String, Completion> {
        Route::new(self.name, self.primitive())
    }
}

/// The `tta.router.route.state` gauge of a route of the router `llm` (0 closed, 1 open,
/// 2 half-open).
pub(crate) fn route_state(tt: &TestTelemetry, route: &str) -> f64 {
    tt.counter(
        "tta.router.route.state",
        &[("router", "llm"), ("route", route)],
    )
}

pub(crate) fn pipeline() -> (TestTelemetry, Telemetry) {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    (tt, t)
}

pub(crate) fn router(t: &Telemetry) -> RouterBuilder<String, Completion> {
    RouterPrimitive::builder()
        .name("llm")
        .usage_reported()
        .telemetry(t)
}

pub(crate) async fn ask(
    router: &RouterPrimitive<String, Completion>,
    cx: &WorkflowContext,
) -> Result<&'static str, Error> {
    router
        .execute("prompt".to_owned(), cx)
        .await
        .map(|c| c.route)
}

pub(crate) fn price(input: f64, output: f64) -> Price {
    Price::per_1k_tokens(input, output)
}
