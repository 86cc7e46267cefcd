//! OpenTelemetry and Prometheus setup for tta applications: the one crate of the
//! workspace that depends on the OpenTelemetry SDK.
//!
//! [`init`] installs the global meter and tracer providers, serves Prometheus text on
//! `http://127.0.0.1:9464/metrics` (configurable), exports spans to the console when asked
//! (explicitly, or with the environment set to `development`) and by OTLP when asked (feature `otlp`), and returns an [`ApmGuard`]
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
//! let config = ApmConfig::from_env()
//!     .service_name("checkout")
//!     .metrics_addr("127.0.0.1:0") // any free port
//!     .build()?;
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
//! ([`semconv::DURATION_BUCKETS_SECONDS`], ten per decade from 10 µs to 8 s, then to 60 s) and the `gen_ai.*`
//! histograms the GenAI conventions' buckets, never the SDK's millisecond defaults.
#![doc(test(attr(deny(warnings))))]

mod bridge;
mod config;
mod guard;
mod otlp;
mod pipeline;
pub mod semconv;
mod server;
mod spans;
mod status;
mod views;

use std::time::Duration;

pub use config::{
    ApmConfig, ApmConfigBuilder, ConfigError, DEFAULT_METRICS_ADDR, OtlpCompression, OtlpProtocol,
};
pub use guard::{ApmGuard, ShutdownError};
pub use pipeline::init;
pub use spans::SpanExportStats;
pub use status::{ApmStatus, Component, ComponentState};

/// How long [`ApmGuard::shutdown`] may take, in all.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(4_500);
/// How long one OTLP export may take before it is abandoned.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why [`init`] refused to start.
///
/// # Examples
///
/// ```
/// use tta_apm::{ApmConfig, InitError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ApmConfig::builder("svc").sdk_disabled(true).build()?;
/// let first = tta_apm::init(config.clone())?;
/// assert!(matches!(tta_apm::init(config), Err(InitError::AlreadyInitialized)));
/// first.shutdown().await?;
/// # Ok(()) }
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
