//! The span and the two generic metrics every primitive emits per execution.
//!
//! A primitive builds one [`Instrumentation`] when it is built: the instruments and every
//! label set are made then, so an execution only starts a span, reads the clock and adds
//! to pre-resolved instruments.

use std::borrow::Cow;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind, Status, TraceContextExt, Tracer};
use tokio::time::Instant;

use crate::bound::{BoundCounter, BoundHistogram};
use crate::semconv;
use crate::stream::{Body, Streamed};
use crate::{Error, ErrorKind, PrimitiveName, Telemetry, WorkflowContext};

crate::label_enum! {
    /// How one execution ended: the `outcome` label of the generic metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Error, Outcome};
    ///
    /// assert_eq!(Outcome::of(&Ok::<_, Error>(())), Outcome::Ok);
    /// assert_eq!(Outcome::of::<()>(&Err(Error::timeout("t", "late"))), Outcome::Timeout);
    /// assert_eq!(Outcome::Cancelled.as_str(), "cancelled");
    /// ```
    #[non_exhaustive]
    pub enum Outcome {
        /// Finished with a value.
        Ok => "ok",
        /// Finished with an error other than a timeout or cancellation.
        Error => "error",
        /// Finished with an error of kind timeout.
        Timeout => "timeout",
        /// Cancelled through the context, or its future was dropped before it finished.
        Cancelled => "cancelled",
    }
}

impl Outcome {
    /// The outcome of a finished execution.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Error, Outcome};
    /// assert_eq!(Outcome::of::<()>(&Err(Error::msg("x"))), Outcome::Error);
    /// ```
    pub fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => match e.kind() {
                ErrorKind::Timeout => Outcome::Timeout,
                ErrorKind::Cancelled => Outcome::Cancelled,
                _ => Outcome::Error,
            },
        }
    }
}

/// A primitive's span and generic metrics (`tta.primitive.executions`,
/// `tta.primitive.duration`), prepared once when the primitive is built.
///
/// # Examples
///
/// ```
/// use tta_core::{Instrumentation, PrimitiveName, Telemetry, WorkflowContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let inst = Instrumentation::new("echo", PrimitiveName::new("echo").unwrap(), &Telemetry::global());
/// let cx = WorkflowContext::new();
/// let out = inst.run(&cx, |_child| async { Ok::<_, tta_core::Error>(7) }).await;
/// assert_eq!(out.unwrap(), 7);
/// # }
/// ```
///
/// Cloning is cheap (one `Arc`): a streamed execution's body holds a clone, so its span
/// and metrics end when the body does.
#[derive(Clone)]
pub struct Instrumentation {
    core: Arc<Core>,
}

struct Core {
    kind: &'static str,
    name: PrimitiveName,
    /// `None` when the tracer makes no spans of its own ([`Telemetry::starts_spans`]).
    tracer: Option<Arc<BoxedTracer>>,
    /// Per outcome: the executions counter and the duration histogram, bound to
    /// `{primitive, kind, outcome}`.
    recorders: [(BoundCounter<u64>, BoundHistogram<f64>); Outcome::COUNT],
    labels: [[KeyValue; 3]; Outcome::COUNT],
}

impl Instrumentation {
    /// Creates the instruments and label sets for a primitive of `kind` named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Instrumentation, PrimitiveName, Telemetry};
    /// let inst = Instrumentation::new("cache", PrimitiveName::new("answers").unwrap(), &Telemetry::global());
    /// assert_eq!(inst.kind(), "cache");
    /// assert_eq!(inst.name().as_str(), "answers");
    /// ```
    pub fn new(kind: &'static str, name: PrimitiveName, telemetry: &Telemetry) -> Self {
        let meter = telemetry.meter();
        let executions = meter
            .u64_counter(semconv::PRIMITIVE_EXECUTIONS)
            .with_description("Executions of tta workflow primitives, by outcome.")
            .build();
        let duration = meter
            .f64_histogram(semconv::PRIMITIVE_DURATION)
            .with_description("Duration of tta workflow primitive executions.")
            .with_unit("s")
            .with_boundaries(semconv::DURATION_BUCKETS_SECONDS.to_vec())
            .build();
        let labels = Outcome::ALL.map(|outcome| {
            [
                KeyValue::new(semconv::LABEL_PRIMITIVE, name.to_arc()),
                KeyValue::new(semconv::LABEL_KIND, kind),
                KeyValue::new(semconv::LABEL_OUTCOME, outcome.as_str()),
            ]
        });
        let recorders = Outcome::ALL.map(|outcome| {
            let labels = &labels[outcome.index()];
            (
                BoundCounter::new(&executions, labels),
                BoundHistogram::new(&duration, labels),
            )
        });
        Self {
            core: Arc::new(Core {
                kind,
                name,
                tracer: telemetry.spans.then(|| Arc::clone(&telemetry.tracer)),
                recorders,
                labels,
            }),
        }
    }

