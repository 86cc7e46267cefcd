//! One attempt on one route: its span, its call (or stream) raced against its deadline,
//! and every record of its outcome (health, metrics, ledger). A call settles when it
//! returns; a stream succeeds at its first chunk and settles when its body ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanBuilder, SpanKind, SpanRef, Status, TraceContextExt, Tracer};
use tokio::time::Instant;
use tta_core::deadline::DeadlineReached;
use tta_core::semconv::gen_ai;
use tta_core::{
    AttemptKind, Body, CostEntry, Detached, Error, ErrorClass, Permit, ReportsUsage,
    StreamPrimitive, Streamable, Streamed, TokenUsage, Usd, Verdict, WorkflowContext,
    WorkflowPrimitive,
};

use crate::metrics::{AttemptOutcome, Reason};
use crate::{BuiltRoute, Core, semconv};

/// What the request loop decided about an attempt before starting it.
pub(crate) struct Attempt<'a> {
    pub(crate) route: usize,
    pub(crate) reason: Reason,
    /// The first attempt of the request is a route call; later ones are fallbacks.
    pub(crate) kind: AttemptKind,
    pub(crate) permit: Permit<'a>,
    /// The attempt's own deadline (attempt timeout, or the caller's time minus a
    /// reserve for the next candidate), when it has one.
    pub(crate) deadline: Option<Instant>,
}

/// Whether a failure says something about the route's health. A bad request, a refused
/// content or a prompt too long for the window would fail the same way anywhere.
fn penalizes(class: ErrorClass) -> bool {
    !matches!(
        class,
        ErrorClass::InvalidRequest | ErrorClass::ContentFilter | ErrorClass::ContextLength
    )
}

/// What one request serves: calls (the value is the output) or streams (the value is
/// the streamed result, settled when its body ends).
pub(crate) trait Mode<I, O>: Send + Sync {
    type Value: Send;

    /// Whether a route can serve this mode.
    fn serves(route: &BuiltRoute<I, O>) -> bool;

    /// Runs the attempt; beside its result, the instant it ended when the attempt read
    /// the clock there and nothing waits after it (a call; not a stream, whose body
    /// goes on): the router's execution then ends at that instant.
    fn attempt<'a>(
        core: &'a Arc<Core<I, O>>,
        attempt: Attempt<'a>,
        input: I,
        cx: &'a WorkflowContext,
    ) -> impl Future<Output = (Result<Self::Value, Error>, Option<Instant>)> + Send + 'a;
}

/// Requests served by calling routes.
pub(crate) struct Calls;

/// Requests served by streaming routes.
pub(crate) struct Streams;

/// How a route streams: the route's streaming primitive, behind one object-safe method.
pub(crate) trait RouteStream<I, O>: Send + Sync {
    fn open<'a>(
        &'a self,
        input: I,
        cx: &'a WorkflowContext,
    ) -> BoxFuture<'a, Result<Streamed<O::Chunk>, Error>>
    where
        O: Streamable,
        I: 'a;
}

/// A streaming primitive as a route's stream.
pub(crate) struct StreamOf<P>(pub(crate) P);

impl<I, O, P> RouteStream<I, O> for StreamOf<P>
where
    O: Streamable,
    P: StreamPrimitive<I, Chunk = O::Chunk>,
{
    fn open<'a>(
        &'a self,
        input: I,
        cx: &'a WorkflowContext,
    ) -> BoxFuture<'a, Result<Streamed<O::Chunk>, Error>>
    where
        O: Streamable,
        I: 'a,
    {
        Box::pin(self.0.stream(input, cx))
    }
}

