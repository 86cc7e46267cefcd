//! The OpenAI-compatible chat completions client: OpenAI, and every server that speaks
//! its API (vLLM, llama.cpp, Ollama, Groq, OpenRouter, LiteLLM...).

use std::sync::Arc;

use eventsource_stream::Event;
use reqwest::header::AUTHORIZATION;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use tta_core::{
    Error, ModelInfo, Price, StreamPrimitive, Streamed, WorkflowContext, WorkflowPrimitive,
};

use crate::error::{BuildError, malformed};
use crate::http::{Conn, Settings, json_bytes, raw_json, settings_setters};
use crate::sse::{self, Step};
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, ToolCall, ToolCallDelta,
};

/// The provider name of a client that was not given one (`gen_ai.provider.name`).
const DEFAULT_PROVIDER: &str = "openai";

/// An OpenAI-compatible chat completions client, calling (`WorkflowPrimitive`) and
/// streaming (`StreamPrimitive`) over one pooled HTTP client. Cheap to clone.
///
/// Its `Debug` never shows the API key.
#[derive(Clone)]
pub struct OpenAiCompatible {
    inner: Arc<Conn>,
}

/// Builds an [`OpenAiCompatible`] client. Setters only store; `build` checks once.
///
/// # Examples
///
/// ```
/// use tta_llm::OpenAiCompatible;
///
/// let client = OpenAiCompatible::builder("http://127.0.0.1:8000/v1")
///     .api_key("sk-test")
///     .model("llama-3.1-8b")
///     .build()?;
/// assert!(!format!("{client:?}").contains("sk-test"), "the key is never printed");
/// # Ok::<(), tta_llm::BuildError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct OpenAiBuilder {
    settings: Settings,
    path: String,
    organization: Option<String>,
}

impl std::fmt::Debug for OpenAiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiBuilder")
            .field("base_url", &self.settings.base_url)
            .field("model", &self.settings.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// Configures a client for the API at `base_url` (`https://api.openai.com/v1`, or a
    /// compatible server's). The key is sent as `Authorization: Bearer`; the provider's
    /// name defaults to `openai`.
    pub fn builder(base_url: impl Into<String>) -> OpenAiBuilder {
        OpenAiBuilder {
            settings: Settings::new(base_url.into(), DEFAULT_PROVIDER),
            path: "/chat/completions".to_owned(),
            organization: None,
        }
    }
}

impl OpenAiBuilder {
    settings_setters!();

    /// The path of the chat completions endpoint under the base URL (default
    /// `/chat/completions`; Azure-style deployments have their own).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The `OpenAI-Organization` header.
    pub fn organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a base URL that is not `http://` or `https://`, an unset key
    /// variable, a header that cannot be sent, an invalid name, or an HTTP client that
    /// cannot be built.
    pub fn build(self) -> Result<OpenAiCompatible, BuildError> {
        let organization = self
            .organization
            .map(|org| ("OpenAI-Organization".to_owned(), org));
        let conn = self.settings.build(
            &self.path,
            AUTHORIZATION,
            |key| format!("Bearer {key}"),
            organization,
        )?;
        Ok(OpenAiCompatible {
            inner: Arc::new(conn),
        })
    }
}

impl std::fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("url", &self.inner.url.as_str())
            .field("model", &self.inner.default_model)
            .finish_non_exhaustive()
    }
}

/// The request body of the chat completions API, written straight to JSON bytes (no
/// `Value` tree in between). The passthrough texts (tools, tool choice, extra fields)
/// are checked to be JSON here, and sent as they are.
fn body(conn: &Conn, request: &ChatRequest, stream: bool) -> Result<Vec<u8>, Error> {
    let extra = request
        .extra
        .iter()
        .map(|(name, text)| Ok((name.as_str(), raw_json(name, text)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let body = Body {
        model: conn.model(request),
        request,
        tools: request
            .tools
            .as_deref()
            .map(|t| raw_json("tools", t))
            .transpose()?,
        tool_choice: request
            .tool_choice
            .as_deref()
            .map(|t| raw_json("tool_choice", t))
            .transpose()?,
        extra,
        stream,
    };
    json_bytes(&body)
}

/// A chat completions request body (see [`body`]).
struct Body<'a> {
    model: &'a str,
    request: &'a ChatRequest,
    tools: Option<&'a RawValue>,
    tool_choice: Option<&'a RawValue>,
    extra: Vec<(&'a str, &'a RawValue)>,
    stream: bool,
}

impl Body<'_> {
    /// Whether the body sets `field` itself: an extra field of that name is then left
    /// out (a request's own settings win over its extra fields). Whether it streams is
    /// the client's to say, so `stream` and `stream_options` are never taken from them.
    fn sets(&self, field: &str) -> bool {
        let r = self.request;
        match field {
            "model" | "messages" | "stream" | "stream_options" => true,
            "max_tokens" => r.max_tokens.is_some(),
            "temperature" => r.temperature.is_some(),
            "top_p" => r.top_p.is_some(),
            "stop" => !r.stop.is_empty(),
            "tools" => self.tools.is_some(),
            "tool_choice" => self.tool_choice.is_some(),
            _ => false,
        }
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", &Messages(&r.messages))?;
        if let Some(max) = r.max_tokens {
            map.serialize_entry("max_tokens", &max)?;
        }
        if let Some(t) = r.temperature {
            map.serialize_entry("temperature", &t)?;
        }
        if let Some(p) = r.top_p {
            map.serialize_entry("top_p", &p)?;
        }
        if !r.stop.is_empty() {
            map.serialize_entry("stop", &r.stop)?;
        }
        if let Some(tools) = self.tools {
            map.serialize_entry("tools", tools)?;
        }
        if let Some(choice) = self.tool_choice {
            map.serialize_entry("tool_choice", choice)?;
        }
        if self.stream {
            map.serialize_entry("stream", &true)?;
            map.serialize_entry("stream_options", &IncludeUsage)?;
        }
        for &(name, value) in &self.extra {
            if !self.sets(name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// `{"include_usage": true}`.
struct IncludeUsage;

impl Serialize for IncludeUsage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("include_usage", &true)?;
        map.end()
    }
}

/// The messages in the API's shape.
struct Messages<'a>(&'a [Message]);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(WireMessage))
    }
}

