//! Cost- and latency-aware routing between LLM providers, with safe fallback and exact
//! cost accounting.
//!
//! A [`RouterPrimitive`] holds named [`Route`]s, each a primitive with a [`Price`] and the
//! provider and model it calls. For each request a [`Strategy`] orders the routes; the
//! router tries them in that order until one succeeds:
//!
//! - **Fallback** on an error (or a timeout) to the failed route's declared fallbacks,
//!   then to the strategy's next choice. Each route is tried **at most once per
//!   request** and at most `max_attempts` times in all, and declared fallbacks are checked
//!   for cycles when the router is built: there is no fallback loop.
//! - **Health**: after `failure_threshold` consecutive failures a route cools down; when
//!   the cooldown ends exactly one caller probes it at a time. When every route is
//!   cooling the router fails fast with [`ErrorKind::NoRoute`](tta_core::ErrorKind).
//! - **Deadlines**: no attempt starts with less than `min_budget` left before the
//!   context's deadline, and no attempt runs past it.
//! - **Cost**: each attempt's token usage times its route's price is recorded in the
//!   workflow's ledger (a route call, a fallback, or a failed call that was still
//!   billed), in `tta.router.cost.usd`, and, against the most expensive route's price for the
//!   same usage, in `tta.router.cost.savings.usd`.
//!
//! # Examples
//!
//! ```
//! use tta_core::{from_fn, Error, ReportsUsage, TokenUsage, WorkflowContext, WorkflowPrimitive};
//! use tta_router::{Price, Route, RouterPrimitive, Strategy};
//!
//! #[derive(Clone)]
//! struct Completion { text: String, usage: TokenUsage }
//! impl ReportsUsage for Completion {
//!     fn token_usage(&self) -> Option<TokenUsage> { Some(self.usage) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = |name: &'static str| {
//!     from_fn(move |prompt: String, _| async move {
//!         Ok::<_, Error>(Completion { text: format!("{name}: {prompt}"), usage: TokenUsage::new(1_000, 100) })
//!     })
//! };
//! let router = RouterPrimitive::builder()
//!     .name("llm")
//!     .route(Route::new("premium", provider("premium")).price(Price::per_1k_tokens(0.01, 0.03)))
//!     .route(Route::new("budget", provider("budget")).price(Price::per_1k_tokens(0.0005, 0.0015)))
//!     .strategy(Strategy::Cheapest)
//!     .usage_reported()
//!     .build()?;
//! let cx = WorkflowContext::new();
//! let answer = router.execute("hi".to_owned(), &cx).await?;
//! assert_eq!(answer.text, "budget: hi");
//! // 1,000 x $0.0005/1k + 100 x $0.0015/1k
//! assert_eq!(cx.ledger().totals().spent.dollars(), 0.00065);
//! # Ok(()) }
//! ```
#![doc(test(attr(deny(warnings))))]

mod builder;
mod health;
mod metrics;
mod route;
pub mod semconv;
mod strategy;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt, Tracer};
use rand::rngs::StdRng;
use tokio::time::Instant;
use tta_core::semconv::gen_ai;
use tta_core::{
    AttemptError, AttemptKind, BoxPrimitive, CostEntry, Error, Instrumentation, PrimitiveName,
    Telemetry, TokenUsage, Usd, WorkflowContext, WorkflowPrimitive,
};

pub use builder::{BuildError, RouterBuilder};
pub use route::{Price, Route, ValidPrice};
pub use strategy::{RankFn, RouteStats, Strategy};

use health::{Availability, RouteState};
use metrics::{AttemptOutcome, Reason, RouterMetrics};

pub(crate) type UsageFn<O> = Arc<dyn Fn(&O) -> Option<TokenUsage> + Send + Sync>;

/// Token usage assumed for expected costs before any call reported its usage.
const DEFAULT_USAGE: (f64, f64) = (1_000.0, 1_000.0);
/// How much the newest call weighs in the average usage.
const USAGE_ALPHA: f64 = 0.1;

pub(crate) struct BuiltRoute<I, O> {
    name: PrimitiveName,
    span_name: String,
    primitive: BoxPrimitive<I, O>,
    price: ValidPrice,
    provider: String,
    model: String,
    weight: f64,
    fallbacks: Vec<usize>,
    state: RouteState,
}

