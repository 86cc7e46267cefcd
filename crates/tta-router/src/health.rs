//! Per-route health: core's breaker, and the latency average the strategies read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tta_core::{Breaker, BreakerSnapshot, Detached, Permit, Verdict};

/// How much the newest latency weighs in the moving average: 3 tenths.
const EWMA_WEIGHT: (u64, u64) = (3, 10);

/// The average not yet set (no latency of 584 years is observed).
const NO_AVERAGE: u64 = u64::MAX;

/// The live state of one route. Nothing here takes a lock while the route is healthy:
/// the breaker has a lock-free path for that, and the latency average is two atomics.
#[derive(Debug)]
pub(crate) struct RouteHealth {
    breaker: Breaker,
    /// The latency average in nanoseconds ([`NO_AVERAGE`] before the first).
    ewma_nanos: AtomicU64,
    observations: AtomicU64,
}

/// A route's health now, for strategies and planning.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HealthSnapshot {
    pub(crate) breaker: BreakerSnapshot,
    pub(crate) latency: Option<Duration>,
    pub(crate) observations: u64,
}

impl RouteHealth {
    pub(crate) fn new(threshold: u32, cooldown: Duration, max_cooldown: Duration) -> Self {
        Self {
            breaker: Breaker::new(threshold, cooldown, max_cooldown),
            ewma_nanos: AtomicU64::new(NO_AVERAGE),
            observations: AtomicU64::new(0),
        }
    }

    /// The health as of `now` (one clock read for every route of a plan). The average
    /// and its count are read apart: a concurrent observation may show in one only.
    pub(crate) fn snapshot_at(&self, now: Instant) -> HealthSnapshot {
        let nanos = self.ewma_nanos.load(Ordering::Relaxed);
        HealthSnapshot {
            breaker: self.breaker.snapshot_at(now),
            latency: (nanos != NO_AVERAGE).then(|| Duration::from_nanos(nanos)),
            observations: self.observations.load(Ordering::Relaxed),
        }
    }

    /// The breaker's state (no clock read).
    pub(crate) fn state(&self) -> tta_core::BreakerState {
        self.breaker.state()
    }

    /// Lets a call through the breaker as of `now`, an instant read just before.
    pub(crate) fn admit_at(&self, now: Instant) -> Option<Permit<'_>> {
        self.breaker.admit_at(now)
    }

    /// Lets a call through even while the breaker is open (panic mode), as its probe.
    pub(crate) fn admit_early(&self) -> Option<Permit<'_>> {
        self.breaker.admit_early()
    }

    /// Settles a permit detached for a stream, when its body ends.
    pub(crate) fn settle(&self, permit: Detached, verdict: Verdict) {
        self.breaker.settle_detached(permit, verdict);
    }

    /// Adds a latency to the average. Concurrent observations each move the average
    /// (a compare-and-swap loop), none is lost.
    pub(crate) fn observe(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(NO_AVERAGE - 1);
        let (weight, of) = EWMA_WEIGHT;
        let moved = self
            .ewma_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some(if avg == NO_AVERAGE {
                    took
                } else {
                    // In u128: neither product overflows, and the sum is at most the
                    // larger of the two.
                    ((u128::from(avg) * u128::from(of - weight)
                        + u128::from(took) * u128::from(weight))
                        / u128::from(of)) as u64
                })
            });
        debug_assert!(moved.is_ok(), "the update always returns a value");
        self.observations.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_observations_are_all_counted_and_the_average_stays_in_their_range() {
        let health = RouteHealth::new(3, Duration::from_secs(1), Duration::from_secs(1));
        assert!(health.snapshot_at(Instant::now()).latency.is_none());
        std::thread::scope(|s| {
            for t in 1..=4_u64 {
                let health = &health;
                s.spawn(move || {
                    for _ in 0..5_000 {
                        health.observe(Duration::from_millis(10 * t));
                    }
                });
            }
        });
        let snap = health.snapshot_at(Instant::now());
        assert_eq!(snap.observations, 20_000);
        let latency = snap.latency.expect("observed");
        assert!(
            (Duration::from_millis(10)..=Duration::from_millis(40)).contains(&latency),
            "{latency:?}"
        );
        health.observe(Duration::from_millis(100));
        let after = health.snapshot_at(Instant::now()).latency.unwrap();
        let expected = latency.as_secs_f64() + 0.3 * (0.1 - latency.as_secs_f64());
        assert!((after.as_secs_f64() - expected).abs() < 2e-9, "{after:?}");
        // The longest latency there is neither overflows nor clears the average.
        health.observe(Duration::MAX);
        assert!(health.snapshot_at(Instant::now()).latency.unwrap() > Duration::from_secs(1 << 32));
    }
}
