//! Telemetry names of the router, in one place, so they can follow the OpenTelemetry
//! GenAI semantic conventions as they change.

/// Counter: attempts started, by `route` and `reason`.
pub const DECISIONS: &str = "tta.router.decisions";
/// Histogram, seconds: attempt durations by `route` and `outcome`.
pub const ROUTE_DURATION: &str = "tta.router.route.duration";
/// Counter: failed attempts by `route` and `error_type`.
pub const ERRORS: &str = "tta.router.errors";
/// Counter, USD: what attempts cost, by `route`. The name carries the unit so that the
/// Prometheus name is `tta_router_cost_usd_total` (the exporter drops unknown units).
pub const COST: &str = "tta.router.cost.usd";
/// Counter, USD: the most expensive route's price for the same usage, minus what was paid.
pub const COST_SAVINGS: &str = "tta.router.cost.savings.usd";

pub use tta_core::semconv::gen_ai;

/// Label: the router's name.
pub const LABEL_ROUTER: &str = "router";
/// Label: the route's name.
pub const LABEL_ROUTE: &str = "route";
/// Label: why a route was tried (`strategy`, `fallback`, `probe`, `only_candidate`).
pub const LABEL_REASON: &str = "reason";
/// Label: how an attempt ended (`ok`, `error`, `timeout`).
pub const LABEL_OUTCOME: &str = "outcome";
/// Label: a bounded error type (an `ErrorKind`).
pub const LABEL_ERROR_TYPE: &str = "error_type";

/// Error attribute (OpenTelemetry's `error.type`).
pub const ERROR_TYPE: &str = "error.type";

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
