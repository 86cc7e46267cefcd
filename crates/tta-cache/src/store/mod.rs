//! Where cached bytes live: the [`CacheStore`] trait and its two implementations.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

pub use memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};

use crate::CacheKey;

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

    /// Stores `value` under `key` for `ttl`, replacing any older entry.
    fn set(
        &self,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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

    fn set(
        &self,
        key: &CacheKey,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set(key, value, ttl)
    }
}
