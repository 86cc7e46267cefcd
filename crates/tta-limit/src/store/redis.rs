//! The Redis store, on fred: one Lua script is the only writer of the counters, so every
//! replica shares one budget, exactly.

use std::sync::Mutex;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::prelude::{Builder, Config, ReconnectPolicy};
use fred::types::config::Options;
use futures_util::future::{BoxFuture, FutureExt};
use tta_core::{Breaker, BreakerState};

use super::{Amount, Ask, Decision, LimitStore, Line, Refusal, Settlement, StoreError};
use crate::Resource;

/// The script, run with EVALSHA (loaded once, and again after a server restart).
const SCRIPT: &str = include_str!("limit.lua");

/// The longest the breaker stays open while its probes keep failing.
const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// Pico-dollars per unit the script counts dollars in (nano-dollars): Lua's numbers are
/// doubles, exact to 2^53, so counting nano-dollars keeps budgets up to $9 million exact.
const PICOS_PER_UNIT: u64 = 1_000;

/// A [`LimitStore`] on Redis, shared by every process that uses the same URL, prefix
/// and limit names.
///
/// - One Lua script reserves and settles, atomically over all of a call's counters; it
///   is the only writer of its keys. Windows are counted on the Redis server's clock
///   (`TIME`), so replicas agree on them whatever their own clocks say.
/// - Keys expire: a counter when its window has ended and nothing is held; a
///   reservation whose call never settled (its process died) lapses after the limit's
///   `hold` and gives back what it held.
/// - Every command has a timeout (default 250 ms) and is sent fail-fast; the pool
///   reconnects in the background; a breaker (tta-core's) stops calling Redis after 5
///   failures in a row, then probes. While Redis cannot answer, each limit applies its
///   [`OnStoreDown`](crate::OnStoreDown) policy.
///
/// Keys are `prefix:{limit:key}:resource:window_ms` (a hash) and the same with `:r` (a
/// sorted set), the braces keeping one call's keys in one Redis Cluster slot.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), tta_limit::store::StoreError> {
/// let store = tta_limit::RedisStore::builder("redis://127.0.0.1:6379").connect().await?;
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
    /// The script's SHA-1 once loaded.
    sha: Mutex<Option<String>>,
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

/// `url` with any password replaced, for errors.
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

    /// The prefix of every key (default `tta:limit`).
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Creates the pool and starts connecting. Redis being down is not an error: the
    /// store's commands fail fast (and limits apply their policy) until it is back.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] for a URL that cannot be parsed, or a zero pool size, timeout,
    /// threshold or cooldown.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        if self.pool_size == 0 {
            return Err(StoreError::new("pool_size must be at least 1"));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(StoreError::new("timeouts must be greater than zero"));
        }
        if self.breaker_threshold == 0 || self.breaker_cooldown.is_zero() {
            return Err(StoreError::new(
                "breaker threshold and cooldown must be greater than zero",
            ));
        }
        let bad_url = |e: fred::error::Error| {
            StoreError::new(format!(
                "bad Redis URL {}: {}",
                redact(&self.url),
                e.details()
            ))
        };
        let mut config = Config::from_url(&self.url).map_err(bad_url)?;
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
            .map_err(bad_url)?;
        pool.connect();
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
            sha: Mutex::new(None),
        })
    }
}

impl RedisStore {
    /// Configures a store for `url` (`redis://`, `rediss://`, `redis-cluster://`).
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
            prefix: "tta:limit".to_owned(),
        }
    }

    /// `true` when at least one pooled connection is up.
    pub fn is_connected(&self) -> bool {
        self.pool.is_connected()
    }

    /// Closes the pool.
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }

    /// The Redis keys of one line: its hash and its reservations' sorted set.
    pub fn keys(&self, limit: &str, key: &str, line: &Line) -> [String; 2] {
        let hash = format!(
            "{}:{{{limit}:{key}}}:{}:{}",
            self.prefix,
            line.resource.as_str(),
            line.window.as_millis()
        );
        let set = format!("{hash}:r");
        [hash, set]
    }

    fn keys_of(&self, limit: &str, key: &str, lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .flat_map(|l| self.keys(limit, key, l))
            .collect()
    }

    /// Runs the script once, through the breaker and under the command timeout.
    async fn run(&self, keys: Vec<String>, args: Vec<String>) -> Result<Vec<i64>, StoreError> {
        let Some(permit) = self.breaker.admit() else {
            return Err(StoreError::new("breaker open: Redis not called"));
        };
        let result = tokio::time::timeout(self.command_timeout, self.eval(keys, args)).await;
        let result = match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::new(e.details().to_owned())),
            Err(_) => Err(StoreError::new("command timed out")),
        };
        match &result {
            Ok(_) => permit.success(),
            Err(_) => permit.failure(None),
        }
        result
    }

    /// EVALSHA, loading the script first when this store has not (or Redis forgot it).
    async fn eval(
        &self,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Vec<i64>, fred::error::Error> {
        let client = self.pool.next().with_options(&self.options);
        let known = self
            .sha
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let sha = match known {
            Some(sha) => sha,
            None => self.load().await?,
        };
        match client
            .evalsha::<Vec<i64>, _, _, _>(sha, keys.clone(), args.clone())
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                let sha = self.load().await?;
                client.evalsha(sha, keys, args).await
            }
            other => other,
        }
    }

    async fn load(&self) -> Result<String, fred::error::Error> {
        let client = self.pool.next().with_options(&self.options);
        let sha: String = client.script_load(SCRIPT).await?;
        *self
            .sha
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sha.clone());
        Ok(sha)
    }
}

