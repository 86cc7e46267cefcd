//! A response cache for tta workflows.
//!
//! [`CachePrimitive`] wraps a primitive: a lookup that finds an entry returns it (a
//! **hit**, which records the tokens and dollars the original fill cost as savings);
//! otherwise the inner primitive runs (a **miss**) and its value is stored. Concurrent
//! misses on one key run the inner primitive **once** (single flight): the others wait
//! and share its result, or its error. Errors are never cached.
//!
//! Keys are a BLAKE3 hash of a namespace, a version and the input's serialized bytes
//! ([`CacheKey`]); no input ever reaches a store key, a span or a log. Entries are stored
//! in one compact serde codec (postcard, see [`codec`](crate#entry-format)).
//!
//! The store is a [`CacheStore`]: [`MemoryStore`] (quick_cache, the default) or, with feature
//! `redis`, `RedisStore` (fred) to share entries between replicas. **The cache never fails
//! a request because of its store**: a store that is down, slow or returns junk is
//! counted as an error and the request bypasses to the inner primitive.
//!
//! # Across replicas
//!
//! With a store several processes share (Redis), single flight spans them: before a
//! process fills a missed key it takes the key's lease in the store
//! ([`CacheStore::lease`]). A process that finds the lease held waits for the value
//! instead, looking every 20 ms, and takes over when the lease is freed without a value
//! (the fill failed) or lapses (its process died). The lease lasts the leader's remaining
//! deadline, at least 100 ms and at most 30 s (30 s without one), so that is the longest
//! a waiter waits on a vanished leader; a waiter's own deadline cuts its wait like any
//! other. Streams too: a waiter in another process gets the stored chunks once the
//! leader's stream has ended cleanly and been stored (callers in the leader's own
//! process get them live). With Redis down, each process fills alone, as before.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tta_cache::CachePrimitive;
//! use tta_core::{from_fn, Error, WorkflowContext};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let llm = from_fn(|prompt: String, _| async move { Ok::<_, Error>(format!("answer to {prompt}")) });
//! let cached = CachePrimitive::builder(llm)
//!     .name("answers")
//!     .namespace("qa")
//!     .ttl(Duration::from_secs(600))
//!     .build()?;
//! let cx = WorkflowContext::new();
//! let first = cached.execute("what is tta?".to_owned(), &cx).await?; // miss: runs the LLM
//! let again = cached.execute("what is tta?".to_owned(), &cx).await?; // hit
//! assert_eq!(first, again);
//! # Ok(()) }
//! ```
//!
//! # Entry format
//!
//! An entry is the postcard encoding of `(format = 1, input_tokens, output_tokens,
//! cost_picos, value)`. Bytes that do not decode are a miss, counted as
//! `tta.cache.errors{op="get", error_type="decode"}`, and are overwritten by the fill.
//!
//! # Features
//!
//! - `redis`: `RedisStore` on fred 10 (`redis://`, `rediss://`, `redis-cluster://`).
//! - `tower`: turns on `tta_core::tower`, whose `TowerLayer` serves a [`CacheLayer`] as
//!   a tower `Layer`.
#![doc(test(attr(deny(warnings))))]

mod builder;
mod codec;
mod flight;
mod key;
mod metrics;
pub mod semconv;
mod store;
mod stream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tta_core::{Around, CostEntry, Error, Instrumentation, WorkflowContext, WorkflowPrimitive};

pub use builder::{BuildError, CacheBuilder, CacheLayer};

use builder::CacheConfig;
pub use key::{CacheKey, KeyWriter};
pub use metrics::CacheStats;
pub use store::{
    BoxStore, CacheStore, Lease, LeaseToken, MemoryStore, MemoryStoreBuilder, StoreBuildError,
    StoreError, StoreErrorKind,
};
#[cfg(feature = "redis")]
pub use store::{RedisStore, RedisStoreBuilder};

use codec::{Decode, FillCost, Whole};
use flight::{Flights, Leader, Role};
use metrics::{CacheMetrics, Op, PendingLookup};

