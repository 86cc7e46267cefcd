//! Names and bucket boundaries tta-apm applies, in one place.

/// Bucket boundaries, in seconds, for every `tta.*` duration histogram.
pub use tta_core::semconv::DURATION_BUCKETS_SECONDS;

/// `gen_ai.client.operation.duration` boundaries (seconds), from the OpenTelemetry GenAI
/// semantic conventions.
pub const GEN_AI_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `gen_ai.client.token.usage` boundaries (tokens), from the GenAI semantic conventions.
pub const GEN_AI_TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// The GenAI operation duration histogram.
pub const GEN_AI_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// The GenAI token usage histogram.
pub const GEN_AI_TOKEN_USAGE: &str = "gen_ai.client.token.usage";

/// Resource attribute: the deployment environment.
pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment.name";
