//! The gateway: routers assembled from the configuration, and the axum app serving them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tta_cache::{BoxStore, CachePrimitive, MemoryStore};
use tta_core::{
    BoxPrimitive, BoxStreamPrimitive, BreakerState, CostBound, Error, Layer, Price,
    StreamPrimitive, WorkflowContext, WorkflowPrimitive,
};
use tta_limit::{LimitLayer, LimitStore, Resource};
use tta_llm::{Anthropic, ChatChunk, ChatRequest, ChatResponse, OpenAiCompatible};
use tta_router::{Route, RouterPrimitive, Strategy};
use tta_timeout::TimeoutPrimitive;

use crate::auth::{Keys, digest_from_hex};
use crate::config::{Config, ConfigError, ConfigErrors};
use crate::http_telemetry::{ServerRequest, duration_histogram};
use crate::wire::{self, ApiError};

/// The metadata key the tenant of a request is under.
const TENANT: &str = "tenant";

/// One exposed model: its stack (timeout around cache around router), calling and
/// streaming, and its router (for readiness).
#[derive(Clone)]
struct ModelStack {
    call: BoxPrimitive<ChatRequest, ChatResponse>,
    stream: BoxStreamPrimitive<ChatRequest, ChatChunk>,
    router: RouterPrimitive<ChatRequest, ChatResponse>,
}

/// Sends a request to its model's stack: what a tenant's limits wrap.
struct Dispatch {
    models: BTreeMap<String, ModelStack>,
}

impl Dispatch {
    /// The stack of the model the request names; the name is taken out of the request,
    /// so each route's client asks its provider for its own model.
    fn stack(&self, request: &mut ChatRequest) -> Result<&ModelStack, Error> {
        let model = request.model.take().unwrap_or_default();
        self.models.get(&model).ok_or_else(|| {
            Error::msg("unknown model").with_class(tta_core::ErrorClass::InvalidRequest)
        })
    }
}

impl WorkflowPrimitive<ChatRequest> for Dispatch {
    type Output = ChatResponse;

    fn name(&self) -> &str {
        "models"
    }

    async fn execute(
        &self,
        mut input: ChatRequest,
        cx: &WorkflowContext,
    ) -> Result<ChatResponse, Error> {
        let stack = self.stack(&mut input)?.call.clone();
        stack.execute(input, cx).await
    }
}

impl StreamPrimitive<ChatRequest> for Dispatch {
    type Chunk = ChatChunk;

    fn name(&self) -> &str {
        "models"
    }

    async fn stream(
        &self,
        mut input: ChatRequest,
        cx: &WorkflowContext,
    ) -> Result<tta_core::Streamed<ChatChunk>, Error> {
        let stack = self.stack(&mut input)?.stream.clone();
        stack.stream(input, cx).await
    }
}

/// A tenant: its name and its entry into the models (through its limits, when it has any).
struct Tenant {
    name: String,
    call: BoxPrimitive<ChatRequest, ChatResponse>,
    stream: BoxStreamPrimitive<ChatRequest, ChatChunk>,
}

/// A gateway built from a [`Config`]: [`Gateway::app`] is its axum app.
pub struct Gateway {
    keys: Keys,
    tenants: Vec<Tenant>,
    models: Arc<Dispatch>,
    shed: Arc<Semaphore>,
    /// The permits `shed` was made with.
    concurrency: usize,
    max_body: usize,
    body_timeout: Duration,
    telemetry: tta_core::Telemetry,
    duration: opentelemetry::metrics::Histogram<f64>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("models", &self.models.models.keys().collect::<Vec<_>>())
            .field(
                "tenants",
                &self.tenants.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn config_error(at: String, message: impl std::fmt::Display) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        at,
        message: message.to_string(),
    }])
}

/// The request timeout around a model's stack.
fn timeout<P>(
    t: &crate::config::TimeoutsConfig,
    inner: P,
) -> Result<TimeoutPrimitive<P>, ConfigErrors> {
    TimeoutPrimitive::builder(inner)
        .name("request_timeout")
        .timeout(Duration::from_millis(t.first_chunk_ms))
        .idle(Duration::from_millis(t.idle_ms))
        .total(Duration::from_millis(t.total_ms))
        .build()
        .map_err(|e| config_error("timeouts".into(), e))
}

