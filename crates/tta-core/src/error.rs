//! The one error type every primitive returns.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::ledger::TokenUsage;

/// A boxed error, as used by tower and most async libraries.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The error returned by every [`WorkflowPrimitive`](crate::WorkflowPrimitive).
///
/// Opaque on purpose: match on [`Error::kind`] or use the `is_*` predicates. The source
/// chain is kept, and a user's own error type can be recovered with
/// [`Error::downcast_ref`]. Cloning is cheap (an `Arc` inside), so one failure can be
/// handed to every waiter of a coalesced call.
///
/// # Examples
///
/// ```
/// use tta_core::{Error, ErrorKind};
///
/// #[derive(Debug)]
/// struct QuotaExceeded;
/// impl std::fmt::Display for QuotaExceeded {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("quota exceeded")
///     }
/// }
/// impl std::error::Error for QuotaExceeded {}
///
/// let err = Error::inner(QuotaExceeded);
/// assert_eq!(err.kind(), ErrorKind::Inner);
/// assert!(err.downcast_ref::<QuotaExceeded>().is_some());
/// ```
#[derive(Clone)]
pub struct Error {
    repr: Arc<Repr>,
}

struct Repr {
    kind: ErrorKind,
    /// The class without its retry-after, which lives in `retry_after` (one place).
    class: ErrorClass,
    message: Cow<'static, str>,
    primitive: Option<Arc<str>>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
    billed_usage: Option<TokenUsage>,
    retry_after: Option<std::time::Duration>,
    attempts: Vec<AttemptError>,
}

/// What went wrong, in a bounded set fit for a metric label.
///
/// # Examples
///
/// ```
/// use tta_core::{Error, ErrorKind};
///
/// let err = Error::timeout("llm-call", "no answer within 2s");
/// assert_eq!(err.kind(), ErrorKind::Timeout);
/// assert_eq!(err.kind().as_str(), "timeout");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A timeout primitive gave up on its inner primitive.
    Timeout,
    /// The workflow was cancelled through its [`WorkflowContext`](crate::WorkflowContext).
    Cancelled,
    /// No route could be tried (every route cooling down, or no budget left).
    NoRoute,
    /// Every route that was tried failed; see [`Error::attempts`].
    AllRoutesFailed,
    /// A backing service (a store, an exporter) failed.
    Backend,
    /// A configuration value was rejected.
    InvalidConfig,
    /// The user's own primitive failed; its error is the source.
    Inner,
    /// A limit refused the call before it ran (a budget, a rate or a concurrency limit);
    /// its class is rate limited, with the retry-after when the limit says when it frees.
    Limited,
}

impl ErrorKind {
    /// A stable, low-cardinality name, usable as a metric label value.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::ErrorKind::AllRoutesFailed.as_str(), "all_routes_failed");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::AllRoutesFailed => "all_routes_failed",
            ErrorKind::Backend => "backend",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::Inner => "inner",
            ErrorKind::Limited => "limited",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller may do about an error: the part of an error that decides fallback,
/// health and the HTTP status a gateway answers with.
///
/// | class | typical cause | a router by default |
/// |---|---|---|
/// | `RateLimited` | 429 | falls back; holds the route until `retry_after` |
/// | `Unavailable` | 5xx, connect or reset, a provider timeout | falls back; counts against health |
/// | `InvalidRequest` | 400, 404, 422: the same request fails everywhere | returns it at once |
/// | `ContextLength` | the prompt is longer than the model's window | falls back only to larger windows |
/// | `ContentFilter` | the provider refused the content | returns it at once |
/// | `Auth` | 401, 403 | falls back; cools the route for long |
/// | `Other` | anything unclassified | falls back |
///
/// # Examples
///
/// ```
/// use tta_core::ErrorClass;
///
/// assert_eq!(ErrorClass::from_http_status(503), ErrorClass::Unavailable);
/// assert_eq!(ErrorClass::from_http_status(401), ErrorClass::Auth);
/// assert!(ErrorClass::from_http_status(429).is_rate_limited());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The provider asked to be called less; retry after the hint, if any.
    RateLimited {
        /// How long the provider asked to wait.
        retry_after: Option<std::time::Duration>,
    },
    /// The provider or a dependency is down, overloaded or too slow right now.
    Unavailable,
    /// The request itself is wrong: it fails the same way everywhere.
    InvalidRequest,
    /// The prompt does not fit the model's context window.
    ContextLength,
    /// The provider refused the content.
    ContentFilter,
    /// The credentials were refused.
    Auth,
    /// Not classified.
    Other,
}

