//! The gateway's configuration: TOML, read strictly (an unknown key is an error), then
//! checked as a whole. Every error names where it is, as a TOML path
//! (`models.chat.routes[1]: unknown provider "opneai"`) or, for a parse error, a line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

/// A configuration error and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The TOML path of the bad value (`models.chat.routes[1]`), or `line N` for a
    /// parse error.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Every error a configuration has, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the API listens (`127.0.0.1:8080`).
    pub listen: String,
    /// Where `/metrics` listens (default `127.0.0.1:9464`; `127.0.0.1:0` picks a port).
    #[serde(default = "default_metrics")]
    pub metrics_listen: String,
    /// Request bodies above this many bytes get 413 (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Requests (and open streams) handled at once; more get 503 with `Retry-After`.
    /// Left out, as many as the process's open-file limit can serve
    /// ([`max_concurrency_for`]); [`Config::concurrency`] says which applies.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// How long a client may take to send its body, in ms (default 10,000).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// How long a client may take to send its request headers, in ms (default 10,000):
    /// then its connection is closed.
    #[serde(default = "default_body_timeout")]
    pub header_timeout_ms: u64,
    /// The most bytes a request's line and headers may take (default 32 KiB, at least
    /// 8,192); more get 431.
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// How long SIGTERM waits for requests and streams in flight, in ms (default 30,000).
    #[serde(default = "default_grace")]
    pub shutdown_grace_ms: u64,
    /// Redis, shared by the cache and the limits when set.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// The providers, by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The models the gateway exposes, by the name clients send.
    pub models: BTreeMap<String, ModelConfig>,
    /// The cache (default: in memory, 10 minutes).
    #[serde(default)]
    pub cache: CacheConfig,
    /// Time limits per request.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// The API keys, each a tenant's.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Limits per tenant, by tenant name.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// Telemetry.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

fn default_metrics() -> String {
    "127.0.0.1:9464".to_owned()
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_header() -> usize {
    32 * 1024
}
/// The most requests a left-out `max_concurrency` allows, whatever the open-file limit:
/// about 360 MiB of open streams (36.6 KiB each in `cargo xtask loadtest`).
pub const MAX_DEFAULT_CONCURRENCY: usize = 10_000;

/// Descriptors kept for what is not a request: the listeners, Redis, the exporters,
/// idle pooled provider connections, the process's own files.
pub const RESERVED_OPEN_FILES: u64 = 256;

/// How many requests an open-file limit can serve: each request or open stream holds two
/// descriptors (the client's connection and the provider's), after
/// [`RESERVED_OPEN_FILES`]. Past it, connections fail (a full file table) instead of
/// getting 503.
///
/// # Examples
///
/// ```
/// use tta_gateway::config::open_file_capacity;
/// assert_eq!(open_file_capacity(20_000), 9_872);
/// assert_eq!(open_file_capacity(100), 0);
/// ```
pub fn open_file_capacity(open_files: u64) -> u64 {
    open_files.saturating_sub(RESERVED_OPEN_FILES) / 2
}

/// `max_concurrency` when the configuration leaves it out: what the open-file limit can
/// serve ([`open_file_capacity`]), at least 1 and at most [`MAX_DEFAULT_CONCURRENCY`];
/// 512 when the limit is unknown (`None`: it could not be read, or the platform has
/// none).
///
/// # Examples
///
/// ```
/// use tta_gateway::config::max_concurrency_for;
/// assert_eq!(max_concurrency_for(Some(1_024)), 384);
/// assert_eq!(max_concurrency_for(Some(1 << 20)), 10_000);
/// assert_eq!(max_concurrency_for(None), 512);
/// ```
pub fn max_concurrency_for(open_files: Option<u64>) -> usize {
    match open_files {
        Some(limit) => usize::try_from(open_file_capacity(limit))
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_DEFAULT_CONCURRENCY),
        None => 512,
    }
}

/// This process's open-file limit (the soft one, which `open` is held to), or `None` when
/// it cannot be read or the platform has none.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}
fn default_body_timeout() -> u64 {
    10_000
}
fn default_grace() -> u64 {
    30_000
}

/// Redis.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db`; the environment variable `TTA_GATEWAY_REDIS_URL` overrides
    /// it (it may hold a password).
    pub url: String,
    /// Replicas that must acknowledge each budget reservation (WAIT, at most 100 ms)
    /// before the request goes on, so a failover cannot forget it and overspend
    /// (default 0; 1 for a cluster whose masters have a replica each).
    #[serde(default)]
    pub wait_for_replicas: u32,
}

