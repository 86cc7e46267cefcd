//! `redis/raw_fred_get` vs `redis/cache_hit`: one GET by fred alone against a cache hit
//! through `CachePrimitive` on a `RedisStore`, on a local `redis-server` that the bench
//! starts on a free port (installing Debian's package when missing). Without Redis the
//! group prints that it did not run.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::prelude::{Builder, Config};
use tta_observability_integration::cache::{CachePrimitive, RedisStore};
use tta_observability_integration::{Error, WorkflowContext, WorkflowPrimitive, from_fn};

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
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

    let mut group = c.benchmark_group("redis");
    group.bench_function("raw_fred_get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(client.get::<Option<Bytes>, _>("bench:raw").await) });
    });
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
    group.bench_function("store_get", |b| {
        b.to_async(&rt)
            .iter(|| tta_observability_integration::cache::CacheStore::get(&raw_store, &key));
    });
    group.bench_function("cache_hit", |b| {
        b.to_async(&rt).iter(|| cache.execute("q".to_owned(), &cx));
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, redis);
criterion_main!(benches);