    /// The primitive's kind (its span name).
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// assert_eq!(i.kind(), "fn");
    /// ```
    pub fn kind(&self) -> &'static str {
        self.core.kind
    }

    /// The primitive's name.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// assert_eq!(i.name().as_str(), "f");
    /// ```
    pub fn name(&self) -> &PrimitiveName {
        &self.core.name
    }

    /// The label set `{primitive, kind, outcome}` for `outcome`, for a primitive's own
    /// per-outcome instruments.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// assert_eq!(i.labels(Outcome::Ok).len(), 3);
    /// ```
    pub fn labels(&self, outcome: Outcome) -> &[KeyValue] {
        &self.core.labels[outcome.index()]
    }

    /// Starts an execution: a span named after the kind, child of the context's span.
    /// The returned [`Execution`] records the metrics when finished, or as cancelled
    /// when dropped unfinished.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// let cx = WorkflowContext::new();
    /// let exec = i.start(&cx);
    /// exec.finish(Outcome::Ok);
    /// ```
    #[inline]
    pub fn start<'a>(&'a self, cx: &'a WorkflowContext) -> Execution<'a> {
        let (child, recording) = match &self.core.tracer {
            Some(tracer) => {
                let (child, recording) = self.core.child_with_span(tracer, cx);
                (Cow::Owned(child), recording)
            }
            // No tracer: the span would be a no-op carrying the parent's span context,
            // so the execution runs on its caller's context, borrowed.
            None => (Cow::Borrowed(cx), false),
        };
        Execution {
            inst: CoreRef::Borrowed(&self.core),
            started: Instant::now(),
            cx: child,
            recording,
            finished: false,
        }
    }

    /// Runs `f` inside an execution: `f` gets the child context (whose span is this
    /// execution's span); cancellation of the context ends the execution with
    /// [`Error::cancelled`]; the outcome is recorded from the result.
    ///
    /// Each execution consumes one unit of tokio's cooperative budget, so a task that
    /// runs primitives in a loop yields to the other tasks of its worker now and then,
    /// even when every call completes at once (a cache hit never touches a tokio
    /// resource). Without this, such a loop starves its neighbours, and their timers
    /// fire late: timeouts that are not honoured.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns, or a cancelled error when the context is cancelled first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// let cx = WorkflowContext::new();
    /// cx.cancel();
    /// let r = i.run(&cx, |_| async { Ok::<_, Error>(()) }).await;
    /// assert!(r.unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub async fn run<T, F, Fut>(&self, cx: &WorkflowContext, f: F) -> Result<T, Error>
    where
        F: FnOnce(WorkflowContext) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        tokio::task::coop::consume_budget().await;
        let exec = self.start(cx);
        let result = self.until_cancelled(&exec, f, Err).await;
        exec.finish(Outcome::of(&result));
        result
    }

    /// [`run`](Self::run), handing `f` the instant the execution started beside its
    /// context: a caller that needs the time at once (a router's plan reads its routes'
    /// health as of now) saves a clock read.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns, or a cancelled error when the context is cancelled first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// let cx = WorkflowContext::new();
    /// let r = i.run_started(&cx, |_, started| async move {
    ///     Ok::<_, Error>(started <= tokio::time::Instant::now())
    /// });
    /// assert!(r.await.unwrap());
    /// # }
    /// ```
    pub async fn run_started<T, F, Fut>(&self, cx: &WorkflowContext, f: F) -> Result<T, Error>
    where
        F: FnOnce(WorkflowContext, Instant) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        tokio::task::coop::consume_budget().await;
        let exec = self.start(cx);
        let started = exec.started();
        // `run` keeps its own copy of these lines: calling this cost it 12 instructions
        // an execution, and a shared async helper 28 (callgrind, `hot_paths`).
        let result = self
            .until_cancelled(&exec, |child| f(child, started), Err)
            .await;
        exec.finish(Outcome::of(&result));
        result
    }

    /// [`run_started`](Self::run_started) for work that reads the clock as it ends (a
    /// router, for its last attempt's duration): `f`'s future hands back, beside its
    /// result, the instant its work ended, and the execution ends at that instant
    /// instead of reading the clock again. Its duration then leaves out what `f` did
    /// after it (for a router, the attempt's bookkeeping: well under a microsecond). With
    /// `None`, or when the context is cancelled, the execution reads the clock as `run`
    /// does.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns, or a cancelled error when the context is cancelled first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// let cx = WorkflowContext::new();
    /// let r = i.run_timed(&cx, |_, _started| async move {
    ///     let answer = Ok::<_, Error>(42);
    ///     (answer, Some(tokio::time::Instant::now()))
    /// });
    /// assert_eq!(r.await.unwrap(), 42);
    /// # }
    /// ```
    pub async fn run_timed<T, F, Fut>(&self, cx: &WorkflowContext, f: F) -> Result<T, Error>
    where
        F: FnOnce(WorkflowContext, Instant) -> Fut,
        Fut: Future<Output = (Result<T, Error>, Option<Instant>)>,
    {
        tokio::task::coop::consume_budget().await;
        let exec = self.start(cx);
        let started = exec.started();
        let (result, ended) = self
            .until_cancelled(&exec, |child| f(child, started), |e| (Err(e), None))
            .await;
        match ended {
            Some(ended) => {
                exec.finish_after(
                    Outcome::of(&result),
                    ended.saturating_duration_since(started),
                );
            }
            None => exec.finish(Outcome::of(&result)),
        }
        result
    }

    /// Runs `f` on the execution's child context until the context is cancelled; a
    /// cancellation yields `cancelled_as` of the cancelled error.
    async fn until_cancelled<R, F, Fut>(
        &self,
        exec: &Execution<'_>,
        f: F,
        cancelled_as: impl Fn(Error) -> R,
    ) -> R
    where
        F: FnOnce(WorkflowContext) -> Fut,
        Fut: Future<Output = R>,
    {
        let token = exec.context().cancellation_token();
        if token.is_cancelled() {
            return cancelled_as(self.core.cancelled());
        }
        let mut work = pin!(f(exec.context().clone()));
        // The wait for a cancellation starts only when the work first waits: a call that
        // completes in its first poll (a cache hit) registers no waiter with the token.
        let mut cancelled = pin!(None);
        std::future::poll_fn(|task| {
            // The work first: a ready result wins over a cancellation in the same poll.
            if let Poll::Ready(result) = work.as_mut().poll(task) {
                return Poll::Ready(result);
            }
            if cancelled.is_none() {
                cancelled.set(Some(token.cancelled()));
            }
            match cancelled.as_mut().as_pin_mut().map(|wait| wait.poll(task)) {
                Some(Poll::Ready(())) => Poll::Ready(cancelled_as(self.core.cancelled())),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

impl Instrumentation {
    /// [`run`](Self::run) for a streamed execution: `f` opens the stream and resolves at
    /// its first chunk. The execution's span gets the event `tta.stream.first_chunk` then,
    /// and stays open with the body: it ends, with the outcome recorded, when the body
    /// ends (`ok`, or the outcome of its error item), or as `cancelled` when the body is
    /// dropped first or the context is cancelled (the body then yields one cancelled
    /// error and ends). `tta.primitive.duration` covers the whole stream.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns before the first chunk, or a cancelled error.
    pub async fn run_stream<C, F, Fut>(
        &self,
        cx: &WorkflowContext,
        f: F,
    ) -> Result<Streamed<C>, Error>
    where
        C: Send + 'static,
        F: FnOnce(WorkflowContext) -> Fut,
        Fut: Future<Output = Result<Streamed<C>, Error>>,
    {
        self.run_stream_started(cx, |child, _| f(child)).await
    }

    /// [`run_stream`](Self::run_stream), handing `f` the instant the execution started
    /// beside its context, as [`run_started`](Self::run_started) does.
    ///
    /// # Errors
    ///
    /// Whatever `f` returns before the first chunk, or a cancelled error.
    pub async fn run_stream_started<C, F, Fut>(
        &self,
        cx: &WorkflowContext,
        f: F,
    ) -> Result<Streamed<C>, Error>
    where
        C: Send + 'static,
        F: FnOnce(WorkflowContext, Instant) -> Fut,
        Fut: Future<Output = Result<Streamed<C>, Error>>,
    {
        tokio::task::coop::consume_budget().await;
        let exec = self.start(cx);
        let started = exec.started();
        let streamed = match self
            .until_cancelled(&exec, |child| f(child, started), Err)
            .await
        {
            Ok(streamed) => streamed,
            Err(e) => {
                exec.finish(Outcome::of::<()>(&Err(e.clone())));
                return Err(e);
            }
        };
        if let Some(span) = exec.context().primitive_span() {
            span.add_event(semconv::EVENT_FIRST_CHUNK, vec![]);
        }
        let cancelled = exec
            .context()
            .cancellation_token()
            .clone()
            .cancelled_owned();
        let exec = exec.into_owned();
        Ok(streamed.map_body(move |body| InstrumentedBody {
            body,
            exec: Some(exec),
            cancelled,
        }))
    }
}

pin_project_lite::pin_project! {
    /// A stream's body that finishes its execution when it ends.
    struct InstrumentedBody<C> {
        body: Body<C>,
        // `None` once finished: the body is fused after its end or its error.
        exec: Option<Execution<'static>>,
        #[pin]
        cancelled: tokio_util::sync::WaitForCancellationFutureOwned,
    }
}

impl<C> futures_util::Stream for InstrumentedBody<C> {
    type Item = Result<C, Error>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(exec) = this.exec.as_ref() else {
            return Poll::Ready(None);
        };
        // The body first: a chunk that is ready wins over a cancellation in the same poll.
        let item = match this.body.as_mut().poll_next(cx) {
            Poll::Ready(item) => item,
            Poll::Pending => match this.cancelled.poll(cx) {
                Poll::Ready(()) => Some(Err(exec.inst.cancelled())),
                Poll::Pending => return Poll::Pending,
            },
        };
        match &item {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if let Some(exec) = this.exec.take() {
                    exec.finish(Outcome::of::<()>(&Err(e.clone())));
                }
            }
            None => {
                if let Some(exec) = this.exec.take() {
                    exec.finish(Outcome::Ok);
                }
            }
        }
        Poll::Ready(item)
    }
}

impl Core {
    /// The child context of an execution whose span `tracer` starts, and whether that
    /// span records. Kept out of line: [`Instrumentation::start`] without a tracer is a
    /// clock read and a few moves, inlined into each primitive.
    #[inline(never)]
    fn child_with_span(
        &self,
        tracer: &BoxedTracer,
        cx: &WorkflowContext,
    ) -> (WorkflowContext, bool) {
        let builder =
            SpanBuilder::from_name(Cow::Borrowed(self.kind)).with_kind(SpanKind::Internal);
        let mut span = tracer.build_with_context(builder, cx.otel_context());
        if span.is_recording() {
            // Attributes cost allocations: only for a span that records them.
            span.set_attributes([
                KeyValue::new(semconv::PRIMITIVE_NAME, self.name.to_arc()),
                KeyValue::new(semconv::PRIMITIVE_KIND, self.kind),
                KeyValue::new(semconv::WORKFLOW_ID, cx.workflow_id_shared()),
            ]);
            (
                cx.with_primitive_span(cx.otel_context().with_span(span)),
                true,
            )
        } else if span.span_context().is_valid() {
            // Not sampled, but its trace context still propagates to children.
            (
                cx.with_otel_context(cx.otel_context().with_span(span)),
                false,
            )
        } else {
            // A no-op span: nothing to attach, nothing to end.
            (cx.clone(), false)
        }
    }

    fn cancelled(&self) -> Error {
        Error::cancelled().with_primitive(self.name.to_arc())
    }

    fn record(&self, outcome: Outcome, elapsed: Duration, cx: &WorkflowContext, recording: bool) {
        let (executions, duration) = &self.recorders[outcome.index()];
        executions.add(1);
        duration.record(elapsed.as_secs_f64());
        if !recording {
            return;
        }
        let Some(span) = cx.primitive_span() else {
            return;
        };
        if outcome != Outcome::Ok {
            let error_type = match outcome {
                Outcome::Timeout => ErrorKind::Timeout.as_str(),
                Outcome::Cancelled => ErrorKind::Cancelled.as_str(),
                _ => "error",
            };
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type));
            span.set_status(Status::error(error_type));
        }
        span.end();
    }
}