impl<I, O> Mode<I, O> for Calls
where
    I: Send + 'static,
    O: Send + 'static,
{
    type Value = O;

    fn serves(_route: &BuiltRoute<I, O>) -> bool {
        true
    }

    async fn attempt<'a>(
        core: &'a Arc<Core<I, O>>,
        attempt: Attempt<'a>,
        input: I,
        cx: &'a WorkflowContext,
    ) -> (Result<O, Error>, Option<Instant>) {
        let i = attempt.route;
        let route = &core.routes[i];
        let spanned = core.attempt_span(&attempt, cx);
        // Before the permit: dropped after it, even when the caller goes away mid-call.
        let _state = StateOnDrop::new(core, &attempt);
        let permit = attempt.permit;
        let base = spanned.as_ref().unwrap_or(cx);
        // Admitted just now: the permit's instant saves a clock read.
        let started = permit.admitted();
        let result = if attempt.deadline.is_none() && base.deadline().is_none() {
            // No deadline to race: the attempt runs on its context as it is.
            route.primitive.execute(input, base).await
        } else {
            let (attempt_cx, scope) = base.claim_deadline(attempt.deadline);
            scope
                .race(route.primitive.execute(input, &attempt_cx))
                .await
                .unwrap_or_else(|DeadlineReached| Err(core.attempt_timed_out(i)))
        };
        let ended = Instant::now();
        let took = ended.saturating_duration_since(started);
        let span = attempt_span_ref(base, spanned.is_some());
        match &result {
            Ok(output) => {
                let usage = core.usage.as_ref().and_then(|extract| extract(output));
                core.bill(i, attempt.kind, usage, false, cx, span.as_ref());
                core.metrics.attempt(i, AttemptOutcome::Ok, took, None);
                route.health.observe(took);
                permit.success();
            }
            Err(e) => {
                let verdict = core.judge_failure(i, e, took, attempt.deadline, cx, span.as_ref());
                settle(permit, verdict);
            }
        }
        end_span(span);
        (result, Some(ended))
    }
}

impl<I, O> Mode<I, O> for Streams
where
    I: Send + 'static,
    O: Streamable + Send + 'static,
    O::Chunk: ReportsUsage,
{
    type Value = Streamed<O::Chunk>;

    fn serves(route: &BuiltRoute<I, O>) -> bool {
        route.stream.is_some()
    }

    async fn attempt<'a>(
        core: &'a Arc<Core<I, O>>,
        attempt: Attempt<'a>,
        input: I,
        cx: &'a WorkflowContext,
    ) -> (Result<Streamed<O::Chunk>, Error>, Option<Instant>) {
        (Self::open(core, attempt, input, cx).await, None)
    }
}

impl Streams {
    /// A stream's attempt, until its first chunk.
    async fn open<'a, I, O>(
        core: &'a Arc<Core<I, O>>,
        attempt: Attempt<'a>,
        input: I,
        cx: &'a WorkflowContext,
    ) -> Result<Streamed<O::Chunk>, Error>
    where
        I: Send + 'static,
        O: Streamable + Send + 'static,
        O::Chunk: ReportsUsage,
    {
        let i = attempt.route;
        let route = &core.routes[i];
        let Some(stream) = &route.stream else {
            // Only routes that stream are planned for a stream.
            return Err(Error::no_route("the route does not stream"));
        };
        let spanned = core.attempt_span(&attempt, cx);
        // Before the permit, as for a call, until the first chunk; a detached permit is
        // the body's to settle.
        let _state = StateOnDrop::new(core, &attempt);
        let permit = attempt.permit;
        let own = spanned.is_some();
        let (attempt_cx, scope) = spanned
            .as_ref()
            .unwrap_or(cx)
            .claim_deadline(attempt.deadline);
        let started = Instant::now();
        let head = scope
            .race(stream.open(input, &attempt_cx))
            .await
            .unwrap_or_else(|DeadlineReached| Err(core.attempt_timed_out(i)));
        let ttft = started.elapsed();
        let span = attempt_span_ref(&attempt_cx, own);
        let streamed = match head {
            Ok(streamed) => streamed,
            Err(e) => {
                let verdict = core.judge_failure(i, &e, ttft, attempt.deadline, cx, span.as_ref());
                settle(permit, verdict);
                end_span(span);
                return Err(e);
            }
        };
        core.metrics.first_chunk(i, ttft);
        if let Some(span) = &span {
            span.set_attribute(KeyValue::new(semconv::ATTR_TTFT, ttft.as_secs_f64()));
        }
        let settlement = Settlement {
            core: Arc::clone(core),
            route: i,
            kind: attempt.kind,
            permit: Some(permit.detach()),
            cx: attempt_cx,
            own_span: own,
            ledger_cx: cx.clone(),
            started,
            ttft,
            chunks: 0,
            reported: None,
            estimated_output: 0,
        };
        // The first chunk counts too: it goes through the same accounting as the rest.
        let (first, body) = streamed.into_parts();
        let idle = core.idle_timeout.map(tta_core::IdleTimer::new);
        let mut body = RouteBody {
            body,
            settlement,
            idle,
        };
        if let Some(chunk) = &first {
            body.settlement.observe(chunk);
        }
        Ok(match first {
            Some(first) => Streamed::new(first, body),
            None => tta_core::first_chunk(body).await?,
        })
    }
}