/// How a cache derives key bytes from an input. Implemented by [`SerializedInput`] (the
/// default) and by [`KeyWith`] (a closure given to [`CacheBuilder::key_fn`]).
pub trait KeyFn<I>: Send + Sync {
    /// Writes the bytes that identify `input` (they are hashed as written, never
    /// stored); `false` when the input cannot be keyed (the request then bypasses the
    /// cache, counted as `tta.cache.errors{op="key"}`).
    fn write_key(&self, input: &I, out: &mut KeyWriter<'_>) -> bool;
}

/// The default key: the input's postcard serialization, exactly as serde produces it,
/// hashed as it is written. Inputs holding a `HashMap` serialize in an unspecified order;
/// use a `BTreeMap` (or a key function) for them.
#[derive(Clone, Copy, Debug, Default)]
pub struct SerializedInput;

impl<I: Serialize> KeyFn<I> for SerializedInput {
    fn write_key(&self, input: &I, out: &mut KeyWriter<'_>) -> bool {
        postcard::to_io(input, out).is_ok()
    }
}

/// A key function given to [`CacheBuilder::key_fn`].
#[derive(Clone, Copy, Debug)]
pub struct KeyWith<F>(F);

impl<I, F, B> KeyFn<I> for KeyWith<F>
where
    F: Fn(&I) -> B + Send + Sync,
    B: AsRef<[u8]>,
{
    fn write_key(&self, input: &I, out: &mut KeyWriter<'_>) -> bool {
        std::io::Write::write_all(out, (self.0)(input).as_ref()).is_ok()
    }
}

/// What a store lookup found.
pub(crate) enum Lookup<O> {
    Hit(O, FillCost),
    /// No entry.
    Miss,
    /// An entry that does not decode: the fill overwrites it.
    Junk,
    /// The store failed: this request neither reads again nor writes, so it adds at most
    /// one command timeout.
    Failed,
}

/// What a local leader learned from the processes sharing its store before filling.
pub(crate) enum Remote<O> {
    /// Fill: with the store's lease when the store is shared.
    Lead(Option<LeaseToken>),
    /// Another process filled the key meanwhile.
    Hit(O, FillCost),
}

/// How often a process waiting for another's fill looks for the value.
pub(crate) const LEASE_POLL: Duration = Duration::from_millis(20);
/// The longest lease (a filler that died frees the key after at most this long); a
/// caller's shorter deadline shortens it.
pub(crate) const MAX_LEASE: Duration = Duration::from_secs(30);
const MIN_LEASE: Duration = Duration::from_millis(100);

/// What a cached output must be: cloned to every coalesced caller, serialized into the
/// store, and decoded from it on a hit.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached output must be `Clone + Serialize + DeserializeOwned + Send + Sync + 'static`",
    label = "not cacheable",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` on the output type"
)]
pub trait Cacheable: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Cacheable for T {}

/// How many times one request takes a failed fill over (after a retryable error of the
/// leader) before it shares the error: one blip does not fail every waiter, and a
/// provider that keeps failing is not called once per waiter.
pub(crate) const MAX_TAKEOVERS: u32 = 2;

/// Caches the outputs of a primitive; see the [crate docs](crate).
///
/// Build it with [`CachePrimitive::builder`].
pub struct CachePrimitive<P, S = MemoryStore, K = SerializedInput> {
    inner: P,
    /// Shared with the bodies of streamed fills, which store their chunks at the end.
    config: Arc<CacheConfig<S, K>>,
    flights: Arc<Flights>,
    inst: Instrumentation,
    metrics: Arc<CacheMetrics>,
}

impl<P> CachePrimitive<P> {
    /// Starts configuring a cache around `inner` (in memory by default).
    ///
    /// # Examples
    ///
    /// See the [crate docs](crate).
    pub fn builder(inner: P) -> CacheBuilder<Around<P>> {
        CacheBuilder::new(Around(inner))
    }
}

impl<P, S, K> CachePrimitive<P, S, K> {
    /// The longest TTL accepted: 30 days.
    pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

    /// The store.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_cache::{CachePrimitive, CacheStore};
    /// let c = CachePrimitive::builder(tta_core::from_fn(|x: u8, _| async move { Ok::<_, tta_core::Error>(x) }))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(c.store().kind(), "memory");
    /// ```
    pub fn store(&self) -> &S {
        &self.config.store
    }

