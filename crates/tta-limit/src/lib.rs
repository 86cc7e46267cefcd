//! Exact budgets and rate limits for tta workflows, per tenant, in one process or shared
//! by every replica on Redis.
//!
//! A [`LimitLayer`] wraps a primitive (a router, a cache around one) with limits per key:
//! requests, tokens and dollars per window, and calls at once. The key is a tenant read
//! from the context's metadata ([`LimitBuilder::tenant_from`]) or one global key.
//!
//! # Budgets by reservation
//!
//! Before a call runs, the limit **reserves** the most it can use: one request; its
//! input's [`MaxUsage`] in tokens; and in dollars, the most that usage can be billed
//! per the [`CostBound`] (a router's `cost_bound()`: each route at most once, the
//! dearest first, so a billed failure and its fallback are both covered). After
//! the call, or when a stream's body ends or is dropped, it **settles**: the reservation
//! is given back and what the call really used (the cost ledger's exact dollars and
//! tokens for the call) is added. So a window's spend can never pass its cap while
//! inputs declare honest maxima, under any concurrency and across replicas.
//!
//! An input that declares no maximum (a request without `max_tokens`) reserves
//! everything the window has left, so it runs alone against that budget: the most it
//! can overshoot by is itself, and an overshoot is counted (`tta.limit.overshoots`,
//! [`LimitStats::overshoots`]).
//!
//! A call that cannot be reserved fails at once with an error of kind
//! [`limited`](tta_core::ErrorKind::Limited), class rate limited, with a retry-after: the
//! window's end when the window is spent, at most 250 ms when calls in flight hold
//! the rest. Its source is a [`LimitExceeded`].
//!
//! # Stores
//!
//! [`MemoryStore`] keeps the counters in this process; `RedisStore` (feature `redis`)
//! in Redis, through one Lua script that is the only writer, so several processes
//! share one budget. When the store cannot answer, each resource follows its
//! [`OnStoreDown`] policy: by default USD budgets fail closed (refused) and rates fail
//! open (let through, counted).
//!
//! # Metrics
//!
//! Besides the generic `tta.primitive.*` metrics (kind `limit`):
//!
//! | metric | labels |
//! |---|---|
//! | `tta.limit.decisions` | `limit`, `resource`, `result` (`allowed`, `refused`, `failed_open`, `failed_closed`), and `tenant` for listed tenants only |
//! | `tta.limit.overshoots` | `limit`, `resource` |
//! | `tta.limit.store.errors` | `limit`, `op` (`reserve`, `settle`) |
//!
//! Reservations are not spend: the cost ledger, and so `tta.router.cost.usd`, records
//! only what calls were billed.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tta_core::{from_sync_fn, AttemptKind, CostBound, CostEntry, Layer, Price, TokenUsage, Usd, WorkflowContext};
//! use tta_limit::LimitLayer;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! /// A prompt that says the most it may use.
//! struct Prompt(u64);
//! impl tta_core::MaxUsage for Prompt {
//!     fn max_usage(&self) -> Option<TokenUsage> { Some(TokenUsage::new(self.0, 100)) }
//! }
//! // A model that bills $0.01 per call (it would bill at most $0.02 per call).
//! let model = from_sync_fn(|_: Prompt, cx: &WorkflowContext| {
//!     cx.ledger().record(CostEntry::spent(AttemptKind::RouteCall, "m", TokenUsage::new(10, 10), Usd::from_dollars(0.01).unwrap()));
//!     Ok("answer")
//! });
//! let budget = LimitLayer::builder()
//!     .usd_per(0.05, Duration::from_secs(3600))
//!     .cost_bound(CostBound::new(Price::per_call(0.02).validate().unwrap(), 1))
//!     .build()?;
//! let model = budget.layer(model);
//! let cx = WorkflowContext::new();
//! let mut answered = 0;
//! while model.execute(Prompt(10), &cx).await.is_ok() {
//!     answered += 1;
//! }
//! // $0.04 spent; the fifth call might cost $0.02 and only $0.01 is left.
//! assert_eq!(answered, 4);
//! assert_eq!(cx.ledger().totals().spent, Usd::from_dollars(0.04).unwrap());
//! # Ok(()) }
//! ```
#![doc(test(attr(deny(warnings))))]

