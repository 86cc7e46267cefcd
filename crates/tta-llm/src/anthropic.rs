//! The Anthropic Messages API client.

use std::sync::Arc;

use eventsource_stream::Event;
use reqwest::header::HeaderName;
use serde_json::{Map, Value, json};
use tta_core::{
    Error, ModelInfo, Price, StreamPrimitive, Streamed, WorkflowContext, WorkflowPrimitive,
};

use crate::error::BuildError;
use crate::http::{Conn, Settings, json_bytes, passthrough, sampling, settings_setters, text};
use crate::sse::{self, Step};
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, Role, ToolCall, ToolCallDelta, Usage,
};

/// The `anthropic-version` a client sends unless told otherwise.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The `max_tokens` of requests that set none (the API requires one).
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// An Anthropic Messages API client (`POST {base}/messages`), calling
/// (`WorkflowPrimitive`) and streaming (`StreamPrimitive`). Cheap to clone.
///
/// System messages become the request's `system` text; a tool result is a user
/// message with a `tool_result` block; an assistant's tool calls are `tool_use` blocks.
/// Usage counts every input token: `input_tokens` is the API's input plus its cache
/// reads and writes, and `cached_input_tokens` the cache reads.
///
/// Its `Debug` never shows the API key.
#[derive(Clone)]
pub struct Anthropic {
    inner: Arc<Client>,
}

struct Client {
    conn: Conn,
    max_tokens: u32,
}

/// Builds an [`Anthropic`] client. Setters only store; `build` checks once.
///
/// # Examples
///
/// ```
/// use tta_llm::Anthropic;
///
/// let client = Anthropic::builder("https://api.anthropic.com/v1")
///     .api_key("sk-ant-test")
///     .model("claude-sonnet-4-5")
///     .max_tokens(1024)
///     .build()?;
/// assert!(!format!("{client:?}").contains("sk-ant"), "the key is never printed");
///
/// let unset = Anthropic::builder("https://api.anthropic.com/v1")
///     .api_key_env("TTA_DOC_UNSET_KEY")
///     .build();
/// assert!(matches!(unset, Err(tta_llm::BuildError::MissingKey(_))));
/// # Ok::<(), tta_llm::BuildError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct AnthropicBuilder {
    settings: Settings,
    version: String,
    max_tokens: u32,
}

impl std::fmt::Debug for AnthropicBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicBuilder")
            .field("base_url", &self.settings.base_url)
            .field("model", &self.settings.model)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic")
            .field("url", &self.inner.conn.url.as_str())
            .field("model", &self.inner.conn.default_model)
            .finish_non_exhaustive()
    }
}

