//! The circuit breaker shared by route health and the remote stores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

crate::label_enum! {
    /// A breaker's state, as exported by the state gauges (`0` closed, `1` open,
    /// `2` half-open: the [`index`](Self::index)).
    pub enum BreakerState {
        /// Calls go through; failures are counted.
        Closed => "closed",
        /// Calls are refused until the cooldown ends.
        Open => "open",
        /// One probe is in flight; every other call is refused until it settles.
        HalfOpen => "half_open",
    }
}

/// The least a hinted open's cooldown doubles from (a hint of zero still backs off).
const MIN_HINTED_COOLDOWN: Duration = Duration::from_millis(1);

/// A circuit breaker: **closed** (calls pass, consecutive failures counted), **open**
/// after `threshold` of them (calls refused for a cooldown), then **half-open** with
/// exactly one probe. A probe that succeeds closes it and resets the cooldown; a probe
/// that fails opens it again for twice the last cooldown, up to `max_cooldown`.
///
/// A failure carrying a retry-after hint opens the breaker for at least that long,
/// whatever the failure count; when a hint alone opened it, a failed probe then cools it
/// for twice the hint (the cooldown at most), and doubles from there. A success only closes what was opened before it was
/// admitted: a call that was already in flight when a provider said "retry after 30 s"
/// does not undo the hint by finishing well.
///
/// Every call goes through a [`Permit`]; a permit dropped unsettled (its caller was
/// cancelled) counts as neither, and a dropped probe lets the next caller probe at once.
///
/// A healthy breaker (closed, no failure counted) admits, settles a success and
/// answers [`snapshot`](Self::snapshot) and [`state`](Self::state) without taking its
/// lock: every change of state is made under the lock, which also publishes whether the
/// breaker is healthy.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::{Breaker, BreakerState};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let breaker = Breaker::new(2, Duration::from_secs(5), Duration::from_secs(60));
/// breaker.admit().unwrap().failure(None);
/// breaker.admit().unwrap().failure(None);
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(breaker.admit().is_none(), "open: the call is refused");
///
/// tokio::time::advance(Duration::from_secs(5)).await;
/// let probe = breaker.admit().expect("the cooldown is over: one probe");
/// assert!(probe.is_probe() && breaker.admit().is_none());
/// probe.success();
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// # }
/// ```
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    max_cooldown: Duration,
    /// Whether `state` is closed with no failure counted. Written under the lock after
    /// every change of `state`; read without it by the paths that change nothing in
    /// that state (a closed breaker's admission, a success that finds nothing to reset).
    healthy: AtomicBool,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug)]
struct State {
    consecutive_failures: u32,
    /// `Some` while open or half-open.
    open: Option<Open>,
}

impl State {
    fn is_healthy(&self) -> bool {
        self.open.is_none() && self.consecutive_failures == 0
    }
}

/// What a healthy breaker looks like, whatever the time.
const HEALTHY: BreakerSnapshot = BreakerSnapshot {
    state: BreakerState::Closed,
    consecutive_failures: 0,
    retry_at: None,
    admits: true,
};

#[derive(Clone, Copy, Debug)]
struct Open {
    /// When a probe may go.
    until: Instant,
    /// When it (last) opened: successes admitted before this do not close it.
    since: Instant,
    /// The cooldown now in force, doubled by each failed probe.
    cooldown: Duration,
    probing: bool,
}

