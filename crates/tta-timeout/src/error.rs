//! Errors of the timeout primitive.

use std::time::Duration;

use tta_core::InvalidName;

/// Why a [`TimeoutPrimitive`](crate::TimeoutPrimitive) could not be built.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::{from_fn, Error};
/// use tta_timeout::{BuildError, TimeoutPrimitive};
///
/// let inner = from_fn(|(), _| async { Ok::<_, Error>(()) });
/// let err = TimeoutPrimitive::builder(inner).timeout(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err, BuildError::Zero { setting: "timeout" });
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No timeout was set.
    #[error("no timeout was set; call `.timeout(..)`")]
    MissingTimeout,
    /// The timeout, or a stream limit, is zero.
    #[error("{setting} must be greater than zero")]
    Zero {
        /// `timeout`, `idle` or `total`.
        setting: &'static str,
    },
    /// A duration given in seconds is negative, NaN or infinite.
    #[error("{setting} must be a finite, non-negative number of seconds, got {value}")]
    NotFinite {
        /// `timeout`, `grace`, `idle` or `total`.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A duration is above [`MAX_DURATION`](crate::MAX_DURATION).
    #[error("{setting} of {value:?} is above the maximum of {max:?}")]
    TooLong {
        /// `timeout`, `grace`, `idle` or `total`.
        setting: &'static str,
        /// The value given.
        value: Duration,
        /// [`MAX_DURATION`](crate::MAX_DURATION), the longest accepted.
        max: Duration,
    },
    /// The name is not a valid primitive name.
    #[error("invalid name: {0}")]
    Name(#[from] InvalidName),
}

impl From<BuildError> for tta_core::Error {
    fn from(e: BuildError) -> Self {
        tta_core::Error::invalid_config(e)
    }
}

/// The source of a timeout primitive's own timeout error: recover it with
/// `err.downcast_ref::<Elapsed>()` to tell this primitive's timeout from an inner
/// primitive's error of kind timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_core::{from_fn, Error, WorkflowContext};
/// use tta_timeout::{Elapsed, TimeoutPrimitive};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let hang = from_fn(|(), _| async { std::future::pending::<Result<(), Error>>().await });
/// let t = TimeoutPrimitive::builder(hang).timeout(Duration::from_secs(1)).build().unwrap();
/// let err = t.execute((), &WorkflowContext::new()).await.unwrap_err();
/// assert!(err.is_timeout());
/// assert_eq!(err.downcast_ref::<Elapsed>().unwrap().limit(), Duration::from_secs(1));
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no result within {limit:?} (timeout plus grace{})", if *.shrunk { ", shortened by the caller's deadline" } else { "" })]
pub struct Elapsed {
    pub(crate) limit: std::time::Duration,
    pub(crate) shrunk: bool,
}

impl Elapsed {
    /// The limit that was reached: timeout plus grace, or less when the caller's
    /// deadline was nearer.
    ///
    /// # Examples
    ///
    /// See [`Elapsed`].
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// `true` when the caller's deadline, not this primitive's own limit, was reached.
    ///
    /// # Examples
    ///
    /// See [`Elapsed`].
    pub fn shortened_by_caller(&self) -> bool {
        self.shrunk
    }
}
