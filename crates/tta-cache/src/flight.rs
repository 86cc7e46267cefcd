//! Single flight: concurrent misses on one key run the fill once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;
use tta_core::Error;

use crate::codec::FillCost;

/// What a leader publishes to its followers.
pub(crate) type Outcome<O> = Result<(O, FillCost), Error>;

/// A flight's id and the channel its followers subscribe to.
type Slot<O> = (u64, watch::Receiver<Option<Outcome<O>>>);
type FlightMap<O> = HashMap<[u8; 32], Slot<O>>;

/// In-flight fills by key hash. An entry lives from the moment a leader claims a key
/// until the leader is done (or dropped); followers subscribe to its channel.
pub(crate) struct Flights<O> {
    map: Mutex<FlightMap<O>>,
    next_id: AtomicU64,
}

/// The caller's part in a flight.
pub(crate) enum Role<'a, O> {
    /// Runs the fill and publishes the outcome.
    Leader(Leader<'a, O>),
    /// Waits for the leader's outcome.
    Follower(watch::Receiver<Option<Outcome<O>>>),
}

/// The leader's claim on a key. Dropping it (finished or cancelled) releases the key;
/// followers of a leader dropped before publishing see the channel close and retry.
pub(crate) struct Leader<'a, O> {
    flights: &'a Flights<O>,
    key: [u8; 32],
    id: u64,
    tx: watch::Sender<Option<Outcome<O>>>,
}

impl<O: Clone> Flights<O> {
    pub(crate) fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, FlightMap<O>> {
        // Every critical section is a single map operation: a poisoned lock holds
        // consistent data.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `key`, or joins the flight already running for it.
    pub(crate) fn join(&self, key: &[u8; 32]) -> Role<'_, O> {
        let mut map = self.map();
        if let Some((_, rx)) = map.get(key) {
            return Role::Follower(rx.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        map.insert(*key, (id, rx));
        Role::Leader(Leader {
            flights: self,
            key: *key,
            id,
            tx,
        })
    }

    /// Keys with a fill in flight (for tests and leak checks).
    pub(crate) fn in_flight(&self) -> usize {
        self.map().len()
    }
}

impl<O> Leader<'_, O> {
    /// Hands the outcome to every follower, present and future, until the leader drops.
    pub(crate) fn publish(&self, outcome: Outcome<O>) {
        self.tx.send_replace(Some(outcome));
    }
}

impl<O> Drop for Leader<'_, O> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

/// Waits for a leader's outcome; `None` when the leader was dropped without one (the
/// caller then retries, and may become the leader).
pub(crate) async fn follow<O: Clone>(
    mut rx: watch::Receiver<Option<Outcome<O>>>,
) -> Option<Outcome<O>> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}