/// Routes requests between priced routes; see the [crate docs](crate).
///
/// Build it with [`RouterPrimitive::builder`].
pub struct RouterPrimitive<I, O> {
    inst: Instrumentation,
    tracer: Telemetry,
    metrics: RouterMetrics,
    routes: Vec<BuiltRoute<I, O>>,
    strategy: Strategy,
    max_attempts: usize,
    fallback_on: Arc<dyn Fn(&Error) -> bool + Send + Sync>,
    failure_threshold: u32,
    cooldown: std::time::Duration,
    min_budget: std::time::Duration,
    attempt_timeout: Option<std::time::Duration>,
    usage: Option<UsageFn<O>>,
    rng: Mutex<StdRng>,
    usage_average: Mutex<Option<(f64, f64)>>,
}

impl<I, O> RouterPrimitive<I, O> {
    /// Starts configuring a router.
    ///
    /// # Examples
    ///
    /// See the [crate docs](crate).
    pub fn builder() -> RouterBuilder<I, O> {
        RouterBuilder::default()
    }

    /// The strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_fn, Error};
    /// use tta_router::{Route, RouterPrimitive};
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("a", from_fn(|x: u8, _| async move { Ok::<_, Error>(x) })))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(r.strategy().as_str(), "ordered");
    /// ```
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// Every route's statistics now, in declaration order.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_fn, Error};
    /// use tta_router::{Route, RouterPrimitive};
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("a", from_fn(|x: u8, _| async move { Ok::<_, Error>(x) })))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(&*r.stats()[0].name, "a");
    /// assert_eq!(r.stats()[0].observations, 0);
    /// ```
    pub fn stats(&self) -> Vec<RouteStats> {
        self.snapshot().0
    }

    /// Every route's statistics, and whether it may be tried now (healthy, or its
    /// single probe is free): one lock per route.
    fn snapshot(&self) -> (Vec<RouteStats>, Vec<bool>) {
        let now = Instant::now();
        let usage = self.expected_usage();
        let mut open = Vec::with_capacity(self.routes.len());
        let stats = self
            .routes
            .iter()
            .enumerate()
            .map(|(index, route)| {
                let snap = route.state.snapshot(now);
                open.push(snap.availability != Availability::Cooling);
                RouteStats {
                    index,
                    name: route.name.to_arc(),
                    latency: snap.latency,
                    observations: snap.observations,
                    consecutive_failures: snap.consecutive_failures,
                    cooling: snap.availability != Availability::Healthy,
                    weight: route.weight,
                    expected_cost: route.price.cost(Some(usage)),
                }
            })
            .collect();
        (stats, open)
    }

    /// The strategy's order for a request with `remaining` time, cooling routes left out.
    fn candidates(&self, remaining: Option<std::time::Duration>) -> Vec<usize> {
        let (stats, open) = self.snapshot();
        let mut order = self.strategy.rank(&stats, remaining, &self.rng);
        order.retain(|&i| open[i]);
        order
    }

    /// The routes a request with context `cx` would try now, in order (before any
    /// fallback declared by a failing route), cooling routes left out.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_fn, Error, WorkflowContext};
    /// use tta_router::{Price, Route, RouterPrimitive, Strategy};
    /// let echo = || from_fn(|x: u8, _| async move { Ok::<_, Error>(x) });
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("dear", echo()).price(Price::per_call(0.02)))
    ///     .route(Route::new("cheap", echo()).price(Price::per_call(0.01)))
    ///     .strategy(Strategy::Cheapest)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(r.plan(&WorkflowContext::new()), ["cheap", "dear"]);
    /// ```
    pub fn plan(&self, cx: &WorkflowContext) -> Vec<&str> {
        self.candidates(cx.remaining())
            .into_iter()
            .map(|i| self.routes[i].name.as_str())
            .collect()
    }

    fn expected_usage(&self) -> TokenUsage {
        let (input, output) = self
            .usage_average
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(DEFAULT_USAGE);
        TokenUsage::new(input.round() as u64, output.round() as u64)
    }

    fn observe_usage(&self, usage: TokenUsage) {
        let mut avg = self
            .usage_average
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (i, o) = (usage.input as f64, usage.output as f64);
        *avg = Some(match *avg {
            Some((ai, ao)) => (ai + USAGE_ALPHA * (i - ai), ao + USAGE_ALPHA * (o - ao)),
            None => (i, o),
        });
    }

    /// What the most expensive route would charge for `usage`.
    fn baseline(&self, usage: Option<TokenUsage>) -> Usd {
        self.routes
            .iter()
            .map(|r| r.price.cost(usage))
            .max()
            .unwrap_or(Usd::ZERO)
    }
}

