//! The cache's instruments and label sets, created once at build time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use tta_core::bound::{BoundCounter, BoundGauge, BoundHistogram};
use tta_core::{BreakerState, OutcomeWindow, PrimitiveName, Telemetry, Usd};

use crate::semconv;

tta_core::label_enum! {
    /// A store operation and its result, for the duration histogram (its `op` and
    /// `result` labels: [`Op::labels`]).
    pub(crate) enum Op {
        /// A read that found an entry.
        GetHit => "get_hit",
        /// A read that found none.
        GetMiss => "get_miss",
        /// A failed read.
        GetError => "get_error",
        /// A stored entry.
        SetOk => "set_ok",
        /// A failed write.
        SetError => "set_error",
    }
}

impl Op {
    /// The `op` and `result` label values.
    fn labels(self) -> (&'static str, &'static str) {
        self.as_str().split_once('_').unwrap_or((self.as_str(), ""))
    }
}

pub(crate) struct CacheMetrics {
    hits: BoundCounter<u64>,
    misses: BoundCounter<u64>,
    coalesced: BoundCounter<u64>,
    savings: BoundCounter<f64>,
    hit_ratio: BoundGauge<f64>,
    /// Per store operation and result; timed stores only (none for the memory store).
    durations: Option<[BoundHistogram<f64>; Op::COUNT]>,
    errors: Counter<u64>,
    cache_store: [KeyValue; 2],
    /// The last 1,024 lookups: the window of `tta.cache.hit_ratio`.
    window: OutcomeWindow<16>,
    /// What [`CacheStats`] reads: hits, misses, coalesced, errors, saved picodollars.
    counts: [AtomicU64; 5],
    /// Remote stores only: the breaker's state.
    store_state: Option<BoundGauge<u64>>,
    /// Whether the store's own errors can happen (any store but the in-process one).
    store_can_fail: bool,
}

/// What a cache has seen since it was built: [`CachePrimitive::stats`](crate::CachePrimitive::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered without running the inner primitive (coalesced ones included).
    pub hits: u64,
    /// Lookups that ran the inner primitive, or shared a failed fill.
    pub misses: u64,
    /// Lookups that waited for another caller's fill of the same key.
    pub coalesced: u64,
    /// Store, key and codec errors (each one bypassed, never failed, a request).
    pub errors: u64,
    /// What the hits did not spend.
    pub saved: Usd,
    /// The share of hits among the last 1,024 lookups (the `tta.cache.hit_ratio` gauge).
    pub hit_ratio: f64,
}

const HITS: usize = 0;
const MISSES: usize = 1;
const COALESCED: usize = 2;
const ERRORS: usize = 3;
const SAVED_PICOS: usize = 4;

impl CacheMetrics {
    pub(crate) fn new(
        name: &PrimitiveName,
        store: &'static str,
        remote: bool,
        timed: bool,
        telemetry: &Telemetry,
    ) -> Self {
        let meter = telemetry.meter();
        let cache = || KeyValue::new(semconv::LABEL_CACHE, name.to_arc());
        let store_kv = || KeyValue::new(semconv::LABEL_STORE, store);
        let hits = meter
            .u64_counter(semconv::HITS)
            .with_description("Cache lookups served without running the inner primitive.")
            .build();
        let misses = meter
            .u64_counter(semconv::MISSES)
            .with_description("Cache lookups that ran the inner primitive.")
            .build();
        let errors = meter
            .u64_counter(semconv::ERRORS)
            .with_description(
                "Cache store, key and codec errors; the request bypasses to the inner primitive.",
            )
            .build();
        let duration = meter
            .f64_histogram(semconv::OPERATION_DURATION)
            .with_description("Duration of cache store operations.")
            .with_unit("s")
            .with_boundaries(tta_core::semconv::DURATION_BUCKETS_SECONDS.to_vec())
            .build();
        let hit_ratio = meter
            .f64_gauge(semconv::HIT_RATIO)
            .with_description("Share of hits among the last 1024 lookups of a cache (0 to 1).")
            .build();
        let savings = meter
            .f64_counter(semconv::COST_SAVINGS)
            .with_description("Dollars that cache hits did not spend (the cost recorded by the fills they reused).")
            .with_unit("USD")
            .build();
        let coalesced = meter
            .u64_counter(semconv::COALESCED)
            .with_description(
                "Cache lookups that waited for another caller's fill of the same key.",
            )
            .build();
        let cache_store = [cache(), store_kv()];
        let store_state = remote.then(|| {
            let gauge = meter
                .u64_gauge(semconv::STORE_STATE)
                .with_description("A remote cache store's breaker: 0 closed, 1 open, 2 half-open.")
                .build();
            BoundGauge::new(&gauge, &cache_store)
        });
        Self {
            store_can_fail: remote || timed,
            store_state,
            hits: BoundCounter::new(&hits, &cache_store),
            misses: BoundCounter::new(&misses, &cache_store),
            coalesced: BoundCounter::new(&coalesced, &[cache()]),
            savings: BoundCounter::new(&savings, &[cache()]),
            hit_ratio: BoundGauge::new(&hit_ratio, &[cache()]),
            durations: timed.then(|| {
                Op::ALL.map(|op| {
                    let (op, result) = op.labels();
                    BoundHistogram::new(
                        &duration,
                        &[
                            cache(),
                            store_kv(),
                            KeyValue::new(semconv::LABEL_OP, op),
                            KeyValue::new(semconv::LABEL_RESULT, result),
                        ],
                    )
                })
            }),
            errors,
            cache_store,
            window: OutcomeWindow::new(),
            counts: Default::default(),
        }
    }

