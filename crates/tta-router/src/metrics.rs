//! The router's instruments and per-route label sets, created once at build time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use tta_core::bound::{BoundCounter, BoundGauge, BoundHistogram};
use tta_core::{BreakerState, ErrorClass, Label, PrimitiveName, Telemetry, Usd};

use crate::semconv::{self, gen_ai};

tta_core::label_enum! {
    /// Why a route was tried: the `reason` label of `tta.router.decisions`.
    pub(crate) enum Reason {
        /// The strategy's choice.
        Strategy => "strategy",
        /// After an earlier attempt of the same request failed.
        Fallback => "fallback",
        /// The single probe of a route whose cooldown ended.
        Probe => "probe",
        /// The only route that could be tried.
        OnlyCandidate => "only_candidate",
        /// Every route was cooling: the one whose cooldown ends first, tried anyway.
        Panic => "panic",
    }
}

tta_core::label_enum! {
    /// How an attempt ended, for `tta.router.route.duration`.
    pub(crate) enum AttemptOutcome {
        /// A value.
        Ok => "ok",
        /// An error other than a timeout.
        Error => "error",
        /// A timeout.
        Timeout => "timeout",
    }
}

/// One route's instruments, bound to its labels.
struct RouteRecorders {
    decisions: [BoundCounter<u64>; Reason::COUNT],
    duration: [BoundHistogram<f64>; AttemptOutcome::COUNT],
    /// By error class, in [`Label::index`] order.
    errors: Vec<BoundCounter<u64>>,
    /// `gen_ai.client.operation.duration` of failed calls, by error class.
    gen_ai_failed: Vec<BoundHistogram<f64>>,
    cost: BoundCounter<f64>,
    gen_ai_ok: BoundHistogram<f64>,
    tokens: [BoundHistogram<u64>; 2],
    state: BoundGauge<u64>,
    ttft: BoundHistogram<f64>,
    per_chunk: BoundHistogram<f64>,
    interruptions: BoundCounter<u64>,
}

pub(crate) struct RouterMetrics {
    savings: BoundCounter<f64>,
    routes: Vec<RouteRecorders>,
    /// What [`RouterTotals`] reads, counted with the metrics.
    totals: Totals,
}

/// The router's totals since it was built, in the units of its metrics.
#[derive(Default)]
/// One atomic add per record, on counters every request of the router shares: the
/// attempts are the decisions' sum, and a zero cost or saving adds nothing.
struct Totals {
    /// Per [`Reason`].
    decisions: [AtomicU64; Reason::COUNT],
    /// Per [`AttemptOutcome`].
    outcomes: [AtomicU64; AttemptOutcome::COUNT],
    cost_picos: AtomicU64,
    savings_picos: AtomicU64,
    interrupted: AtomicU64,
}

/// What a router has done since it was built: [`RouterPrimitive::totals`](crate::RouterPrimitive::totals).
/// Each figure is counted where its metric is recorded, so it equals the metric's
/// total (in exact pico-dollars for the USD ones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterTotals {
    /// Attempts started (`sum(tta_router_decisions_total)`).
    pub attempts: u64,
    /// Attempts started after an earlier attempt of the same request failed
    /// (`tta_router_decisions_total{reason="fallback"}`).
    pub fallbacks: u64,
    /// Attempts that ended with a value (`tta_router_route_duration_seconds_count{outcome="ok"}`).
    pub ok: u64,
    /// Attempts that failed, timeouts aside (`{outcome="error"}`).
    pub errors: u64,
    /// Attempts that reached their deadline (`{outcome="timeout"}`).
    pub timeouts: u64,
    /// Streamed attempts that failed after their first chunk
    /// (`tta_router_stream_interruptions_total`).
    pub interrupted: u64,
    /// Spent on attempts, billed failures included (`tta_router_cost_usd_total`).
    pub cost: Usd,
    /// The savings baseline's price (the dearest route, or the one configured) for each
    /// answered attempt's usage, minus what it
    /// cost (`tta_router_cost_savings_usd_total`).
    pub savings: Usd,
}

/// A route's identity for telemetry.
pub(crate) struct RouteIdentity<'a> {
    pub(crate) name: &'a PrimitiveName,
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
}

