//! Per-route health: core's breaker, and the latency average the strategies read.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tta_core::{Breaker, BreakerSnapshot, Detached, Permit, Verdict};

/// How much the newest latency weighs in the moving average.
const EWMA_ALPHA: f64 = 0.3;

#[derive(Debug, Default, Clone, Copy)]
struct Latency {
    ewma_s: Option<f64>,
    observations: u64,
}

/// The live state of one route.
#[derive(Debug)]
pub(crate) struct RouteHealth {
    breaker: Breaker,
    latency: Mutex<Latency>,
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
            latency: Mutex::new(Latency::default()),
        }
    }

    fn latency(&self) -> MutexGuard<'_, Latency> {
        // Every critical section is two assignments: a poisoned lock holds valid state.
        self.latency.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The health as of `now` (one clock read for every route of a plan).
    pub(crate) fn snapshot_at(&self, now: Instant) -> HealthSnapshot {
        let latency = *self.latency();
        HealthSnapshot {
            breaker: self.breaker.snapshot_at(now),
            latency: latency.ewma_s.map(Duration::from_secs_f64),
            observations: latency.observations,
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

    pub(crate) fn observe(&self, took: Duration) {
        let mut latency = self.latency();
        let secs = took.as_secs_f64();
        latency.ewma_s = Some(match latency.ewma_s {
            Some(avg) => avg + EWMA_ALPHA * (secs - avg),
            None => secs,
        });
        latency.observations += 1;
    }
}