fn strategy(name: &str) -> Strategy {
    match name {
        "cheapest" => Strategy::Cheapest,
        "lowest_latency" => Strategy::LowestLatency,
        "weighted" => Strategy::Weighted,
        _ => Strategy::Ordered,
    }
}

impl Gateway {
    /// Builds the providers' clients, each model's router, the cache, and each tenant's
    /// limits. Connects to Redis when the configuration names it (down at start: the
    /// cache bypasses and the limits follow their policy until it is back).
    ///
    /// # Errors
    ///
    /// A configuration the crates refuse, with its location.
    pub async fn new(config: &Config) -> Result<Self, ConfigErrors> {
        let redis_url = std::env::var("TTA_GATEWAY_REDIS_URL")
            .ok()
            .or_else(|| config.redis.as_ref().map(|r| r.url.clone()));
        let wait_for_replicas = config.redis.as_ref().map_or(0, |r| r.wait_for_replicas);
        let store = match (config.cache_store(), &redis_url) {
            ("redis", Some(url)) => Some(BoxStore::new(
                tta_cache::RedisStore::builder(url)
                    .key_prefix("tta:gateway:cache")
                    .connect()
                    .await
                    .map_err(|e| config_error("redis.url".into(), e))?,
            )),
            ("off", _) => None,
            _ => Some(BoxStore::new(MemoryStore::new())),
        };
        let t = &config.timeouts;
        let mut models = BTreeMap::new();
        let mut prices = Vec::new();
        let mut attempts = 1;
        for (name, m) in &config.models {
            // The router's own idle limit equals the request's: the router reaches it
            // first (its wait starts before the timeout's), so a stalled route fails and
            // its breaker learns.
            let mut router = RouterPrimitive::builder()
                .name(name)
                .strategy(strategy(&m.strategy))
                .idle_timeout(Duration::from_millis(t.idle_ms))
                .failure_threshold(m.failure_threshold)
                .cooldown(Duration::from_millis(m.cooldown_ms))
                .usage_reported();
            if let Some(ms) = m.attempt_timeout_ms {
                router = router.attempt_timeout(Duration::from_millis(ms));
            }
            for (i, r) in m.routes.iter().enumerate() {
                let at = format!("models.{name}.routes[{i}]");
                let p = &config.providers[&r.provider];
                let pm = &p.models[&r.model];
                let price = if pm.input_per_1k > 0.0 || pm.output_per_1k > 0.0 {
                    Price::per_1k_tokens(pm.input_per_1k, pm.output_per_1k).or_per_call(pm.per_call)
                } else {
                    Price::per_call(pm.per_call)
                };
                prices.push(
                    price
                        .validate()
                        .map_err(|(what, v)| config_error(at.clone(), format!("{what} {v}")))?,
                );
                let route_name = format!("{}.{}", r.provider, r.model);
                macro_rules! client {
                    ($client:ident) => {{
                        let mut b = $client::builder(p.base_url.clone())
                            .name(&route_name)
                            .model(r.model.clone())
                            .price(price)
                            .max_idle_connections(p.max_idle_connections);
                        if let Some(w) = pm.context_window {
                            b = b.context_window(w);
                        }
                        if let Some(var) = &p.api_key_env {
                            b = b.api_key_env(var.clone());
                        }
                        if p.kind == "openai" && r.provider != "openai" {
                            b = b.provider(r.provider.clone());
                        }
                        Route::client(
                            &route_name,
                            b.build().map_err(|e| config_error(at.clone(), e))?,
                        )
                    }};
                }
                let mut route = match p.kind.as_str() {
                    "anthropic" => client!(Anthropic),
                    _ => client!(OpenAiCompatible),
                };
                if let Some(w) = r.weight {
                    route = route.weight(w);
                }
                router = router.route(route);
            }
            attempts = attempts.max(m.routes.len());
            let router = router
                .build()
                .map_err(|e| config_error(format!("models.{name}"), e))?;
            let stack = match &store {
                Some(store) => {
                    let cache = CachePrimitive::builder(router.clone())
                        .name(name)
                        // One namespace per exposed model: the same prompt to two
                        // models is two entries.
                        .namespace(&format!("{}.{name}", config.cache.namespace))
                        .ttl(Duration::from_secs(config.cache.ttl_s))
                        .store(store.clone())
                        .build()
                        .map_err(|e| config_error("cache".into(), e))?;
                    let stack = Arc::new(timeout(t, cache)?);
                    (
                        BoxPrimitive::new(Arc::clone(&stack)),
                        BoxStreamPrimitive::new(stack),
                    )
                }
                None => {
                    let stack = Arc::new(timeout(t, router.clone())?);
                    (
                        BoxPrimitive::new(Arc::clone(&stack)),
                        BoxStreamPrimitive::new(stack),
                    )
                }
            };
            models.insert(
                name.clone(),
                ModelStack {
                    call: stack.0,
                    stream: stack.1,
                    router,
                },
            );
        }
        let models = Arc::new(Dispatch { models });
        // One bound for every model: the dearest routes of all, each at most once.
        let bound = CostBound::routes(prices, u32::try_from(attempts).unwrap_or(u32::MAX));
        let limit_store: Option<Arc<dyn LimitStore>> = match &redis_url {
            Some(url) => Some(Arc::new(
                tta_limit::RedisStore::builder(url)
                    .key_prefix("tta:gateway:limit")
                    .wait_for_replicas(wait_for_replicas, Duration::from_millis(100))
                    .connect()
                    .await
                    .map_err(|e| config_error("redis.url".into(), e))?,
            )),
            None => None,
        };
        let shared_memory = tta_limit::MemoryStore::new();
        let mut tenants = Vec::new();
        for (name, tc) in &config.tenants {
            let limited = tc.usd_per_day.is_some()
                || tc.requests_per_minute.is_some()
                || tc.tokens_per_minute.is_some()
                || tc.concurrency.is_some();
            let (call, stream) = if limited {
                let mut b = LimitLayer::builder()
                    .name("tenant_limit")
                    .tenant_from(TENANT)
                    .cost_bound(bound.clone());
                if !config.telemetry.tenant_labels.is_empty() {
                    b = b.tenant_labels(&config.telemetry.tenant_labels);
                }
                if let Some(usd) = tc.usd_per_day {
                    b = b.usd_per(usd, Duration::from_secs(24 * 3600));
                }
                if let Some(n) = tc.requests_per_minute {
                    b = b.requests_per(n, Duration::from_secs(60));
                }
                if let Some(n) = tc.tokens_per_minute {
                    b = b.tokens_per(n, Duration::from_secs(60));
                }
                if let Some(n) = tc.concurrency {
                    b = b.concurrency(n);
                }
                if let Some(p) = tc.budget_on_store_down {
                    b = b.on_store_down(Resource::Usd, p.into());
                }
                if let Some(p) = tc.rates_on_store_down {
                    b = b
                        .on_store_down(Resource::Requests, p.into())
                        .on_store_down(Resource::Tokens, p.into());
                }
                b = match &limit_store {
                    Some(store) => b.store(SharedStore(Arc::clone(store))),
                    None => b.store(shared_memory.clone()),
                };
                let layer = b
                    .build()
                    .map_err(|e| config_error(format!("tenants.{name}"), e))?;
                let limited = Arc::new(layer.layer(Arc::clone(&models)));
                (
                    BoxPrimitive::new(Arc::clone(&limited)),
                    BoxStreamPrimitive::new(limited),
                )
            } else {
                (
                    BoxPrimitive::new(Arc::clone(&models)),
                    BoxStreamPrimitive::new(Arc::clone(&models)),
                )
            };
            tenants.push(Tenant {
                name: name.clone(),
                call,
                stream,
            });
        }
        let keys = Keys::new(
            config
                .keys
                .iter()
                .filter(|k| !k.revoked)
                .filter_map(|k| {
                    let tenant = tenants.iter().position(|t| t.name == k.tenant)?;
                    Some((digest_from_hex(&k.sha256)?, tenant))
                })
                .collect(),
        );
        let telemetry = tta_core::Telemetry::global();
        let concurrency = config.concurrency();
        Ok(Self {
            duration: duration_histogram(&telemetry),
            telemetry,
            keys,
            tenants,
            models,
            shed: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            max_body: config.max_body_bytes,
            body_timeout: Duration::from_millis(config.body_timeout_ms),
        })
    }