impl<I, O> std::fmt::Debug for RouterPrimitive<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterPrimitive")
            .field("name", self.inst.name())
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("strategy", &self.strategy)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Gives a probe back if its attempt is dropped before it settles.
struct ProbeGuard<'a> {
    state: &'a RouteState,
    active: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.active {
            self.state.release_probe();
        }
    }
}

impl<I, O> RouterPrimitive<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// One attempt on route `i`: its span, the call bounded by the deadline, and every
    /// record of its outcome (health, metrics, ledger).
    async fn attempt(
        &self,
        i: usize,
        input: I,
        cx: &WorkflowContext,
        reason: Reason,
        probe: bool,
        first: bool,
    ) -> Result<O, Error> {
        let route = &self.routes[i];
        let builder = SpanBuilder::from_name(route.span_name.clone())
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new(gen_ai::OPERATION_NAME, gen_ai::OPERATION_CHAT),
                KeyValue::new(gen_ai::PROVIDER_NAME, route.provider.clone()),
                KeyValue::new(gen_ai::REQUEST_MODEL, route.model.clone()),
                KeyValue::new(semconv::ATTR_ROUTE, route.name.to_arc()),
                KeyValue::new(semconv::ATTR_REASON, reason.as_str()),
            ]);
        let span = self
            .tracer
            .tracer()
            .build_with_context(builder, cx.otel_context());
        let mut attempt_cx = cx.with_otel_context(cx.otel_context().with_span(span));
        if let Some(limit) = self.attempt_timeout {
            attempt_cx = attempt_cx.with_timeout(limit);
        }
        // Whether the attempt's own limit (not the caller's deadline) is the binding one.
        let own_limit = self.attempt_timeout.is_some() && attempt_cx.deadline() != cx.deadline();
        let mut guard = ProbeGuard {
            state: &route.state,
            active: probe,
        };
        let started = Instant::now();
        let call = route.primitive.execute(input, &attempt_cx);
        let result = match attempt_cx.deadline() {
            Some(deadline) => tokio::time::timeout_at(deadline, call)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::timeout(
                        route.name.to_arc(),
                        "the attempt reached its deadline",
                    ))
                }),
            None => call.await,
        };
        let took = started.elapsed();
        guard.active = false;
        let span = attempt_cx.otel_context().span();
        let kind = if first {
            AttemptKind::RouteCall
        } else {
            AttemptKind::Fallback
        };
        match &result {
            Ok(output) => {
                let usage = self.usage.as_ref().and_then(|extract| extract(output));
                let cost = route.price.cost(usage);
                cx.ledger().record(CostEntry::spent(
                    kind,
                    route.name.to_arc(),
                    usage.unwrap_or_default(),
                    cost,
                ));
                self.metrics.cost(i, cost);
                self.metrics
                    .savings(self.baseline(usage).saturating_sub(cost));
                if let Some(usage) = usage {
                    self.metrics.usage(i, usage);
                    self.observe_usage(usage);
                    span.set_attributes([
                        KeyValue::new(gen_ai::USAGE_INPUT_TOKENS, usage.input as i64),
                        KeyValue::new(gen_ai::USAGE_OUTPUT_TOKENS, usage.output as i64),
                    ]);
                }
                span.set_attribute(KeyValue::new(semconv::ATTR_COST, cost.dollars()));
                self.metrics.attempt(i, AttemptOutcome::Ok, took, None);
                route.state.record(
                    true,
                    probe,
                    took,
                    self.failure_threshold,
                    self.cooldown,
                    None,
                );
            }
            Err(e) => {
                let outcome = if e.is_timeout() {
                    AttemptOutcome::Timeout
                } else {
                    AttemptOutcome::Error
                };
                self.metrics.attempt(i, outcome, took, Some(e.kind()));
                if let Some(usage) = e.billed_usage() {
                    let cost = route.price.cost(Some(usage));
                    cx.ledger().record(CostEntry::spent(
                        AttemptKind::FailedBilled,
                        route.name.to_arc(),
                        usage,
                        cost,
                    ));
                    self.metrics.cost(i, cost);
                    self.metrics.usage(i, usage);
                    span.set_attribute(KeyValue::new(semconv::ATTR_COST, cost.dollars()));
                }
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, e.kind().as_str()));
                span.set_status(Status::error(e.kind().as_str()));
                // Neither the caller's cancellation nor the caller's deadline is the
                // route's fault.
                let callers_limit = e.is_cancelled()
                    || (e.is_timeout()
                        && !own_limit
                        && cx.remaining().is_some_and(|r| r.is_zero()));
                if callers_limit {
                    if probe {
                        route.state.release_probe();
                    }
                } else {
                    route.state.record(
                        false,
                        probe,
                        took,
                        self.failure_threshold,
                        self.cooldown,
                        e.retry_after(),
                    );
                }
            }
        }
        span.end();
        result
    }
}

