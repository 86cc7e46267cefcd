//! The router's instruments and per-route label sets, created once at build time.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use tta_core::bound::{BoundCounter, BoundHistogram};
use tta_core::{ErrorKind, PrimitiveName, Telemetry, TokenUsage, Usd};

use crate::semconv::{self, gen_ai};

/// Why a route was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The strategy's choice.
    Strategy,
    /// After an earlier attempt of the same request failed.
    Fallback,
    /// The single probe of a route whose cooldown ended.
    Probe,
    /// The only route that could be tried.
    OnlyCandidate,
}

impl Reason {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Reason::Strategy => "strategy",
            Reason::Fallback => "fallback",
            Reason::Probe => "probe",
            Reason::OnlyCandidate => "only_candidate",
        }
    }

    const ALL: [Reason; 4] = [
        Reason::Strategy,
        Reason::Fallback,
        Reason::Probe,
        Reason::OnlyCandidate,
    ];
}

/// How an attempt ended, for `tta.router.route.duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Ok,
    Error,
    Timeout,
}

impl AttemptOutcome {
    const ALL: [AttemptOutcome; 3] = [
        AttemptOutcome::Ok,
        AttemptOutcome::Error,
        AttemptOutcome::Timeout,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Error => "error",
            AttemptOutcome::Timeout => "timeout",
        }
    }
}

/// One route's instruments, bound to its labels.
struct RouteRecorders {
    decisions: [BoundCounter<u64>; 4],
    duration: [BoundHistogram<f64>; 3],
    cost: BoundCounter<f64>,
    gen_ai_ok: BoundHistogram<f64>,
    tokens: [BoundHistogram<u64>; 2],
    /// For the rare, error-typed series.
    router_route: [KeyValue; 2],
    gen_ai: [KeyValue; 3],
}

pub(crate) struct RouterMetrics {
    errors: Counter<u64>,
    gen_ai_duration: Histogram<f64>,
    savings: BoundCounter<f64>,
    routes: Vec<RouteRecorders>,
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
            .with_description("Failed route attempts, by error type.")
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
                "The most expensive route's price for the same token usage, minus what was paid.",
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
                    cost: BoundCounter::new(&cost, &router_route),
                    gen_ai_ok: BoundHistogram::new(&gen_ai_duration, &gen_ai),
                    tokens: ["input", "output"].map(|t| {
                        let [a, b, c] = gen_ai.clone();
                        BoundHistogram::new(
                            &gen_ai_tokens,
                            &[a, b, c, KeyValue::new(gen_ai::TOKEN_TYPE, t)],
                        )
                    }),
                    router_route,
                    gen_ai,
                }
            })
            .collect();
        Self {
            errors,
            gen_ai_duration,
            savings: BoundCounter::new(&savings, &[router_kv()]),
            routes,
        }
    }

    /// Starts the fixed series at zero (cost per route, savings), so the families exist
    /// and `rate()` works from the first scrape.
    pub(crate) fn initialize(self) -> Self {
        for route in &self.routes {
            route.cost.add(0.0);
        }
        self.savings.add(0.0);
        self
    }

    pub(crate) fn decision(&self, route: usize, reason: Reason) {
        let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.routes[route].decisions[i].add(1);
    }

    pub(crate) fn attempt(
        &self,
        route: usize,
        outcome: AttemptOutcome,
        took: Duration,
        error: Option<ErrorKind>,
    ) {
        let recorders = &self.routes[route];
        let i = AttemptOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        recorders.duration[i].record(took.as_secs_f64());
        match error {
            None => recorders.gen_ai_ok.record(took.as_secs_f64()),
            Some(kind) => {
                let [router, route] = recorders.router_route.clone();
                self.errors.add(
                    1,
                    &[
                        router,
                        route,
                        KeyValue::new(semconv::LABEL_ERROR_TYPE, kind.as_str()),
                    ],
                );
                let [a, b, c] = recorders.gen_ai.clone();
                self.gen_ai_duration.record(
                    took.as_secs_f64(),
                    &[a, b, c, KeyValue::new(semconv::ERROR_TYPE, kind.as_str())],
                );
            }
        }
    }

    pub(crate) fn usage(&self, route: usize, usage: TokenUsage) {
        let [input, output] = &self.routes[route].tokens;
        input.record(usage.input);
        output.record(usage.output);
    }

    pub(crate) fn cost(&self, route: usize, cost: Usd) {
        self.routes[route].cost.add(cost.dollars());
    }

    pub(crate) fn savings(&self, saved: Usd) {
        self.savings.add(saved.dollars());
    }
}