impl RouterMetrics {
    pub(crate) fn new(
        router: &PrimitiveName,
        routes: &[RouteIdentity<'_>],
        telemetry: &Telemetry,
    ) -> Self {
        let meter = telemetry.meter();
        let router_kv = || KeyValue::new(semconv::LABEL_ROUTER, router.to_arc());
        let decisions = meter
            .u64_counter(semconv::DECISIONS)
            .with_description("Route attempts started by routers, by reason (strategy, fallback, probe, only_candidate).")
            .build();
        let route_duration = meter
            .f64_histogram(semconv::ROUTE_DURATION)
            .with_description("Duration of route attempts, by outcome.")
            .with_unit("s")
            .with_boundaries(tta_core::semconv::DURATION_BUCKETS_SECONDS.to_vec())
            .build();
        let errors = meter
            .u64_counter(semconv::ERRORS)
            .with_description("Failed route attempts, by error class.")
            .build();
        let state = meter
            .u64_gauge(semconv::ROUTE_STATE)
            .with_description("A route's breaker: 0 closed, 1 open, 2 half-open.")
            .build();
        let cost = meter
            .f64_counter(semconv::COST)
            .with_description(
                "Dollars spent on route attempts (token usage times the route's price).",
            )
            .with_unit("USD")
            .build();
        let savings = meter
            .f64_counter(semconv::COST_SAVINGS)
            .with_description(
                "The savings baseline route's price for the same token usage, minus what was paid.",
            )
            .with_unit("USD")
            .build();
        let gen_ai_duration = meter
            .f64_histogram(gen_ai::CLIENT_OPERATION_DURATION)
            .with_description("GenAI operation duration.")
            .with_unit("s")
            .with_boundaries(gen_ai::DURATION_BUCKETS.to_vec())
            .build();
        let gen_ai_tokens = meter
            .u64_histogram(gen_ai::CLIENT_TOKEN_USAGE)
            .with_description("Measures number of input and output tokens used.")
            .with_unit("{token}")
            .with_boundaries(gen_ai::TOKEN_BUCKETS.to_vec())
            .build();
        let ttft = meter
            .f64_histogram(gen_ai::CLIENT_TIME_TO_FIRST_CHUNK)
            .with_description("Time to the first chunk of a streamed GenAI operation.")
            .with_unit("s")
            .with_boundaries(gen_ai::DURATION_BUCKETS.to_vec())
            .build();
        let per_chunk = meter
            .f64_histogram(gen_ai::CLIENT_TIME_PER_OUTPUT_CHUNK)
            .with_description(
                "Time per output chunk after the first, of a streamed GenAI operation.",
            )
            .with_unit("s")
            .with_boundaries(gen_ai::CHUNK_BUCKETS.to_vec())
            .build();
        let interruptions = meter
            .u64_counter(semconv::STREAM_INTERRUPTIONS)
            .with_description(
                "Streamed attempts that failed after their first chunk (no fallback after it).",
            )
            .build();
        let routes = routes
            .iter()
            .map(|r| {
                let route = || KeyValue::new(semconv::LABEL_ROUTE, r.name.to_arc());
                let gen_ai = [
                    KeyValue::new(gen_ai::OPERATION_NAME, gen_ai::OPERATION_CHAT),
                    KeyValue::new(gen_ai::PROVIDER_NAME, r.provider.to_owned()),
                    KeyValue::new(gen_ai::REQUEST_MODEL, r.model.to_owned()),
                ];
                let router_route = [router_kv(), route()];
                RouteRecorders {
                    decisions: Reason::ALL.map(|reason| {
                        BoundCounter::new(
                            &decisions,
                            &[
                                router_kv(),
                                route(),
                                KeyValue::new(semconv::LABEL_REASON, reason.as_str()),
                            ],
                        )
                    }),
                    duration: AttemptOutcome::ALL.map(|o| {
                        BoundHistogram::new(
                            &route_duration,
                            &[
                                router_kv(),
                                route(),
                                KeyValue::new(semconv::LABEL_OUTCOME, o.as_str()),
                            ],
                        )
                    }),
                    errors: ErrorClass::ALL
                        .iter()
                        .map(|class| {
                            let [router, route] = router_route.clone();
                            BoundCounter::new(
                                &errors,
                                &[
                                    router,
                                    route,
                                    KeyValue::new(semconv::LABEL_ERROR_CLASS, class.as_str()),
                                ],
                            )
                        })
                        .collect(),
                    gen_ai_failed: ErrorClass::ALL
                        .iter()
                        .map(|class| {
                            let [a, b, c] = gen_ai.clone();
                            BoundHistogram::new(
                                &gen_ai_duration,
                                &[a, b, c, KeyValue::new(semconv::ERROR_TYPE, class.as_str())],
                            )
                        })
                        .collect(),
                    state: BoundGauge::new(&state, &router_route),
                    ttft: BoundHistogram::new(&ttft, &gen_ai),
                    per_chunk: BoundHistogram::new(&per_chunk, &gen_ai),
                    cost: BoundCounter::new(&cost, &router_route),
                    interruptions: BoundCounter::new(&interruptions, &router_route),
                    gen_ai_ok: BoundHistogram::new(&gen_ai_duration, &gen_ai),
                    tokens: ["input", "output"].map(|t| {
                        let [a, b, c] = gen_ai.clone();
                        BoundHistogram::new(
                            &gen_ai_tokens,
                            &[a, b, c, KeyValue::new(gen_ai::TOKEN_TYPE, t)],
                        )
                    }),
                }
            })
            .collect();
        Self {
            savings: BoundCounter::new(&savings, &[router_kv()]),
            routes,
            totals: Totals::default(),
        }
    }

    pub(crate) fn totals(&self) -> RouterTotals {
        let t = &self.totals;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RouterTotals {
            attempts: t.decisions.iter().map(load).sum(),
            fallbacks: load(&t.decisions[Reason::Fallback.index()]),
            ok: load(&t.outcomes[AttemptOutcome::Ok.index()]),
            errors: load(&t.outcomes[AttemptOutcome::Error.index()]),
            timeouts: load(&t.outcomes[AttemptOutcome::Timeout.index()]),
            interrupted: load(&t.interrupted),
            cost: Usd::from_picos(load(&t.cost_picos)),
            savings: Usd::from_picos(load(&t.savings_picos)),
        }
    }

    /// Starts the series whose labels are fixed at build time at zero (decisions, errors
    /// by class, cost per route, savings) and the state gauges at closed, so the families
    /// exist and `rate()` sees the first burst.
    pub(crate) fn initialize(self) -> Self {
        for route in &self.routes {
            route.decisions.iter().for_each(|c| c.add(0));
            route.errors.iter().for_each(|c| c.add(0));
            route.cost.add(0.0);
            route.interruptions.add(0);
            route.state.record(BreakerState::Closed.index() as u64);
        }
        self.savings.add(0.0);
        self
    }

    pub(crate) fn decision(&self, route: usize, reason: Reason) {
        self.routes[route].decisions[reason.index()].add(1);
        self.totals.decisions[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn state(&self, route: usize, state: BreakerState) {
        self.routes[route].state.record(state.index() as u64);
    }

    pub(crate) fn attempt(
        &self,
        route: usize,
        outcome: AttemptOutcome,
        took: Duration,
        error: Option<ErrorClass>,
    ) {
        let recorders = &self.routes[route];
        recorders.duration[outcome.index()].record(took.as_secs_f64());
        self.totals.outcomes[outcome.index()].fetch_add(1, Ordering::Relaxed);
        match error {
            None => recorders.gen_ai_ok.record(took.as_secs_f64()),
            Some(class) => {
                recorders.errors[class.index()].add(1);
                recorders.gen_ai_failed[class.index()].record(took.as_secs_f64());
            }
        }
    }

    pub(crate) fn first_chunk(&self, route: usize, ttft: Duration) {
        self.routes[route].ttft.record(ttft.as_secs_f64());
    }

    pub(crate) fn interrupted(&self, route: usize) {
        self.routes[route].interruptions.add(1);
        self.totals.interrupted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn per_chunk(&self, route: usize, took: Duration) {
        self.routes[route].per_chunk.record(took.as_secs_f64());
    }

    /// Token counts of one attempt; `output: None` when the attempt produced none (a
    /// failure billed for its prompt).
    pub(crate) fn usage(&self, route: usize, input: u64, output: Option<u64>) {
        let [input_tokens, output_tokens] = &self.routes[route].tokens;
        input_tokens.record(input);
        if let Some(output) = output {
            output_tokens.record(output);
        }
    }

    pub(crate) fn cost(&self, route: usize, cost: Usd) {
        self.routes[route].cost.add(cost.dollars());
        if cost.picos() != 0 {
            self.totals
                .cost_picos
                .fetch_add(cost.picos(), Ordering::Relaxed);
        }
    }

    pub(crate) fn savings(&self, saved: Usd) {
        self.savings.add(saved.dollars());
        if saved.picos() != 0 {
            self.totals
                .savings_picos
                .fetch_add(saved.picos(), Ordering::Relaxed);
        }
    }
}