impl Anthropic {
    /// Configures a client for the API at `base_url` (`https://api.anthropic.com/v1`).
    /// The key is sent as `x-api-key`; the provider's name defaults to `anthropic`.
    pub fn builder(base_url: impl Into<String>) -> AnthropicBuilder {
        AnthropicBuilder {
            settings: Settings::new(base_url.into(), "anthropic"),
            version: DEFAULT_VERSION.to_owned(),
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

impl AnthropicBuilder {
    settings_setters!();

    /// The `anthropic-version` header (default [`DEFAULT_VERSION`]).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The `max_tokens` of requests that set none (default 4096; the API requires one).
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a base URL that is not `http://` or `https://`, an unset key
    /// variable, a header that cannot be sent, a zero `max_tokens`, an invalid name, or
    /// an HTTP client that cannot be built.
    pub fn build(self) -> Result<Anthropic, BuildError> {
        if self.max_tokens == 0 {
            return Err(BuildError::MaxTokens);
        }
        let conn = self.settings.build(
            "/messages",
            HeaderName::from_static("x-api-key"),
            str::to_owned,
            [("anthropic-version".to_owned(), self.version)],
        )?;
        Ok(Anthropic {
            inner: Arc::new(Client {
                conn,
                max_tokens: self.max_tokens,
            }),
        })
    }
}

/// The request body of the Messages API.
fn body(client: &Client, request: &ChatRequest, stream: bool) -> Result<Vec<u8>, Error> {
    json_bytes(&body_value(client, request, stream)?)
}

/// [`body`] as a JSON value: the tools are reshaped in it.
fn body_value(client: &Client, request: &ChatRequest, stream: bool) -> Result<Value, Error> {
    let mut body = Map::new();
    for (name, text) in &request.extra {
        body.insert(name.clone(), passthrough(name, text)?);
    }
    body.insert("model".into(), json!(client.conn.model(request)));
    body.insert(
        "max_tokens".into(),
        json!(request.max_tokens.unwrap_or(client.max_tokens)),
    );
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    let mut messages = Vec::new();
    for message in &request.messages {
        let value = match message.role {
            Role::System => continue,
            Role::User => json!({"role": "user", "content": message.content}),
            Role::Tool => json!({"role": "user", "content": [{
                "type": "tool_result",
                "tool_use_id": message.tool_call_id.as_deref().unwrap_or(""),
                "content": message.content,
            }]}),
            Role::Assistant if message.tool_calls.is_empty() => {
                json!({"role": "assistant", "content": message.content})
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !message.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": message.content}));
                }
                for call in &message.tool_calls {
                    let input = passthrough("tool call's arguments", &call.arguments)?;
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                json!({"role": "assistant", "content": blocks})
            }
        };
        messages.push(value);
    }
    body.insert("messages".into(), Value::Array(messages));
    sampling(&mut body, request, "stop_sequences")?;
    if let Some(Value::Array(tools)) = body.get_mut("tools") {
        tools.iter_mut().for_each(anthropic_tool);
    }
    if let Some(choice) = body.get_mut("tool_choice") {
        anthropic_tool_choice(choice);
    }
    // Whether it streams is the client's to say, never an extra field's.
    if stream {
        body.insert("stream".into(), json!(true));
    } else {
        body.remove("stream");
    }
    Ok(Value::Object(body))
}

/// A tool in OpenAI's shape (`{"type": "function", "function": {name, description,
/// parameters}}`) in the Messages API's (`{name, description, input_schema}`), so one
/// request can go to either provider; a tool already in Anthropic's shape is left as it is.
fn anthropic_tool(tool: &mut Value) {
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return;
    }
    let Some(function) = tool.get("function") else {
        return;
    };
    let mut out = Map::new();
    out.insert(
        "name".into(),
        function.get("name").cloned().unwrap_or(json!("")),
    );
    if let Some(description) = function.get("description") {
        out.insert("description".into(), description.clone());
    }
    out.insert(
        "input_schema".into(),
        function
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"})),
    );
    *tool = Value::Object(out);
}

/// A tool choice in OpenAI's shape in the Messages API's: `auto`, `none`, `required`
/// (Anthropic's `any`) or one named function (`tool`); any other value is left as it is.
fn anthropic_tool_choice(choice: &mut Value) {
    let named = choice.get("function").and_then(|f| f.get("name")).cloned();
    *choice = match (choice.as_str(), named) {
        (Some("auto"), _) => json!({"type": "auto"}),
        (Some("none"), _) => json!({"type": "none"}),
        (Some("required"), _) => json!({"type": "any"}),
        (None, Some(name)) => json!({"type": "tool", "name": name}),
        _ => return,
    };
}

/// The API's usage object as tta counts it: every input token, cached ones included.
fn usage_of(usage: &Value) -> Usage {
    let number = |key: &str| usage.get(key).and_then(Value::as_u64);
    let cache_read = number("cache_read_input_tokens");
    let input = number("input_tokens").unwrap_or(0)
        + cache_read.unwrap_or(0)
        + number("cache_creation_input_tokens").unwrap_or(0);
    Usage {
        input_tokens: input,
        output_tokens: number("output_tokens").unwrap_or(0),
        cached_input_tokens: cache_read,
        reasoning_tokens: None,
    }
}

/// The answer of a Messages API response body.
fn answer_of(body: &[u8]) -> Result<ChatResponse, &'static str> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| "the provider's response is not JSON")?;
    response_of(&value).ok_or("the provider's response has no answer")
}

fn response_of(value: &Value) -> Option<ChatResponse> {
    let blocks = value.get("content")?.as_array()?;
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(&text(block, "text")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: text(block, "id"),
                name: text(block, "name"),
                arguments: block
                    .get("input")
                    .map_or_else(String::new, Value::to_string),
            }),
            _ => {}
        }
    }
    Some(ChatResponse {
        id: text(value, "id"),
        model: text(value, "model"),
        content,
        tool_calls,
        finish_reason: value
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(FinishReason::parse),
        usage: value.get("usage").map(usage_of),
    })
}

