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

/// Bucket boundaries, in seconds, for every `tta.*` duration histogram: from 100 µs
/// (a cache hit) to a minute (a slow completion), never the SDK's millisecond defaults.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
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
