//! The apples-to-apples peer of `overhead/stack_memory_hit`: the tower timeout and moka
//! cache stack instrumented by hand with the OpenTelemetry SDK, as a tower user would
//! write it, for the metric families tta records on a hit (`tta.primitive.executions`
//! and `tta.primitive.duration` per layer, `tta.timeout.outcomes`, `tta.cache.hits` and
//! `tta.cache.cost.savings.usd`). Instruments are built once; each record passes its
//! attributes, prepared once per layer and outcome (OpenTelemetry's documented API; no
//! bound instruments). Spans are not started, as in tta's stack with no span exporter.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use tower::{Layer, Service};
use tta_observability_integration::semconv;

/// The instruments every layer shares, built once from one meter.
#[derive(Clone, Debug)]
pub struct PeerInstruments {
    executions: Counter<u64>,
    duration: Histogram<f64>,
    timeout_outcomes: Counter<u64>,
    cache_hits: Counter<u64>,
    cache_savings: Counter<f64>,
}

impl PeerInstruments {
    /// The catalogue's instruments, from `meter` (the same names, units and buckets).
    pub fn new(meter: &Meter) -> Self {
        Self {
            executions: meter.u64_counter("tta.primitive.executions").build(),
            duration: meter
                .f64_histogram("tta.primitive.duration")
                .with_unit("s")
                .with_boundaries(semconv::DURATION_BUCKETS_SECONDS.to_vec())
                .build(),
            timeout_outcomes: meter.u64_counter("tta.timeout.outcomes").build(),
            cache_hits: meter.u64_counter("tta.cache.hits").build(),
            cache_savings: meter
                .f64_counter("tta.cache.cost.savings.usd")
                .with_unit("USD")
                .build(),
        }
    }
}

/// Records `tta.primitive.executions` and `tta.primitive.duration` around its service,
/// and `tta.timeout.outcomes` too when it is the timeout's.
#[derive(Clone, Debug)]
pub struct OtelLayer {
    shared: Arc<LayerMetrics>,
}

#[derive(Debug)]
struct LayerMetrics {
    instruments: PeerInstruments,
    ok: [KeyValue; 3],
    error: [KeyValue; 3],
    timeout: Option<([KeyValue; 2], [KeyValue; 2])>,
}

impl OtelLayer {
    /// A layer for the primitive `name` of `kind`.
    pub fn new(instruments: &PeerInstruments, kind: &'static str, name: &'static str) -> Self {
        let attrs = |outcome: &'static str| {
            [
                KeyValue::new("primitive", name),
                KeyValue::new("kind", kind),
                KeyValue::new("outcome", outcome),
            ]
        };
        let timeout = (kind == "timeout").then(|| {
            let attrs = |outcome: &'static str| {
                [
                    KeyValue::new("primitive", name),
                    KeyValue::new("outcome", outcome),
                ]
            };
            (attrs("ok"), attrs("timeout"))
        });
        Self {
            shared: Arc::new(LayerMetrics {
                instruments: instruments.clone(),
                ok: attrs("ok"),
                error: attrs("error"),
                timeout,
            }),
        }
    }
}

impl<S> Layer<S> for OtelLayer {
    type Service = Otel<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Otel {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service made by [`OtelLayer`].
#[derive(Clone, Debug)]
pub struct Otel<S> {
    inner: S,
    shared: Arc<LayerMetrics>,
}

impl<S, R> Service<R> for Otel<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = OtelFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        OtelFuture {
            inner: self.inner.call(request),
            started: Instant::now(),
            shared: Arc::clone(&self.shared),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Otel`]: records when its inner future is ready.
    #[derive(Debug)]
    pub struct OtelFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        shared: Arc<LayerMetrics>,
    }
}

impl<F, T, E> Future for OtelFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let m = &**this.shared;
        let attrs = if result.is_ok() { &m.ok } else { &m.error };
        m.instruments.executions.add(1, attrs);
        m.instruments
            .duration
            .record(this.started.elapsed().as_secs_f64(), attrs);
        if let Some((ok, timeout)) = &m.timeout {
            let outcome = if result.is_ok() { ok } else { timeout };
            m.instruments.timeout_outcomes.add(1, outcome);
        }
        Poll::Ready(result)
    }
}

/// What the cache layer records on a hit: `tta.cache.hits{cache, store}` and the
/// entry's saved cost.
#[derive(Clone, Debug)]
pub struct HitMetrics {
    instruments: PeerInstruments,
    hit: Arc<[KeyValue; 2]>,
    cache: Arc<[KeyValue; 1]>,
    saved_usd: f64,
}

impl HitMetrics {
    /// For the cache `name` in memory, each hit saving `saved_usd`.
    pub fn new(instruments: &PeerInstruments, name: &'static str, saved_usd: f64) -> Self {
        Self {
            instruments: instruments.clone(),
            hit: Arc::new([
                KeyValue::new("cache", name),
                KeyValue::new("store", "memory"),
            ]),
            cache: Arc::new([KeyValue::new("cache", name)]),
            saved_usd,
        }
    }

    pub(crate) fn record_hit(&self) {
        self.instruments.cache_hits.add(1, &*self.hit);
        self.instruments
            .cache_savings
            .add(self.saved_usd, &*self.cache);
    }
}
