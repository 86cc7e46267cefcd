//! OTLP export of traces and metrics (feature `otlp`); without the feature, a configured
//! endpoint is reported as degraded.

use opentelemetry_sdk::metrics::MeterProviderBuilder;
use opentelemetry_sdk::trace::TracerProviderBuilder;

use crate::{ApmConfig, ApmStatus, Component, ComponentState};

pub(crate) fn install(
    config: &ApmConfig,
    meters: MeterProviderBuilder,
    tracers: TracerProviderBuilder,
    status: &mut ApmStatus,
) -> (MeterProviderBuilder, TracerProviderBuilder) {
    let Some(endpoint) = config.otlp_endpoint.as_deref() else {
        return (meters, tracers);
    };
    if cfg!(not(feature = "otlp")) {
        let why = "an OTLP endpoint is set but tta-apm was built without its `otlp` feature";
        for component in [Component::OtlpTraces, Component::OtlpMetrics] {
            status.set(component, ComponentState::Degraded(why.to_owned()));
        }
        return (meters, tracers);
    }
    exporters(config, endpoint, meters, tracers, status)
}

#[cfg(not(feature = "otlp"))]
fn exporters(
    _config: &ApmConfig,
    _endpoint: &str,
    meters: MeterProviderBuilder,
    tracers: TracerProviderBuilder,
    _status: &mut ApmStatus,
) -> (MeterProviderBuilder, TracerProviderBuilder) {
    (meters, tracers)
}

#[cfg(feature = "otlp")]
fn exporters(
    config: &ApmConfig,
    endpoint: &str,
    mut meters: MeterProviderBuilder,
    mut tracers: TracerProviderBuilder,
    status: &mut ApmStatus,
) -> (MeterProviderBuilder, TracerProviderBuilder) {
    use opentelemetry_otlp::{
        Compression, MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
        WithTonicConfig,
    };
    use opentelemetry_sdk::metrics::PeriodicReader;

    use crate::{EXPORT_TIMEOUT, OtlpProtocol};

    // reqwest built with `rustls-no-provider` (tta-llm builds it so; features unify, so
    // this client gets it too) panics building a client unless a process-wide provider
    // is installed. Install ring's, the one tta-llm and fred use, unless the
    // application installed its own first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = endpoint.trim_end_matches('/');
    // gzip when asked (the config checked every compression variable, and rejects the
    // ones this build cannot honour rather than letting the exporter ignore them).
    let gzip = config.otlp_compression == crate::OtlpCompression::Gzip;
    // One exporter of either signal, over the configured protocol (the two signals'
    // builders are distinct types with the same methods).
    macro_rules! exporter {
        ($exporter:ident, $path:literal) => {
            match config.otlp_protocol {
                OtlpProtocol::HttpProtobuf => {
                    let mut b = $exporter::builder()
                        .with_http()
                        .with_protocol(Protocol::HttpBinary)
                        .with_endpoint(format!("{base}{}", $path))
                        .with_timeout(EXPORT_TIMEOUT);
                    if gzip {
                        b = b.with_compression(Compression::Gzip);
                    }
                    b.build()
                }
                OtlpProtocol::Grpc => {
                    let mut b = $exporter::builder()
                        .with_tonic()
                        .with_endpoint(base)
                        .with_timeout(EXPORT_TIMEOUT);
                    if gzip {
                        b = b.with_compression(Compression::Gzip);
                    }
                    b.build()
                }
            }
        };
    }
    let spans = exporter!(SpanExporter, "/v1/traces");
    match spans {
        Ok(exporter) => {
            // The SDK's batch processor (its `OTEL_BSP_*` variables honoured) behind a
            // bound of our own, so each span it cannot take is counted, not lost.
            use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};
            let ledger = std::sync::Arc::new(crate::spans::SpanLedger::default());
            let batch = BatchSpanProcessor::builder(crate::spans::Counted {
                inner: exporter,
                ledger: std::sync::Arc::clone(&ledger),
            })
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(config.span_queue)
                    .build(),
            )
            .build();
            tracers = tracers.with_span_processor(crate::spans::Bounded {
                inner: batch,
                ledger: std::sync::Arc::clone(&ledger),
                max_queue: config.span_queue as u64,
            });
            status.spans = Some(crate::status::Ledger(ledger));
            status.set(Component::OtlpTraces, ComponentState::Live);
        }
        Err(e) => status.set(
            Component::OtlpTraces,
            ComponentState::Degraded(e.to_string()),
        ),
    }
    let metrics = exporter!(MetricExporter, "/v1/metrics");
    match metrics {
        Ok(exporter) => {
            meters = meters.with_reader(PeriodicReader::builder(exporter).build());
            status.set(Component::OtlpMetrics, ComponentState::Live);
        }
        Err(e) => status.set(
            Component::OtlpMetrics,
            ComponentState::Degraded(e.to_string()),
        ),
    }
    (meters, tracers)
}