mod builder;
mod metrics;
pub mod semconv;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{FutureExt, Stream};
use opentelemetry::KeyValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tta_core::{
    Body, CostBound, CostLedger, Error, Instrumentation, MaxUsage, PrimitiveName, StreamPrimitive,
    Streamed, Telemetry, Usd, WorkflowContext, WorkflowPrimitive,
};

pub use builder::{BuildError, LimitBuilder, LimitLayer, MAX_WINDOW, OnStoreDown, Resource};
pub use metrics::{LimitStats, Verdict};
pub use store::{LimitStore, MemoryStore, Refusal};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreBuilder};

use builder::Rule;
use metrics::{LimitMetrics, StoreOp};
use store::{Amount, Ask, Decision, Line, Settlement};

/// The key of calls without the tenant metadata entry.
const NO_TENANT: &str = "-";
/// The key of a limit without a tenant key.
const GLOBAL: &str = "*";
/// The longest retry-after for a refusal caused by calls in flight: one of them may
/// settle at any moment.
const HELD_RETRY: Duration = Duration::from_millis(250);
/// Per-tenant semaphores kept above this many are swept of idle ones.
const SWEEP_SEMAPHORES_AT: usize = 4_096;

/// Why a limit refused a call: the source of its `limited` error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::{from_sync_fn, Layer, WorkflowContext};
/// use tta_limit::{LimitExceeded, LimitLayer, Resource};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let one = LimitLayer::builder().requests_per(1, Duration::from_secs(10)).build()?;
/// let echo = one.layer(from_sync_fn(|q: String, _| Ok(q)));
/// let cx = WorkflowContext::new();
/// echo.execute("a".into(), &cx).await?;
/// let err = echo.execute("b".into(), &cx).await.unwrap_err();
/// let why = err.downcast_ref::<LimitExceeded>().unwrap();
/// assert_eq!(why.resource(), Resource::Requests);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} limit reached: {}", resource.as_str(), describe(*.reason))]
pub struct LimitExceeded {
    resource: Resource,
    reason: Option<Refusal>,
}

fn describe(reason: Option<Refusal>) -> &'static str {
    match reason {
        Some(Refusal::Spent { .. }) => "this window is spent",
        Some(Refusal::Held { .. }) => "calls in flight hold what is left",
        Some(Refusal::TooLarge) => "the call's maximum is above the limit",
        None => "no slot free",
    }
}

impl LimitExceeded {
    /// The resource that refused.
    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// Why the store refused; `None` for concurrency.
    pub fn refusal(&self) -> Option<Refusal> {
        self.reason
    }
}

/// The limit's store did not answer and the policy refuses: the source of its
/// `limited` error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limit store unavailable; {resource} fails closed", resource = .0.as_str())]
pub struct StoreUnavailable(pub Resource);

/// A primitive with limits around it; made by [`LimitLayer`]'s [`Layer`](tta_core::Layer).
pub struct LimitPrimitive<P> {
    pub(crate) inner: P,
    pub(crate) shared: Arc<Shared>,
}

impl<P> std::fmt::Debug for LimitPrimitive<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitPrimitive")
            .field("name", self.shared.inst.name())
            .field("store", &self.shared.store.kind())
            .finish_non_exhaustive()
    }
}