    /// Starts every fixed series at zero, so `rate()` and the families work from the
    /// first scrape.
    pub(crate) fn initialize(self) -> Self {
        self.hits.add(0);
        self.misses.add(0);
        if let Some(state) = &self.store_state {
            state.record(0);
        }
        self.coalesced.add(0);
        self.savings.add(0.0);
        // Every error series that can happen, so the first burst shows in `rate()`: the
        // codec's and the key's, and the store's own for a store that can fail.
        let mut errors = vec![
            ("key", "encode"),
            ("get", "decode"),
            ("set", "encode"),
            ("set", "too_large"),
        ];
        if self.store_can_fail {
            for kind in crate::StoreErrorKind::ALL {
                errors.extend([("get", kind.as_str()), ("set", kind.as_str())]);
            }
        }
        for (op, error_type) in errors {
            self.add_error(op, error_type, 0);
        }
        self
    }

    fn count(&self, which: usize, n: u64) {
        self.counts[which].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let count = |i: usize| self.counts[i].load(Ordering::Relaxed);
        CacheStats {
            hits: count(HITS),
            misses: count(MISSES),
            coalesced: count(COALESCED),
            errors: count(ERRORS),
            saved: Usd::from_picos(count(SAVED_PICOS)),
            hit_ratio: self.window.share(),
        }
    }

    pub(crate) fn lookup(&self, hit: bool) {
        if hit {
            self.hits.add(1);
            self.count(HITS, 1);
        } else {
            self.misses.add(1);
            self.count(MISSES, 1);
        }
        self.hit_ratio.record(self.window.push(hit));
    }

    pub(crate) fn coalesced(&self) {
        self.coalesced.add(1);
        self.count(COALESCED, 1);
    }

    pub(crate) fn saved(&self, usd: Usd) {
        if usd > Usd::ZERO {
            self.savings.add(usd.dollars());
            self.count(SAVED_PICOS, usd.picos());
        }
    }

    /// Records a remote store's breaker state (after each of its operations).
    pub(crate) fn store_state(&self, state: Option<BreakerState>) {
        if let (Some(gauge), Some(state)) = (&self.store_state, state) {
            gauge.record(state.index() as u64);
        }
    }

    pub(crate) fn op(&self, op: Op, took: Duration) {
        if let Some(durations) = &self.durations {
            durations[op.index()].record(took.as_secs_f64());
        }
    }

    pub(crate) fn error(&self, op: &'static str, error_type: &'static str) {
        self.count(ERRORS, 1);
        self.add_error(op, error_type, 1);
    }

    fn add_error(&self, op: &'static str, error_type: &'static str, n: u64) {
        let [cache, store] = self.cache_store.clone();
        self.errors.add(
            n,
            &[
                cache,
                store,
                KeyValue::new(semconv::LABEL_OP, op),
                KeyValue::new(semconv::LABEL_ERROR_TYPE, error_type),
            ],
        );
    }
}

/// A lookup not yet counted (reading the store, waiting on another caller's fill or on
/// another process's lease): dropped uncounted (its request was cut while it waited), it
/// counts as a miss, so hits plus misses is every lookup.
pub(crate) struct PendingLookup<'a> {
    metrics: &'a CacheMetrics,
    counted: bool,
}

impl<'a> PendingLookup<'a> {
    pub(crate) fn new(metrics: &'a CacheMetrics) -> Self {
        Self {
            metrics,
            counted: false,
        }
    }

    /// The lookup was counted (or handed to what will count it).
    pub(crate) fn counted(&mut self) {
        self.counted = true;
    }
}

impl Drop for PendingLookup<'_> {
    fn drop(&mut self) {
        if !self.counted {
            self.metrics.lookup(false);
        }
    }
}
