//! Deadlines across primitives: exactly one primitive reports a deadline, the one whose
//! limit it is, so a timeout's own error and its fallback survive a router inside it.

use std::time::Duration;

use tokio::time::Instant;
use tta_observability_integration::router::{Route, RouterPrimitive};
use tta_observability_integration::timeout::{TimeoutPrimitive, semconv};
use tta_observability_integration::{
    Error, ErrorKind, Telemetry, TokenUsage, WorkflowContext, WorkflowPrimitive, from_fn,
};
use tta_tests::telemetry::TestTelemetry;

use crate::{Completion, Provider, Step};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The fallback of the tests: an answer from elsewhere, free.
fn cached_answer() -> impl WorkflowPrimitive<String, Output = Completion> + use<> {
    from_fn(|_q: String, _| async move {
        Ok::<_, Error>(Completion {
            route: "fallback".to_owned(),
            input: 0,
            output: 0,
        })
    })
}

fn hanging_router(t: &Telemetry) -> (RouterPrimitive<String, Completion>, Provider, Provider) {
    let usage = TokenUsage::new(100, 100);
    let primary = Provider::new("primary", usage, |_| Step::Hang);
    let backup = Provider::new("backup", usage, |_| Step::Hang);
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(Route::new("primary", primary.primitive::<String>()))
        .route(Route::new("backup", backup.primitive::<String>()))
        .usage_reported()
        .telemetry(t)
        .build()
        .unwrap();
    (router, primary, backup)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_fallback_runs_over_a_hanging_router() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let (router, primary, backup) = hanging_router(&t);
    let fallback = cached_answer();
    let stack = TimeoutPrimitive::builder(router)
        .timeout(ms(2_000))
        .grace(ms(500))
        .fallback(fallback)
        .telemetry(&t)
        .build()
        .unwrap();
    let started = Instant::now();
    let out = stack
        .execute("q".to_owned(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(out.route, "fallback", "the timeout's fallback answered");
    assert_eq!(started.elapsed(), ms(2_500), "at the hard limit, not later");
    // The router left its primary a share of the time and tried the backup in the rest.
    assert_eq!((primary.calls(), backup.calls()), (1, 1));
    let outcome = |o: &str| {
        tt.counter(
            semconv::OUTCOMES,
            &[("primitive", "timeout"), ("outcome", o)],
        )
    };
    assert_eq!((outcome("timeout"), outcome("error")), (1.0, 0.0));
    assert_eq!(
        tt.counter(
            semconv::FALLBACKS,
            &[("primitive", "timeout"), ("result", "ok")]
        ),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_fallback_the_error_at_the_hard_limit_is_the_timeouts() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let (router, _, _) = hanging_router(&t);
    let stack = TimeoutPrimitive::builder(router)
        .name("llm_timeout")
        .timeout(ms(1_000))
        .telemetry(&t)
        .build()
        .unwrap();
    let err = stack
        .execute("q".to_owned(), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.primitive(), Some("llm_timeout"), "{err}");
    assert_eq!(
        tt.counter(
            "tta.primitive.executions",
            &[("primitive", "llm_timeout"), ("outcome", "timeout")]
        ),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_router_out_of_time_hands_the_deadline_to_the_timeout_that_owns_it() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let usage = TokenUsage::new(100, 100);
    // The primary fails after 800 ms, the backup answers in 900 ms: a warm-up teaches
    // the router both. Under a 1 s timeout the primary gets the whole second (its 800 ms
    // do not fit beside a 900 ms reserve) and fails at 800 ms; with 200 ms left the
    // backup cannot finish, so the router gives up at once.
    let primary = Provider::new("primary", usage, |_| {
        Step::Fail(Error::msg("down"), ms(800))
    });
    let backup = Provider::new("backup", usage, |_| Step::Answer(ms(900)));
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(Route::new("primary", primary.primitive::<String>()))
        .route(Route::new("backup", backup.primitive::<String>()))
        .failure_threshold(10)
        .usage_reported()
        .telemetry(&t)
        .build()
        .unwrap();
    router
        .execute("warm".to_owned(), &WorkflowContext::new())
        .await
        .unwrap();
    let fallback = cached_answer();
    let stack = TimeoutPrimitive::builder(router)
        .timeout(ms(1_000))
        .fallback(fallback)
        .telemetry(&t)
        .build()
        .unwrap();
    let started = Instant::now();
    let out = stack
        .execute("q".to_owned(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(out.route, "fallback");
    assert_eq!(
        started.elapsed(),
        ms(800),
        "no waiting for a deadline nobody can meet"
    );
    assert_eq!(backup.calls(), 1, "only the warm-up reached the backup");
}
