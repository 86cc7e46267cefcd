//! Telemetry names of the limit primitive, in one place.

/// Counter: decisions per call and resource, by `limit`, `resource` (`requests`,
/// `tokens`, `usd`, `concurrency`) and `result` (`allowed`, `refused`, `failed_open`,
/// `failed_closed`), and `tenant` only for tenants listed in the configuration.
pub const DECISIONS: &str = "tta.limit.decisions";
/// Counter: settlements that left a window above its cap, by `limit` and `resource`.
pub const OVERSHOOTS: &str = "tta.limit.overshoots";
/// Counter: store operations that failed, by `limit` and `op` (`reserve`, `settle`).
pub const STORE_ERRORS: &str = "tta.limit.store.errors";

/// Metric label: the limit's name.
pub const LABEL_LIMIT: &str = "limit";
/// Metric label: the resource.
pub const LABEL_RESOURCE: &str = "resource";
/// Metric label: the decision.
pub const LABEL_RESULT: &str = "result";
/// Metric label: a listed tenant, or `other`.
pub const LABEL_TENANT: &str = "tenant";
/// Metric label: the store operation.
pub const LABEL_OP: &str = "op";

/// Span attribute: the key (tenant) the call was counted under.
pub const ATTR_KEY: &str = "tta.limit.key";
/// Span attribute: the decision (`allowed`, `refused`, `failed_open`, `failed_closed`).
pub const ATTR_RESULT: &str = "tta.limit.result";
/// Span attribute: the resource that refused the call.
pub const ATTR_REFUSED_BY: &str = "tta.limit.refused_by";
/// Span attribute: dollars reserved before the call.
pub const ATTR_RESERVED_USD: &str = "tta.limit.reserved_usd";
/// Span attribute: dollars the call was settled at.
pub const ATTR_SETTLED_USD: &str = "tta.limit.settled_usd";
