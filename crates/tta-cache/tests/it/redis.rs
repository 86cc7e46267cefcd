use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use tta_cache::{CacheKey, CachePrimitive, CacheStore, RedisStore, StoreBuildError, semconv};
use tta_core::WorkflowContext;
use tta_core::WorkflowPrimitive;
use tta_tests::redis::RedisServer;

use crate::{count, llm, pipeline};

async fn store(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .command_timeout(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(500))
        .breaker_threshold(3)
        .breaker_cooldown(Duration::from_millis(300))
        .connect()
        .await
        .unwrap()
}

/// A cache named `name` around the simulated LLM, on a Redis store at `url`.
async fn cache_on(
    url: &str,
    name: &str,
    calls: &Arc<AtomicUsize>,
    t: &tta_core::Telemetry,
) -> CachePrimitive<impl WorkflowPrimitive<String, Output = String> + use<>, RedisStore> {
    CachePrimitive::builder(llm(calls, Duration::ZERO))
        .name(name)
        .store(store(url).await)
        .telemetry(t)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_serves_misses_then_hits() {
    let redis = RedisServer::start();
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let store = store(&redis.url()).await;
    assert!(store.is_connected());
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .name("r")
        .store(store)
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for _ in 0..3 {
        assert_eq!(cache.execute("q".into(), &cx).await.unwrap(), "answer to q");
    }
    assert_eq!(count(&calls), 1);
    assert_eq!(
        tt.counter(semconv::HITS, &[("cache", "r"), ("store", "redis")]),
        2.0
    );
    // The stored key holds the namespace and hash, never the prompt.
    let key = CacheKey::new("default", 1, &postcard_bytes("q"));
    let redis_key = cache.store().redis_key(&key);
    assert!(redis_key.starts_with("tta:cache:default:"));
    assert_ne!(redis.command(&["GET", &redis_key]).unwrap(), "(nil)");
    let ttl: i64 = redis
        .command(&["PTTL", &redis_key])
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ttl > 3_500_000 && ttl <= 3_600_000,
        "SET carries the entry's TTL: {ttl}"
    );
}

