//! Cost- and latency-aware routing between LLM providers, with safe fallback and exact
//! cost accounting.
//!
//! A [`RouterPrimitive`] holds named [`Route`]s, each a primitive with a [`Price`] and the
//! provider and model it calls. For each request a [`Strategy`] orders the routes; the
//! router tries them in that order until one succeeds:
//!
//! - **Fallback by error class** ([`ErrorClass`]): `unavailable`,
//!   `rate_limited`, `auth` and unclassified errors fall back to the failed route's
//!   declared fallbacks, then to the strategy's next choice; `invalid_request` and
//!   `content_filter` are returned at once (the same request fails everywhere);
//!   `context_length` falls back only to routes with a larger declared
//!   [`context_window`](Route::context_window). [`RouterBuilder::fallback_on`] overrides
//!   the choice. Each route is tried **at most once per request** and at most
//!   `max_attempts` times in all, and declared fallbacks are checked for cycles when the
//!   router is built: there is no fallback loop.
//! - **Health** ([`tta_core::Breaker`]): after `failure_threshold` consecutive failures
//!   a route cools down; when the cooldown ends exactly one caller probes it, and each
//!   failed probe doubles the cooldown (up to `max_cooldown`). A `rate_limited` error
//!   holds the route until its retry-after (a call that started before the hint does
//!   not clear it by succeeding), `auth` cools it for `max_cooldown`; errors of the
//!   request itself carry no penalty. When every route is cooling, the router tries the
//!   one whose cooldown ends first (**panic mode**, reason `panic`; turn it off with
//!   [`RouterBuilder::panic_mode`] to get [`ErrorKind::NoRoute`](tta_core::ErrorKind)
//!   with the earliest retry-after).
//! - **Deadlines**: without an `attempt_timeout`, an attempt gets the context's
//!   remaining time minus a reserve for the next candidate (its latency average, or
//!   `min_budget`), so a hung route leaves time for a fallback; no attempt starts with
//!   less than `min_budget` left, or with less than its own latency average. A deadline
//!   the router set is reported by the router; the caller's is reported by the caller
//!   (see [`tta_core::deadline`]).
//! - **Cost**: each attempt's token usage times its route's price is recorded in the
//!   workflow's ledger (a route call, a fallback, or a failed call that was still
//!   billed), in `tta.router.cost.usd`, and, against the price of the savings baseline
//!   for the same usage (the most expensive route, or the one named by
//!   [`RouterBuilder::savings_baseline`]), in `tta.router.cost.savings.usd` (an attempt
//!   dearer than the baseline saves nothing: the counter never goes down).
//!
//! # Examples
//!
//! ```
//! use tta_core::{from_fn, Error, ReportsUsage, TokenUsage, WorkflowContext};
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

mod attempt;
mod builder;
mod health;
mod metrics;
mod plan;
mod route;
pub mod semconv;
mod strategy;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use rand::rngs::StdRng;
use tokio::time::Instant;
use tta_core::deadline::DeadlineReached;
use tta_core::{
    AttemptError, AttemptKind, BoxPrimitive, Error, ErrorClass, Instrumentation, PrimitiveName,
    Telemetry, TokenUsage, WorkflowContext, WorkflowPrimitive,
};

pub use builder::{BuildError, RouterBuilder};
pub use route::Route;
pub use strategy::{RankFn, RouteStats, Strategy};
pub use tta_core::{Price, ValidPrice};

use attempt::{Attempt, Calls, Mode, RouteStream, Streams};
use health::RouteHealth;
pub use metrics::RouterTotals;
use metrics::{Reason, RouterMetrics};

pub(crate) type UsageFn<O> = Arc<dyn Fn(&O) -> Option<TokenUsage> + Send + Sync>;

/// A user's choice of which errors fall back ([`RouterBuilder::fallback_on`]).
pub(crate) type FallbackFn = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// An input-aware route function, as stored: it feeds route names to the sink.
pub(crate) type RouteFn<I> =
    Arc<dyn Fn(&I, &WorkflowContext, &[RouteStats], &mut dyn FnMut(&str)) + Send + Sync>;

/// The route function of [`RouterBuilder::route_by`] named a route the router does not
/// have. The request then uses the strategy's order; the error is counted
/// ([`RouterPrimitive::route_fn_errors`]) and recorded as a span event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the route function named unknown route {name:?}")]
pub struct UnknownRoute {
    /// The name it gave (at most 64 characters of it).
    pub name: String,
}

