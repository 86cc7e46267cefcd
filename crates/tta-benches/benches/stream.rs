//! `stream/*`: what the stack adds to a stream. Per chunk: 256 in-memory chunks through a
//! timeout around a cache around a router (a miss, every fill teed, so the whole path
//! runs) against iterating the same chunks from a bare `futures::stream::iter`. And time
//! to first chunk on a hit, against a hit of the same stack as a call. Telemetry is on
//! (`tta_apm::init`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use tta_observability_integration::cache::CacheLayer;
use tta_observability_integration::router::{Route, RouterPrimitive};
use tta_observability_integration::timeout::TimeoutLayer;
use tta_observability_integration::{
    Error, ReportsUsage, Stack, StreamPrimitive, Streamable, TokenUsage, WorkflowContext, from_fn,
    from_stream_fn,
};

const CHUNKS: usize = 256;

/// One streamed token; the provider reports no usage (nothing to bill by estimate here
/// but the token count).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Token(String);

impl ReportsUsage for Token {
    fn token_usage(&self) -> Option<TokenUsage> {
        None
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Answer(String);

impl Streamable for Answer {
    type Chunk = Token;
}

fn chunks() -> Vec<Result<Token, Error>> {
    (0..CHUNKS)
        .map(|i| Ok(Token(format!("token {i} "))))
        .collect()
}

fn stream(c: &mut Criterion) {
    let (rt, _guard) = tta_benches::runtime_with_telemetry();
    let provider =
        from_stream_fn(|_q: String, _| async move { Ok(futures_util::stream::iter(chunks())) });
    let call = from_fn(|q: String, _| async move { Ok::<_, Error>(Answer(q)) });
    let router = RouterPrimitive::builder()
        .route(Route::new("a", call).stream_with(provider))
        // As the gateway and the demo build it: the router's idle limit is the timeout's.
        .idle_timeout(Duration::from_secs(5))
        .build()
        .expect("a router");
    let stack = Stack::new()
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_secs(5))
                .idle(Duration::from_secs(5))
                .build()
                .expect("a timeout"),
        )
        .layer(CacheLayer::builder().build().expect("a cache"))
        .into_primitive(router);

    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(CHUNKS as u64));
    group.bench_function("bare_iter", |b| {
        b.to_async(&rt).iter_batched(
            chunks,
            |chunks| async move {
                futures_util::stream::iter(chunks)
                    .map(black_box)
                    .count()
                    .await
            },
            BatchSize::SmallInput,
        );
    });
    // A distinct prompt each time: a miss, so the router's body and the cache's tee run.
    let mut n = 0u64;
    group.bench_function("stack_miss", |b| {
        b.to_async(&rt).iter_batched(
            || {
                n += 1;
                format!("prompt {n}")
            },
            |prompt| {
                let stack = &stack;
                async move {
                    let cx = WorkflowContext::new();
                    stack
                        .stream(prompt, &cx)
                        .await
                        .expect("a stream")
                        .count()
                        .await
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("stream_first_chunk");
    let prompt = "a cached question".to_owned();
    let cx = WorkflowContext::new();
    rt.block_on(async {
        let filled = stack
            .stream(prompt.clone(), &cx)
            .await
            .expect("a stream")
            .count()
            .await;
        assert_eq!(filled, CHUNKS);
        // The store write of the fill runs on its own: let it land.
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    group.bench_function("hit", |b| {
        b.to_async(&rt).iter(|| async {
            let streamed = stack.stream(prompt.clone(), &cx).await.expect("a hit");
            black_box(streamed.first().is_some())
        });
    });
    group.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
