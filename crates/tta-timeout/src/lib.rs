//! A two-phase timeout for tta workflows.
//!
//! ```text
//!  start            start + timeout            start + timeout + grace
//!    |---- phase one ----|------- phase two -------|
//!    on time: `ok`       late: span event           hard limit: inner future dropped,
//!                        `tta.timeout.late`;        `Error` of kind timeout naming this
//!                        a result now is `late_ok`  primitive (or the fallback runs)
//! ```
//!
//! - **Phase one**, until `timeout`: the inner primitive runs; a result is `ok`.
//! - **Phase two**, from `timeout` to `timeout + grace`: the call is marked late (a span
//!   event and, if it then succeeds, the outcome `late_ok`) but keeps running.
//! - **Hard limit**, at `timeout + grace`: the inner future is dropped (cancelled) and an
//!   [`Error`] of kind timeout is returned whose source is [`Elapsed`], or the fallback
//!   runs on a copy of the input.
//!
//! The inner primitive sees the deadline: its context's deadline is the earlier of the
//! caller's and `start + timeout + grace`. When the caller's remaining budget is the
//! shorter, the limit shrinks to it and the span says so
//! (`tta.timeout.budget_shrunk = true`); nested timeouts therefore let the tighter win.
//! An inner error of kind timeout is passed through unchanged: it names the inner
//! primitive and has no [`Elapsed`] source.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tta_core::{from_fn, Error, WorkflowContext};
//! use tta_timeout::TimeoutPrimitive;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let slow_llm = from_fn(|prompt: String, _| async move {
//!     tokio::time::sleep(Duration::from_millis(2_500)).await;
//!     Ok::<_, Error>(format!("answer to {prompt}"))
//! });
//! let guarded = TimeoutPrimitive::builder(slow_llm)
//!     .name("llm_timeout")
//!     .timeout(Duration::from_secs(2))
//!     .grace(Duration::from_secs(1))
//!     .build()?;
//! // Late (after 2 s) but within the grace: the answer is kept, recorded as `late_ok`.
//! let out = guarded.execute("q".to_owned(), &WorkflowContext::new()).await?;
//! assert_eq!(out, "answer to q");
//! # Ok(()) }
//! ```
//!
//! # Metrics
//!
//! Besides the generic `tta.primitive.*` metrics (kind `timeout`):
//!
//! | metric | labels |
//! |---|---|
//! | `tta.timeout.outcomes` | `primitive`, `outcome` (`ok`, `late_ok`, `timeout`, `error`) |
//! | `tta.timeout.rate` (gauge, 0 to 1) | `primitive`: the share of timeouts among the **last 128 executions** |
//! | `tta.timeout.fallbacks` | `primitive`, `result` (`ok`, `error`) |
//!
//! An execution cancelled by its caller (its context cancelled or its future dropped) is
//! recorded only in the generic metrics, with outcome `cancelled`.
//!
//! # Wrapping
//!
//! [`TimeoutLayer`] is the timeout's validated settings and its
//! [`Layer`](tta_core::Layer): `Stack::new().layer(timeout).layer(cache).into_primitive(router)`
//! is a timeout around a cache around a router. [`TimeoutPrimitive::builder`] is sugar
//! for the same settings applied to one inner primitive.
//!
//! # Features
//!
//! - `tower`: turns on `tta_core::tower`, whose `TowerLayer` serves a [`TimeoutLayer`]
//!   as a tower `Layer` around any `Service`.
#![doc(test(attr(deny(warnings))))]

mod builder;
mod error;
mod fallback;
mod metrics;
pub mod semconv;
mod stream;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use opentelemetry::KeyValue;
use tokio::time::{Instant, sleep_until};
use tta_core::deadline::DeadlineReached;
use tta_core::{
    Around, Error, Execution, Instrumentation, Outcome, WorkflowContext, WorkflowPrimitive,
};

pub use builder::{TimeoutBuilder, TimeoutLayer};
pub use error::{BuildError, Elapsed};
pub use fallback::{Fallback, NoFallback, WithFallback};

pub use metrics::TimeoutStats;

use metrics::{FallbackResult, TimeoutMetrics, TimeoutOutcome};

/// The longest timeout, and the longest grace, a [`TimeoutPrimitive`] accepts: 24 hours.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Wraps a primitive with a two-phase timeout; see the [crate docs](crate).
///
/// Build it with [`TimeoutPrimitive::builder`].
pub struct TimeoutPrimitive<P, F = NoFallback> {
    inner: P,
    fallback: F,
    timeout: Duration,
    grace: Duration,
    inst: Instrumentation,
    idle: Option<Duration>,
    total: Option<Duration>,
    /// Shared with the bodies of streams, which record their outcome when they end.
    metrics: Arc<TimeoutMetrics>,
}

