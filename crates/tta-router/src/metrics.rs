//! The router's instruments and per-route label sets, created once at build time.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
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

struct RouteLabels {
    decisions: [[KeyValue; 3]; 4],
    duration: [[KeyValue; 3]; 3],
    router_route: [KeyValue; 2],
    gen_ai: [KeyValue; 3],
    tokens: [[KeyValue; 4]; 2],
}

pub(crate) struct RouterMetrics {
    decisions: Counter<u64>,
    route_duration: Histogram<f64>,
    errors: Counter<u64>,
    cost: Counter<f64>,
    savings: Counter<f64>,
    gen_ai_duration: Histogram<f64>,
    gen_ai_tokens: Histogram<u64>,
    router_only: [KeyValue; 1],
    routes: Vec<RouteLabels>,
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
        Self {
            decisions: meter
                .u64_counter(semconv::DECISIONS)
                .with_description("Route attempts started by routers, by reason (strategy, fallback, probe, only_candidate).")
                .build(),
            route_duration: meter
                .f64_histogram(semconv::ROUTE_DURATION)
                .with_description("Duration of route attempts, by outcome.")
                .with_unit("s")
                .with_boundaries(tta_core::semconv::DURATION_BUCKETS_SECONDS.to_vec())
                .build(),
            errors: meter
                .u64_counter(semconv::ERRORS)
                .with_description("Failed route attempts, by error type.")
                .build(),
            cost: meter
                .f64_counter(semconv::COST)
                .with_description("Dollars spent on route attempts (token usage times the route's price).")
                .with_unit("USD")
                .build(),
            savings: meter
                .f64_counter(semconv::COST_SAVINGS)
                .with_description("The most expensive route's price for the same token usage, minus what was paid.")
                .with_unit("USD")
                .build(),
            gen_ai_duration: meter
                .f64_histogram(gen_ai::CLIENT_OPERATION_DURATION)
                .with_description("GenAI operation duration.")
                .with_unit("s")
                .with_boundaries(gen_ai::DURATION_BUCKETS.to_vec())
                .build(),
            gen_ai_tokens: meter
                .u64_histogram(gen_ai::CLIENT_TOKEN_USAGE)
                .with_description("Measures number of input and output tokens used.")
                .with_unit("{token}")
                .with_boundaries(gen_ai::TOKEN_BUCKETS.to_vec())
                .build(),
            router_only: [router_kv()],
            routes: routes
                .iter()
                .map(|r| {
                    let route = || KeyValue::new(semconv::LABEL_ROUTE, r.name.to_arc());
                    let gen_ai = [
                        KeyValue::new(gen_ai::OPERATION_NAME, gen_ai::OPERATION_CHAT),
                        KeyValue::new(gen_ai::PROVIDER_NAME, r.provider.to_owned()),
                        KeyValue::new(gen_ai::REQUEST_MODEL, r.model.to_owned()),
                    ];
                    RouteLabels {
                        decisions: Reason::ALL.map(|reason| {
                            [router_kv(), route(), KeyValue::new(semconv::LABEL_REASON, reason.as_str())]
                        }),
                        duration: AttemptOutcome::ALL.map(|o| {
                            [router_kv(), route(), KeyValue::new(semconv::LABEL_OUTCOME, o.as_str())]
                        }),
                        router_route: [router_kv(), route()],
                        tokens: ["input", "output"].map(|t| {
                            let [a, b, c] = gen_ai.clone();
                            [a, b, c, KeyValue::new(gen_ai::TOKEN_TYPE, t)]
                        }),
                        gen_ai,
                    }
                })
                .collect(),
        }
    }

    /// Starts the fixed series at zero (cost per route, savings), so the families exist
    /// and `rate()` works from the first scrape.
    pub(crate) fn initialize(self) -> Self {
        for labels in &self.routes {
            self.cost.add(0.0, &labels.router_route);
        }
        self.savings.add(0.0, &self.router_only);
        self
    }

    pub(crate) fn decision(&self, route: usize, reason: Reason) {
        let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.decisions.add(1, &self.routes[route].decisions[i]);
    }

    pub(crate) fn attempt(
        &self,
        route: usize,
        outcome: AttemptOutcome,
        took: Duration,
        error: Option<ErrorKind>,
    ) {
        let labels = &self.routes[route];
        let i = AttemptOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.route_duration
            .record(took.as_secs_f64(), &labels.duration[i]);
        match error {
            None => self
                .gen_ai_duration
                .record(took.as_secs_f64(), &labels.gen_ai),
            Some(kind) => {
                let [router, route] = labels.router_route.clone();
                self.errors.add(
                    1,
                    &[
                        router,
                        route,
                        KeyValue::new(semconv::LABEL_ERROR_TYPE, kind.as_str()),
                    ],
                );
                let [a, b, c] = labels.gen_ai.clone();
                self.gen_ai_duration.record(
                    took.as_secs_f64(),
                    &[a, b, c, KeyValue::new(semconv::ERROR_TYPE, kind.as_str())],
                );
            }
        }
    }

    pub(crate) fn usage(&self, route: usize, usage: TokenUsage) {
        let labels = &self.routes[route];
        self.gen_ai_tokens.record(usage.input, &labels.tokens[0]);
        self.gen_ai_tokens.record(usage.output, &labels.tokens[1]);
    }

    pub(crate) fn cost(&self, route: usize, cost: Usd) {
        self.cost
            .add(cost.dollars(), &self.routes[route].router_route);
    }

    pub(crate) fn savings(&self, saved: Usd) {
        self.savings.add(saved.dollars(), &self.router_only);
    }
}
