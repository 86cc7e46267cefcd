//! The timeout for streams: `timeout + grace` bounds the time to the first chunk, with
//! the late and hard phases of calls; `idle` bounds each gap between chunks and `total`
//! the whole stream, by wrapping the body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::time::{Instant, Sleep, sleep_until};
use tta_core::deadline::DeadlineReached;
use tta_core::{Body, Error, IdleTimer, PrimitiveName, StreamPrimitive, Streamed, WorkflowContext};

use crate::metrics::{TimeoutMetrics, TimeoutOutcome};
use crate::{Elapsed, NoFallback, TimeoutPrimitive, semconv};

/// A streamed execution through a timeout. A fallback applies to calls only: a streamed
/// request that reaches a limit gets the timeout's error (before the first chunk) or a
/// timeout error item that ends its body (after it).
impl<I, P> StreamPrimitive<I> for TimeoutPrimitive<P, NoFallback>
where
    P: StreamPrimitive<I>,
    I: Send,
{
    type Chunk = P::Chunk;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    fn stream(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Streamed<P::Chunk>, Error>> + Send {
        self.inst.run_stream(cx, move |exec_cx| async move {
            let started = Instant::now();
            let own = started + self.timeout + self.grace;
            // The head: the call's race, over the time to the first chunk.
            let (child, scope) = exec_cx.claim_deadline(Some(own));
            let hard = scope.deadline().unwrap_or(own);
            let late_at = (started + self.timeout).min(hard);
            // Made in its pinned place and raced through a pointer, as a call's is.
            let opening = std::pin::pin!(self.inner.stream(input, &child));
            let mut head = std::pin::pin!(scope.race(opening));
            let first = tokio::select! {
                biased;
                raced = &mut head => Some((raced, false)),
                () = sleep_until(late_at), if late_at < hard => None,
            };
            let (raced, late) = match first {
                Some(first) => first,
                None => {
                    if let Some(span) = exec_cx.primitive_span() {
                        span.add_event(semconv::EVENT_LATE, vec![]);
                    }
                    ((&mut head).await, true)
                }
            };
            let streamed = match raced {
                Ok(Ok(streamed)) => streamed,
                Ok(Err(e)) => {
                    self.metrics.record(TimeoutOutcome::Error);
                    return Err(e);
                }
                Err(DeadlineReached) => {
                    self.metrics.record(TimeoutOutcome::Timeout);
                    let limit = hard.saturating_duration_since(started);
                    return Err(Error::timeout(
                        self.inst.name().to_arc(),
                        "no first chunk within the limit",
                    )
                    .with_source(Elapsed {
                        limit,
                        shrunk: hard < own,
                    }));
                }
            };
            // The body: its own total limit, or the caller's deadline when this timeout
            // owns it; a tighter limit above is cut by its owner.
            let total = self.total.map(|t| started + t);
            let (_, body_scope) = exec_cx.claim_deadline(total);
            let end = body_scope
                .owns_deadline()
                .then(|| body_scope.deadline())
                .flatten();
            let limits = Limits {
                idle: self.idle,
                end,
                started,
                late,
                name: self.inst.name().clone(),
                metrics: Arc::clone(&self.metrics),
            };
            Ok(streamed.map_body(move |body| TimeoutBody::new(body, limits)))
        })
    }
}

/// What a streamed body is bounded by, and where its outcome goes.
struct Limits {
    idle: Option<Duration>,
    end: Option<Instant>,
    started: Instant,
    /// The first chunk came in the grace period: a clean end is `late_ok`.
    late: bool,
    name: PrimitiveName,
    metrics: Arc<TimeoutMetrics>,
}

pin_project_lite::pin_project! {
    /// A body bounded by the gaps between its chunks and by its end.
    struct TimeoutBody<C> {
        body: Body<C>,
        limits: Limits,
        gap: Option<IdleTimer>,
        end: Option<Pin<Box<Sleep>>>,
        done: bool,
    }
}

impl<C> TimeoutBody<C> {
    fn new(body: Body<C>, limits: Limits) -> Self {
        Self {
            gap: limits.idle.map(IdleTimer::new),
            end: limits.end.map(|end| Box::pin(sleep_until(end))),
            body,
            limits,
            done: false,
        }
    }
}

impl<C> Stream for TimeoutBody<C> {
    type Item = Result<C, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let limits = &*this.limits;
        let settle = |outcome| {
            limits.metrics.record(outcome);
        };
        // The body first: a chunk that is ready wins over a limit reached in the same poll.
        match this.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(gap) = this.gap.as_mut() {
                    gap.restart();
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                settle(TimeoutOutcome::Error);
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Ready(None) => {
                *this.done = true;
                settle(if limits.late {
                    TimeoutOutcome::LateOk
                } else {
                    TimeoutOutcome::Ok
                });
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let cut = if this
            .end
            .as_mut()
            .is_some_and(|end| end.as_mut().poll(cx).is_ready())
        {
            Some(("the stream ran past its total limit", limits.end, None))
        } else if this
            .gap
            .as_mut()
            .is_some_and(|gap| gap.poll_elapsed(cx).is_ready())
        {
            Some(("no chunk within the idle limit", None, limits.idle))
        } else {
            None
        };
        let Some((message, end, idle)) = cut else {
            return Poll::Pending;
        };
        *this.done = true;
        settle(TimeoutOutcome::Timeout);
        let limit = idle.unwrap_or_else(|| {
            end.map_or(Duration::ZERO, |end| {
                end.saturating_duration_since(limits.started)
            })
        });
        Poll::Ready(Some(Err(Error::timeout(limits.name.to_arc(), message)
            .with_source(Elapsed {
                limit,
                shrunk: false,
            }))))
    }
}