    /// The requests (and open streams) this gateway handles at once before it answers
    /// 503: [`Config::concurrency`] when it was built.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The axum app: `/v1/chat/completions`, `/v1/models`, `/healthz`, `/readyz`.
    pub fn app(self) -> Router {
        let state = Arc::new(self);
        Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(list_models))
            .route(
                "/healthz",
                get(|| async { axum::Json(json!({"status": "ok"})) }),
            )
            .route("/readyz", get(ready))
            .fallback(|| async {
                error(&ApiError::new(
                    404,
                    "invalid_request_error",
                    "not_found",
                    "no such endpoint",
                ))
            })
            .with_state(state)
    }
}

/// A limit store shared by every tenant's layer (one Redis pool for all).
#[derive(Debug)]
struct SharedStore(Arc<dyn LimitStore>);

impl LimitStore for SharedStore {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn reserve<'a>(
        &'a self,
        ask: tta_limit::store::Ask<'a>,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<tta_limit::store::Decision, tta_limit::store::StoreError>,
    > {
        self.0.reserve(ask)
    }

    fn settle<'a>(
        &'a self,
        settlement: tta_limit::store::Settlement<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u64>, tta_limit::store::StoreError>> {
        self.0.settle(settlement)
    }

    fn breaker_state(&self) -> Option<BreakerState> {
        self.0.breaker_state()
    }
}

