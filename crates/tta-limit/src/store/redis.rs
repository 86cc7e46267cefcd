//! The Redis store, on fred: one Lua script is the only writer of the counters, so every
//! replica shares one budget, exactly.

use std::sync::Mutex;
use std::time::Duration;

use fred::interfaces::LuaInterface;
use futures_util::future::{BoxFuture, FutureExt};
use tta_core::BreakerState;
use tta_core::redis::{RedisPool, RedisSettings, redact};

use super::{Amount, Ask, Decision, LimitStore, Line, Refusal, Settlement, StoreError};
use crate::Resource;

/// The script, run with EVALSHA (loaded once, and again after a server restart).
const SCRIPT: &str = include_str!("limit.lua");

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
/// - The connection is [`tta_core::redis`]'s: every command has a timeout (default
///   250 ms) and is sent fail-fast; the pool reconnects in the background; a breaker
///   stops calling Redis after 5 failures in a row, then probes. While Redis cannot
///   answer, each limit applies its [`OnStoreDown`](crate::OnStoreDown) policy.
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
    pool: RedisPool,
    prefix: String,
    /// Replicas that must acknowledge a reservation or settlement, and the most to wait.
    replicas: (u32, Duration),
    /// The script's SHA-1 once loaded.
    sha: Mutex<Option<String>>,
}

/// Builds a [`RedisStore`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    settings: RedisSettings,
    prefix: String,
    replicas: (u32, Duration),
}

impl RedisStoreBuilder {
    tta_core::redis_settings_setters!();

    /// The prefix of every key (default `tta:limit`).
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// After each reservation and settlement, waits (at most `timeout`, which must be
    /// below the command timeout) until `replicas` replicas of its master have it (WAIT),
    /// so a failover cannot forget what a call spent and let a budget overspend (default
    /// 0: no wait). A settlement lost with its master leaves its reservation to expire,
    /// and the spend with it. Set it to the replicas each master has (1 for a cluster
    /// with a replica each). A write not acknowledged in time still stands.
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = (replicas, timeout);
        self
    }

    /// Creates the pool and starts connecting. Redis being down is not an error: the
    /// store's commands fail fast (and limits apply their policy) until it is back.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] for a URL that cannot be parsed, a zero pool size, timeout,
    /// threshold or cooldown, or a wait for replicas not below the command timeout.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let (replicas, wait) = self.replicas;
        if replicas > 0 && (wait.is_zero() || wait >= self.settings.command_timeout) {
            return Err(StoreError::new(format!(
                "the wait for replicas ({wait:?}) must be above zero and below the command timeout ({:?})",
                self.settings.command_timeout
            )));
        }
        let pool = RedisPool::connect(&self.url, &self.settings)
            .await
            .map_err(|reason| {
                StoreError::new(format!("Redis at {}: {reason}", redact(&self.url)))
            })?;
        Ok(RedisStore {
            pool,
            prefix: self.prefix,
            replicas: self.replicas,
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
            settings: RedisSettings::default(),
            prefix: "tta:limit".to_owned(),
            replicas: (0, Duration::from_millis(100)),
        }
    }

    /// `true` when at least one pooled connection is up.
    pub fn is_connected(&self) -> bool {
        self.pool.is_connected()
    }

    /// Closes the pool.
    pub async fn quit(&self) {
        self.pool.quit().await;
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

    /// Runs the script once, through the breaker and under the command timeout; with
    /// `durable`, then waits for the replicas to have what it wrote.
    async fn run(
        &self,
        keys: Vec<String>,
        args: Vec<String>,
        durable: bool,
    ) -> Result<Vec<i64>, StoreError> {
        let (replicas, timeout) = self.replicas;
        self.pool
            .guarded(async {
                let client = self.pool.client();
                let first = keys.first().cloned();
                let reply = self.eval(&client, keys, args).await?;
                if let (true, Some(key)) = (durable && replicas > 0, first) {
                    RedisPool::wait_for_replicas(&client, &key, replicas, timeout).await?;
                }
                Ok(reply)
            })
            .await
            .map_err(|failure| StoreError::new(failure.to_string()))
    }

    /// EVALSHA, loading the script first when this store has not. A node that does not
    /// know it (a restarted server, another master of a cluster, a promoted replica)
    /// gets EVAL, which runs the script and caches it on that node.
    async fn eval(
        &self,
        client: &fred::clients::WithOptions<fred::clients::Client>,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Vec<i64>, fred::error::Error> {
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
            Err(e) if e.details().starts_with("NOSCRIPT") => client.eval(SCRIPT, keys, args).await,
            other => other,
        }
    }

    async fn load(&self) -> Result<String, fred::error::Error> {
        let client = self.pool.client();
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
            let reply = self.run(keys, args, true).await?;
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
            let reply = self.run(keys, args, true).await?;
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
        Some(self.pool.breaker_state())
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
    }
}