/// What every primitive of one layer shares: settings, store, metrics, semaphores.
pub(crate) struct Shared {
    inst: Instrumentation,
    rules: Vec<Rule>,
    concurrency: Option<usize>,
    cost_bound: Option<CostBound>,
    tenant_key: Option<String>,
    store: Arc<dyn LimitStore>,
    on_down: [OnStoreDown; Resource::COUNT],
    hold: Duration,
    metrics: LimitMetrics,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Reservation ids: this process's random prefix, then a sequence number.
    id_prefix: u64,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", self.inst.name())
            .field("rules", &self.rules)
            .field("concurrency", &self.concurrency)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Shared {
    #[allow(clippy::too_many_arguments, reason = "one call, from the builder")]
    pub(crate) fn new(
        name: PrimitiveName,
        rules: Vec<Rule>,
        concurrency: Option<usize>,
        cost_bound: Option<CostBound>,
        tenant_key: Option<String>,
        store: Arc<dyn LimitStore>,
        on_down: [OnStoreDown; Resource::COUNT],
        hold: Duration,
        metrics: LimitMetrics,
        telemetry: Telemetry,
    ) -> Self {
        Self {
            inst: Instrumentation::new("limit", name, &telemetry),
            rules,
            concurrency,
            cost_bound,
            tenant_key,
            store,
            on_down,
            hold,
            metrics,
            semaphores: Mutex::new(HashMap::new()),
            id_prefix: tta_core::random_seed(),
            next_id: AtomicU64::new(0),
        }
    }

    fn key<'c>(&self, cx: &'c WorkflowContext) -> &'c str {
        match &self.tenant_key {
            None => GLOBAL,
            Some(k) => cx.metadata(k).unwrap_or(NO_TENANT),
        }
    }

    fn limited(&self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::limited(self.inst.name().to_arc(), "refused by a limit").with_source(source)
    }

    fn slot(&self, key: &str) -> Option<Result<OwnedSemaphorePermit, ()>> {
        let n = self.concurrency?;
        let mut map = self
            .semaphores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > SWEEP_SEMAPHORES_AT {
            map.retain(|_, s| s.available_permits() < n);
        }
        let semaphore = Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(n))),
        );
        drop(map);
        Some(semaphore.try_acquire_owned().map_err(|_| ()))
    }

    fn line(&self, rule: &Rule, max: Option<tta_core::TokenUsage>) -> Line {
        let amount = match rule.resource {
            Resource::Requests | Resource::Concurrency => Amount::Exact(1),
            Resource::Tokens => max.map_or(Amount::Rest, |u| Amount::Exact(u.total())),
            Resource::Usd => match (max, &self.cost_bound) {
                (Some(u), Some(bound)) => Amount::Exact(bound.max_cost(u).picos()),
                _ => Amount::Rest,
            },
        };
        Line::new(rule.resource, rule.cap, rule.window, amount)
    }

    /// Reserves for one call, or refuses it with a `limited` error.
    async fn admit(
        self: &Arc<Self>,
        max: Option<tta_core::TokenUsage>,
        cx: &WorkflowContext,
        scope: Arc<CostLedger>,
    ) -> Result<Hold, Error> {
        let key = self.key(cx);
        let span = cx.primitive_span();
        if let Some(span) = &span {
            span.set_attribute(KeyValue::new(semconv::ATTR_KEY, key.to_owned()));
        }
        let refuse = |resource: Resource, verdict: Verdict, error: Error| {
            self.metrics.decision(resource, verdict, key);
            self.metrics.call(verdict);
            if let Some(span) = &span {
                span.set_attributes([
                    KeyValue::new(semconv::ATTR_RESULT, verdict.as_str()),
                    KeyValue::new(semconv::ATTR_REFUSED_BY, resource.as_str()),
                ]);
            }
            error
        };
        let permit = match self.slot(key) {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err(())) => {
                return Err(refuse(
                    Resource::Concurrency,
                    Verdict::Refused,
                    self.limited(LimitExceeded {
                        resource: Resource::Concurrency,
                        reason: None,
                    }),
                ));
            }
        };
        let lines: Vec<Line> = self.rules.iter().map(|r| self.line(r, max)).collect();
        let mut hold = Hold {
            shared: Arc::clone(self),
            key: key.to_owned(),
            id: String::new(),
            lines,
            reserved: None,
            scope,
            permit,
            // Nothing to settle until the reservation is made.
            settled: true,
        };
        let mut verdict = Verdict::Allowed;
        if !hold.lines.is_empty() {
            hold.id = format!(
                "{:016x}-{}",
                self.id_prefix,
                self.next_id.fetch_add(1, Ordering::Relaxed)
            );
            let ask = Ask {
                limit: self.inst.name().as_str(),
                key,
                id: &hold.id,
                hold: self.hold,
                lines: &hold.lines,
            };
            match self.store.reserve(ask).await {
                Ok(Decision::Granted(amounts)) => hold.reserved = Some(amounts),
                Ok(Decision::Refused { line, reason }) => {
                    let resource = hold.lines.get(line).map_or(Resource::Usd, |l| l.resource);
                    let retry_after = match reason {
                        Refusal::Spent { window_ends_in } => Some(window_ends_in),
                        Refusal::Held { window_ends_in } => Some(window_ends_in.min(HELD_RETRY)),
                        Refusal::TooLarge => None,
                    };
                    let mut error = self.limited(LimitExceeded {
                        resource,
                        reason: Some(reason),
                    });
                    if let Some(after) = retry_after {
                        error = error.with_retry_after(after.max(Duration::from_millis(1)));
                    }
                    return Err(refuse(resource, Verdict::Refused, error));
                }
                Err(_) => {
                    self.metrics.store_error(StoreOp::Reserve);
                    let closed = hold
                        .lines
                        .iter()
                        .find(|l| self.on_down[l.resource.index()] == OnStoreDown::FailClosed);
                    if let Some(line) = closed {
                        let resource = line.resource;
                        return Err(refuse(
                            resource,
                            Verdict::FailedClosed,
                            self.limited(StoreUnavailable(resource)),
                        ));
                    }
                    verdict = Verdict::FailedOpen;
                }
            }
        }
        for line in &hold.lines {
            self.metrics.decision(line.resource, verdict, key);
        }
        if hold.permit.is_some() {
            self.metrics
                .decision(Resource::Concurrency, Verdict::Allowed, key);
        }
        self.metrics.call(verdict);
        self.metrics.hold();
        hold.settled = false;
        if let Some(span) = &span {
            span.set_attribute(KeyValue::new(semconv::ATTR_RESULT, verdict.as_str()));
            if let Some(i) = hold.lines.iter().position(|l| l.resource == Resource::Usd)
                && let Some(reserved) = &hold.reserved
            {
                span.set_attribute(KeyValue::new(
                    semconv::ATTR_RESERVED_USD,
                    Usd::from_picos(reserved[i]).dollars(),
                ));
            }
        }
        Ok(hold)
    }
}

