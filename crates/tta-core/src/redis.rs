//! The Redis connection every Redis-backed store shares (feature `redis`): a fred pool
//! that never slows its caller down by more than a bound.
//!
//! - every command has a **timeout** and is sent **fail-fast**: while the pool
//!   reconnects, commands fail at once instead of queueing;
//! - the pool **reconnects forever** in the background (exponential backoff, 100 ms to
//!   2 s), so Redis is used again as soon as it is back, with no restart;
//! - a [`Breaker`] opens after a number of consecutive failures: for its cooldown Redis
//!   is not called at all, then one probe is let through at a time; a failed probe
//!   doubles the cooldown, up to 60 s.
//!
//! tta-cache's and tta-limit's `RedisStore`s are built on it.

use std::future::Future;
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::ClientLike;
use fred::prelude::{Builder, Config, ReconnectPolicy};
use fred::types::config::Options;

use crate::{Breaker, BreakerState};

/// The longest the breaker stays open while its probes keep failing.
const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// How to connect: pool size, timeouts and breaker.
///
/// # Examples
///
/// ```
/// let settings = tta_core::redis::RedisSettings::default();
/// assert_eq!(settings.pool_size, 4);
/// assert!(settings.check().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisSettings {
    /// Pool connections (default 4).
    pub pool_size: usize,
    /// The most one command may take (default 250 ms).
    pub command_timeout: Duration,
    /// The most [`RedisPool::connect`] waits for the first connection (default 1 s).
    pub connect_timeout: Duration,
    /// Consecutive failures that open the breaker (default 5).
    pub breaker_threshold: u32,
    /// How long an open breaker keeps Redis uncalled (default 5 s).
    pub breaker_cooldown: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            pool_size: 4,
            command_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
        }
    }
}

impl RedisSettings {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// What is wrong: a zero pool size, timeout, threshold or cooldown.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.pool_size == 0 {
            return Err("pool_size must be at least 1");
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err("timeouts must be greater than zero");
        }
        if self.breaker_threshold == 0 || self.breaker_cooldown.is_zero() {
            return Err("breaker threshold and cooldown must be greater than zero");
        }
        Ok(())
    }
}

/// The setters of [`RedisSettings`] on a store builder with a `settings` field, so that
/// every Redis-backed store is configured with the same words (used by tta-cache's and
/// tta-limit's `RedisStoreBuilder`).
#[macro_export]
macro_rules! redis_settings_setters {
    () => {
        /// Pool connections (default 4).
        pub fn pool_size(mut self, size: usize) -> Self {
            self.settings.pool_size = size;
            self
        }

        /// The most one command may take (default 250 ms).
        pub fn command_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.command_timeout = timeout;
            self
        }

        /// The most `connect` waits for the first connection (default 1 s).
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.connect_timeout = timeout;
            self
        }

        /// Consecutive failures that open the breaker (default 5).
        pub fn breaker_threshold(mut self, failures: u32) -> Self {
            self.settings.breaker_threshold = failures;
            self
        }

        /// How long an open breaker keeps Redis uncalled (default 5 s).
        pub fn breaker_cooldown(mut self, cooldown: std::time::Duration) -> Self {
            self.settings.breaker_cooldown = cooldown;
            self
        }
    };
}

/// Why a guarded command did not return a value.
#[derive(Debug)]
pub enum RedisFailure {
    /// The breaker is open: Redis was not called.
    BreakerOpen,
    /// No pooled connection is up (the pool is reconnecting): Redis was not called.
    Disconnected,
    /// The command took longer than the command timeout.
    Timeout,
    /// Redis, or the connection, returned an error.
    Command(fred::error::Error),
}

impl std::fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisFailure::BreakerOpen => f.write_str("breaker open: Redis not called"),
            RedisFailure::Disconnected => f.write_str("not connected: Redis not called"),
            RedisFailure::Timeout => f.write_str("command timed out"),
            RedisFailure::Command(e) => f.write_str(e.details()),
        }
    }
}

/// A fred pool with fail-fast options and a breaker; see the [module docs](self).
#[derive(Debug)]
pub struct RedisPool {
    pool: Pool,
    options: Options,
    command_timeout: Duration,
    breaker: Breaker,
}

