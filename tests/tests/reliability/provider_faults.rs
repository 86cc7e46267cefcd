//! Provider faults: every request succeeds through fallback, within timeout + grace,
//! with no loop, and the ledger reconciles exactly with the Prometheus counters.

use std::time::Duration;

use tokio::time::Instant;
use tta_observability_integration::router::{Price, Route, RouterPrimitive};
use tta_observability_integration::timeout::TimeoutPrimitive;
use tta_observability_integration::{Error, Telemetry, TokenUsage, Usd, WorkflowContext};
use tta_tests::telemetry::PromTelemetry;

use crate::{Provider, Step};

const TIMEOUT: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_millis(500);
const REQUESTS: usize = 60;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `REQUESTS` requests, 100 ms apart, through a timeout around router(primary, backup)
/// and checks every promise of the suite. Returns the primary and the backup for
/// scenario checks.
async fn scenario(name: &str, primary: Provider) -> (Provider, Provider) {
    let prom = PromTelemetry::new();
    let t = Telemetry::new(prom.meter_provider(), prom.tracer_provider());
    // Costs of 1/2, 3/8 and 1/2 dollar (billed prompts): exact in binary.
    let backup = Provider::new("backup", TokenUsage::new(1_000, 1_000), |_| {
        Step::Answer(ms(30))
    });
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(
            Route::new("primary", primary.primitive::<String>())
                .price(Price::per_1k_tokens(0.25, 0.5)),
        )
        .route(
            Route::new("backup", backup.primitive::<String>())
                .price(Price::per_1k_tokens(0.125, 0.25)),
        )
        .attempt_timeout(ms(800))
        .usage_reported()
        .telemetry(&t)
        .build()
        .unwrap();
    let stack = TimeoutPrimitive::builder(router)
        .timeout(TIMEOUT)
        .grace(GRACE)
        .telemetry(&t)
        .build()
        .unwrap();
    let mut spent = Usd::ZERO;
    for i in 0..REQUESTS {
        let cx = WorkflowContext::new();
        let started = Instant::now();
        let out = stack.execute(format!("request {i}"), &cx).await;
        let took = started.elapsed();
        assert!(out.is_ok(), "{name}: request {i} failed: {out:?}");
        assert!(took <= TIMEOUT + GRACE, "{name}: request {i} took {took:?}");
        let entries = cx.ledger().entries();
        assert!(
            entries.len() <= 2,
            "{name}: request {i} made {} billed attempts",
            entries.len()
        );
        let sum = entries.iter().fold(Usd::ZERO, |acc, e| acc + e.spent);
        assert_eq!(
            sum,
            cx.ledger().totals().spent,
            "{name}: entries sum to the request's total"
        );
        spent += sum;
        tokio::time::sleep(ms(100)).await;
    }
    assert!(
        primary.calls() + backup.calls() <= 2 * REQUESTS,
        "{name}: no fallback loop"
    );
    let counters = prom.sum("tta_router_cost_usd_total", &[("router", "llm")]);
    assert_eq!(
        counters,
        spent.dollars(),
        "{name}: the ledgers equal the Prometheus counters exactly"
    );
    let decisions = prom.sum("tta_router_decisions_total", &[("router", "llm")]);
    assert_eq!(
        decisions as usize,
        primary.calls() + backup.calls(),
        "{name}: one decision per attempt"
    );
    (primary, backup)
}

fn usage() -> TokenUsage {
    TokenUsage::new(1_000, 500)
}

#[tokio::test(start_paused = true)]
async fn an_error_status_without_a_hint_falls_back_and_cools_the_primary() {
    let (p, _) = scenario(
        "503",
        Provider::new("primary", usage(), |_| {
            Step::Fail(Error::msg("503 service unavailable"), ms(20))
        }),
    )
    .await;
    assert_eq!(
        p.calls(),
        3,
        "three failures cool it for 30 s, longer than the run"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_keeps_the_primary_uncalled_for_that_long() {
    let (p, _) = scenario(
        "429 + retry-after",
        Provider::new("primary", usage(), |_| {
            Step::Fail(
                Error::msg("429 rate limited").with_retry_after(Duration::from_secs(5)),
                ms(5),
            )
        }),
    )
    .await;
    // 60 requests over about 8 s: a call at t = 0, then one after the 5 s hint.
    assert_eq!(p.calls(), 2, "honoured the hint");
}

#[tokio::test(start_paused = true)]
async fn a_connection_reset_falls_back() {
    scenario(
        "connection reset",
        Provider::new("primary", usage(), |n| {
            if n % 4 == 0 {
                Step::Fail(
                    Error::backend(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                    ms(1),
                )
            } else {
                Step::Answer(ms(40))
            }
        }),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_hang_is_cut_by_the_attempt_timeout_and_falls_back() {
    let (p, _) = scenario(
        "silent hang",
        Provider::new("primary", usage(), |n| {
            if n < 2 {
                Step::Hang
            } else {
                Step::Answer(ms(50))
            }
        }),
    )
    .await;
    assert!(p.calls() > 2, "the primary serves again after its hangs");
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_response_falls_back_then_the_primary_serves() {
    let (p, backup) = scenario(
        "slow first response",
        Provider::new("primary", usage(), |n| {
            if n == 0 {
                Step::Answer(ms(5_000))
            } else {
                Step::Answer(ms(60))
            }
        }),
    )
    .await;
    assert_eq!(p.calls(), REQUESTS);
    assert_eq!(
        backup.calls(),
        1,
        "the slow first response fell back once, then the primary served"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flapping_primary_never_fails_a_request() {
    scenario(
        "flapping",
        Provider::new("primary", usage(), |n| {
            if n % 2 == 0 {
                Step::Fail(Error::msg("502"), ms(10))
            } else {
                Step::Answer(ms(40))
            }
        }),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_error_after_billing_is_paid_for_and_reconciled() {
    scenario(
        "billed error",
        Provider::new("primary", usage(), |n| {
            if n % 3 == 0 {
                Step::Fail(
                    Error::msg("stream cut").with_billed_usage(TokenUsage::new(2_000, 0)),
                    ms(30),
                )
            } else {
                Step::Answer(ms(30))
            }
        }),
    )
    .await;
}