    /// Keys whose fill is running now (0 when idle: no waiter is ever left behind).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = tta_cache::CachePrimitive::builder(tta_core::from_fn(|x: u8, _| async move { Ok::<_, tta_core::Error>(x) }))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(c.fills_in_flight(), 0);
    /// ```
    pub fn fills_in_flight(&self) -> usize {
        self.flights.in_flight()
    }

    /// Runs the cache: [`WorkflowPrimitive::execute`], as an inherent method so that a
    /// call on an output that cannot be cached fails to compile with a message naming
    /// what is missing ([`Cacheable`]) instead of "no method named `execute`".
    ///
    /// # Errors
    ///
    /// What the inner primitive returns; the store's own failures never reach the caller.
    pub async fn execute<I>(&self, input: I, cx: &WorkflowContext) -> Result<P::Output, Error>
    where
        P: WorkflowPrimitive<I>,
        P::Output: Cacheable,
        S: CacheStore,
        K: KeyFn<I>,
        I: Send,
    {
        <Self as WorkflowPrimitive<I>>::execute(self, input, cx).await
    }

    /// Counts of its lookups since it was built, without a metrics backend.
    ///
    /// # Examples
    ///
    /// See [`CacheLayer`].
    pub fn stats(&self) -> CacheStats {
        self.metrics.stats()
    }
}

impl<P, S, K> std::fmt::Debug for CachePrimitive<P, S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachePrimitive")
            .field("name", self.inst.name())
            .field("namespace", &self.config.namespace)
            .field("version", &self.config.version)
            .field("ttl", &self.config.ttl)
            .finish_non_exhaustive()
    }
}

impl<P, S, K> CachePrimitive<P, S, K>
where
    S: CacheStore,
{
    /// Reads and decodes an entry as of `now` (for a store that checks its entries' time
    /// to live itself); every failure is counted.
    async fn lookup<O: Decode>(&self, key: &CacheKey, now: Instant) -> Lookup<O> {
        let store = &self.config.store;
        let started = store.is_timed().then(Instant::now);
        let found = store.get_at(key, now).await;
        let op = |op: Op| {
            if let Some(started) = started {
                self.metrics.op(op, started.elapsed());
            }
        };
        self.metrics.store_state(store.breaker_state());
        match found {
            Ok(Some(bytes)) => {
                op(Op::GetHit);
                match O::decode(bytes) {
                    Some((value, cost)) => Lookup::Hit(value, cost),
                    None => {
                        self.metrics.error("get", "decode");
                        Lookup::Junk
                    }
                }
            }
            Ok(None) => {
                op(Op::GetMiss);
                Lookup::Miss
            }
            Err(e) => {
                op(Op::GetError);
                self.metrics.error("get", e.kind().as_str());
                Lookup::Failed
            }
        }
    }

    /// Encodes and writes an entry; a value too large or a failed write is counted.
    async fn fill<O: Serialize>(&self, key: &CacheKey, value: &O, cost: FillCost) {
        let bytes = match codec::encode(value, cost) {
            Ok(bytes) => bytes,
            Err(_) => return self.metrics.error("set", "encode"),
        };
        if bytes.len() > self.config.max_value_bytes {
            return self.metrics.error("set", "too_large");
        }
        let store = &self.config.store;
        let started = store.is_timed().then(Instant::now);
        let stored = store.set(key, bytes, self.config.ttl).await;
        let op = |op: Op| {
            if let Some(started) = started {
                self.metrics.op(op, started.elapsed());
            }
        };
        self.metrics.store_state(store.breaker_state());
        match stored {
            Ok(()) => op(Op::SetOk),
            Err(e) => {
                op(Op::SetError);
                self.metrics.error("set", e.kind().as_str());
            }
        }
    }

    /// Before a local leader fills a missed key: in a store shared by several processes,
    /// takes the key's lease, or waits for the process holding it to store the value
    /// (looking every 20 ms), taking over when the lease is freed or lapses without a
    /// value. The lease lasts the caller's remaining deadline (100 ms to 30 s; 30 s
    /// without one), so a waiter never waits on a filler longer than that, and its own
    /// deadline (a timeout around the cache) cuts its wait like any other.
    async fn remote<O: Decode>(&self, key: &CacheKey, cx: &WorkflowContext) -> Remote<O> {
        let store = &self.config.store;
        let ttl = cx
            .remaining()
            .unwrap_or(MAX_LEASE)
            .clamp(MIN_LEASE, MAX_LEASE);
        loop {
            match store.lease(key, ttl).await {
                Ok(Lease::Held) => {}
                Ok(Lease::Granted(token)) => {
                    // The value may have landed between the lookup and the lease.
                    return match self.lookup::<O>(key, Instant::now()).await {
                        Lookup::Hit(value, cost) => {
                            store.release(key, &token).await;
                            Remote::Hit(value, cost)
                        }
                        _ => Remote::Lead(Some(token)),
                    };
                }
                Ok(Lease::Unshared) | Err(_) => return Remote::Lead(None),
            }
            tokio::time::sleep(LEASE_POLL).await;
            match self.lookup::<O>(key, Instant::now()).await {
                Lookup::Hit(value, cost) => return Remote::Hit(value, cost),
                Lookup::Failed => return Remote::Lead(None),
                Lookup::Miss | Lookup::Junk => {}
            }
        }
    }

    /// Records a hit: the counters, and the fill's cost as savings in the ledger.
    fn record_hit(&self, cx: &WorkflowContext, cost: FillCost, result: &'static str) {
        self.metrics.lookup(true);
        self.metrics.saved(cost.cost);
        cx.ledger().record(CostEntry::saved(
            self.inst.name().to_arc(),
            cost.usage,
            cost.cost,
        ));
        if let Some(span) = cx.primitive_span() {
            span.set_attribute(KeyValue::new(semconv::ATTR_RESULT, result));
        }
    }
}

