//! Single flight across processes sharing a real `redis-server`: concurrent misses on one
//! key in three replicas (each its own runtime, Redis pool and cache) run the provider
//! once, for calls and for streams.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use futures_util::StreamExt;
use tta_cache::{CachePrimitive, RedisStore};
use tta_core::{StreamPrimitive, Telemetry, WorkflowContext, WorkflowPrimitive};
use tta_tests::redis::RedisServer;

use crate::stream::{Drops, expected, words};
use crate::{count, llm, pipeline};

const REPLICAS: usize = 3;
const PER_REPLICA: usize = 100;

/// Runs `each` in `REPLICAS` threads, each with its own runtime and Redis store, and
/// returns every answer.
fn replicas<F, Fut>(url: &str, each: F) -> Vec<Vec<String>>
where
    F: Fn(RedisStore) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Vec<Vec<String>>>,
{
    let threads: Vec<_> = (0..REPLICAS)
        .map(|_| {
            let (url, each) = (url.to_owned(), each.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        let store = RedisStore::builder(&url).connect().await.unwrap();
                        each(store).await
                    })
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn three_replicas_of_a_hundred_concurrent_misses_call_the_provider_once() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let answers = replicas(&redis.url(), {
        let calls = Arc::clone(&calls);
        move |store| {
            let calls = Arc::clone(&calls);
            async move {
                let (_tt, t) = pipeline();
                let cache = Arc::new(
                    CachePrimitive::builder(llm(&calls, Duration::from_millis(300)))
                        .name("shared")
                        .store(store)
                        .telemetry(&t)
                        .build()
                        .unwrap(),
                );
                let tasks: Vec<_> = (0..PER_REPLICA)
                    .map(|_| {
                        let cache = Arc::clone(&cache);
                        tokio::spawn(async move {
                            cache.execute("q".into(), &WorkflowContext::new()).await
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for task in tasks {
                    out.push(vec![task.await.unwrap().unwrap()]);
                }
                let stats = cache.stats();
                assert_eq!(stats.hits + stats.misses, PER_REPLICA as u64);
                assert_eq!(cache.fills_in_flight(), 0);
                out
            }
        }
    });
    assert_eq!(answers.len(), REPLICAS * PER_REPLICA);
    assert!(answers.iter().all(|a| a == &["answer to q"]));
    assert_eq!(
        count(&calls),
        1,
        "one provider call across the three replicas"
    );
}

#[test]
fn three_replicas_of_a_hundred_concurrent_streams_call_the_provider_once() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let answers = replicas(&redis.url(), {
        let calls = Arc::clone(&calls);
        move |store| {
            let calls = Arc::clone(&calls);
            async move {
                let (_tt, t) = pipeline();
                let cache = Arc::new(
                    CachePrimitive::builder(words(&t, &calls, &Drops::default(), 20, None))
                        .name("shared_streams")
                        .store(store)
                        .telemetry(&t)
                        .build()
                        .unwrap(),
                );
                let tasks: Vec<_> = (0..PER_REPLICA)
                    .map(|_| {
                        let cache = Arc::clone(&cache);
                        tokio::spawn(async move {
                            let streamed = cache
                                .stream("q".into(), &WorkflowContext::new())
                                .await
                                .unwrap();
                            streamed.map(Result::unwrap).collect::<Vec<String>>().await
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for task in tasks {
                    out.push(task.await.unwrap());
                }
                out
            }
        }
    });
    assert_eq!(answers.len(), REPLICAS * PER_REPLICA);
    assert!(answers.iter().all(|a| a == &expected(20)));
    assert_eq!(
        count(&calls),
        1,
        "one provider stream across the three replicas"
    );
}

/// One replica: a cache named `name` over `llm(calls, delay_ms)`, on its own Redis pool.
async fn replica(
    url: &str,
    t: &Telemetry,
    name: &str,
    calls: &Arc<AtomicUsize>,
    delay_ms: u64,
) -> CachePrimitive<impl WorkflowPrimitive<String, Output = String> + use<>, RedisStore> {
    CachePrimitive::builder(llm(calls, Duration::from_millis(delay_ms)))
        .name(name)
        .store(RedisStore::builder(url).connect().await.unwrap())
        .telemetry(t)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_fails_or_vanishes_is_taken_over_by_the_waiting_replica() {
    let redis = RedisServer::start();
    let (_tt, t) = pipeline();
    let (url, name) = (redis.url(), "takeover");
    // Replica A leads with a 400 ms deadline, then vanishes (its task is aborted) before
    // storing anything: its lease lasts its deadline, then lapses.
    let (a_calls, b_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = Arc::new(replica(&url, &t, name, &a_calls, 10_000).await);
    let b = replica(&url, &t, name, &b_calls, 50).await;
    let leader = {
        let a = Arc::clone(&a);
        tokio::spawn(async move {
            let cx = WorkflowContext::new().with_timeout(Duration::from_millis(400));
            a.execute("q".into(), &cx).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(&a_calls), 1);
    leader.abort();
    // Replica B waits for A's value, finds the lease lapsed, and fills the key itself.
    let started = std::time::Instant::now();
    let answer = b
        .execute("q".into(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(answer, "answer to q");
    assert_eq!(count(&b_calls), 1);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "B waited out A's lease ({waited:?})"
    );
    // Both replicas now hit.
    assert_eq!(
        a.execute("q".into(), &WorkflowContext::new())
            .await
            .unwrap(),
        answer
    );
    assert_eq!(count(&a_calls), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cut_while_it_waits_on_another_replicas_lease_counts_its_miss() {
    let redis = RedisServer::start();
    let (_tt, t) = pipeline();
    let (url, name) = (redis.url(), "cut_waiter");
    // Replica A leads the fill and holds the key's lease for seconds.
    let (a_calls, b_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = Arc::new(replica(&url, &t, name, &a_calls, 5_000).await);
    let b = replica(&url, &t, name, &b_calls, 50).await;
    let leader = {
        let a = Arc::clone(&a);
        tokio::spawn(async move { a.execute("q".into(), &WorkflowContext::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(&a_calls), 1);
    // Replica B misses, leads locally, and waits on A's lease until a timeout around it
    // drops the request (as a timeout primitive does): its lookup still counts, a miss.
    let cx = WorkflowContext::new().with_timeout(Duration::from_millis(150));
    let cut = tokio::time::timeout(Duration::from_millis(150), b.execute("q".into(), &cx)).await;
    assert!(cut.is_err(), "B was cut while it waited");
    assert_eq!(count(&b_calls), 0, "B never filled");
    let stats = b.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (0, 1),
        "hits plus misses is every lookup"
    );
    leader.abort();
}
