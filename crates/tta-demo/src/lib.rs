//! The tta demo workload: a seeded, simulated LLM service run through
//! timeout around cache around router over four simulated providers, each a loopback
//! HTTP server ([`providers`]) called by the real `tta-llm` clients, calls and streams.
//!
//! The binary (`cargo run --release -p tta-demo`) parses flags, installs telemetry, calls
//! [`run`] and prints the [`Summary`]; tests call [`run`] directly.

pub mod providers;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tta_observability_integration::cache::{
    CachePrimitive, CacheStats, CacheStore, MemoryStore, RedisStore,
};
use tta_observability_integration::limit::{LimitExceeded, LimitLayer, Refusal};
use tta_observability_integration::llm::{
    Anthropic, ChatChunk, ChatRequest, ChatResponse, OpenAiCompatible,
};
use tta_observability_integration::router::{Route, RouterPrimitive, Strategy};
use tta_observability_integration::timeout::{TimeoutPrimitive, TimeoutStats};
use tta_observability_integration::{
    AttemptKind, BoxPrimitive, BoxStreamPrimitive, Error, ErrorKind, Layer, StreamPrimitive,
    WorkflowContext, WorkflowPrimitive,
};

use providers::{PROFILES, Protocol, Providers};
use workload::{Catalogue, Request};

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
    /// The share of requests streamed (0 to 1).
    pub stream_share: f64,
    /// Cap the run's spend at this many dollars (a `tta-limit` budget around the cache).
    pub budget_usd: Option<f64>,
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
            stream_share: 0.5,
            budget_usd: None,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Requests run.
    pub requests: u64,
    /// Requests that returned an answer.
    pub succeeded: u64,
    /// Requests that returned an error: every route failed, the hard limit, a filtered
    /// answer (billed, never retried), a stream cut or stalled after its first chunk.
    pub failed: u64,
    /// Requests answered from the cache (a stored entry, or a coalesced fill received
    /// whole): the cache's hits counter.
    pub cache_hits: u64,
    /// The other lookups: the cache's misses counter.
    pub cache_misses: u64,
    /// Cache errors of every kind (store, key, codec, too large); each bypassed, none
    /// failed a request: the cache's errors counter.
    pub cache_errors: u64,
    /// Router attempts that reached their deadline, plus requests cut by the request
    /// timeout (its hard limit, or a stream's idle limit).
    pub timeouts: u64,
    /// Router attempts started after an attempt of the same request failed.
    pub fallbacks: u64,
    /// Dollars spent: every billed router attempt, failures included (the router's cost
    /// counter; equal to the sum of the requests' ledgers).
    pub cost_usd: f64,
    /// `cost_usd + savings_usd`: what the same attempts would have cost on the frontier
    /// route (the router's savings baseline), and the cache hits at the cost of the fills
    /// they reused.
    pub baseline_cost_usd: f64,
    /// The router's savings (the frontier route's price for each answered attempt's
    /// usage, minus what it cost) plus the cache's (each hit: its fill's cost).
    pub savings_usd: f64,
    /// Dollars the cache hits saved (part of `savings_usd`).
    pub cache_savings_usd: f64,
    /// Dollars the routing saved (part of `savings_usd`).
    pub router_savings_usd: f64,
    /// Request latency (a stream's: to its end).
    pub latency_ms: Latency,
    /// Streams' time to their first chunk (none when no stream ran).
    pub ttft_ms: Option<Latency>,
    /// Requests streamed.
    pub streams: u64,
    /// Streams that failed after their first chunk (cut, stalled past the idle limit).
    pub streams_interrupted: u64,
    /// The budget of the run, when one was set.
    pub budget_usd: Option<f64>,
    /// Requests the budget refused: the window was spent, or a call could cost more than
    /// the whole budget. (A refusal because calls in flight held the rest is retried after
    /// its retry-after, as a client honouring `Retry-After` would.)
    pub limited: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Answers per route, in the order of [`providers::PROFILES`].
    pub route_share: Vec<(String, u64)>,
    /// `memory`, or `redis` with its state at start.
    pub cache_store: String,
    /// Failed requests by error kind (`all_routes_failed`, `timeout`, ...), an inner
    /// error by its class (`content_filter`, `unavailable`: a stream cut mid-answer).
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

