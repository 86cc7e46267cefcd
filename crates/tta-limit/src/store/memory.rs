//! The in-process store: counters behind one mutex, windows on tokio's clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::time::Instant;

use super::{Amount, Ask, Decision, LimitStore, Line, Refusal, Settlement, StoreError};
use crate::Resource;

/// Counters kept above this many are swept of those that hold nothing.
const SWEEP_AT: usize = 4_096;

/// A [`LimitStore`] in this process: exact under any concurrency (one mutex, held for
/// a few arithmetic steps per call), windows counted from the store's creation on tokio's
/// clock (so tests can pause time). Counters that hold nothing are swept once there are
/// more than 4,096, so memory stays bounded by the keys in use. Cloning shares the
/// counters.
///
/// # Examples
///
/// ```
/// let store = tta_limit::MemoryStore::new();
/// assert!(store.counters().is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    counters: Mutex<HashMap<CounterKey, Counter>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CounterKey {
    limit: String,
    key: String,
    resource: Resource,
    window: Duration,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counter {
    window: u64,
    used: u64,
    reserved: u64,
}

/// One counter of a [`MemoryStore`], as [`MemoryStore::counters`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// The limit's name.
    pub limit: String,
    /// The key (tenant).
    pub key: String,
    /// The resource.
    pub resource: Resource,
    /// The window's length.
    pub window: Duration,
    /// Used in the window the counter was last touched in.
    pub used: u64,
    /// Held by calls in flight.
    pub reserved: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store; its windows start now.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                counters: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Every counter now.
    ///
    /// # Examples
    ///
    /// See [`MemoryStore`].
    pub fn counters(&self) -> Vec<CounterSnapshot> {
        self.lock()
            .iter()
            .map(|(k, c)| CounterSnapshot {
                limit: k.limit.clone(),
                key: k.key.clone(),
                resource: k.resource,
                window: k.window,
                used: c.used,
                reserved: c.reserved,
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CounterKey, Counter>> {
        // The lock is held for arithmetic only; a panic elsewhere leaves the map whole.
        self.inner
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The window index now for a window of `length`, and how long until it ends.
    fn window(&self, length: Duration) -> (u64, Duration) {
        let since = self.inner.epoch.elapsed().as_nanos();
        let length_ns = length.as_nanos().max(1);
        let index = since / length_ns;
        let ends = (index + 1) * length_ns - since;
        (
            u64::try_from(index).unwrap_or(u64::MAX),
            Duration::from_nanos(u64::try_from(ends).unwrap_or(u64::MAX)),
        )
    }

    fn counter<'m>(
        &self,
        map: &'m mut HashMap<CounterKey, Counter>,
        limit: &str,
        key: &str,
        line: &Line,
    ) -> (&'m mut Counter, Duration) {
        let (window, ends_in) = self.window(line.window);
        let counter = map
            .entry(CounterKey {
                limit: limit.to_owned(),
                key: key.to_owned(),
                resource: line.resource,
                window: line.window,
            })
            .or_default();
        if counter.window != window {
            // A new window: nothing used yet; what is in flight stays reserved.
            counter.window = window;
            counter.used = 0;
        }
        (counter, ends_in)
    }

    fn reserve_now(&self, ask: &Ask<'_>) -> Decision {
        let mut map = self.lock();
        if map.len() > SWEEP_AT {
            let now = |w: Duration| self.window(w).0;
            map.retain(|k, c| c.reserved > 0 || (c.window == now(k.window) && c.used > 0));
        }
        // One pass: each line is reserved as soon as it fits (its counter looked up
        // once); a line that does not fit gives the earlier ones back. The builder
        // refuses two lines on one counter, so no line sees another's reservation.
        let mut amounts = Vec::with_capacity(ask.lines.len());
        for (i, line) in ask.lines.iter().enumerate() {
            let (c, ends_in) = self.counter(&mut map, ask.limit, ask.key, line);
            match decide(line, c.used, c.reserved, ends_in) {
                Ok(amount) => {
                    c.reserved = c.reserved.saturating_add(amount);
                    amounts.push(amount);
                }
                Err(reason) => {
                    for (line, amount) in ask.lines.iter().zip(&amounts) {
                        let (c, _) = self.counter(&mut map, ask.limit, ask.key, line);
                        c.reserved = c.reserved.saturating_sub(*amount);
                    }
                    return Decision::Refused { line: i, reason };
                }
            }
        }
        Decision::Granted(amounts)
    }

    fn settle_now(&self, s: &Settlement<'_>) -> Vec<u64> {
        let mut map = self.lock();
        s.lines
            .iter()
            .zip(s.reserved.iter().zip(s.used))
            .map(|(line, (reserved, used))| {
                let (c, _) = self.counter(&mut map, s.limit, s.key, line);
                c.reserved = c.reserved.saturating_sub(*reserved);
                c.used = c.used.saturating_add(*used);
                c.used
            })
            .collect()
    }
}

/// The amount a line can take now, or why it cannot: the one rule both stores apply
/// (the Redis script spells the same steps in Lua).
pub(crate) fn decide(
    line: &Line,
    used: u64,
    reserved: u64,
    window_ends_in: Duration,
) -> Result<u64, Refusal> {
    let left = line.cap.saturating_sub(used.saturating_add(reserved));
    let amount = match line.amount {
        Amount::Exact(a) if a > line.cap => return Err(Refusal::TooLarge),
        Amount::Exact(a) => a,
        Amount::Rest => left,
    };
    let fits = match line.amount {
        Amount::Exact(_) => amount <= left,
        Amount::Rest => left > 0,
    };
    if fits {
        return Ok(amount);
    }
    let spent = match line.amount {
        Amount::Exact(a) => used.saturating_add(a) > line.cap,
        Amount::Rest => used >= line.cap,
    };
    Err(if spent {
        Refusal::Spent { window_ends_in }
    } else {
        Refusal::Held { window_ends_in }
    })
}

impl LimitStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn reserve<'a>(&'a self, ask: Ask<'a>) -> BoxFuture<'a, Result<Decision, StoreError>> {
        let decision = self.reserve_now(&ask);
        futures_util::future::ready(Ok(decision)).boxed()
    }

    fn settle<'a>(
        &'a self,
        settlement: Settlement<'a>,
    ) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        let used = self.settle_now(&settlement);
        futures_util::future::ready(Ok(used)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cap: u64, amount: Amount) -> Line {
        Line::new(Resource::Usd, cap, Duration::from_secs(60), amount)
    }

    #[test]
    fn the_rule_refuses_spent_held_and_too_large_calls() {
        let w = Duration::from_secs(5);
        assert_eq!(decide(&line(10, Amount::Exact(4)), 3, 3, w), Ok(4));
        assert_eq!(
            decide(&line(10, Amount::Exact(4)), 3, 4, w),
            Err(Refusal::Held { window_ends_in: w })
        );
        assert_eq!(
            decide(&line(10, Amount::Exact(4)), 7, 0, w),
            Err(Refusal::Spent { window_ends_in: w })
        );
        assert_eq!(
            decide(&line(10, Amount::Exact(11)), 0, 0, w),
            Err(Refusal::TooLarge)
        );
        assert_eq!(decide(&line(10, Amount::Rest), 3, 2, w), Ok(5));
        assert_eq!(
            decide(&line(10, Amount::Rest), 3, 7, w),
            Err(Refusal::Held { window_ends_in: w })
        );
        assert_eq!(
            decide(&line(10, Amount::Rest), 12, 0, w),
            Err(Refusal::Spent { window_ends_in: w })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_refused_on_one_line_reserves_nothing_on_the_others() {
        let store = MemoryStore::new();
        let lines = [
            Line::new(
                Resource::Requests,
                10,
                Duration::from_secs(60),
                Amount::Exact(1),
            ),
            Line::new(
                Resource::Usd,
                10,
                Duration::from_secs(60),
                Amount::Exact(11),
            ),
        ];
        let ask = Ask {
            limit: "l",
            key: "k",
            id: "1",
            hold: Duration::from_secs(1),
            lines: &lines,
        };
        assert_eq!(
            store.reserve_now(&ask),
            Decision::Refused {
                line: 1,
                reason: Refusal::TooLarge
            }
        );
        let requests = store
            .counters()
            .into_iter()
            .find(|c| c.resource == Resource::Requests)
            .unwrap();
        assert_eq!(requests.reserved, 0, "the first line was given back");
    }
}
