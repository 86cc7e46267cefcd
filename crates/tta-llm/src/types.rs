//! Provider-neutral chat types: what a route takes and returns, whatever the provider.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tta_core::{MaxUsage, ReportsUsage, Streamable, TokenUsage};

/// Who said a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The role's name on the wire (`system`, `user`, `assistant`, `tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// For a tool's result: the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// For an assistant message that called tools: the calls.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
}

impl Message {
    /// A message of `role` saying `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_call_id: None,
            tool_calls: Vec::new(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A tool call the model made: its id, and the function with its arguments (JSON text,
/// passed through as the provider sent it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, to answer it with a tool message.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, as JSON text.
    pub arguments: String,
}

/// A chat request. Tools and tool choice are passed through as JSON; `extra` fields are
/// sent verbatim (a provider's own parameters are never rejected), except where the
/// request sets a field of the same name itself (its model, messages, `max_tokens`...)
/// and `stream`, which is the client's to set. A passthrough text that is not JSON fails
/// the request, before it is sent, with an `invalid_request` error. It is the input of a
/// cache too: its serialization is its key.
///
/// # Examples
///
/// ```
/// use tta_llm::{ChatRequest, Message};
///
/// let request = ChatRequest::new(vec![Message::system("Be brief."), Message::user("Hi!")])
///     .model("gpt-4o-mini")
///     .max_tokens(64)
///     .extra("seed", 7);
/// assert_eq!(request.max_tokens, Some(64));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model; the client's default when `None`.
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// The most tokens the answer may have.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Sequences that end the answer.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Tool definitions, as the provider's JSON (a JSON text, so the request stays a
    /// plain serde value a cache can key).
    pub tools: Option<String>,
    /// Tool choice, as the provider's JSON text.
    pub tool_choice: Option<String>,
    /// Fields sent verbatim beside the others, as JSON texts by name.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// Tokens a message costs beyond its text (role and separators), above what any
/// tokenizer we know of charges (OpenAI's chat format charges 3 to 4).
const MESSAGE_OVERHEAD_TOKENS: u64 = 8;

/// An upper bound, not an estimate: a byte-level BPE tokenizer (OpenAI's, Anthropic's,
/// Llama's) never makes more tokens than the text has bytes, so the input is bounded by
/// the bytes of every message, tool definition and tool call plus a per-message
/// overhead. The output is bounded by `max_tokens`; without it the request sets no
/// maximum (`None`), and a budget lets it run alone.
///
/// ```
/// use tta_core::{MaxUsage, TokenUsage};
/// use tta_llm::{ChatRequest, Message};
/// let req = ChatRequest::new(vec![Message::user("hello")]);
/// assert_eq!(req.max_usage(), None);
/// assert_eq!(req.max_tokens(64).max_usage(), Some(TokenUsage::new(5 + 8, 64)));
/// ```
impl MaxUsage for ChatRequest {
    fn max_usage(&self) -> Option<TokenUsage> {
        let output = u64::from(self.max_tokens?);
        Some(TokenUsage::new(self.max_input_tokens(), output))
    }
}

impl ChatRequest {
    /// The most input tokens this request can be billed for: see its [`MaxUsage`].
    pub fn max_input_tokens(&self) -> u64 {
        let text: usize = self
            .messages
            .iter()
            .map(|m| {
                m.content.len()
                    + m.tool_call_id.as_ref().map_or(0, String::len)
                    + m.tool_calls
                        .iter()
                        .map(|c| c.id.len() + c.name.len() + c.arguments.len())
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self.tools.as_ref().map_or(0, String::len)
            + self.tool_choice.as_ref().map_or(0, String::len);
        (text as u64).saturating_add(MESSAGE_OVERHEAD_TOKENS * self.messages.len() as u64)
    }

    /// A request for `messages`, with the client's default model.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    /// The model.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The most tokens the answer may have.
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sampling temperature.
    #[must_use]
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Tool definitions (any JSON value), passed through.
    #[must_use]
    pub fn tools(mut self, tools: &serde_json::Value) -> Self {
        self.tools = Some(tools.to_string());
        self
    }

    /// A field sent verbatim (any JSON value).
    #[must_use]
    pub fn extra(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(name.into(), value.into().to_string());
        self
    }
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FinishReason {
    /// A natural end, or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// It called tools.
    ToolCalls,
    /// The provider filtered the content.
    ContentFilter,
    /// Anything else, as the provider said it.
    Other(String),
}

impl FinishReason {
    pub(crate) fn parse(reason: &str) -> Self {
        match reason {
            "stop" | "end_turn" | "stop_sequence" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "tool_use" | "function_call" => FinishReason::ToolCalls,
            "content_filter" | "refusal" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.chars().take(64).collect()),
        }
    }

    /// The OpenAI name of the reason.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(other) => other,
        }
    }
}

/// Token usage as providers report it, with the cached-input and reasoning tokens
/// where they are reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Of the prompt tokens, those served from the provider's prompt cache.
    pub cached_input_tokens: Option<u64>,
    /// Of the completion tokens, those spent reasoning.
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// The usage as tta's ledger counts it.
    pub fn tokens(&self) -> TokenUsage {
        TokenUsage::new(self.input_tokens, self.output_tokens)
    }
}

/// A whole answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's id of the response.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The answer's text.
    pub content: String,
    /// The tools the model called.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: Option<FinishReason>,
    /// What it used, when reported.
    pub usage: Option<Usage>,
}