/// What a breaker looks like now; see [`Breaker::snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// Closed, open or half-open.
    pub state: BreakerState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// While open: when the next probe may go (it may be in the past: probe-ready).
    pub retry_at: Option<Instant>,
    /// Whether [`Breaker::admit`] would let a call through now.
    pub admits: bool,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures (at least 1)
    /// for `cooldown`, doubling while probes fail, up to `max_cooldown` (at least
    /// `cooldown`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = tta_core::Breaker::new(3, Duration::from_secs(1), Duration::from_secs(30));
    /// assert_eq!(b.state(), tta_core::BreakerState::Closed);
    /// ```
    pub fn new(threshold: u32, cooldown: Duration, max_cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            max_cooldown: max_cooldown.max(cooldown),
            healthy: AtomicBool::new(true),
            state: Mutex::new(State {
                consecutive_failures: 0,
                open: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few assignments: a poisoned lock holds a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the breaker is closed with no failure counted, read without the lock. A
    /// change made concurrently may not be seen yet: the caller then acts as if it came
    /// just before that change, as it would have had it taken the lock first.
    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Lets a call through: `None` while open (cooling, or its one probe in flight).
    /// The first call after the cooldown gets the probe.
    ///
    /// # Examples
    ///
    /// See [`Breaker`].
    pub fn admit(&self) -> Option<Permit<'_>> {
        self.admit_at(Instant::now())
    }

    /// [`admit`](Self::admit) as of `now`, an instant the caller read just before (a
    /// router reads the clock once to plan a request and admit its first route). The
    /// permit's [`admitted`](Permit::admitted) instant is `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let b = tta_core::Breaker::new(1, Duration::from_secs(1), Duration::from_secs(1));
    /// let now = tokio::time::Instant::now();
    /// let p = b.admit_at(now).expect("closed");
    /// assert_eq!(p.admitted(), now);
    /// p.failure(None);
    /// assert!(b.admit_at(now).is_none());
    /// assert!(b.admit_at(now + Duration::from_secs(1)).expect("the probe").is_probe());
    /// # }
    /// ```
    pub fn admit_at(&self, now: Instant) -> Option<Permit<'_>> {
        self.admit_when(now, |open, now| now >= open.until)
    }

    /// A permit when closed, or the probe when `ready` says an open breaker may be
    /// probed and no probe is in flight.
    fn admit_when(
        &self,
        now: Instant,
        ready: impl Fn(&Open, Instant) -> bool,
    ) -> Option<Permit<'_>> {
        if self.is_healthy() {
            // Closed: a permit changes nothing.
            return Some(Permit {
                breaker: self,
                probe: false,
                admitted: now,
                settled: false,
            });
        }
        // Only an open breaker's `probing` changes here, which leaves it unhealthy.
        let mut state = self.lock();
        let probe = match &mut state.open {
            None => false,
            Some(open) if !open.probing && ready(open, now) => {
                open.probing = true;
                true
            }
            Some(_) => return None,
        };
        Some(Permit {
            breaker: self,
            probe,
            admitted: now,
            settled: false,
        })
    }

    /// A permit whatever the state, counted as a probe when the breaker is open: for a
    /// caller that must try something even though everything is cooling (a router's
    /// panic mode). `None` only while another probe is in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let b = tta_core::Breaker::new(1, Duration::from_secs(30), Duration::from_secs(30));
    /// b.admit().unwrap().failure(None);
    /// assert!(b.admit().is_none());
    /// let forced = b.admit_early().expect("open, but no probe in flight");
    /// assert!(forced.is_probe() && b.admit_early().is_none());
    /// # }
    /// ```
    pub fn admit_early(&self) -> Option<Permit<'_>> {
        self.admit_when(Instant::now(), |_, _| true)
    }

    /// The state now.
    ///
    /// # Examples
    ///
    /// See [`Breaker`].
    pub fn state(&self) -> BreakerState {
        if self.is_healthy() {
            return BreakerState::Closed;
        }
        // The state does not depend on the time (only whether an open breaker admits).
        match self.lock().open {
            None => BreakerState::Closed,
            Some(open) if open.probing => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// The state, failure count, next probe time and admission, read under one lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = tta_core::Breaker::new(1, Duration::from_secs(1), Duration::from_secs(1));
    /// let snap = b.snapshot();
    /// assert!(snap.admits && snap.retry_at.is_none() && snap.consecutive_failures == 0);
    /// ```
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.snapshot_at(Instant::now())
    }

    /// [`Breaker::snapshot`] as of `now` (one clock read for several breakers).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let b = tta_core::Breaker::new(1, Duration::from_secs(1), Duration::from_secs(1));
    /// b.admit().unwrap().failure(None);
    /// let now = tokio::time::Instant::now();
    /// assert!(!b.snapshot_at(now).admits);
    /// assert!(b.snapshot_at(now + Duration::from_secs(1)).admits, "cooled down by then");
    /// # }
    /// ```
    pub fn snapshot_at(&self, now: Instant) -> BreakerSnapshot {
        if self.is_healthy() {
            return HEALTHY;
        }
        let state = *self.lock();
        let (kind, retry_at, admits) = match state.open {
            None => (BreakerState::Closed, None, true),
            Some(open) if open.probing => (BreakerState::HalfOpen, Some(open.until), false),
            Some(open) => (BreakerState::Open, Some(open.until), now >= open.until),
        };
        BreakerSnapshot {
            state: kind,
            consecutive_failures: state.consecutive_failures,
            retry_at,
            admits,
        }
    }

    /// Settles a detached permit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tta_core::{Breaker, BreakerState, Verdict};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let breaker = Breaker::new(1, Duration::from_secs(5), Duration::from_secs(5));
    /// let detached = breaker.admit().unwrap().detach();
    /// // ... the stream runs, then fails after its first chunk:
    /// breaker.settle_detached(detached, Verdict::Failure { retry_after: None });
    /// assert_eq!(breaker.state(), BreakerState::Open);
    /// # }
    /// ```
    pub fn settle_detached(&self, permit: Detached, verdict: Verdict) {
        self.settle_parts(permit.probe, permit.admitted, verdict);
    }

    fn settle(&self, permit: &Permit<'_>, verdict: Verdict) {
        self.settle_parts(permit.probe, permit.admitted, verdict);
    }

    fn settle_parts(&self, probe: bool, admitted: Instant, verdict: Verdict) {
        match verdict {
            // Only a probe's release changes anything.
            Verdict::Released if !probe => return,
            // Nothing to reset or close (a probe is admitted only while open, so it
            // always takes the lock).
            Verdict::Success if !probe && self.is_healthy() => return,
            _ => {}
        }
        let mut state = self.lock();
        self.settle_locked(&mut state, probe, admitted, verdict);
        self.healthy.store(state.is_healthy(), Ordering::Release);
    }

    fn settle_locked(&self, state: &mut State, probe: bool, admitted: Instant, verdict: Verdict) {
        // A success needs no clock read (the common case, on every call).
        match verdict {
            Verdict::Released => {
                if probe && let Some(open) = &mut state.open {
                    let now = Instant::now();
                    // The probe's caller went away: the next caller may probe at once.
                    open.probing = false;
                    open.until = open.until.min(now);
                }
            }
            Verdict::Success => {
                state.consecutive_failures = 0;
                match &mut state.open {
                    // Opened (by a hint, say) after this call started: its success says
                    // nothing about the route now.
                    Some(open) if open.since > admitted => {
                        if probe {
                            open.probing = false;
                        }
                    }
                    _ => state.open = None,
                }
            }
            Verdict::Failure { retry_after } => {
                let now = Instant::now();
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let hinted = retry_after.and_then(|after| now.checked_add(after));
                let next = match state.open {
                    Some(open) if probe => {
                        let cooldown = open.cooldown.saturating_mul(2).min(self.max_cooldown);
                        Some(Open {
                            until: now + cooldown,
                            since: now,
                            cooldown,
                            probing: false,
                        })
                    }
                    // Already open: a late failure of a call admitted before changes
                    // nothing but a longer hint.
                    Some(open) => Some(open),
                    None if state.consecutive_failures >= self.threshold => Some(Open {
                        until: now + self.cooldown,
                        since: now,
                        cooldown: self.cooldown,
                        probing: false,
                    }),
                    None => None,
                };
                state.open = match (next, hinted) {
                    (Some(mut open), Some(hint)) => {
                        if hint > open.until {
                            open.until = hint;
                            open.since = now;
                        }
                        Some(open)
                    }
                    // Opened by a hint alone: a failed probe then doubles the hint's
                    // length (at most the cooldown), not the whole cooldown. A 20 ms
                    // hint whose probe meets a 503 waits 40 ms, not a minute.
                    (None, Some(hint)) => Some(Open {
                        until: hint,
                        since: now,
                        cooldown: hint
                            .saturating_duration_since(now)
                            .clamp(MIN_HINTED_COOLDOWN, self.cooldown.max(MIN_HINTED_COOLDOWN)),
                        probing: false,
                    }),
                    (next, None) => next,
                };
            }
        }
    }
}

