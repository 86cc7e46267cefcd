//! Telemetry names of the router, in one place, so they can follow the OpenTelemetry
//! GenAI semantic conventions as they change.

/// Counter: attempts started, by `route` and `reason`.
pub const DECISIONS: &str = "tta.router.decisions";
/// Histogram, seconds: attempt durations by `route` and `outcome`.
pub const ROUTE_DURATION: &str = "tta.router.route.duration";
/// Counter: failed attempts by `route` and `error_class`.
pub const ERRORS: &str = "tta.router.errors";
/// Counter: streamed attempts that failed after their first chunk (cut, stalled, an error
/// event), by `route`: the request got part of an answer and no fallback.
pub const STREAM_INTERRUPTIONS: &str = "tta.router.stream.interruptions";
/// Gauge: a route's breaker state by `route` (0 closed, 1 open, 2 half-open).
pub const ROUTE_STATE: &str = "tta.router.route.state";
/// Counter, USD: what attempts cost, by `route`. The name carries the unit so that the
/// Prometheus name is `tta_router_cost_usd_total` (the exporter drops unknown units).
pub const COST: &str = "tta.router.cost.usd";
/// Counter, USD: the savings baseline's price for the same usage (the most expensive route,
/// or `RouterBuilder::savings_baseline`), minus what was paid.
pub const COST_SAVINGS: &str = "tta.router.cost.savings.usd";

pub use tta_core::semconv::gen_ai;

/// Label: the router's name.
pub const LABEL_ROUTER: &str = "router";
/// Label: the route's name.
pub const LABEL_ROUTE: &str = "route";
/// Label: why a route was tried (`strategy`, `fallback`, `probe`, `only_candidate`, `panic`).
pub const LABEL_REASON: &str = "reason";
/// Label: what a caller may do about an error (an `ErrorClass`: `rate_limited`,
/// `unavailable`, `invalid_request`, `context_length`, `content_filter`, `auth`, `other`).
pub const LABEL_ERROR_CLASS: &str = "error_class";

pub use tta_core::semconv::{ERROR_TYPE, LABEL_OUTCOME};

/// Span attribute: the strategy.
pub const ATTR_STRATEGY: &str = "tta.router.strategy";
/// Span attribute: the route an attempt (or the request) went to.
pub const ATTR_ROUTE: &str = "tta.router.route";
/// Span attribute: why.
pub const ATTR_REASON: &str = "tta.router.reason";
/// Span attribute: attempts made by the request.
pub const ATTR_ATTEMPTS: &str = "tta.router.attempts";
/// Span attribute: the attempt's cost in USD.
pub const ATTR_COST: &str = "tta.router.cost_usd";
/// Span attribute: a streamed attempt's time to its first chunk, seconds.
pub const ATTR_TTFT: &str = "tta.router.time_to_first_chunk_s";
/// Span attribute: the error class of a failed attempt.
pub const ATTR_ERROR_CLASS: &str = "tta.router.error_class";
/// Span event: the input-aware route function named a route the router does not have.
pub const EVENT_UNKNOWN_ROUTE: &str = "tta.router.unknown_route";
