//! The deadline race every primitive uses, so that exactly one primitive reports a
//! deadline: the one whose limit it is.
//!
//! A primitive that sets a limit (a timeout, a router's attempt timeout) **claims** the
//! deadline it passes down ([`WorkflowContext::claim_deadline`]) and races its work
//! against it with [`DeadlineScope::race`]. A deadline set by the caller with
//! [`WorkflowContext::with_timeout`] is unclaimed, and the outermost racer claims it.
//! Every racer below the claimant that reaches the same instant keeps waiting instead
//! of reporting it: the claimant's race ends at that instant and drops them. Without
//! this, nested primitives racing one deadline fire in the same tick and the innermost
//! error wins (a router's "all routes failed" where the timeout's own error, and its
//! fallback, were due).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

use crate::WorkflowContext;

/// How long a racer that does not own a deadline waits past it for the owner to cut
/// it, before reporting the deadline itself. Owners race the same instant, so this
/// only matters if an owner stopped racing (a bug); it bounds the damage to a few
/// milliseconds instead of a hang.
const BACKSTOP: Duration = Duration::from_millis(10);

pub use crate::context::DeadlineClaim;

/// The deadline a primitive races, made by [`WorkflowContext::claim_deadline`].
#[derive(Debug)]
#[must_use = "a claimed deadline is reported only by the scope's race"]
pub struct DeadlineScope {
    deadline: Option<Instant>,
    owned: bool,
}

impl DeadlineScope {
    /// The deadline raced (the earlier of the caller's and the primitive's own).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let cx = tta_core::WorkflowContext::new();
    /// let at = tokio::time::Instant::now() + Duration::from_secs(1);
    /// let (_child, scope) = cx.claim_deadline(Some(at));
    /// assert_eq!(scope.deadline(), Some(at));
    /// # }
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether this scope owns the deadline (and so reports it).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let outer = tta_core::WorkflowContext::new();
    /// let (child, outer_scope) = outer.claim_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(1)));
    /// assert!(outer_scope.owns_deadline());
    /// // A looser limit below it does not take the deadline over.
    /// let (_, inner_scope) = child.claim_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(5)));
    /// assert!(!inner_scope.owns_deadline());
    /// # }
    /// ```
    pub fn owns_deadline(&self) -> bool {
        self.owned
    }

    /// Runs `work` until the deadline. Resolves to `Err(DeadlineReached)` at the
    /// deadline when this scope owns it; a scope that does not own it keeps waiting for
    /// `work`, since the owner's race ends at the same instant and drops it.
    ///
    /// A ready result wins over a deadline reached in the same poll.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tta_core::WorkflowContext;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let cx = WorkflowContext::new();
    /// let (child, scope) = cx.claim_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(1)));
    /// let slow = async move {
    ///     tokio::time::sleep(Duration::from_secs(5)).await;
    ///     child.workflow_id().len()
    /// };
    /// assert!(scope.race(slow).await.is_err());
    /// # }
    /// ```
    pub fn race<F: Future>(&self, work: F) -> Race<F> {
        let at = self.deadline.map(|at| {
            if self.owned {
                at
            } else {
                at.checked_add(BACKSTOP).unwrap_or(at)
            }
        });
        Race {
            work,
            at,
            sleep: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`DeadlineScope::race`]. Its timer is made when the work first
    /// waits: work that is ready at once (a cache hit) allocates no timer.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Race<F> {
        #[pin]
        work: F,
        // The deadline, until its timer is made.
        at: Option<Instant>,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<F: Future> Future for Race<F> {
    type Output = Result<F::Output, DeadlineReached>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.work.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if let Some(at) = this.at.take() {
            *this.sleep = Some(Box::pin(sleep_until(at)));
        }
        match this.sleep {
            Some(sleep) => sleep.as_mut().poll(cx).map(|()| Err(DeadlineReached)),
            None => Poll::Pending,
        }
    }
}

/// A [`Race`] reached its deadline before its work finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("deadline reached")]
pub struct DeadlineReached;

impl WorkflowContext {
    /// A child whose deadline is the earlier of this one and `deadline`, and the scope
    /// to race it with. The scope owns the child's deadline when `deadline` is the
    /// tighter, or when the caller's deadline is the same or tighter but unclaimed (set
    /// with [`with_timeout`](Self::with_timeout), say). See the [module docs](crate::deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let caller = tta_core::WorkflowContext::new().with_timeout(Duration::from_secs(1));
    /// let (child, scope) = caller.claim_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(9)));
    /// assert_eq!(child.deadline(), caller.deadline(), "a child only tightens the deadline");
    /// assert!(scope.owns_deadline(), "the caller's own deadline was unclaimed");
    /// # }
    /// ```
    pub fn claim_deadline(&self, deadline: Option<Instant>) -> (WorkflowContext, DeadlineScope) {
        let (effective, owned) = match (self.deadline(), deadline) {
            (None, None) => (None, false),
            (Some(current), Some(own)) if own < current => (Some(own), true),
            (Some(current), _) => (Some(current), self.deadline_claim().is_none()),
            (None, Some(own)) => (Some(own), true),
        };
        let child = match effective {
            // A claim is numbered only when made: a race without a deadline of its own
            // touches no shared counter.
            Some(at) if owned => self.with_deadline_claimed(at, DeadlineClaim::next()),
            Some(at) => self.with_deadline(at),
            None => self.clone(),
        };
        (
            child,
            DeadlineScope {
                deadline: effective,
                owned,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_the_owner_of_a_shared_deadline_reports_it() {
        let root = WorkflowContext::new();
        let (outer_cx, outer) = root.claim_deadline(Some(Instant::now() + Duration::from_secs(1)));
        let (inner_cx, inner) =
            outer_cx.claim_deadline(Some(Instant::now() + Duration::from_secs(1)));
        assert!(outer.owns_deadline() && !inner.owns_deadline());
        assert!(
            inner_cx.deadline_claim().is_some(),
            "the outer claim is passed down"
        );
        let inner_race = inner.race(std::future::pending::<()>());
        // The inner race alone would report only after the backstop.
        let started = Instant::now();
        let result = outer.race(inner_race).await;
        assert_eq!(
            result,
            Err(DeadlineReached),
            "the owner reports at the deadline"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_racer_that_is_not_the_owner_reports_only_after_the_backstop() {
        let root = WorkflowContext::new();
        let (outer_cx, _outer) = root.claim_deadline(Some(Instant::now() + Duration::from_secs(1)));
        let (_, inner) = outer_cx.claim_deadline(None);
        let started = Instant::now();
        let result = inner.race(std::future::pending::<()>()).await;
        assert_eq!(result, Err(DeadlineReached));
        assert_eq!(started.elapsed(), Duration::from_secs(1) + BACKSTOP);
    }
}