impl ErrorClass {
    /// The label value (`rate_limited`, `unavailable`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::ErrorClass::ContextLength.as_str(), "context_length");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited { .. } => "rate_limited",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::ContextLength => "context_length",
            ErrorClass::ContentFilter => "content_filter",
            ErrorClass::Auth => "auth",
            ErrorClass::Other => "other",
        }
    }

    /// The class of an HTTP error status: 429 rate limited; 408, 5xx unavailable;
    /// 401, 403 auth; 400, 404, 413, 422 invalid request; anything else other.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::ErrorClass::from_http_status(422), tta_core::ErrorClass::InvalidRequest);
    /// ```
    pub const fn from_http_status(status: u16) -> Self {
        match status {
            429 => ErrorClass::RateLimited { retry_after: None },
            408 | 500..=599 => ErrorClass::Unavailable,
            401 | 403 => ErrorClass::Auth,
            400 | 404 | 413 | 422 => ErrorClass::InvalidRequest,
            _ => ErrorClass::Other,
        }
    }

    /// The class of an HTTP error response, with the retry-after its headers give:
    /// `retry-after-ms` (milliseconds), else `retry-after` in seconds or as an HTTP date.
    /// Header names are matched without regard to case; a hint that does not parse, or
    /// a date in the past, is no hint.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tta_core::ErrorClass;
    ///
    /// let class = ErrorClass::from_http(429, [("Retry-After", "20")]);
    /// assert_eq!(class, ErrorClass::RateLimited { retry_after: Some(Duration::from_secs(20)) });
    /// let class = ErrorClass::from_http(429, [("retry-after-ms", "1500"), ("retry-after", "9")]);
    /// assert_eq!(class, ErrorClass::RateLimited { retry_after: Some(Duration::from_millis(1500)) });
    /// assert_eq!(ErrorClass::from_http(503, [("retry-after", "soon")]), ErrorClass::Unavailable);
    /// ```
    pub fn from_http<K, V>(status: u16, headers: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        match Self::from_http_status(status) {
            ErrorClass::RateLimited { .. } => ErrorClass::RateLimited {
                retry_after: retry_after(headers),
            },
            class => class,
        }
    }

    /// `true` for [`ErrorClass::RateLimited`], whatever its hint.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!tta_core::ErrorClass::Auth.is_rate_limited());
    /// ```
    pub const fn is_rate_limited(self) -> bool {
        matches!(self, ErrorClass::RateLimited { .. })
    }

    /// Whether the same request may succeed if tried again later or elsewhere:
    /// rate limited, unavailable and other. Invalid requests, context-length and
    /// content-filter errors fail the same way again; refused credentials stay refused.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::ErrorClass::Unavailable.is_retryable());
    /// assert!(!tta_core::ErrorClass::InvalidRequest.is_retryable());
    /// ```
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited { .. } | ErrorClass::Unavailable | ErrorClass::Other
        )
    }

    const fn default_for(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Timeout | ErrorKind::NoRoute | ErrorKind::Backend => ErrorClass::Unavailable,
            ErrorKind::InvalidConfig => ErrorClass::InvalidRequest,
            ErrorKind::Limited => ErrorClass::RateLimited { retry_after: None },
            _ => ErrorClass::Other,
        }
    }

    const fn without_retry_after(self) -> Self {
        match self {
            ErrorClass::RateLimited { .. } => ErrorClass::RateLimited { retry_after: None },
            class => class,
        }
    }
}

