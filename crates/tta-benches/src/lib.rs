//! Criterion benchmarks for tta (`cargo bench -p tta-benches`, or `cargo xtask bench`
//! for the table of ratios against their targets).
//!
//! Benchmark ids (DESIGN.md, "Benchmarks"):
//! - `overhead/bare_call`: an async closure returning its input (the floor).
//! - `overhead/instrumented_call`: the same closure as an instrumented primitive with a
//!   real SDK meter provider and Prometheus reader installed.
//! - `overhead/stack_memory_hit`: timeout around cache (in memory, hit) around router (2 routes),
//!   with the SDK installed.
//! - `overhead/tower_moka_hit`: the peer: a tower timeout layer and a moka cache layer
//!   around a `service_fn`, no telemetry ([`MokaCacheLayer`]).
//! - `overhead/tower_moka_otel_hit`: the same tower stack instrumented by hand with the
//!   OpenTelemetry SDK for the metric families tta records on a hit ([`otel_peer`]).
//! - `redis/raw_fred_get` and `redis/cache_hit`: one GET by fred alone vs a Redis cache
//!   hit through `CachePrimitive`, against a local `redis-server` the bench starts.
//! - `timeout/tokio` and `timeout/tta`; `router/decide/<strategy>` over 10 routes.
//! - `stream/bare_iter` and `stream/stack_miss`: 256 in-memory chunks from a bare stream,
//!   and through a timeout around a cache around a router; `stream_first_chunk/hit`.
//! - `llm/{reqwest_raw, openai_complete, async_openai_complete}`, and
//!   `llm/{reqwest_raw, openai, async_openai}_{stream, ttft}`: the OpenAI-compatible
//!   client and async-openai against a hand-written reqwest call of the same request,
//!   over loopback HTTP (whole streams, and the time to their first chunk).

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

pub mod otel_peer;

/// The stack of `overhead/stack_memory_hit`: a timeout (1 s) around a memory cache around
/// a router over two `from_fn` routes that answer `"{route}: {prompt}"`.
///
/// # Panics
///
/// Never with these settings (bench setup).
pub fn hit_stack() -> impl tta_observability_integration::WorkflowPrimitive<String, Output = String>
{
    use std::time::Duration;
    use tta_observability_integration::cache::CachePrimitive;
    use tta_observability_integration::router::{Price, Route, RouterPrimitive};
    use tta_observability_integration::timeout::TimeoutPrimitive;
    use tta_observability_integration::{Error, from_fn};

    let route = |name: &'static str| {
        from_fn(move |q: String, _| async move { Ok::<_, Error>(format!("{name}: {q}")) })
    };
    let router = RouterPrimitive::builder()
        .route(Route::new("a", route("a")).price(Price::per_call(0.002)))
        .route(Route::new("b", route("b")).price(Price::per_call(0.001)))
        .build()
        .expect("a router");
    let cache = CachePrimitive::builder(router).build().expect("a cache");
    TimeoutPrimitive::builder(cache)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("a timeout")
}

/// `router/call` and `router/direct`: a router over two `from_fn` routes (`a`, then
/// `bb`, each adding its name's length), and route `a` alone.
///
/// # Panics
///
/// Never with these settings (bench setup).
pub fn two_routes() -> (
    tta_observability_integration::router::RouterPrimitive<u64, u64>,
    impl tta_observability_integration::WorkflowPrimitive<u64, Output = u64>,
) {
    use tta_observability_integration::router::{Price, Route, RouterPrimitive};
    use tta_observability_integration::{Error, from_fn};

    let route = |name: &'static str| {
        from_fn(move |x: u64, _| async move { Ok::<_, Error>(x + name.len() as u64) })
    };
    let router = RouterPrimitive::builder()
        .route(Route::new("a", route("a")).price(Price::per_call(0.002)))
        .route(Route::new("b", route("bb")).price(Price::per_call(0.001)))
        .build()
        .expect("a router");
    (router, route("a"))
}

use tta_observability_integration::apm::{self, ApmConfig, ApmGuard};

/// A one-worker tokio runtime with telemetry installed as an application would
/// (`tta_apm::init`: the SDK meter provider with a Prometheus reader, on a free port).
/// Keep the guard for the bench's duration.
pub fn runtime_with_telemetry() -> (tokio::runtime::Runtime, ApmGuard) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let guard = rt.block_on(async { install_telemetry() });
    (rt, guard)
}

/// Installs telemetry as an application would (`tta_apm::init`, `/metrics` on a free
/// port), inside a tokio runtime.
///
/// # Panics
///
/// Outside a runtime, or when telemetry cannot install (bench setup).
pub fn install_telemetry() -> ApmGuard {
    apm::init(
        ApmConfig::builder("bench")
            .metrics_addr("127.0.0.1:0")
            .build()
            .expect("a valid config"),
    )
    .expect("telemetry installs")
}

/// The peer baseline's cache: a tower layer answering from a moka cache, filling it on a
/// miss. (tower has no cache layer of its own.)
#[derive(Clone)]
pub struct MokaCacheLayer<K, V> {
    cache: moka::sync::Cache<K, V>,
    metrics: Option<otel_peer::HitMetrics>,
}

impl<K, V> MokaCacheLayer<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A layer over a cache of `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: moka::sync::Cache::new(capacity),
            metrics: None,
        }
    }

    /// Records each hit into `metrics` (the instrumented peer, [`otel_peer`]).
    pub fn with_metrics(mut self, metrics: otel_peer::HitMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S, K, V> Layer<S> for MokaCacheLayer<K, V>
where
    K: Clone,
    V: Clone,
{
    type Service = MokaCache<S, K, V>;

    fn layer(&self, inner: S) -> Self::Service {
        MokaCache {
            inner,
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for MokaCacheLayer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaCacheLayer").finish_non_exhaustive()
    }
}

impl<S, K, V> std::fmt::Debug for MokaCache<S, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaCache").finish_non_exhaustive()
    }
}

/// The service made by [`MokaCacheLayer`].
#[derive(Clone)]
pub struct MokaCache<S, K, V> {
    inner: S,
    cache: moka::sync::Cache<K, V>,
    metrics: Option<otel_peer::HitMetrics>,
}

impl<S, K, V> Service<K> for MokaCache<S, K, V>
where
    S: Service<K, Response = V> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Response = V;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<V, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, key: K) -> Self::Future {
        if let Some(hit) = self.cache.get(&key) {
            if let Some(metrics) = &self.metrics {
                metrics.record_hit();
            }
            return Box::pin(std::future::ready(Ok(hit)));
        }
        let cache = self.cache.clone();
        let fut = self.inner.call(key.clone());
        Box::pin(async move {
            let value = fut.await?;
            cache.insert(key, value.clone());
            Ok(value)
        })
    }
}
