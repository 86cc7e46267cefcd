//! The OpenAI-compatible chat completions client: OpenAI, and every server that speaks
//! its API (vLLM, llama.cpp, Ollama, Groq, OpenRouter, LiteLLM...).

use std::sync::Arc;

use eventsource_stream::Event;
use reqwest::header::AUTHORIZATION;
use serde_json::{Map, Value, json};
use tta_core::{
    Error, ModelInfo, Price, StreamPrimitive, Streamed, WorkflowContext, WorkflowPrimitive,
};

use crate::error::BuildError;
use crate::http::{Conn, Settings, passthrough, sampling, settings_setters, text};
use crate::sse::{self, Step};
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, ToolCall, ToolCallDelta, Usage,
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
            .field("url", &self.inner.url)
            .field("model", &self.inner.default_model)
            .finish_non_exhaustive()
    }
}

fn message_json(message: &Message) -> Value {
    let mut out = Map::new();
    out.insert("role".into(), json!(message.role));
    out.insert("content".into(), json!(message.content));
    if let Some(id) = &message.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(out)
}

/// The request body of the chat completions API.
fn body(conn: &Conn, request: &ChatRequest, stream: bool) -> Result<Value, Error> {
    let mut body = Map::new();
    for (name, text) in &request.extra {
        body.insert(name.clone(), passthrough(name, text)?);
    }
    body.insert("model".into(), json!(conn.model(request)));
    body.insert(
        "messages".into(),
        Value::Array(request.messages.iter().map(message_json).collect()),
    );
    if let Some(max) = request.max_tokens {
        body.insert("max_tokens".into(), json!(max));
    }
    sampling(&mut body, request, "stop")?;
    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(body))
}

fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| !u.is_null())?;
    let number = |path: &[&str]| {
        path.iter()
            .try_fold(usage, |v, key| v.get(key))
            .and_then(Value::as_u64)
    };
    Some(Usage {
        input_tokens: number(&["prompt_tokens"]).unwrap_or(0),
        output_tokens: number(&["completion_tokens"]).unwrap_or(0),
        cached_input_tokens: number(&["prompt_tokens_details", "cached_tokens"]),
        reasoning_tokens: number(&["completion_tokens_details", "reasoning_tokens"]),
    })
}

fn response_of(value: &Value) -> Option<ChatResponse> {
    let choice = value.get("choices")?.get(0)?;
    let message = choice.get("message")?;
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: text(c, "id"),
                    name: c
                        .get("function")
                        .map(|f| text(f, "name"))
                        .unwrap_or_default(),
                    arguments: c
                        .get("function")
                        .map(|f| text(f, "arguments"))
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ChatResponse {
        id: text(value, "id"),
        model: text(value, "model"),
        content: text(message, "content"),
        tool_calls,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(FinishReason::parse),
        usage: usage_of(value),
    })
}

/// A chunk of the stream, or `None` for one that carries nothing to hand on (the
/// role-only preamble).
fn chunk_of(value: &Value) -> Option<ChatChunk> {
    let choice = value.get("choices").and_then(|c| c.get(0));
    let delta = choice.and_then(|c| c.get("delta"));
    let tool_calls: Vec<ToolCallDelta> = delta
        .and_then(|d| d.get("tool_calls"))
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|c| {
                    let function = c.get("function");
                    let field = |v: Option<&Value>, key| {
                        v.and_then(|v| v.get(key))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    };
                    ToolCallDelta {
                        index: c.get("index").and_then(Value::as_u64).unwrap_or(0) as u32,
                        id: field(Some(c), "id"),
                        name: field(function, "name"),
                        arguments: field(function, "arguments"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let chunk = ChatChunk {
        id: text(value, "id"),
        model: text(value, "model"),
        delta: delta.map(|d| text(d, "content")).unwrap_or_default(),
        tool_calls,
        finish_reason: choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(FinishReason::parse),
        // The usage-only chunk (empty `choices`) is the one that carries it.
        usage: usage_of(value),
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
                    .complete(&body(inner, &request, false)?, response_of, &child)
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
                inner.open_stream(&body, parse_event, child).await
            })
            .await
    }
}

/// Reads one event of an OpenAI stream: `[DONE]` the only clean end, the role-only
/// preamble skipped, an `error` event or error body a failure.
fn parse_event(event: &Event) -> Step {
    if event.data.trim() == "[DONE]" {
        return Step::Done;
    }
    let value = match sse::json(event) {
        Ok(value) => value,
        Err(err) => return Step::Fail(err),
    };
    if event.event == "error" || value.get("error").is_some() {
        return Step::Fail(sse::provider_error(&value));
    }
    chunk_of(&value).map_or(Step::Skip, Step::Chunk)
}
