//! Provider clients for tta workflows: provider-neutral chat types ([`ChatRequest`],
//! [`ChatResponse`], [`ChatChunk`]) and two clients: [`OpenAiCompatible`], of the OpenAI
//! chat completions API (OpenAI, and the servers that speak it: vLLM, llama.cpp, Ollama,
//! Groq, OpenRouter, LiteLLM...), and [`Anthropic`], of the Messages API. A client is a
//! primitive that calls (`WorkflowPrimitive`) and streams (`StreamPrimitive`), and tells
//! a router its provider, model, [`price`](OpenAiBuilder::price) and
//! [`context_window`](OpenAiBuilder::context_window) ([`tta_core::ModelInfo`]), so it is a
//! router's route as it is: `tta_router::Route::client("openai", client)`.
//!
//! # From HTTP to error classes
//!
//! | the provider answers | class |
//! |---|---|
//! | 429 (with `Retry-After` in seconds or as an HTTP date, or `retry-after-ms`; without them, the latest of OpenAI's `x-ratelimit-reset-requests` and `-tokens` durations and Anthropic's `anthropic-ratelimit-*-reset` times) | `rate_limited { retry_after }` |
//! | 500, 502, 503, 504, 529 (Anthropic's overloaded), 408; a refused or reset connection; no answer in time | `unavailable` |
//! | 400 with a context-length code or message | `context_length` |
//! | a content-filter code, or a `content_filter` finish (Anthropic: `refusal`) | `content_filter` |
//! | other 400, 404, 413, 422 | `invalid_request` |
//! | 401, 403 | `auth` |
//! | 200 with a body that is not the API's JSON (empty, HTML) | `unavailable` |
//!
//! The provider's error message, at most 300 characters, is the error's message; a body
//! that is not the provider's JSON (a proxy's error page) is described by its size, never
//! copied. The API key is never printed (`Debug` leaves it out, the header is marked
//! sensitive). Cancelling a call (its context, or dropping its future) or dropping a
//! stream closes the HTTP request.
//!
//! # Tools
//!
//! Tools and the tool choice are JSON, passed through. The Anthropic client translates
//! the ones written in OpenAI's shape (`{"type": "function", "function": {name,
//! description, parameters}}`; `auto`, `none`, `required`, a named function) into the
//! Messages API's, so one request with tools can go to either provider; tools in
//! Anthropic's own shape are sent as given.
//!
//! # Telemetry
//!
//! Each call or stream is one span (`llm`, or the client's name) with the GenAI
//! attributes: operation, provider, request and response model, response id, finish
//! reasons and usage. Message text is never recorded unless the builder's
//! [`capture_content`](OpenAiBuilder::capture_content) is on; then the span (never a
//! metric) has `gen_ai.input.messages` and `gen_ai.output.messages` as JSON, a stream's
//! answer joined from its chunks.
//!
//! # Streams
//!
//! OpenAI streams ask for usage (`stream_options.include_usage`). The first chunk is the first
//! one that carries anything (content, a tool-call delta, a finish reason or usage): the
//! role-only preamble is not a chunk, so the time to the first chunk is the time to the
//! first token. The usage-only chunk (with empty `choices`) is kept. Anthropic streams
//! take the input usage from `message_start` and hand the whole usage, with the stop
//! reason, on the `message_delta` chunk; `ping` and `message_start` are not chunks. A
//! body that ends without its terminator (`[DONE]`, `message_stop`), a chunk that is not
//! JSON (or, for OpenAI, not the API's shape: a field of the wrong type), an `error`
//! event or a cut connection is an error item of the stream, never a clean end.
//!
//! # Examples
//!
//! ```no_run
//! use tta_core::{WorkflowContext, WorkflowPrimitive};
//! use tta_llm::{ChatRequest, Message, OpenAiCompatible};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = OpenAiCompatible::builder("https://api.openai.com/v1")
//!     .api_key_env("OPENAI_API_KEY")
//!     .model("gpt-4o-mini")
//!     .build()?;
//! let answer = client
//!     .execute(ChatRequest::new(vec![Message::user("Hello!")]), &WorkflowContext::new())
//!     .await?;
//! println!("{} ({:?})", answer.content, answer.usage);
//! # Ok(()) }
//! ```
#![doc(test(attr(deny(warnings))))]

mod anthropic;
mod error;
mod http;
mod openai;
mod sse;
mod types;

pub use anthropic::{Anthropic, AnthropicBuilder, DEFAULT_VERSION};
pub use error::BuildError;
pub use openai::{OpenAiBuilder, OpenAiCompatible};
pub use types::{
    ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, Role, ToolCall, ToolCallDelta,
    Usage,
};
