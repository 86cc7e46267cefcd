//! The Redis store, on fred: shared between replicas, bounded in added delay.

use std::time::Duration;

use bytes::Bytes;
use fred::clients::Pool;
use fred::interfaces::{ClientLike, KeysInterface, LuaInterface};
use fred::prelude::{Builder, Config, Expiration, ReconnectPolicy};
use fred::types::SetOptions;
use fred::types::config::Options;
use tta_core::{Breaker, BreakerState};

use crate::store::{CacheStore, Lease, LeaseToken, StoreError, StoreErrorKind};
use crate::{CacheKey, StoreBuildError};

/// The longest the breaker stays open while its probes keep failing (the cooldown
/// doubles from [`RedisStoreBuilder::breaker_cooldown`] up to this).
const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// A [`CacheStore`] on Redis, through a [fred] connection pool.
///
/// Built to never slow the application down by more than a bound:
/// - every command has a **timeout** ([`RedisStoreBuilder::command_timeout`], default
///   250 ms) and is sent **fail-fast**: while the pool reconnects, commands fail at once
///   instead of queueing;
/// - the pool **reconnects forever** in the background (exponential backoff, 100 ms to
///   2 s), so the cache is used again as soon as Redis is back, with no restart;
/// - a **breaker** opens after [`RedisStoreBuilder::breaker_threshold`] consecutive
///   failures (default 5): for [`RedisStoreBuilder::breaker_cooldown`] (default 5 s)
///   Redis is not called at all (added delay about zero), then one probe is let through
///   at a time; a success closes the breaker, a failed probe doubles the cooldown (up
///   to 60 s). It is `tta_core`'s [`Breaker`], the one route health uses too.
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
    pool: Pool,
    options: Options,
    prefix: String,
    command_timeout: Duration,
    breaker: Breaker,
}

/// Builds a [`RedisStore`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    pool_size: usize,
    command_timeout: Duration,
    connect_timeout: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    prefix: String,
}

/// `url` with any password replaced, for errors and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl RedisStoreBuilder {
    /// Pool connections (default 4).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The most one command may take (default 250 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The most [`connect`](Self::connect) waits for the first connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Consecutive failures that open the breaker (default 5).
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.breaker_threshold = failures;
        self
    }

    /// How long an open breaker keeps Redis uncalled (default 5 s).
    pub fn breaker_cooldown(mut self, cooldown: Duration) -> Self {
        self.breaker_cooldown = cooldown;
        self
    }

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
        if self.pool_size == 0 {
            return Err(StoreBuildError::RedisSetting(
                "pool_size must be at least 1",
            ));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(StoreBuildError::RedisSetting(
                "timeouts must be greater than zero",
            ));
        }
        if self.breaker_threshold == 0 || self.breaker_cooldown.is_zero() {
            return Err(StoreBuildError::RedisSetting(
                "breaker threshold and cooldown must be greater than zero",
            ));
        }
        let mut config = Config::from_url(&self.url).map_err(|e| StoreBuildError::RedisUrl {
            url: redact(&self.url),
            reason: e.details().to_owned(),
        })?;
        // Keep reconnecting when Redis is down at start, rather than failing `connect`.
        config.fail_fast = false;
        let command_timeout = self.command_timeout;
        let connect_timeout = self.connect_timeout;
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = command_timeout;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(self.pool_size)
            .map_err(|e| StoreBuildError::RedisUrl {
                url: redact(&self.url),
                reason: e.details().to_owned(),
            })?;
        pool.connect();
        // Down at start is fine: the pool keeps trying in the background.
        let _ = tokio::time::timeout(self.connect_timeout, pool.wait_for_connect()).await;
        Ok(RedisStore {
            pool,
            options: Options {
                fail_fast: true,
                timeout: Some(command_timeout),
                max_attempts: Some(1),
                ..Options::default()
            },
            prefix: self.prefix,
            command_timeout,
            breaker: Breaker::new(
                self.breaker_threshold,
                self.breaker_cooldown,
                self.breaker_cooldown.max(BREAKER_MAX_COOLDOWN),
            ),
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
            pool_size: 4,
            command_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
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
        self.breaker.state() != BreakerState::Closed
    }

    /// The breaker's state (the `tta.cache.store.state` gauge).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
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
        // A pool that cannot say goodbye (Redis already gone) is closed all the same.
        let _ = self.pool.quit().await;
    }

    /// Runs `command` through the breaker, under the command timeout.
    async fn guarded<T, F>(&self, command: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, fred::error::Error>>,
    {
        let Some(permit) = self.breaker.admit() else {
            return Err(StoreError::new(
                StoreErrorKind::BreakerOpen,
                "breaker open: Redis not called",
            ));
        };
        // fred enforces the timeout too; this one also bounds a command stuck elsewhere.
        let result = match tokio::time::timeout(self.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                "command timed out",
            )),
        };
        match &result {
            Ok(_) => permit.success(),
            Err(_) => permit.failure(None),
        }
        result
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
        let client = self.pool.next().with_options(&self.options);
        let redis_key = self.redis_key(key);
        self.guarded(client.get::<Option<Bytes>, _>(redis_key))
            .await
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.breaker.state())
    }

    /// `SET key:lease token NX PX ttl`: granted to one process at a time, freed by
    /// [`release`](CacheStore::release) or when it lapses.
    async fn lease(&self, key: &CacheKey, ttl: Duration) -> Result<Lease, StoreError> {
        let client = self.pool.next().with_options(&self.options);
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
        let client = self.pool.next().with_options(&self.options);
        let lease_key = format!("{}:lease", self.redis_key(key));
        // A lease that cannot be released lapses at its TTL.
        let _ = self
            .guarded(client.eval::<i64, _, _, _>(RELEASE, lease_key, token.0.as_str()))
            .await;
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        let client = self.pool.next().with_options(&self.options);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
