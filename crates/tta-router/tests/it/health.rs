use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tta_core::{Error, WorkflowContext};

use crate::{Provider, always_fails, ask, ok_after, pipeline, route_state, router};

#[tokio::test(start_paused = true)]
async fn a_failing_route_cools_down_and_without_panic_mode_the_router_fails_fast() {
    let (_tt, t) = pipeline();
    let (a, b) = (
        Provider::new("a", always_fails()),
        Provider::new("b", always_fails()),
    );
    let r = router(&t)
        .route(a.route())
        .route(b.route())
        .failure_threshold(2)
        .cooldown(Duration::from_secs(30))
        .panic_mode(false)
        .build()
        .unwrap();
    for _ in 0..2 {
        assert!(
            ask(&r, &WorkflowContext::new())
                .await
                .unwrap_err()
                .is_all_routes_failed()
        );
    }
    assert!(r.stats().iter().all(|s| s.cooling));
    assert!(
        r.plan(&Default::default(), &WorkflowContext::new())
            .is_empty()
    );
    let err = ask(&r, &WorkflowContext::new()).await.unwrap_err();
    assert!(err.is_no_route(), "{err}");
    assert_eq!((a.calls(), b.calls()), (2, 2), "no call while cooling");
}

#[tokio::test(start_paused = true)]
async fn after_the_cooldown_exactly_one_of_fifty_concurrent_callers_probes() {
    let (tt, t) = pipeline();
    let healthy = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&healthy);
    let primary = Provider::new(
        "primary",
        Arc::new(move |_| {
            if h.load(Ordering::SeqCst) {
                Ok(Duration::from_millis(200))
            } else {
                Err(Error::msg("down"))
            }
        }),
    );
    let backup = Provider::new("backup", ok_after(10));
    let r = Arc::new(
        router(&t)
            .route(primary.route())
            .route(backup.route())
            .failure_threshold(3)
            .cooldown(Duration::from_secs(10))
            .build()
            .unwrap(),
    );
    for _ in 0..3 {
        assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "backup");
    }
    assert!(r.stats()[0].cooling);
    assert_eq!(primary.calls(), 3);
    let state = |route| route_state(&tt, route);
    assert_eq!(
        (state("primary"), state("backup")),
        (1.0, 0.0),
        "open, closed"
    );
    healthy.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;

    let callers: Vec<_> = (0..50)
        .map(|_| {
            let r = Arc::clone(&r);
            tokio::spawn(async move { ask(&r, &WorkflowContext::new()).await.unwrap() })
        })
        .collect();
    let mut served = Vec::new();
    for c in callers {
        served.push(c.await.unwrap());
    }
    assert_eq!(
        primary.calls(),
        4,
        "exactly one probe reached the recovering route"
    );
    assert_eq!(served.iter().filter(|s| **s == "primary").count(), 1);
    assert_eq!(served.iter().filter(|s| **s == "backup").count(), 49);
    assert_eq!(
        tt.counter(
            "tta.router.decisions",
            &[("route", "primary"), ("reason", "probe")]
        ),
        1.0
    );
    // The probe succeeded: the route is healthy again and takes traffic.
    assert!(!r.stats()[0].cooling);
    assert_eq!(state("primary"), 0.0, "the gauge follows the probe: closed");
    assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "primary");
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_cools_the_route_again_and_a_cancelled_probe_frees_the_slot() {
    let (tt, t) = pipeline();
    let a = Provider::new(
        "a",
        Arc::new(|n| {
            if n < 4 {
                Err(Error::msg("down"))
            } else {
                Ok(Duration::from_secs(60))
            }
        }),
    );
    let b = Provider::new("b", ok_after(0));
    let r = router(&t)
        .route(a.route())
        .route(b.route())
        .failure_threshold(3)
        .cooldown(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..3 {
        ask(&r, &WorkflowContext::new()).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        ask(&r, &WorkflowContext::new()).await.unwrap(),
        "b",
        "the probe failed, then fell back"
    );
    assert!(r.stats()[0].cooling, "a failed probe cools the route again");
    assert_eq!(a.calls(), 4);
    assert_eq!(
        tt.counter(
            "tta.router.route.state",
            &[("router", "llm"), ("route", "a")]
        ),
        1.0,
        "half-open while probing, then open again"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    ask(&r, &WorkflowContext::new()).await.unwrap();
    assert_eq!(
        a.calls(),
        4,
        "a failed probe doubles the cooldown: still cooling"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    // This probe hangs and its caller gives up: the probe slot must not stay taken.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), ask(&r, &WorkflowContext::new())).await;
    assert!(gave_up.is_err());
    assert_eq!(a.calls(), 5);
    assert_eq!(
        route_state(&tt, "a"),
        1.0,
        "the abandoned probe is released: open again, not half-open"
    );
    assert_eq!(
        r.plan(&Default::default(), &WorkflowContext::new()),
        ["a", "b"],
        "the next caller may probe"
    );
}
