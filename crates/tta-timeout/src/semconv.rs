//! Telemetry names of the timeout primitive, in one place.

/// Counter: executions by outcome (`ok`, `late_ok`, `timeout`, `error`).
pub const OUTCOMES: &str = "tta.timeout.outcomes";
/// Gauge, 0 to 1: the share of the last 128 executions that timed out.
pub const RATE: &str = "tta.timeout.rate";
/// Counter: fallbacks run after a timeout, by `result` (`ok`, `error`).
pub const FALLBACKS: &str = "tta.timeout.fallbacks";

pub use tta_core::semconv::{LABEL_OUTCOME, LABEL_PRIMITIVE};
/// Metric label: a fallback's result.
pub const LABEL_RESULT: &str = "result";

/// Span event: the timeout passed and the call is now late (phase two).
pub const EVENT_LATE: &str = "tta.timeout.late";
/// Span event: the hard limit was reached and the inner call was cancelled.
pub const EVENT_CANCELLED: &str = "tta.timeout.cancelled";
/// Span event: the fallback ran.
pub const EVENT_FALLBACK: &str = "tta.timeout.fallback";
/// Attribute of [`EVENT_FALLBACK`]: the fallback primitive's name.
pub const ATTR_FALLBACK_NAME: &str = "tta.timeout.fallback.name";
/// Span attribute: the configured timeout, seconds.
pub const ATTR_TIMEOUT: &str = "tta.timeout.timeout_s";
/// Span attribute: the configured grace, seconds.
pub const ATTR_GRACE: &str = "tta.timeout.grace_s";
/// Span attribute: the limit actually applied (timeout plus grace, or the caller's
/// remaining budget when that is shorter), seconds.
pub const ATTR_EFFECTIVE_LIMIT: &str = "tta.timeout.effective_limit_s";
/// Span attribute: `true` when the caller's deadline shortened the limit.
pub const ATTR_SHRUNK: &str = "tta.timeout.budget_shrunk";
/// Span attribute: the outcome (as in [`OUTCOMES`]).
pub const ATTR_OUTCOME: &str = "tta.timeout.outcome";
