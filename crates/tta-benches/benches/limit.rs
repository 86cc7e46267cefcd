//! `limit/*`: one reservation and its settlement through a `LimitPrimitive` (a USD budget)
//! around a step that bills a small cost, against the step alone (`limit/bare_call`):
//! on the in-process store (`allow_memory`) and on a local `redis-server` the bench
//! starts (`allow_redis`: two script runs, reserve then settle, each a loopback round
//! trip; `raw_fred_get` is one GET by fred alone for scale). Telemetry installed as in
//! `overhead`. Without Redis the Redis ids print that they did not run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::prelude::{Builder, Config};
use tta_observability_integration::limit::{LimitLayer, LimitStore, MemoryStore, RedisStore};
use tta_observability_integration::llm::{ChatRequest, Message};
use tta_observability_integration::{
    AttemptKind, CostBound, CostEntry, Error, Layer, Price, TokenUsage, Usd, WorkflowContext,
    WorkflowPrimitive, from_sync_fn,
};

/// A step that bills $0.0001 for 10 tokens in and 10 out, as a router records a call.
fn billed() -> impl WorkflowPrimitive<ChatRequest, Output = u32> {
    from_sync_fn(|_: ChatRequest, cx: &WorkflowContext| {
        cx.ledger().record(CostEntry::spent(
            AttemptKind::RouteCall,
            "model",
            TokenUsage::new(10, 10),
            Usd::from_picos(100_000_000),
        ));
        Ok::<_, Error>(7)
    })
}

fn budget<S: LimitStore>(store: S) -> impl WorkflowPrimitive<ChatRequest, Output = u32> {
    let price = Price::per_1k_tokens(0.0025, 0.01)
        .validate()
        .expect("a price");
    LimitLayer::builder()
        .name("bench_budget")
        // Far above what the bench can spend: every call is allowed.
        .usd_per(1_000_000.0, Duration::from_secs(3600))
        .cost_bound(CostBound::new(price, 2))
        .store(store)
        .build()
        .expect("a limit")
        .layer(billed())
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::user("What is the capital of France?")]).max_tokens(64)
}

fn limit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let _telemetry = rt.block_on(async { tta_benches::install_telemetry() });
    let mut group = c.benchmark_group("limit");
    let bare = billed();
    group.bench_function("bare_call", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                bare.execute(request(), &WorkflowContext::new())
                    .await
                    .expect("ok"),
            )
        });
    });
    let memory = budget(MemoryStore::new());
    group.bench_function("allow_memory", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                memory
                    .execute(request(), &WorkflowContext::new())
                    .await
                    .expect("allowed"),
            )
        });
    });
    let server = match std::panic::catch_unwind(tta_tests::redis::RedisServer::start) {
        Ok(server) => server,
        Err(_) => {
            println!("limit/allow_redis did not run: no redis-server could be found or installed");
            group.finish();
            return;
        }
    };
    let url = server.url();
    let (redis, client) = rt.block_on(async {
        let store = RedisStore::builder(&url)
            .pool_size(1)
            .command_timeout(Duration::from_secs(1))
            .connect()
            .await
            .expect("a store");
        let client = Builder::from_config(Config::from_url(&url).expect("a URL"))
            .build()
            .expect("a client");
        client.init().await.expect("connected");
        client
            .set::<(), _, _>("bench:raw", "x", None, None, false)
            .await
            .expect("SET");
        (budget(store), client)
    });
    group.bench_function("raw_fred_get", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                client
                    .get::<Option<String>, _>("bench:raw")
                    .await
                    .expect("GET"),
            )
        });
    });
    group.bench_function("allow_redis", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                redis
                    .execute(request(), &WorkflowContext::new())
                    .await
                    .expect("allowed"),
            )
        });
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, limit);
criterion_main!(benches);