/// One call's reservation (and concurrency slot) until it settles. Dropped without
/// [`settle`](Self::settle) (a cancelled call, a dropped stream), it settles anyway: at
/// once for an in-process store, on a spawned task otherwise.
struct Hold {
    shared: Arc<Shared>,
    key: String,
    id: String,
    lines: Vec<Line>,
    /// What the store reserved; `None` when nothing was (failed open, or no line).
    reserved: Option<Vec<u64>>,
    /// The call's own ledger: what it really cost.
    scope: Arc<CostLedger>,
    permit: Option<OwnedSemaphorePermit>,
    /// The settlement has been taken (run, or handed to a task).
    settled: bool,
}

impl Hold {
    /// Settles now, waiting for the store. Returns the dollars the call cost.
    async fn settle(mut self) -> Usd {
        let spent = self.scope.totals().spent;
        self.settlement().await;
        spent
    }

    /// The settlement, owning what it needs; leaves `self` with nothing to settle.
    fn settlement(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let key = std::mem::take(&mut self.key);
        let id = std::mem::take(&mut self.id);
        let lines = std::mem::take(&mut self.lines);
        let reserved = self.reserved.take();
        let totals = self.scope.totals();
        let permit = self.permit.take();
        let was_held = !std::mem::replace(&mut self.settled, true);
        async move {
            if let Some(reserved) = reserved {
                let used: Vec<u64> = lines
                    .iter()
                    .map(|l| match l.resource {
                        Resource::Requests | Resource::Concurrency => 1,
                        Resource::Tokens => totals.usage.total(),
                        Resource::Usd => totals.spent.picos(),
                    })
                    .collect();
                let settlement = Settlement {
                    limit: shared.inst.name().as_str(),
                    key: &key,
                    id: &id,
                    hold: shared.hold,
                    lines: &lines,
                    reserved: &reserved,
                    used: &used,
                };
                match shared.store.settle(settlement).await {
                    Ok(after) => {
                        for (line, used) in lines.iter().zip(after) {
                            if used > line.cap {
                                shared.metrics.overshoot(line.resource);
                            }
                        }
                    }
                    Err(_) => shared.metrics.store_error(StoreOp::Settle),
                }
            }
            drop(permit);
            if was_held {
                shared.metrics.release();
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut settle = Box::pin(self.settlement());
        if settle.as_mut().now_or_never().is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(settle);
        }
    }
}

impl<P> LimitPrimitive<P> {
    /// What the limit has decided since it was built, without a metrics backend.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_sync_fn, Layer, WorkflowContext};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let limit = tta_limit::LimitLayer::builder().concurrency(4).build()?;
    /// let echo = limit.layer(from_sync_fn(|q: String, _| Ok(q)));
    /// echo.execute("q".into(), &WorkflowContext::new()).await?;
    /// let stats = echo.stats();
    /// assert_eq!((stats.allowed, stats.refused, stats.holding), (1, 0, 0));
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> LimitStats {
        self.shared.metrics.stats()
    }

