//! The tta demo workload: a seeded, simulated LLM service run through
//! timeout around cache around router over four simulated providers.
//!
//! The binary (`cargo run --release -p tta-demo`) parses flags, installs telemetry, calls
//! [`run`] and prints the [`Summary`]; tests call [`run`] directly.

pub mod providers;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;
use tta_observability_integration::cache::{
    CacheKey, CachePrimitive, CacheStore, MemoryStore, RedisStore, StoreError,
};
use tta_observability_integration::router::{Route, RouterPrimitive, Strategy};
use tta_observability_integration::timeout::TimeoutPrimitive;
use tta_observability_integration::{
    AttemptKind, BoxPrimitive, Error, TokenUsage, Usd, WorkflowContext, WorkflowPrimitive,
    WorkflowPrimitiveExt,
};

use providers::{PROFILES, ProviderCounters, SimulatedProvider};
use workload::{Catalogue, Completion, Request};

/// What a run does.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Requests to run.
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The seed of prompts, popularity and provider behaviour.
    pub seed: u64,
    /// Multiplies every simulated latency and the stack's time limits (0 removes the
    /// latencies; time limits keep a small floor).
    pub latency_scale: f64,
    /// Use the Redis store at this URL instead of the in-memory one.
    pub redis: Option<String>,
    /// Distinct prompts in the catalogue.
    pub distinct_prompts: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            requests: 2_000,
            concurrency: 128,
            seed: 42,
            latency_scale: 1.0,
            redis: None,
            distinct_prompts: 3_000,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest request.
    pub max: f64,
}

/// The result of a run; also the JSON summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Requests run.
    pub requests: u64,
    /// Requests that returned an answer.
    pub succeeded: u64,
    /// Requests that returned an error (every route failed, or the hard limit).
    pub failed: u64,
    /// Requests answered from the cache (coalesced waiters included).
    pub cache_hits: u64,
    /// Requests that went to the router.
    pub cache_misses: u64,
    /// Cache store operations that failed (the requests bypassed).
    pub cache_errors: u64,
    /// Provider calls cut by a timeout, plus requests that reached the hard limit.
    pub timeouts: u64,
    /// Requests answered by a fallback route.
    pub fallbacks: u64,
    /// Dollars spent (the ledgers' totals).
    pub cost_usd: f64,
    /// Dollars every request would have cost on the most expensive route, with no cache.
    pub baseline_cost_usd: f64,
    /// `baseline_cost_usd - cost_usd`.
    pub savings_usd: f64,
    /// Dollars the cache hits saved (part of `savings_usd`).
    pub cache_savings_usd: f64,
    /// Request latency.
    pub latency_ms: Latency,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Answers per route, in the order of [`providers::PROFILES`].
    pub route_share: Vec<(String, u64)>,
    /// `memory`, or `redis` with its state at start.
    pub cache_store: String,
    /// Failed requests by error kind (`all_routes_failed`, `timeout`, ...).
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Resident memory once 10% of the requests were done, in MiB (Linux only).
    pub rss_warmup_mb: Option<f64>,
    /// Resident memory at the end of the run, in MiB (Linux only).
    pub rss_end_mb: Option<f64>,
}

/// The process's resident memory in MiB, from `/proc/self/statm` (Linux).
pub fn rss_mb() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

/// Counts a store's failed operations (every one of them bypassed).
struct CountingStore<S> {
    store: S,
    errors: Arc<AtomicU64>,
}