impl<P, S, K> CachePrimitive<P, S, K> {
    /// Runs the inner primitive (a miss or a bypass) in its own allocation: the inner
    /// future (a router's, say) is often kilobytes, and kept inline it would make every
    /// hit's future as large, to be moved on every call.
    fn run_inner<'a, I>(
        &'a self,
        input: I,
        cx: &'a WorkflowContext,
    ) -> Pin<Box<dyn Future<Output = Result<P::Output, Error>> + Send + 'a>>
    where
        P: WorkflowPrimitive<I>,
        I: Send + 'a,
    {
        Box::pin(self.inner.execute(input, cx))
    }
}

impl<P, S: CacheStore, K> CachePrimitive<P, S, K> {
    /// After a miss: claims the key's flight, to lead its fill or follow the one in
    /// flight. In its own allocation: the fill's future (the inner primitive's among it)
    /// is kilobytes, and kept inline it would make every hit's future as large, to be
    /// moved on every call.
    fn claim<'a, I>(
        &'a self,
        key: CacheKey,
        input: I,
        cx: &'a WorkflowContext,
        write: bool,
        mut pending: PendingLookup<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<P::Output, Error>> + Send + 'a>>
    where
        P: WorkflowPrimitive<I>,
        P::Output: Cacheable,
        K: Send + Sync,
        I: Send + 'a,
    {
        Box::pin(async move {
            let span = cx.primitive_span();
            let mut takeovers = 0;
            loop {
                let mut rx = match self.flights.join::<P::Output>(key.hash()) {
                    Role::Leader(leader) => {
                        // The leader counts its lookup: a hit when another process
                        // stored the value meanwhile, else a miss; cut before either,
                        // `pending` counts the miss.
                        return self.lead(leader, &key, input, cx, write, pending).await;
                    }
                    Role::Follower(rx) => rx,
                };
                match flight::follow(&mut rx).await {
                    Some(Ok((value, cost))) => {
                        pending.counted();
                        self.metrics.coalesced();
                        self.record_hit(cx, cost, "coalesced");
                        return Ok(value);
                    }
                    // The leader hit a blip: one of its followers fills instead.
                    Some(Err(e)) if e.class().is_retryable() && takeovers < MAX_TAKEOVERS => {
                        takeovers += 1;
                    }
                    Some(Err(e)) => {
                        pending.counted();
                        self.metrics.coalesced();
                        self.metrics.lookup(false);
                        if let Some(span) = &span {
                            span.set_attribute(KeyValue::new(semconv::ATTR_RESULT, "coalesced"));
                        }
                        return Err(e);
                    }
                    // The leader was cancelled before it finished: claim again.
                    None => {}
                }
            }
        })
    }

