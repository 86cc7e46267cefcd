use tokio::time::Instant;
use tta_core::{Error, WorkflowContext, from_fn};
use tta_timeout::{Elapsed, TimeoutPrimitive, semconv};

use crate::{Drops, guarded, ms, pipeline, sleeper};

#[tokio::test(start_paused = true)]
async fn a_result_before_the_timeout_is_returned_on_time() {
    let (_tt, t) = pipeline();
    let drops = Drops::default();
    let p = guarded(&drops, &t, "timeout", 1_000, 500);
    let started = Instant::now();
    assert_eq!(p.execute(200, &WorkflowContext::new()).await.unwrap(), 200);
    assert_eq!(started.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn a_late_result_within_the_grace_is_kept() {
    let (_tt, t) = pipeline();
    let drops = Drops::default();
    let p = guarded(&drops, &t, "timeout", 1_000, 500);
    let started = Instant::now();
    assert_eq!(
        p.execute(1_300, &WorkflowContext::new()).await.unwrap(),
        1_300
    );
    assert_eq!(
        started.elapsed(),
        ms(1_300),
        "phase one did not stop the call"
    );
}

#[tokio::test(start_paused = true)]
async fn at_timeout_plus_grace_the_inner_call_is_dropped_and_a_timeout_naming_this_primitive_returned()
 {
    let (_tt, t) = pipeline();
    let drops = Drops::default();
    let p = guarded(&drops, &t, "llm_timeout", 1_000, 500);
    let started = Instant::now();
    let err = p
        .execute(10_000, &WorkflowContext::new())
        .await
        .unwrap_err();
    assert_eq!(
        started.elapsed(),
        ms(1_500),
        "grace extends, but also bounds, the call"
    );
    assert!(err.is_timeout());
    assert_eq!(err.primitive(), Some("llm_timeout"));
    let elapsed = err
        .downcast_ref::<Elapsed>()
        .expect("own timeouts carry Elapsed");
    assert_eq!(elapsed.limit(), ms(1_500));
    assert!(!elapsed.shortened_by_caller());
    assert_eq!(drops.count(), 1, "the inner future was dropped");
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_is_returned_unchanged() {
    let (_tt, t) = pipeline();
    let failing = from_fn(|(), _| async { Err::<(), _>(Error::msg("provider 503")) });
    let p = TimeoutPrimitive::builder(failing)
        .timeout(ms(100))
        .telemetry(&t)
        .build()
        .unwrap();
    let err = p.execute((), &WorkflowContext::new()).await.unwrap_err();
    assert!(err.is_inner());
    assert_eq!(err.to_string(), "inner: provider 503");
}

#[tokio::test(start_paused = true)]
async fn an_inner_timeout_error_stays_the_inners_and_is_distinguishable() {
    let (_tt, t) = pipeline();
    let inner =
        from_fn(|(), _| async { Err::<(), _>(Error::timeout("provider_sdk", "read timed out")) });
    let p = TimeoutPrimitive::builder(inner)
        .name("outer")
        .timeout(ms(100))
        .telemetry(&t)
        .build()
        .unwrap();
    let err = p.execute((), &WorkflowContext::new()).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.primitive(), Some("provider_sdk"));
    assert!(
        err.downcast_ref::<Elapsed>().is_none(),
        "not this primitive's own timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn the_inner_primitive_sees_the_deadline() {
    let (_tt, t) = pipeline();
    let seen = from_fn(|(), cx: WorkflowContext| async move { Ok::<_, Error>(cx.remaining()) });
    let p = TimeoutPrimitive::builder(seen)
        .timeout(ms(800))
        .grace(ms(200))
        .telemetry(&t)
        .build()
        .unwrap();
    assert_eq!(
        p.execute((), &WorkflowContext::new()).await.unwrap(),
        Some(ms(1_000))
    );
    // A caller with less time left passes its tighter deadline through.
    let caller = WorkflowContext::new().with_timeout(ms(300));
    assert_eq!(p.execute((), &caller).await.unwrap(), Some(ms(300)));
}

#[tokio::test(start_paused = true)]
async fn nested_timeouts_let_the_tighter_limit_win() {
    for (outer_ms, inner_ms, reporter) in [(1_000, 5_000, "outer"), (5_000, 1_000, "inner")] {
        let (tt, t) = pipeline();
        let drops = Drops::default();
        let inner = TimeoutPrimitive::builder(sleeper(&drops, &t))
            .name("inner")
            .timeout(ms(inner_ms))
            .telemetry(&t)
            .build()
            .unwrap();
        let outer = TimeoutPrimitive::builder(inner)
            .name("outer")
            .timeout(ms(outer_ms))
            .telemetry(&t)
            .build()
            .unwrap();
        let started = Instant::now();
        let err = outer
            .execute(60_000, &WorkflowContext::new())
            .await
            .unwrap_err();
        assert_eq!(
            started.elapsed(),
            ms(1_000),
            "outer {outer_ms} / inner {inner_ms}"
        );
        assert!(err.is_timeout());
        assert_eq!(
            err.primitive(),
            Some(reporter),
            "the primitive whose limit it is reports it"
        );
        assert_eq!(drops.count(), 1);
        let elapsed = err.downcast_ref::<Elapsed>().unwrap();
        assert_eq!(elapsed.limit(), ms(1_000));
        assert!(
            !elapsed.shortened_by_caller(),
            "its own limit, not a shrunk one"
        );
        let timeouts = |name: &str| {
            tt.counter(
                semconv::OUTCOMES,
                &[("primitive", name), ("outcome", "timeout")],
            )
        };
        let other = if reporter == "outer" {
            "inner"
        } else {
            "outer"
        };
        assert_eq!((timeouts(reporter), timeouts(other)), (1.0, 0.0));
    }
}

#[tokio::test(start_paused = true)]
async fn a_spent_caller_budget_fails_fast_without_calling_the_inner_primitive() {
    let (_tt, t) = pipeline();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let counted = from_fn(move |(), _| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, Error>(()) }
    });
    let p = TimeoutPrimitive::builder(counted)
        .timeout(ms(500))
        .telemetry(&t)
        .build()
        .unwrap();
    let caller = WorkflowContext::new().with_timeout(ms(100));
    tokio::time::advance(ms(150)).await;
    let err = p.execute((), &caller).await.unwrap_err();
    assert!(err.is_timeout());
    assert!(err.downcast_ref::<Elapsed>().unwrap().shortened_by_caller());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_runs_on_a_copy_of_the_input_after_the_hard_limit() {
    let (tt, t) = pipeline();
    let drops = Drops::default();
    let fallback = from_fn(|ms: u64, _| async move { Ok::<_, Error>(ms + 1) });
    let p = TimeoutPrimitive::builder(sleeper(&drops, &t))
        .name("with_fallback")
        .timeout(ms(100))
        .grace(ms(50))
        .fallback(fallback)
        .telemetry(&t)
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        p.execute(9_000, &WorkflowContext::new()).await.unwrap(),
        9_001
    );
    assert_eq!(started.elapsed(), ms(150));
    assert_eq!(
        drops.count(),
        1,
        "the slow call was dropped before the fallback ran"
    );
    assert_eq!(
        tt.counter(
            "tta.timeout.fallbacks",
            &[("primitive", "with_fallback"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        tt.counter(
            "tta.timeout.outcomes",
            &[("primitive", "with_fallback"), ("outcome", "timeout")]
        ),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_context_drops_the_inner_call_promptly() {
    let (tt, t) = pipeline();
    let drops = Drops::default();
    let p = guarded(&drops, &t, "timeout", 10_000, 0);
    let cx = WorkflowContext::new();
    let canceller = {
        let cx = cx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(30)).await;
            cx.cancel();
        })
    };
    let started = Instant::now();
    let err = p.execute(60_000, &cx).await.unwrap_err();
    canceller.await.unwrap();
    assert!(err.is_cancelled());
    assert_eq!(started.elapsed(), ms(30));
    assert_eq!(drops.count(), 1);
    assert_eq!(
        tt.counter(
            "tta.primitive.executions",
            &[("kind", "timeout"), ("outcome", "cancelled")]
        ),
        1.0
    );
    assert_eq!(
        tt.counter("tta.timeout.outcomes", &[]),
        0.0,
        "a cancelled call has no timeout outcome"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_outer_future_drops_the_inner_call() {
    let (tt, t) = pipeline();
    let drops = Drops::default();
    let p = guarded(&drops, &t, "timeout", 10_000, 0);
    let cx = WorkflowContext::new();
    let res = tokio::time::timeout(ms(20), p.execute(60_000, &cx)).await;
    assert!(res.is_err());
    assert_eq!(drops.count(), 1);
    assert_eq!(
        tt.counter(
            "tta.primitive.executions",
            &[("kind", "timeout"), ("outcome", "cancelled")]
        ),
        1.0
    );
}