pub(crate) struct BuiltRoute<I, O> {
    name: PrimitiveName,
    span_name: String,
    primitive: BoxPrimitive<I, O>,
    price: ValidPrice,
    provider: String,
    model: String,
    weight: f64,
    fallbacks: Vec<usize>,
    context_window: Option<u64>,
    /// How the route streams, when it does.
    stream: Option<Arc<dyn RouteStream<I, O>>>,
    /// Shared with the bodies of its streams.
    health: Arc<RouteHealth>,
}

/// Routes requests between priced routes; see the [crate docs](crate).
///
/// Build it with [`RouterPrimitive::builder`]. Cloning is cheap: the clones share the
/// routes, their health and the metrics.
pub struct RouterPrimitive<I, O> {
    core: Arc<Core<I, O>>,
}

impl<I, O> RouterPrimitive<I, O> {
    pub(crate) fn from_core(core: Core<I, O>) -> Self {
        Self {
            core: Arc::new(core),
        }
    }
}

impl<I, O> Clone for RouterPrimitive<I, O> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

/// The router's state, shared with the bodies of its streams, which settle cost and
/// health when they end.
pub(crate) struct Core<I, O> {
    inst: Instrumentation,
    tracer: Telemetry,
    /// Shared with the bodies of streams.
    metrics: Arc<RouterMetrics>,
    routes: Vec<BuiltRoute<I, O>>,
    strategy: Strategy,
    route_fn: Option<RouteFn<I>>,
    route_fn_errors: AtomicU64,
    max_attempts: usize,
    fallback_on: Option<FallbackFn>,
    min_budget: Duration,
    attempt_timeout: Option<Duration>,
    /// The longest a streamed attempt may wait for its next chunk.
    idle_timeout: Option<Duration>,
    auth_cooldown: Duration,
    panic_mode: bool,
    usage: Option<UsageFn<O>>,
    rng: Mutex<StdRng>,
    usage_average: Mutex<Option<(f64, f64)>>,
    /// The route savings are counted against; `None`: the dearest for each call.
    baseline: Option<usize>,
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
    /// use tta_core::from_sync_fn;
    /// use tta_router::{Route, RouterPrimitive};
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("a", from_sync_fn(|x: u8, _| Ok(x))))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(r.strategy().as_str(), "ordered");
    /// ```
    pub fn strategy(&self) -> &Strategy {
        &self.core.strategy
    }

    /// The most one call through this router can be billed: each route at most once (a
    /// router never tries a route twice for one call), the dearest routes first, up to
    /// its most attempts. What a budget in front of it reserves (`tta_limit`'s
    /// `cost_bound`).
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_sync_fn, TokenUsage};
    /// use tta_router::{Price, Route, RouterPrimitive};
    /// let echo = || from_sync_fn(|x: u8, _| Ok(x));
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("a", echo()).price(Price::per_1k_tokens(1.0, 0.0)))
    ///     .route(Route::new("b", echo()).price(Price::per_1k_tokens(0.0, 2.0)))
    ///     .build()
    ///     .unwrap();
    /// let bound = r.cost_bound();
    /// assert_eq!(bound.attempts(), 2);
    /// assert_eq!(bound.max_cost(TokenUsage::new(1_000, 1_000)).dollars(), 1.0 + 2.0);
    /// ```
    pub fn cost_bound(&self) -> tta_core::CostBound {
        let attempts = self.core.max_attempts.min(self.core.routes.len());
        tta_core::CostBound::routes(
            self.core.routes.iter().map(|r| r.price),
            u32::try_from(attempts).unwrap_or(u32::MAX),
        )
    }

    /// Every route's statistics now, in declaration order.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::from_sync_fn;
    /// use tta_router::{Route, RouterPrimitive};
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("a", from_sync_fn(|x: u8, _| Ok(x))))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(&*r.stats()[0].name, "a");
    /// assert_eq!(r.stats()[0].observations, 0);
    /// ```
    pub fn stats(&self) -> Vec<RouteStats> {
        self.core.snapshot_at(Instant::now()).0
    }

    /// What the router has done since it was built: attempts, fallbacks, outcomes, cost
    /// and savings, each equal to its metric's total (see [`RouterTotals`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_sync_fn, Error, ErrorClass, WorkflowContext};
    /// use tta_router::{Price, Route, RouterPrimitive};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let down = from_sync_fn(|_: u8, _| Err::<u8, _>(Error::msg("503").with_class(ErrorClass::Unavailable)));
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("down", down).price(Price::per_call(0.02)))
    ///     .route(Route::new("up", from_sync_fn(|x: u8, _| Ok(x))).price(Price::per_call(0.01)))
    ///     .build()?;
    /// r.execute(1, &WorkflowContext::new()).await?;
    /// let totals = r.totals();
    /// assert_eq!((totals.attempts, totals.fallbacks, totals.ok, totals.errors), (2, 1, 1, 1));
    /// assert_eq!(totals.cost.dollars(), 0.01);
    /// assert_eq!(totals.savings.dollars(), 0.01, "the dearest route would have cost 0.02");
    /// # Ok(()) }
    /// ```
    pub fn totals(&self) -> RouterTotals {
        self.core.metrics.totals()
    }

    /// Routes one request: [`WorkflowPrimitive::execute`], as an inherent method so that a
    /// call with an input that does not fit fails to compile naming the unmet bound
    /// (the input is cloned for each attempt), instead of "no method named `execute`".
    ///
    /// # Errors
    ///
    /// See the [crate docs](crate): the route's own error when it does not fall back,
    /// `all_routes_failed`, `no_route`, or a timeout when no attempt could start in time.
    pub async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<O, Error>
    where
        I: Clone + Send + Sync + 'static,
        O: Send + 'static,
    {
        <Self as WorkflowPrimitive<I>>::execute(self, input, cx).await
    }

    /// How many requests fell back to the strategy's order because the route function
    /// named an unknown route.
    pub fn route_fn_errors(&self) -> u64 {
        self.core.route_fn_errors.load(Ordering::Relaxed)
    }

    /// The routes a request for `input` with context `cx` would try now, in order
    /// (before any fallback declared by a failing route), cooling routes left out.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_sync_fn, WorkflowContext};
    /// use tta_router::{Price, Route, RouterPrimitive, Strategy};
    /// let echo = || from_sync_fn(|x: u8, _| Ok(x));
    /// let r = RouterPrimitive::builder()
    ///     .route(Route::new("dear", echo()).price(Price::per_call(0.02)))
    ///     .route(Route::new("cheap", echo()).price(Price::per_call(0.01)))
    ///     .strategy(Strategy::Cheapest)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(r.plan(&0, &WorkflowContext::new()), ["cheap", "dear"]);
    /// ```
    pub fn plan(&self, input: &I, cx: &WorkflowContext) -> Vec<&str> {
        let plan = self.core.plan_for(Instant::now(), input, cx, |_| true);
        plan.order
            .into_iter()
            .filter(|&i| plan.health[i].breaker.admits)
            .map(|i| self.core.routes[i].name.as_str())
            .collect()
    }
}

