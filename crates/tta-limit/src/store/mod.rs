//! Where limits keep their counts: in this process ([`MemoryStore`]) or in Redis, shared
//! by every replica (`RedisStore`, feature `redis`).
//!
//! A store keeps, per counter (a limit's resource and window, for one key), what the
//! current window has **used** and what calls in flight have **reserved**. Both stores
//! run the same two steps, each atomic over every counter of a call:
//!
//! - **reserve**: for each counter, roll its window (a new window starts with nothing
//!   used; reservations carry over), then grant only if `used + reserved + amount <= cap`
//!   for every counter, and add the amounts to `reserved`. One counter short refuses the
//!   whole call and reserves nothing.
//! - **settle**: take the reservation back out of `reserved` and add what the call
//!   really used to `used` (in the window current at settlement).
//!
//! So `used + reserved` never passes a cap while calls use no more than they reserved,
//! and a call that used less gives the rest back when it settles.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tta_core::BreakerState;

pub use memory::{CounterSnapshot, MemoryStore};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};

use crate::Resource;

/// How much a call reserves on one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// This much.
    Exact(u64),
    /// Everything the counter has left (at least one unit): for a call that declares no
    /// maximum, which then runs alone against this counter.
    Rest,
}

/// One counter a call reserves on: a limit's resource, cap and window, and the amount.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Line {
    /// What the counter counts.
    pub resource: Resource,
    /// The most a window may use, in the resource's unit (pico-dollars for USD).
    pub cap: u64,
    /// The window's length.
    pub window: Duration,
    /// How much to reserve.
    pub amount: Amount,
}

impl Line {
    /// A line for `resource`, capped at `cap` per `window`, reserving `amount`.
    pub fn new(resource: Resource, cap: u64, window: Duration, amount: Amount) -> Self {
        Self {
            resource,
            cap,
            window,
            amount,
        }
    }
}

/// One call's counters, under a limit's name and a key (a tenant, or the global key).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Ask<'a> {
    /// The limit's name: counters of limits with different names never mix.
    pub limit: &'a str,
    /// The key (a tenant).
    pub key: &'a str,
    /// A reservation id, unique across processes.
    pub id: &'a str,
    /// The longest a store keeps the reservation if the call never settles (a process
    /// that died mid-call): then the reservation lapses and frees what it held.
    pub hold: Duration,
    /// The counters.
    pub lines: &'a [Line],
}

/// What a store decided about a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Reserved: the amount taken on each line, in the lines' order.
    Granted(Vec<u64>),
    /// Not reserved, on the line at `line`.
    Refused {
        /// The index of the line that refused.
        line: usize,
        /// Why, and when it may free.
        reason: Refusal,
    },
}

/// Why a line refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// What the window has used leaves too little; it frees when the window ends,
    /// after this long.
    Spent {
        /// Until the window ends.
        window_ends_in: Duration,
    },
    /// Calls in flight hold the rest; it may free as soon as one settles, and at the
    /// latest when the window ends, after this long.
    Held {
        /// Until the window ends.
        window_ends_in: Duration,
    },
    /// The call's maximum is above the cap: it can never be reserved.
    TooLarge,
}

/// What one call really used, to settle its reservation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settlement<'a> {
    /// As reserved.
    pub limit: &'a str,
    /// As reserved.
    pub key: &'a str,
    /// As reserved.
    pub id: &'a str,
    /// As reserved.
    pub hold: Duration,
    /// As reserved.
    pub lines: &'a [Line],
    /// What each line reserved ([`Decision::Granted`]).
    pub reserved: &'a [u64],
    /// What each line really used.
    pub used: &'a [u64],
}

/// A store that could not answer (Redis down, a command timed out, its breaker open).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limit store failed: {message}")]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Where a limit keeps its counters. Each method must be atomic over all the lines it is
/// given: no other reservation may see some of them updated and not the others.
pub trait LimitStore: Send + Sync + fmt::Debug + 'static {
    /// A short name for the store (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// Reserves every line, or none; see the [module docs](self).
    fn reserve<'a>(&'a self, ask: Ask<'a>) -> BoxFuture<'a, Result<Decision, StoreError>>;

    /// Settles a reservation: gives back what it reserved (if it has not lapsed) and
    /// adds what was used. Returns each line's `used` after settling, to tell an
    /// overshoot.
    fn settle<'a>(
        &'a self,
        settlement: Settlement<'a>,
    ) -> BoxFuture<'a, Result<Vec<u64>, StoreError>>;

    /// The store's breaker, for a store that has one.
    fn breaker_state(&self) -> Option<BreakerState> {
        None
    }
}
