//! Simulated LLM providers: loopback HTTP servers speaking the OpenAI chat completions
//! API or the Anthropic Messages API (the scripted server of `tta_tests::llm_server`,
//! with a responder per provider), with different prices, context windows, latency
//! distributions (with tails) and faults on the wire: 429 with a retry hint, 503,
//! context-length 400s, billed failures, hangs, slow first chunks, cut and stalled
//! streams.
//!
//! A request's behaviour is drawn from the run's seed, the provider, the request's text
//! and how many times this provider has seen that text: at `--concurrency 1` a run is
//! reproducible, and at any concurrency one prompt meets the same faults in the same
//! order on each provider.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{Value, json};
use tta_observability_integration::Price;
use tta_tests::llm_server::{End, LlmServer, Recorded, Reply};

/// The wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI's chat completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic's Messages API (`POST /v1/messages`).
    Anthropic,
}

impl Protocol {
    /// `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
        }
    }
}

/// How a simulated provider behaves.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// The route's name.
    pub name: &'static str,
    /// The provider, for `gen_ai.provider.name`.
    pub provider: &'static str,
    /// The model it answers as.
    pub model: &'static str,
    /// The protocol it speaks.
    pub protocol: Protocol,
    /// USD per 1k input tokens.
    pub price_in: f64,
    /// USD per 1k output tokens.
    pub price_out: f64,
    /// A flat price per call instead of token prices.
    pub per_call: Option<f64>,
    /// Input plus `max_tokens` above this is a 400 context-length error.
    pub context_window: u64,
    /// Median latency of a whole answer.
    pub median_ms: f64,
    /// Log-normal spread.
    pub sigma: f64,
    /// Share of answers in the slow tail (5x slower; a stream's first chunk too).
    pub tail_rate: f64,
    /// Share of requests refused with 503 or 429.
    pub error_rate: f64,
    /// Share of requests that fail after being billed: a call's answer is filtered
    /// (`content_filter`, usage reported), a stream is cut mid-answer.
    pub billed_error_rate: f64,
    /// Share of streams that stall after their first chunks.
    pub stall_rate: f64,
    /// Share of requests that are accepted and never answered.
    pub hang_rate: f64,
}

impl Profile {
    /// The route's price.
    pub fn price(&self) -> Price {
        match self.per_call {
            Some(usd) => Price::per_call(usd),
            None => Price::per_1k_tokens(self.price_in, self.price_out),
        }
    }
}

/// The demo's providers, most expensive first.
pub const PROFILES: [Profile; 4] = [
    Profile {
        name: "frontier",
        provider: "openai",
        model: "gpt-4o",
        protocol: Protocol::OpenAi,
        price_in: 0.0025,
        price_out: 0.01,
        per_call: None,
        context_window: 128_000,
        median_ms: 420.0,
        sigma: 0.35,
        tail_rate: 0.02,
        error_rate: 0.01,
        billed_error_rate: 0.002,
        stall_rate: 0.002,
        hang_rate: 0.002,
    },
    Profile {
        name: "balanced",
        provider: "anthropic",
        model: "claude-haiku",
        protocol: Protocol::Anthropic,
        price_in: 0.0008,
        price_out: 0.004,
        per_call: None,
        context_window: 200_000,
        median_ms: 260.0,
        sigma: 0.4,
        tail_rate: 0.03,
        error_rate: 0.02,
        billed_error_rate: 0.003,
        stall_rate: 0.003,
        hang_rate: 0.003,
    },
    Profile {
        name: "budget",
        provider: "mistral",
        model: "mistral-small",
        protocol: Protocol::OpenAi,
        price_in: 0.0001,
        price_out: 0.0003,
        per_call: None,
        context_window: 32_000,
        median_ms: 180.0,
        sigma: 0.5,
        tail_rate: 0.04,
        error_rate: 0.04,
        billed_error_rate: 0.005,
        stall_rate: 0.005,
        hang_rate: 0.005,
    },
    // The self-hosted last resort: slow, dear per call, a small context, never fails.
    Profile {
        name: "local",
        provider: "vllm",
        model: "llama-3.1-8b",
        protocol: Protocol::OpenAi,
        price_in: 0.0,
        price_out: 0.0,
        per_call: Some(0.02),
        context_window: 2_048,
        median_ms: 120.0,
        sigma: 0.2,
        tail_rate: 0.0,
        error_rate: 0.0,
        billed_error_rate: 0.0,
        stall_rate: 0.0,
        hang_rate: 0.0,
    },
];