/// One message: role, content, the call a tool's result answers, the calls an
/// assistant made.
struct WireMessage<'a>(&'a Message);

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", &m.role)?;
        map.serialize_entry("content", &m.content)?;
        if let Some(id) = &m.tool_call_id {
            map.serialize_entry("tool_call_id", id)?;
        }
        if !m.tool_calls.is_empty() {
            let calls: Vec<WireToolCall<'_>> = m.tool_calls.iter().map(Into::into).collect();
            map.serialize_entry("tool_calls", &calls)?;
        }
        map.end()
    }
}

/// An assistant's tool call: `{"id", "type": "function", "function": {"name",
/// "arguments"}}`, the arguments as the JSON text they are.
#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(call: &'a ToolCall) -> Self {
        Self {
            id: &call.id,
            kind: "function",
            function: WireFunction {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

/// The answer of a chat completions response body.
fn answer_of(body: &[u8]) -> Result<ChatResponse, &'static str> {
    let wire: wire::Response = serde_json::from_slice(body).map_err(|_| {
        match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => "the provider's response is not a chat completion",
            Err(_) => "the provider's response is not JSON",
        }
    })?;
    let choice = wire
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or("the provider's response has no answer")?;
    let message = choice
        .message
        .ok_or("the provider's response has no answer")?;
    Ok(ChatResponse {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        content: message.content.unwrap_or_default(),
        tool_calls: message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let function = c.function.unwrap_or_default();
                ToolCall {
                    id: c.id.unwrap_or_default(),
                    name: function.name.unwrap_or_default(),
                    arguments: function.arguments.unwrap_or_default(),
                }
            })
            .collect(),
        finish_reason: choice.finish_reason.as_deref().map(FinishReason::parse),
        usage: wire.usage.map(wire::Usage::into_usage),
    })
}

/// A chunk of the stream as the API sends it, read straight into these types (no JSON
/// tree in between): unknown fields skipped, every field optional (a server that sends
/// `null` or leaves one out is read as OpenAI's own).
mod wire {
    use serde::Deserialize;
    use serde::de::IgnoredAny;

    #[derive(Deserialize)]
    pub(super) struct Response {
        pub(super) id: Option<String>,
        pub(super) model: Option<String>,
        pub(super) choices: Option<Vec<AnswerChoice>>,
        pub(super) usage: Option<Usage>,
    }

