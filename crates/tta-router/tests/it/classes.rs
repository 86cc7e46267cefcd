//! Failure semantics by error class: fallback, health, retry-after, panic mode, deadlines.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, advance};
use tta_core::{Error, ErrorClass, ErrorKind, WorkflowContext};
use tta_router::Route;

use crate::{Behaviour, Provider, ask, ok_after, pipeline, route_state, router};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fails_with(class: ErrorClass) -> Behaviour {
    Arc::new(
        move |_| Err(Error::msg(format!("provider says {}", class.as_str())).with_class(class)),
    )
}

#[tokio::test(start_paused = true)]
async fn invalid_requests_and_content_filters_return_at_once_without_a_health_penalty() {
    for class in [ErrorClass::InvalidRequest, ErrorClass::ContentFilter] {
        let (tt, t) = pipeline();
        let primary = Provider::new("primary", fails_with(class));
        let backup = Provider::new("backup", ok_after(10));
        let r = router(&t)
            .route(primary.route())
            .route(backup.route())
            .failure_threshold(3)
            .build()
            .unwrap();
        let cx = WorkflowContext::new();
        for _ in 0..5 {
            let err = ask(&r, &cx).await.unwrap_err();
            assert_eq!(err.class(), class, "the route's own error, unchanged");
        }
        assert_eq!(backup.calls(), 0, "{class}: no fallback");
        assert_eq!(primary.calls(), 5);
        let stats = r.stats();
        assert_eq!(
            stats[0].consecutive_failures, 0,
            "{class}: no health penalty"
        );
        assert!(!stats[0].cooling);
        assert_eq!(
            tt.counter(
                "tta.router.errors",
                &[
                    ("router", "llm"),
                    ("route", "primary"),
                    ("error_class", class.as_str())
                ]
            ),
            5.0,
            "errors are labelled by class"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_fallback_on_classifier_still_spares_health_for_bad_requests() {
    let (_tt, t) = pipeline();
    let primary = Provider::new("primary", fails_with(ErrorClass::InvalidRequest));
    let backup = Provider::new("backup", ok_after(10));
    let r = router(&t)
        .route(primary.route())
        .route(backup.route())
        .fallback_on(|_| true)
        .failure_threshold(1)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for _ in 0..3 {
        assert_eq!(ask(&r, &cx).await.unwrap(), "backup");
    }
    assert_eq!(
        primary.calls(),
        3,
        "never cooled: a 400 says nothing about the route"
    );
    assert!(!r.stats()[0].cooling);
}

#[tokio::test(start_paused = true)]
async fn context_length_falls_back_only_to_larger_windows() {
    let (_tt, t) = pipeline();
    let small = Provider::new("small", fails_with(ErrorClass::ContextLength));
    let same = Provider::new("same", ok_after(10));
    let large = Provider::new("large", ok_after(10));
    let r = router(&t)
        .route(small.route().context_window(8_000))
        .route(same.route().context_window(8_000))
        .route(large.route().context_window(128_000))
        .build()
        .unwrap();
    assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "large");
    assert_eq!((same.calls(), large.calls()), (0, 1));
    assert_eq!(r.stats()[0].consecutive_failures, 0, "no health penalty");

    // A route with no declared window: which routes are larger is unknown.
    let unknown = Provider::new("unknown", fails_with(ErrorClass::ContextLength));
    let other = Provider::new("other", ok_after(10));
    let r = router(&t)
        .route(unknown.route())
        .route(other.route().context_window(1_000_000))
        .build()
        .unwrap();
    let err = ask(&r, &WorkflowContext::new()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::ContextLength);
    assert_eq!(other.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn unavailable_auth_and_rate_limited_fall_back_and_count_against_health() {
    for class in [
        ErrorClass::Unavailable,
        ErrorClass::Auth,
        ErrorClass::RateLimited { retry_after: None },
    ] {
        let (tt, t) = pipeline();
        let primary = Provider::new("primary", fails_with(class));
        let backup = Provider::new("backup", ok_after(10));
        let r = router(&t)
            .route(primary.route())
            .route(backup.route())
            .failure_threshold(2)
            .build()
            .unwrap();
        let cx = WorkflowContext::new();
        for _ in 0..4 {
            assert_eq!(ask(&r, &cx).await.unwrap(), "backup", "{class}");
        }
        // A refused key cools at once, for long (see the next test); the others after
        // the threshold.
        let expected = if class == ErrorClass::Auth { 1 } else { 2 };
        assert_eq!(primary.calls(), expected, "{class}: cooled");
        assert!(r.stats()[0].cooling);
        let state = |route| route_state(&tt, route);
        assert_eq!(
            (state("primary"), state("backup")),
            (1.0, 0.0),
            "open, closed"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn auth_errors_cool_a_route_for_the_max_cooldown() {
    let (_tt, t) = pipeline();
    let primary = Provider::new("primary", fails_with(ErrorClass::Auth));
    let backup = Provider::new("backup", ok_after(1));
    let r = router(&t)
        .route(primary.route())
        .route(backup.route())
        .failure_threshold(5)
        .cooldown(Duration::from_secs(1))
        .max_cooldown(Duration::from_secs(300))
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    ask(&r, &cx).await.unwrap();
    advance(Duration::from_secs(299)).await;
    ask(&r, &cx).await.unwrap();
    assert_eq!(
        primary.calls(),
        1,
        "a refused key is not retried for 5 minutes"
    );
    advance(Duration::from_secs(2)).await;
    ask(&r, &cx).await.unwrap();
    assert_eq!(primary.calls(), 2, "then one probe");
}

#[tokio::test(start_paused = true)]
async fn a_success_in_flight_before_a_429_does_not_clear_its_retry_after() {
    let (_tt, t) = pipeline();
    // Call 0 and every later call take 1 s and succeed; call 1 is the 429 with a 30 s hint.
    let provider = Provider::new(
        "primary",
        Arc::new(|n| match n {
            1 => Err(Error::msg("429").with_class(ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
            })),
            _ => Ok(Duration::from_secs(1)),
        }),
    );
    let backup = Provider::new("backup", ok_after(1));
    let r = Arc::new(
        router(&t)
            .route(provider.route())
            .route(backup.route())
            .build()
            .unwrap(),
    );
    // 20 requests a second for 3 s: the first is in flight when the 429 arrives.
    let mut tasks = Vec::new();
    for i in 0..60u64 {
        let r = Arc::clone(&r);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(ms(50 * i)).await;
            ask(&r, &WorkflowContext::new()).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        provider.calls(),
        2,
        "only the call already in flight and the 429 itself reached the rate-limited provider"
    );
    assert_eq!(
        backup.calls(),
        58 + 1,
        "everything else (and the 429's fallback) went to the backup"
    );
}

#[tokio::test(start_paused = true)]
async fn with_every_route_cooling_panic_mode_tries_the_one_that_recovers_first() {
    let (tt, t) = pipeline();
    let flaky = Provider::new(
        "only",
        Arc::new(|n| {
            if n == 0 {
                Err(Error::msg("blip"))
            } else {
                Ok(ms(1))
            }
        }),
    );
    let r = router(&t)
        .route(flaky.route())
        .failure_threshold(1)
        .cooldown(Duration::from_secs(30))
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert!(ask(&r, &cx).await.is_err(), "the blip");
    advance(ms(50)).await;
    assert_eq!(ask(&r, &cx).await.unwrap(), "only", "not 30 s of NoRoute");
    assert_eq!(
        tt.counter(
            "tta.router.decisions",
            &[("route", "only"), ("reason", "panic")]
        ),
        1.0
    );
    assert_eq!(
        tt.counter(
            "tta.router.decisions",
            &[("route", "only"), ("reason", "only_candidate")]
        ),
        1.0,
        "the first, healthy call was the only candidate; the cooling one is `panic`"
    );
}

#[tokio::test(start_paused = true)]
async fn without_panic_mode_no_route_carries_the_earliest_retry_after() {
    let (_tt, t) = pipeline();
    let a = Provider::new(
        "a",
        fails_with(ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(20)),
        }),
    );
    let b = Provider::new(
        "b",
        fails_with(ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(5)),
        }),
    );
    let r = router(&t)
        .route(a.route())
        .route(b.route())
        .panic_mode(false)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert!(ask(&r, &cx).await.is_err());
    advance(Duration::from_secs(1)).await;
    let err = ask(&r, &cx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoRoute);
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs(4)),
        "b recovers first"
    );
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn under_an_outer_deadline_a_hung_primary_leaves_time_for_the_fallback() {
    let (_tt, t) = pipeline();
    let hung = Provider::new("hung", Arc::new(|_| Ok(Duration::from_secs(3_600))));
    let backup = Provider::new("backup", ok_after(200));
    let r = router(&t)
        .route(hung.route())
        .route(backup.route())
        .min_budget(ms(500))
        .build()
        .unwrap();
    let cx = WorkflowContext::new().with_timeout(Duration::from_secs(2));
    let started = Instant::now();
    assert_eq!(ask(&r, &cx).await.unwrap(), "backup");
    // The primary got 2 s minus the reserve (min_budget: the backup's latency is not
    // known yet), then the backup answered in 200 ms.
    assert_eq!(started.elapsed(), ms(1_500 + 200));
    assert_eq!(hung.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_that_its_latency_says_cannot_finish() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tta_core::from_fn;

    let (_tt, t) = pipeline();
    let calls = |c: &Arc<AtomicUsize>| c.load(Ordering::SeqCst);
    let (a_calls, b_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a_count = Arc::clone(&a_calls);
    // `a` takes 800 ms, and fails after its first call; `b` takes 800 ms and answers.
    let a = from_fn(move |_: String, _| {
        let n = a_count.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(ms(800)).await;
            if n == 0 {
                Ok("a")
            } else {
                Err(Error::msg("a is down").with_class(ErrorClass::Unavailable))
            }
        }
    });
    let b_count = Arc::clone(&b_calls);
    let b = from_fn(move |_: String, _| {
        b_count.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(ms(800)).await;
            Ok::<_, Error>("b")
        }
    });
    let r = tta_router::RouterPrimitive::builder()
        .route(Route::new("a", a))
        .route(Route::new("b", b))
        .failure_threshold(10)
        .telemetry(&t)
        .build()
        .unwrap();
    let ask = |cx: WorkflowContext| {
        let r = &r;
        async move { r.execute(String::new(), &cx).await }
    };
    // Teach both latencies (800 ms each): `a` answers, then `a` fails over to `b`.
    assert_eq!(ask(WorkflowContext::new()).await.unwrap(), "a");
    assert_eq!(ask(WorkflowContext::new()).await.unwrap(), "b");
    assert_eq!(
        (r.stats()[0].latency, r.stats()[1].latency),
        (Some(ms(800)), Some(ms(800)))
    );

    // Under 1 s: `a` gets the whole second (reserving 800 ms for `b` would leave it less
    // than its own 800 ms), fails at 800 ms, and `b` (800 ms) is not started with 200 ms left.
    let started = Instant::now();
    let err = ask(WorkflowContext::new().with_timeout(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert_eq!(
        started.elapsed(),
        ms(800),
        "given up at once, not cut at the deadline"
    );
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.attempts().len(), 1, "the failed attempt is kept");
    assert_eq!((calls(&a_calls), calls(&b_calls)), (3, 1));
}
