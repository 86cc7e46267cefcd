//! Streams through the cache: a miss tees the live body to every coalesced caller, a
//! clean end is stored and replayed, a cut or abandoned fill stores nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tta_cache::CachePrimitive;
use tta_core::{
    AttemptKind, CostEntry, Error, ErrorClass, FnPrimitive, StreamPrimitive, Telemetry,
    WorkflowContext,
};

use crate::{CALL_USAGE, call_cost, count, pipeline};

/// Counts the provider streams that were dropped.
#[derive(Clone, Default)]
pub(crate) struct Drops(Arc<AtomicUsize>);

struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A provider streaming `n` words 10 ms apart; cut (an error after `cut` words) when set.
/// It bills its usage when its stream ends cleanly, as a router's body does.
pub(crate) fn words(
    t: &Telemetry,
    calls: &Arc<AtomicUsize>,
    drops: &Drops,
    n: usize,
    cut: Option<usize>,
) -> impl StreamPrimitive<String, Chunk = String> + use<> {
    let (calls, drops) = (Arc::clone(calls), drops.clone());
    FnPrimitive::stream_builder(move |q: String, cx: WorkflowContext| {
        calls.fetch_add(1, Ordering::SeqCst);
        let guard = DropGuard(Arc::clone(&drops.0));
        async move {
            Ok(futures_util::stream::unfold(0usize, move |i| {
                let (q, cx, _guard) = (q.clone(), cx.clone(), &guard);
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if cut == Some(i) {
                        return Some((
                            Err(Error::msg("reset").with_class(ErrorClass::Unavailable)),
                            usize::MAX,
                        ));
                    }
                    if i >= n {
                        if i == n {
                            cx.ledger().record(CostEntry::spent(
                                AttemptKind::RouteCall,
                                "llm",
                                CALL_USAGE,
                                call_cost(),
                            ));
                        }
                        return None;
                    }
                    Some((Ok(format!("{q}-{i}")), i + 1))
                }
            }))
        }
    })
    .name("provider")
    .telemetry(t)
    .build()
    .unwrap()
}

