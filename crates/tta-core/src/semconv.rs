//! Telemetry names used by tta-core, kept in one place so they can follow the
//! conventions as they change.

/// Span attribute: the primitive's validated name.
pub const PRIMITIVE_NAME: &str = "tta.primitive.name";
/// Span attribute: the primitive's kind (`fn`, `parallel`, `timeout`, ...).
pub const PRIMITIVE_KIND: &str = "tta.primitive.kind";
/// Span attribute: the workflow id.
pub const WORKFLOW_ID: &str = "tta.workflow.id";
/// Span attribute and metric label: the error kind (OpenTelemetry's `error.type`).
pub const ERROR_TYPE: &str = "error.type";

/// Metric label: the primitive's name.
pub const LABEL_PRIMITIVE: &str = "primitive";
/// Metric label: the primitive's kind.
pub const LABEL_KIND: &str = "kind";
/// Metric label: how the execution ended (`ok`, `error`, `timeout`, `cancelled`).
pub const LABEL_OUTCOME: &str = "outcome";

/// Counter of primitive executions.
pub const PRIMITIVE_EXECUTIONS: &str = "tta.primitive.executions";
/// Histogram of primitive execution durations, in seconds.
pub const PRIMITIVE_DURATION: &str = "tta.primitive.duration";

/// Bucket boundaries, in seconds, for every `tta.*` duration histogram: from 100 µs
/// (a cache hit) to a minute (a slow completion), never the SDK's millisecond defaults.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