/// A line's amount in the script's unit.
fn to_unit(resource: Resource, amount: u64, round_up: bool) -> u64 {
    if resource != Resource::Usd {
        return amount;
    }
    if round_up {
        amount.div_ceil(PICOS_PER_UNIT)
    } else {
        amount / PICOS_PER_UNIT
    }
}

fn from_unit(resource: Resource, amount: i64) -> u64 {
    let amount = u64::try_from(amount).unwrap_or(0);
    if resource == Resource::Usd {
        amount.saturating_mul(PICOS_PER_UNIT)
    } else {
        amount
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

impl LimitStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn reserve<'a>(&'a self, ask: Ask<'a>) -> BoxFuture<'a, Result<Decision, StoreError>> {
        async move {
            let keys = self.keys_of(ask.limit, ask.key, ask.lines);
            let mut args = vec!["reserve".to_owned(), ask.id.to_owned(), millis(ask.hold)];
            for line in ask.lines {
                args.push(millis(line.window));
                // Caps round down and amounts up: the script never allows more.
                args.push(to_unit(line.resource, line.cap, false).to_string());
                args.push(match line.amount {
                    Amount::Exact(a) => to_unit(line.resource, a, true).to_string(),
                    Amount::Rest => "-1".to_owned(),
                });
            }
            let reply = self.run(keys, args).await?;
            match reply.as_slice() {
                [1, taken @ ..] if taken.len() == ask.lines.len() => Ok(Decision::Granted(
                    ask.lines
                        .iter()
                        .zip(taken)
                        .map(|(l, t)| from_unit(l.resource, *t))
                        .collect(),
                )),
                [0, line, reason, ends] => {
                    let window_ends_in = Duration::from_millis(u64::try_from(*ends).unwrap_or(0));
                    let reason = match reason {
                        0 => Refusal::Spent { window_ends_in },
                        1 => Refusal::Held { window_ends_in },
                        _ => Refusal::TooLarge,
                    };
                    Ok(Decision::Refused {
                        line: usize::try_from(*line).unwrap_or(0),
                        reason,
                    })
                }
                other => Err(StoreError::new(format!(
                    "unexpected reply from the limit script: {other:?}"
                ))),
            }
        }
        .boxed()
    }

    fn settle<'a>(&'a self, s: Settlement<'a>) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        async move {
            let keys = self.keys_of(s.limit, s.key, s.lines);
            let mut args = vec!["settle".to_owned(), s.id.to_owned(), millis(s.hold)];
            for ((line, reserved), used) in s.lines.iter().zip(s.reserved).zip(s.used) {
                args.push(millis(line.window));
                // Reserved amounts came from the script in its unit: exact both ways.
                args.push(to_unit(line.resource, *reserved, true).to_string());
                args.push(to_unit(line.resource, *used, true).to_string());
            }
            let reply = self.run(keys, args).await?;
            if reply.len() != s.lines.len() {
                return Err(StoreError::new(format!(
                    "unexpected reply from the limit script: {reply:?}"
                )));
            }
            Ok(s.lines
                .iter()
                .zip(reply)
                .map(|(l, used)| from_unit(l.resource, used))
                .collect())
        }
        .boxed()
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        Some(self.breaker.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_so_the_script_never_allows_more() {
        assert_eq!(to_unit(Resource::Usd, 1_999, false), 1, "caps round down");
        assert_eq!(to_unit(Resource::Usd, 1_001, true), 2, "amounts round up");
        assert_eq!(to_unit(Resource::Tokens, 1_001, true), 1_001);
        assert_eq!(from_unit(Resource::Usd, 2), 2_000);
        assert_eq!(from_unit(Resource::Requests, -1), 0);
        assert_eq!(redact("redis://u:p@h:1"), "redis://***@h:1");
    }
}