/// How a call through a [`Breaker`] ended, for a [`Detached`] permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It succeeded: see [`Permit::success`].
    Success,
    /// It failed: see [`Permit::failure`].
    Failure {
        /// A provider's hint: the breaker stays open at least this long.
        retry_after: Option<Duration>,
    },
    /// Neither (its caller went away): as a permit dropped unsettled.
    Released,
}

/// A permit detached from its breaker's borrow ([`Permit::detach`]): for a call whose
/// outcome is known only later, in a place that owns the breaker (a stream's body,
/// holding the breaker in an `Arc`). Settle it with [`Breaker::settle_detached`]; unlike a
/// permit, it does nothing when dropped, so its owner must settle it (or release it).
#[derive(Clone, Copy, Debug)]
#[must_use = "a detached permit must be settled with Breaker::settle_detached"]
pub struct Detached {
    probe: bool,
    admitted: Instant,
}

impl Detached {
    /// Whether this call is the breaker's single probe.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = tta_core::Breaker::new(1, Duration::from_secs(1), Duration::from_secs(1));
    /// let detached = b.admit().unwrap().detach();
    /// assert!(!detached.is_probe(), "closed: not a probe");
    /// b.settle_detached(detached, tta_core::Verdict::Success);
    /// ```
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// Permission for one call through a [`Breaker`]. Settle it with [`success`](Self::success)
/// or [`failure`](Self::failure); dropped unsettled, it counts as neither.
#[derive(Debug)]
#[must_use = "a permit is settled by success() or failure(); dropping it counts as neither"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    admitted: Instant,
    settled: bool,
}

