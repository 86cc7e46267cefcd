//! From HTTP responses and transport failures to tta's error classes.

use reqwest::header::HeaderMap;
use tta_core::{Error, ErrorClass};

/// The longest provider message kept in an error, in characters: the provider's words,
/// never a whole body.
const MAX_MESSAGE: usize = 300;

/// Why a client could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an `http://` or `https://` URL.
    #[error("invalid base URL {0:?}: expected http:// or https://")]
    BaseUrl(String),
    /// The API key's environment variable is not set (or not UTF-8).
    #[error("the API key variable {0} is not set")]
    MissingKey(String),
    /// A header name or value cannot be sent.
    #[error("invalid header {0:?}")]
    Header(String),
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
/// headers (`Retry-After`, `retry-after-ms`) and the provider's error code or message
/// (context length, content filter); its message the provider's own, bounded. A body
/// that is not the provider's JSON (a proxy's HTML page) is described, never copied.
pub(crate) fn from_response(status: u16, headers: &HeaderMap, body: &str) -> Error {
    let pairs = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let mut class = ErrorClass::from_http(status, pairs);
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
