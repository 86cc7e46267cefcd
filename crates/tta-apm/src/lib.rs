//! OpenTelemetry and Prometheus setup for tta applications: the one crate of the
//! workspace that depends on the OpenTelemetry SDK.
//!
//! [`init`] installs the global meter and tracer providers, serves Prometheus text on
//! `http://127.0.0.1:9464/metrics` (configurable), exports spans to the console in
//! development and by OTLP when asked (feature `otlp`), and returns an [`ApmGuard`]
//! whose [`status`](ApmGuard::status) says what is live and what degraded. A busy port,
//! an unreachable collector or `OTEL_SDK_DISABLED=true` never panic and never stop the
//! primitives from working.
//!
//! Call `init` **before** building primitives: they take their instruments from the
//! global providers when they are built.
//!
//! # Examples
//!
//! ```
//! use tta_apm::{ApmConfig, Component, ComponentState};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ApmConfig::from_env()?
//!     .service_name("checkout")
//!     .metrics_addr("127.0.0.1:0") // any free port
//!     .console_spans(false);
//! let guard = tta_apm::init(config)?;
//! assert_eq!(guard.status().state(Component::Prometheus), &ComponentState::Live);
//! let addr = guard.status().metrics_addr().unwrap();
//! println!("scrape http://{addr}/metrics");
//! guard.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Histograms
//!
//! Views give every `tta.*` histogram second-scale buckets
//! ([`semconv::DURATION_BUCKETS_SECONDS`], 100 µs to 60 s) and the `gen_ai.*`
//! histograms the GenAI conventions' buckets, never the SDK's millisecond defaults.
#![doc(test(attr(deny(warnings))))]

mod config;
pub mod semconv;
mod server;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind, SdkMeterProvider, Stream,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

pub use config::{ApmConfig, ConfigError, DEFAULT_METRICS_ADDR, OtlpProtocol};
pub use status::{ApmStatus, Component, ComponentState};

use server::MetricsServer;

/// Set while an [`ApmGuard`] is alive: a second `init` is refused.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// How long [`ApmGuard::shutdown`] may take, in all.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(4_500);
/// How long one OTLP export may take before it is abandoned.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why [`init`] refused to start.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = tta_apm::init(tta_apm::ApmConfig::new("")).unwrap_err();
/// assert!(matches!(err, tta_apm::InitError::Config(_)));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A configuration value is invalid; nothing was started.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `init` already ran and its guard is still alive; nothing was started.
    #[error(
        "tta-apm is already initialized; shut down or drop the first ApmGuard before calling init again"
    )]
    AlreadyInitialized,
    /// `init` was called outside a tokio runtime; nothing was started.
    #[error("tta_apm::init must be called inside a tokio runtime (it serves /metrics on it)")]
    NoRuntime,
}

/// A provider did not shut down cleanly or in time; the process may still exit.
///
/// # Examples
///
/// ```
/// let e = tta_apm::ShutdownError::TimedOut;
/// assert!(e.to_string().contains("did not finish"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Flushing took longer than [`SHUTDOWN_TIMEOUT`]; it was abandoned.
    #[error(
        "telemetry shutdown did not finish within {SHUTDOWN_TIMEOUT:?}; unexported data was dropped"
    )]
    TimedOut,
    /// A provider reported an error while flushing.
    #[error("telemetry shutdown reported errors: {0}")]
    Flush(String),
}

/// Keeps the telemetry pipeline alive; [`shutdown`](Self::shutdown) flushes and stops it.
///
/// Dropping it without `shutdown` stops the `/metrics` server and resets the global
/// providers (best effort, without waiting for a flush).
#[derive(Debug)]
pub struct ApmGuard {
    status: ApmStatus,
    pipeline: Option<Pipeline>,
}

#[derive(Debug)]
struct Pipeline {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    server: Option<MetricsServer>,
}

impl ApmGuard {
    /// What started and what degraded.
    ///
    /// # Examples
    ///
    /// See the [crate docs](crate).
    pub fn status(&self) -> &ApmStatus {
        &self.status
    }