/// A provider.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `openai` (any OpenAI-compatible server) or `anthropic`.
    pub kind: String,
    /// Its base URL (`https://api.openai.com/v1`).
    pub base_url: String,
    /// The environment variable holding its API key (none: no key is sent).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The most idle connections kept open to it, per model's route (default 64).
    #[serde(default = "default_max_idle")]
    pub max_idle_connections: usize,
    /// Its models, by name.
    pub models: BTreeMap<String, ProviderModel>,
}

/// A provider's model: its prices and context window.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderModel {
    /// USD per 1,000 input tokens.
    #[serde(default)]
    pub input_per_1k: f64,
    /// USD per 1,000 output tokens.
    #[serde(default)]
    pub output_per_1k: f64,
    /// USD per call, charged when a call reports no usage.
    #[serde(default)]
    pub per_call: f64,
    /// The context window in tokens.
    #[serde(default)]
    pub context_window: Option<u64>,
}

/// A model the gateway exposes: a router over provider models.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `ordered` (default), `cheapest`, `lowest_latency`, `weighted`.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// The routes, in order; each falls back to the next.
    pub routes: Vec<RouteConfig>,
    /// The most one attempt may take, in ms (default: no limit of its own).
    #[serde(default)]
    pub attempt_timeout_ms: Option<u64>,
    /// Consecutive failures that take a route out (default 5).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// How long a route that failed is left alone before one probe, in ms (default
    /// 5,000; doubling for each failed probe, up to 10 minutes).
    #[serde(default = "default_cooldown")]
    pub cooldown_ms: u64,
}

fn default_max_idle() -> usize {
    64
}

fn default_failure_threshold() -> u32 {
    5
}

fn default_cooldown() -> u64 {
    5_000
}

fn default_strategy() -> String {
    "ordered".to_owned()
}

/// One route of an exposed model.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A provider's name.
    pub provider: String,
    /// One of its models.
    pub model: String,
    /// The weight for `weighted` (default 1).
    #[serde(default)]
    pub weight: Option<f64>,
}

/// The cache.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `memory`, `redis` (the `[redis]` URL) or `off`; by default `redis` when `[redis]`
    /// is set (replicas then share it with nothing else to configure), `memory` otherwise.
    #[serde(default)]
    pub store: Option<String>,
    /// How long an answer is kept, in seconds (default 600).
    #[serde(default = "default_ttl")]
    pub ttl_s: u64,
    /// The namespace of its keys (default `gateway`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            store: None,
            ttl_s: default_ttl(),
            namespace: default_namespace(),
        }
    }
}

fn default_ttl() -> u64 {
    600
}
fn default_namespace() -> String {
    "gateway".to_owned()
}

/// Time limits of one request, in ms.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// To the first token (a call: to its answer) (default 30,000).
    #[serde(default = "default_first_chunk")]
    pub first_chunk_ms: u64,
    /// Between two chunks of a stream (default 30,000).
    #[serde(default = "default_idle")]
    pub idle_ms: u64,
    /// A whole stream (default 300,000).
    #[serde(default = "default_total")]
    pub total_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            first_chunk_ms: default_first_chunk(),
            idle_ms: default_idle(),
            total_ms: default_total(),
        }
    }
}

fn default_first_chunk() -> u64 {
    30_000
}
fn default_idle() -> u64 {
    30_000
}
fn default_total() -> u64 {
    300_000
}

/// An API key: its SHA-256 digest (hex) and its tenant. The key itself is never stored.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The SHA-256 of the key, 64 hex digits (`printf %s KEY | sha256sum`).
    pub sha256: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// A revoked key gets 401 like an unknown one.
    #[serde(default)]
    pub revoked: bool,
}

/// A tenant's limits (each optional).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Dollars per day.
    #[serde(default)]
    pub usd_per_day: Option<f64>,
    /// Requests per minute.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens (in and out) per minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Requests at once (per replica).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// What the budget does while its store (Redis) cannot answer: `fail_closed`
    /// (default: refused with 503 `budget_unavailable`, so it is never overspent) or
    /// `fail_open` (let through, uncounted).
    #[serde(default)]
    pub budget_on_store_down: Option<OnStoreDown>,
    /// What the rate limits do while their store cannot answer: `fail_open` (default)
    /// or `fail_closed` (refused with 503 `limits_unavailable`).
    #[serde(default)]
    pub rates_on_store_down: Option<OnStoreDown>,
}

/// What a tenant's limit does while its store cannot answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreDown {
    /// Refuse the request (503 with `Retry-After`).
    FailClosed,
    /// Let the request through, not counted against the limit.
    FailOpen,
}

