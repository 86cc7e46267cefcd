//! Configuration of the timeout primitive, validated once in `build`.

use std::time::Duration;

use tta_core::{PrimitiveName, Telemetry};

use crate::{BuildError, NoFallback, TimeoutPrimitive, WithFallback};

/// Builds a [`TimeoutPrimitive`]; made by [`TimeoutPrimitive::builder`].
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
///     .build()
///     .unwrap();
/// assert_eq!(guarded.timeout(), Duration::from_secs(2));
/// ```
#[must_use]
#[derive(Debug)]
pub struct TimeoutBuilder<P, F = NoFallback> {
    inner: P,
    fallback: F,
    timeout: Option<Result<Duration, BuildError>>,
    grace: Result<Duration, BuildError>,
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

impl<P> TimeoutBuilder<P, NoFallback> {
    pub(crate) fn new(inner: P) -> Self {
        Self {
            inner,
            fallback: NoFallback,
            timeout: None,
            grace: Ok(Duration::ZERO),
            name: "timeout".to_owned(),
            telemetry: None,
        }
    }
}

impl<P, F> TimeoutBuilder<P, F> {
    /// When the call is marked late (phase one). Required.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(Ok(timeout));
        self
    }

    /// The timeout in seconds; a negative, NaN or infinite value is a build error.
    pub fn timeout_secs(mut self, secs: f64) -> Self {
        self.timeout = Some(from_secs("timeout", secs));
        self
    }

    /// How long a late call may still run before it is cancelled (phase two). Default zero.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Ok(grace);
        self
    }

    /// The grace in seconds; a negative, NaN or infinite value is a build error.
    pub fn grace_secs(mut self, secs: f64) -> Self {
        self.grace = from_secs("grace", secs);
        self
    }

    /// The primitive's name (a metric label). Default `timeout`.
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Uses explicit telemetry providers instead of the global ones.
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = Some(telemetry.clone());
        self
    }

    /// Runs `fallback` on a copy of the input when the hard limit is reached (the input
    /// type must then be `Clone`).
    pub fn fallback<G>(self, fallback: G) -> TimeoutBuilder<P, WithFallback<G>> {
        TimeoutBuilder {
            inner: self.inner,
            fallback: WithFallback(fallback),
            timeout: self.timeout,
            grace: self.grace,
            name: self.name,
            telemetry: self.telemetry,
        }
    }

    /// Validates the settings and builds the primitive.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when the timeout is missing or zero, a duration is negative,
    /// non-finite or above [`TimeoutPrimitive::MAX_DURATION`], or the name is invalid.
    pub fn build(self) -> Result<TimeoutPrimitive<P, F>, BuildError> {
        let max = crate::MAX_DURATION;
        let timeout = self.timeout.ok_or(BuildError::MissingTimeout)??;
        if timeout.is_zero() {
            return Err(BuildError::Zero { setting: "timeout" });
        }
        let grace = self.grace?;
        for (setting, value) in [("timeout", timeout), ("grace", grace)] {
            if value > max {
                return Err(BuildError::TooLong {
                    setting,
                    value,
                    max,
                });
            }
        }
        let name = PrimitiveName::new(&self.name)?;
        let telemetry = self.telemetry.unwrap_or_default();
        Ok(TimeoutPrimitive::from_parts(
            self.inner,
            self.fallback,
            timeout,
            grace,
            name,
            &telemetry,
        ))
    }
}