impl<P> TimeoutPrimitive<P, NoFallback> {
    /// Starts configuring a timeout around `inner`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = tta_timeout::TimeoutPrimitive::builder(tta_core::from_fn(|(), _| async { Ok::<_, tta_core::Error>(()) }))
    ///     .timeout(Duration::from_millis(250))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(t.grace(), Duration::ZERO);
    /// ```
    pub fn builder(inner: P) -> TimeoutBuilder<Around<P>> {
        TimeoutBuilder::new(Around(inner))
    }
}

impl<P, F> TimeoutPrimitive<P, F> {
    pub(crate) fn from_layer(inner: P, layer: TimeoutLayer<F>) -> Self {
        Self {
            inner,
            fallback: layer.fallback,
            timeout: layer.timeout,
            grace: layer.grace,
            idle: layer.idle,
            total: layer.total,
            metrics: Arc::new(TimeoutMetrics::new(&layer.name, &layer.telemetry)),
            inst: Instrumentation::new("timeout", layer.name, &layer.telemetry),
        }
    }

    /// When a call is marked late.
    ///
    /// # Examples
    ///
    /// See [`TimeoutPrimitive::builder`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a late call may still run.
    ///
    /// # Examples
    ///
    /// See [`TimeoutPrimitive::builder`].
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Runs the timeout: [`WorkflowPrimitive::execute`], as an inherent method so that a
    /// call around an inner primitive that does not fit fails to compile naming the
    /// unmet bound, instead of "no method named `execute`".
    ///
    /// # Errors
    ///
    /// The inner primitive's error, or an error of kind timeout at the hard limit (or
    /// the fallback's result).
    pub async fn execute<I>(&self, input: I, cx: &WorkflowContext) -> Result<P::Output, Error>
    where
        P: WorkflowPrimitive<I>,
        P::Output: Send,
        F: Fallback<I, P::Output>,
        I: Send,
    {
        <Self as WorkflowPrimitive<I>>::execute(self, input, cx).await
    }

    /// Counts of its outcomes since it was built, without a metrics backend.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tta_core::{from_sync_fn, WorkflowContext};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let t = tta_timeout::TimeoutPrimitive::builder(from_sync_fn(|x: u8, _| Ok(x)))
    ///     .timeout(Duration::from_secs(1))
    ///     .build()?;
    /// t.execute(1, &WorkflowContext::new()).await?;
    /// let stats = t.stats();
    /// assert_eq!((stats.ok, stats.timeouts, stats.timeout_rate), (1, 0, 0.0));
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> TimeoutStats {
        self.metrics.stats()
    }

    /// The wrapped primitive.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tta_core::WorkflowPrimitive;
    /// let inner = tta_core::FnPrimitive::sync_builder(|(), _| Ok(())).name("llm").build().unwrap();
    /// let t = tta_timeout::TimeoutPrimitive::builder(inner).timeout(Duration::from_secs(1)).build().unwrap();
    /// assert_eq!(t.inner().name(), "llm");
    /// ```
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

impl<P, F> std::fmt::Debug for TimeoutPrimitive<P, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutPrimitive")
            .field("name", self.inst.name())
            .field("timeout", &self.timeout)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// How the race between the inner call and the clock ended.
enum Race<O> {
    Finished {
        result: Result<O, Error>,
        late: bool,
    },
    Late,
    Cancelled,
    HardLimit,
}

impl<I, P, F> WorkflowPrimitive<I> for TimeoutPrimitive<P, F>
where
    P: WorkflowPrimitive<I>,
    P::Output: Send,
    F: Fallback<I, P::Output>,
    I: Send,
{
    type Output = P::Output;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<P::Output, Error> {
        let exec = self.inst.start(cx);
        let started = exec.started();
        let own_deadline = started + self.timeout + self.grace;
        // The deadline race of tta-core: this timeout reports the hard limit only when it
        // is its own (or its caller's unclaimed one); a tighter limit above reports itself.
        let (child, scope) = exec.context().claim_deadline(Some(own_deadline));
        let hard = scope.deadline().unwrap_or(own_deadline);
        let shrunk = hard < own_deadline;
        if let Some(span) = exec.context().primitive_span() {
            let effective = hard.saturating_duration_since(started);
            span.set_attributes([
                KeyValue::new(semconv::ATTR_TIMEOUT, self.timeout.as_secs_f64()),
                KeyValue::new(semconv::ATTR_GRACE, self.grace.as_secs_f64()),
                KeyValue::new(semconv::ATTR_EFFECTIVE_LIMIT, effective.as_secs_f64()),
                KeyValue::new(semconv::ATTR_SHRUNK, shrunk),
            ]);
        }
        let kept = self.fallback.keep(&input);

        let race = if hard <= started && scope.owns_deadline() {
            // The caller's budget is already spent: starting the call would only waste it.
            Race::HardLimit
        } else {
            // The inner future is made in its pinned place and raced through a pointer:
            // moved into the race by value, it was copied twice (about 1 KiB a hit).
            let inner = pin!(self.inner.execute(input, &child));
            let mut work = pin!(scope.race(inner));
            let owned = scope.owns_deadline();
            let finished =
                |raced: Result<Result<P::Output, Error>, DeadlineReached>, late| match raced {
                    // An inner primitive that gave up for lack of time before this timeout's
                    // own deadline (a router with no time for an attempt) leaves it to us.
                    Ok(Err(e))
                        if owned
                            && e.is_timeout()
                            && e.downcast_ref::<DeadlineReached>().is_some() =>
                    {
                        Race::HardLimit
                    }
                    Ok(result) => Race::Finished { result, late },
                    Err(DeadlineReached) => Race::HardLimit,
                };
            // A result that is ready at once (a cache hit, say) needs no timer at all.
            if let Poll::Ready(raced) = poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
                let race = finished(raced, false);
                return self.settle(exec, race, kept, hard, shrunk).await;
            }
            let late_at = (started + self.timeout).min(hard);
            let mut cancelled = pin!(child.cancellation_token().cancelled());
            // `biased`: a result that is ready wins over a timer that fires in the same poll.
            let first = tokio::select! {
                biased;
                raced = &mut work => finished(raced, false),
                () = &mut cancelled => Race::Cancelled,
                // When the caller's deadline comes before the timeout there is no phase two.
                () = sleep_until(late_at), if late_at < hard => Race::Late,
            };
            match first {
                Race::Late => {
                    if let Some(span) = child.primitive_span() {
                        span.add_event(semconv::EVENT_LATE, vec![]);
                    }
                    tokio::select! {
                        biased;
                        raced = &mut work => finished(raced, true),
                        () = &mut cancelled => Race::Cancelled,
                    }
                }
                finished => finished,
            }
            // `work` is dropped here: a call past its hard limit stops before any fallback.
        };

        self.settle(exec, race, kept, hard, shrunk).await
    }
}

