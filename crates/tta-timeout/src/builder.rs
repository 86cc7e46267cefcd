//! Configuration of the timeout, validated once in `build`: into a [`TimeoutLayer`], or
//! straight into a [`TimeoutPrimitive`] around an inner primitive.

use std::time::Duration;

use tta_core::{Around, Layer, PrimitiveName, Standalone, Telemetry};

use crate::{BuildError, NoFallback, TimeoutPrimitive, WithFallback};

/// Builds a [`TimeoutLayer`] (made by [`TimeoutLayer::builder`]) or, as sugar over the
/// same settings, a [`TimeoutPrimitive`] around an inner primitive (made by
/// [`TimeoutPrimitive::builder`]). Setters only store; `build` validates once.
///
/// | setting | default | rule |
/// |---|---|---|
/// | `timeout` | required | above zero, at most [`MAX_DURATION`](crate::MAX_DURATION) |
/// | `grace` | zero | at most [`MAX_DURATION`](crate::MAX_DURATION) |
/// | `name` | `timeout` | a valid primitive name |
/// | `telemetry` | [`Telemetry::global`] | |
/// | `fallback` | none | a primitive run on a copy of the input at the hard limit (calls only) |
/// | `idle` | none | streams: the longest gap between two chunks, above zero |
/// | `total` | none | streams: the longest a whole stream may last, above zero |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::{from_fn, Error};
/// use tta_timeout::TimeoutPrimitive;
///
/// let llm = from_fn(|q: String, _| async move { Ok::<_, Error>(q) });
/// let fallback = from_fn(|_q: String, _| async move { Ok::<_, Error>("cached answer".to_owned()) });
/// let guarded = TimeoutPrimitive::builder(llm)
///     .name("llm_timeout")
///     .timeout(Duration::from_secs(2))
///     .grace(Duration::from_millis(500))
///     .fallback(fallback)
///     .build()?;
/// assert_eq!(guarded.timeout(), Duration::from_secs(2));
/// # Ok::<(), tta_timeout::BuildError>(())
/// ```
#[must_use]
#[derive(Debug)]
pub struct TimeoutBuilder<T = Standalone, F = NoFallback> {
    target: T,
    fallback: F,
    settings: Settings,
}

/// The settings that do not change the builder's type.
#[derive(Debug)]
struct Settings {
    timeout: Option<Result<Duration, BuildError>>,
    grace: Result<Duration, BuildError>,
    idle: Option<Duration>,
    total: Option<Duration>,
    name: String,
    telemetry: Option<Telemetry>,
}

fn from_secs(setting: &'static str, secs: f64) -> Result<Duration, BuildError> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(BuildError::NotFinite {
            setting,
            value: secs,
        });
    }
    Duration::try_from_secs_f64(secs).map_err(|_| BuildError::TooLong {
        setting,
        value: Duration::MAX,
        max: crate::MAX_DURATION,
    })
}

impl<T> TimeoutBuilder<T> {
    pub(crate) fn new(target: T) -> Self {
        Self {
            target,
            fallback: NoFallback,
            settings: Settings {
                timeout: None,
                grace: Ok(Duration::ZERO),
                idle: None,
                total: None,
                name: "timeout".to_owned(),
                telemetry: None,
            },
        }
    }
}