pub(crate) fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("q-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_streams_share_one_fill_live_and_a_hit_replays_it() {
    let (tt, t) = pipeline();
    let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Drops::default());
    let cache = Arc::new(
        CachePrimitive::builder(words(&t, &calls, &drops, 20, None))
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let cx = WorkflowContext::new();
                let chunks: Vec<String> = cache
                    .stream("q".into(), &cx)
                    .await
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
                    .await;
                (chunks, cx.ledger().totals())
            })
        })
        .collect();
    let mut spent_total = tta_core::Usd::ZERO;
    let mut saved_total = tta_core::Usd::ZERO;
    for task in tasks {
        let (chunks, totals) = task.await.unwrap();
        assert_eq!(
            chunks,
            expected(20),
            "every chunk, in order, for every consumer"
        );
        spent_total += totals.spent;
        saved_total += totals.saved;
    }
    assert_eq!(
        count(&calls),
        1,
        "one provider stream for a hundred callers"
    );
    assert_eq!(spent_total, call_cost(), "the fill is billed once");
    assert_eq!(
        saved_total.picos(),
        call_cost().picos() * 99,
        "each of the 99 followers saved what the fill cost"
    );
    assert_eq!(cache.stats().coalesced, 99);
    // Let the store write land, then a hit replays exactly the same chunks.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cache.fills_in_flight(),
        0,
        "the flight is released once stored"
    );
    let cx = WorkflowContext::new();
    let replayed: Vec<String> = cache
        .stream("q".into(), &cx)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(replayed, expected(20));
    assert_eq!(count(&calls), 1, "a hit, not a fill");
    assert_eq!(cx.ledger().totals().saved, call_cost());
    assert_eq!(tt.counter("tta.cache.hits", &[("cache", "cache")]), 100.0);
    assert_eq!(
        cache.stats().hits,
        100,
        "99 coalesced followers and one hit"
    );
    assert_eq!(
        drops.0.load(Ordering::SeqCst),
        1,
        "the one provider stream ended and was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leaders_caller_drops_the_waiters_still_get_the_whole_stream_and_it_is_stored() {
    let (_tt, t) = pipeline();
    let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Drops::default());
    let cache = Arc::new(
        CachePrimitive::builder(words(&t, &calls, &drops, 10, None))
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let mut leader = cache
        .stream("q".into(), &WorkflowContext::new())
        .await
        .unwrap();
    let follower = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            let s = cache
                .stream("q".into(), &WorkflowContext::new())
                .await
                .unwrap();
            s.map(Result::unwrap).collect::<Vec<String>>().await
        })
    };
    leader.next().await.unwrap().unwrap();
    leader.next().await.unwrap().unwrap();
    drop(leader);
    assert_eq!(
        follower.await.unwrap(),
        expected(10),
        "the waiter drove the fill to its end"
    );
    assert_eq!(count(&calls), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let replay: Vec<String> = cache
        .stream("q".into(), &WorkflowContext::new())
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(replay, expected(10), "stored after a clean end");
    assert_eq!(count(&calls), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_consumer_drops_the_fill_is_cancelled_and_nothing_is_stored() {
    let (_tt, t) = pipeline();
    let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Drops::default());
    let cache = CachePrimitive::builder(words(&t, &calls, &drops, 1_000, None))
        .telemetry(&t)
        .build()
        .unwrap();
    let mut a = cache
        .stream("q".into(), &WorkflowContext::new())
        .await
        .unwrap();
    let mut b = cache
        .stream("q".into(), &WorkflowContext::new())
        .await
        .unwrap();
    a.next().await.unwrap().unwrap();
    b.next().await.unwrap().unwrap();
    assert_eq!(drops.0.load(Ordering::SeqCst), 0);
    drop(a);
    assert_eq!(
        drops.0.load(Ordering::SeqCst),
        0,
        "one consumer remains: the fill runs"
    );
    drop(b);
    assert_eq!(
        drops.0.load(Ordering::SeqCst),
        1,
        "the provider's stream is dropped"
    );
    assert_eq!(cache.fills_in_flight(), 0);
    // Nothing was stored: the next request fills again.
    let _ = cache
        .stream("q".into(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(count(&calls), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_reaches_every_consumer_as_an_error_and_is_not_stored() {
    let (tt, t) = pipeline();
    let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Drops::default());
    let cache = Arc::new(
        CachePrimitive::builder(words(&t, &calls, &drops, 10, Some(5)))
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let items: Vec<_> = cache
                    .stream("q".into(), &WorkflowContext::new())
                    .await
                    .unwrap()
                    .collect()
                    .await;
                items
            })
        })
        .collect();
    for task in tasks {
        let items = task.await.unwrap();
        assert_eq!(items.len(), 6, "five chunks, then the error");
        assert!(
            items[5]
                .as_ref()
                .is_err_and(|e| e.class() == ErrorClass::Unavailable)
        );
    }
    assert_eq!(count(&calls), 1);
    assert_eq!(
        (
            tt.counter("tta.cache.hits", &[("cache", "cache")]),
            tt.counter("tta.cache.misses", &[("cache", "cache")])
        ),
        (0.0, 10.0),
        "no request was answered from the cache: the followers of a cut fill are misses"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = cache
        .stream("q".into(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(count(&calls), 2, "the cut stream was not stored");
}

/// A memory store whose writes take 100 ms (a slow remote store).
struct SlowWrites(tta_cache::MemoryStore);

impl tta_cache::CacheStore for SlowWrites {
    fn kind(&self) -> &'static str {
        "slow"
    }

    async fn get(
        &self,
        key: &tta_cache::CacheKey,
    ) -> Result<Option<bytes::Bytes>, tta_cache::StoreError> {
        self.0.get(key).await
    }

    async fn set(
        &self,
        key: &tta_cache::CacheKey,
        value: bytes::Bytes,
        ttl: Duration,
    ) -> Result<(), tta_cache::StoreError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.0.set(key, value, ttl).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_while_the_ended_fill_is_being_stored_waits_for_it_and_hits() {
    let (_tt, t) = pipeline();
    let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Drops::default());
    let cache = CachePrimitive::builder(words(&t, &calls, &drops, 3, None))
        .store(SlowWrites(tta_cache::MemoryStore::new()))
        .telemetry(&t)
        .build()
        .unwrap();
    let read = |cx: WorkflowContext| {
        let cache = &cache;
        async move {
            cache
                .stream("q".into(), &cx)
                .await
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<String>>()
                .await
        }
    };
    assert_eq!(read(WorkflowContext::new()).await, expected(3));
    // The fill's consumers are gone; its write is still on its way to the store.
    let started = tokio::time::Instant::now();
    let cx = WorkflowContext::new();
    assert_eq!(read(cx.clone()).await, expected(3));
    assert_eq!(count(&calls), 1, "the second request did not fill again");
    assert!(
        cx.ledger()
            .entries()
            .iter()
            .any(|e| e.kind == AttemptKind::CacheHit),
        "it is a hit: {:?}",
        cx.ledger().entries()
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "it waited for the write, no longer"
    );
}

/// A memory store that, while `cut` is set, reads every entry without its last two bytes
/// (an entry cut short, or written by another chunk type under the same version).
struct CutReads {
    store: tta_cache::MemoryStore,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl tta_cache::CacheStore for CutReads {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(
        &self,
        key: &tta_cache::CacheKey,
    ) -> Result<Option<bytes::Bytes>, tta_cache::StoreError> {
        let found = self.store.get(key).await?;
        Ok(match found {
            Some(bytes) if self.cut.load(Ordering::SeqCst) && bytes.len() > 2 => {
                Some(bytes.slice(..bytes.len() - 2))
            }
            other => other,
        })
    }

    async fn set(
        &self,
        key: &tta_cache::CacheKey,
        value: bytes::Bytes,
        ttl: Duration,
    ) -> Result<(), tta_cache::StoreError> {
        self.store.set(key, value, ttl).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_decodes_its_chunks_as_they_are_read_and_a_stored_chunk_that_does_not_decode_ends_it_and_blanks_the_entry()
 {
    let (tt, t) = pipeline();
    let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Drops::default());
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cache = CachePrimitive::builder(words(&t, &calls, &drops, 4, None))
        .name("lazy")
        .store(CutReads {
            store: tta_cache::MemoryStore::new(),
            cut: Arc::clone(&cut),
        })
        .telemetry(&t)
        .build()
        .unwrap();
    let read = || async {
        cache
            .stream("q".into(), &WorkflowContext::new())
            .await
            .unwrap()
            .collect::<Vec<Result<String, Error>>>()
            .await
    };
    let whole: Vec<String> = read().await.into_iter().map(Result::unwrap).collect();
    assert_eq!(whole, expected(4));
    let hit: Vec<String> = read().await.into_iter().map(Result::unwrap).collect();
    assert_eq!(hit, expected(4), "a hit replays every chunk");
    assert_eq!(count(&calls), 1);

    cut.store(true, Ordering::SeqCst);
    let replayed = read().await;
    assert_eq!(
        replayed.len(),
        4,
        "three chunks, then the error: {replayed:?}"
    );
    assert!(replayed[..3].iter().all(Result::is_ok));
    let error = replayed[3].as_ref().unwrap_err();
    assert_eq!(error.primitive(), Some("lazy"));
    assert_eq!(
        tt.counter(
            tta_cache::semconv::ERRORS,
            &[("cache", "lazy"), ("op", "get"), ("error_type", "decode")]
        ),
        1.0
    );
    // The entry was blanked: the next request fills it again, and then hits.
    cut.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refilled: Vec<String> = read().await.into_iter().map(Result::unwrap).collect();
    assert_eq!(refilled, expected(4));
    assert_eq!(count(&calls), 2, "the blanked entry was filled again");
    let _ = read().await;
    assert_eq!(count(&calls), 2, "and then hit");
}