/// The load tests' provider ([`Providers::steady`]): the same latency for every answer,
/// and no faults.
pub const STEADY: Profile = Profile {
    name: "steady",
    provider: "openai",
    model: "steady-1",
    protocol: Protocol::OpenAi,
    price_in: 0.0005,
    price_out: 0.0015,
    per_call: None,
    context_window: 1_000_000,
    median_ms: 50.0,
    sigma: 0.0,
    tail_rate: 0.0,
    error_rate: 0.0,
    billed_error_rate: 0.0,
    stall_rate: 0.0,
    hang_rate: 0.0,
};

/// The simulated tokenizer: a token every four characters (at least one for a text).
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The simulated providers, each on its own loopback port; they stop when dropped.
pub struct Providers {
    servers: Vec<LlmServer>,
}

impl Providers {
    /// Starts one server per profile of [`PROFILES`], on `addrs` (port 0: a free one).
    ///
    /// # Errors
    ///
    /// When an address cannot be bound (in use, not local).
    pub async fn start(
        addrs: [SocketAddr; PROFILES.len()],
        seed: u64,
        latency_scale: f64,
    ) -> std::io::Result<Self> {
        let mut servers = Vec::with_capacity(PROFILES.len());
        for (i, (profile, addr)) in PROFILES.iter().zip(addrs).enumerate() {
            let server = LlmServer::bind(addr).await?;
            let sim = Simulated::new(*profile, i, seed, latency_scale);
            server.respond_with(move |request| sim.reply(request));
            servers.push(server);
        }
        Ok(Self { servers })
    }

    /// Starts them on free loopback ports.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start_anywhere(seed: u64, latency_scale: f64) -> std::io::Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start([any; PROFILES.len()], seed, latency_scale).await
    }

    /// Starts one provider for load tests on `addr`: OpenAI's protocol, no faults, no
    /// spread, every answer (a stream's last chunk) after `latency`, a stream's first
    /// content chunk after a third of it (`cargo xtask loadtest`).
    ///
    /// # Errors
    ///
    /// When `addr` cannot be bound.
    pub async fn steady(addr: SocketAddr, latency: Duration) -> std::io::Result<Self> {
        let profile = Profile {
            median_ms: latency.as_secs_f64() * 1_000.0,
            ..STEADY
        };
        let server = LlmServer::bind(addr).await?;
        let sim = Simulated::new(profile, 0, 0, 1.0);
        server.respond_with(move |request| sim.reply(request));
        Ok(Self {
            servers: vec![server],
        })
    }

    /// The `[providers.NAME]` sections of a tta-gateway configuration for these
    /// providers: each profile's protocol, base URL, model, prices and context window
    /// (what `crates/tta-gateway/gateway.example.toml` writes out for the fixed ports).
    pub fn gateway_toml(&self) -> String {
        let mut toml = String::new();
        for (i, p) in PROFILES.iter().enumerate().take(self.servers.len()) {
            toml.push_str(&format!(
                "[providers.{name}]\nkind = \"{kind}\"\nbase_url = \"{url}\"\n[providers.{name}.models.\"{model}\"]\n",
                name = p.name,
                kind = p.protocol.as_str(),
                url = self.base_url(i),
                model = p.model,
            ));
            match p.per_call {
                Some(usd) => toml.push_str(&format!("per_call = {usd}\n")),
                None => toml.push_str(&format!(
                    "input_per_1k = {}\noutput_per_1k = {}\n",
                    p.price_in, p.price_out
                )),
            }
            toml.push_str(&format!("context_window = {}\n\n", p.context_window));
        }
        toml
    }

    /// The base URL of the `i`-th provider (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self, i: usize) -> String {
        self.servers[i].base_url()
    }
}

/// One provider's behaviour, as a responder.
struct Simulated {
    profile: Profile,
    salt: u64,
    seed: u64,
    latency_scale: f64,
    latency: LogNormal<f64>,
    /// How many times each text was seen.
    seen: Mutex<HashMap<u64, u64>>,
}

/// What one request asks for, as the provider reads it.
struct Asked {
    text_hash: u64,
    input_tokens: u64,
    max_tokens: u64,
    stream: bool,
}

