//! A scripted LLM provider on a loopback HTTP port: each request to
//! `POST /v1/chat/completions` (or `/v1/messages`) gets the next scripted [`Reply`]:
//! a status with headers and a body, server-sent events with delays, a cut or a stall;
//! or the reply a [responder](LlmServer::respond_with) makes for it (the demo's
//! simulated providers). Every request is recorded, unless a responder or
//! [`LlmServer::always`] answers. The server stops when dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use tokio::sync::oneshot;

/// How a scripted stream ends after its frames.
#[derive(Clone, Debug)]
pub enum End {
    /// The body ends (a terminator, if any, is one of the frames).
    Close,
    /// The connection is cut mid-body, once the frames before it had time to reach
    /// the client (hyper drops unflushed bytes when a body fails).
    Cut,
    /// The body never ends: no more bytes, ever.
    Stall,
}

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole response.
    Body {
        /// The HTTP status.
        status: u16,
        /// Headers, as name and value.
        headers: Vec<(String, String)>,
        /// The body, sent as it is.
        body: String,
    },
    /// `text/event-stream` frames, each after its delay (each frame is sent as given:
    /// `data: {...}\n\n`).
    Events {
        /// Each frame, after its delay.
        frames: Vec<(Duration, String)>,
        /// What follows the last frame.
        end: End,
    },
    /// Accepts the request and never answers.
    Hang,
    /// The reply, after a delay (a provider's latency).
    After(Duration, Box<Reply>),
}