    /// The installed meter provider (`None` when the SDK is disabled): for instruments
    /// of your own, or to force a flush.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let guard = tta_apm::init(tta_apm::ApmConfig::new("s").sdk_disabled(true)).unwrap();
    /// assert!(guard.meter_provider().is_none());
    /// # }
    /// ```
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.pipeline.as_ref().map(|p| &p.meter_provider)
    }

    /// The tracer provider (`None` when the SDK is disabled). It is installed globally
    /// only when spans go somewhere: console export, OTLP, or the `tracing` bridge.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let guard = tta_apm::init(tta_apm::ApmConfig::new("s").sdk_disabled(true)).unwrap();
    /// assert!(guard.tracer_provider().is_none());
    /// # }
    /// ```
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.pipeline.as_ref().map(|p| &p.tracer_provider)
    }

    /// Flushes both providers, stops the `/metrics` server and resets the global
    /// providers. Returns within [`SHUTDOWN_TIMEOUT`] even when a collector is
    /// unreachable.
    ///
    /// # Errors
    ///
    /// [`ShutdownError`] when a flush failed or did not finish in time.
    ///
    /// # Examples
    ///
    /// See the [crate docs](crate).
    pub async fn shutdown(mut self) -> Result<(), ShutdownError> {
        let Some(pipeline) = self.pipeline.take() else {
            INSTALLED.store(false, Ordering::SeqCst);
            return Ok(());
        };
        if let Some(server) = pipeline.server {
            server.stop().await;
        }
        reset_globals();
        let (tracer_provider, meter_provider) = (pipeline.tracer_provider, pipeline.meter_provider);
        // Provider shutdown blocks (exporters flush synchronously), so it runs on blocking
        // threads, both at once, under one deadline.
        let traces = tokio::task::spawn_blocking(move || {
            tracer_provider.shutdown_with_timeout(EXPORT_TIMEOUT)
        });
        let metrics = tokio::task::spawn_blocking(move || {
            meter_provider.shutdown_with_timeout(EXPORT_TIMEOUT)
        });
        let both = async { (traces.await, metrics.await) };
        let result = match tokio::time::timeout(SHUTDOWN_TIMEOUT, both).await {
            Err(_) => Err(ShutdownError::TimedOut),
            Ok((traces, metrics)) => {
                let errors: Vec<String> = [("traces", traces), ("metrics", metrics)]
                    .into_iter()
                    .filter_map(|(what, r)| match r {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{what}: {e}")),
                        Err(e) => Some(format!("{what}: {e}")),
                    })
                    .collect();
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(ShutdownError::Flush(errors.join("; ")))
                }
            }
        };
        INSTALLED.store(false, Ordering::SeqCst);
        result
    }
}

impl Drop for ApmGuard {
    fn drop(&mut self) {
        if let Some(pipeline) = self.pipeline.take() {
            reset_globals();
            // The server stops on drop; the providers flush on their own threads when
            // their last reference goes.
            drop(pipeline);
            INSTALLED.store(false, Ordering::SeqCst);
        }
    }
}

fn reset_globals() {
    global::set_meter_provider(opentelemetry::metrics::noop::NoopMeterProvider::new());
    global::set_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new());
}

/// Installs the telemetry pipeline described by `config` on the running tokio runtime.
///
/// Degradation is reported in [`ApmGuard::status`] (and as a `tracing` warning), never
/// as an error: a busy metrics port, an OTLP exporter that cannot be built or a second
/// `tracing` subscriber leave everything else working. `OTEL_SDK_DISABLED=true` in the
/// environment, or [`ApmConfig::sdk_disabled`], installs nothing.
///
/// # Errors
///
/// [`InitError`] for an invalid configuration, a second `init` while the first guard
/// lives, or a call outside a tokio runtime. Nothing is started then.
///
/// # Examples
///
/// See the [crate docs](crate).
pub fn init(config: ApmConfig) -> Result<ApmGuard, InitError> {
    init_with_env(config, |k| std::env::var(k).ok())
}

