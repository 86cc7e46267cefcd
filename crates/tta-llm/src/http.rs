//! What both clients share: the settings every builder has, the pooled HTTP client, the
//! POST with its deadline and error mapping, and the GenAI span attributes.

use std::sync::{Arc, Once};

use eventsource_stream::Eventsource;
use opentelemetry::KeyValue;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tta_core::semconv::gen_ai;
use tta_core::{
    Error, ErrorClass, Instrumentation, Price, PrimitiveName, Streamed, Telemetry, WorkflowContext,
};

use crate::error::{BuildError, from_response, from_transport, malformed};
use crate::sse::{self, Step};
use crate::types::{ChatChunk, ChatRequest, ChatResponse, FinishReason, ToolCall};

/// Where an API key comes from.
#[derive(Clone)]
pub(crate) enum Key {
    Value(String),
    Env(String),
}

/// The settings of every client's builder; the setters are [`settings_setters`].
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) base_url: String,
    pub(crate) key: Option<Key>,
    pub(crate) model: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) provider: String,
    pub(crate) name: String,
    pub(crate) telemetry: Option<Telemetry>,
    pub(crate) price: Price,
    pub(crate) context_window: Option<u64>,
    pub(crate) capture_content: bool,
    /// Idle connections kept per host (`None`: reqwest's default, no bound).
    pub(crate) max_idle: Option<usize>,
}

/// The setters every client builder has, over its `settings` field.
macro_rules! settings_setters {
    () => {
        /// The API key.
        pub fn api_key(mut self, key: impl Into<String>) -> Self {
            self.settings.key = Some(crate::http::Key::Value(key.into()));
            self
        }

        /// The API key, read from environment variable `var` when the client is built.
        pub fn api_key_env(mut self, var: impl Into<String>) -> Self {
            self.settings.key = Some(crate::http::Key::Env(var.into()));
            self
        }

        /// The model of requests that name none.
        pub fn model(mut self, model: impl Into<String>) -> Self {
            self.settings.model = Some(model.into());
            self
        }

        /// A header sent with every request.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.settings.headers.push((name.into(), value.into()));
            self
        }

        /// The provider's name for telemetry (`gen_ai.provider.name`).
        pub fn provider(mut self, provider: impl Into<String>) -> Self {
            self.settings.provider = provider.into();
            self
        }

        /// The primitive's name (a metric label; default `llm`).
        pub fn name(mut self, name: &str) -> Self {
            name.clone_into(&mut self.settings.name);
            self
        }

        /// Explicit telemetry providers instead of the global ones.
        pub fn telemetry(mut self, telemetry: &tta_core::Telemetry) -> Self {
            self.settings.telemetry = Some(telemetry.clone());
            self
        }

        /// What a call of the client's model costs (default: free). A router's
        /// `Route::client` prices the route with it.
        pub fn price(mut self, price: tta_core::Price) -> Self {
            self.settings.price = price;
            self
        }

        /// The model's context window in tokens. A router's `Route::client` gives it to
        /// the route, so a context-length error falls back only to larger models.
        pub fn context_window(mut self, tokens: u64) -> Self {
            self.settings.context_window = Some(tokens);
            self
        }

        /// Records the messages on the client's span, as the GenAI conventions'
        /// `gen_ai.input.messages` and `gen_ai.output.messages` (JSON). Off by default:
        /// prompts and answers can hold personal data. Never on a metric.
        pub fn capture_content(mut self, capture: bool) -> Self {
            self.settings.capture_content = capture;
            self
        }

        /// The most idle connections the client keeps open to its provider (default:
        /// no bound). Busy connections are not limited; one finishing beyond the bound
        /// is closed. Each connection holds its buffers (about 12 KiB measured in the
        /// gateway), so a client that once served hundreds of requests at a time keeps
        /// that memory until its connections idle out (90 s) unless this is set.
        pub fn max_idle_connections(mut self, connections: usize) -> Self {
            self.settings.max_idle = Some(connections);
            self
        }
    };
}
pub(crate) use settings_setters;

