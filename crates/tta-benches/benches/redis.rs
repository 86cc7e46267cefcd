//! `redis/raw_fred_get` vs `redis/cache_hit`: one GET by fred alone against a cache hit
//! through `CachePrimitive` on a `RedisStore`, on a local `redis-server` that the bench
//! starts on a free port (installing Debian's package when missing), with `tta_apm::init`
//! installed as in `overhead`. Each measured call alternates with an untimed call of the
//! other kind (see below). Without Redis the group prints that it did not run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::prelude::{Builder, Config};
use tta_observability_integration::cache::{CachePrimitive, RedisStore};
use tta_observability_integration::{Error, WorkflowContext, from_fn};

/// A one-connection `RedisStore`, like the raw client it is compared with.
async fn store(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .pool_size(1)
        .command_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("a store")
}

fn redis(c: &mut Criterion) {
    let server = match std::panic::catch_unwind(tta_tests::redis::RedisServer::start) {
        Ok(server) => server,
        Err(_) => {
            println!("redis group did not run: no redis-server could be found or installed");
            return;
        }
    };
    // One thread for the bench and fred's connection tasks, so a round trip is not also
    // two cross-thread wake-ups: on 2 cores, redis-server has the other one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // Telemetry on, as in `overhead`: the cache hit records its metrics into the SDK.
    let _telemetry = rt.block_on(async { tta_benches::install_telemetry() });
    let url = server.url();
    let client = rt.block_on(async {
        let client = Builder::from_config(Config::from_url(&url).expect("a URL"))
            .build()
            .expect("a client");
        client.init().await.expect("connected");
        client
            .set::<(), _, _>("bench:raw", Bytes::from_static(&[7; 64]), None, None, false)
            .await
            .expect("SET");
        client
    });
    let echo = from_fn(|q: String, _| async move { Ok::<_, Error>(format!("answer to {q}")) });
    let cache = rt.block_on(async {
        let store = store(&url).await;
        CachePrimitive::builder(echo)
            .store(store)
            .build()
            .expect("a cache")
    });
    let cx = WorkflowContext::new();
    rt.block_on(cache.execute("q".to_owned(), &cx))
        .expect("the fill");

    let key = tta_observability_integration::cache::CacheKey::new("bench", 1, b"q");
    let raw_store = rt.block_on(async {
        let store = store(&url).await;
        tta_observability_integration::cache::CacheStore::set(
            &store,
            &key,
            Bytes::from_static(&[7; 64]),
            Duration::from_secs(600),
        )
        .await
        .expect("SET");
        store
    });
    // A failed call would measure an error path: each one must succeed.
    let raw = || async {
        black_box(
            client
                .get::<Option<Bytes>, _>("bench:raw")
                .await
                .expect("GET"),
        )
    };
    let store_get = || async {
        black_box(
            tta_observability_integration::cache::CacheStore::get(&raw_store, &key)
                .await
                .expect("the store's GET"),
        )
    };
    let hit = || async { black_box(cache.execute("q".to_owned(), &cx).await.expect("a hit")) };

    // A loopback round trip on this 2-core VM drifts by tens of microseconds within a
    // run (redis-benchmark shows the same), far more than the few microseconds being
    // compared. So each measured call alternates with an untimed call of the other
    // kind: both ids see the same server, scheduler and cache state, and the drift
    // cancels out of their ratio.
    let mut group = c.benchmark_group("redis");
    group.bench_function("raw_fred_get", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                raw().await;
                timed += started.elapsed();
                hit().await;
            }
            timed
        });
    });
    group.bench_function("store_get", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                raw().await;
                let started = Instant::now();
                store_get().await;
                timed += started.elapsed();
            }
            timed
        });
    });
    group.bench_function("cache_hit", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                raw().await;
                let started = Instant::now();
                hit().await;
                timed += started.elapsed();
            }
            timed
        });
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, redis);
criterion_main!(benches);