/// An error answer: OpenAI's error object, with `Retry-After` when there is one.
fn error(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(e.body())).into_response();
    if let Some(after) = e.retry_after {
        let secs = after.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

/// The tenant of the request's bearer key, or the 401 to answer.
fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Result<usize, Box<Response>> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorized = |message: &str| {
        Box::new(error(&ApiError::new(
            401,
            "invalid_request_error",
            "invalid_api_key",
            message,
        )))
    };
    match key {
        None => Err(unauthorized("no API key: send `Authorization: Bearer KEY`")),
        Some(key) => gw
            .keys
            .tenant(key)
            .ok_or_else(|| unauthorized("the API key is not valid")),
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn list_models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(denied) = authenticate(&gw, &headers) {
        return *denied;
    }
    let data: Vec<Value> = gw
        .models
        .models
        .keys()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "tta-gateway"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Ready when every model has a route its breaker lets through.
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    let down: Vec<&String> = gw
        .models
        .models
        .iter()
        .filter(|(_, m)| {
            m.router
                .stats()
                .iter()
                .all(|r| r.state == BreakerState::Open)
        })
        .map(|(name, _)| name)
        .collect();
    if down.is_empty() {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "degraded", "models_without_a_route": down})),
        )
            .into_response()
    }
}

async fn chat(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let mut server = Some(ServerRequest::start(
        &gw.telemetry,
        &gw.duration,
        request.headers(),
    ));
    let response = respond(&gw, request, &mut server).await;
    // A stream took the server span along; any other answer ends it now.
    if let Some(mut server) = server {
        server.status(response.status().as_u16());
    }
    response
}

async fn respond(gw: &Gateway, request: Request, server: &mut Option<ServerRequest>) -> Response {
    // Shed before any work: a full gateway answers 503 at once.
    let Ok(permit) = Arc::clone(&gw.shed).try_acquire_owned() else {
        let mut e = ApiError::new(
            503,
            "server_error",
            "overloaded",
            "the gateway is at its concurrency limit",
        );
        e.retry_after = Some(Duration::from_secs(1));
        return error(&e);
    };
    let tenant = match authenticate(gw, request.headers()) {
        Ok(t) => &gw.tenants[t],
        Err(denied) => return *denied,
    };
    // A declared length over the limit is refused before a byte of the body is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gw.max_body as u64) {
        return too_large(gw.max_body);
    }
    let body = match tokio::time::timeout(
        gw.body_timeout,
        axum::body::to_bytes(request.into_body(), gw.max_body),
    )
    .await
    {
        Err(_) => {
            return error(&ApiError::new(
                408,
                "invalid_request_error",
                "request_timeout",
                "the body took too long to arrive",
            ));
        }
        Ok(Err(e)) if is_too_large(&e) => return too_large(gw.max_body),
        Ok(Err(_)) => {
            return error(&ApiError::new(
                400,
                "invalid_request_error",
                "bad_body",
                "the body could not be read",
            ));
        }
        Ok(Ok(body)) => body,
    };
    let parsed = match wire::parse(&body) {
        Ok(p) => p,
        Err(e) => return error(&e),
    };
    if !gw.models.models.contains_key(&parsed.model) {
        let mut e = ApiError::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!("the model {:?} does not exist", parsed.model),
        );
        e.param = Some("model".into());
        return error(&e);
    }
    let mut cx = WorkflowContext::builder().metadata(TENANT, &tenant.name);
    if let Some(server) = server {
        cx = cx.otel_context(server.context().clone());
    }
    let cx = match cx.build() {
        Ok(cx) => cx,
        Err(e) => {
            return error(&ApiError::new(
                500,
                "server_error",
                "context",
                e.to_string(),
            ));
        }
    };
    let created = now_s();
    if !parsed.stream {
        let answer = tenant.call.execute(parsed.request, &cx).await;
        drop(permit);
        return match answer {
            Ok(r) => axum::Json(wire::completion(&parsed.model, &r, created)).into_response(),
            Err(e) => error(&ApiError::from_error(&e)),
        };
    }
    let streamed = match tenant.stream.stream(parsed.request, &cx).await {
        Ok(s) => s,
        Err(e) => return error(&ApiError::from_error(&e)),
    };
    let state = Sse {
        streamed,
        _permit: permit,
        _server: server.take(),
        model: parsed.model,
        include_usage: parsed.include_usage,
        created,
        id: String::new(),
        first: true,
        usage: None,
        done: false,
    };
    // Each chunk as one SSE event; a clean end adds the usage chunk (when asked) and
    // `[DONE]`; an error mid-stream ends it with an error event and no `[DONE]`.
    let events = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let event = st.next_event().await;
        Some((Ok::<_, Infallible>(event), st))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A stream being answered as SSE; holds its concurrency slot until it ends.
