//! The timeout as a tower `Layer`.

use std::time::Duration;

use tower::Layer;
use tta_core::tower::{PrimitiveService, ServicePrimitive};
use tta_core::{PrimitiveName, Telemetry};

use crate::{BuildError, NoFallback, TimeoutPrimitive};

/// Wraps any `tower::Service<I>` in a [`TimeoutPrimitive`] and serves it again as a
/// `Service<I>` whose error type is [`tta_core::Error`].
///
/// The settings are validated when the layer is built, so `layer` cannot fail.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
/// use tta_timeout::TimeoutLayer;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let layer = TimeoutLayer::new(Duration::from_millis(100), Duration::ZERO).unwrap();
/// let svc = layer.layer(tower::service_fn(|x: u32| async move {
///     tokio::time::sleep(Duration::from_secs(1)).await;
///     Ok::<_, std::io::Error>(x)
/// }));
/// assert!(svc.oneshot(1).await.unwrap_err().is_timeout());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TimeoutLayer {
    timeout: Duration,
    grace: Duration,
    name: PrimitiveName,
    telemetry: Option<Telemetry>,
}

impl TimeoutLayer {
    /// A layer with `timeout` and `grace`, named `timeout`.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a zero timeout or a duration above [`crate::MAX_DURATION`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(tta_timeout::TimeoutLayer::new(Duration::ZERO, Duration::ZERO).is_err());
    /// ```
    pub fn new(timeout: Duration, grace: Duration) -> Result<Self, BuildError> {
        Self::validated(timeout, grace, "timeout")
    }

    fn validated(timeout: Duration, grace: Duration, name: &str) -> Result<Self, BuildError> {
        let check = TimeoutPrimitive::builder(())
            .timeout(timeout)
            .grace(grace)
            .name(name)
            .telemetry(&Telemetry::new(
                &opentelemetry::metrics::noop::NoopMeterProvider::new(),
                &opentelemetry::trace::noop::NoopTracerProvider::new(),
            ))
            .build()?;
        Ok(Self {
            timeout: check.timeout,
            grace: check.grace,
            name: check.inst.name().clone(),
            telemetry: None,
        })
    }

    /// Renames the primitive the layer builds.
    ///
    /// # Errors
    ///
    /// [`BuildError::Name`] for an invalid name.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = tta_timeout::TimeoutLayer::new(Duration::from_secs(1), Duration::ZERO).unwrap();
    /// assert!(layer.named("svc timeout").is_err());
    /// ```
    pub fn named(self, name: &str) -> Result<Self, BuildError> {
        Ok(Self {
            name: PrimitiveName::new(name)?,
            ..self
        })
    }

    /// Uses explicit telemetry providers instead of the global ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = tta_timeout::TimeoutLayer::new(Duration::from_secs(1), Duration::ZERO)
    ///     .unwrap()
    ///     .with_telemetry(&tta_core::Telemetry::global());
    /// # let _ = layer;
    /// ```
    pub fn with_telemetry(self, telemetry: &Telemetry) -> Self {
        Self {
            telemetry: Some(telemetry.clone()),
            ..self
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = PrimitiveService<TimeoutPrimitive<ServicePrimitive<S>, NoFallback>>;

    fn layer(&self, service: S) -> Self::Service {
        let telemetry = self.telemetry.clone().unwrap_or_default();
        let inner = ServicePrimitive::new(service).with_telemetry(&telemetry);
        PrimitiveService::new(TimeoutPrimitive::from_parts(
            inner,
            NoFallback,
            self.timeout,
            self.grace,
            self.name.clone(),
            &telemetry,
        ))
    }
}