impl<I, O> Core<I, O> {
    /// Whether a failed attempt falls back: the router's `fallback_on`, else by class.
    fn falls_back(&self, e: &Error) -> bool {
        if e.is_cancelled() || e.is_invalid_config() {
            return false;
        }
        match &self.fallback_on {
            Some(decide) => decide(e),
            None => !matches!(
                e.class(),
                ErrorClass::InvalidRequest | ErrorClass::ContentFilter
            ),
        }
    }
}

impl<I, O> std::fmt::Debug for RouterPrimitive<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = &self.core;
        f.debug_struct("RouterPrimitive")
            .field("name", core.inst.name())
            .field(
                "routes",
                &core
                    .routes
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("strategy", &core.strategy)
            .field("max_attempts", &core.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Why a request ended without a value, when no attempt could report it.
enum NoAttempt {
    /// Every route was cooling (and panic mode found nothing to try).
    Cooling { retry_at: Option<Instant> },
    /// The deadline left too little time for any candidate.
    OutOfTime,
}

impl<I, O> WorkflowPrimitive<I> for RouterPrimitive<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    type Output = O;

    fn name(&self) -> &str {
        self.core.inst.name().as_str()
    }

    async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<O, Error> {
        self.core
            .inst
            .run_timed(cx, |child, started| async move {
                self.core.serve::<Calls>(input, &child, started).await
            })
            .await
    }
}

/// Streams through the router: an attempt succeeds at its first chunk, and every
/// fallback rule of calls applies until then. After it, a failure is final for the
/// request: the body yields the error, the attempt is billed as an interrupted stream
/// (its reported usage, else an estimate, marked so), and its route's health records it.
/// Only routes given a stream ([`Route::stream_with`], [`Route::streaming`]) are tried.
impl<I, O> tta_core::StreamPrimitive<I> for RouterPrimitive<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: tta_core::Streamable + Send + 'static,
    O::Chunk: tta_core::ReportsUsage,
{
    type Chunk = O::Chunk;

    fn name(&self) -> &str {
        self.core.inst.name().as_str()
    }

    async fn stream(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> Result<tta_core::Streamed<O::Chunk>, Error> {
        self.core
            .inst
            .run_stream_started(cx, |child, started| async move {
                self.core.serve::<Streams>(input, &child, started).await.0
            })
            .await
    }
}

impl<I, O> Core<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    /// The request loop of calls and streams alike: the plan, each attempt in order with
    /// its fallbacks, panic mode, and the error of a request that got no value. `now` is
    /// the instant the router's execution started: the plan's. Beside the result, the
    /// instant its last attempt ended, when the result came straight from it.
    async fn serve<M: Mode<I, O>>(
        self: &Arc<Self>,
        input: I,
        child: &WorkflowContext,
        now: Instant,
    ) -> (Result<M::Value, Error>, Option<Instant>) {
        let span = child.primitive_span();
        if let Some(span) = &span {
            span.set_attribute(KeyValue::new(
                semconv::ATTR_STRATEGY,
                self.strategy.as_str(),
            ));
        }
        if !self.routes.iter().any(M::serves) {
            let err = Error::no_route("no route of this router streams")
                .with_class(ErrorClass::InvalidRequest)
                .with_primitive(self.inst.name().to_arc());
            return (Err(err), None);
        }
        let plan = self.plan_for(now, &input, child, |i| M::serves(&self.routes[i]));
        // What is left to try: the failed routes' declared fallbacks (first), then the
        // plan's order from `cursor`. Neither allocates on a request that needs no
        // fallback.
        let mut declared: VecDeque<usize> = VecDeque::new();
        let mut cursor = 0;
        let mut tried = Tried::new(self.routes.len());
        let mut failures: Vec<AttemptError> = Vec::new();
        let mut stopped: Option<NoAttempt> = None;
        // After a context-length error: only routes with a larger window.
        let mut min_window: Option<u64> = None;
        let mut fresh = Some(plan.at);
        while failures.len() < self.max_attempts {
            let Some(i) = declared.pop_front().or_else(|| {
                let i = plan.order.get(cursor).copied();
                cursor += 1;
                i
            }) else {
                break;
            };
            // Tried already, unable to serve this request (a declared fallback that does
            // not stream), or too small a window after a context-length error.
            if tried.has(i)
                || !M::serves(&self.routes[i])
                || min_window.is_some_and(|w| self.routes[i].context_window.is_none_or(|c| c <= w))
            {
                continue;
            }
            let remaining = child.remaining();
            let health = &plan.health[i];
            // No attempt starts that cannot finish: less than the minimum budget,
            // or less than its own latency average.
            if remaining.is_some_and(|left| {
                left < self.min_budget || health.latency.is_some_and(|l| left < l)
            }) {
                stopped = Some(NoAttempt::OutOfTime);
                continue;
            }
            // Cooling, or another caller holds its single probe: skip it. Until an
            // attempt has run, the plan's instant is still now.
            let now = fresh.unwrap_or_else(Instant::now);
            let Some(permit) = self.routes[i].health.admit_at(now) else {
                continue;
            };
            tried.set(i);
            stopped = None;
            let first = failures.is_empty();
            let reason = match (permit.is_probe(), first) {
                (true, _) => Reason::Probe,
                (false, true) if plan.admissible == 1 => Reason::OnlyCandidate,
                (false, true) => Reason::Strategy,
                (false, false) => Reason::Fallback,
            };
            let rest = plan.order.get(cursor..).unwrap_or_default();
            let next = declared
                .iter()
                .chain(rest)
                .find(|&&j| !tried.has(j))
                .map(|&j| &plan.health[j]);
            let attempt = Attempt {
                route: i,
                reason,
                kind: if first {
                    AttemptKind::RouteCall
                } else {
                    AttemptKind::Fallback
                },
                // The permit was admitted just now: its instant saves a clock read.
                deadline: self.attempt_deadline(permit.admitted(), remaining, health, next),
                permit,
            };
            let (result, ended) = M::attempt(self, attempt, input.clone(), child).await;
            fresh = None;
            match result {
                Ok(output) => {
                    self.annotate(span.as_ref(), Some((i, reason)), failures.len() + 1);
                    return (Ok(output), ended);
                }
                Err(e) => {
                    let fall_back = self.falls_back(&e);
                    let class = e.class();
                    failures.push(AttemptError::new(self.routes[i].name.to_arc(), e.clone()));
                    if !fall_back {
                        self.annotate(span.as_ref(), None, failures.len());
                        return (Err(e), ended);
                    }
                    if class == ErrorClass::ContextLength {
                        match self.routes[i].context_window {
                            Some(window) => {
                                min_window = Some(min_window.map_or(window, |w| w.max(window)))
                            }
                            // Which routes are larger is unknown: the same prompt
                            // would fail again.
                            None => {
                                self.annotate(span.as_ref(), None, failures.len());
                                return (Err(e), ended);
                            }
                        }
                    }
                    // The failed route's declared fallbacks come next, in order.
                    for &next in self.routes[i].fallbacks.iter().rev() {
                        if !tried.has(next) {
                            declared.push_front(next);
                        }
                    }
                }
            }
        }
        if failures.is_empty() && stopped.is_none() {
            // Every route was cooling: panic mode tries the one that recovers first.
            let earliest = plan
                .order
                .iter()
                .copied()
                .filter(|&i| plan.health[i].breaker.retry_at.is_some())
                .min_by_key(|&i| plan.health[i].breaker.retry_at);
            let retry_at = earliest.and_then(|i| plan.health[i].breaker.retry_at);
            if let Some(i) = earliest.filter(|_| self.panic_mode)
                && let Some(permit) = self.routes[i].health.admit_early()
            {
                let attempt = Attempt {
                    route: i,
                    reason: Reason::Panic,
                    kind: AttemptKind::RouteCall,
                    permit,
                    deadline: self.attempt_deadline(
                        Instant::now(),
                        child.remaining(),
                        &plan.health[i],
                        None,
                    ),
                };
                let (result, ended) = M::attempt(self, attempt, input, child).await;
                match &result {
                    Ok(_) => self.annotate(span.as_ref(), Some((i, Reason::Panic)), 1),
                    Err(_) => self.annotate(span.as_ref(), None, 1),
                }
                return (result, ended);
            }
            stopped = Some(NoAttempt::Cooling { retry_at });
        }
        self.annotate(span.as_ref(), None, failures.len());
        (Err(self.no_value(stopped, failures)), None)
    }
}

/// The routes a request has tried: a bit each for the first 64, a flag each beyond.
struct Tried {
    bits: u64,
    more: Vec<bool>,
}

impl Tried {
    fn new(routes: usize) -> Self {
        Self {
            bits: 0,
            more: vec![false; routes.saturating_sub(64)],
        }
    }

    fn has(&self, i: usize) -> bool {
        match i.checked_sub(64) {
            None => self.bits & (1 << i) != 0,
            Some(j) => self.more[j],
        }
    }

    fn set(&mut self, i: usize) {
        match i.checked_sub(64) {
            None => self.bits |= 1 << i,
            Some(j) => self.more[j] = true,
        }
    }
}

impl<I, O> Core<I, O> {
    /// The request's span attributes once it is settled.
    fn annotate(
        &self,
        span: Option<&opentelemetry::trace::SpanRef<'_>>,
        served: Option<(usize, Reason)>,
        attempts: usize,
    ) {
        let Some(span) = span else { return };
        span.set_attribute(KeyValue::new(semconv::ATTR_ATTEMPTS, attempts as i64));
        if let Some((i, reason)) = served {
            span.set_attributes([
                KeyValue::new(semconv::ATTR_ROUTE, self.routes[i].name.to_arc()),
                KeyValue::new(semconv::ATTR_REASON, reason.as_str()),
            ]);
        }
    }

    /// The error of a request that got no value.
    fn no_value(&self, stopped: Option<NoAttempt>, failures: Vec<AttemptError>) -> Error {
        let name = self.inst.name().to_arc();
        match stopped {
            // Marked as a deadline: a timeout around the router that owns it reports it
            // as its own (and runs its fallback) rather than passing this through.
            Some(NoAttempt::OutOfTime) => Error::timeout(
                name,
                "too little time left before the deadline to start an attempt",
            )
            .with_source(DeadlineReached)
            .with_attempts(failures),
            Some(NoAttempt::Cooling { retry_at }) if failures.is_empty() => {
                let err = Error::no_route("every route is cooling down").with_primitive(name);
                match retry_at {
                    Some(at) => err.with_retry_after(at.saturating_duration_since(Instant::now())),
                    None => err,
                }
            }
            _ => Error::all_routes_failed(failures).with_primitive(name),
        }
    }
}

tta_core::impl_composition_ops!(RouterPrimitive<I, O>);

#[cfg(test)]
mod tests {
    use super::Tried;

    #[test]
    fn tried_routes_beyond_64_are_kept_apart() {
        let mut tried = Tried::new(130);
        for i in [0, 63, 64, 65, 129] {
            assert!(!tried.has(i));
            tried.set(i);
            assert!(tried.has(i));
        }
        let set: Vec<usize> = (0..130).filter(|&i| tried.has(i)).collect();
        assert_eq!(set, [0, 63, 64, 65, 129]);
    }
}