fn init_with_env(
    config: ApmConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ApmGuard, InitError> {
    config.validate()?;
    // The operator's kill switch wins over the code, whatever the config says.
    let env_disabled = match env("OTEL_SDK_DISABLED") {
        Some(v) => {
            ApmConfig::from_lookup(|k| (k == "OTEL_SDK_DISABLED").then(|| v.clone()))?.sdk_disabled
        }
        None => false,
    };
    if INSTALLED
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Err(InitError::AlreadyInitialized);
    }
    if config.sdk_disabled || env_disabled {
        return Ok(ApmGuard {
            status: ApmStatus::disabled(),
            pipeline: None,
        });
    }
    if tokio::runtime::Handle::try_current().is_err() {
        INSTALLED.store(false, Ordering::SeqCst);
        return Err(InitError::NoRuntime);
    }

    let mut status = ApmStatus {
        disabled: false,
        components: Vec::new(),
        metrics_addr: None,
    };
    let resource = resource(&config);

    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(histogram_view);
    let registry = prometheus::Registry::new();
    if config.prometheus {
        match opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
        {
            Ok(exporter) => meters = meters.with_reader(exporter),
            Err(e) => status.set(
                Component::Prometheus,
                ComponentState::Degraded(e.to_string()),
            ),
        }
    }
    let mut tracers = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))));
    if config.console_spans_enabled() {
        tracers = tracers.with_batch_exporter(opentelemetry_stdout::SpanExporter::default());
        status.set(Component::ConsoleSpans, ComponentState::Live);
    }
    (meters, tracers) = otlp::install(&config, meters, tracers, &mut status);

    let meter_provider = meters.build();
    let tracer_provider = tracers.build();
    global::set_meter_provider(meter_provider.clone());
    // Spans that no exporter will ever see are pure cost: with no span exporter (and no
    // `tracing` bridge) the global tracer provider stays the no-op one.
    let spans_go_somewhere = config.tracing_bridge
        || [Component::ConsoleSpans, Component::OtlpTraces]
            .into_iter()
            .any(|c| status.state(c) == &ComponentState::Live);
    if spans_go_somewhere {
        global::set_tracer_provider(tracer_provider.clone());
    }
    global::set_text_map_propagator(TraceContextPropagator::new());
    bridge::install(&config, &tracer_provider, &mut status);

    let mut server = None;
    if config.prometheus && !status.state(Component::Prometheus).is_degraded() {
        let addr = config
            .metrics_addr
            .clone()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
        match MetricsServer::start(addr, registry) {
            Ok(s) => {
                status.metrics_addr = Some(s.addr());
                status.set(Component::Prometheus, ComponentState::Live);
                server = Some(s);
            }
            Err(e) => status.set(
                Component::Prometheus,
                ComponentState::Degraded(format!("cannot listen on {addr}: {e}")),
            ),
        }
    }
    Ok(ApmGuard {
        status,
        pipeline: Some(Pipeline {
            tracer_provider,
            meter_provider,
            server,
        }),
    })
}

fn resource(config: &ApmConfig) -> Resource {
    let mut attributes = vec![KeyValue::new(
        semconv::DEPLOYMENT_ENVIRONMENT,
        config.environment.clone(),
    )];
    if let Some(version) = &config.service_version {
        attributes.push(KeyValue::new("service.version", version.clone()));
    }
    attributes.extend(
        config
            .resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    // `builder_empty`: the environment was already read, by `ApmConfig`, with its
    // precedence rules; the SDK's own detectors would read it again.
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attributes)
        .with_service_name(config.service_name.clone())
        .build()
}