    #[derive(Deserialize)]
    pub(super) struct AnswerChoice {
        pub(super) message: Option<AnswerMessage>,
        pub(super) finish_reason: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct AnswerMessage {
        pub(super) content: Option<String>,
        pub(super) tool_calls: Option<Vec<ToolCall>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Chunk {
        pub(super) id: Option<String>,
        pub(super) model: Option<String>,
        pub(super) choices: Option<Vec<Choice>>,
        pub(super) usage: Option<Usage>,
        /// An error sent as a chunk: read again as JSON for its message.
        pub(super) error: Option<IgnoredAny>,
    }

    #[derive(Deserialize)]
    pub(super) struct Choice {
        pub(super) delta: Option<Delta>,
        pub(super) finish_reason: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Delta {
        pub(super) content: Option<String>,
        pub(super) tool_calls: Option<Vec<ToolCall>>,
    }

    #[derive(Deserialize)]
    pub(super) struct ToolCall {
        pub(super) index: Option<u32>,
        pub(super) id: Option<String>,
        pub(super) function: Option<Function>,
    }

    #[derive(Default, Deserialize)]
    pub(super) struct Function {
        pub(super) name: Option<String>,
        pub(super) arguments: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Usage {
        pub(super) prompt_tokens: Option<u64>,
        pub(super) completion_tokens: Option<u64>,
        pub(super) prompt_tokens_details: Option<Details>,
        pub(super) completion_tokens_details: Option<Details>,
    }

    #[derive(Deserialize)]
    pub(super) struct Details {
        pub(super) cached_tokens: Option<u64>,
        pub(super) reasoning_tokens: Option<u64>,
    }

    impl Usage {
        pub(super) fn into_usage(self) -> crate::types::Usage {
            crate::types::Usage {
                input_tokens: self.prompt_tokens.unwrap_or(0),
                output_tokens: self.completion_tokens.unwrap_or(0),
                cached_input_tokens: self.prompt_tokens_details.and_then(|d| d.cached_tokens),
                reasoning_tokens: self
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens),
            }
        }
    }
}

/// A chunk of the stream, or `None` for one that carries nothing to hand on (the
/// role-only preamble).
fn chunk_of(wire: wire::Chunk) -> Option<ChatChunk> {
    let choice = wire.choices.and_then(|c| c.into_iter().next());
    let (delta, finish_reason) = match choice {
        Some(c) => (c.delta, c.finish_reason),
        None => (None, None),
    };
    let (content, tool_calls) = match delta {
        Some(d) => (d.content, d.tool_calls.unwrap_or_default()),
        None => (None, Vec::new()),
    };
    let chunk = ChatChunk {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        delta: content.unwrap_or_default(),
        tool_calls: tool_calls
            .into_iter()
            .map(|c| {
                let (name, arguments) = match c.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, None),
                };
                ToolCallDelta {
                    index: c.index.unwrap_or(0),
                    id: c.id,
                    name,
                    arguments,
                }
            })
            .collect(),
        finish_reason: finish_reason.as_deref().map(FinishReason::parse),
        // The usage-only chunk (empty `choices`) is the one that carries it.
        usage: wire.usage.map(wire::Usage::into_usage),
    };
    let empty = chunk.delta.is_empty()
        && chunk.tool_calls.is_empty()
        && chunk.finish_reason.is_none()
        && chunk.usage.is_none();
    (!empty).then_some(chunk)
}

impl ModelInfo for OpenAiCompatible {
    fn provider(&self) -> &str {
        &self.inner.provider
    }

    fn model(&self) -> Option<&str> {
        self.inner.default_model.as_deref()
    }

    fn price(&self) -> Price {
        self.inner.price
    }

    fn context_window(&self) -> Option<u64> {
        self.inner.context_window
    }
}

impl WorkflowPrimitive<ChatRequest> for OpenAiCompatible {
    type Output = ChatResponse;

    fn name(&self) -> &str {
        self.inner.inst.name().as_str()
    }

    async fn execute(
        &self,
        request: ChatRequest,
        cx: &WorkflowContext,
    ) -> Result<ChatResponse, Error> {
        let inner = &*self.inner;
        inner
            .inst
            .run(cx, |child| async move {
                inner.annotate_request(&child, &request);
                inner
                    .complete(body(inner, &request, false)?, answer_of, &child)
                    .await
            })
            .await
    }
}

impl StreamPrimitive<ChatRequest> for OpenAiCompatible {
    type Chunk = ChatChunk;

    fn name(&self) -> &str {
        self.inner.inst.name().as_str()
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cx: &WorkflowContext,
    ) -> Result<Streamed<ChatChunk>, Error> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .inst
            .run_stream(cx, |child| async move {
                inner.annotate_request(&child, &request);
                let body = body(&inner, &request, true)?;
                inner.open_stream(body, parse_event, child).await
            })
            .await
    }
}

/// Reads one event of an OpenAI stream: `[DONE]` the only clean end, the role-only
/// preamble skipped, an `error` event or error body a failure, a chunk that is not the
/// API's (not JSON, or a field of the wrong type) a failure too.
pub(crate) fn parse_event(event: &Event) -> Step {
    if event.data.trim() == "[DONE]" {
        return Step::Done;
    }
    match serde_json::from_str::<wire::Chunk>(&event.data) {
        Ok(chunk) if chunk.error.is_none() && event.event != "error" => {
            chunk_of(chunk).map_or(Step::Skip, Step::Chunk)
        }
        // An error, or a chunk this client cannot read: JSON with an `error` is the
        // provider's report, other JSON a chunk of the wrong shape.
        _ => match sse::json(event) {
            Err(err) => Step::Fail(err),
            Ok(value) if event.event == "error" || value.get("error").is_some() => {
                Step::Fail(sse::provider_error(&value))
            }
            Ok(_) => Step::Fail(malformed(
                "a chunk of the stream is not a chat completion chunk",
            )),
        },
    }
}
