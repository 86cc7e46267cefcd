//! OpenAI's chat completions wire format: requests in, answers, chunks and errors out.

use serde::Serialize;
use serde_json::{Value, json};
use tta_core::{Error, ErrorClass, ErrorKind};
use tta_llm::{ChatChunk, ChatRequest, ChatResponse, FinishReason, Message, Role, ToolCall};

/// A parsed request: the neutral request, and how to answer it.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) model: String,
    pub(crate) request: ChatRequest,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
}

/// An error answered to the client: status, OpenAI's `type` and `code`, a message, and
/// the retry-after for 429 and 503.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) kind: &'static str,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    pub(crate) retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub(crate) fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    fn invalid(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(400, "invalid_request_error", "invalid_value", message);
        e.param = Some(param.to_owned());
        e
    }

    /// OpenAI's error object.
    pub(crate) fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }

    /// The answer to a failed request, by the error's kind and class.
    pub(crate) fn from_error(e: &Error) -> Self {
        // When every route failed, the last attempt says what the client can do.
        let last = e.attempts().last().map(|a| a.error());
        let cause = last.unwrap_or(e);
        let mut api = match (cause.kind(), cause.class()) {
            (ErrorKind::Limited, _) => {
                let budget = cause
                    .downcast_ref::<tta_limit::LimitExceeded>()
                    .is_some_and(|l| l.resource() == tta_limit::Resource::Usd);
                // A limit whose store cannot answer, failing closed: not spent, only
                // unknown for now; a retry may pass.
                if let Some(down) = cause.downcast_ref::<tta_limit::StoreUnavailable>() {
                    let (code, message) = if down.0 == tta_limit::Resource::Usd {
                        (
                            "budget_unavailable",
                            "this key's budget cannot be checked now; retry later",
                        )
                    } else {
                        (
                            "limits_unavailable",
                            "this key's rate limits cannot be checked now; retry later",
                        )
                    };
                    Self::new(503, "server_error", code, message)
                } else if budget {
                    Self::new(
                        429,
                        "insufficient_quota",
                        "insufficient_quota",
                        "this key's budget is spent for now",
                    )
                } else {
                    Self::new(
                        429,
                        "requests",
                        "rate_limit_exceeded",
                        "this key's rate limit is reached",
                    )
                }
            }
            (ErrorKind::Timeout, _) => Self::new(
                504,
                "timeout",
                "timeout",
                "the providers did not answer in time",
            ),
            (ErrorKind::Cancelled, _) => {
                Self::new(499, "cancelled", "cancelled", "the request was cancelled")
            }
            (_, ErrorClass::RateLimited { .. }) => Self::new(
                429,
                "requests",
                "rate_limit_exceeded",
                "every provider is rate limiting",
            ),
            (_, ErrorClass::ContextLength) => Self::new(
                400,
                "invalid_request_error",
                "context_length_exceeded",
                "the prompt is longer than every model's context window",
            ),
            (_, ErrorClass::ContentFilter) => Self::new(
                400,
                "invalid_request_error",
                "content_filter",
                "the answer was filtered by the provider",
            ),
            (_, ErrorClass::InvalidRequest) => Self::new(
                400,
                "invalid_request_error",
                "invalid_request",
                "the provider rejected the request",
            ),
            (_, ErrorClass::Auth) => Self::new(
                502,
                "upstream_error",
                "upstream_auth",
                "the gateway's provider credentials were refused",
            ),
            (_, ErrorClass::Unavailable) => Self::new(
                503,
                "server_error",
                "unavailable",
                "no provider could answer",
            ),
            _ => Self::new(
                502,
                "server_error",
                "upstream_error",
                "the providers failed",
            ),
        };
        if api.status == 429 || api.status == 503 {
            let after = e.retry_after().or_else(|| cause.retry_after());
            api.retry_after = Some(after.unwrap_or(std::time::Duration::from_secs(1)));
        }
        api
    }
}

