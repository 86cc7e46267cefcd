//! Single flight: concurrent misses on one key run the fill once.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tta_core::Error;

use crate::codec::FillCost;

/// What a leader publishes to its followers.
pub(crate) type Outcome<O> = Result<(O, FillCost), Error>;

type Channel<O> = watch::Receiver<Option<Outcome<O>>>;

/// A flight's id and its followers' channel: a `Channel<O>` for the `O` in its key.
struct Slot {
    id: u64,
    channel: Box<dyn Any + Send + Sync>,
}

/// A key hash, with the output type it is filled for: a primitive with several input
/// types may have several output types, and a flight only ever hands its own type on.
type FlightKey = (TypeId, [u8; 32]);

/// In-flight fills by output type and key hash. An entry lives from the moment a leader
/// claims a key until the leader is done (or dropped); followers subscribe to its channel.
pub(crate) struct Flights {
    map: Mutex<HashMap<FlightKey, Slot>>,
    next_id: AtomicU64,
}

/// The caller's part in a flight.
pub(crate) enum Role<O> {
    /// Runs the fill and publishes the outcome.
    Leader(Leader<O>),
    /// Waits for the leader's outcome.
    Follower(Channel<O>),
}

/// The leader's claim on a key. Dropping it (finished or cancelled) releases the key;
/// followers of a leader dropped before publishing see the channel close and claim again.
/// It owns its share of the flights, so a stream's fill can keep it until its body ends.
pub(crate) struct Leader<O> {
    flights: Arc<Flights>,
    key: FlightKey,
    id: u64,
    tx: watch::Sender<Option<Outcome<O>>>,
}

impl Flights {
    pub(crate) fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<FlightKey, Slot>> {
        // Every critical section is a single map operation: a poisoned lock holds
        // consistent data.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `key` for an output of type `O`, or joins the flight already filling it.
    pub(crate) fn join<O: Send + Sync + 'static>(self: &Arc<Self>, key: &[u8; 32]) -> Role<O> {
        let key = (TypeId::of::<O>(), *key);
        let mut map = self.map();
        if let Some(channel) = map
            .get(&key)
            .and_then(|slot| slot.channel.downcast_ref::<Channel<O>>())
        {
            return Role::Follower(channel.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        map.insert(
            key,
            Slot {
                id,
                channel: Box::new(rx),
            },
        );
        Role::Leader(Leader {
            flights: Arc::clone(self),
            key,
            id,
            tx,
        })
    }

    /// Keys with a fill in flight (for tests and leak checks).
    pub(crate) fn in_flight(&self) -> usize {
        self.map().len()
    }

    fn release(&self, key: &FlightKey, id: u64) {
        let mut map = self.map();
        if map.get(key).is_some_and(|slot| slot.id == id) {
            map.remove(key);
        }
    }
}

impl<O> Leader<O> {
    /// Hands the value to every follower, present and future, until the leader drops
    /// (a caller that joins meanwhile gets it without a fill).
    pub(crate) fn publish(&self, value: O, cost: FillCost) {
        self.tx.send_replace(Some(Ok((value, cost))));
    }

    /// Hands the error to the present followers. The key is released first, so a
    /// follower that takes over (after a retryable error) claims a new flight.
    pub(crate) fn fail(self, error: Error) {
        self.flights.release(&self.key, self.id);
        self.tx.send_replace(Some(Err(error)));
    }
}

impl<O> Drop for Leader<O> {
    fn drop(&mut self) {
        self.flights.release(&self.key, self.id);
    }
}

/// Waits for a leader's outcome; `None` when the leader was dropped without one (the
/// caller then claims the key again, and may become the leader).
pub(crate) async fn follow<O: Clone>(rx: &mut Channel<O>) -> Option<Outcome<O>> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}

/// Waits until the flight's leader is gone (done, stored, or dropped).
pub(crate) async fn landed<O>(mut rx: Channel<O>) {
    while rx.changed().await.is_ok() {}
}