/// The attempt's span: its context's when the attempt started one, else none (never
/// the caller's span, which is not the attempt's to annotate or end). Without a span,
/// the attempt builds no attributes and reads no wall clock to end one.
fn attempt_span_ref(cx: &WorkflowContext, own: bool) -> Option<SpanRef<'_>> {
    own.then(|| cx.otel_context().span())
}

fn end_span(span: Option<SpanRef<'_>>) {
    if let Some(span) = span {
        span.end();
    }
}

/// Records its route's breaker state when dropped ([`Core::state_after`]): at the end of
/// an attempt, or when its caller went away mid-call. An attempt declares it before its
/// permit, so it drops after the permit: a probe released unsettled leaves the breaker
/// open for the next probe, and the state gauge must not stay at half-open.
struct StateOnDrop<'a, I, O> {
    core: &'a Core<I, O>,
    route: usize,
    probe: bool,
}

impl<'a, I, O> StateOnDrop<'a, I, O> {
    fn new(core: &'a Core<I, O>, attempt: &Attempt<'_>) -> Self {
        Self {
            core,
            route: attempt.route,
            probe: attempt.permit.is_probe(),
        }
    }
}

impl<I, O> Drop for StateOnDrop<'_, I, O> {
    fn drop(&mut self) {
        self.core.state_after(self.route, self.probe);
    }
}

fn settle(permit: Permit<'_>, verdict: Verdict) {
    match verdict {
        Verdict::Success => permit.success(),
        Verdict::Failure { retry_after } => permit.failure(retry_after),
        Verdict::Released => drop(permit),
    }
}

