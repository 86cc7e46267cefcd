//! Telemetry names of the cache primitive, in one place.

/// Counter: lookups served without running the inner primitive (coalesced waiters included).
pub const HITS: &str = "tta.cache.hits";
/// Counter: lookups that ran the inner primitive.
pub const MISSES: &str = "tta.cache.misses";
/// Counter: store, key and codec errors, by `op` and `error_type`.
pub const ERRORS: &str = "tta.cache.errors";
/// Histogram, seconds: store operation durations, by `op` (`get`, `set`) and `result`.
pub const OPERATION_DURATION: &str = "tta.cache.operation.duration";
/// Gauge, 0 to 1: hits among the last 1,024 lookups.
pub const HIT_RATIO: &str = "tta.cache.hit_ratio";
/// Counter, USD: what hits did not spend (the fills' recorded cost). The name carries
/// the unit so that the Prometheus name is `tta_cache_cost_savings_usd_total`.
pub const COST_SAVINGS: &str = "tta.cache.cost.savings.usd";
/// Counter: lookups that waited for another caller's fill instead of running their own.
pub const COALESCED: &str = "tta.cache.coalesced";
/// Gauge, remote stores only: the store's breaker (0 closed, 1 open, 2 half-open).
pub const STORE_STATE: &str = "tta.cache.store.state";

/// Metric label: the cache's name.
pub const LABEL_CACHE: &str = "cache";
/// Metric label: the store kind (`memory`, `redis`).
pub const LABEL_STORE: &str = "store";
/// Metric label: the operation (`get`, `set`, `key`).
pub const LABEL_OP: &str = "op";
/// Metric label: a bounded error type.
pub const LABEL_ERROR_TYPE: &str = "error_type";
/// Metric label: an operation's result (`hit`, `miss`, `ok`, `error`).
pub const LABEL_RESULT: &str = "result";

/// Span attribute: how the lookup was served (`hit`, `miss`, `coalesced`, `bypass`).
pub const ATTR_RESULT: &str = "tta.cache.result";
/// Span attribute: the store kind.
pub const ATTR_STORE: &str = "tta.cache.store";
/// Span attribute: the first 16 hex digits of the key hash (never the input).
pub const ATTR_KEY: &str = "tta.cache.key";