impl std::fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumentation")
            .field("kind", &self.core.kind)
            .field("name", &self.core.name)
            .finish_non_exhaustive()
    }
}

/// One running execution of an instrumented primitive.
///
/// Finish it with [`Execution::finish`]; dropping it unfinished (the caller's future
/// was dropped) records the outcome `cancelled` and ends the span.
#[must_use = "an execution records its metrics when finished or dropped"]
pub struct Execution<'a> {
    inst: CoreRef<'a>,
    started: Instant,
    /// The execution's own context (with its span), or its caller's when it has none.
    cx: Cow<'a, WorkflowContext>,
    /// Whether this execution's span records (and so needs its status and its end).
    recording: bool,
    finished: bool,
}

impl Execution<'_> {
    /// The child context: pass it to inner primitives so their spans nest under this one.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// let cx = WorkflowContext::builder().workflow_id("wf-9").build().unwrap();
    /// let exec = i.start(&cx);
    /// assert_eq!(exec.context().workflow_id(), "wf-9");
    /// exec.finish(Outcome::Ok);
    /// ```
    pub fn context(&self) -> &WorkflowContext {
        &self.cx
    }

    /// When the execution started.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// let cx = WorkflowContext::new();
    /// let exec = i.start(&cx);
    /// assert!(exec.started() <= tokio::time::Instant::now());
    /// exec.finish(Outcome::Ok);
    /// ```
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Records the outcome and ends the span.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// i.start(&WorkflowContext::new()).finish(Outcome::Error);
    /// ```
    pub fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.inst
            .record(outcome, self.started.elapsed(), &self.cx, self.recording);
    }
}