fn string(v: &Value, param: &str) -> Result<String, ApiError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid(param, format!("{param} must be a string")))
}

/// A message's content: a string, or an array of text parts (other parts are refused).
fn content(v: Option<&Value>, param: &str) -> Result<String, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let at = format!("{param}[{i}]");
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(t)) => text.push_str(&string(t, &format!("{at}.text"))?),
                    _ => {
                        return Err(ApiError::invalid(
                            &at,
                            format!("{at}: only text parts are supported"),
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(ApiError::invalid(
            param,
            format!("{param} must be a string or an array of parts"),
        )),
    }
}

fn message(v: &Value, i: usize) -> Result<Message, ApiError> {
    let at = format!("messages[{i}]");
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid(&at, format!("{at} must be an object")))?;
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        _ => {
            return Err(ApiError::invalid(
                &format!("{at}.role"),
                format!("{at}.role must be system, developer, user, assistant or tool"),
            ));
        }
    };
    let mut m = Message {
        role,
        content: content(obj.get("content"), &format!("{at}.content"))?,
        tool_call_id: None,
        tool_calls: Vec::new(),
    };
    if let Some(id) = obj.get("tool_call_id") {
        m.tool_call_id = Some(string(id, &format!("{at}.tool_call_id"))?);
    }
    if let Some(calls) = obj.get("tool_calls") {
        let calls = calls.as_array().ok_or_else(|| {
            ApiError::invalid(
                &format!("{at}.tool_calls"),
                format!("{at}.tool_calls must be an array"),
            )
        })?;
        for (j, c) in calls.iter().enumerate() {
            let cat = format!("{at}.tool_calls[{j}]");
            let f = c.get("function").unwrap_or(&Value::Null);
            m.tool_calls.push(ToolCall {
                id: string(c.get("id").unwrap_or(&Value::Null), &format!("{cat}.id"))?,
                name: string(
                    f.get("name").unwrap_or(&Value::Null),
                    &format!("{cat}.function.name"),
                )?,
                arguments: string(
                    f.get("arguments").unwrap_or(&Value::Null),
                    &format!("{cat}.function.arguments"),
                )?,
            });
        }
    }
    Ok(m)
}

/// Reads an OpenAI chat completions request. Fields it does not know are kept and sent
/// to the provider verbatim.
pub(crate) fn parse(body: &[u8]) -> Result<Parsed, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    let model = string(obj.get("model").unwrap_or(&Value::Null), "model")?;
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("messages", "messages must be an array"))?;
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages must not be empty"));
    }
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(m, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut request = ChatRequest::new(messages);
    let uint = |v: &Value, param: &str| {
        v.as_u64()
            .filter(|&n| n > 0)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ApiError::invalid(param, format!("{param} must be a positive integer")))
    };
    let float = |v: &Value, param: &str| {
        v.as_f64()
            .ok_or_else(|| ApiError::invalid(param, format!("{param} must be a number")))
    };
    let mut stream = false;
    let mut include_usage = false;
    for key in obj.keys().cloned().collect::<Vec<_>>() {
        let Some(v) = obj.remove(&key) else { continue };
        if v.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" => {}
            "max_tokens" | "max_completion_tokens" => request.max_tokens = Some(uint(&v, &key)?),
            "temperature" => request.temperature = Some(float(&v, &key)?),
            "top_p" => request.top_p = Some(float(&v, &key)?),
            "stop" => {
                request.stop = match v {
                    Value::String(s) => vec![s],
                    Value::Array(items) => items
                        .iter()
                        .map(|s| string(s, "stop"))
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(ApiError::invalid(
                            "stop",
                            "stop must be a string or an array of strings",
                        ));
                    }
                }
            }
            "tools" => request.tools = Some(v.to_string()),
            "tool_choice" => request.tool_choice = Some(v.to_string()),
            "stream" => {
                stream = v
                    .as_bool()
                    .ok_or_else(|| ApiError::invalid("stream", "stream must be a boolean"))?;
            }
            "stream_options" => {
                include_usage = v
                    .get("include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            }
            // The client's own parameters (`user`, `seed`, `n`, a provider's extension):
            // passed through verbatim.
            _ => {
                request.extra.insert(key, v.to_string());
            }
        }
    }
    request.model = Some(model.clone());
    Ok(Parsed {
        model,
        request,
        stream,
        include_usage,
    })
}