impl<I, O> Core<I, O> {
    /// Starts the attempt's client span (GenAI conventions) and counts the decision.
    /// Returns the context of the attempt's span: none when the tracer makes no spans
    /// (no provider installed), where building one would only allocate a no-op span and
    /// a context for it.
    fn attempt_span(&self, attempt: &Attempt<'_>, cx: &WorkflowContext) -> Option<WorkflowContext> {
        let i = attempt.route;
        let route = &self.routes[i];
        self.metrics.decision(i, attempt.reason);
        if attempt.permit.is_probe() {
            self.metrics.state(i, tta_core::BreakerState::HalfOpen);
        }
        if !self.tracer.starts_spans() {
            return None;
        }
        let builder = SpanBuilder::from_name(route.span_name.clone())
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new(gen_ai::OPERATION_NAME, gen_ai::OPERATION_CHAT),
                KeyValue::new(gen_ai::PROVIDER_NAME, route.provider.clone()),
                KeyValue::new(gen_ai::REQUEST_MODEL, route.model.clone()),
                KeyValue::new(semconv::ATTR_ROUTE, route.name.to_arc()),
                KeyValue::new(semconv::ATTR_REASON, attempt.reason.as_str()),
            ]);
        let span = self
            .tracer
            .tracer()
            .build_with_context(builder, cx.otel_context());
        Some(cx.with_otel_context(cx.otel_context().with_span(span)))
    }

    /// Records a route's breaker state after an attempt settled, when it differs from
    /// the state the attempt was admitted in: a permit other than the probe is granted
    /// only while the breaker is closed, and the probe's half-open state was recorded at
    /// its admission. An attempt that changes nothing records nothing.
    fn state_after(&self, i: usize, probe: bool) {
        let admitted_in = if probe {
            tta_core::BreakerState::HalfOpen
        } else {
            tta_core::BreakerState::Closed
        };
        let now = self.routes[i].health.state();
        if now != admitted_in {
            self.metrics.state(i, now);
        }
    }

    fn attempt_timed_out(&self, i: usize) -> Error {
        Error::timeout(
            self.routes[i].name.to_arc(),
            "the attempt reached its deadline",
        )
    }

    /// Records what an attempt cost: the ledger, the cost and savings counters, the GenAI
    /// token histograms and the span's usage attributes. `usage: None` is a call priced
    /// per call (or at zero).
    fn bill(
        &self,
        i: usize,
        kind: AttemptKind,
        usage: Option<TokenUsage>,
        estimated: bool,
        cx: &WorkflowContext,
        span: Option<&SpanRef<'_>>,
    ) -> Usd {
        let route = &self.routes[i];
        let cost = route.price.cost(usage);
        let entry = CostEntry::spent(kind, route.name.to_arc(), usage.unwrap_or_default(), cost);
        cx.ledger()
            .record(if estimated { entry.estimated() } else { entry });
        self.metrics.cost(i, cost);
        if matches!(kind, AttemptKind::RouteCall | AttemptKind::Fallback) {
            self.metrics
                .savings(self.baseline(usage).saturating_sub(cost));
        }
        if let Some(usage) = usage {
            // A failed call billed for its prompt reports no output: none was produced,
            // and a count of 0 would pull the output histogram down. The span and the
            // histograms record the same figures.
            let output =
                (kind != AttemptKind::FailedBilled || usage.output > 0).then_some(usage.output);
            self.metrics.usage(i, usage.input, output);
            if !estimated && kind != AttemptKind::FailedBilled {
                self.observe_usage(usage);
            }
            if let Some(span) = span {
                span.set_attribute(KeyValue::new(
                    gen_ai::USAGE_INPUT_TOKENS,
                    usage.input as i64,
                ));
                if let Some(output) = output {
                    span.set_attribute(KeyValue::new(gen_ai::USAGE_OUTPUT_TOKENS, output as i64));
                }
            }
        }
        if let Some(span) = span {
            span.set_attribute(KeyValue::new(semconv::ATTR_COST, cost.dollars()));
        }
        cost
    }

    /// Records a failed attempt (metrics, billed usage, span) and says what its route's
    /// breaker makes of it.
    fn judge_failure(
        &self,
        i: usize,
        e: &Error,
        took: Duration,
        own_deadline: Option<Instant>,
        cx: &WorkflowContext,
        span: Option<&SpanRef<'_>>,
    ) -> Verdict {
        let route = &self.routes[i];
        let class = e.class();
        if let Some(usage) = e.billed_usage() {
            self.bill(i, AttemptKind::FailedBilled, Some(usage), false, cx, span);
        }
        if let Some(span) = span {
            span.set_attributes([
                KeyValue::new(semconv::ERROR_TYPE, class.as_str()),
                KeyValue::new(semconv::ATTR_ERROR_CLASS, class.as_str()),
            ]);
            span.set_status(Status::error(class.as_str()));
        }
        // Neither the caller's cancellation nor the caller's deadline is the route's
        // fault: the permit goes back unsettled. The attempt's own deadline (a timeout,
        // a reserve for the fallback) is.
        let own_limit =
            own_deadline.is_some_and(|own| cx.deadline().is_none_or(|caller| own < caller));
        // A limit inside a route refused this caller (one tenant's budget, say): the
        // router falls back, but the route is as healthy for everyone else as before.
        let callers_limit = e.is_cancelled()
            || e.is_limited()
            || (e.is_timeout() && !own_limit && cx.remaining().is_some_and(|r| r.is_zero()));
        if callers_limit {
            return Verdict::Released;
        }
        let outcome = if e.is_timeout() {
            AttemptOutcome::Timeout
        } else {
            AttemptOutcome::Error
        };
        self.metrics.attempt(i, outcome, took, Some(class));
        route.health.observe(took);
        if !penalizes(class) {
            // No penalty, and no proof of health either.
            return Verdict::Released;
        }
        Verdict::Failure {
            retry_after: match class {
                ErrorClass::Auth => Some(self.auth_cooldown),
                _ => e.retry_after(),
            },
        }
    }
}