/// The retry-after hint of HTTP response headers: `retry-after-ms`, else `retry-after`
/// as seconds or an HTTP date; `None` when absent, unparseable or in the past.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// assert_eq!(tta_core::retry_after([("Retry-After", "3")]), Some(Duration::from_secs(3)));
/// let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
/// let hint = tta_core::retry_after([("retry-after", later.as_str())]).unwrap();
/// assert!(hint > Duration::from_secs(110) && hint <= Duration::from_secs(120));
/// assert_eq!(tta_core::retry_after([("retry-after", "-1")]), None);
/// ```
pub fn retry_after<K, V>(headers: impl IntoIterator<Item = (K, V)>) -> Option<std::time::Duration>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    use std::time::{Duration, SystemTime};
    let (mut ms, mut plain) = (None, None);
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref().trim());
        if name.eq_ignore_ascii_case("retry-after-ms") {
            ms = value.parse::<u64>().ok().map(Duration::from_millis);
        } else if name.eq_ignore_ascii_case("retry-after") {
            plain = match value.parse::<u64>() {
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => httpdate::parse_http_date(value)
                    .ok()
                    .and_then(|at| at.duration_since(SystemTime::now()).ok()),
            };
        }
    }
    ms.or(plain)
}

impl crate::Label for ErrorClass {
    const ALL: &'static [Self] = &[
        ErrorClass::RateLimited { retry_after: None },
        ErrorClass::Unavailable,
        ErrorClass::InvalidRequest,
        ErrorClass::ContextLength,
        ErrorClass::ContentFilter,
        ErrorClass::Auth,
        ErrorClass::Other,
    ];

    fn as_str(self) -> &'static str {
        ErrorClass::as_str(self)
    }

    fn index(self) -> usize {
        match self {
            ErrorClass::RateLimited { .. } => 0,
            ErrorClass::Unavailable => 1,
            ErrorClass::InvalidRequest => 2,
            ErrorClass::ContextLength => 3,
            ErrorClass::ContentFilter => 4,
            ErrorClass::Auth => 5,
            ErrorClass::Other => 6,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed attempt of a router: which route, and how it failed.
///
/// # Examples
///
/// ```
/// use tta_core::{AttemptError, Error};
///
/// let attempt = AttemptError::new("openai", Error::timeout("openai", "slow"));
/// assert_eq!(attempt.route(), "openai");
/// assert!(attempt.error().is_timeout());
/// ```
#[derive(Clone, Debug)]
pub struct AttemptError {
    route: Arc<str>,
    error: Error,
}

impl AttemptError {
    /// Records that `route` failed with `error`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = tta_core::AttemptError::new("b", tta_core::Error::cancelled());
    /// assert!(a.error().is_cancelled());
    /// ```
    pub fn new(route: impl Into<Arc<str>>, error: Error) -> Self {
        Self {
            route: route.into(),
            error,
        }
    }

    /// The route's name.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = tta_core::AttemptError::new("b", tta_core::Error::cancelled());
    /// assert_eq!(a.route(), "b");
    /// ```
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The route's error.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = tta_core::AttemptError::new("b", tta_core::Error::cancelled());
    /// assert_eq!(a.error().kind(), tta_core::ErrorKind::Cancelled);
    /// ```
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            repr: Arc::new(Repr {
                kind,
                class: ErrorClass::default_for(kind),
                message: message.into(),
                primitive: None,
                source: None,
                billed_usage: None,
                retry_after: None,
                attempts: Vec::new(),
            }),
        }
    }

    fn map_repr(self, f: impl FnOnce(&mut Repr)) -> Self {
        let mut repr = match Arc::try_unwrap(self.repr) {
            Ok(repr) => repr,
            Err(shared) => Repr {
                kind: shared.kind,
                class: shared.class,
                message: shared.message.clone(),
                primitive: shared.primitive.clone(),
                source: shared.source.clone(),
                billed_usage: shared.billed_usage,
                retry_after: shared.retry_after,
                attempts: shared.attempts.clone(),
            },
        };
        f(&mut repr);
        Self {
            repr: Arc::new(repr),
        }
    }

    /// The primitive named `primitive` gave up waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_core::Error::timeout("llm", "hard limit of 3s reached");
    /// assert!(err.is_timeout());
    /// assert_eq!(err.primitive(), Some("llm"));
    /// ```
    pub fn timeout(primitive: impl Into<Arc<str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Timeout, message).with_primitive(primitive)
    }

    /// The workflow was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::cancelled().is_cancelled());
    /// ```
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "workflow cancelled")
    }

    /// No route could be tried.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::no_route("every route is cooling down").is_no_route());
    /// ```
    pub fn no_route(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NoRoute, message)
    }

    /// A limit named `primitive` refused the call before it ran. Its class is
    /// [`ErrorClass::RateLimited`] (add the hint with [`Error::with_retry_after`]); a
    /// router that gets it from a route falls back without holding the route against
    /// other callers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = tta_core::Error::limited("tenant_budget", "no USD left in this window")
    ///     .with_retry_after(Duration::from_secs(30));
    /// assert!(err.is_limited());
    /// assert!(err.class().is_rate_limited());
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    /// ```
    pub fn limited(primitive: impl Into<Arc<str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Limited, message).with_primitive(primitive)
    }

    /// Every route that was tried failed; each attempt is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{AttemptError, Error};
    ///
    /// let err = Error::all_routes_failed(vec![
    ///     AttemptError::new("a", Error::msg("503")),
    ///     AttemptError::new("b", Error::timeout("b", "slow")),
    /// ]);
    /// assert!(err.is_all_routes_failed());
    /// assert_eq!(err.attempts().len(), 2);
    /// ```
    pub fn all_routes_failed(attempts: Vec<AttemptError>) -> Self {
        let message = format!("all {} attempted routes failed", attempts.len());
        Self::new(ErrorKind::AllRoutesFailed, message).map_repr(|r| r.attempts = attempts)
    }

    /// A backing service failed (a store, an exporter); the cause is kept as the source.
    ///
    /// # Examples
    ///
    /// ```
    /// let io = std::io::Error::other("connection refused");
    /// let err = tta_core::Error::backend(io);
    /// assert!(err.is_backend());
    /// assert!(err.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn backend(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::new(ErrorKind::Backend, "backend failure").with_source(source)
    }

    /// A configuration value was rejected; the typed cause is kept as the source.
    ///
    /// # Examples
    ///
    /// ```
    /// let cause = tta_core::PrimitiveName::new("").unwrap_err();
    /// let err = tta_core::Error::invalid_config(cause);
    /// assert!(err.is_invalid_config());
    /// ```
    pub fn invalid_config(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::new(ErrorKind::InvalidConfig, "invalid configuration").with_source(source)
    }

    /// Wraps a user's error without losing its type.
    ///
    /// An `Error` passed in is returned unchanged, so wrapping twice keeps the kind.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_core::Error::inner(std::fmt::Error);
    /// assert!(err.is_inner());
    /// assert!(err.downcast_ref::<std::fmt::Error>().is_some());
    /// ```
    pub fn inner(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::from_boxed(Box::new(source))
    }

    /// Wraps a boxed error (tower's `BoxError`); an `Error` inside is unwrapped, not nested.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{BoxError, Error};
    ///
    /// let boxed: BoxError = Box::new(Error::cancelled());
    /// assert!(Error::from_boxed(boxed).is_cancelled());
    /// ```
    pub fn from_boxed(source: BoxError) -> Self {
        match source.downcast::<Error>() {
            Ok(err) => *err,
            Err(source) => Self::new(ErrorKind::Inner, "inner primitive failed").map_repr(|r| {
                r.source = Some(Arc::from(source));
            }),
        }
    }

    /// An inner failure described only by a message.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_core::Error::msg("provider returned 503");
    /// assert!(err.is_inner());
    /// assert_eq!(err.to_string(), "inner: provider returned 503");
    /// ```
    pub fn msg(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Inner, message)
    }

    /// Names the primitive that produced this error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_core::Error::msg("boom").with_primitive("step-1");
    /// assert_eq!(err.primitive(), Some("step-1"));
    /// ```
    pub fn with_primitive(self, primitive: impl Into<Arc<str>>) -> Self {
        self.map_repr(|r| r.primitive = Some(primitive.into()))
    }

    /// Attaches a source error (the cause).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error as _;
    /// let err = tta_core::Error::msg("read failed").with_source(std::fmt::Error);
    /// assert!(err.source().is_some());
    /// ```
    pub fn with_source(self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.map_repr(|r| r.source = Some(Arc::new(source)))
    }

    /// Keeps the attempts that failed before this error (a router that ran out of time
    /// after some failed, say); see [`Error::attempts`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{AttemptError, Error};
    /// let err = Error::timeout("router", "no time left")
    ///     .with_attempts(vec![AttemptError::new("a", Error::msg("503"))]);
    /// assert_eq!(err.attempts().len(), 1);
    /// ```
    pub fn with_attempts(self, attempts: Vec<AttemptError>) -> Self {
        self.map_repr(|r| r.attempts = attempts)
    }

    /// Records that the failed call was still billed for these tokens (a provider that
    /// charged for a prompt and then failed). Routers record it as a failed-but-billed
    /// attempt in the cost ledger.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Error, TokenUsage};
    ///
    /// let err = Error::msg("stream cut").with_billed_usage(TokenUsage::new(1200, 40));
    /// assert_eq!(err.billed_usage(), Some(TokenUsage::new(1200, 40)));
    /// ```
    pub fn with_billed_usage(self, usage: TokenUsage) -> Self {
        self.map_repr(|r| r.billed_usage = Some(usage))
    }

    /// Records a provider's hint that it should not be called again for `after` (an HTTP
    /// `Retry-After`, say). Routers cool the route down for at least that long.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = tta_core::Error::msg("429").with_retry_after(Duration::from_secs(20));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(20)));
    /// ```
    pub fn with_retry_after(self, after: std::time::Duration) -> Self {
        self.map_repr(|r| r.retry_after = Some(after))
    }

    /// An error from an HTTP response: its class from the status and headers
    /// ([`ErrorClass::from_http`]), with `message` (bounded by the caller: a provider's
    /// error message, never a whole body).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = tta_core::Error::http(429, [("retry-after", "7")], "rate limit reached");
    /// assert!(err.class().is_rate_limited());
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    /// assert_eq!(err.to_string(), "inner: rate limit reached");
    /// ```
    pub fn http<K, V>(
        status: u16,
        headers: impl IntoIterator<Item = (K, V)>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::msg(message).with_class(ErrorClass::from_http(status, headers))
    }

    /// The provider's retry-after hint, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Error::msg("x").retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.repr.retry_after
    }

    /// Sets what a caller may do about this error (see [`ErrorClass`]); provider clients
    /// set it from the HTTP status and body, users on their own errors. A class of
    /// [`ErrorClass::RateLimited`] with a retry-after also sets [`Error::retry_after`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tta_core::{Error, ErrorClass};
    ///
    /// let err = Error::msg("slow down").with_class(ErrorClass::RateLimited { retry_after: Some(Duration::from_secs(3)) });
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    /// assert_eq!(err.class().as_str(), "rate_limited");
    /// ```
    pub fn with_class(self, class: ErrorClass) -> Self {
        self.map_repr(|r| {
            if let ErrorClass::RateLimited {
                retry_after: Some(after),
            } = class
            {
                r.retry_after = Some(after);
            }
            r.class = class.without_retry_after();
        })
    }

    /// What a caller may do about this error. Errors that no one classified are
    /// [`ErrorClass::Other`], except timeouts (their primitive's dependency was
    /// [`ErrorClass::Unavailable`] in time) and invalid configurations
    /// ([`ErrorClass::InvalidRequest`]: the same request fails again).
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Error, ErrorClass};
    /// assert_eq!(Error::msg("boom").class(), ErrorClass::Other);
    /// assert_eq!(Error::timeout("t", "late").class(), ErrorClass::Unavailable);
    /// ```
    pub fn class(&self) -> ErrorClass {
        match self.repr.class {
            ErrorClass::RateLimited { .. } => ErrorClass::RateLimited {
                retry_after: self.repr.retry_after,
            },
            class => class,
        }
    }

    /// What went wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Error::cancelled().kind(), tta_core::ErrorKind::Cancelled);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.repr.kind
    }

    /// The primitive that produced this error, when known.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Error::cancelled().primitive(), None);
    /// ```
    pub fn primitive(&self) -> Option<&str> {
        self.repr.primitive.as_deref()
    }

    /// Tokens a provider billed for the failed call, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Error::msg("x").billed_usage(), None);
    /// ```
    pub fn billed_usage(&self) -> Option<TokenUsage> {
        self.repr.billed_usage
    }

    /// For [`ErrorKind::AllRoutesFailed`]: every attempt in order; empty otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::msg("x").attempts().is_empty());
    /// ```
    pub fn attempts(&self) -> &[AttemptError] {
        &self.repr.attempts
    }

    /// Finds an error of type `T` in the source chain.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = tta_core::Error::inner(std::fmt::Error);
    /// assert!(err.downcast_ref::<std::fmt::Error>().is_some());
    /// assert!(err.downcast_ref::<std::io::Error>().is_none());
    /// ```
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        let mut next: Option<&(dyn StdError + 'static)> = self
            .repr
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static));
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<T>() {
                return Some(found);
            }
            next = err.source();
        }
        None
    }

    /// `true` for [`ErrorKind::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::timeout("t", "late").is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// `true` for [`ErrorKind::Limited`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!tta_core::Error::cancelled().is_limited());
    /// ```
    pub fn is_limited(&self) -> bool {
        self.kind() == ErrorKind::Limited
    }

    /// `true` for [`ErrorKind::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::cancelled().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// `true` for [`ErrorKind::NoRoute`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!tta_core::Error::cancelled().is_no_route());
    /// ```
    pub fn is_no_route(&self) -> bool {
        self.kind() == ErrorKind::NoRoute
    }

    /// `true` for [`ErrorKind::AllRoutesFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::all_routes_failed(vec![]).is_all_routes_failed());
    /// ```
    pub fn is_all_routes_failed(&self) -> bool {
        self.kind() == ErrorKind::AllRoutesFailed
    }

    /// `true` for [`ErrorKind::Backend`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::backend(std::fmt::Error).is_backend());
    /// ```
    pub fn is_backend(&self) -> bool {
        self.kind() == ErrorKind::Backend
    }

    /// `true` for [`ErrorKind::InvalidConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::invalid_config(std::fmt::Error).is_invalid_config());
    /// ```
    pub fn is_invalid_config(&self) -> bool {
        self.kind() == ErrorKind::InvalidConfig
    }

    /// `true` for [`ErrorKind::Inner`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Error::msg("x").is_inner());
    /// ```
    pub fn is_inner(&self) -> bool {
        self.kind() == ErrorKind::Inner
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.repr.kind)
            .field("class", &self.class())
            .field("message", &self.repr.message);
        if let Some(p) = &self.repr.primitive {
            d.field("primitive", p);
        }
        if let Some(s) = &self.repr.source {
            d.field("source", s);
        }
        if let Some(u) = &self.repr.billed_usage {
            d.field("billed_usage", u);
        }
        if let Some(after) = &self.repr.retry_after {
            d.field("retry_after", after);
        }
        if !self.repr.attempts.is_empty() {
            d.field("attempts", &self.repr.attempts);
        }
        d.finish()
    }
}