/// Usage as OpenAI writes it.
#[derive(Serialize)]
pub(crate) struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl From<&tta_llm::Usage> for WireUsage {
    fn from(u: &tta_llm::Usage) -> Self {
        Self {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens.saturating_add(u.output_tokens),
        }
    }
}

/// What an answer and a chunk both are: their id, kind, time and model around their
/// choices. The answers, chunks and usage chunks borrow what they write and serialize
/// straight to JSON, with no `Value` tree.
#[derive(Serialize)]
pub(crate) struct Envelope<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

/// An answer as OpenAI writes it (see [`completion`]).
pub(crate) type Completion<'a> = Envelope<'a, [AnswerChoice<'a>; 1]>;

#[derive(Serialize)]
pub(crate) struct AnswerChoice<'a> {
    index: u32,
    message: AnswerMessage<'a>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct AnswerMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<AnswerToolCall<'a>>,
}

#[derive(Serialize)]
struct AnswerToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: AnswerFunction<'a>,
}

#[derive(Serialize)]
struct AnswerFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// An answer as OpenAI writes it, under the model name the client asked for.
pub(crate) fn completion<'a>(model: &'a str, r: &'a ChatResponse, created: u64) -> Completion<'a> {
    Completion {
        id: &r.id,
        object: "chat.completion",
        created,
        model,
        choices: [AnswerChoice {
            index: 0,
            message: AnswerMessage {
                role: "assistant",
                content: &r.content,
                tool_calls: r
                    .tool_calls
                    .iter()
                    .map(|c| AnswerToolCall {
                        id: &c.id,
                        kind: "function",
                        function: AnswerFunction {
                            name: &c.name,
                            arguments: &c.arguments,
                        },
                    })
                    .collect(),
            },
            finish_reason: r.finish_reason.as_ref().map(FinishReason::as_str),
        }],
        usage: r.usage.as_ref().map(WireUsage::from),
    }
}

/// A chunk as OpenAI streams it (see [`chunk`] and [`usage_chunk`]): one choice, or
/// none (`[]`) in the usage-only final chunk.
pub(crate) type Chunk<'a> = Envelope<'a, OneOrNone<DeltaChoice<'a>>>;

/// An array of the one value, or an empty one.
pub(crate) struct OneOrNone<T>(Option<T>);

impl<T: Serialize> Serialize for OneOrNone<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

#[derive(Serialize)]
pub(crate) struct DeltaChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<DeltaToolCall<'a>>,
}

#[derive(Serialize)]
struct DeltaToolCall<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    /// `function`, beside the call's id on its first piece.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: DeltaFunction<'a>,
}

#[derive(Serialize)]
struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
}

/// One chunk as OpenAI streams it; `first` adds the assistant role to the delta.
pub(crate) fn chunk<'a>(
    model: &'a str,
    id: &'a str,
    c: &'a ChatChunk,
    created: u64,
    first: bool,
) -> Chunk<'a> {
    Chunk {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: OneOrNone(Some(DeltaChoice {
            index: 0,
            delta: Delta {
                role: first.then_some("assistant"),
                content: (!c.delta.is_empty()).then_some(c.delta.as_str()),
                tool_calls: c
                    .tool_calls
                    .iter()
                    .map(|t| DeltaToolCall {
                        index: t.index,
                        id: t.id.as_deref(),
                        kind: t.id.as_ref().map(|_| "function"),
                        function: DeltaFunction {
                            name: t.name.as_deref(),
                            arguments: t.arguments.as_deref(),
                        },
                    })
                    .collect(),
            },
            finish_reason: c.finish_reason.as_ref().map(FinishReason::as_str),
        })),
        usage: None,
    }
}