impl Settings {
    pub(crate) fn new(base_url: String, provider: &str) -> Self {
        Self {
            base_url,
            key: None,
            model: None,
            headers: Vec::new(),
            provider: provider.to_owned(),
            name: "llm".to_owned(),
            telemetry: None,
            price: Price::per_call(0.0),
            context_window: None,
            capture_content: false,
            max_idle: None,
        }
    }

    /// Checks the settings and opens the connection pool: `key_header` carries the key
    /// (its value made by `key_value`), `more` are the client's own headers.
    pub(crate) fn build(
        self,
        path: &str,
        key_header: HeaderName,
        key_value: impl FnOnce(&str) -> String,
        more: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Conn, BuildError> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(BuildError::BaseUrl(self.base_url.clone()));
        }
        // Parsed once here: a request clones it instead of parsing a string each time.
        let url = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|_| BuildError::BaseUrl(self.base_url.clone()))?;
        let name = PrimitiveName::new(&self.name).map_err(BuildError::Name)?;
        self.price
            .validate()
            .map_err(|(what, value)| BuildError::Price { what, value })?;
        if self.context_window == Some(0) {
            return Err(BuildError::ContextWindow);
        }
        let mut headers = HeaderMap::new();
        let key = match self.key {
            None => None,
            Some(Key::Value(key)) => Some(key),
            Some(Key::Env(var)) => {
                Some(std::env::var(&var).map_err(|_| BuildError::MissingKey(var.clone()))?)
            }
        };
        if let Some(key) = key {
            let mut value = HeaderValue::from_str(&key_value(&key))
                .map_err(|_| BuildError::Header(key_header.to_string()))?;
            value.set_sensitive(true);
            headers.insert(key_header, value);
        }
        for (name, value) in more.into_iter().chain(self.headers) {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BuildError::Header(name.clone()))?;
            let value =
                HeaderValue::from_str(&value).map_err(|_| BuildError::Header(name.clone()))?;
            headers.insert(header, value);
        }
        let telemetry = self.telemetry.unwrap_or_default();
        Ok(Conn {
            http: http_client(headers, self.max_idle)?,
            url,
            default_model: self.model.map(Arc::from),
            provider: Arc::from(self.provider),
            price: self.price,
            context_window: self.context_window,
            capture: self.capture_content,
            inst: Instrumentation::new("llm", name, &telemetry),
        })
    }
}

/// The content type of every request body.
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A built client's connection: pool, endpoint, headers, defaults, instrumentation.
pub(crate) struct Conn {
    http: reqwest::Client,
    /// The endpoint, parsed when the client was built.
    pub(crate) url: reqwest::Url,
    /// Shared, so a span's attributes clone no string per request.
    pub(crate) default_model: Option<Arc<str>>,
    pub(crate) provider: Arc<str>,
    pub(crate) price: Price,
    pub(crate) context_window: Option<u64>,
    /// Whether messages are recorded on the span ([`Settings::capture_content`]).
    capture: bool,
    pub(crate) inst: Instrumentation,
}

/// One pooled HTTP client (HTTP/2 where the server offers it) sending `headers` with
/// every request, on rustls with the ring provider, installed once for the process
/// unless the application installed its own.
fn http_client(headers: HeaderMap, max_idle: Option<usize>) -> Result<reqwest::Client, BuildError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // An application that installed its own provider keeps it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if let Some(n) = max_idle {
        builder = builder.pool_max_idle_per_host(n);
    }
    builder.build().map_err(|e| BuildError::Http(e.to_string()))
}

impl Conn {
    /// The request's model as an attribute value: the client's default is shared.
    fn model_value(&self, request: &ChatRequest) -> opentelemetry::Value {
        match (&request.model, &self.default_model) {
            (Some(model), _) => model.clone().into(),
            (None, Some(default)) => Arc::clone(default).into(),
            (None, None) => "".into(),
        }
    }