    /// Runs the fill as the flight's leader: publishes the value (or the error) to the
    /// followers, and stores the value unless the store failed this request's lookup.
    async fn lead<I>(
        &self,
        leader: Leader<P::Output>,
        key: &CacheKey,
        input: I,
        cx: &WorkflowContext,
        write: bool,
        mut pending: PendingLookup<'_>,
    ) -> Result<P::Output, Error>
    where
        P: WorkflowPrimitive<I>,
        P::Output: Cacheable,
        I: Send,
    {
        let lease = if write {
            match self.remote::<Whole<P::Output>>(key, cx).await {
                Remote::Hit(Whole(value), cost) => {
                    leader.publish(value.clone(), cost);
                    pending.counted();
                    self.metrics.coalesced();
                    self.record_hit(cx, cost, "coalesced");
                    return Ok(value);
                }
                Remote::Lead(lease) => lease,
            }
        } else {
            None
        };
        pending.counted();
        self.metrics.lookup(false);
        if let Some(span) = cx.primitive_span() {
            span.set_attribute(KeyValue::new(semconv::ATTR_RESULT, "miss"));
        }
        // A ledger scope learns what the fill cost, for future hits.
        let (fill_cx, scope) = cx.with_ledger_scope();
        // A fill cancelled here leaves its lease to lapse: other processes then take over.
        let value = match self.inner.execute(input, &fill_cx).await {
            Ok(value) => value,
            Err(e) => {
                leader.fail(e.clone());
                if let Some(token) = &lease {
                    self.config.store.release(key, token).await;
                }
                return Err(e);
            }
        };
        let totals = scope.totals();
        let cost = FillCost {
            usage: totals.usage,
            cost: totals.spent,
        };
        leader.publish(value.clone(), cost);
        if write {
            self.fill(key, &value, cost).await;
        }
        if let Some(token) = &lease {
            self.config.store.release(key, token).await;
        }
        Ok(value)
    }
}

impl<I, P, S, K> WorkflowPrimitive<I> for CachePrimitive<P, S, K>
where
    P: WorkflowPrimitive<I>,
    P::Output: Cacheable,
    S: CacheStore,
    K: KeyFn<I>,
    I: Send,
{
    type Output = P::Output;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    /// Lookup (the request's one store read), then claim: lead the fill or follow the
    /// one in flight for the same key.
    async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<P::Output, Error> {
        self.inst
            .run_started(cx, |child, started| async move {
                let span = child.primitive_span();
                if let Some(span) = &span {
                    span.set_attribute(KeyValue::new(
                        semconv::ATTR_STORE,
                        self.config.store.kind(),
                    ));
                }
                let Some(key) = CacheKey::hashed(
                    Arc::clone(&self.config.namespace),
                    self.config.version,
                    |w| self.config.key.write_key(&input, w),
                ) else {
                    self.metrics.error("key", "encode");
                    if let Some(span) = &span {
                        span.set_attribute(KeyValue::new(semconv::ATTR_RESULT, "bypass"));
                    }
                    return self.run_inner(input, &child).await;
                };
                if let Some(span) = &span {
                    span.set_attribute(KeyValue::new(semconv::ATTR_KEY, key.short()));
                }

                // Counted when the lookup is answered; a request cut before (while it
                // reads the store, waits on a flight or on a lease) counts a miss.
                let mut pending = PendingLookup::new(&self.metrics);
                let write = match self.lookup::<Whole<P::Output>>(&key, started).await {
                    Lookup::Hit(Whole(value), cost) => {
                        pending.counted();
                        self.record_hit(&child, cost, "hit");
                        return Ok(value);
                    }
                    Lookup::Miss | Lookup::Junk => true,
                    // The store is failing: no write, so the request adds at most one
                    // command timeout.
                    Lookup::Failed => false,
                };
                self.claim(key, input, &child, write, pending).await
            })
            .await
    }
}

tta_core::impl_composition_ops!(CachePrimitive<P, S, K>);