    /// The wrapped primitive.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Runs the call through the limit: [`WorkflowPrimitive::execute`], inherent so a
    /// call that does not fit names the unmet bound.
    ///
    /// # Errors
    ///
    /// A `limited` error when a limit refuses; the inner primitive's error otherwise.
    pub async fn execute<I>(&self, input: I, cx: &WorkflowContext) -> Result<P::Output, Error>
    where
        P: WorkflowPrimitive<I>,
        P::Output: Send,
        I: MaxUsage + Send,
    {
        <Self as WorkflowPrimitive<I>>::execute(self, input, cx).await
    }
}

impl<I, P> WorkflowPrimitive<I> for LimitPrimitive<P>
where
    P: WorkflowPrimitive<I>,
    P::Output: Send,
    I: MaxUsage + Send,
{
    type Output = P::Output;

    fn name(&self) -> &str {
        self.shared.inst.name().as_str()
    }

    async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<P::Output, Error> {
        self.shared
            .inst
            .run(cx, |cx| async move {
                let (child, scope) = cx.with_ledger_scope();
                let hold = self
                    .shared
                    .admit(input.max_usage(), &cx, Arc::clone(&scope))
                    .await?;
                let result = self.inner.execute(input, &child).await;
                let spent = hold.settle().await;
                if let Some(span) = cx.primitive_span() {
                    span.set_attribute(KeyValue::new(semconv::ATTR_SETTLED_USD, spent.dollars()));
                }
                result
            })
            .await
    }
}

impl<I, P> StreamPrimitive<I> for LimitPrimitive<P>
where
    P: StreamPrimitive<I>,
    I: MaxUsage + Send,
{
    type Chunk = P::Chunk;

    fn name(&self) -> &str {
        self.shared.inst.name().as_str()
    }

    /// A stream is reserved for before its first chunk and settles when its body ends,
    /// fails or is dropped: a stream cut mid-way settles at what the ledger billed for it.
    fn stream(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Streamed<P::Chunk>, Error>> + Send {
        self.shared.inst.run_stream(cx, move |cx| async move {
            let (child, scope) = cx.with_ledger_scope();
            let hold = self
                .shared
                .admit(input.max_usage(), &cx, Arc::clone(&scope))
                .await?;
            match self.inner.stream(input, &child).await {
                Ok(streamed) => Ok(streamed.map_body(move |body| LimitBody {
                    body,
                    hold: Some(hold),
                })),
                Err(e) => {
                    hold.settle().await;
                    Err(e)
                }
            }
        })
    }
}

/// A body that settles its reservation when it ends (or, through the hold's drop,
/// when it is dropped).
struct LimitBody<C> {
    body: Body<C>,
    hold: Option<Hold>,
}

impl<C> Stream for LimitBody<C> {
    type Item = Result<C, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = std::task::ready!(this.body.as_mut().poll_next(cx));
        if matches!(item, None | Some(Err(_))) {
            // The body is done: the ledger holds what the stream was billed.
            drop(this.hold.take());
        }
        Poll::Ready(item)
    }
}

tta_core::impl_composition_ops!(LimitPrimitive<P>);