    pub(crate) fn model<'a>(&'a self, request: &'a ChatRequest) -> &'a str {
        request
            .model
            .as_deref()
            .or(self.default_model.as_deref())
            .unwrap_or("")
    }

    /// Posts `body`; a failing status is an error of its class. A call is bounded by the
    /// context's deadline; a stream's body is the wrapping primitives' to bound (a
    /// timeout's idle and total limits).
    pub(crate) async fn post(
        &self,
        body: Vec<u8>,
        stream: bool,
        cx: &WorkflowContext,
    ) -> Result<reqwest::Response, Error> {
        let mut builder = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, JSON)
            .body(body);
        if !stream && let Some(left) = cx.remaining() {
            builder = builder.timeout(left);
        }
        let name = self.inst.name().as_str();
        let response = builder.send().await.map_err(|e| from_transport(name, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Err(from_response(status.as_u16(), &headers, &body))
    }

    /// A call: posts `body` and reads the answer with `parse` (its error says why the
    /// body is not an answer), sets the response's GenAI attributes; a content-filter
    /// finish is an error of its class, billed with the usage the provider reported.
    pub(crate) async fn complete(
        &self,
        body: Vec<u8>,
        parse: fn(&[u8]) -> Result<ChatResponse, &'static str>,
        cx: &WorkflowContext,
    ) -> Result<ChatResponse, Error> {
        let response = self.post(body, false, cx).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| from_transport(self.inst.name().as_str(), e))?;
        let answer = parse(&bytes).map_err(malformed)?;
        annotate_response(cx, &answer, self.capture);
        if answer.finish_reason == Some(FinishReason::ContentFilter) {
            let err = Error::msg("the provider filtered the answer")
                .with_class(ErrorClass::ContentFilter);
            return Err(match answer.usage {
                Some(usage) => err.with_billed_usage(usage.tokens()),
                None => err,
            });
        }
        Ok(answer)
    }

    /// A stream: posts `body` and reads its events with `parse`, up to the first chunk.
    pub(crate) async fn open_stream<F>(
        &self,
        body: Vec<u8>,
        parse: F,
        cx: WorkflowContext,
    ) -> Result<Streamed<ChatChunk>, Error>
    where
        F: FnMut(&eventsource_stream::Event) -> Step + Send + 'static,
    {
        let response = self.post(body, true, &cx).await?;
        let events = response.bytes_stream().eventsource();
        tta_core::first_chunk(sse::chunks(events, cx, self.capture, parse)).await
    }

    /// The request's GenAI attributes on the client's span; its messages too when content
    /// is captured.
    pub(crate) fn annotate_request(&self, cx: &WorkflowContext, request: &ChatRequest) {
        if let Some(span) = cx.primitive_span() {
            span.set_attributes([
                KeyValue::new(gen_ai::OPERATION_NAME, gen_ai::OPERATION_CHAT),
                KeyValue::new(gen_ai::PROVIDER_NAME, Arc::clone(&self.provider)),
                KeyValue::new(gen_ai::REQUEST_MODEL, self.model_value(request)),
            ]);
            if self.capture {
                let messages: Vec<Value> = request
                    .messages
                    .iter()
                    .map(|m| message_parts(m.role.as_str(), &m.content, &m.tool_calls, None))
                    .collect();
                span.set_attribute(KeyValue::new(
                    semconv::INPUT_MESSAGES,
                    Value::Array(messages).to_string(),
                ));
            }
        }
    }
}

