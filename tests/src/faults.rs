//! Provider faults on the wire, for the reliability suites: OpenAI-shaped answers and
//! streams, a provider scripted to fail by request number, a socket that resets, a port
//! that refuses. The in-process suite (`tests/reliability/wire_faults.rs`) and the
//! gateway's (`crates/tta-gateway/tests/it/wire_faults.rs`) share them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::llm_server::{End, LlmServer, Recorded, Reply};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An answer of `model` (100 prompt and 20 completion tokens) ending with `finish`.
pub fn answer(model: &str, finish: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "created": 1_700_000_000_u64, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{model} says hi")},
                        "finish_reason": finish}],
           "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
}

/// One stream chunk of `model`: its delta and finish reason.
pub fn chunk(model: &str, delta: Value, finish: Value) -> Value {
    json!({"id": "x", "object": "chat.completion.chunk", "created": 1_700_000_000_u64,
           "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

/// A whole stream: a role preamble, two pieces, the finish and the usage-only chunk.
pub fn chunks(model: &str) -> Vec<Value> {
    let mut usage = json!({"id": "x", "object": "chat.completion.chunk",
                           "created": 1_700_000_000_u64, "model": model, "choices": []});
    usage["usage"] = json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120});
    vec![
        chunk(model, json!({"role": "assistant"}), Value::Null),
        chunk(model, json!({"content": format!("{model} ")}), Value::Null),
        chunk(model, json!({"content": "says hi"}), Value::Null),
        chunk(model, json!({}), json!("stop")),
        usage,
    ]
}

/// A filtered answer (`finish_reason: content_filter`, usage reported), as asked.
pub fn filtered(stream: bool) -> Reply {
    if stream {
        let mut values = chunks("primary-1");
        values[3] = chunk("primary-1", json!({}), json!("content_filter"));
        Reply::events(&values, ms(2), true, End::Close)
    } else {
        Reply::json(answer("primary-1", "content_filter"))
    }
}

/// Whether `request` asked for a stream.
pub fn streams(request: &Recorded) -> bool {
    request.body["stream"].as_bool().unwrap_or(false)
}

/// A healthy provider's reply, as asked (a whole answer, or a stream).
pub fn healthy(model: &'static str) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| good(model, streams(request))
}

/// A good reply of `model`: a whole stream (2 ms a chunk) or a whole answer.
pub fn good(model: &str, stream: bool) -> Reply {
    if stream {
        Reply::events(&chunks(model), ms(2), true, End::Close)
    } else {
        Reply::json(answer(model, "stop"))
    }
}

/// The primary's good reply, after `delay` (a slow first chunk).
pub fn slow(stream: bool, delay: Duration) -> Reply {
    Reply::After(delay, Box::new(good("primary-1", stream)))
}

/// A stream's first content chunk, then a chunk that is not JSON; a call's truncated
/// JSON answer.
pub fn malformed(stream: bool) -> Reply {
    if stream {
        let mut reply = Reply::events(&chunks("primary-1")[..2], ms(5), false, End::Close);
        if let Reply::Events { frames, .. } = &mut reply {
            frames.push((ms(5), "data: {\"choices\": [{\"delta\": \n\n".to_owned()));
        }
        reply
    } else {
        Reply::status(
            200,
            &[("content-type", "application/json")],
            "{\"choices\": [",
        )
    }
}

/// A flapping primary: 503 for its even requests, a good reply for its odd ones.
pub fn flapping(n: usize, stream: bool) -> Reply {
    if n.is_multiple_of(2) {
        error(503, &[], "overloaded")
    } else {
        good("primary-1", stream)
    }
}

/// An empty 200 for the even requests, a proxy's HTML error page with 502 for the odd.
pub fn empty_or_html(n: usize) -> Reply {
    if n.is_multiple_of(2) {
        Reply::status(200, &[], "")
    } else {
        Reply::status(
            502,
            &[("content-type", "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
    }
}

/// A provider that fails as `fault` says for the `n`-th request it gets (from 0).
pub struct Faulty {
    calls: Arc<AtomicUsize>,
    /// Its base URL.
    pub url: String,
    _server: Option<LlmServer>,
}

impl Faulty {
    /// A loopback provider answering its `n`-th request (from 0) as `fault(n, stream)`.
    pub async fn scripted(fault: impl Fn(usize, bool) -> Reply + Send + Sync + 'static) -> Self {
        let server = LlmServer::start().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        server.respond_with(move |request| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            fault(n, streams(request))
        });
        Self {
            calls,
            url: server.base_url(),
            _server: Some(server),
        }
    }

    /// A provider at `url` that is not scripted (a raw socket, or nothing at all).
    pub fn at(url: String, calls: Arc<AtomicUsize>) -> Self {
        Self {
            calls,
            url,
            _server: None,
        }
    }

    /// The requests it got.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A socket that reads each request and resets the connection before any response.
pub async fn resetting() -> Faulty {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if socket.read(&mut buf).await.unwrap_or(0) > 0 {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                // A zero linger turns the close into a reset.
                let _ = socket.set_zero_linger();
                drop(socket);
            });
        }
    });
    Faulty::at(url, calls)
}

/// An OpenAI error body with `status`, `headers` and `code`.
pub fn error(status: u16, headers: &[(&str, &str)], code: &str) -> Reply {
    let mut headers = headers.to_vec();
    headers.push(("content-type", "application/json"));
    let body = json!({"error": {"message": "scripted", "type": "server_error", "code": code}});
    Reply::status(status, &headers, &body.to_string())
}

/// The first content chunk, then `end` (a stream), or a body of `body` (a call).
pub fn broken(stream: bool, end: End, done: bool, body: &str) -> Reply {
    if stream {
        Reply::events(&chunks("primary-1")[..2], ms(5), done, end)
    } else {
        Reply::status(200, &[("content-type", "application/json")], body)
    }
}

/// A provider at a port nothing listens on (bound, then closed): connection refused.
pub fn refused() -> Faulty {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}/v1", listener.local_addr().expect("its address"));
    drop(listener);
    Faulty::at(url, Arc::new(AtomicUsize::new(0)))
}
