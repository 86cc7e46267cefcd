//! Redis faults on a real `redis-server`, under load: zero failed requests, errors
//! counted, recovery measured, the cache used again afterwards. Real time throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tta_observability_integration::cache::{CachePrimitive, RedisStore};
use tta_observability_integration::{Telemetry, TokenUsage, WorkflowContext, WorkflowPrimitive};
use tta_tests::redis::RedisServer;
use tta_tests::telemetry::PromTelemetry;

use crate::{Completion, Provider, Step};

const KEYS: u64 = 40;
const WORKERS: usize = 8;

struct Load {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// A cache on Redis around a fast simulated LLM, measured by a real Prometheus pipeline.
async fn cache_on(
    port: u16,
    prom: &PromTelemetry,
) -> Arc<impl WorkflowPrimitive<String, Output = Completion> + use<>> {
    let t = Telemetry::new(prom.meter_provider(), prom.tracer_provider());
    let store = RedisStore::builder(&format!("redis://127.0.0.1:{port}"))
        .command_timeout(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(200))
        .breaker_threshold(3)
        .breaker_cooldown(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let llm = Provider::new("llm", TokenUsage::new(500, 100), |_| {
        Step::Answer(Duration::from_millis(2))
    });
    let cache = CachePrimitive::builder(llm.primitive::<String>())
        .name("faults")
        .store(store)
        .telemetry(&t)
        .build()
        .unwrap();
    Arc::new(cache)
}

fn start_load(cache: Arc<impl WorkflowPrimitive<String, Output = Completion> + 'static>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let workers = (0..WORKERS)
        .map(|w| {
            let (cache, stop, requests, failures) = (
                Arc::clone(&cache),
                Arc::clone(&stop),
                Arc::clone(&requests),
                Arc::clone(&failures),
            );
            tokio::spawn(async move {
                let mut i = w as u64;
                while !stop.load(Ordering::Relaxed) {
                    let out = cache
                        .execute(format!("prompt {}", i % KEYS), &WorkflowContext::new())
                        .await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    if out.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 7;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    Load {
        stop,
        requests,
        failures,
        workers,
    }
}

impl Load {
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        (
            self.requests.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// Store reads that found an entry: the cache is being used.
fn store_hits(prom: &PromTelemetry) -> f64 {
    prom.sum(
        "tta_cache_operation_duration_seconds_count",
        &[("cache", "faults"), ("op", "get"), ("result", "hit")],
    )
}

/// Waits until the store serves hits again; returns how long that took.
async fn recovery(prom: &PromTelemetry) -> Duration {
    let healed = Instant::now();
    let before = store_hits(prom);
    loop {
        if store_hits(prom) > before + 5.0 {
            return healed.elapsed();
        }
        assert!(
            healed.elapsed() < Duration::from_secs(10),
            "the cache was not used again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn report(
    scenario: &str,
    injected: &str,
    requests: u64,
    failures: u64,
    recovered: Duration,
    prom: &PromTelemetry,
) {
    let errors = prom.sum("tta_cache_errors_total", &[("cache", "faults")]);
    println!(
        "| {scenario} | {injected} | {requests} | {failures} | {errors} | {} |",
        recovered.as_millis()
    );
    assert_eq!(
        failures, 0,
        "{scenario}: no request may fail because of Redis"
    );
    assert!(errors > 0.0, "{scenario}: the store errors were counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_real_time() {
    let prom = PromTelemetry::new();
    let port = RedisServer::unused_port();
    let cache = cache_on(port, &prom).await;
    let load = start_load(Arc::clone(&cache));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _redis = RedisServer::start_on(port);
    let recovered = recovery(&prom).await;
    let (requests, failures) = load.finish().await;
    report(
        "down at start",
        "no server for 500 ms, then started",
        requests,
        failures,
        recovered,
        &prom,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_and_restarted_real_time() {
    let prom = PromTelemetry::new();
    let mut redis = RedisServer::start();
    let cache = cache_on(redis.port(), &prom).await;
    let load = start_load(Arc::clone(&cache));
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.restart();
    let recovered = recovery(&prom).await;
    let (requests, failures) = load.finish().await;
    assert!(
        prom.sum(
            "tta_cache_errors_total",
            &[("cache", "faults"), ("error_type", "breaker_open")]
        ) > 0.0
    );
    report(
        "killed under load",
        "SIGKILL, restarted after 800 ms",
        requests,
        failures,
        recovered,
        &prom,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_with_sigstop_real_time() {
    let prom = PromTelemetry::new();
    let redis = RedisServer::start();
    let cache = cache_on(redis.port(), &prom).await;
    let load = start_load(Arc::clone(&cache));
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.pause();
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.resume();
    let recovered = recovery(&prom).await;
    let (requests, failures) = load.finish().await;
    assert!(
        prom.sum(
            "tta_cache_errors_total",
            &[("cache", "faults"), ("error_type", "timeout")]
        ) > 0.0
    );
    report(
        "paused (slow)",
        "SIGSTOP for 800 ms, then SIGCONT",
        requests,
        failures,
        recovered,
        &prom,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_values_in_redis_real_time() {
    let prom = PromTelemetry::new();
    let redis = RedisServer::start();
    let cache = cache_on(redis.port(), &prom).await;
    let load = start_load(Arc::clone(&cache));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Overwrite every entry with bytes that do not decode.
    let keys = redis.command(&["KEYS", "tta:cache:default:*"]);
    let listed = redis.command(&["DBSIZE"]).unwrap();
    assert!(listed.parse::<u64>().unwrap() > 0, "{keys:?}");
    for i in 0..KEYS {
        let key = tta_observability_integration::cache::CacheKey::new(
            "default",
            1,
            &postcard_string(&format!("prompt {i}")),
        );
        let redis_key = format!("tta:cache:default:{}", key.to_hex());
        redis
            .command_bytes(&[b"SET", redis_key.as_bytes(), b"\x00\xffjunk"])
            .unwrap();
    }
    let recovered = recovery(&prom).await;
    let (requests, failures) = load.finish().await;
    assert!(
        prom.sum(
            "tta_cache_errors_total",
            &[("cache", "faults"), ("error_type", "decode")]
        ) > 0.0
    );
    report(
        "junk values",
        "every entry overwritten with junk bytes",
        requests,
        failures,
        recovered,
        &prom,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_at_maxmemory_real_time() {
    let prom = PromTelemetry::new();
    let redis = RedisServer::start();
    let cache = cache_on(redis.port(), &prom).await;
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .unwrap();
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();
    let load = start_load(Arc::clone(&cache));
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    let recovered = recovery(&prom).await;
    let (requests, failures) = load.finish().await;
    assert!(
        prom.sum(
            "tta_cache_errors_total",
            &[
                ("cache", "faults"),
                ("op", "set"),
                ("error_type", "rejected")
            ]
        ) > 0.0
    );
    report(
        "maxmemory reached",
        "maxmemory 1 (noeviction) for 500 ms",
        requests,
        failures,
        recovered,
        &prom,
    );
}

/// The default key bytes of a `String` input: postcard's varint length, then the bytes.
fn postcard_string(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}
