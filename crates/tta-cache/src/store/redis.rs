//! The Redis store, on fred: shared between replicas, bounded in added delay.

use std::time::Duration;

use bytes::Bytes;
use fred::interfaces::{KeysInterface, LuaInterface};
use fred::prelude::Expiration;
use fred::types::SetOptions;
use tta_core::BreakerState;
use tta_core::redis::{RedisFailure, RedisPool, RedisSettings};

use crate::store::{CacheStore, Lease, LeaseToken, StoreError, StoreErrorKind};
use crate::{CacheKey, StoreBuildError};

/// A [`CacheStore`] on Redis, through a [fred] connection pool.
///
/// Built to never slow the application down by more than a bound (the connection of
/// [`tta_core::redis`]):
/// - every command has a **timeout** ([`RedisStoreBuilder::command_timeout`], default
///   250 ms) and is sent **fail-fast**: while the pool reconnects, commands fail at once
///   instead of queueing;
/// - the pool **reconnects forever** in the background (exponential backoff, 100 ms to
///   2 s), so the cache is used again as soon as Redis is back, with no restart;
/// - a **breaker** opens after [`RedisStoreBuilder::breaker_threshold`] consecutive
///   failures (default 5): for [`RedisStoreBuilder::breaker_cooldown`] (default 5 s)
///   Redis is not called at all (added delay about zero), then one probe is let through
///   at a time; a success closes the breaker, a failed probe doubles the cooldown (up
///   to 60 s). It is `tta_core`'s [`Breaker`](tta_core::Breaker), the one route health
///   uses too.
///
/// URLs: `redis://host:port/db`, `rediss://...` (TLS, rustls), `redis-cluster://host:port`.
///
/// [fred]: https://docs.rs/fred
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), tta_cache::StoreBuildError> {
/// let store = tta_cache::RedisStore::builder("redis://127.0.0.1:6379")
///     .pool_size(4)
///     .command_timeout(std::time::Duration::from_millis(100))
///     .connect()
///     .await?;
/// println!("connected: {}", store.is_connected());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisStore {
    pool: RedisPool,
    prefix: String,
}

/// Builds a [`RedisStore`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    settings: RedisSettings,
    prefix: String,
}

impl RedisStoreBuilder {
    tta_core::redis_settings_setters!();

    /// The prefix of every key (default `tta:cache`): keys are `prefix:namespace:hash`.
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Creates the pool and starts connecting. Redis being down is **not** an error: the
    /// store is returned, its commands fail fast (and bypass) until the background
    /// reconnection succeeds. Read [`RedisStore::is_connected`] to report it.
    ///
    /// # Errors
    ///
    /// [`StoreBuildError::RedisUrl`] for a URL that cannot be parsed, and
    /// [`StoreBuildError::RedisSetting`] for a zero pool size, timeout, threshold or cooldown.
    pub async fn connect(self) -> Result<RedisStore, StoreBuildError> {
        self.settings
            .check()
            .map_err(StoreBuildError::RedisSetting)?;
        let pool = RedisPool::connect(&self.url, &self.settings)
            .await
            .map_err(|reason| StoreBuildError::RedisUrl {
                url: tta_core::redis::redact(&self.url),
                reason,
            })?;
        Ok(RedisStore {
            pool,
            prefix: self.prefix,
        })
    }
}

impl RedisStore {
    /// Configures a store for `url`.
    ///
    /// # Examples
    ///
    /// See [`RedisStore`].
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            settings: RedisSettings::default(),
            prefix: "tta:cache".to_owned(),
        }
    }

    /// `true` when at least one pooled connection is up.
    pub fn is_connected(&self) -> bool {
        self.pool.is_connected()
    }

    /// `true` while the breaker keeps Redis uncalled (open, or half-open with its
    /// probe in flight).
    pub fn breaker_open(&self) -> bool {
        self.pool.breaker_state() != BreakerState::Closed
    }

    /// The breaker's state (the `tta.cache.store.state` gauge).
    pub fn breaker_state(&self) -> BreakerState {
        self.pool.breaker_state()
    }

    /// The Redis key of a cache key: `prefix:namespace:hash`.
    pub fn redis_key(&self, key: &CacheKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + key.namespace().len() + 66);
        out.push_str(&self.prefix);
        out.push(':');
        out.push_str(key.namespace());
        out.push(':');
        out.push_str(&key.to_hex());
        out
    }

    /// Closes the pool.
    pub async fn quit(&self) {
        self.pool.quit().await;
    }

    /// Runs `command` through the pool's breaker and timeout, classifying a failure.
    async fn guarded<T, F>(&self, command: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, fred::error::Error>>,
    {
        self.pool
            .guarded(command)
            .await
            .map_err(|failure| match failure {
                RedisFailure::BreakerOpen => StoreError::new(
                    StoreErrorKind::BreakerOpen,
                    "breaker open: Redis not called",
                ),
                RedisFailure::Disconnected => StoreError::new(
                    StoreErrorKind::Unavailable,
                    "not connected: Redis not called",
                ),
                RedisFailure::Timeout => {
                    StoreError::new(StoreErrorKind::Timeout, "command timed out")
                }
                RedisFailure::Command(e) => classify(&e),
            })
    }
}

/// Deletes a lease only if it is still the caller's (a lapsed lease may be another's).
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

fn classify(e: &fred::error::Error) -> StoreError {
    use fred::error::ErrorKind as K;
    let kind = match e.kind() {
        K::Timeout => StoreErrorKind::Timeout,
        K::IO | K::Canceled | K::Backpressure => StoreErrorKind::Unavailable,
        _ if e.details().starts_with("OOM") => StoreErrorKind::Rejected,
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, e.details().to_owned())
}

impl CacheStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, StoreError> {
        let client = self.pool.client();
        let redis_key = self.redis_key(key);
        self.guarded(client.get::<Option<Bytes>, _>(redis_key))
            .await
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.pool.breaker_state())
    }

    /// `SET key:lease token NX PX ttl`: granted to one process at a time, freed by
    /// [`release`](CacheStore::release) or when it lapses.
    async fn lease(&self, key: &CacheKey, ttl: Duration) -> Result<Lease, StoreError> {
        let client = self.pool.client();
        let lease_key = format!("{}:lease", self.redis_key(key));
        let token = format!("{:016x}", tta_core::random_seed());
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let set = client.set::<Option<String>, _, _>(
            lease_key,
            token.as_str(),
            Some(Expiration::PX(ms)),
            Some(SetOptions::NX),
            false,
        );
        Ok(match self.guarded(set).await? {
            Some(_) => Lease::Granted(LeaseToken(token)),
            None => Lease::Held,
        })
    }

    async fn release(&self, key: &CacheKey, token: &LeaseToken) {
        let client = self.pool.client();
        let lease_key = format!("{}:lease", self.redis_key(key));
        // A lease that cannot be released lapses at its TTL.
        let _ = self
            .guarded(client.eval::<i64, _, _, _>(RELEASE, lease_key, token.0.as_str()))
            .await;
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        let client = self.pool.client();
        let redis_key = self.redis_key(key);
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.guarded(client.set::<(), _, _>(
            redis_key,
            value,
            Some(Expiration::PX(ms)),
            None,
            false,
        ))
        .await
    }
}
