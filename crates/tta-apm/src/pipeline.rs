//! `init`: the providers, the exporters and the `/metrics` server, as configured.

use std::sync::atomic::Ordering;

use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::config::sdk_disabled_by;
use crate::guard::{INSTALLED, Pipeline};
use crate::server::MetricsServer;
use crate::{
    ApmConfig, ApmGuard, ApmStatus, Component, ComponentState, InitError, bridge, otlp, semconv,
    views,
};

/// Installs the telemetry pipeline described by `config` on the running tokio runtime.
///
/// Degradation is reported in [`ApmGuard::status`] (and as a `tracing` warning), never
/// as an error: a busy metrics port, an OTLP exporter that cannot be built or a second
/// `tracing` subscriber leave everything else working. `OTEL_SDK_DISABLED=true` in the
/// environment, or [`ApmConfigBuilder::sdk_disabled`](crate::ApmConfigBuilder::sdk_disabled), installs nothing.
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

pub(crate) fn init_with_env(
    config: ApmConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ApmGuard, InitError> {
    // The operator's kill switch wins over the code, whatever the config says.
    let env_disabled = sdk_disabled_by(env)?;
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
        spans: None,
    };
    let resource = resource(&config);
    // This SDK is built with `experimental_metrics_bound_instruments`: instruments made
    // from now on may bind their labels.
    tta_core::bound::declare_sdk_binds();

    let mut meters = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(views::histogram_view);
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
    if config.console_spans {
        tracers = tracers.with_batch_exporter(opentelemetry_stdout::SpanExporter::default());
        status.set(Component::ConsoleSpans, ComponentState::Live);
    }
    (meters, tracers) = otlp::install(&config, meters, tracers, &mut status);

    let meter_provider = meters.build();
    if let Some(ledger) = &status.spans {
        crate::spans::register_metric(&meter_provider, &ledger.0);
    }
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
        let addr = config.metrics_addr;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn otel_sdk_disabled_in_the_environment_overrides_the_code() {
        let config = ApmConfig::builder("svc")
            .metrics_addr("127.0.0.1:0")
            .sdk_disabled(false)
            .build()
            .unwrap();
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