/// `url` with any password replaced, for errors and logs.
///
/// # Examples
///
/// ```
/// assert_eq!(tta_core::redis::redact("redis://u:secret@h:6379/0"), "redis://***@h:6379/0");
/// assert_eq!(tta_core::redis::redact("redis://h:6379"), "redis://h:6379");
/// ```
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl RedisPool {
    /// Creates the pool and starts connecting, waiting at most the connect timeout.
    /// Redis being down is not an error: commands fail fast until it is back.
    ///
    /// # Errors
    ///
    /// The reason (never the URL, which may hold a password: see [`redact`]): bad
    /// settings or a URL that cannot be parsed.
    pub async fn connect(url: &str, settings: &RedisSettings) -> Result<Self, String> {
        settings.check().map_err(str::to_owned)?;
        let bad_url = |e: fred::error::Error| e.details().to_owned();
        let mut config = Config::from_url(url).map_err(bad_url)?;
        // Keep reconnecting when Redis is down at start, rather than failing `connect`.
        config.fail_fast = false;
        let command_timeout = settings.command_timeout;
        let connect_timeout = settings.connect_timeout;
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
            .build_pool(settings.pool_size)
            .map_err(bad_url)?;
        pool.connect();
        // Down at start is fine: the pool keeps trying in the background.
        let _ = tokio::time::timeout(connect_timeout, pool.wait_for_connect()).await;
        Ok(Self {
            pool,
            options: Options {
                fail_fast: true,
                timeout: Some(command_timeout),
                max_attempts: Some(1),
                ..Options::default()
            },
            command_timeout,
            breaker: Breaker::new(
                settings.breaker_threshold,
                settings.breaker_cooldown,
                settings.breaker_cooldown.max(BREAKER_MAX_COOLDOWN),
            ),
        })
    }

    /// The next pooled client that is connected (the next one when none is), with the
    /// fail-fast options.
    pub fn client(&self) -> fred::clients::WithOptions<Client> {
        self.pool.next_connected().with_options(&self.options)
    }

    /// Waits until `replicas` replicas acknowledge the writes `client` sent to the
    /// master of `key`'s slot (WAIT, at most `timeout`), and returns how many did. On a
    /// single server or a cluster alike: a write a master acknowledged but no replica
    /// had yet is lost when a replica takes over; one that `replicas` acknowledged is
    /// not.
    ///
    /// # Errors
    ///
    /// The WAIT failed.
    pub async fn wait_for_replicas(
        client: &fred::clients::WithOptions<Client>,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> Result<i64, fred::error::Error> {
        use fred::interfaces::ServerInterface;
        let mut options = client.options().clone();
        options.cluster_hash = Some(fred::types::ClusterHash::Custom(fred::util::redis_keyslot(
            key.as_bytes(),
        )));
        let millis = i64::try_from(timeout.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        client
            .with_options(&options)
            .wait(i64::from(replicas), millis)
            .await
    }

    /// `true` when at least one pooled connection is up.
    pub fn is_connected(&self) -> bool {
        self.pool.clients().iter().any(ClientLike::is_connected)
    }

    /// The breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Closes the pool (a pool that cannot say goodbye is closed all the same).
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }

    /// Runs `command` through the breaker, under the command timeout. A write refused at
    /// `maxmemory` (an `OOM` reply) does not count against the breaker: it comes from a
    /// server that is up, and must not cut off the reads that still work. Every other
    /// failure does.
    ///
    /// # Errors
    ///
    /// The breaker was open, the command timed out, or it failed.
    pub async fn guarded<T, F>(&self, command: F) -> Result<T, RedisFailure>
    where
        F: Future<Output = Result<T, fred::error::Error>>,
    {
        let Some(permit) = self.breaker.admit() else {
            return Err(RedisFailure::BreakerOpen);
        };
        // fred fails a command fast while its connection is down, but not every command
        // (EVALSHA waits for the timeout): no connection up fails here, at once.
        if !self.is_connected() {
            permit.failure(None);
            return Err(RedisFailure::Disconnected);
        }
        // fred enforces the timeout too; this one also bounds a command stuck elsewhere.
        let result = match tokio::time::timeout(self.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisFailure::Command(e)),
            Err(_) => Err(RedisFailure::Timeout),
        };
        match &result {
            Ok(_) => permit.success(),
            Err(RedisFailure::Command(e)) if e.details().starts_with("OOM") => permit.success(),
            Err(_) => permit.failure(None),
        }
        result
    }
}