/// How long a stream may go without a chunk: the request timeout's and the router's.
fn idle_limit(scale: f64) -> Duration {
    scaled(
        Duration::from_millis(1_500),
        scale,
        Duration::from_millis(300),
    )
}

/// A duration scaled by the latency scale, never below `floor`.
fn scaled(base: Duration, scale: f64, floor: Duration) -> Duration {
    base.mul_f64(scale).max(floor)
}

/// The stack, calling and streaming (one stack: one cache, one router's health), and
/// the totals of its router, cache and timeout, which the summary reports.
#[derive(Clone)]
struct Stack {
    call: BoxPrimitive<ChatRequest, ChatResponse>,
    stream: BoxStreamPrimitive<ChatRequest, ChatChunk>,
    router: RouterPrimitive<ChatRequest, ChatResponse>,
    cache_stats: Arc<dyn Fn() -> CacheStats + Send + Sync>,
    timeout_stats: Arc<dyn Fn() -> TimeoutStats + Send + Sync>,
}

/// The budget's window: longer than any run, so the cap is the run's.
const BUDGET_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest wait before trying a request again that the budget refused because
/// calls in flight held the rest (the limit's hint is at most 250 ms).
const HELD_RETRY_MAX: Duration = Duration::from_millis(250);

/// The client of the `i`-th simulated provider, priced and sized as its profile says.
fn client_route(
    providers: &Providers,
    i: usize,
) -> Result<Route<ChatRequest, ChatResponse>, Error> {
    let p = &PROFILES[i];
    let url = providers.base_url(i);
    // The two clients' builders have the same settings, on different types.
    macro_rules! route {
        ($client:ident) => {
            Route::client(
                p.name,
                $client::builder(url)
                    .name(p.name)
                    .provider(p.provider)
                    .model(p.model)
                    .price(p.price())
                    .context_window(p.context_window)
                    .build()?,
            )
        };
    }
    Ok(match p.protocol {
        Protocol::OpenAi => route!(OpenAiCompatible),
        Protocol::Anthropic => route!(Anthropic),
    })
}

/// Builds timeout around cache around router over the simulated providers on `store`.
fn build_stack<S: CacheStore>(
    config: &DemoConfig,
    store: S,
    providers: &Providers,
) -> Result<Stack, Error> {
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
        // The request's idle limit: the router reaches it first, so a stalled route
        // counts as failed.
        .idle_timeout(idle_limit(scale))
        .min_budget(Duration::from_millis(1))
        .failure_threshold(5)
        .cooldown(scaled(
            Duration::from_secs(2),
            scale,
            Duration::from_millis(100),
        ))
        .usage_reported()
        // Savings against the route the service would call without a router (the
        // self-hosted one's flat price would otherwise be the baseline of short answers).
        .savings_baseline(PROFILES[0].name)
        .seed(config.seed);
    for i in 0..PROFILES.len() {
        router = router.route(client_route(providers, i)?);
    }
    let router = router.build()?;
    // The budget sits between the cache and the router: a hit costs nothing, so it
    // needs no reservation.
    let (entry, cache_stats) = match config.budget_usd {
        None => cached(config, store, router.clone())?,
        Some(usd) => {
            let budget = LimitLayer::builder()
                .name("budget")
                .usd_per(usd, BUDGET_WINDOW)
                .cost_bound(router.cost_bound())
                .build()
                .map_err(Error::invalid_config)?;
            cached(config, store, budget.layer(router.clone()))?
        }
    };
    Ok(Stack {
        call: entry.0,
        stream: entry.1,
        router,
        cache_stats,
        timeout_stats: entry.2,
    })
}

/// The cache's counters.
type CacheStatsFn = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// The request timeout around the cache around `inner` (the router, or the budget
/// around it).
fn cached<S, P>(config: &DemoConfig, store: S, inner: P) -> Result<(Entry, CacheStatsFn), Error>
where
    S: CacheStore,
    P: WorkflowPrimitive<ChatRequest, Output = ChatResponse>
        + StreamPrimitive<ChatRequest, Chunk = ChatChunk>
        + 'static,
{
    let cache = CachePrimitive::builder(inner)
        .name("answers")
        .namespace("demo")
        .ttl(Duration::from_secs(600))
        .max_value_bytes(4_096)
        .store(store)
        .build()?;
    let cache = Arc::new(cache);
    let stats: CacheStatsFn = {
        let cache = Arc::clone(&cache);
        Arc::new(move || cache.stats())
    };
    Ok((with_timeout(config, cache)?, stats))
}

