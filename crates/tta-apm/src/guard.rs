//! The guard that keeps the pipeline alive, and its shutdown.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::global;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::server::MetricsServer;
use crate::{ApmStatus, EXPORT_TIMEOUT, SHUTDOWN_TIMEOUT};

/// Set while an [`ApmGuard`] is alive: a second `init` is refused.
pub(crate) static INSTALLED: AtomicBool = AtomicBool::new(false);

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
    pub(crate) status: ApmStatus,
    pub(crate) pipeline: Option<Pipeline>,
}

#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) tracer_provider: SdkTracerProvider,
    pub(crate) meter_provider: SdkMeterProvider,
    pub(crate) server: Option<MetricsServer>,
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
    /// let guard = tta_apm::init(tta_apm::ApmConfig::builder("s").sdk_disabled(true).build().unwrap()).unwrap();
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
    /// let guard = tta_apm::init(tta_apm::ApmConfig::builder("s").sdk_disabled(true).build().unwrap()).unwrap();
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

pub(crate) fn reset_globals() {
    global::set_meter_provider(opentelemetry::metrics::noop::NoopMeterProvider::new());
    global::set_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new());
}