/// What a streamed attempt's body settles when it ends.
struct Settlement<I, O> {
    core: Arc<Core<I, O>>,
    route: usize,
    kind: AttemptKind,
    /// `None` once settled.
    permit: Option<Detached>,
    /// The attempt's context: its span is the attempt's when `own_span`.
    cx: WorkflowContext,
    own_span: bool,
    /// The request's context: its ledger is billed.
    ledger_cx: WorkflowContext,
    started: Instant,
    ttft: Duration,
    chunks: u64,
    /// The last usage a chunk reported.
    reported: Option<TokenUsage>,
    estimated_output: u64,
}

impl<I, O> Settlement<I, O> {
    fn observe<C: ReportsUsage>(&mut self, chunk: &C) {
        self.chunks += 1;
        if let Some(usage) = chunk.token_usage() {
            self.reported = Some(usage);
        }
        self.estimated_output += chunk.estimated_output_tokens();
    }

    /// Settles the attempt once: `Ok(())` for a clean end, the error for a cut, `None`
    /// for a body dropped by its caller.
    fn settle(&mut self, end: Option<Result<(), &Error>>) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let core = &*self.core;
        let i = self.route;
        let route = &core.routes[i];
        let took = self.started.elapsed();
        let span = attempt_span_ref(&self.cx, self.own_span);
        // Reported usage when the provider sent it; else an estimate from the chunks
        // received (the prompt at the router's average input), marked as such.
        let (usage, estimated) = match self.reported {
            Some(usage) => (usage, false),
            None => (
                TokenUsage::new(core.expected_usage().input, self.estimated_output),
                true,
            ),
        };
        let clean = matches!(end, Some(Ok(())));
        let kind = if clean {
            self.kind
        } else {
            AttemptKind::InterruptedStream
        };
        core.bill(
            i,
            kind,
            Some(usage),
            estimated,
            &self.ledger_cx,
            span.as_ref(),
        );
        if self.chunks > 1 {
            let per_chunk = took.saturating_sub(self.ttft) / (self.chunks - 1) as u32;
            core.metrics.per_chunk(i, per_chunk);
        }
        let verdict = match end {
            Some(Ok(())) => {
                core.metrics.attempt(i, AttemptOutcome::Ok, took, None);
                route.health.observe(took);
                Verdict::Success
            }
            Some(Err(e)) => {
                core.metrics.interrupted(i);
                core.judge_failure(i, e, took, None, &self.ledger_cx, span.as_ref())
            }
            None => Verdict::Released,
        };
        let probe = permit.is_probe();
        route.health.settle(permit, verdict);
        core.state_after(i, probe);
        end_span(span);
    }
}

pin_project_lite::pin_project! {
    /// A streamed attempt's body: it counts the chunks and their usage, and settles cost
    /// and health when it ends, errs, or is dropped.
    struct RouteBody<I, O, C> {
        body: Body<C>,
        settlement: Settlement<I, O>,
        idle: Option<tta_core::IdleTimer>,
    }

    impl<I, O, C> PinnedDrop for RouteBody<I, O, C> {
        fn drop(this: Pin<&mut Self>) {
            this.project().settlement.settle(None);
        }
    }
}

impl<I, O, C: ReportsUsage> Stream for RouteBody<I, O, C> {
    type Item = Result<C, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if this.settlement.permit.is_none() {
            return Poll::Ready(None);
        }
        let item = match this.body.as_mut().poll_next(cx) {
            Poll::Ready(item) => item,
            Poll::Pending => {
                // A stall: the route's failure, not only the caller's wait.
                if let Some(idle) = this.idle.as_mut()
                    && idle.poll_elapsed(cx).is_ready()
                {
                    let name = this.settlement.core.routes[this.settlement.route]
                        .name
                        .to_arc();
                    let e = Error::timeout(name, format!("no chunk within {:?}", idle.limit()));
                    this.settlement.settle(Some(Err(&e)));
                    return Poll::Ready(Some(Err(e)));
                }
                return Poll::Pending;
            }
        };
        if let (Some(idle), Some(Ok(_))) = (this.idle.as_mut(), &item) {
            idle.restart();
        }
        match &item {
            Some(Ok(chunk)) => this.settlement.observe(chunk),
            Some(Err(e)) => this.settlement.settle(Some(Err(e))),
            None => this.settlement.settle(Some(Ok(()))),
        }
        Poll::Ready(item)
    }
}
