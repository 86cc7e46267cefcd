//! Per-route statistics and health: latency EWMA, consecutive failures, cooldown and the
//! single probe.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How much the newest latency weighs in the moving average.
const EWMA_ALPHA: f64 = 0.3;

#[derive(Debug, Default)]
struct Inner {
    ewma_latency_s: Option<f64>,
    observations: u64,
    consecutive_failures: u32,
    cooling_until: Option<Instant>,
    probing: bool,
}

/// The live state of one route.
#[derive(Debug, Default)]
pub(crate) struct RouteState {
    inner: Mutex<Inner>,
}

/// Whether a route may be tried now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Availability {
    Healthy,
    /// Its cooldown is over and nobody is probing it: the next caller may probe.
    ProbeReady,
    /// Cooling down, or another caller is probing it.
    Cooling,
}

/// A snapshot for strategies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub(crate) latency: Option<Duration>,
    pub(crate) observations: u64,
    pub(crate) consecutive_failures: u32,
    pub(crate) availability: Availability,
}

impl RouteState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section is a few assignments: a poisoned lock holds valid state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn availability(inner: &Inner, now: Instant) -> Availability {
        match inner.cooling_until {
            None => Availability::Healthy,
            Some(until) if now < until || inner.probing => Availability::Cooling,
            Some(_) => Availability::ProbeReady,
        }
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            latency: inner.ewma_latency_s.map(Duration::from_secs_f64),
            observations: inner.observations,
            consecutive_failures: inner.consecutive_failures,
            availability: Self::availability(&inner, now),
        }
    }

    /// Admits a call now: `Some(false)` for a healthy route, `Some(true)` when the caller
    /// got the route's single probe, `None` when it is cooling (or being probed).
    pub(crate) fn admit(&self, now: Instant) -> Option<bool> {
        let mut inner = self.lock();
        match Self::availability(&inner, now) {
            Availability::Healthy => Some(false),
            Availability::ProbeReady => {
                inner.probing = true;
                Some(true)
            }
            Availability::Cooling => None,
        }
    }

    /// Records an attempt's result. `retry_after` (a provider's hint) cools the route for
    /// at least that long, whatever the failure count.
    pub(crate) fn record(
        &self,
        ok: bool,
        probe: bool,
        latency: Duration,
        threshold: u32,
        cooldown: Duration,
        retry_after: Option<Duration>,
    ) {
        let mut inner = self.lock();
        let secs = latency.as_secs_f64();
        inner.ewma_latency_s = Some(match inner.ewma_latency_s {
            Some(avg) => avg + EWMA_ALPHA * (secs - avg),
            None => secs,
        });
        inner.observations += 1;
        if probe {
            inner.probing = false;
        }
        if ok {
            inner.consecutive_failures = 0;
            inner.cooling_until = None;
        } else {
            inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
            let now = Instant::now();
            let mut until = inner.cooling_until.filter(|u| *u > now);
            if probe || inner.consecutive_failures >= threshold {
                until = until.max(Some(now + cooldown));
            }
            if let Some(after) = retry_after {
                until = until.max(now.checked_add(after));
            }
            if until.is_some() {
                inner.cooling_until = until;
            }
        }
    }

    /// A probe that ended without a result (its caller was cancelled): the next caller
    /// may probe.
    pub(crate) fn release_probe(&self) {
        self.lock().probing = false;
    }
}
