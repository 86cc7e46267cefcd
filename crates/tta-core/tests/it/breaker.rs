//! The breaker shared by route health and the remote stores.

use std::time::Duration;

use tokio::time::{Instant, advance};
use tta_core::{Breaker, BreakerState};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_the_threshold_and_lets_one_probe_through_after_the_cooldown() {
    let b = Breaker::new(3, secs(5), secs(60));
    for _ in 0..2 {
        b.admit().unwrap().failure(None);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    b.admit().unwrap().failure(None);
    assert_eq!(b.state(), BreakerState::Open);
    assert!(b.admit().is_none(), "open: not called");
    advance(secs(5)).await;
    let probe = b.admit().expect("one probe after the cooldown");
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.admit().is_none(), "only one probe at a time");
    drop(probe);
    let probe = b
        .admit()
        .expect("a dropped probe lets the next caller probe at once");
    probe.success();
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.admit().is_some_and(|p| !p.is_probe()));
}

#[tokio::test(start_paused = true)]
async fn failed_probes_double_the_cooldown_up_to_the_cap_and_a_success_resets_it() {
    let b = Breaker::new(1, secs(2), secs(10));
    b.admit().unwrap().failure(None);
    let mut waits = Vec::new();
    for _ in 0..5 {
        let opened = Instant::now();
        // Step one second at a time until the probe is let through.
        let probe = loop {
            if let Some(p) = b.admit() {
                break p;
            }
            advance(secs(1)).await;
        };
        waits.push(opened.elapsed().as_secs());
        probe.failure(None);
    }
    assert_eq!(waits, [2, 4, 8, 10, 10], "doubling, capped at max_cooldown");
    advance(secs(10)).await;
    b.admit().unwrap().success();
    b.admit().unwrap().failure(None);
    advance(secs(2)).await;
    assert!(
        b.admit().is_some(),
        "a success resets the cooldown to its base"
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_admitted_before_a_retry_after_hint_does_not_clear_it() {
    let b = Breaker::new(5, secs(1), secs(60));
    let in_flight = b.admit().unwrap();
    advance(Duration::from_millis(10)).await;
    b.admit().unwrap().failure(Some(secs(30)));
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "a hint opens below the threshold"
    );
    in_flight.success();
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "an older call's success says nothing now"
    );
    let snap = b.snapshot();
    assert_eq!(snap.retry_at, Some(Instant::now() + secs(30)));
    assert!(!snap.admits);
    advance(secs(30)).await;
    let probe = b.admit().expect("the hint is over");
    probe.success();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_early_admission_is_the_single_probe_of_an_open_breaker() {
    let b = Breaker::new(1, secs(30), secs(30));
    b.admit().unwrap().failure(None);
    let early = b.admit_early().expect("open, but no probe in flight");
    assert!(early.is_probe());
    assert!(b.admit_early().is_none() && b.admit().is_none());
    early.success();
    assert_eq!(b.state(), BreakerState::Closed);
    // Closed: an early admission is an ordinary call.
    assert!(b.admit_early().is_some_and(|p| !p.is_probe()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_settle_exactly_under_concurrency() {
    let b = std::sync::Arc::new(Breaker::new(u32::MAX, secs(1), secs(1)));
    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            let b = std::sync::Arc::clone(&b);
            tokio::spawn(async move {
                let permit = b.admit().expect("closed: every call passes");
                tokio::task::yield_now().await;
                if i % 2 == 0 {
                    permit.failure(None);
                }
                // Odd ones drop their permit unsettled: neither success nor failure.
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(b.snapshot().consecutive_failures, 500);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_after_a_short_hint_waits_twice_the_hint_not_twice_the_cooldown() {
    let b = Breaker::new(5, secs(30), secs(600));
    b.admit().unwrap().failure(Some(Duration::from_millis(100)));
    assert_eq!(b.state(), BreakerState::Open);
    advance(Duration::from_millis(100)).await;
    let probe = b.admit().expect("the hint is over: one probe");
    probe.failure(None);
    advance(Duration::from_millis(199)).await;
    assert!(b.admit().is_none(), "cooling for twice the hint");
    advance(Duration::from_millis(1)).await;
    let probe = b.admit().expect("after 200 ms, the next probe");
    probe.failure(None);
    advance(Duration::from_millis(399)).await;
    assert!(b.admit().is_none(), "doubling again");
    advance(Duration::from_millis(1)).await;
    b.admit().expect("after 400 ms").success();
    assert_eq!(b.state(), BreakerState::Closed);
    // A hint longer than the cooldown doubles from the cooldown.
    b.admit().unwrap().failure(Some(secs(120)));
    advance(secs(120)).await;
    b.admit().unwrap().failure(None);
    advance(secs(59)).await;
    assert!(b.admit().is_none());
    advance(secs(1)).await;
    assert!(b.admit().is_some(), "twice the 30 s cooldown");
}

/// A healthy breaker admits and settles successes without its lock. After threads race
/// successes against failures, what the lock-free path reads must still agree with the
/// state: one success resets the count, and `threshold` failures open it.
#[test]
fn the_lock_free_healthy_path_agrees_with_the_state_after_racing_threads() {
    // Outside a runtime, tokio's clock is the system's.
    for round in 0..20 {
        let b = Breaker::new(1_000_000, secs(1), secs(1));
        std::thread::scope(|s| {
            for t in 0..4 {
                let b = &b;
                s.spawn(move || {
                    for i in 0..2_000 {
                        let permit = b.admit().expect("never opens: the threshold is a million");
                        if (i + t + round) % 7 == 0 {
                            permit.failure(None);
                        } else {
                            permit.success();
                        }
                        let _ = b.snapshot();
                    }
                });
            }
        });
        assert_eq!(b.state(), BreakerState::Closed);
        b.admit().unwrap().success();
        assert_eq!(b.snapshot().consecutive_failures, 0, "round {round}");
        let b = Breaker::new(3, secs(1), secs(1));
        b.admit().unwrap().failure(None);
        b.admit().unwrap().success();
        assert_eq!(
            b.snapshot().consecutive_failures,
            0,
            "a success after a failure takes the lock"
        );
        for _ in 0..3 {
            b.admit().unwrap().failure(None);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit().is_none() && !b.snapshot().admits);
    }
}