impl<I, O> WorkflowPrimitive<I> for RouterPrimitive<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    type Output = O;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<O, Error> {
        self.inst
            .run(cx, |child| async move {
                let span = child.primitive_span();
                if let Some(span) = &span {
                    span.set_attribute(KeyValue::new(
                        semconv::ATTR_STRATEGY,
                        self.strategy.as_str(),
                    ));
                }
                let ranked: VecDeque<usize> = self.candidates(child.remaining()).into();
                let only_candidate = ranked.len() == 1;
                let mut queue = ranked;
                let mut tried = vec![false; self.routes.len()];
                let mut failures: Vec<AttemptError> = Vec::new();
                let mut out_of_budget = false;
                while failures.len() < self.max_attempts {
                    let Some(i) = queue.pop_front() else { break };
                    if std::mem::replace(&mut tried[i], true) {
                        continue;
                    }
                    if child.remaining().is_some_and(|left| left < self.min_budget) {
                        out_of_budget = true;
                        break;
                    }
                    // Cooling, or another caller holds its single probe: skip it.
                    let Some(probe) = self.routes[i].state.admit(Instant::now()) else {
                        continue;
                    };
                    let first = failures.is_empty();
                    let reason = match (probe, first) {
                        (true, _) => Reason::Probe,
                        (false, true) if only_candidate => Reason::OnlyCandidate,
                        (false, true) => Reason::Strategy,
                        (false, false) => Reason::Fallback,
                    };
                    self.metrics.decision(i, reason);
                    match self
                        .attempt(i, input.clone(), &child, reason, probe, first)
                        .await
                    {
                        Ok(output) => {
                            if let Some(span) = &span {
                                span.set_attributes([
                                    KeyValue::new(
                                        semconv::ATTR_ROUTE,
                                        self.routes[i].name.to_arc(),
                                    ),
                                    KeyValue::new(semconv::ATTR_REASON, reason.as_str()),
                                    KeyValue::new(
                                        semconv::ATTR_ATTEMPTS,
                                        failures.len() as i64 + 1,
                                    ),
                                ]);
                            }
                            return Ok(output);
                        }
                        Err(e) => {
                            let fall_back = (self.fallback_on)(&e);
                            failures
                                .push(AttemptError::new(self.routes[i].name.to_arc(), e.clone()));
                            if !fall_back {
                                if let Some(span) = &span {
                                    span.set_attribute(KeyValue::new(
                                        semconv::ATTR_ATTEMPTS,
                                        failures.len() as i64,
                                    ));
                                }
                                return Err(e);
                            }
                            // The failed route's declared fallbacks come next, in order.
                            for &next in self.routes[i].fallbacks.iter().rev() {
                                if !tried[next] {
                                    queue.push_front(next);
                                }
                            }
                        }
                    }
                }
                if let Some(span) = &span {
                    span.set_attribute(KeyValue::new(
                        semconv::ATTR_ATTEMPTS,
                        failures.len() as i64,
                    ));
                }
                if failures.is_empty() {
                    return Err(if out_of_budget {
                        Error::timeout(
                            self.inst.name().to_arc(),
                            "too little time left before the deadline to start an attempt",
                        )
                    } else {
                        Error::no_route("every route is cooling down")
                            .with_primitive(self.inst.name().to_arc())
                    });
                }
                Err(Error::all_routes_failed(failures).with_primitive(self.inst.name().to_arc()))
            })
            .await
    }
}

tta_core::impl_composition_ops!(RouterPrimitive<I, O>);