impl Permit<'_> {
    /// Whether this call is the breaker's single probe.
    ///
    /// # Examples
    ///
    /// See [`Breaker`].
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Detaches the permit from the breaker's borrow, for an outcome known later; see
    /// [`Detached`].
    pub fn detach(mut self) -> Detached {
        self.settled = true;
        Detached {
            probe: self.probe,
            admitted: self.admitted,
        }
    }

    /// When the permit was given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = tta_core::Breaker::new(1, Duration::from_secs(1), Duration::from_secs(1));
    /// let p = b.admit().unwrap();
    /// assert!(p.admitted() <= tokio::time::Instant::now());
    /// p.success();
    /// ```
    pub fn admitted(&self) -> Instant {
        self.admitted
    }

    /// The call succeeded: the failure count resets, and the breaker closes unless it
    /// was opened after this call was admitted.
    ///
    /// # Examples
    ///
    /// See [`Breaker`].
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.settle(&self, Verdict::Success);
    }

    /// The call failed; `retry_after` (a provider's hint) keeps the breaker open for at
    /// least that long.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let b = tta_core::Breaker::new(5, Duration::from_secs(1), Duration::from_secs(1));
    /// b.admit().unwrap().failure(Some(Duration::from_secs(20)));
    /// assert_eq!(b.state(), tta_core::BreakerState::Open, "a hint opens it below the threshold");
    /// tokio::time::advance(Duration::from_secs(19)).await;
    /// assert!(b.admit().is_none());
    /// # }
    /// ```
    pub fn failure(mut self, retry_after: Option<Duration>) {
        self.settled = true;
        self.breaker.settle(&self, Verdict::Failure { retry_after });
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.settle(self, Verdict::Released);
        }
    }
}