impl Execution<'_> {
    /// Records the outcome with a duration the caller already measured (one clock read
    /// shared with the primitive's own metrics), and ends the span.
    ///
    /// # Examples
    ///
    /// ```
    /// # use tta_core::*;
    /// let i = Instrumentation::new("fn", PrimitiveName::new("f").unwrap(), &Telemetry::global());
    /// let cx = WorkflowContext::new();
    /// let exec = i.start(&cx);
    /// let elapsed = exec.started().elapsed();
    /// exec.finish_after(Outcome::Ok, elapsed);
    /// ```
    pub fn finish_after(mut self, outcome: Outcome, elapsed: Duration) {
        self.finished = true;
        self.inst.record(outcome, elapsed, &self.cx, self.recording);
    }
}

impl Drop for Execution<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.inst.record(
                Outcome::Cancelled,
                self.started.elapsed(),
                &self.cx,
                self.recording,
            );
        }
    }
}

impl std::fmt::Debug for Execution<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution")
            .field("kind", &self.inst.kind)
            .field("name", &self.inst.name)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// The instrumentation of an execution: borrowed for calls, shared (owned) for the body
/// of a stream, which outlives the call that started it.
enum CoreRef<'a> {
    Borrowed(&'a Arc<Core>),
    Owned(Arc<Core>),
}

impl std::ops::Deref for CoreRef<'_> {
    type Target = Core;

    fn deref(&self) -> &Core {
        match self {
            CoreRef::Borrowed(core) => core,
            CoreRef::Owned(core) => core,
        }
    }
}

impl Execution<'_> {
    /// The same execution, owning its instrumentation: for a stream's body, which
    /// finishes it when it ends (or records it cancelled when dropped).
    pub(crate) fn into_owned(mut self) -> Execution<'static> {
        let core = match &self.inst {
            CoreRef::Borrowed(core) => Arc::clone(core),
            CoreRef::Owned(core) => Arc::clone(core),
        };
        // This handle hands its execution over: it records nothing itself.
        self.finished = true;
        Execution {
            inst: CoreRef::Owned(core),
            started: self.started,
            cx: Cow::Owned(self.cx.as_ref().clone()),
            recording: self.recording,
            finished: false,
        }
    }
}
