//! What `init` managed to start, and what degraded.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::spans::{SpanExportStats, SpanLedger};

/// One part of the telemetry pipeline.
///
/// # Examples
///
/// ```
/// assert_eq!(tta_apm::Component::Prometheus.to_string(), "prometheus");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Component {
    /// The Prometheus `/metrics` endpoint.
    Prometheus,
    /// Span export to stdout.
    ConsoleSpans,
    /// OTLP span export.
    OtlpTraces,
    /// OTLP metric export.
    OtlpMetrics,
    /// The `tracing` to OpenTelemetry bridge.
    TracingBridge,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Component::Prometheus => "prometheus",
            Component::ConsoleSpans => "console spans",
            Component::OtlpTraces => "otlp traces",
            Component::OtlpMetrics => "otlp metrics",
            Component::TracingBridge => "tracing bridge",
        })
    }
}

/// How a [`Component`] came up.
///
/// # Examples
///
/// ```
/// use tta_apm::ComponentState;
/// assert!(ComponentState::Degraded("port in use".into()).is_degraded());
/// assert!(!ComponentState::Off.is_degraded());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentState {
    /// Running.
    Live,
    /// Asked for, but could not start; the reason says why. Everything else still works.
    Degraded(String),
    /// Not asked for.
    Off,
}

impl ComponentState {
    /// `true` for [`ComponentState::Degraded`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!tta_apm::ComponentState::Live.is_degraded());
    /// ```
    pub fn is_degraded(&self) -> bool {
        matches!(self, ComponentState::Degraded(_))
    }
}

/// What [`init`](crate::init) started. Read it, log it, or expose it on a health check.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let guard = tta_apm::init(tta_apm::ApmConfig::builder("svc").sdk_disabled(true).build().unwrap()).unwrap();
/// assert!(guard.status().is_disabled());
/// assert_eq!(guard.status().metrics_addr(), None);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApmStatus {
    pub(crate) disabled: bool,
    pub(crate) components: Vec<(Component, ComponentState)>,
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// The OTLP span export's ledger, read live.
    pub(crate) spans: Option<Ledger>,
}

/// A shared span ledger; statuses are equal when they read the same one.
#[derive(Clone, Debug)]
pub(crate) struct Ledger(pub(crate) Arc<SpanLedger>);

impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Ledger {}

impl ApmStatus {
    pub(crate) fn disabled() -> Self {
        Self {
            disabled: true,
            components: Vec::new(),
            metrics_addr: None,
            spans: None,
        }
    }

    pub(crate) fn set(&mut self, component: Component, state: ComponentState) {
        if let ComponentState::Degraded(reason) = &state {
            tracing::warn!(%component, %reason, "tta-apm: telemetry component degraded");
        }
        self.components.retain(|(c, _)| *c != component);
        self.components.push((component, state));
    }

    /// `true` when the SDK was disabled and nothing was installed.
    ///
    /// # Examples
    ///
    /// See [`ApmStatus`].
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// `true` when any component that was asked for could not start, or OTLP export
    /// has dropped spans (read live).
    ///
    /// # Examples
    ///
    /// See [`ApmStatus`].
    pub fn is_degraded(&self) -> bool {
        self.components.iter().any(|(_, s)| s.is_degraded())
            || self.spans().is_some_and(|s| s.dropped() > 0)
    }

    /// What OTLP span export has done so far (read live; `None` without OTLP traces):
    /// every span that ended is exported, waiting, or counted as dropped.
    pub fn spans(&self) -> Option<SpanExportStats> {
        self.spans.as_ref().map(|l| l.0.stats())
    }

    /// The state of one component ([`ComponentState::Off`] when not asked for).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tta_apm::{Component, ComponentState};
    /// let guard = tta_apm::init(tta_apm::ApmConfig::builder("svc").sdk_disabled(true).build().unwrap()).unwrap();
    /// assert_eq!(guard.status().state(Component::OtlpTraces), &ComponentState::Off);
    /// # }
    /// ```
    pub fn state(&self, component: Component) -> &ComponentState {
        self.components
            .iter()
            .find(|(c, _)| *c == component)
            .map_or(&ComponentState::Off, |(_, s)| s)
    }

    /// The address `/metrics` is served on, when the endpoint is live (the real port
    /// when the configured one was 0).
    ///
    /// # Examples
    ///
    /// See [`ApmStatus`].
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
}

impl fmt::Display for ApmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.disabled {
            return f.write_str("telemetry disabled (OTEL_SDK_DISABLED): nothing installed");
        }
        for (i, (component, state)) in self.components.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match state {
                ComponentState::Live if *component == Component::Prometheus => {
                    match self.metrics_addr {
                        Some(addr) => write!(f, "{component}: live on http://{addr}/metrics")?,
                        None => write!(f, "{component}: live")?,
                    }
                }
                ComponentState::Live if *component == Component::OtlpTraces => {
                    write!(f, "{component}: live")?;
                    if let Some(spans) = self.spans().filter(|s| s.dropped() > 0) {
                        write!(
                            f,
                            " but dropping spans ({} dropped: {} with the queue full, raise OTEL_BSP_MAX_QUEUE_SIZE; {} in failed exports; {} exported)",
                            spans.dropped(),
                            spans.dropped_queue_full,
                            spans.dropped_export_failed,
                            spans.exported
                        )?;
                    }
                }
                ComponentState::Live => write!(f, "{component}: live")?,
                ComponentState::Degraded(reason) => write!(f, "{component}: degraded ({reason})")?,
                ComponentState::Off => write!(f, "{component}: off")?,
            }
        }
        Ok(())
    }
}