/// The usage-only final chunk of `stream_options.include_usage`.
pub(crate) fn usage_chunk<'a>(
    model: &'a str,
    id: &'a str,
    u: &tta_llm::Usage,
    created: u64,
) -> Chunk<'a> {
    Chunk {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: OneOrNone(None),
        usage: Some(u.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_keeps_unknown_fields_and_reads_every_known_one() {
        let p = parse(br#"{"model":"chat","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
            "max_completion_tokens":7,"stop":"x","stream":true,"stream_options":{"include_usage":true},
            "seed":3,"user":"u1","tools":[{"type":"function","function":{"name":"f"}}]}"#).unwrap();
        assert_eq!(p.model, "chat");
        assert!(p.stream && p.include_usage);
        assert_eq!(p.request.max_tokens, Some(7));
        assert_eq!(p.request.stop, ["x"]);
        assert_eq!(p.request.messages[0].content, "hi");
        assert_eq!(p.request.extra["seed"], "3");
        assert_eq!(p.request.extra["user"], "\"u1\"");
        assert!(p.request.tools.as_deref().unwrap().contains("\"f\""));
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        let e = parse(b"{\"model\": 1").unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_json"));
        assert!(e.message.contains("line 1"), "{}", e.message);
        let e = parse(br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}"#,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = parse(b"\xff\xfe").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(parse(b"[]").unwrap_err().code, "invalid_json");
    }

    #[test]
    fn conversations_with_tools_and_sampling_are_read_field_by_field() {
        let p = parse(br#"{"model":"m","messages":[
            {"role":"developer","content":"be brief"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
            "temperature":0.2,"top_p":0.9,"stop":["a","b"],"stream":false,"user":null}"#)
        .unwrap();
        let m = &p.request.messages;
        assert_eq!(m[0].role, Role::System);
        assert_eq!(m[1].tool_calls[0].name, "f");
        assert_eq!(m[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(
            (p.request.temperature, p.request.top_p),
            (Some(0.2), Some(0.9))
        );
        assert_eq!(p.request.stop, ["a", "b"]);
        assert!(
            !p.stream && !p.request.extra.contains_key("user"),
            "a null is no value"
        );
        for (bad, param) in [
            (r#"{"model":"m","messages":[]}"#, "messages"),
            (r#"{"model":"m","messages":"hi"}"#, "messages"),
            (r#"{"model":"m","messages":[1]}"#, "messages[0]"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "messages[0].content[0]",
            ),
            (
                r#"{"model":"m","messages":[{"role":"assistant","tool_calls":{}}]}"#,
                "messages[0].tool_calls",
            ),
            (
                r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":1}]}]}"#,
                "messages[0].tool_calls[0].id",
            ),
            (
                r#"{"model":"m","messages":[{"role":"tool","tool_call_id":5}]}"#,
                "messages[0].tool_call_id",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":5}"#,
                "stop",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                "stream",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
                "temperature",
            ),
            (r#"{"messages":[{"role":"user","content":"x"}]}"#, "model"),
        ] {
            let e = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{bad}: {}", e.message);
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn answers_and_chunks_are_written_field_for_field_as_openai_writes_them() {
        let r = ChatResponse {
            id: "r".into(),
            model: "provider-model".into(),
            content: "Hi.".into(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            finish_reason: Some(FinishReason::ToolCalls),
            usage: Some(tta_llm::Usage {
                input_tokens: 3,
                output_tokens: 4,
                cached_input_tokens: None,
                reasoning_tokens: None,
            }),
        };
        assert_eq!(
            serde_json::to_value(completion("chat", &r, 7)).unwrap(),
            json!({"id": "r", "object": "chat.completion", "created": 7, "model": "chat",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Hi.",
                    "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "f", "arguments": "{}"}}]}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
        );
        let plain = ChatResponse {
            tool_calls: Vec::new(),
            finish_reason: None,
            usage: None,
            ..r
        };
        assert_eq!(
            serde_json::to_value(completion("chat", &plain, 7)).unwrap(),
            json!({"id": "r", "object": "chat.completion", "created": 7, "model": "chat",
                "choices": [{"index": 0, "finish_reason": null,
                    "message": {"role": "assistant", "content": "Hi."}}]})
        );
        let c = ChatChunk {
            id: "r".into(),
            delta: "lo".into(),
            finish_reason: Some(FinishReason::Stop),
            ..ChatChunk::default()
        };
        assert_eq!(
            serde_json::to_value(chunk("chat", "r", &c, 7, false)).unwrap(),
            json!({"id": "r", "object": "chat.completion.chunk", "created": 7, "model": "chat",
                "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]})
        );
        // A provider's counts too large to add: the total saturates, nothing panics.
        let huge = tta_llm::Usage {
            input_tokens: u64::MAX,
            output_tokens: 2,
            cached_input_tokens: None,
            reasoning_tokens: None,
        };
        assert_eq!(
            serde_json::to_value(usage_chunk("chat", "r", &huge, 7)).unwrap()["usage"]["total_tokens"],
            u64::MAX
        );
        let empty = ChatChunk::default();
        assert_eq!(
            serde_json::to_value(chunk("chat", "r", &empty, 7, true)).unwrap()["choices"][0],
            json!({"index": 0, "delta": {"role": "assistant"}, "finish_reason": null})
        );
    }

    #[test]
    fn streamed_tool_calls_and_usage_are_written_as_openai_streams_them() {
        let c = ChatChunk {
            id: "r".into(),
            tool_calls: vec![tta_llm::ToolCallDelta {
                index: 0,
                id: Some("c1".into()),
                name: Some("f".into()),
                arguments: Some("{\"a\"".into()),
            }],
            ..ChatChunk::default()
        };
        let v = serde_json::to_value(chunk("chat", "r", &c, 7, true)).unwrap();
        let call = &v["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (call["id"].as_str(), call["type"].as_str()),
            (Some("c1"), Some("function"))
        );
        assert_eq!(call["function"]["arguments"], "{\"a\"");
        assert_eq!(v["choices"][0]["delta"]["role"], "assistant");
        let u = tta_llm::Usage {
            input_tokens: 3,
            output_tokens: 4,
            cached_input_tokens: None,
            reasoning_tokens: None,
        };
        let v = serde_json::to_value(usage_chunk("chat", "r", &u, 7)).unwrap();
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert_eq!(v["choices"].as_array().map(Vec::len), Some(0));
    }

    #[test]
    fn each_kind_of_failure_has_its_status() {
        use std::time::Duration;
        let status = |e: Error| {
            let api = ApiError::from_error(&e);
            (api.status, api.code)
        };
        assert_eq!(status(Error::timeout("t", "late")), (504, "timeout"));
        assert_eq!(status(Error::cancelled()), (499, "cancelled"));
        assert_eq!(
            status(Error::msg("x").with_class(ErrorClass::ContentFilter)),
            (400, "content_filter")
        );
        assert_eq!(status(Error::msg("x")), (502, "upstream_error"));
        let limited = Error::limited("l", "no").with_retry_after(Duration::from_secs(9));
        let api = ApiError::from_error(&limited);
        assert_eq!((api.status, api.code), (429, "rate_limit_exceeded"));
        assert_eq!(api.retry_after, Some(Duration::from_secs(9)));
        let closed = Error::limited("l", "store down")
            .with_source(tta_limit::StoreUnavailable(tta_limit::Resource::Usd));
        assert_eq!(status(closed), (503, "budget_unavailable"));
        let closed = Error::limited("l", "store down")
            .with_source(tta_limit::StoreUnavailable(tta_limit::Resource::Requests));
        let api = ApiError::from_error(&closed);
        assert_eq!((api.status, api.code), (503, "limits_unavailable"));
        assert_eq!(api.retry_after, Some(Duration::from_secs(1)));
        // Every route failed: the last attempt decides.
        let all = Error::all_routes_failed(vec![
            tta_core::AttemptError::new("a", Error::msg("x").with_class(ErrorClass::Auth)),
            tta_core::AttemptError::new("b", Error::msg("y").with_class(ErrorClass::Unavailable)),
        ]);
        let api = ApiError::from_error(&all);
        assert_eq!((api.status, api.code), (503, "unavailable"));
        assert_eq!(api.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(api.body()["error"]["type"], "server_error");
    }
}

/// The request decoder under generated and random bodies: whatever a client sends, the
/// answer is a request with a model and messages, or a 4xx error object naming what is
/// wrong; never a panic. Run time-boxed by `cargo xtask fuzz`.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseResult;

    use super::*;

    /// Any JSON value, nested a few levels.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,8}".prop_map(Value::String),
            prop_oneof![
                Just("user"),
                Just("system"),
                Just("assistant"),
                Just("tool"),
                Just("chat")
            ]
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const FIELDS: &[&str] = &[
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "stream",
        "stream_options",
        "user",
        "seed",
    ];

    /// A valid request with some of its fields, or its first message's, replaced by any
    /// value.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec((0..FIELDS.len(), value()), 0..4),
            proptest::option::of(("role|content|tool_calls|tool_call_id|name", value())),
        )
            .prop_map(|(fields, in_message)| {
                let mut message = json!({"role": "user", "content": "hi"});
                if let Some((key, v)) = in_message {
                    message[key] = v;
                }
                let mut body = json!({"model": "chat", "messages": [message], "max_tokens": 8});
                for (i, v) in fields {
                    body[FIELDS[i]] = v;
                }
                body.to_string().into_bytes()
            })
    }

    /// A body nested `depth` levels deep in arrays or objects, and its depth.
    fn nested() -> impl Strategy<Value = (usize, Vec<u8>)> {
        (1usize..600, any::<bool>()).prop_map(|(depth, objects)| {
            let (open, close) = if objects {
                ("{\"a\":", "}")
            } else {
                ("[", "]")
            };
            let body = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            (depth, body.into_bytes())
        })
    }

    fn holds(body: &[u8]) -> TestCaseResult {
        match parse(body) {
            Ok(p) => {
                prop_assert!(!p.request.messages.is_empty());
                prop_assert!(p.request.max_tokens != Some(0));
            }
            Err(e) => {
                prop_assert!((400..500).contains(&e.status), "status {}", e.status);
                prop_assert!(!e.message.is_empty());
                let b = e.body();
                prop_assert!(b["error"]["code"].is_string(), "{b}");
            }
        }
        Ok(())
    }

    #[test]
    fn any_body_is_a_request_or_a_4xx() {
        let body = prop_oneof![
            3 => mutated(),
            1 => value().prop_map(|v| v.to_string().into_bytes()),
            1 => proptest::collection::vec(any::<u8>(), 0..128),
            1 => mutated().prop_flat_map(|b| {
                let n = b.len();
                (Just(b), 0..n).prop_map(|(b, cut)| b[..cut].to_vec())
            }),
        ];
        tta_tests::fuzz::check("gateway/request", 1024, body, |b| holds(&b));
    }

    #[test]
    fn nesting_past_serde_jsons_limit_is_a_400() {
        tta_tests::fuzz::check("gateway/nested", 64, nested(), |(depth, b)| {
            let e = parse(&b).unwrap_err();
            prop_assert_eq!(e.status, 400);
            if depth > 128 {
                prop_assert!(e.message.contains("recursion limit"), "{}", e.message);
            }
            Ok(())
        });
    }
}
