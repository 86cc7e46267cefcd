//! `overhead/*`: the floor, one instrumented primitive, the full stack on a cache hit, and
//! the tower peer. The SDK meter provider with a Prometheus reader (and an SDK tracer
//! provider) is installed by `tta_apm::init`, as an application would.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::{ServiceBuilder, ServiceExt};
use tta_benches::{MokaCacheLayer, otel_peer};
use tta_observability_integration::{Error, WorkflowContext, WorkflowPrimitive, from_fn};

fn overhead(c: &mut Criterion) {
    let (rt, _guard) = tta_benches::runtime_with_telemetry();
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

    let stack = tta_benches::hit_stack();
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

    let instruments = rt.block_on(async {
        otel_peer::PeerInstruments::new(&opentelemetry::global::meter("tower-peer"))
    });
    let otel_peer =
        ServiceBuilder::new()
            .layer(otel_peer::OtelLayer::new(
                &instruments,
                "timeout",
                "request_timeout",
            ))
            .timeout(Duration::from_secs(1))
            .layer(otel_peer::OtelLayer::new(&instruments, "cache", "answers"))
            .layer(
                MokaCacheLayer::<String, String>::new(10_000)
                    .with_metrics(otel_peer::HitMetrics::new(&instruments, "answers", 0.002)),
            )
            .service_fn(|q: String| async move { Ok::<_, Error>(format!("a: {q}")) });
    rt.block_on(otel_peer.clone().oneshot(prompt.clone()))
        .expect("the fill");
    group.bench_function("tower_moka_otel_hit", |b| {
        b.to_async(&rt)
            .iter(|| otel_peer.clone().oneshot(prompt.clone()));
    });
    group.finish();
    floor(c, &rt, &prompt);
}

