//! Names and bucket boundaries tta-apm applies, in one place (the shared ones live in
//! `tta_core::semconv`).

/// Bucket boundaries, in seconds, for every `tta.*` duration histogram.
pub use tta_core::semconv::DURATION_BUCKETS_SECONDS;
/// The GenAI operation duration histogram.
pub use tta_core::semconv::gen_ai::CLIENT_OPERATION_DURATION as GEN_AI_OPERATION_DURATION;
/// The GenAI token usage histogram.
pub use tta_core::semconv::gen_ai::CLIENT_TOKEN_USAGE as GEN_AI_TOKEN_USAGE;
/// `gen_ai.client.operation.duration` boundaries (seconds), from the GenAI conventions.
pub use tta_core::semconv::gen_ai::DURATION_BUCKETS as GEN_AI_DURATION_BUCKETS;
/// `gen_ai.client.token.usage` boundaries (tokens), from the GenAI conventions.
pub use tta_core::semconv::gen_ai::TOKEN_BUCKETS as GEN_AI_TOKEN_BUCKETS;

/// Resource attribute: the deployment environment.
pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment.name";

/// Counter: spans dropped before OTLP export, by `reason` (`queue_full`: more than
/// `OTEL_BSP_MAX_QUEUE_SIZE` spans were waiting; `export_failed`: their batch's export
/// failed). Prometheus: `tta_apm_spans_dropped_total`.
pub const SPANS_DROPPED: &str = "tta.apm.spans.dropped";
