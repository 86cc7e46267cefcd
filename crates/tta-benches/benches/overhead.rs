//! `overhead/*`: the floor, one instrumented primitive, the full stack on a cache hit, and
//! the tower peer. The SDK meter provider with a Prometheus reader (and an SDK tracer
//! provider) is installed by `tta_apm::init`, as an application would.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{ServiceBuilder, ServiceExt};
use tta_benches::MokaCacheLayer;
use tta_observability_integration::apm::{self, ApmConfig};
use tta_observability_integration::cache::CachePrimitive;
use tta_observability_integration::router::{Price, Route, RouterPrimitive};
use tta_observability_integration::timeout::TimeoutPrimitive;
use tta_observability_integration::{Error, WorkflowContext, WorkflowPrimitive, from_fn};

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let _guard = rt.block_on(async {
        apm::init(
            ApmConfig::new("bench")
                .metrics_addr("127.0.0.1:0")
                .console_spans(false),
        )
        .expect("telemetry installs")
    });
    let mut group = c.benchmark_group("overhead");

    let bare = |x: u64| async move { x };
    group.bench_function("bare_call", |b| {
        b.to_async(&rt).iter(|| bare(black_box(7)));
    });

    let instrumented = from_fn(|x: u64, _| async move { Ok::<_, Error>(x) });
    let cx = WorkflowContext::new();
    group.bench_function("instrumented_call", |b| {
        b.to_async(&rt)
            .iter(|| instrumented.execute(black_box(7), &cx));
    });

    let route = |name: &'static str| {
        from_fn(move |q: String, _| async move { Ok::<_, Error>(format!("{name}: {q}")) })
    };
    let router = RouterPrimitive::builder()
        .route(Route::new("a", route("a")).price(Price::per_call(0.002)))
        .route(Route::new("b", route("b")).price(Price::per_call(0.001)))
        .build()
        .expect("a router");
    let cache = CachePrimitive::builder(router).build().expect("a cache");
    let stack = TimeoutPrimitive::builder(cache)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("a timeout");
    let prompt = "What is the capital of France?".to_owned();
    rt.block_on(stack.execute(prompt.clone(), &cx))
        .expect("the fill");
    group.bench_function("stack_memory_hit", |b| {
        b.to_async(&rt).iter(|| stack.execute(prompt.clone(), &cx));
    });

    let peer = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .layer(MokaCacheLayer::<String, String>::new(10_000))
        .service_fn(|q: String| async move { Ok::<_, Error>(format!("a: {q}")) });
    rt.block_on(peer.clone().oneshot(prompt.clone()))
        .expect("the fill");
    group.bench_function("tower_moka_hit", |b| {
        b.to_async(&rt)
            .iter(|| peer.clone().oneshot(prompt.clone()));
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