impl From<OnStoreDown> for tta_limit::OnStoreDown {
    fn from(p: OnStoreDown) -> Self {
        match p {
            OnStoreDown::FailClosed => tta_limit::OnStoreDown::FailClosed,
            OnStoreDown::FailOpen => tta_limit::OnStoreDown::FailOpen,
        }
    }
}

/// Telemetry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `service.name` (default `tta-gateway`; `OTEL_SERVICE_NAME` overrides it).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Tenants that may be metric labels; the others are `other`.
    #[serde(default)]
    pub tenant_labels: Vec<String>,
}

/// The strategies a model may name.
pub(crate) const STRATEGIES: [&str; 4] = ["ordered", "cheapest", "lowest_latency", "weighted"];

impl Config {
    /// The requests handled at once: `max_concurrency`, or when it is left out what this
    /// process's open-file limit can serve ([`max_concurrency_for`] of
    /// [`open_file_limit`]). `tta-gateway` raises its open-file limit to the hard limit
    /// before it builds the gateway.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_gateway::Config;
    /// use tta_gateway::config::{max_concurrency_for, open_file_limit};
    /// let example = include_str!("../gateway.example.toml");
    /// let left_out = Config::parse(example).unwrap();
    /// assert_eq!(left_out.concurrency(), max_concurrency_for(open_file_limit()));
    /// let set = Config::parse(&format!("max_concurrency = 7\n{example}")).unwrap();
    /// assert_eq!(set.concurrency(), 7);
    /// ```
    pub fn concurrency(&self) -> usize {
        self.max_concurrency
            .unwrap_or_else(|| max_concurrency_for(open_file_limit()))
    }

