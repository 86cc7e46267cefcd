use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tta_core::{AttemptKind, Error, WorkflowContext};
use tta_router::Strategy;

use crate::{Provider, always_fails, ask, ok_after, pipeline, price, router};

#[tokio::test(start_paused = true)]
async fn an_error_falls_back_to_the_next_route() {
    let (tt, t) = pipeline();
    let (a, b) = (
        Provider::new("a", always_fails()),
        Provider::new("b", ok_after(5)),
    );
    let r = router(&t)
        .route(a.route())
        .route(b.route().price(price(0.001, 0.002)))
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert_eq!(ask(&r, &cx).await.unwrap(), "b");
    let entries = cx.ledger().entries();
    assert_eq!(entries.len(), 1, "an unbilled failure costs nothing");
    assert_eq!(entries[0].kind, AttemptKind::Fallback);
    assert_eq!(&*entries[0].source, "b");
    let d = |route, reason| {
        tt.counter(
            "tta.router.decisions",
            &[("router", "llm"), ("route", route), ("reason", reason)],
        )
    };
    assert_eq!((d("a", "strategy"), d("b", "fallback")), (1.0, 1.0));
    assert_eq!(
        tt.counter(
            "tta.router.errors",
            &[("route", "a"), ("error_class", "other")]
        ),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_falls_back_within_the_attempt_limit() {
    let (tt, t) = pipeline();
    let (slow, fast) = (
        Provider::new("slow", ok_after(10_000)),
        Provider::new("fast", ok_after(50)),
    );
    let r = router(&t)
        .route(slow.route())
        .route(fast.route())
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "fast");
    assert_eq!(started.elapsed(), Duration::from_millis(350));
    assert_eq!(
        tt.counter(
            "tta.router.errors",
            &[("route", "slow"), ("error_class", "unavailable")]
        ),
        1.0
    );
    assert!(
        tt.histogram(
            "tta.router.route.duration",
            &[("route", "slow"), ("outcome", "timeout")]
        )
        .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn declared_fallbacks_come_before_the_strategys_next_choice() {
    let (_tt, t) = pipeline();
    let a = Provider::new("a", always_fails());
    let b = Provider::new("b", ok_after(0));
    let c = Provider::new("c", ok_after(0));
    let r = router(&t)
        .route(a.route().fallback_to(["c"]))
        .route(b.route())
        .route(c.route())
        .strategy(Strategy::Ordered)
        .build()
        .unwrap();
    assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "c");
    assert_eq!(b.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn errors_the_predicate_rejects_are_returned_at_once() {
    let (_tt, t) = pipeline();
    let quota = Provider::new(
        "a",
        Arc::new(|_| Err(Error::no_route("quota exceeded for this tenant"))),
    );
    let b = Provider::new("b", ok_after(0));
    let r = router(&t)
        .route(quota.route())
        .route(b.route())
        .fallback_on(|e: &Error| !e.is_no_route())
        .build()
        .unwrap();
    let err = ask(&r, &WorkflowContext::new()).await.unwrap_err();
    assert!(err.is_no_route());
    assert_eq!(b.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn exhaustion_returns_every_attempt_and_no_route_is_tried_twice() {
    let (tt, t) = pipeline();
    let a = Provider::new("a", always_fails());
    let b = Provider::new(
        "b",
        Arc::new(|_| Err(Error::timeout("b", "read timed out"))),
    );
    let c = Provider::new("c", always_fails());
    // Declared fallbacks point back at routes already tried: no loop.
    let r = router(&t)
        .route(a.route().fallback_to(["b", "c"]))
        .route(b.route().fallback_to(["c"]))
        .route(c.route())
        .failure_threshold(100)
        .build()
        .unwrap();
    let err = ask(&r, &WorkflowContext::new()).await.unwrap_err();
    assert!(err.is_all_routes_failed());
    assert_eq!(err.primitive(), Some("llm"));
    let routes: Vec<_> = err.attempts().iter().map(|a| a.route()).collect();
    assert_eq!(routes, ["a", "b", "c"]);
    assert!(err.attempts()[1].error().is_timeout());
    assert_eq!((a.calls(), b.calls(), c.calls()), (1, 1, 1));
    let attempts: f64 = ["a", "b", "c"]
        .iter()
        .map(|r| tt.counter("tta.router.decisions", &[("route", r)]))
        .sum();
    assert_eq!(attempts, 3.0);

    let capped = router(&t)
        .route(a.route())
        .route(b.route())
        .route(c.route())
        .max_attempts(2)
        .failure_threshold(100)
        .build()
        .unwrap();
    let err = ask(&capped, &WorkflowContext::new()).await.unwrap_err();
    assert_eq!(err.attempts().len(), 2);
    assert_eq!(c.calls(), 1, "the third route was not tried");
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_below_the_minimum_budget() {
    let (_tt, t) = pipeline();
    let a = Provider::new("a", ok_after(0));
    let r = router(&t)
        .route(a.route())
        .min_budget(Duration::from_millis(50))
        .build()
        .unwrap();
    let cx = WorkflowContext::new().with_timeout(Duration::from_millis(40));
    let err = ask(&r, &cx).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(a.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_attempt_runs_past_the_deadline_and_the_callers_deadline_does_not_cool_routes() {
    let (_tt, t) = pipeline();
    let slow = Provider::new("slow", ok_after(5_000));
    let r = router(&t)
        .route(slow.route())
        .failure_threshold(1)
        .build()
        .unwrap();
    let cx = WorkflowContext::new().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = ask(&r, &cx).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert!(err.is_all_routes_failed());
    assert!(err.attempts()[0].error().is_timeout());
    assert!(
        !r.stats()[0].cooling,
        "the caller's deadline is not the route's failure"
    );
}
