use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tta_cache::{CachePrimitive, semconv};
use tta_core::{Error, ErrorClass, WorkflowContext, WorkflowPrimitive, from_fn};

use crate::{call_cost, count, llm, pipeline};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_misses_run_the_inner_primitive_once() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = Arc::new(
        CachePrimitive::builder(llm(&calls, Duration::from_millis(100)))
            .name("flight")
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let cx = WorkflowContext::new();
                let out = cache.execute("same".into(), &cx).await;
                (out, cx.ledger().totals())
            })
        })
        .collect();
    let mut saved = 0;
    for task in tasks {
        let (out, totals) = task.await.unwrap();
        assert_eq!(out.unwrap(), "answer to same");
        saved += totals.saved.picos();
    }
    assert_eq!(count(&calls), 1);
    assert_eq!(cache.fills_in_flight(), 0);
    let coalesced = tt.counter(semconv::COALESCED, &[("cache", "flight")]);
    let hits = tt.counter(semconv::HITS, &[("cache", "flight")]);
    assert_eq!(tt.counter(semconv::MISSES, &[("cache", "flight")]), 1.0);
    assert_eq!(
        hits, 99.0,
        "every waiter was served (coalesced {coalesced})"
    );
    assert!(coalesced >= 1.0);
    assert_eq!(
        saved,
        call_cost().picos() * 99,
        "each waiter saved the one fill's cost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_retryable_failed_fill_reaches_every_waiter_and_nothing_is_cached() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let failing = from_fn(move |_q: String, _| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if n == 0 {
                Err::<String, _>(
                    Error::msg("prompt too long for any model")
                        .with_class(ErrorClass::InvalidRequest),
                )
            } else {
                Ok("recovered".to_owned())
            }
        }
    });
    let cache = Arc::new(
        CachePrimitive::builder(failing)
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.execute("q".into(), &WorkflowContext::new()).await })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "inner: prompt too long for any model");
    }
    assert_eq!(
        count(&calls),
        1,
        "the same request fails everywhere: shared, not retried"
    );
    // Shared errors are lookups that did not hit.
    assert_eq!(cache.stats().hits, 0);
    assert_eq!(cache.stats().misses, 50);
    assert_eq!(tt.counter(semconv::MISSES, &[("cache", "cache")]), 50.0);
    assert_eq!(
        cache
            .execute("q".into(), &WorkflowContext::new())
            .await
            .unwrap(),
        "recovered"
    );
    assert_eq!(count(&calls), 2, "the error was not cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_retryable_blip_of_the_leader_one_waiter_takes_over_the_fill() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let blip = from_fn(move |_q: String, _| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if n == 0 {
                Err::<String, _>(Error::msg("503").with_class(ErrorClass::Unavailable))
            } else {
                Ok("answer".to_owned())
            }
        }
    });
    let cache = Arc::new(CachePrimitive::builder(blip).telemetry(&t).build().unwrap());
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.execute("q".into(), &WorkflowContext::new()).await })
        })
        .collect();
    let mut errors = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(answer) => assert_eq!(answer, "answer"),
            Err(e) => {
                assert_eq!(e.class(), ErrorClass::Unavailable);
                errors += 1;
            }
        }
    }
    assert_eq!(errors, 1, "only the leader that hit the blip sees it");
    assert_eq!(
        count(&calls),
        2,
        "one failed fill, one takeover, no stampede"
    );
    assert_eq!(cache.fills_in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_that_keeps_failing_is_called_a_bounded_number_of_times_per_waiter() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let down = from_fn(move |_q: String, _| {
        c.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err::<String, _>(Error::msg("503").with_class(ErrorClass::Unavailable))
        }
    });
    let cache = Arc::new(CachePrimitive::builder(down).telemetry(&t).build().unwrap());
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.execute("q".into(), &WorkflowContext::new()).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    // The leader's fill, then at most two takeovers: never one call per waiter.
    assert_eq!(count(&calls), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_filling_caller_is_cancelled_a_waiter_takes_over() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = Arc::new(
        CachePrimitive::builder(llm(&calls, Duration::from_millis(300)))
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    // The first caller becomes the leader, then is cancelled mid-fill, three times over.
    for _ in 0..3 {
        let leader = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.execute("q".into(), &WorkflowContext::new()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        let _ = leader.await;
    }
    let before = count(&calls);
    assert_eq!(before, 3);
    let waiters: Vec<_> = (0..20)
        .map(|i| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let cx = WorkflowContext::new();
                let task = cache.execute("q".into(), &cx);
                if i == 0 {
                    // The next leader is also dropped, by its caller's timeout.
                    tokio::time::timeout(Duration::from_millis(50), task)
                        .await
                        .ok()
                } else {
                    Some(task.await)
                }
            })
        })
        .collect();
    let mut answered = 0;
    for w in waiters {
        let out = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("no waiter hangs")
            .unwrap();
        if let Some(out) = out {
            assert_eq!(out.unwrap(), "answer to q");
            answered += 1;
        }
    }
    assert!(answered >= 19);
    assert!(
        count(&calls) - before <= 2,
        "a waiter took over: {} fills",
        count(&calls) - before
    );
    assert_eq!(cache.fills_in_flight(), 0, "no flight left behind");
}

#[tokio::test(start_paused = true)]
async fn callers_cut_while_they_wait_for_a_fill_are_counted_as_misses() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = Arc::new(
        CachePrimitive::builder(llm(&calls, Duration::from_millis(100)))
            .name("cut")
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let ask = |cx: WorkflowContext| {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.execute("same".into(), &cx).await })
    };
    let leader = ask(WorkflowContext::new());
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Three followers: one cancelled, one whose task is aborted, one served.
    let cancelled_cx = WorkflowContext::new();
    let cancelled = ask(cancelled_cx.clone());
    let aborted = ask(WorkflowContext::new());
    let served = ask(WorkflowContext::new());
    tokio::time::sleep(Duration::from_millis(30)).await;
    cancelled_cx.cancel();
    aborted.abort();
    assert!(cancelled.await.unwrap().unwrap_err().is_cancelled());
    assert!(leader.await.unwrap().is_ok() && served.await.unwrap().is_ok());
    assert_eq!(count(&calls), 1);
    let (hits, misses) = (
        tt.counter(semconv::HITS, &[("cache", "cut")]),
        tt.counter(semconv::MISSES, &[("cache", "cut")]),
    );
    assert_eq!(
        (hits, misses),
        (1.0, 3.0),
        "every lookup counted once: the served follower hit; the leader and the two that left missed"
    );
}