struct Sse {
    streamed: tta_core::Streamed<ChatChunk>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// The request's server span and duration, ended when the stream is.
    _server: Option<ServerRequest>,
    model: String,
    include_usage: bool,
    created: u64,
    id: String,
    first: bool,
    usage: Option<tta_llm::Usage>,
    done: bool,
}

impl Sse {
    async fn next_event(&mut self) -> Bytes {
        loop {
            if let Some(event) = self.event().await {
                return event;
            }
        }
    }

    /// The next event, or `None` for a chunk that only carries the usage (sent once, at
    /// the end, when the client asked for it).
    async fn event(&mut self) -> Option<Bytes> {
        Some(match self.streamed.next().await {
            Some(Ok(c)) => {
                if c.usage.is_some() {
                    self.usage.clone_from(&c.usage);
                }
                let empty =
                    c.delta.is_empty() && c.tool_calls.is_empty() && c.finish_reason.is_none();
                if empty && !self.first {
                    return None;
                }
                if self.id.is_empty() {
                    self.id = if c.id.is_empty() {
                        format!("chatcmpl-{}", self.created)
                    } else {
                        c.id.clone()
                    };
                }
                let out = wire::chunk(&self.model, &self.id, &c, self.created, self.first);
                self.first = false;
                sse(&out)
            }
            Some(Err(e)) => {
                self.done = true;
                sse(&ApiError::from_error(&e).body())
            }
            None => {
                self.done = true;
                let mut tail = Vec::new();
                if self.include_usage
                    && let Some(u) = &self.usage
                {
                    let usage = wire::usage_chunk(&self.model, &self.id, u, self.created);
                    write_sse(&mut tail, &usage);
                }
                tail.extend_from_slice(b"data: [DONE]\n\n");
                Bytes::from(tail)
            }
        })
    }
}

/// Appends one server-sent event of `v`'s JSON to `out`.
fn write_sse(out: &mut Vec<u8>, v: &impl Serialize) {
    out.extend_from_slice(b"data: ");
    let start = out.len();
    // Writing to a `Vec` cannot fail, and every key the gateway writes is a string; were
    // it to fail all the same, the client gets an error event, not half a JSON text.
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.truncate(start);
        out.extend_from_slice(br#"{"error":{"message":"the gateway could not write this event","type":"server_error","code":null,"param":null}}"#);
    }
    out.extend_from_slice(b"\n\n");
}

fn sse(v: &impl Serialize) -> Bytes {
    let mut out = Vec::with_capacity(256);
    write_sse(&mut out, v);
    Bytes::from(out)
}

fn too_large(max: usize) -> Response {
    error(&ApiError::new(
        413,
        "invalid_request_error",
        "request_too_large",
        format!("the body is larger than {max} bytes"),
    ))
}

/// Whether reading the body failed on the size limit.
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains("length limit exceeded") {
            return true;
        }
        source = s.source();
    }
    false
}
