//! The in-memory store, on moka: bounded by entries or by bytes, with per-entry TTL.

use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::sync::Cache;

use crate::store::{CacheStore, StoreError};
use crate::{CacheKey, StoreBuildError};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

/// Each entry expires after its own TTL.
struct PerEntryTtl;

impl Expiry<[u8; 32], Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        entry: &Entry,
        _created: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &[u8; 32],
        entry: &Entry,
        _updated: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The default store: in process, bounded, per-entry TTL, on [moka].
///
/// Bounded by entry count ([`MemoryStoreBuilder::max_entries`], default 10,000) or by
/// bytes ([`MemoryStoreBuilder::max_bytes`]); the least recently used entries go first
/// (moka's TinyLFU policy). Never fails.
///
/// [moka]: https://docs.rs/moka
///
/// # Examples
///
/// ```
/// let store = tta_cache::MemoryStore::builder().max_entries(1_000).build().unwrap();
/// assert_eq!(store.entry_count(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<[u8; 32], Entry>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// Builds a [`MemoryStore`].
#[derive(Debug, Default)]
#[must_use]
pub struct MemoryStoreBuilder {
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
}

impl MemoryStoreBuilder {
    /// Keeps at most `n` entries.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// Keeps at most `n` bytes of values and keys (instead of an entry count).
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Builds the store.
    ///
    /// # Errors
    ///
    /// [`StoreBuildError::Bound`] when a bound is zero or both bounds are set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_cache::MemoryStore::builder().max_entries(0).build().is_err());
    /// assert!(tta_cache::MemoryStore::builder().max_bytes(64 << 20).build().is_ok());
    /// ```
    pub fn build(self) -> Result<MemoryStore, StoreBuildError> {
        let builder = Cache::builder().expire_after(PerEntryTtl);
        let cache = match (self.max_entries, self.max_bytes) {
            (Some(_), Some(_)) => {
                return Err(StoreBuildError::Bound(
                    "set max_entries or max_bytes, not both",
                ));
            }
            (Some(0), _) | (_, Some(0)) => return Err(StoreBuildError::Bound("a bound of zero")),
            (_, Some(bytes)) => builder
                .weigher(|_key: &[u8; 32], entry: &Entry| {
                    u32::try_from(entry.value.len() + 32).unwrap_or(u32::MAX)
                })
                .max_capacity(bytes)
                .build(),
            (entries, None) => builder
                .max_capacity(entries.unwrap_or(MemoryStore::DEFAULT_MAX_ENTRIES))
                .build(),
        };
        Ok(MemoryStore { cache })
    }
}

impl MemoryStore {
    /// The entry bound when none is set.
    pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

    /// A store of up to [`Self::DEFAULT_MAX_ENTRIES`] entries.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_cache::CacheStore;
    /// assert_eq!(tta_cache::MemoryStore::new().kind(), "memory");
    /// ```
    pub fn new() -> Self {
        Self {
            cache: Cache::builder()
                .expire_after(PerEntryTtl)
                .max_capacity(Self::DEFAULT_MAX_ENTRIES)
                .build(),
        }
    }

    /// Configures a store.
    ///
    /// # Examples
    ///
    /// See [`MemoryStore`].
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// Entries currently held (approximate until pending maintenance runs).
    ///
    /// # Examples
    ///
    /// See [`MemoryStore`].
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Runs moka's pending maintenance (evictions, expirations) now; tests use it to
    /// observe bounds exactly.
    ///
    /// # Examples
    ///
    /// ```
    /// tta_cache::MemoryStore::new().run_pending_tasks();
    /// ```
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_timed(&self) -> bool {
        false
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, StoreError> {
        // moka's sync cache: a lookup or an insert never waits on I/O, so it runs inline
        // (its housekeeping is bounded batches of in-memory work).
        Ok(self.cache.get(key.hash()).map(|e| e.value))
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        self.cache.insert(*key.hash(), Entry { value, ttl });
        Ok(())
    }
}