impl<P, F> TimeoutPrimitive<P, F> {
    /// Turns the race's end into the result, and records it (span, metrics).
    async fn settle<I>(
        &self,
        exec: Execution<'_>,
        race: Race<P::Output>,
        kept: Option<I>,
        hard: Instant,
        shrunk: bool,
    ) -> Result<P::Output, Error>
    where
        P: WorkflowPrimitive<I>,
        F: Fallback<I, P::Output>,
    {
        let started = exec.started();
        let (result, outcome, generic) = match race {
            Race::Finished {
                result: Ok(v),
                late,
            } => {
                let outcome = if late {
                    TimeoutOutcome::LateOk
                } else {
                    TimeoutOutcome::Ok
                };
                (Ok(v), Some(outcome), Outcome::Ok)
            }
            // The inner primitive noticed the caller's cancellation first.
            Race::Finished { result: Err(e), .. }
                if e.is_cancelled() && exec.context().is_cancelled() =>
            {
                (Err(e), None, Outcome::Cancelled)
            }
            Race::Finished { result: Err(e), .. } => {
                (Err(e), Some(TimeoutOutcome::Error), Outcome::Error)
            }
            Race::Cancelled | Race::Late => (
                Err(Error::cancelled().with_primitive(self.inst.name().to_arc())),
                None,
                Outcome::Cancelled,
            ),
            Race::HardLimit => {
                if let Some(span) = exec.context().primitive_span() {
                    span.add_event(semconv::EVENT_CANCELLED, vec![]);
                    if kept.is_some() {
                        span.add_event(
                            semconv::EVENT_FALLBACK,
                            vec![KeyValue::new(
                                semconv::ATTR_FALLBACK_NAME,
                                self.fallback.name().unwrap_or("").to_owned(),
                            )],
                        );
                    }
                }
                match kept {
                    Some(input) => {
                        let result = self.fallback.run(input, exec.context()).await;
                        self.metrics.record_fallback(if result.is_ok() {
                            FallbackResult::Ok
                        } else {
                            FallbackResult::Error
                        });
                        let generic = Outcome::of(&result);
                        (result, Some(TimeoutOutcome::Timeout), generic)
                    }
                    None => {
                        let err = Error::timeout(self.inst.name().to_arc(), "hard limit reached")
                            .with_source(Elapsed {
                                limit: hard.saturating_duration_since(started),
                                shrunk,
                            });
                        (Err(err), Some(TimeoutOutcome::Timeout), Outcome::Timeout)
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        if let Some(outcome) = outcome {
            if let Some(span) = exec.context().primitive_span() {
                span.set_attribute(KeyValue::new(semconv::ATTR_OUTCOME, outcome.as_str()));
            }
            self.metrics.record(outcome);
        }
        exec.finish_after(generic, elapsed);
        result
    }
}

tta_core::impl_composition_ops!(TimeoutPrimitive<P, F>);
