//! Replicas sharing one budget on a real `redis-server`, and what limits do while it is
//! down.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tta_core::{Layer, Usd, WorkflowContext};
use tta_limit::store::{Amount, Line};
use tta_limit::{LimitLayer, RedisStore, Resource, StoreUnavailable};
use tta_tests::redis::{HOUR, RedisServer, wait_clear_of_window_edge};

use crate::budget::{CAP_USD, Tally, budget, drive, max_reservation, prompt};
use crate::{pipeline, router};

async fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::builder(&redis.url())
        .breaker_threshold(2)
        .breaker_cooldown(Duration::from_millis(200))
        .connect()
        .await
        .unwrap()
}

/// One replica: its own runtime, Redis pool, router and limit, the same limit name.
fn replica(url: String, from: u64, to: u64) -> std::thread::JoinHandle<(Tally, u64)> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (_tt, t) = pipeline();
            let calls = Arc::new(AtomicU64::new(0));
            let router = router(Duration::from_millis(2), &t, &calls);
            let store = RedisStore::builder(&url)
                .pool_size(2)
                .connect()
                .await
                .unwrap();
            let limited = Arc::new(budget(router, store, &t));
            let tally = drive(&limited, from, to, Duration::from_millis(2)).await;
            assert_eq!(limited.stats().holding, 0);
            (tally, limited.stats().overshoots)
        })
    })
}

#[test]
fn three_replicas_share_one_budget_exactly() {
    // The budget's hour is Redis's clock's: the whole run in one.
    std::thread::sleep(wait_clear_of_window_edge(HOUR, Duration::from_secs(120)));
    let redis = RedisServer::start();
    let started = std::time::Instant::now();
    let replicas: Vec<_> = [(0, 334), (334, 667), (667, 1_000)]
        .into_iter()
        .map(|(from, to)| replica(redis.url(), from, to))
        .collect();
    let mut all = Tally::default();
    for r in replicas {
        let (tally, overshoots) = r.join().unwrap();
        assert_eq!(overshoots, 0);
        assert_eq!(tally.refused_otherwise, 0);
        all.answered += tally.answered;
        all.failed += tally.failed;
        all.refused += tally.refused;
        all.spent += tally.spent;
    }
    let took = started.elapsed();
    let cap = Usd::from_dollars(CAP_USD).unwrap();
    println!(
        "three replicas: {} answered, {} failed, {} refused, spent ${} of ${CAP_USD} in {took:?}",
        all.answered,
        all.failed,
        all.refused,
        all.spent.dollars()
    );
    assert!(all.spent <= cap, "spent {} > cap", all.spent.dollars());
    assert!(all.spent.picos() + max_reservation().picos() > cap.picos());
    assert_eq!(all.answered + all.failed + all.refused, 1_000);
    assert!(all.refused > 0 && all.answered > 0);
    // The shared counter holds exactly what the three ledgers spent, and nothing reserved.
    let line = Line::new(
        Resource::Usd,
        0,
        Duration::from_secs(3600),
        Amount::Exact(0),
    );
    let [hash, set] = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { store(&redis).await.keys("budget", "*", &line) });
    let field = |f: &str| redis.command(&["HGET", &hash, f]).unwrap();
    assert_eq!(
        field("used").parse::<u64>().unwrap() * 1_000,
        all.spent.picos()
    );
    assert_eq!(field("res"), "0");
    assert_eq!(redis.command(&["ZCARD", &set]).unwrap(), "0");
    let ttl: i64 = redis.command(&["PTTL", &hash]).unwrap().parse().unwrap();
    assert!(ttl > 0, "the counter expires ({ttl})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_budgets_fail_closed_rates_fail_open_and_both_recover() {
    let mut redis = RedisServer::start();
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicU64::new(0));
    let router = router(Duration::ZERO, &t, &calls);
    let dollars = budget(router.clone(), store(&redis).await, &t);
    let rates = LimitLayer::builder()
        .name("rates")
        .requests_per(1_000, Duration::from_secs(60))
        .store(store(&redis).await)
        .telemetry(&t)
        .build()
        .unwrap()
        .layer(router);
    let cx = WorkflowContext::new();
    dollars.execute(prompt(1), &cx).await.unwrap();
    rates.execute(prompt(1), &cx).await.unwrap();

    redis.kill();
    let mut waited = 0;
    for n in 0..5 {
        let started = std::time::Instant::now();
        let err = dollars.execute(prompt(n), &cx).await.unwrap_err();
        // The script's EVALSHA does not wait for the command timeout (250 ms) while the
        // pool reconnects; only a command sent before the pool saw the kill may.
        waited += usize::from(started.elapsed() >= Duration::from_millis(200));
        assert!(err.is_limited(), "{err}");
        assert_eq!(
            err.downcast_ref::<StoreUnavailable>(),
            Some(&StoreUnavailable(Resource::Usd))
        );
        rates.execute(prompt(n), &cx).await.unwrap();
    }
    assert!(waited <= 1, "{waited} calls waited for the command timeout");
    assert_eq!(dollars.stats().failed_closed, 5);
    assert_eq!(rates.stats().failed_open, 5);
    assert_eq!(rates.stats().holding, 0);

    redis.restart();
    let back = tokio::time::Instant::now();
    loop {
        match dollars.execute(prompt(9), &cx).await {
            Ok(_) => break,
            Err(e) => assert!(e.is_limited(), "{e}"),
        }
        assert!(back.elapsed() < Duration::from_secs(10), "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rates' store has its own breaker: it reserves in Redis again once it closes.
    loop {
        let before = rates.stats().allowed;
        rates.execute(prompt(10), &cx).await.unwrap();
        if rates.stats().allowed == before + 1 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "rates never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_wait_for_replicas_must_be_below_the_command_timeout() {
    for wait in [
        Duration::ZERO,
        Duration::from_millis(250),
        Duration::from_secs(1),
    ] {
        let err = RedisStore::builder("redis://127.0.0.1:1")
            .wait_for_replicas(1, wait)
            .connect()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("below the command timeout"),
            "{err}"
        );
    }
}
