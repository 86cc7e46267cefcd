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

/// Span event: a streamed execution's first chunk arrived.
pub const EVENT_FIRST_CHUNK: &str = "tta.stream.first_chunk";

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

/// Bucket boundaries, in seconds, for every `tta.*` duration histogram: ten per decade
/// (the R10 series 1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8) from 10 µs (a cache hit) to
/// 8 s (an LLM call's tail), then 10, 16, 25, 40 and 60 s. A bucket up to 8 s is then at
/// most 28% wide (1.25 to 1.6), so `histogram_quantile`'s linear interpolation lands
/// within one bucket's width of the exact p50, p95 and p99 of the demo's default run,
/// which a test checks (often much closer; but an exact p50 of 0.203 ms, just over the
/// 0.2 ms bound, came out as 0.180 ms once); wider buckets (2.5x, before) put a 1.2 s p99
/// at 1.9 s. 65 buckets, a fixed number per series. The GenAI
/// histograms keep the conventions' own buckets.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    1e-05, 1.25e-05, 1.6e-05, 2e-05, 2.5e-05, 3.15e-05, 4e-05, 5e-05, 6.3e-05, 8e-05, 0.0001,
    0.000125, 0.00016, 0.0002, 0.00025, 0.000315, 0.0004, 0.0005, 0.00063, 0.0008, 0.001, 0.00125,
    0.0016, 0.002, 0.0025, 0.00315, 0.004, 0.005, 0.0063, 0.008, 0.01, 0.0125, 0.016, 0.02, 0.025,
    0.0315, 0.04, 0.05, 0.063, 0.08, 0.1, 0.125, 0.16, 0.2, 0.25, 0.315, 0.4, 0.5, 0.63, 0.8, 1.0,
    1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0, 10.0, 16.0, 25.0, 40.0, 60.0,
];

/// Names and bucket boundaries of the OpenTelemetry GenAI semantic conventions that tta
/// records (the router) and configures (tta-apm's views).
pub mod gen_ai {
    /// Histogram, seconds: one model call.
    pub const CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
    /// Histogram, seconds: a streamed call's time to its first chunk.
    pub const CLIENT_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
    /// Histogram, seconds: a streamed call's time per output chunk after the first.
    pub const CLIENT_TIME_PER_OUTPUT_CHUNK: &str = "gen_ai.client.operation.time_per_output_chunk";
    /// Histogram, tokens: usage of one model call, by [`TOKEN_TYPE`].
    pub const CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
    /// Attribute: the operation (`chat`).
    pub const OPERATION_NAME: &str = "gen_ai.operation.name";
    /// Attribute: the provider.
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// Attribute: the requested model.
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    /// Attribute: prompt tokens.
    pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Attribute: completion tokens.
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Attribute: `input` or `output`, on the token usage histogram.
    pub const TOKEN_TYPE: &str = "gen_ai.token.type";
    /// The operation name of a chat completion.
    pub const OPERATION_CHAT: &str = "chat";

    /// `gen_ai.client.operation.duration` boundaries (seconds), from the conventions.
    pub const DURATION_BUCKETS: &[f64] = &[
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ];
    /// `gen_ai.client.operation.time_per_output_chunk` boundaries (seconds), from the
    /// conventions.
    pub const CHUNK_BUCKETS: &[f64] = &[
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ];
    /// `gen_ai.client.token.usage` boundaries (tokens), from the conventions.
    pub const TOKEN_BUCKETS: &[f64] = &[
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ];
}
