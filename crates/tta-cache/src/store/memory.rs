//! The in-memory store, on quick_cache: bounded by entries or by bytes, with per-entry
//! TTL on tokio's clock.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use tokio::time::Instant;

use crate::store::{CacheStore, StoreError};
use crate::{CacheKey, StoreBuildError};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    /// `None`: a TTL past the clock's range, so never.
    expires: Option<Instant>,
}

impl Entry {
    fn live_at(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now < at)
    }
}

/// What an entry weighs: one each under an entry bound, its bytes and key under a byte
/// bound.
#[derive(Clone)]
enum Weight {
    Entries,
    Bytes,
}

impl Weighter<[u8; 32], Entry> for Weight {
    fn weight(&self, _key: &[u8; 32], entry: &Entry) -> u64 {
        match self {
            Weight::Entries => 1,
            Weight::Bytes => entry.value.len() as u64 + 32,
        }
    }
}

/// The most entries a store sizes its table for up front; it grows past this as it
/// fills. A bound of a billion entries allocates nothing for them until they come.
const PREALLOCATED_ENTRIES: u64 = 16_384;

/// The default store: in process, bounded, per-entry TTL, on [quick_cache].
///
/// Bounded by entry count ([`MemoryStoreBuilder::max_entries`], default 10,000) or by
/// bytes ([`MemoryStoreBuilder::max_bytes`]); eviction is quick_cache's scan-resistant
/// policy (a CLOCK-Pro variant close to S3-FIFO). The bound is kept per shard of the
/// table, so one value larger than a shard's share of a byte bound is not kept. An
/// entry's TTL runs on tokio's clock (paused in tests, like every timer of tta); an
/// expired entry is a miss and is removed when it is read, or evicted in its turn. Never
/// fails.
///
/// [quick_cache]: https://docs.rs/quick_cache
///
/// # Examples
///
/// ```
/// let store = tta_cache::MemoryStore::builder().max_entries(1_000).build().unwrap();
/// assert_eq!(store.entry_count(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Arc<Cache<[u8; 32], Entry, Weight>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.len())
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
        match (self.max_entries, self.max_bytes) {
            (Some(_), Some(_)) => Err(StoreBuildError::Bound(
                "set max_entries or max_bytes, not both",
            )),
            (Some(0), _) | (_, Some(0)) => Err(StoreBuildError::Bound("a bound of zero")),
            // A kilobyte an entry, for the table's first size only.
            (_, Some(bytes)) => Ok(MemoryStore::with_bound(Weight::Bytes, bytes, bytes / 1024)),
            (entries, None) => {
                let entries = entries.unwrap_or(MemoryStore::DEFAULT_MAX_ENTRIES);
                Ok(MemoryStore::with_bound(Weight::Entries, entries, entries))
            }
        }
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
        Self::with_bound(
            Weight::Entries,
            Self::DEFAULT_MAX_ENTRIES,
            Self::DEFAULT_MAX_ENTRIES,
        )
    }

    fn with_bound(weight: Weight, capacity: u64, items: u64) -> Self {
        let items = usize::try_from(items.clamp(1, PREALLOCATED_ENTRIES)).unwrap_or(1);
        Self {
            cache: Arc::new(Cache::with(
                items,
                capacity,
                weight,
                Default::default(),
                Default::default(),
            )),
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

    /// Entries currently held, expired ones not yet read or evicted included.
    ///
    /// # Examples
    ///
    /// See [`MemoryStore`].
    pub fn entry_count(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Removes the expired entries now (reads and evictions remove them in their
    /// turn otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// tta_cache::MemoryStore::new().run_pending_tasks();
    /// ```
    pub fn run_pending_tasks(&self) {
        let now = Instant::now();
        self.cache.retain(|_, entry| entry.live_at(now));
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
        self.get_at(key, Instant::now()).await
    }

    async fn get_at(&self, key: &CacheKey, now: Instant) -> Result<Option<Bytes>, StoreError> {
        // A lookup or an insert never waits on I/O, so it runs inline.
        let Some(entry) = self.cache.get(key.hash()) else {
            return Ok(None);
        };
        if entry.live_at(now) {
            return Ok(Some(entry.value));
        }
        // Unless another caller stored a fresh value in between.
        self.cache
            .remove_if(key.hash(), |entry| !entry.live_at(now));
        Ok(None)
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        let expires = Instant::now().checked_add(ttl);
        self.cache.insert(*key.hash(), Entry { value, expires });
        Ok(())
    }
}
