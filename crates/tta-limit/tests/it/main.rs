//! tta-limit integration tests: budgets under concurrency, streams, cancellation, rates,
//! concurrency, tenants and telemetry, and replicas sharing a real `redis-server`.

mod budget;
mod rates;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tta_core::{
    Error, ErrorClass, FnPrimitive, MaxUsage, ReportsUsage, Streamable, Telemetry, TokenUsage,
    WorkflowContext,
};
use tta_router::{Price, Route, RouterPrimitive};
use tta_tests::telemetry::TestTelemetry;

/// A prompt: its input tokens and the most output tokens it allows (`None`: no maximum).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prompt {
    pub(crate) input: u64,
    pub(crate) max_output: Option<u64>,
    /// Which call this is: decides its simulated output length and faults.
    pub(crate) n: u64,
}

impl MaxUsage for Prompt {
    fn max_usage(&self) -> Option<TokenUsage> {
        Some(TokenUsage::new(self.input, self.max_output?))
    }
}

/// An answer, with its usage.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer {
    pub(crate) usage: TokenUsage,
}

impl ReportsUsage for Answer {
    fn token_usage(&self) -> Option<TokenUsage> {
        Some(self.usage)
    }
}

/// One streamed piece; the last reports the usage.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Piece {
    pub(crate) usage: Option<TokenUsage>,
}

impl ReportsUsage for Piece {
    fn token_usage(&self) -> Option<TokenUsage> {
        self.usage
    }
}

impl Streamable for Answer {
    type Chunk = Piece;
}

/// $0.01 and $0.03 per 1,000 tokens: every token costs a whole number of nano-dollars,
/// so ledgers and the Redis store (which counts nano-dollars) agree exactly.
pub(crate) fn primary_price() -> Price {
    Price::per_1k_tokens(0.01, 0.03)
}

pub(crate) fn backup_price() -> Price {
    Price::per_1k_tokens(0.002, 0.006)
}

/// The output length of call `n`, from 1 up to its maximum: costs vary per call.
pub(crate) fn output_of(p: &Prompt) -> u64 {
    let max = p.max_output.unwrap_or(400);
    1 + (p.n.wrapping_mul(2_654_435_761) % max)
}

/// A route answering after `delay`; every `fail_every`-th call (when set) fails with a
/// 503 billed for its prompt, so the router falls back.
pub(crate) fn route(
    name: &str,
    price: Price,
    delay: Duration,
    fail_every: Option<u64>,
    calls: &Arc<AtomicU64>,
) -> Route<Prompt, Answer> {
    let calls = Arc::clone(calls);
    let call = tta_core::from_fn(move |p: Prompt, _cx| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if fail_every.is_some_and(|k| p.n.is_multiple_of(k)) {
                return Err(Error::msg("503 overloaded")
                    .with_class(ErrorClass::Unavailable)
                    .with_billed_usage(TokenUsage::new(p.input, 0)));
            }
            Ok::<_, Error>(Answer {
                usage: TokenUsage::new(p.input, output_of(&p)),
            })
        }
    });
    Route::new(name, call).price(price)
}

/// A router over a primary that fails every third call (billed) and a cheaper backup.
pub(crate) fn router(
    delay: Duration,
    t: &Telemetry,
    calls: &Arc<AtomicU64>,
) -> RouterPrimitive<Prompt, Answer> {
    RouterPrimitive::builder()
        .name("llm")
        .route(route("primary", primary_price(), delay, Some(3), calls))
        .route(route("backup", backup_price(), delay, None, calls))
        .usage_reported()
        .telemetry(t)
        .build()
        .unwrap()
}

/// A streaming route: `pieces` pieces 10 ms apart, then a clean end with usage (or, with
/// `cut`, a connection reset before the usage).
pub(crate) fn streaming_router(
    pieces: u32,
    cut: bool,
    t: &Telemetry,
) -> RouterPrimitive<Prompt, Answer> {
    let stream = FnPrimitive::stream_builder(move |p: Prompt, _cx| async move {
        Ok(futures_util::stream::unfold(0u32, move |i| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            match i {
                i if i + 1 < pieces => Some((Ok(Piece { usage: None }), i + 1)),
                i if i + 1 == pieces && !cut => Some((
                    Ok(Piece {
                        usage: Some(TokenUsage::new(p.input, u64::from(pieces))),
                    }),
                    i + 1,
                )),
                i if i + 1 == pieces => Some((
                    Err(Error::msg("connection reset").with_class(ErrorClass::Unavailable)),
                    i + 1,
                )),
                _ => None,
            }
        }))
    })
    .name("stream")
    .telemetry(t)
    .build()
    .unwrap();
    let call = tta_core::from_fn(|p: Prompt, _| async move {
        Ok::<_, Error>(Answer {
            usage: TokenUsage::new(p.input, 1),
        })
    });
    RouterPrimitive::builder()
        .name("streams")
        .route(
            Route::new("primary", call)
                .stream_with(stream)
                .price(primary_price()),
        )
        .usage_reported()
        .telemetry(t)
        .build()
        .unwrap()
}

/// An in-memory telemetry pipeline and the handle primitives take.
pub(crate) fn pipeline() -> (TestTelemetry, Telemetry) {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    (tt, t)
}

/// A context for `tenant`.
pub(crate) fn tenant(name: &str) -> WorkflowContext {
    WorkflowContext::builder()
        .metadata("tenant", name)
        .build()
        .unwrap()
}