impl Reply {
    /// A 200 with a JSON body.
    pub fn json(body: serde_json::Value) -> Self {
        Reply::Body {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// A failing status with a body and headers.
    pub fn status(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        Reply::Body {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        }
    }

    /// Server-sent events: each JSON value as a `data:` frame after `gap`, then
    /// `data: [DONE]` when `done`, then `end`.
    pub fn events(values: &[serde_json::Value], gap: Duration, done: bool, end: End) -> Self {
        let mut frames: Vec<(Duration, String)> = values
            .iter()
            .map(|v| (gap, format!("data: {v}\n\n")))
            .collect();
        if done {
            frames.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
        }
        Reply::Events { frames, end }
    }

    /// Server-sent events as the Anthropic Messages API sends them: each JSON value as
    /// an `event: <its type>` frame with its `data:` after `gap`, then `end` (the
    /// terminator, `message_stop`, is one of the values).
    pub fn typed_events(values: &[serde_json::Value], gap: Duration, end: End) -> Self {
        let frames = values
            .iter()
            .map(|v| {
                let kind = v["type"].as_str().unwrap_or("message");
                (gap, format!("event: {kind}\ndata: {v}\n\n"))
            })
            .collect();
        Reply::Events { frames, end }
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Its headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Its body, as JSON (`Null` when it was not JSON).
    pub body: serde_json::Value,
    /// Its body as it was received.
    pub text: String,
}

impl Recorded {
    /// A header's value (`name` lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Makes the reply of a request from its headers and body.
type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// The reply when none is queued; set for benches, which record no requests.
    always: Mutex<Option<Reply>>,
    /// Makes the reply of each request when set; no request is recorded.
    responder: Mutex<Option<Responder>>,
    /// Replies the client went away from before they were complete.
    abandoned: AtomicUsize,
    /// Requests answered by `always` are recorded too ([`LlmServer::serve`]).
    record_always: std::sync::atomic::AtomicBool,
}

/// Counts a reply as abandoned when hyper drops it before it was complete (the client
/// closed the connection), unless [`Abandoned::complete`] was called.
struct Abandoned(Option<Arc<Script>>);

impl Abandoned {
    fn new(script: &Arc<Script>) -> Self {
        Self(Some(Arc::clone(script)))
    }

    fn complete(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(script) = &self.0 {
            script.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The server; dropping it stops it.
pub struct LlmServer {
    addr: SocketAddr,
    script: Arc<Script>,
    stop: Option<oneshot::Sender<()>>,
    /// Connections accepted so far.
    connections: Arc<AtomicUsize>,
}

impl LlmServer {
    /// Starts the server on a free loopback port, on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when no loopback port can be bound (test support).
    pub async fn start() -> Self {
        Self::bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("a loopback port")
    }

    /// Starts the server on `addr` (port 0: a free one), on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When `addr` cannot be bound (in use, not local).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let script = Arc::new(Script::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(reply))
            .route("/v1/messages", post(reply))
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Each frame leaves when it is written, as a provider's would: without
        // TCP_NODELAY, Nagle's algorithm holds small frames for the client's delayed ACK
        // (40 ms a frame on Linux).
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        let listener = listener.tap_io(move |tcp| {
            accepted.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
        });
        let stop = crate::serve_until_stopped(listener, app);
        Ok(Self {
            addr,
            connections,
            script,
            stop: Some(stop),
        })
    }

    /// The API's base URL: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues the reply of a next request.
    pub fn push(&self, reply: Reply) -> &Self {
        self.script.replies.lock().expect("script").push_back(reply);
        self
    }

    /// Answers every request with `reply` once the queue is empty, and stops recording
    /// requests (for benches: millions of them would fill memory).
    pub fn always(&self, reply: Reply) -> &Self {
        *self.script.always.lock().expect("script") = Some(reply);
        self
    }

    /// Answers every request with the reply `responder` makes for it (once the queue is
    /// empty), and stops recording requests.
    pub fn respond_with(
        &self,
        responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> &Self {
        *self.script.responder.lock().expect("script") = Some(Arc::new(responder));
        self
    }

    /// Answers every request with `reply`, as [`always`](Self::always) does, and records
    /// each request (for tests; a bench's millions of requests would pile up).
    pub fn serve(&self, reply: Reply) -> &Self {
        self.script.record_always.store(true, Ordering::Relaxed);
        self.always(reply)
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.script.requests.lock().expect("requests").clone()
    }

    /// How many replies the server dropped before they were complete because their
    /// client closed the connection: hung ones ([`Reply::Hang`]), ones still in their
    /// delay ([`Reply::After`]), streams before their end (stalled ones always).
    pub fn abandoned(&self) -> usize {
        self.script.abandoned.load(Ordering::SeqCst)
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn reply(State(script): State<Arc<Script>>, headers: HeaderMap, body: String) -> Response {
    let always = script.always.lock().expect("script").clone();
    let responder = script.responder.lock().expect("script").clone();
    let queued = script.replies.lock().expect("script").pop_front();
    let recorded = || Recorded {
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        text: body.clone(),
    };
    let next = match (queued, always, responder) {
        (queued, None, None) => {
            script.requests.lock().expect("requests").push(recorded());
            queued
        }
        (Some(reply), _, _) => Some(reply),
        (None, Some(always), _) => {
            if script.record_always.load(Ordering::Relaxed) {
                script.requests.lock().expect("requests").push(recorded());
            }
            Some(always)
        }
        (None, None, Some(respond)) => Some(respond(&recorded())),
    };
    answer(script, next).await
}

async fn answer(script: Arc<Script>, next: Option<Reply>) -> Response {
    match next {
        None => plain(500, &[], "no scripted reply left"),
        Some(Reply::Body {
            status,
            headers,
            body,
        }) => {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            plain(status, &headers, &body)
        }
        Some(Reply::After(delay, reply)) => {
            let abandoned = Abandoned::new(&script);
            tokio::time::sleep(delay).await;
            abandoned.complete();
            Box::pin(answer(script, Some(*reply))).await
        }
        Some(Reply::Hang) => {
            let _abandoned = Abandoned::new(&script);
            std::future::pending::<()>().await;
            plain(500, &[], "unreachable")
        }
        Some(Reply::Events { frames, end }) => {
            // Armed until the body has sent everything it was scripted to.
            let abandoned = Abandoned::new(&script);
            let stream = futures_util::stream::unfold(
                (frames.into_iter(), Some(end), Some(abandoned)),
                |(mut frames, end, mut abandoned)| async move {
                    if let Some((gap, frame)) = frames.next() {
                        if !gap.is_zero() {
                            tokio::time::sleep(gap).await;
                        }
                        return Some((Ok(bytes::Bytes::from(frame)), (frames, end, abandoned)));
                    }
                    match end? {
                        End::Close => {
                            if let Some(abandoned) = abandoned.take() {
                                abandoned.complete();
                            }
                            None
                        }
                        End::Cut => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if let Some(abandoned) = abandoned.take() {
                                abandoned.complete();
                            }
                            Some((
                                Err(std::io::Error::other("cut by the script")),
                                (frames, None, None),
                            ))
                        }
                        End::Stall => {
                            std::future::pending::<()>().await;
                            None
                        }
                    }
                },
            );
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .expect("a response")
        }
    }
}

fn plain(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response
        .body(Body::from(body.to_owned()))
        .expect("a response")
}