/// Second-scale buckets for `tta.*` histograms, GenAI buckets for `gen_ai.*` ones.
fn histogram_view(instrument: &Instrument) -> Option<Stream> {
    if instrument.kind() != InstrumentKind::Histogram {
        return None;
    }
    let boundaries = match instrument.name() {
        semconv::GEN_AI_OPERATION_DURATION => semconv::GEN_AI_DURATION_BUCKETS,
        semconv::GEN_AI_TOKEN_USAGE => semconv::GEN_AI_TOKEN_BUCKETS,
        name if name.starts_with("tta.") && instrument.unit() == "s" => {
            semconv::DURATION_BUCKETS_SECONDS
        }
        _ => return None,
    };
    Stream::builder()
        .with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries: boundaries.to_vec(),
            record_min_max: true,
        })
        .build()
        .ok()
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
    use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader};
    use opentelemetry_sdk::trace::TracerProviderBuilder;

    use crate::{ApmConfig, ApmStatus, Component, ComponentState, EXPORT_TIMEOUT, OtlpProtocol};

    pub(crate) fn install(
        config: &ApmConfig,
        mut meters: MeterProviderBuilder,
        mut tracers: TracerProviderBuilder,
        status: &mut ApmStatus,
    ) -> (MeterProviderBuilder, TracerProviderBuilder) {
        let Some(endpoint) = config.otlp_endpoint.as_deref() else {
            return (meters, tracers);
        };
        let base = endpoint.trim_end_matches('/');
        let spans = match config.otlp_protocol {
            OtlpProtocol::HttpProtobuf => SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{base}/v1/traces"))
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(base)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        };
        match spans {
            Ok(exporter) => {
                tracers = tracers.with_batch_exporter(exporter);
                status.set(Component::OtlpTraces, ComponentState::Live);
            }
            Err(e) => status.set(
                Component::OtlpTraces,
                ComponentState::Degraded(e.to_string()),
            ),
        }
        let metrics = match config.otlp_protocol {
            OtlpProtocol::HttpProtobuf => MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{base}/v1/metrics"))
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::Grpc => MetricExporter::builder()
                .with_tonic()
                .with_endpoint(base)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        };
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
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    use opentelemetry_sdk::metrics::MeterProviderBuilder;
    use opentelemetry_sdk::trace::TracerProviderBuilder;

    use crate::{ApmConfig, ApmStatus, Component, ComponentState};

    pub(crate) fn install(
        config: &ApmConfig,
        meters: MeterProviderBuilder,
        tracers: TracerProviderBuilder,
        status: &mut ApmStatus,
    ) -> (MeterProviderBuilder, TracerProviderBuilder) {
        if config.otlp_endpoint.is_some() {
            let why = "an OTLP endpoint is set but tta-apm was built without its `otlp` feature";
            status.set(
                Component::OtlpTraces,
                ComponentState::Degraded(why.to_owned()),
            );
            status.set(
                Component::OtlpMetrics,
                ComponentState::Degraded(why.to_owned()),
            );
        }
        (meters, tracers)
    }
}

#[cfg(feature = "tracing")]
mod bridge {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    use crate::{ApmConfig, ApmStatus, Component, ComponentState};

    pub(crate) fn install(
        config: &ApmConfig,
        provider: &SdkTracerProvider,
        status: &mut ApmStatus,
    ) {
        if !config.tracing_bridge {
            return;
        }
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("tta-tracing"));
        match tracing_subscriber::registry().with(layer).try_init() {
            Ok(()) => status.set(Component::TracingBridge, ComponentState::Live),
            Err(e) => status.set(
                Component::TracingBridge,
                ComponentState::Degraded(format!("another tracing subscriber is installed: {e}")),
            ),
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod bridge {
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use crate::{ApmConfig, ApmStatus, Component, ComponentState};

    pub(crate) fn install(
        config: &ApmConfig,
        _provider: &SdkTracerProvider,
        status: &mut ApmStatus,
    ) {
        if config.tracing_bridge {
            status.set(
                Component::TracingBridge,
                ComponentState::Degraded(
                    "tta-apm was built without its `tracing` feature".to_owned(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn otel_sdk_disabled_in_the_environment_overrides_the_code() {
        let config = ApmConfig::new("svc")
            .metrics_addr("127.0.0.1:0")
            .sdk_disabled(false);
        let guard = init_with_env(config.clone(), |k| {
            (k == "OTEL_SDK_DISABLED").then(|| "true".to_owned())
        })
        .unwrap();
        assert!(guard.status().is_disabled());
        guard.shutdown().await.unwrap();
        let bad = init_with_env(config, |k| {
            (k == "OTEL_SDK_DISABLED").then(|| "yes please".to_owned())
        });
        assert!(matches!(bad, Err(InitError::Config(e)) if e.variable() == "OTEL_SDK_DISABLED"));
    }
}