/// Reads the events of a Messages stream: `message_start` names the message and its
/// input usage; text and tool-input deltas are chunks (a tool call's start is one too);
/// `message_delta` is the chunk with the stop reason and the whole usage;
/// `message_stop` the only clean end; `error` a failure; `ping` and events this client
/// does not know are skipped.
pub(crate) fn parser() -> impl FnMut(&Event) -> Step + Send + 'static {
    let mut id = String::new();
    let mut model = String::new();
    let mut input = Usage::default();
    move |event| {
        let value = match sse::json(event) {
            Ok(value) => value,
            Err(err) => return Step::Fail(err),
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(&event.event);
        let chunk = |id: &str, model: &str| ChatChunk {
            id: id.to_owned(),
            model: model.to_owned(),
            ..ChatChunk::default()
        };
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
        match kind {
            "message_start" => {
                let message = value.get("message").unwrap_or(&Value::Null);
                id = text(message, "id");
                model = text(message, "model");
                input = message.get("usage").map(usage_of).unwrap_or_default();
                Step::Skip
            }
            "content_block_start" => {
                let block = value.get("content_block").unwrap_or(&Value::Null);
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return Step::Skip;
                }
                let mut c = chunk(&id, &model);
                c.tool_calls.push(ToolCallDelta {
                    index,
                    id: Some(text(block, "id")),
                    name: Some(text(block, "name")),
                    arguments: None,
                });
                Step::Chunk(c)
            }
            "content_block_delta" => {
                let delta = value.get("delta").unwrap_or(&Value::Null);
                let mut c = chunk(&id, &model);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => c.delta = text(delta, "text"),
                    Some("input_json_delta") => c.tool_calls.push(ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: Some(text(delta, "partial_json")),
                    }),
                    _ => return Step::Skip,
                }
                if c.delta.is_empty() && c.tool_calls.is_empty() {
                    return Step::Skip;
                }
                Step::Chunk(c)
            }
            "message_delta" => {
                let mut c = chunk(&id, &model);
                c.finish_reason = value
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                    .map(FinishReason::parse);
                let mut usage = input;
                if let Some(delta) = value.get("usage") {
                    let more = usage_of(delta);
                    usage.output_tokens = more.output_tokens;
                    if delta.get("input_tokens").is_some() {
                        usage.input_tokens = more.input_tokens;
                        usage.cached_input_tokens = more.cached_input_tokens;
                    }
                }
                c.usage = Some(usage);
                Step::Chunk(c)
            }
            "message_stop" => Step::Done,
            "error" => Step::Fail(sse::provider_error(&value)),
            _ => Step::Skip,
        }
    }
}

impl ModelInfo for Anthropic {
    fn provider(&self) -> &str {
        &self.inner.conn.provider
    }

    fn model(&self) -> Option<&str> {
        self.inner.conn.default_model.as_deref()
    }

    fn price(&self) -> Price {
        self.inner.conn.price
    }

    fn context_window(&self) -> Option<u64> {
        self.inner.conn.context_window
    }
}

impl WorkflowPrimitive<ChatRequest> for Anthropic {
    type Output = ChatResponse;

    fn name(&self) -> &str {
        self.inner.conn.inst.name().as_str()
    }

    async fn execute(
        &self,
        request: ChatRequest,
        cx: &WorkflowContext,
    ) -> Result<ChatResponse, Error> {
        let inner = &*self.inner;
        let conn = &inner.conn;
        conn.inst
            .run(cx, |child| async move {
                conn.annotate_request(&child, &request);
                conn.complete(body(inner, &request, false)?, answer_of, &child)
                    .await
            })
            .await
    }
}

impl StreamPrimitive<ChatRequest> for Anthropic {
    type Chunk = ChatChunk;

    fn name(&self) -> &str {
        self.inner.conn.inst.name().as_str()
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cx: &WorkflowContext,
    ) -> Result<Streamed<ChatChunk>, Error> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .conn
            .inst
            .run_stream(cx, |child| async move {
                let conn = &inner.conn;
                conn.annotate_request(&child, &request);
                let body = body(&inner, &request, true)?;
                conn.open_stream(body, parser(), child).await
            })
            .await
    }
}