impl<T, F> TimeoutBuilder<T, F> {
    /// When the call is marked late (phase one). Required.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = Some(Ok(timeout));
        self
    }

    /// The timeout in seconds; a negative, NaN or infinite value is a build error.
    pub fn timeout_secs(mut self, secs: f64) -> Self {
        self.settings.timeout = Some(from_secs("timeout", secs));
        self
    }

    /// How long a late call may still run before it is cancelled (phase two). Default zero.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.settings.grace = Ok(grace);
        self
    }

    /// The grace in seconds; a negative, NaN or infinite value is a build error.
    pub fn grace_secs(mut self, secs: f64) -> Self {
        self.settings.grace = from_secs("grace", secs);
        self
    }

    /// Streams: the longest wait for the next chunk once the first has arrived; a gap
    /// longer than this cuts the stream with a timeout error.
    pub fn idle(mut self, idle: Duration) -> Self {
        self.settings.idle = Some(idle);
        self
    }

    /// Streams: the longest a whole stream may last, from the start of the execution; a
    /// stream still running then is cut with a timeout error.
    pub fn total(mut self, total: Duration) -> Self {
        self.settings.total = Some(total);
        self
    }

    /// The primitive's name (a metric label). Default `timeout`.
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.settings.name);
        self
    }

    /// Explicit telemetry providers instead of the global ones.
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.settings.telemetry = Some(telemetry.clone());
        self
    }

    /// Runs `fallback` on a copy of the input when the hard limit is reached (the input
    /// type must then be `Clone`).
    pub fn fallback<G>(self, fallback: G) -> TimeoutBuilder<T, WithFallback<G>> {
        TimeoutBuilder {
            target: self.target,
            fallback: WithFallback(fallback),
            settings: self.settings,
        }
    }

    fn validate(self) -> Result<(T, TimeoutLayer<F>), BuildError> {
        let max = crate::MAX_DURATION;
        let s = self.settings;
        let timeout = s.timeout.ok_or(BuildError::MissingTimeout)??;
        if timeout.is_zero() {
            return Err(BuildError::Zero { setting: "timeout" });
        }
        let grace = s.grace?;
        for (setting, value) in [("idle", s.idle), ("total", s.total)] {
            if value.is_some_and(|v| v.is_zero()) {
                return Err(BuildError::Zero { setting });
            }
        }
        let limits = [
            ("timeout", Some(timeout)),
            ("grace", Some(grace)),
            ("idle", s.idle),
            ("total", s.total),
        ];
        for (setting, value) in limits.into_iter().filter_map(|(s, v)| Some((s, v?))) {
            if value > max {
                return Err(BuildError::TooLong {
                    setting,
                    value,
                    max,
                });
            }
        }
        let layer = TimeoutLayer {
            timeout,
            grace,
            idle: s.idle,
            total: s.total,
            name: PrimitiveName::new(&s.name)?,
            telemetry: s.telemetry.unwrap_or_default(),
            fallback: self.fallback,
        };
        Ok((self.target, layer))
    }
}

impl<F> TimeoutBuilder<Standalone, F> {
    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when the timeout is missing or zero, a duration is negative,
    /// non-finite or above [`MAX_DURATION`](crate::MAX_DURATION), or the name is invalid.
    pub fn build(self) -> Result<TimeoutLayer<F>, BuildError> {
        self.validate().map(|(Standalone, layer)| layer)
    }
}

impl<P, F> TimeoutBuilder<Around<P>, F> {
    /// Validates the settings and builds the timeout around the inner primitive.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when the timeout is missing or zero, a duration is negative,
    /// non-finite or above [`MAX_DURATION`](crate::MAX_DURATION), or the name is invalid.
    pub fn build(self) -> Result<TimeoutPrimitive<P, F>, BuildError> {
        let (Around(inner), layer) = self.validate()?;
        Ok(layer.wrap(inner))
    }
}

/// The timeout's validated settings, and its [`Layer`]: a [`TimeoutPrimitive`] around
/// whatever it wraps. Made by [`TimeoutLayer::builder`].
///
/// # Examples
///
/// A timeout around a cache around a router, in the order a request travels:
///
/// ```
/// use std::time::Duration;
/// use tta_core::{from_fn, Error, Stack, WorkflowContext};
/// use tta_timeout::TimeoutLayer;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let timeout = TimeoutLayer::builder().timeout(Duration::from_secs(1)).build()?;
/// let hangs = from_fn(|(), _| std::future::pending::<Result<(), Error>>());
/// let stack = Stack::new().layer(timeout).into_primitive(hangs);
/// let err = stack.execute((), &WorkflowContext::new()).await.unwrap_err();
/// assert_eq!(err.primitive(), Some("timeout"));
/// # Ok(()) }
/// ```
///
/// As a tower layer: `tta_core::tower::TowerLayer::new(timeout)` (feature `tower`).
#[derive(Clone, Debug)]
pub struct TimeoutLayer<F = NoFallback> {
    pub(crate) timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) idle: Option<Duration>,
    pub(crate) total: Option<Duration>,
    pub(crate) name: PrimitiveName,
    pub(crate) telemetry: Telemetry,
    pub(crate) fallback: F,
}

impl TimeoutLayer {
    /// Starts configuring a timeout layer.
    pub fn builder() -> TimeoutBuilder<Standalone> {
        TimeoutBuilder::new(Standalone)
    }
}

impl<F> TimeoutLayer<F> {
    /// When a call is marked late.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a late call may still run.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Builds the primitive around `inner`, consuming the settings.
    pub(crate) fn wrap<P>(self, inner: P) -> TimeoutPrimitive<P, F> {
        TimeoutPrimitive::from_layer(inner, self)
    }
}

impl<P, F: Clone> Layer<P> for TimeoutLayer<F> {
    type Primitive = TimeoutPrimitive<P, F>;

    fn layer(&self, inner: P) -> Self::Primitive {
        self.clone().wrap(inner)
    }
}
