//! A stream's wait for its next item, cheap to restart on every item.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The wait for a stream's next item: it elapses `limit` after the latest
/// [`restart`](Self::restart) (or its creation) with no restart since.
///
/// Restarting reads the clock and nothing else. The timer itself moves only when it
/// fires and finds that an item came in the meantime, so a stream of many quick items
/// resets it about once per `limit` instead of once per item. A tokio `Sleep::reset`
/// per item cost about 290 instructions, most of a router's per-chunk work.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::IdleTimer;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let start = tokio::time::Instant::now();
/// let mut idle = IdleTimer::new(Duration::from_secs(1));
/// tokio::time::sleep(Duration::from_millis(900)).await;
/// idle.restart(); // an item came: the wait now ends at 1.9 s
/// idle.elapsed().await;
/// assert_eq!(start.elapsed(), Duration::from_millis(1_900));
/// # }
/// ```
#[derive(Debug)]
pub struct IdleTimer {
    limit: Duration,
    /// The latest restart.
    last: Instant,
    /// Created once; armed for `last + limit` or earlier.
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    /// A wait of `limit` from now.
    pub fn new(limit: Duration) -> Self {
        let now = Instant::now();
        Self {
            limit,
            last: now,
            sleep: Box::pin(tokio::time::sleep_until(now + limit)),
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// An item came: the wait starts again from now.
    pub fn restart(&mut self) {
        self.last = Instant::now();
    }

    /// Ready once `limit` has passed since the latest restart; registers the task's
    /// waker otherwise.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last + self.limit;
            if due <= self.sleep.deadline() {
                return Poll::Ready(());
            }
            // Items came since the timer was armed: wait until the latest one's limit.
            self.sleep.as_mut().reset(due);
        }
    }

    /// Waits until `limit` has passed since the latest restart.
    pub async fn elapsed(&mut self) {
        std::future::poll_fn(|cx| self.poll_elapsed(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::IdleTimer;

    #[tokio::test(start_paused = true)]
    async fn it_elapses_a_limit_after_the_latest_restart_never_before() {
        let start = Instant::now();
        let mut idle = IdleTimer::new(Duration::from_millis(300));
        // An item every 100 ms for 2 s: never idle for 300 ms.
        for _ in 0..20 {
            let waited = tokio::time::timeout(Duration::from_millis(100), idle.elapsed()).await;
            assert!(waited.is_err(), "elapsed at {:?}", start.elapsed());
            idle.restart();
        }
        idle.elapsed().await;
        assert_eq!(start.elapsed(), Duration::from_millis(2_300));
        // Once elapsed it stays so until restarted.
        idle.elapsed().await;
        assert_eq!(start.elapsed(), Duration::from_millis(2_300));
        idle.restart();
        idle.elapsed().await;
        assert_eq!(start.elapsed(), Duration::from_millis(2_600));
    }
}