/// The longest message of one attempt that `Display` shows, in bytes.
const MAX_ATTEMPT_MESSAGE: usize = 256;

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn bounded(text: &str, max: usize) -> (&str, &'static str) {
    if text.len() <= max {
        return (text, "");
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], "...")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repr.kind)?;
        if let Some(p) = &self.repr.primitive {
            write!(f, " in `{p}`")?;
        }
        write!(f, ": {}", self.repr.message)?;
        for attempt in &self.repr.attempts {
            // Each route with its class and its own message, bounded: the provider's
            // words, never a whole response body.
            let inner = &attempt.error.repr;
            let (message, cut) = bounded(&inner.message, MAX_ATTEMPT_MESSAGE);
            write!(
                f,
                "; {} ({}): {message}{cut}",
                attempt.route,
                attempt.error.class()
            )?;
            if let Some(source) = &inner.source {
                let source = source.to_string();
                let (source, cut) = bounded(&source, MAX_ATTEMPT_MESSAGE);
                write!(f, " ({source}{cut})")?;
            }
        }
        Ok(())
    }
}

impl StdError for Error {
    /// The cause; for an error with attempts and no cause of its own, the last attempt's
    /// error.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.repr.source {
            Some(source) => Some(&**source as &(dyn StdError + 'static)),
            None => self
                .repr
                .attempts
                .last()
                .map(|a| &a.error as &(dyn StdError + 'static)),
        }
    }
}