impl ChatResponse {
    /// The answer a stream's chunks make: the text and each tool call's pieces joined,
    /// the id and model of the first chunk, the last finish reason and usage.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_llm::{ChatChunk, ChatResponse, FinishReason};
    ///
    /// let chunks = [
    ///     ChatChunk { id: "r1".into(), delta: "Hel".into(), ..ChatChunk::default() },
    ///     ChatChunk { delta: "lo".into(), finish_reason: Some(FinishReason::Stop), ..ChatChunk::default() },
    /// ];
    /// let answer = ChatResponse::from_chunks(&chunks);
    /// assert_eq!((answer.id.as_str(), answer.content.as_str()), ("r1", "Hello"));
    /// assert_eq!(answer.finish_reason, Some(FinishReason::Stop));
    /// ```
    pub fn from_chunks<'a>(chunks: impl IntoIterator<Item = &'a ChatChunk>) -> Self {
        let mut answer = Self::default();
        for chunk in chunks {
            answer.append(chunk);
        }
        answer
    }

    /// Adds one chunk of a stream to the answer (see [`ChatResponse::from_chunks`]).
    pub fn append(&mut self, chunk: &ChatChunk) {
        self.append_meta(chunk);
        self.content.push_str(&chunk.delta);
        for piece in &chunk.tool_calls {
            let index = piece.index as usize;
            if self.tool_calls.len() <= index {
                self.tool_calls.resize_with(index + 1, || ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
            }
            let call = &mut self.tool_calls[index];
            call.id.push_str(piece.id.as_deref().unwrap_or(""));
            call.name.push_str(piece.name.as_deref().unwrap_or(""));
            call.arguments
                .push_str(piece.arguments.as_deref().unwrap_or(""));
        }
    }

    /// The chunk's id, model, finish reason and usage, without its text.
    pub(crate) fn append_meta(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if chunk.finish_reason.is_some() {
            self.finish_reason.clone_from(&chunk.finish_reason);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }
}

impl ReportsUsage for ChatResponse {
    fn token_usage(&self) -> Option<TokenUsage> {
        self.usage.map(|u| u.tokens())
    }
}

impl Streamable for ChatResponse {
    type Chunk = ChatChunk;
}

/// A piece of a tool call, as streamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer this piece belongs to.
    pub index: u32,
    /// The call's id, on its first piece.
    pub id: Option<String>,
    /// The function's name, on its first piece.
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    pub arguments: Option<String>,
}

/// One chunk of a streamed answer: more text or tool-call pieces; the last chunks carry
/// the finish reason and the usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The provider's id of the response.
    pub id: String,
    /// The model that answers.
    pub model: String,
    /// More of the answer's text.
    pub delta: String,
    /// More of the tool calls.
    pub tool_calls: Vec<ToolCallDelta>,
    /// Why it stopped, on the chunk that ends the answer.
    pub finish_reason: Option<FinishReason>,
    /// What it used, on the provider's final chunk.
    pub usage: Option<Usage>,
}

impl ReportsUsage for ChatChunk {
    fn token_usage(&self) -> Option<TokenUsage> {
        self.usage.map(|u| u.tokens())
    }

    /// About four characters a token, at least one for a chunk that carries anything.
    fn estimated_output_tokens(&self) -> u64 {
        let chars = self.delta.chars().count()
            + self
                .tool_calls
                .iter()
                .map(|t| t.arguments.as_deref().map_or(0, str::len))
                .sum::<usize>();
        (chars as u64).div_ceil(4).max(u64::from(chars > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_bound_counts_every_byte_a_request_sends() {
        let mut req = ChatRequest::new(vec![
            Message::user("héllo"),
            Message {
                role: Role::Assistant,
                content: String::new(),
                tool_call_id: None,
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                }],
            },
            Message {
                role: Role::Tool,
                content: "42".into(),
                tool_call_id: Some("c1".into()),
                tool_calls: Vec::new(),
            },
        ]);
        req.tools = Some("[1]".into());
        req.tool_choice = Some("\"auto\"".into());
        // 6 bytes of text, 2 + 1 + 2 of the call, 2 + 2 of the answer, 3 + 6 of tools.
        assert_eq!(req.max_input_tokens(), 6 + 5 + 4 + 9 + 3 * 8);
        assert_eq!(req.max_usage(), None);
        req.max_tokens = Some(100);
        assert_eq!(req.max_usage(), Some(TokenUsage::new(48, 100)));
    }
}
