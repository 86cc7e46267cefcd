//! The `tracing` bridge (feature `tracing`): `tracing` spans sent to the same tracer
//! provider; without the feature, asking for it is reported as degraded.

use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::{ApmConfig, ApmStatus, Component, ComponentState};

pub(crate) fn install(config: &ApmConfig, provider: &SdkTracerProvider, status: &mut ApmStatus) {
    if !config.tracing_bridge {
        return;
    }
    let state = subscribe(provider);
    status.set(Component::TracingBridge, state);
}

#[cfg(not(feature = "tracing"))]
fn subscribe(_provider: &SdkTracerProvider) -> ComponentState {
    ComponentState::Degraded("tta-apm was built without its `tracing` feature".to_owned())
}

#[cfg(feature = "tracing")]
fn subscribe(provider: &SdkTracerProvider) -> ComponentState {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("tta-tracing"));
    match tracing_subscriber::registry().with(layer).try_init() {
        Ok(()) => ComponentState::Live,
        Err(e) => ComponentState::Degraded(format!("another tracing subscriber is installed: {e}")),
    }
}