/// `floor/*`: the parts a telemetered cache hit cannot avoid, one at a time, so the
/// stack's cost can be set against what the catalogue asks of it (see
/// `docs/performance.md`). Recorded into the SDK installed above.
fn floor(c: &mut Criterion, rt: &tokio::runtime::Runtime, prompt: &str) {
    use tta_observability_integration::bound::{BoundCounter, BoundHistogram};
    use tta_observability_integration::cache::{CacheKey, CachePrimitive, CacheStore};
    use tta_observability_integration::router::{Price, Route, RouterPrimitive};
    use tta_observability_integration::{Telemetry, semconv};

    let mut group = c.benchmark_group("floor");
    group.bench_function("clock_read", |b| b.iter(tokio::time::Instant::now));

    let meter = rt.block_on(async { Telemetry::global() });
    let histogram = meter
        .meter()
        .f64_histogram("tta.bench.floor.duration")
        .with_unit("s")
        .with_boundaries(semconv::DURATION_BUCKETS_SECONDS.to_vec())
        .build();
    let histogram = BoundHistogram::new(&histogram, &[]);
    group.bench_function("histogram_record", |b| {
        b.iter(|| histogram.record(black_box(0.000_42)));
    });
    let counter = meter.meter().u64_counter("tta.bench.floor.calls").build();
    let counter = BoundCounter::new(&counter, &[]);
    group.bench_function("counter_add", |b| b.iter(|| counter.add(black_box(1))));

    // The namespace is shared, as in a cache (no allocation for it per key).
    let namespace: std::sync::Arc<str> = "tta".into();
    group.bench_function("cache_key", |b| {
        b.iter(|| {
            CacheKey::new(
                std::sync::Arc::clone(&namespace),
                1,
                black_box(prompt.as_bytes()),
            )
        });
    });

    let moka = moka::sync::Cache::<[u8; 32], bytes::Bytes>::new(10_000);
    let key = *CacheKey::new("tta", 1, prompt.as_bytes()).hash();
    moka.insert(key, bytes::Bytes::from(prompt.to_owned()));
    group.bench_function("moka_get", |b| b.iter(|| moka.get(black_box(&key))));
    // The store's cache since moka: the same read, side by side (`MemoryStore` adds a
    // clock read for the entry's TTL).
    let quick = quick_cache::sync::Cache::<[u8; 32], bytes::Bytes>::new(10_000);
    quick.insert(key, bytes::Bytes::from(prompt.to_owned()));
    group.bench_function("quick_cache_get", |b| b.iter(|| quick.get(black_box(&key))));

    // The machinery each execution runs whatever it records, one part at a time: the
    // parts of `overhead/instrumented_call` and of a hit beyond its telemetry and its
    // store read (see `cargo xtask bench --table`).
    let cx = WorkflowContext::new();
    group.bench_function("cancel_check", |b| b.iter(|| black_box(&cx).is_cancelled()));
    // One unit of tokio's cooperative budget, as each execution consumes it; criterion's
    // async loop around it is the `overhead/bare_call` of this run.
    group.bench_function("budget_unit", |b| {
        b.to_async(rt).iter(tokio::task::coop::consume_budget);
    });
    // The parts of `overhead/instrumented_call` above, run in sequence as a call runs
    // them, with nothing around them: a budget unit, the start's clock read, the
    // cancellation check, the context a `from_fn` closure is handed (a clone, dropped by
    // the closure), the end's clock read, the counter add and the histogram record of
    // the elapsed time. In sequence they cost more than their sum: a clock read
    // (`rdtsc` behind a fence) waits for what came before it, and the histogram's bucket
    // search waits for the clock read whose time it files.
    group.bench_function("instrumented_sequence", |b| {
        b.to_async(rt).iter(|| async {
            tokio::task::coop::consume_budget().await;
            let started = tokio::time::Instant::now();
            let cancelled = cx.is_cancelled();
            drop(black_box(cx.clone()));
            counter.add(1);
            histogram.record(started.elapsed().as_secs_f64());
            cancelled
        });
    });
    // A hit's savings entry, into a context's ledger reused as the hit benches reuse it.
    let source: std::sync::Arc<str> = "cache".into();
    let usage = tta_observability_integration::TokenUsage::new(12, 30);
    let saved = tta_observability_integration::Usd::from_picos(2_000_000_000);
    group.bench_function("ledger_record", |b| {
        b.iter(|| {
            cx.ledger()
                .record(tta_observability_integration::CostEntry::saved(
                    std::sync::Arc::clone(&source),
                    black_box(usage),
                    saved,
                ));
        });
    });
    // The decode of a hit's stored entry, and the drop of the `String` it allocates: the
    // bytes a cache stored for the answer `overhead/stack_memory_hit` reads back, read
    // from its store, decoded as tta-cache's codec decodes them (postcard, into `Entry`).
    let answer = format!("a: {prompt}");
    // Filled by route `a` at its price, as `tta_benches::hit_stack`'s entry is.
    let router = RouterPrimitive::builder()
        .route(
            Route::new(
                "a",
                from_fn(|q: String, _| async move { Ok::<_, Error>(format!("a: {q}")) }),
            )
            .price(Price::per_call(0.002)),
        )
        .build()
        .expect("a router");
    let cache = CachePrimitive::builder(router).build().expect("a cache");
    let entry = rt.block_on(async {
        cache
            .execute(prompt.to_owned(), &cx)
            .await
            .expect("the fill");
        // The builder's default namespace and version, and its key: the input's postcard.
        let input = postcard::to_allocvec(prompt).expect("a key");
        let key = CacheKey::new("default", 1, &input);
        cache
            .store()
            .get(&key)
            .await
            .expect("a read")
            .expect("the entry")
    });
    let decoded: Entry = postcard::from_bytes(&entry).expect("the entry's layout");
    // A `from_fn` route reports no usage; its call costs $0.002.
    assert_eq!(
        (
            decoded.format,
            decoded.input_tokens,
            decoded.output_tokens,
            decoded.cost_picos
        ),
        (1, 0, 0, 2_000_000_000),
        "`Entry` is tta-cache's entry layout"
    );
    assert_eq!(decoded.value, answer, "`Entry` is tta-cache's entry layout");
    group.bench_function("entry_decode", |b| {
        b.iter(|| postcard::from_bytes::<Entry>(black_box(&entry)).map(|e| e.value.len()));
    });

    // The parts above that `overhead/stack_memory_hit` runs, in the order it runs them,
    // with nothing around them (as `floor/instrumented_sequence` for one call): the
    // input's clone (the bench's), the timeout's start and its child context, the
    // cache's budget unit, start, cancellation check and the context its work is handed,
    // the key, the read of the stored entry from the table, its decode, the hit's
    // counter, savings counter and ledger entry, the cache's end (counter, histogram),
    // then the timeout's end (outcome counter, counter, histogram).
    let stored = quick_cache::sync::Cache::<[u8; 32], bytes::Bytes>::new(10_000);
    let entry_key = *CacheKey::new(std::sync::Arc::clone(&namespace), 1, prompt.as_bytes()).hash();
    stored.insert(entry_key, entry.clone());
    group.bench_function("hit_sequence", |b| {
        b.to_async(rt).iter(|| {
            let input = prompt.to_owned();
            async {
                let timeout_started = tokio::time::Instant::now();
                let timeout_cx = black_box(cx.clone());
                tokio::task::coop::consume_budget().await;
                let cache_started = tokio::time::Instant::now();
                if timeout_cx.is_cancelled() {
                    return None;
                }
                let cache_cx = black_box(timeout_cx.clone());
                let key = CacheKey::new(std::sync::Arc::clone(&namespace), 1, input.as_bytes());
                let bytes = stored.get(key.hash())?;
                let decoded = postcard::from_bytes::<Entry>(&bytes).ok()?;
                counter.add(1);
                counter.add(1);
                cache_cx
                    .ledger()
                    .record(tta_observability_integration::CostEntry::saved(
                        std::sync::Arc::clone(&source),
                        usage,
                        saved,
                    ));
                drop((cache_cx, key, bytes, input));
                counter.add(1);
                histogram.record(cache_started.elapsed().as_secs_f64());
                counter.add(1);
                counter.add(1);
                histogram.record(timeout_started.elapsed().as_secs_f64());
                drop(timeout_cx);
                Some(decoded.value)
            }
        });
    });
    group.finish();
}

/// tta-cache's stored entry layout (`codec::Envelope`, private to it) for a `String`
/// answer; the setup of `floor/entry_decode` checks it against an entry the cache wrote.
#[derive(serde::Deserialize)]
struct Entry {
    format: u8,
    input_tokens: u64,
    output_tokens: u64,
    cost_picos: u64,
    value: String,
}

criterion_group!(benches, overhead);
criterion_main!(benches);