impl<S: CacheStore> CacheStore for CountingStore<S> {
    fn kind(&self) -> &'static str {
        self.store.kind()
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, StoreError> {
        let result = self.store.get(key).await;
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        let result = self.store.set(key, value, ttl).await;
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// A duration scaled by the latency scale, never below `floor`.
fn scaled(base: Duration, scale: f64, floor: Duration) -> Duration {
    base.mul_f64(scale).max(floor)
}

/// Builds timeout around cache around router over the simulated providers on `store`.
fn build_stack<S: CacheStore>(
    config: &DemoConfig,
    store: S,
    counters: &Arc<ProviderCounters>,
) -> Result<BoxPrimitive<Request, Completion>, Error> {
    let scale = config.latency_scale;
    let mut router = RouterPrimitive::builder()
        .name("llm")
        .strategy(Strategy::CheapestWithinLatency(scaled(
            Duration::from_millis(700),
            scale,
            Duration::from_millis(50),
        )))
        // The floors keep a saturated machine's scheduling delays (latency scale 0,
        // hundreds of requests in flight on two cores) from reading as provider timeouts.
        .attempt_timeout(scaled(
            Duration::from_millis(900),
            scale,
            Duration::from_millis(250),
        ))
        .min_budget(Duration::from_millis(1))
        .failure_threshold(5)
        .cooldown(scaled(
            Duration::from_secs(2),
            scale,
            Duration::from_millis(100),
        ))
        .usage_reported()
        .seed(config.seed);
    for (i, profile) in PROFILES.iter().enumerate() {
        let provider =
            SimulatedProvider::new(*profile, i, config.seed, scale, Arc::clone(counters));
        router = router.route(
            Route::new(profile.name, provider)
                .provider(profile.provider)
                .model(profile.model)
                .price(profile.price()),
        );
    }
    let cache = CachePrimitive::builder(router.build()?)
        .name("answers")
        .namespace("demo")
        .ttl(Duration::from_secs(600))
        .max_value_bytes(4_096)
        .key_fn(|r: &Request| r.prompt.as_bytes().to_vec())
        .store(store)
        .build()?;
    let stack = TimeoutPrimitive::builder(cache)
        .name("request_timeout")
        .timeout(scaled(
            Duration::from_secs(3),
            scale,
            Duration::from_secs(1),
        ))
        .grace(scaled(
            Duration::from_millis(500),
            scale,
            Duration::from_millis(100),
        ))
        .build()?;
    Ok(stack.boxed())
}

/// What one worker saw.
struct Tally {
    latency_us: Histogram<u64>,
    succeeded: u64,
    failed: u64,
    hard_timeouts: u64,
    cache_hits: u64,
    fallbacks: u64,
    spent: Usd,
    saved: Usd,
    baseline: Usd,
    routes: [u64; PROFILES.len()],
    errors: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // 1 µs to 60 s, 2 significant figures (1%): about 50 KiB a worker, whatever the run length.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 2)
                .expect("valid histogram bounds"),
            succeeded: 0,
            failed: 0,
            hard_timeouts: 0,
            cache_hits: 0,
            fallbacks: 0,
            spent: Usd::ZERO,
            saved: Usd::ZERO,
            baseline: Usd::ZERO,
            routes: [0; PROFILES.len()],
            errors: std::collections::BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &Tally) {
        // Every tally has the same bounds, so adding one to another cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.hard_timeouts += other.hard_timeouts;
        self.cache_hits += other.cache_hits;
        self.fallbacks += other.fallbacks;
        self.spent += other.spent;
        self.saved += other.saved;
        self.baseline += other.baseline;
        for (a, b) in self.routes.iter_mut().zip(other.routes) {
            *a += b;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }
}

/// Progress shared with the binary's progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests finished so far.
    pub done: AtomicU64,
}

/// Runs the workload. Telemetry must already be installed (the primitives take the
/// global providers when they are built).
///
/// # Errors
///
/// Only for an invalid configuration of the stack (a bug in the demo, reported, never a
/// panic). Failed requests are counted in the summary, not returned.
pub async fn run(config: &DemoConfig, progress: &Progress) -> Result<Summary, Error> {
    let counters = Arc::new(ProviderCounters::default());
    let store_errors = Arc::new(AtomicU64::new(0));
    let (stack, cache_store) = match &config.redis {
        None => {
            let store = CountingStore {
                store: MemoryStore::new(),
                errors: Arc::clone(&store_errors),
            };
            (build_stack(config, store, &counters)?, "memory".to_owned())
        }
        Some(url) => {
            let store = RedisStore::builder(url)
                .connect()
                .await
                .map_err(Error::invalid_config)?;
            let state = if store.is_connected() {
                "redis".to_owned()
            } else {
                "redis (unreachable at start: requests bypass the cache until it connects)"
                    .to_owned()
            };
            let store = CountingStore {
                store,
                errors: Arc::clone(&store_errors),
            };
            (build_stack(config, store, &counters)?, state)
        }
    };
    let catalogue = Arc::new(Catalogue::new(config.seed, config.distinct_prompts));
    let frontier = PROFILES[0]
        .price()
        .validate()
        .map_err(|_| Error::msg("invalid frontier price"))?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency.max(1) {
        let (stack, catalogue, next) = (stack.clone(), Arc::clone(&catalogue), Arc::clone(&next));
        let requests = config.requests;
        workers.spawn(async move {
            let mut tally = Tally::new();
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= requests {
                    break;
                }
                let request = catalogue.request(id);
                let usage = TokenUsage::new(request.input_tokens, request.output_tokens);
                tally.baseline += frontier.cost(Some(usage));
                // Only a ledger bound is set: nothing to reject.
                let cx = WorkflowContext::builder()
                    .ledger_capacity(8)
                    .build()
                    .unwrap_or_default();
                let t0 = Instant::now();
                let result = stack.execute(request, &cx).await;
                // A request longer than the histogram's 60 s is counted at 60 s, not lost.
                tally
                    .latency_us
                    .saturating_record(t0.elapsed().as_micros().max(1) as u64);
                tally.account(&cx, result);
            }
            tally
        });
    }
    let mut total = Tally::new();
    let tick = Duration::from_millis(50);
    let mut rss_warmup = None;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok(tally)) => total.merge(&tally),
                Some(Err(e)) => return Err(Error::msg(format!("a worker failed: {e}"))),
                None => break,
            },
            () = tokio::time::sleep(tick) => {}
        }
        let done = next.load(Ordering::Relaxed).min(config.requests);
        progress.done.store(done, Ordering::Relaxed);
        if rss_warmup.is_none() && done >= config.requests / 10 {
            rss_warmup = Some(rss_mb());
        }
    }
    progress.done.store(config.requests, Ordering::Relaxed);
    let wall = started.elapsed().as_secs_f64();
    let ms = |q: f64| total.latency_us.value_at_quantile(q) as f64 / 1_000.0;
    let savings = total.baseline.dollars() - total.spent.dollars();
    Ok(Summary {
        requests: config.requests,
        succeeded: total.succeeded,
        failed: total.failed,
        cache_hits: total.cache_hits,
        cache_misses: config.requests - total.cache_hits,
        cache_errors: store_errors.load(Ordering::Relaxed),
        timeouts: counters.cut.load(Ordering::Relaxed) + total.hard_timeouts,
        fallbacks: total.fallbacks,
        cost_usd: total.spent.dollars(),
        baseline_cost_usd: total.baseline.dollars(),
        savings_usd: savings,
        cache_savings_usd: total.saved.dollars(),
        latency_ms: Latency {
            p50: ms(0.50),
            p95: ms(0.95),
            p99: ms(0.99),
            max: total.latency_us.max() as f64 / 1_000.0,
        },
        wall_s: wall,
        requests_per_s: config.requests as f64 / wall.max(1e-9),
        route_share: PROFILES
            .iter()
            .zip(total.routes)
            .map(|(p, n)| (p.name.to_owned(), n))
            .collect(),
        cache_store,
        errors: total.errors,
        rss_warmup_mb: rss_warmup.flatten(),
        rss_end_mb: rss_mb(),
    })
}

impl Tally {
    /// Reads one finished request's ledger and result.
    fn account(&mut self, cx: &WorkflowContext, result: Result<Completion, Error>) {
        let totals = cx.ledger().totals();
        self.spent += totals.spent;
        self.saved += totals.saved;
        match result {
            Ok(completion) => {
                self.succeeded += 1;
                let entries = cx.ledger().entries();
                if entries.iter().any(|e| e.kind == AttemptKind::CacheHit) {
                    self.cache_hits += 1;
                } else if let Some(i) = PROFILES.iter().position(|p| p.name == completion.route) {
                    self.routes[i] += 1;
                    if entries.iter().any(|e| e.kind == AttemptKind::Fallback) {
                        self.fallbacks += 1;
                    }
                }
            }
            Err(e) => {
                self.failed += 1;
                *self.errors.entry(e.kind().as_str().to_owned()).or_default() += 1;
                if e.is_timeout() {
                    self.hard_timeouts += 1;
                }
            }
        }
    }
}