impl Simulated {
    fn new(profile: Profile, index: usize, seed: u64, latency_scale: f64) -> Self {
        // mu = ln(median); sigma as given (a valid, finite spread).
        let latency = LogNormal::new(profile.median_ms.ln(), profile.sigma)
            .expect("finite log-normal parameters");
        Self {
            profile,
            salt: (index as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93),
            seed,
            latency_scale,
            latency,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the request's text (every message, and Anthropic's `system`).
    fn asked(&self, body: &Value) -> Asked {
        let mut hasher = DefaultHasher::new();
        let mut input_tokens = 0;
        let mut add = |text: &str| {
            text.hash(&mut hasher);
            input_tokens += tokens(text);
        };
        if let Some(system) = body["system"].as_str() {
            add(system);
        }
        for message in body["messages"].as_array().into_iter().flatten() {
            match &message["content"] {
                Value::String(text) => add(text),
                Value::Array(blocks) => blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .for_each(&mut add),
                _ => {}
            }
        }
        Asked {
            text_hash: hasher.finish(),
            input_tokens,
            max_tokens: body["max_tokens"].as_u64().unwrap_or(256).max(1),
            stream: body["stream"].as_bool().unwrap_or(false),
        }
    }

    fn reply(&self, request: &Recorded) -> Reply {
        let asked = self.asked(&request.body);
        let nth = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let n = seen.entry(asked.text_hash).or_insert(0);
            *n += 1;
            *n
        };
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ self.salt ^ asked.text_hash ^ nth.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let p = &self.profile;
        if asked.input_tokens + asked.max_tokens > p.context_window {
            return self.context_length(&asked);
        }
        let roll: f64 = rng.random();
        if roll < p.hang_rate {
            return Reply::Hang;
        }
        let mut ms = self.latency.sample(&mut rng);
        let tail = rng.random_bool(p.tail_rate);
        if tail {
            ms *= 5.0;
        }
        let latency = Duration::from_secs_f64(ms * self.latency_scale / 1_000.0);
        let mut limit = p.hang_rate + p.error_rate;
        if roll < limit {
            // A 429 holds the route until its hint: one in ten refusals.
            let refusal = if rng.random_bool(0.9) {
                self.error(503, "overloaded", "the server is overloaded", &[])
            } else {
                // A hint the scaled run can wait out.
                let ms = (100.0 * self.latency_scale).round().to_string();
                self.error(
                    429,
                    "rate_limit_exceeded",
                    "rate limit reached",
                    &[("retry-after-ms", &ms)],
                )
            };
            return Reply::After(latency, Box::new(refusal));
        }
        limit += p.billed_error_rate;
        let billed_failure = roll < limit;
        let stall = !billed_failure && asked.stream && roll < limit + p.stall_rate;
        let text = answer_text(p.model, asked.max_tokens);
        if !asked.stream {
            let finish = if billed_failure {
                "content_filter"
            } else {
                "stop"
            };
            return Reply::After(latency, Box::new(self.whole(&asked, &text, finish)));
        }
        // A stream: the first chunk after a share of the latency (all of a tail's),
        // the rest spread over what is left.
        let first = if tail { latency / 2 } else { latency / 3 };
        let end = if billed_failure {
            End::Cut
        } else if stall {
            End::Stall
        } else {
            End::Close
        };
        self.stream(&asked, &text, first, latency - first, end)
    }

    fn error(&self, status: u16, code: &str, message: &str, headers: &[(&str, &str)]) -> Reply {
        let body = match self.profile.protocol {
            Protocol::OpenAi => {
                json!({"error": {"message": message, "type": "server_error", "code": code}})
            }
            Protocol::Anthropic => {
                json!({"type": "error", "error": {"type": code, "message": message}})
            }
        };
        let mut headers = headers.to_vec();
        headers.push(("content-type", "application/json"));
        Reply::status(status, &headers, &body.to_string())
    }

    fn context_length(&self, asked: &Asked) -> Reply {
        let window = self.profile.context_window;
        let asked_for = asked.input_tokens + asked.max_tokens;
        let body = match self.profile.protocol {
            Protocol::OpenAi => json!({"error": {
                "message": format!("This model's maximum context length is {window} tokens; you requested {asked_for}."),
                "type": "invalid_request_error", "code": "context_length_exceeded"}}),
            Protocol::Anthropic => json!({"type": "error", "error": {
                "type": "invalid_request_error",
                "message": format!("prompt is too long: {asked_for} tokens > {window} maximum")}}),
        };
        Reply::status(
            400,
            &[("content-type", "application/json")],
            &body.to_string(),
        )
    }