fn postcard_bytes(s: &str) -> Vec<u8> {
    // The default key bytes of a String input: postcard's varint length, then the bytes.
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_entries_expire_after_their_ttl_real_time() {
    let redis = RedisServer::start();
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .store(store(&redis.url()).await)
        .ttl(Duration::from_millis(200))
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    cache.execute("q".into(), &cx).await.unwrap();
    cache.execute("q".into(), &cx).await.unwrap();
    assert_eq!(count(&calls), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cache.execute("q".into(), &cx).await.unwrap();
    assert_eq!(count(&calls), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_entries_through_one_redis() {
    let redis = RedisServer::start();
    let (_tt, t) = pipeline();
    let calls_a = Arc::new(AtomicUsize::new(0));
    let calls_b = Arc::new(AtomicUsize::new(0));
    let replica_a = CachePrimitive::builder(llm(&calls_a, Duration::ZERO))
        .store(store(&redis.url()).await)
        .telemetry(&t)
        .build()
        .unwrap();
    let replica_b = CachePrimitive::builder(llm(&calls_b, Duration::ZERO))
        .store(store(&redis.url()).await)
        .telemetry(&t)
        .build()
        .unwrap();
    replica_a
        .execute("shared".into(), &WorkflowContext::new())
        .await
        .unwrap();
    let reader = WorkflowContext::new();
    assert_eq!(
        replica_b.execute("shared".into(), &reader).await.unwrap(),
        "answer to shared"
    );
    assert_eq!((count(&calls_a), count(&calls_b)), (1, 0));
    assert_eq!(
        reader.ledger().totals().saved,
        crate::call_cost(),
        "savings travel with the entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_every_request_bypasses_within_the_command_timeout() {
    let mut redis = RedisServer::start();
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = cache_on(&redis.url(), "down", &calls, &t).await;
    let cx = WorkflowContext::new();
    cache.execute("warm".into(), &cx).await.unwrap();
    redis.kill();
    let mut worst = Duration::ZERO;
    let mut late = Vec::new();
    for i in 0..40 {
        let started = Instant::now();
        let out = cache.execute(format!("q{i}"), &cx).await.unwrap();
        assert_eq!(out, format!("answer to q{i}"));
        let took = started.elapsed();
        worst = worst.max(took);
        if i >= 10 {
            late.push(took);
        }
    }
    // A failed lookup skips the write: one command timeout (100 ms) at most, plus
    // scheduling slack.
    assert!(
        worst <= Duration::from_millis(150),
        "worst added delay {worst:?}"
    );
    let late_worst = late.iter().max().unwrap();
    assert!(
        *late_worst < Duration::from_millis(120),
        "breaker open or fail-fast: {late_worst:?}"
    );
    let breaker = tt.counter(
        semconv::ERRORS,
        &[("cache", "down"), ("error_type", "breaker_open")],
    );
    assert!(breaker > 0.0, "the breaker opened");
    assert!(tt.counter(semconv::ERRORS, &[("cache", "down")]) >= 40.0);
    let state = tt.counter(
        semconv::STORE_STATE,
        &[("cache", "down"), ("store", "redis")],
    );
    assert!(
        state == 1.0 || state == 2.0,
        "the store state gauge shows the breaker open or half-open, not {state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_resume_after_redis_restarts_without_restarting_the_application() {
    let mut redis = RedisServer::start();
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .store(store(&redis.url()).await)
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    redis.kill();
    for i in 0..10 {
        cache.execute(format!("q{i}"), &cx).await.unwrap();
    }
    redis.restart();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    loop {
        let before = count(&calls);
        cache.execute("after".into(), &cx).await.unwrap();
        cache.execute("after".into(), &cx).await.unwrap();
        if count(&calls) == before + 1
            && cache.store().is_connected()
            && !cache.store().breaker_open()
        {
            break; // filled once, then a hit: Redis is used again
        }
        assert!(Instant::now() < deadline, "the cache never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
        redis.command(&["FLUSHALL"]).ok();
    }
    eprintln!("recovered {:?} after restart", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_bytes_at_a_key_are_a_miss_counted_and_then_overwritten() {
    let redis = RedisServer::start();
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = cache_on(&redis.url(), "junk", &calls, &t).await;
    let key = CacheKey::new("default", 1, &postcard_bytes("q"));
    let redis_key = cache.store().redis_key(&key);
    redis
        .command_bytes(&[b"SET", redis_key.as_bytes(), b"\xff\x00not postcard\xfe"])
        .unwrap();
    let cx = WorkflowContext::new();
    assert_eq!(cache.execute("q".into(), &cx).await.unwrap(), "answer to q");
    assert_eq!(count(&calls), 1, "junk reads as a miss");
    // Read twice: at the lookup, and once the fill's lease is taken (in case another
    // replica stored the key in between).
    assert_eq!(
        tt.counter(
            semconv::ERRORS,
            &[("cache", "junk"), ("op", "get"), ("error_type", "decode")]
        ),
        2.0
    );
    assert_eq!(cache.execute("q".into(), &cx).await.unwrap(), "answer to q");
    assert_eq!(count(&calls), 1, "the fill overwrote the junk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_bypasses_and_the_cache_is_used_once_it_comes_up() {
    let port = RedisServer::unused_port();
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let store = store(&format!("redis://127.0.0.1:{port}")).await;
    assert!(!store.is_connected());
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .store(store)
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    cache.execute("q".into(), &cx).await.unwrap();
    cache.execute("q".into(), &cx).await.unwrap();
    assert_eq!(
        count(&calls),
        2,
        "no cache while Redis is down, and no failure"
    );
    let _redis = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = count(&calls);
        cache.execute("later".into(), &cx).await.unwrap();
        cache.execute("later".into(), &cx).await.unwrap();
        if count(&calls) == before + 1 && cache.store().is_connected() {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
        _redis.command(&["FLUSHALL"]).ok();
    }
}

#[tokio::test]
async fn bad_redis_settings_are_typed_build_errors() {
    let err = RedisStore::builder("not a url")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, StoreBuildError::RedisUrl { .. }), "{err}");
    let err = RedisStore::builder("redis://user:hunter2@")
        .connect()
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("hunter2"),
        "passwords never reach errors: {err}"
    );
    for builder in [
        RedisStore::builder("redis://127.0.0.1:1").pool_size(0),
        RedisStore::builder("redis://127.0.0.1:1").command_timeout(Duration::ZERO),
        RedisStore::builder("redis://127.0.0.1:1").breaker_threshold(0),
        RedisStore::builder("redis://127.0.0.1:1").breaker_cooldown(Duration::ZERO),
    ] {
        assert!(matches!(
            builder.connect().await.unwrap_err(),
            StoreBuildError::RedisSetting(_)
        ));
    }
    let _ = RedisStore::builder("redis://127.0.0.1:1").key_prefix("x");
    assert_eq!(tta_cache::MemoryStore::new().kind(), "memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_at_most_one_command_timeout_then_nothing_once_the_breaker_opens() {
    let redis = RedisServer::start();
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = cache_on(&redis.url(), "slow", &calls, &t).await;
    let cx = WorkflowContext::new();
    cache.execute("warm".into(), &cx).await.unwrap();
    redis.pause();
    let mut took = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        assert_eq!(
            cache.execute(format!("q{i}"), &cx).await.unwrap(),
            format!("answer to q{i}")
        );
        took.push(started.elapsed());
    }
    redis.resume();
    assert!(
        took.iter().all(|d| *d <= Duration::from_millis(150)),
        "{took:?}"
    );
    assert!(
        took[5..].iter().all(|d| *d < Duration::from_millis(20)),
        "breaker open: {took:?}"
    );
    assert_eq!(
        tt.counter(
            semconv::ERRORS,
            &[("cache", "slow"), ("op", "get"), ("error_type", "timeout")]
        ),
        3.0
    );
    assert!(
        tt.counter(
            semconv::ERRORS,
            &[("cache", "slow"), ("error_type", "breaker_open")]
        ) >= 7.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_rejects_writes_and_requests_still_succeed() {
    let redis = RedisServer::start();
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = cache_on(&redis.url(), "full", &calls, &t).await;
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .unwrap();
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();
    let cx = WorkflowContext::new();
    // More refused writes than the breaker's threshold (3): a server that refuses
    // writes is up, so the breaker stays closed and every write is still tried.
    for _ in 0..6 {
        assert_eq!(cache.execute("q".into(), &cx).await.unwrap(), "answer to q");
    }
    assert_eq!(count(&calls), 6, "nothing could be stored");
    assert_eq!(
        tt.counter(
            semconv::ERRORS,
            &[("cache", "full"), ("op", "set"), ("error_type", "rejected")]
        ),
        6.0
    );
    assert!(
        !cache.store().breaker_open(),
        "refused writes do not open the breaker"
    );
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    cache.execute("q".into(), &cx).await.unwrap();
    cache.execute("q".into(), &cx).await.unwrap();
    assert_eq!(count(&calls), 7, "stored again once there is room");
}
