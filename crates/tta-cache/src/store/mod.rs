//! Where cached bytes live: the [`CacheStore`] trait and its two implementations.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::time::Instant;

pub use memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};

use crate::CacheKey;

/// Why a store could not be built.
///
/// # Examples
///
/// ```
/// use tta_cache::{MemoryStore, StoreBuildError};
/// let err = MemoryStore::builder().max_entries(0).build().unwrap_err();
/// assert!(matches!(err, StoreBuildError::Bound(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreBuildError {
    /// A memory store bound is zero, or both bounds are set.
    #[error("invalid store bound: {0}")]
    Bound(&'static str),
    /// A Redis URL that cannot be used.
    #[error("invalid Redis URL {url:?}: {reason}")]
    RedisUrl {
        /// The URL, with any password removed.
        url: String,
        /// What the Redis client said about it.
        reason: String,
    },
    /// A Redis setting that cannot be used (pool size, timeouts, breaker).
    #[error("invalid Redis setting: {0}")]
    RedisSetting(&'static str),
}

impl From<StoreBuildError> for tta_core::Error {
    fn from(e: StoreBuildError) -> Self {
        tta_core::Error::invalid_config(e)
    }
}

/// Why a store operation failed, in a bounded set fit for the `error_type` label.
///
/// # Examples
///
/// ```
/// assert_eq!(tta_cache::StoreErrorKind::BreakerOpen.as_str(), "breaker_open");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The command did not finish within the store's command timeout.
    Timeout,
    /// The store is unreachable or reconnecting (the command failed fast).
    Unavailable,
    /// The breaker is open after repeated failures: the store was not called.
    BreakerOpen,
    /// The store refused the write (for example Redis at `maxmemory`).
    Rejected,
    /// Anything else the store reported.
    Other,
}

impl StoreErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [StoreErrorKind; 5] = [
        Self::Timeout,
        Self::Unavailable,
        Self::BreakerOpen,
        Self::Rejected,
        Self::Other,
    ];

    /// A stable, low-cardinality name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_cache::StoreErrorKind::Rejected.as_str(), "rejected");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::BreakerOpen => "breaker_open",
            Self::Rejected => "rejected",
            Self::Other => "other",
        }
    }
}

/// A failed store operation. The cache never fails a request because of one: it bypasses
/// to the inner primitive and counts the error.
///
/// # Examples
///
/// ```
/// use tta_cache::{StoreError, StoreErrorKind};
/// let e = StoreError::new(StoreErrorKind::Timeout, "GET took longer than 250ms");
/// assert_eq!(e.kind(), StoreErrorKind::Timeout);
/// assert!(e.to_string().contains("250ms"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cache store {}: {message}", kind.as_str())]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

impl StoreError {
    /// A store error of `kind`.
    ///
    /// # Examples
    ///
    /// See [`StoreError`].
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure.
    ///
    /// # Examples
    ///
    /// See [`StoreError`].
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

/// What a store says when a process is about to fill a missed key: whether it leads
/// the fill for every process sharing the store ([`CacheStore::lease`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lease {
    /// The store is this process's alone (or cannot tell): fill.
    Unshared,
    /// This process leads the fill until it releases the lease (or the lease lapses).
    Granted(LeaseToken),
    /// Another process is filling the key: wait for its value.
    Held,
}

/// Proof of a granted [`Lease`], to release it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseToken(pub(crate) String);