/// The stack's entry points (calling and streaming) and the timeout's counters.
type Entry = (
    BoxPrimitive<ChatRequest, ChatResponse>,
    BoxStreamPrimitive<ChatRequest, ChatChunk>,
    Arc<dyn Fn() -> TimeoutStats + Send + Sync>,
);

/// The request timeout around `inner`.
fn with_timeout<P>(config: &DemoConfig, inner: P) -> Result<Entry, Error>
where
    P: WorkflowPrimitive<ChatRequest, Output = ChatResponse>
        + StreamPrimitive<ChatRequest, Chunk = ChatChunk>
        + 'static,
{
    let scale = config.latency_scale;
    let stack = TimeoutPrimitive::builder(inner)
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
        // A stream that stops sending for this long is cut (a stalled provider).
        .idle(idle_limit(scale))
        .build()?;
    let stack = Arc::new(stack);
    Ok((
        BoxPrimitive::new(Arc::clone(&stack)),
        BoxStreamPrimitive::new(Arc::clone(&stack)),
        Arc::new(move || stack.stats()),
    ))
}

/// What one worker saw.
struct Tally {
    latency_us: Histogram<u64>,
    ttft_us: Histogram<u64>,
    succeeded: u64,
    failed: u64,
    streams: u64,
    streams_interrupted: u64,
    routes: [u64; PROFILES.len()],
    errors: std::collections::BTreeMap<String, u64>,
}

/// 1 µs to 60 s, 2 significant figures (1%): about 50 KiB, whatever the run length.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}

impl Tally {
    fn new() -> Self {
        Self {
            latency_us: histogram(),
            ttft_us: histogram(),
            succeeded: 0,
            failed: 0,
            streams: 0,
            streams_interrupted: 0,
            routes: [0; PROFILES.len()],
            errors: std::collections::BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &Tally) {
        // Every tally has the same bounds, so adding one to another cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.ttft_us.add(&other.ttft_us);
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.streams += other.streams;
        self.streams_interrupted += other.streams_interrupted;
        for (a, b) in self.routes.iter_mut().zip(other.routes) {
            *a += b;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    /// Runs one request through the stack, calling or streaming, and counts it.
    async fn run(&mut self, stack: &Stack, request: &Request) {
        // Only a ledger bound is set: nothing to reject.
        let cx = WorkflowContext::builder()
            .ledger_capacity(8)
            .build()
            .unwrap_or_default();
        // Timed as the request timeout times itself (the request built before, the
        // answer read after), so its histogram and these percentiles measure one thing.
        let (result, took) = loop {
            let chat = request.chat();
            let t0 = Instant::now();
            let (result, took) = if request.stream {
                self.stream(stack, chat, &cx, t0).await
            } else {
                let answer = stack.call.execute(chat, &cx).await;
                (answer.map(|answer| answer.model), t0.elapsed())
            };
            // The budget's rest is held by calls in flight: try again when one settles.
            if let Err(e) = &result
                && let Some(refused) = e.downcast_ref::<LimitExceeded>()
                && matches!(refused.refusal(), Some(Refusal::Held { .. }))
            {
                let after = e.retry_after().unwrap_or(HELD_RETRY_MAX);
                tokio::time::sleep(after.min(HELD_RETRY_MAX)).await;
                continue;
            }
            break (result, took);
        };
        if request.stream {
            self.streams += 1;
        }
        // A request longer than the histogram's 60 s is counted at 60 s, not lost.
        self.latency_us
            .saturating_record(took.as_micros().max(1) as u64);
        self.account(&cx, result);
    }

    /// Streams one request to its end: the model that answered, or the stream's error,
    /// and the time to the end.
    async fn stream(
        &mut self,
        stack: &Stack,
        chat: ChatRequest,
        cx: &WorkflowContext,
        t0: Instant,
    ) -> (Result<String, Error>, Duration) {
        let mut body = match stack.stream.stream(chat, cx).await {
            Ok(body) => body,
            Err(e) => return (Err(e), t0.elapsed()),
        };
        self.ttft_us
            .saturating_record(t0.elapsed().as_micros().max(1) as u64);
        let mut model = String::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) if model.is_empty() => model = chunk.model,
                Ok(_) => {}
                Err(e) => {
                    self.streams_interrupted += 1;
                    return (Err(e), t0.elapsed());
                }
            }
        }
        (Ok(model), t0.elapsed())
    }