    fn id(&self, asked: &Asked) -> String {
        format!("{}-{:016x}", self.profile.name, asked.text_hash)
    }

    /// A whole answer of `text`, finished by `finish`, billed in full.
    fn whole(&self, asked: &Asked, text: &str, finish: &str) -> Reply {
        let (model, id) = (self.profile.model, self.id(asked));
        let (input, output) = (asked.input_tokens, asked.max_tokens);
        Reply::json(match self.profile.protocol {
            Protocol::OpenAi => json!({
                "id": id, "object": "chat.completion", "created": 1_700_000_000_u64, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish}],
                "usage": {"prompt_tokens": input, "completion_tokens": output,
                          "total_tokens": input + output}
            }),
            Protocol::Anthropic => json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": if finish == "stop" { "end_turn" } else { "refusal" },
                "usage": {"input_tokens": input, "output_tokens": output}
            }),
        })
    }

    /// `text` as a stream: its first chunk after `first`, the others over `rest`; a
    /// stream that does not close is cut or stalls halfway.
    fn stream(
        &self,
        asked: &Asked,
        text: &str,
        first: Duration,
        rest: Duration,
        end: End,
    ) -> Reply {
        let (model, id) = (self.profile.model, self.id(asked));
        let (input, output) = (asked.input_tokens, asked.max_tokens);
        let pieces = split(text, (output / 8).clamp(1, 48) as usize);
        let gap = rest / pieces.len() as u32;
        let closes = matches!(end, End::Close);
        let sent = if closes {
            pieces.len()
        } else {
            pieces.len().div_ceil(2)
        };
        let mut values: Vec<Value> = Vec::with_capacity(sent + 4);
        match self.profile.protocol {
            Protocol::OpenAi => {
                let chunk = |choices: Value| {
                    json!({"id": id, "object": "chat.completion.chunk",
                           "created": 1_700_000_000_u64, "model": model, "choices": choices})
                };
                values.push(chunk(json!([{"index": 0, "delta": {"role": "assistant"}}])));
                values.extend(pieces[..sent].iter().map(|piece| {
                    chunk(json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]))
                }));
                if closes {
                    values.push(chunk(
                        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                    ));
                    let mut usage = chunk(json!([]));
                    usage["usage"] = json!({"prompt_tokens": input, "completion_tokens": output,
                                            "total_tokens": input + output});
                    values.push(usage);
                }
            }
            Protocol::Anthropic => {
                values.push(
                    json!({"type": "message_start", "message": {"id": id, "model": model,
                    "usage": {"input_tokens": input, "output_tokens": 1}}}),
                );
                values.extend(pieces[..sent].iter().map(|piece| {
                    json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": piece}})
                }));
                if closes {
                    values.push(
                        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                       "usage": {"output_tokens": output}}),
                    );
                    values.push(json!({"type": "message_stop"}));
                }
            }
        }
        let mut reply = match self.profile.protocol {
            Protocol::OpenAi => Reply::events(&values, gap, closes, end),
            Protocol::Anthropic => Reply::typed_events(&values, gap, end),
        };
        // The preamble at once, the first piece after `first`.
        if let Reply::Events { frames, .. } = &mut reply {
            frames[0].0 = Duration::ZERO;
            if let Some(frame) = frames.get_mut(1) {
                frame.0 = first;
            }
        }
        reply
    }
}

/// An answer of about `output` tokens.
fn answer_text(model: &str, output: u64) -> String {
    let chars = (output * 4) as usize;
    let mut text = format!("[{model}] ");
    while text.len() < chars {
        text.push_str("Here is what happened and what to do next. ");
    }
    text.truncate(chars.max(16));
    text
}

/// `text` in `n` pieces of about the same length (on character boundaries).
fn split(text: &str, n: usize) -> Vec<&str> {
    let size = text.len().div_ceil(n.max(1)).max(1);
    let mut pieces = Vec::with_capacity(n);
    let mut rest = text;
    while !rest.is_empty() {
        let mut at = size.min(rest.len());
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        let (piece, tail) = rest.split_at(at);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