/// A message as the GenAI conventions record it: its role and its parts (text, tool
/// calls), with the finish reason of an answer.
fn message_parts(
    role: &str,
    content: &str,
    tool_calls: &[ToolCall],
    finish: Option<&FinishReason>,
) -> Value {
    let mut parts = Vec::new();
    if !content.is_empty() {
        parts.push(json!({"type": "text", "content": content}));
    }
    for call in tool_calls {
        parts.push(
            json!({"type": "tool_call", "id": call.id, "name": call.name,
                          "arguments": call.arguments}),
        );
    }
    let mut message = json!({"role": role, "parts": parts});
    if let Some(finish) = finish {
        message["finish_reason"] = json!(finish.as_str());
    }
    message
}

/// The response's GenAI attributes on the client's span; the answer too with `capture`.
pub(crate) fn annotate_response(cx: &WorkflowContext, answer: &ChatResponse, capture: bool) {
    let Some(span) = cx.primitive_span() else {
        return;
    };
    span.set_attributes([
        KeyValue::new(semconv::RESPONSE_ID, answer.id.clone()),
        KeyValue::new(semconv::RESPONSE_MODEL, answer.model.clone()),
    ]);
    if capture {
        let message = message_parts(
            "assistant",
            &answer.content,
            &answer.tool_calls,
            answer.finish_reason.as_ref(),
        );
        span.set_attribute(KeyValue::new(
            semconv::OUTPUT_MESSAGES,
            Value::Array(vec![message]).to_string(),
        ));
    }
    if let Some(finish) = &answer.finish_reason {
        span.set_attribute(KeyValue::new(
            semconv::RESPONSE_FINISH_REASONS,
            opentelemetry::Value::Array(
                vec![opentelemetry::StringValue::from(finish.as_str().to_owned())].into(),
            ),
        ));
    }
    if let Some(usage) = answer.usage {
        span.set_attributes([
            KeyValue::new(gen_ai::USAGE_INPUT_TOKENS, usage.input_tokens as i64),
            KeyValue::new(gen_ai::USAGE_OUTPUT_TOKENS, usage.output_tokens as i64),
        ]);
    }
}

/// The names of the GenAI response attributes the clients set.
mod semconv {
    pub(super) const RESPONSE_ID: &str = "gen_ai.response.id";
    pub(super) const RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub(super) const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    pub(super) const INPUT_MESSAGES: &str = "gen_ai.input.messages";
    pub(super) const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
}

/// A JSON text of the request (tools, tool choice, extra fields) as a value; a text that
/// is not JSON is the request's fault.
pub(crate) fn passthrough(field: &str, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|_| not_json(field))
}

/// A passthrough text checked to be one JSON value, borrowed to be sent as it is.
pub(crate) fn raw_json<'a>(field: &str, text: &'a str) -> Result<&'a RawValue, Error> {
    serde_json::from_str(text).map_err(|_| not_json(field))
}

fn not_json(field: &str) -> Error {
    Error::msg(format!("the request's {field} is not JSON")).with_class(ErrorClass::InvalidRequest)
}

/// A request body as JSON bytes.
pub(crate) fn json_bytes(body: &impl Serialize) -> Result<Vec<u8>, Error> {
    // Writing to a `Vec` cannot fail, and every map key of a body is a string.
    serde_json::to_vec(body).map_err(|e| {
        Error::msg(format!("the request cannot be written as JSON: {e}"))
            .with_class(ErrorClass::InvalidRequest)
    })
}

/// The fields both APIs name alike: temperature, top_p, the tools and the tool choice;
/// and the stop sequences, under `stop_key`.
pub(crate) fn sampling(
    body: &mut Map<String, Value>,
    request: &ChatRequest,
    stop_key: &str,
) -> Result<(), Error> {
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !request.stop.is_empty() {
        body.insert(stop_key.into(), json!(request.stop));
    }
    if let Some(tools) = &request.tools {
        body.insert("tools".into(), passthrough("tools", tools)?);
    }
    if let Some(choice) = &request.tool_choice {
        body.insert("tool_choice".into(), passthrough("tool_choice", choice)?);
    }
    Ok(())
}

/// A string field of a JSON object, or empty.
pub(crate) fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}