    /// Reads one finished request's ledger and result (the model that answered).
    fn account(&mut self, cx: &WorkflowContext, result: Result<String, Error>) {
        match result {
            Ok(model) => {
                self.succeeded += 1;
                let from_cache = cx
                    .ledger()
                    .entries()
                    .iter()
                    .any(|e| e.kind == AttemptKind::CacheHit);
                if let Some(i) = PROFILES.iter().position(|p| p.model == model)
                    && !from_cache
                {
                    self.routes[i] += 1;
                }
            }
            Err(e) => {
                self.failed += 1;
                // An inner error by its class (`content_filter`, `unavailable`...), others
                // by their kind (`all_routes_failed`, `timeout`...).
                let kind = match e.kind() {
                    ErrorKind::Inner => e.class().as_str(),
                    kind => kind.as_str(),
                };
                *self.errors.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }
}

/// Progress shared with the binary's progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests finished so far.
    pub done: AtomicU64,
}

/// Runs the workload: starts the simulated providers on free loopback ports and runs
/// the requests through the stack. Telemetry must already be installed (the primitives
/// take the global providers when they are built).
///
/// # Errors
///
/// When the providers cannot be started (no loopback port), or for an invalid
/// configuration of the stack (a bug in the demo, reported, never a panic). Failed
/// requests are counted in the summary, not returned.
pub async fn run(config: &DemoConfig, progress: &Progress) -> Result<Summary, Error> {
    let providers = Providers::start_anywhere(config.seed, config.latency_scale)
        .await
        .map_err(|e| Error::msg(format!("the simulated providers cannot start: {e}")))?;
    let (stack, cache_store) = match &config.redis {
        None => (
            build_stack(config, MemoryStore::new(), &providers)?,
            "memory".to_owned(),
        ),
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
            (build_stack(config, store, &providers)?, state)
        }
    };
    let catalogue = Arc::new(Catalogue::new(
        config.seed,
        config.distinct_prompts,
        config.stream_share,
    ));
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
                tally.run(&stack, &request).await;
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
    let percentiles = |h: &Histogram<u64>| {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
        Latency {
            p50: ms(0.50),
            p95: ms(0.95),
            p99: ms(0.99),
            max: h.max() as f64 / 1_000.0,
        }
    };
    // The counters the metrics are recorded with (docs/metrics.md defines each key by
    // its PromQL expression).
    let (router, cache, timeout) = (
        stack.router.totals(),
        (stack.cache_stats)(),
        (stack.timeout_stats)(),
    );
    let savings = router.savings + cache.saved;
    Ok(Summary {
        requests: config.requests,
        succeeded: total.succeeded,
        failed: total.failed,
        cache_hits: cache.hits,
        cache_misses: cache.misses,
        cache_errors: cache.errors,
        timeouts: router.timeouts + timeout.timeouts,
        fallbacks: router.fallbacks,
        cost_usd: router.cost.dollars(),
        baseline_cost_usd: (router.cost + savings).dollars(),
        savings_usd: savings.dollars(),
        cache_savings_usd: cache.saved.dollars(),
        router_savings_usd: router.savings.dollars(),
        latency_ms: percentiles(&total.latency_us),
        ttft_ms: (total.streams > 0).then(|| percentiles(&total.ttft_us)),
        streams: total.streams,
        streams_interrupted: total.streams_interrupted,
        budget_usd: config.budget_usd,
        limited: total
            .errors
            .get(ErrorKind::Limited.as_str())
            .copied()
            .unwrap_or(0),
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