    /// Parses and checks `text`.
    ///
    /// # Errors
    ///
    /// Every error found, each with its location.
    pub fn parse(text: &str) -> Result<Self, ConfigErrors> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or_else(
                || "config".to_owned(),
                |span| {
                    format!(
                        "line {}",
                        text[..span.start.min(text.len())].lines().count().max(1)
                    )
                },
            );
            ConfigErrors(vec![ConfigError {
                at,
                message: e.message().to_owned(),
            }])
        })?;
        let errors = config.check();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The cache's store: as configured, else `redis` when `[redis]` is set, else `memory`.
    pub fn cache_store(&self) -> &str {
        match (&self.cache.store, &self.redis) {
            (Some(store), _) => store,
            (None, Some(_)) => "redis",
            (None, None) => "memory",
        }
    }

    /// Every semantic error, with its TOML path.
    fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |at: String, message: String| errors.push(ConfigError { at, message });
        for (field, addr) in [
            ("listen", &self.listen),
            ("metrics_listen", &self.metrics_listen),
        ] {
            if addr.parse::<SocketAddr>().is_err() {
                err(
                    field.to_owned(),
                    format!("not an address (host:port): {addr:?}"),
                );
            }
        }
        if self.max_body_bytes == 0 {
            err("max_body_bytes".into(), "must be above zero".into());
        }
        if self.max_header_bytes < crate::serve::MIN_HEADER_BYTES {
            err(
                "max_header_bytes".into(),
                format!("must be at least {}", crate::serve::MIN_HEADER_BYTES),
            );
        }
        for (field, v) in [
            ("body_timeout_ms", self.body_timeout_ms),
            ("header_timeout_ms", self.header_timeout_ms),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
        ] {
            if v == 0 {
                err(field.into(), "must be above zero".into());
            }
        }
        if self.max_concurrency == Some(0) {
            err("max_concurrency".into(), "must be above zero".into());
        }
        if self.providers.is_empty() {
            err("providers".into(), "no provider is configured".into());
        }
        for (name, p) in &self.providers {
            let at = format!("providers.{name}");
            if !matches!(p.kind.as_str(), "openai" | "anthropic") {
                err(
                    format!("{at}.kind"),
                    format!("unknown kind {:?} (openai or anthropic)", p.kind),
                );
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                err(
                    format!("{at}.base_url"),
                    format!("not an http(s) URL: {:?}", p.base_url),
                );
            }
            if p.models.is_empty() {
                err(format!("{at}.models"), "no model is configured".into());
            }
            for (model, m) in &p.models {
                for (field, v) in [
                    ("input_per_1k", m.input_per_1k),
                    ("output_per_1k", m.output_per_1k),
                    ("per_call", m.per_call),
                ] {
                    if !v.is_finite() || v < 0.0 {
                        err(
                            format!("{at}.models.{model}.{field}"),
                            format!("must be a finite, non-negative price, got {v}"),
                        );
                    }
                }
                if m.context_window == Some(0) {
                    err(
                        format!("{at}.models.{model}.context_window"),
                        "must be above zero".into(),
                    );
                }
            }
            if tta_core::PrimitiveName::new(name).is_err() {
                err(
                    at.clone(),
                    "a provider's name is 1 to 64 letters, digits, '_', '-' or '.'".into(),
                );
            }
        }
        if self.models.is_empty() {
            err("models".into(), "no model is exposed".into());
        }
        for (name, m) in &self.models {
            let at = format!("models.{name}");
            if !STRATEGIES.contains(&m.strategy.as_str()) {
                err(
                    format!("{at}.strategy"),
                    format!(
                        "unknown strategy {:?} ({})",
                        m.strategy,
                        STRATEGIES.join(", ")
                    ),
                );
            }
            if m.routes.is_empty() {
                err(format!("{at}.routes"), "no route".into());
            }
            if m.attempt_timeout_ms == Some(0) {
                err(
                    format!("{at}.attempt_timeout_ms"),
                    "must be above zero".into(),
                );
            }
            if m.failure_threshold == 0 {
                err(
                    format!("{at}.failure_threshold"),
                    "must be above zero".into(),
                );
            }
            if m.cooldown_ms == 0 || m.cooldown_ms > 600_000 {
                err(
                    format!("{at}.cooldown_ms"),
                    "must be above zero and at most 600000 (10 minutes)".into(),
                );
            }
            let mut seen = Vec::new();
            for (i, r) in m.routes.iter().enumerate() {
                let at = format!("{at}.routes[{i}]");
                match self.providers.get(&r.provider) {
                    None => err(at, format!("unknown provider {:?}", r.provider)),
                    Some(p) if !p.models.contains_key(&r.model) => err(
                        at,
                        format!("provider {:?} has no model {:?}", r.provider, r.model),
                    ),
                    Some(_) if seen.contains(&(&r.provider, &r.model)) => {
                        err(at, "the same route twice".into());
                    }
                    Some(_) => seen.push((&r.provider, &r.model)),
                }
                if r.weight.is_some_and(|w| !w.is_finite() || w < 0.0) {
                    err(
                        format!("{}.routes[{i}].weight", format_args!("models.{name}")),
                        "must be finite and non-negative".into(),
                    );
                }
            }
        }
        let store = self.cache_store();
        if !matches!(store, "memory" | "redis" | "off") {
            err(
                "cache.store".into(),
                format!("unknown store {store:?} (memory, redis or off)"),
            );
        }
        if store == "redis" && self.redis.is_none() {
            err("cache.store".into(), "redis needs a [redis] url".into());
        }
        if self.cache.ttl_s == 0 {
            err("cache.ttl_s".into(), "must be above zero".into());
        }
        for (field, v) in [
            ("timeouts.first_chunk_ms", self.timeouts.first_chunk_ms),
            ("timeouts.idle_ms", self.timeouts.idle_ms),
            ("timeouts.total_ms", self.timeouts.total_ms),
        ] {
            if v == 0 {
                err(field.into(), "must be above zero".into());
            }
        }
        if self.keys.is_empty() {
            err(
                "keys".into(),
                "no API key: every request would get 401".into(),
            );
        }
        for (i, k) in self.keys.iter().enumerate() {
            let at = format!("keys[{i}]");
            if crate::auth::digest_from_hex(&k.sha256).is_none() {
                err(format!("{at}.sha256"), "not 64 hex digits".into());
            }
            if !self.tenants.contains_key(&k.tenant) {
                err(
                    format!("{at}.tenant"),
                    format!("unknown tenant {:?}", k.tenant),
                );
            }
        }
        for (name, t) in &self.tenants {
            let at = format!("tenants.{name}");
            if tta_core::PrimitiveName::new(name).is_err() {
                err(
                    at.clone(),
                    "a tenant's name is 1 to 64 letters, digits, '_', '-' or '.'".into(),
                );
            }
            if t.usd_per_day.is_some_and(|v| !v.is_finite() || v <= 0.0) {
                err(
                    format!("{at}.usd_per_day"),
                    "must be a positive number of dollars".into(),
                );
            }
            for (field, v) in [
                ("requests_per_minute", t.requests_per_minute),
                ("tokens_per_minute", t.tokens_per_minute),
            ] {
                if v == Some(0) {
                    err(format!("{at}.{field}"), "must be above zero".into());
                }
            }
            if t.concurrency == Some(0) {
                err(format!("{at}.concurrency"), "must be above zero".into());
            }
        }
        for (i, t) in self.telemetry.tenant_labels.iter().enumerate() {
            if !self.tenants.contains_key(t) {
                err(
                    format!("telemetry.tenant_labels[{i}]"),
                    format!("unknown tenant {t:?}"),
                );
            }
        }
        errors
    }
}