/// A key-value store for cached entries: opaque bytes under a [`CacheKey`], each with its
/// own time to live.
///
/// Implementations must be cheap to share (`&self` everywhere) and must bound their own
/// latency: a slow store delays every miss.
pub trait CacheStore: Send + Sync + 'static {
    /// A stable, low-cardinality name for the `store` label (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// The bytes under `key`, or `None` on a miss (or after expiry).
    fn get(&self, key: &CacheKey)
    -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;

    /// [`get`](Self::get) as of `now`, the instant the cache's execution started: a
    /// store that checks its entries' time to live in this process compares them with
    /// `now` instead of reading the clock again (the memory store does: a hit reads the
    /// clock once fewer). The default ignores `now` and calls `get`.
    fn get_at(
        &self,
        key: &CacheKey,
        now: Instant,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        let _ = now;
        self.get(key)
    }

    /// Stores `value` under `key` for `ttl`, replacing any older entry.
    fn set(
        &self,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The store's breaker, for a remote store that has one (the `tta.cache.store.state`
    /// gauge); `None` (the default) for a store that cannot be down.
    fn breaker_state(&self) -> Option<tta_core::BreakerState> {
        None
    }

    /// Whether its operations are timed in `tta.cache.operation.duration` (the default:
    /// yes). An in-process store says no: timing a lookup of about 100 ns would take two
    /// clock reads and a histogram record, more than the lookup itself.
    fn is_timed(&self) -> bool {
        true
    }

    /// Claims the fill of `key` across every process sharing the store, for at most
    /// `ttl` (a filler that dies frees it then). The default, for a store of one process:
    /// [`Lease::Unshared`]. A store that cannot answer returns its error, and the cache
    /// fills without a lease.
    fn lease(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send {
        let _ = (key, ttl);
        std::future::ready(Ok(Lease::Unshared))
    }

    /// Gives a granted lease back (after the value is stored, or when the fill failed).
    fn release(&self, key: &CacheKey, token: &LeaseToken) -> impl Future<Output = ()> + Send {
        let _ = (key, token);
        std::future::ready(())
    }
}

impl<S: CacheStore> CacheStore for std::sync::Arc<S> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }

    fn get(
        &self,
        key: &CacheKey,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        (**self).get(key)
    }

    fn get_at(
        &self,
        key: &CacheKey,
        now: Instant,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send {
        (**self).get_at(key, now)
    }

    fn set(
        &self,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set(key, value, ttl)
    }

    fn breaker_state(&self) -> Option<tta_core::BreakerState> {
        (**self).breaker_state()
    }

    fn is_timed(&self) -> bool {
        (**self).is_timed()
    }

    fn lease(
        &self,
        key: &CacheKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send {
        (**self).lease(key, ttl)
    }

    fn release(&self, key: &CacheKey, token: &LeaseToken) -> impl Future<Output = ()> + Send {
        (**self).release(key, token)
    }
}

/// The object-safe form of [`CacheStore`], behind [`BoxStore`].
trait DynCacheStore: Send + Sync + 'static {
    fn dyn_kind(&self) -> &'static str;
    fn dyn_breaker_state(&self) -> Option<tta_core::BreakerState>;
    fn dyn_is_timed(&self) -> bool;
    fn dyn_get<'a>(&'a self, key: &'a CacheKey)
    -> BoxFuture<'a, Result<Option<Bytes>, StoreError>>;
    fn dyn_get_at<'a>(
        &'a self,
        key: &'a CacheKey,
        now: Instant,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>>;
    fn dyn_set<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn dyn_lease<'a>(
        &'a self,
        key: &'a CacheKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Lease, StoreError>>;
    fn dyn_release<'a>(&'a self, key: &'a CacheKey, token: &'a LeaseToken) -> BoxFuture<'a, ()>;
}

impl<S: CacheStore> DynCacheStore for S {
    fn dyn_kind(&self) -> &'static str {
        self.kind()
    }

    fn dyn_breaker_state(&self) -> Option<tta_core::BreakerState> {
        self.breaker_state()
    }

    fn dyn_is_timed(&self) -> bool {
        self.is_timed()
    }

    fn dyn_get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>> {
        Box::pin(self.get(key))
    }

    fn dyn_get_at<'a>(
        &'a self,
        key: &'a CacheKey,
        now: Instant,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>> {
        Box::pin(self.get_at(key, now))
    }

    fn dyn_set<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.set(key, value, ttl))
    }

    fn dyn_lease<'a>(
        &'a self,
        key: &'a CacheKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Lease, StoreError>> {
        Box::pin(self.lease(key, ttl))
    }

    fn dyn_release<'a>(&'a self, key: &'a CacheKey, token: &'a LeaseToken) -> BoxFuture<'a, ()> {
        Box::pin(self.release(key, token))
    }
}

/// Any store behind one type, chosen at run time: a Redis store when a URL is
/// configured, the memory store otherwise, with one builder call for both. Costs one
/// boxed future per store operation.
///
/// # Examples
///
/// ```
/// use tta_cache::{BoxStore, CachePrimitive, CacheStore, MemoryStore, RedisStore};
/// use tta_core::from_sync_fn;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis_url: Option<&str> = None; // from the configuration
/// let store = match redis_url {
///     Some(url) => BoxStore::new(RedisStore::builder(url).connect().await?),
///     None => BoxStore::new(MemoryStore::new()),
/// };
/// let answers = CachePrimitive::builder(from_sync_fn(|q: String, _| Ok(q.len())))
///     .store(store)
///     .build()?;
/// assert_eq!(answers.store().kind(), "memory");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BoxStore(std::sync::Arc<dyn DynCacheStore>);

impl BoxStore {
    /// Boxes `store`.
    pub fn new<S: CacheStore>(store: S) -> Self {
        Self(std::sync::Arc::new(store))
    }
}

impl std::fmt::Debug for BoxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoxStore").field(&self.0.dyn_kind()).finish()
    }
}

impl CacheStore for BoxStore {
    fn kind(&self) -> &'static str {
        self.0.dyn_kind()
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, StoreError> {
        self.0.dyn_get(key).await
    }

    async fn get_at(&self, key: &CacheKey, now: Instant) -> Result<Option<Bytes>, StoreError> {
        self.0.dyn_get_at(key, now).await
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        self.0.dyn_set(key, value, ttl).await
    }

    fn breaker_state(&self) -> Option<tta_core::BreakerState> {
        self.0.dyn_breaker_state()
    }

    fn is_timed(&self) -> bool {
        self.0.dyn_is_timed()
    }

    async fn lease(&self, key: &CacheKey, ttl: Duration) -> Result<Lease, StoreError> {
        self.0.dyn_lease(key, ttl).await
    }

    async fn release(&self, key: &CacheKey, token: &LeaseToken) {
        self.0.dyn_release(key, token).await;
    }
}
