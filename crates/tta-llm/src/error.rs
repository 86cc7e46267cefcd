//! From HTTP responses and transport failures to tta's error classes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tta_core::{Error, ErrorClass};

/// The longest provider message kept in an error, in characters: the provider's words,
/// never a whole body.
const MAX_MESSAGE: usize = 300;

/// Why a client could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an `http://` or `https://` URL, or the endpoint under it
    /// does not parse as a URL.
    #[error("invalid base URL {0:?}: expected an http:// or https:// URL")]
    BaseUrl(String),
    /// The API key's environment variable is not set (or not UTF-8).
    #[error("the API key variable {0} is not set")]
    MissingKey(String),
    /// A header name or value cannot be sent.
    #[error("invalid header {0:?}")]
    Header(String),
    /// A price is negative, NaN or infinite.
    #[error("{what} must be a finite, non-negative number of dollars, got {value}")]
    Price {
        /// Which price (input, output or per call).
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// The context window is zero.
    #[error("context_window must be at least 1 token")]
    ContextWindow,
    /// `max_tokens` is zero.
    #[error("max_tokens must be at least 1")]
    MaxTokens,
    /// The client's name is not a valid primitive name.
    #[error("invalid client name: {0}")]
    Name(tta_core::InvalidName),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Http(String),
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Error::invalid_config(e)
    }
}

fn bounded(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_MESSAGE).collect();
    if text.chars().nth(MAX_MESSAGE).is_some() {
        out.push_str("...");
    }
    out
}

/// The error of a response with a failing status: its class from the status, the
/// headers (`Retry-After`, `retry-after-ms`, else the reset headers) and the provider's error code or message
/// (context length, content filter); its message the provider's own, bounded. A body
/// that is not the provider's JSON (a proxy's HTML page) is described, never copied.
pub(crate) fn from_response(status: u16, headers: &HeaderMap, body: &str) -> Error {
    let pairs = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let mut class = ErrorClass::from_http(status, pairs);
    if class == (ErrorClass::RateLimited { retry_after: None }) {
        class = ErrorClass::RateLimited {
            retry_after: reset_after(headers),
        };
    }
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (message, code, kind) = (field("message"), field("code"), field("type"));
    if matches!(class, ErrorClass::InvalidRequest | ErrorClass::Other) {
        let said = format!("{code} {kind} {message}").to_ascii_lowercase();
        if said.contains("context_length")
            || said.contains("context length")
            || said.contains("maximum context")
            || said.contains("prompt is too long")
        {
            class = ErrorClass::ContextLength;
        } else if said.contains("content_filter") || said.contains("content_policy") {
            class = ErrorClass::ContentFilter;
        }
    }
    let message = if message.is_empty() {
        match parsed {
            Some(_) => format!("HTTP {status}"),
            None => format!(
                "HTTP {status} with a body that is not JSON ({} bytes)",
                body.len()
            ),
        }
    } else {
        format!("HTTP {status}: {}", bounded(&message))
    };
    Error::msg(message).with_class(class)
}

/// OpenAI's reset headers: durations.
const OPENAI_RESETS: [&str; 2] = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"];

/// Anthropic's reset headers: RFC 3339 times.
const ANTHROPIC_RESETS: [&str; 4] = [
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
];

/// When a rate limit resets, from the provider's reset headers where no `Retry-After`
/// was sent: OpenAI's `x-ratelimit-reset-*` (durations such as `1s`, `6m0s`, `20ms`,
/// `1h2m3.5s`) and Anthropic's `anthropic-ratelimit-*-reset` (RFC 3339 times, counted
/// from the response's `Date`, else this machine's clock); the latest of them, since
/// the request needs every limit.
fn reset_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &&str| headers.get(*name)?.to_str().ok();
    let openai = OPENAI_RESETS
        .iter()
        .filter_map(header)
        .filter_map(go_duration);
    let now = header(&"date")
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(SystemTime::now);
    let anthropic = ANTHROPIC_RESETS
        .iter()
        .filter_map(header)
        .filter_map(|at| until(at, now));
    openai.chain(anthropic).max()
}

/// The time from `now` to the RFC 3339 time `at` (zero for a time that has passed);
/// `None` for a text that is not one.
fn until(at: &str, now: SystemTime) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(at.trim()).ok()?;
    let at_ms = u64::try_from(at.timestamp_millis()).ok()?;
    let now_ms = now.duration_since(UNIX_EPOCH).ok()?.as_millis();
    let now_ms = u64::try_from(now_ms).ok()?;
    Some(Duration::from_millis(at_ms.saturating_sub(now_ms)))
}

/// A duration as Go prints it (`1h2m3.5s`, `6m0s`, `20ms`); `None` for anything else.
fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The error of a request that got no response: a timeout, a refused or reset
/// connection. The source is kept (it names the URL, never the key).
pub(crate) fn from_transport(client: &str, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::timeout(client.to_owned(), "the provider did not answer in time")
            .with_source(e);
    }
    Error::msg("the provider could not be reached")
        .with_class(ErrorClass::Unavailable)
        .with_source(e)
}

/// A response or a chunk the client cannot read: the provider's fault, not the request's.
pub(crate) fn malformed(what: &'static str) -> Error {
    Error::msg(what).with_class(ErrorClass::Unavailable)
}
