//! What the `llm` bench and the `llm_instructions` example share: the scripted answers,
//! the same request written for each client, and the three clients (a hand-written
//! reqwest call, tta's `OpenAiCompatible`, async-openai) against two loopback providers.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequest,
    CreateChatCompletionRequestArgs,
};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tta_observability_integration::llm::{ChatRequest, Message, OpenAiCompatible};
use tta_observability_integration::{StreamPrimitive, WorkflowContext, WorkflowPrimitive};
use tta_tests::llm_server::{End, LlmServer, Reply};

/// Chunks of the streamed answer.
pub(crate) const CHUNKS: usize = 32;

/// The answer's text.
pub(crate) const ANSWER: &str = "The answer is 42.";

pub(crate) fn completion() -> Value {
    json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000_u64,
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    })
}

pub(crate) fn events() -> Vec<Value> {
    // The whole chunk object OpenAI sends: async-openai's types require `object` and
    // `created`.
    let chunk = |choices: Value| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1_700_000_000_u64,
               "model": "bench-model", "choices": choices})
    };
    let mut frames: Vec<Value> = (0..CHUNKS)
        .map(|i| {
            chunk(
                json!([{"index": 0, "delta": {"content": format!("tok{i} ")},
                          "finish_reason": null}]),
            )
        })
        .collect();
    let mut usage = chunk(json!([]));
    usage["usage"] =
        json!({"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS});
    frames.push(usage);
    frames
}

pub(crate) fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::user("What is the answer?")]).max_tokens(16)
}

/// The JSON `OpenAiCompatible` sends for [`request`], written by hand.
pub(crate) fn raw_body(stream: bool) -> Value {
    let mut body = json!({
        "model": "bench-model",
        "messages": [{"role": "user", "content": "What is the answer?"}],
        "max_tokens": 16,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// The same request in async-openai's types.
pub(crate) fn peer_request(stream: bool) -> CreateChatCompletionRequest {
    let mut args = CreateChatCompletionRequestArgs::default();
    args.model("bench-model")
        .messages([ChatCompletionRequestUserMessage::from("What is the answer?").into()])
        .max_tokens(16_u32);
    if stream {
        args.stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        });
    }
    args.build().expect("a request")
}

/// The three clients, each with a provider of its own for calls and one for streams.
pub(crate) struct Clients {
    pub(crate) raw: reqwest::Client,
    pub(crate) call_url: String,
    pub(crate) stream_url: String,
    pub(crate) call: OpenAiCompatible,
    pub(crate) stream: OpenAiCompatible,
    pub(crate) call_peer: async_openai::Client<OpenAIConfig>,
    pub(crate) stream_peer: async_openai::Client<OpenAIConfig>,
}

impl Clients {
    /// Starts a provider for calls and one for streams, each answering every request
    /// alike, and the three clients of each; the servers stop when dropped.
    pub(crate) async fn start() -> ([LlmServer; 2], Self) {
        let call_server = LlmServer::start().await;
        call_server.always(Reply::json(completion()));
        let stream_server = LlmServer::start().await;
        stream_server.always(Reply::events(&events(), Duration::ZERO, true, End::Close));
        let client = |server: &LlmServer| {
            OpenAiCompatible::builder(server.base_url())
                .api_key("sk-bench")
                .model("bench-model")
                .build()
                .expect("a client")
        };
        let peer = |server: &LlmServer| {
            async_openai::Client::with_config(
                OpenAIConfig::new()
                    .with_api_base(server.base_url())
                    .with_api_key("sk-bench"),
            )
        };
        let clients = Self {
            call: client(&call_server),
            stream: client(&stream_server),
            call_peer: peer(&call_server),
            stream_peer: peer(&stream_server),
            // After a tta client is built, rustls has its process-wide provider.
            raw: reqwest::Client::new(),
            call_url: format!("{}/chat/completions", call_server.base_url()),
            stream_url: format!("{}/chat/completions", stream_server.base_url()),
        };
        ([call_server, stream_server], clients)
    }
    pub(crate) async fn raw_call(&self) -> String {
        let response = self
            .raw
            .post(&self.call_url)
            .bearer_auth("sk-bench")
            .json(&raw_body(false))
            .send()
            .await
            .expect("a response");
        let value: Value = response.json().await.expect("JSON");
        value["choices"][0]["message"]["content"]
            .as_str()
            .expect("content")
            .to_owned()
    }

    pub(crate) async fn tta_call(&self) -> String {
        self.call
            .execute(request(), &WorkflowContext::new())
            .await
            .expect("an answer")
            .content
    }

    pub(crate) async fn peer_call(&self) -> String {
        let answer = self
            .call_peer
            .chat()
            .create(peer_request(false))
            .await
            .expect("an answer");
        answer.choices[0].message.content.clone().expect("content")
    }

    /// The raw stream's events, after its first content delta (whose length is given).
    pub(crate) async fn raw_first(
        self: Arc<Self>,
    ) -> (
        usize,
        impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>>,
    ) {
        let response = self
            .raw
            .post(&self.stream_url)
            .bearer_auth("sk-bench")
            .json(&raw_body(true))
            .send()
            .await
            .expect("a response");
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let value: Value = serde_json::from_str(&event.expect("an event").data).expect("JSON");
            if let Some(delta) = value["choices"][0]["delta"]["content"].as_str() {
                return (delta.len(), events);
            }
        }
        panic!("the stream has no content")
    }

    /// Bytes of text in the raw stream.
    pub(crate) async fn raw_stream(self: Arc<Self>) -> usize {
        let (mut text, mut events) = self.raw_first().await;
        while let Some(event) = events.next().await {
            let event = event.expect("an event");
            if event.data == "[DONE]" {
                break;
            }
            let value: Value = serde_json::from_str(&event.data).expect("JSON");
            if let Some(delta) = value["choices"][0]["delta"]["content"].as_str() {
                text += black_box(delta).len();
            }
        }
        text
    }

    pub(crate) async fn tta_stream(&self) -> usize {
        let mut body = self
            .stream
            .stream(request(), &WorkflowContext::new())
            .await
            .expect("a stream");
        let mut text = 0;
        while let Some(chunk) = body.next().await {
            text += black_box(chunk.expect("a chunk")).delta.len();
        }
        text
    }

    pub(crate) async fn peer_open(
        &self,
    ) -> async_openai::types::chat::ChatCompletionResponseStream {
        self.stream_peer
            .chat()
            .create_stream(peer_request(true))
            .await
            .expect("a stream")
    }

    pub(crate) async fn peer_stream(&self) -> usize {
        let mut body = self.peer_open().await;
        let mut text = 0;
        while let Some(chunk) = body.next().await {
            if let Some(choice) = chunk.expect("a chunk").choices.first() {
                text += black_box(choice.delta.content.as_deref().map_or(0, str::len));
            }
        }
        text
    }
}
