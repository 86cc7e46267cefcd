use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tower::{Layer, ServiceExt};
use tta_cache::{
    BuildError, CacheKey, CacheLayer, CachePrimitive, MemoryStore, StoreBuildError, semconv,
};
use tta_core::tower::TowerLayer;
use tta_core::{Error, InvalidName, TokenUsage, WorkflowContext, from_fn};
use tta_tests::telemetry::{PointValue, span_attr};

use crate::{CALL_USAGE, call_cost, count, llm, pipeline};

#[tokio::test]
async fn a_miss_fills_and_the_next_lookup_hits() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .name("answers")
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    let first = cache.execute("hello".into(), &cx).await.unwrap();
    let second = cache.execute("hello".into(), &cx).await.unwrap();
    assert_eq!(first, "answer to hello");
    assert_eq!(second, first);
    assert_eq!(count(&calls), 1);
    let labels = [("cache", "answers"), ("store", "memory")];
    assert_eq!(tt.counter(semconv::HITS, &labels), 1.0);
    assert_eq!(tt.counter(semconv::MISSES, &labels), 1.0);
    let results: Vec<_> = tt
        .spans_named("cache")
        .iter()
        .map(|s| span_attr(s, semconv::ATTR_RESULT).unwrap())
        .collect();
    assert_eq!(results, ["miss", "hit"]);
}

#[tokio::test]
async fn distinct_inputs_never_share_a_key() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for prompt in ["a b", "a_b", "a  b", "A b", "a b "] {
        assert_eq!(
            cache.execute(prompt.into(), &cx).await.unwrap(),
            format!("answer to {prompt}")
        );
    }
    assert_eq!(count(&calls), 5, "no lossy key cleaning");
    assert_ne!(CacheKey::new("n", 1, b"a b"), CacheKey::new("n", 1, b"a_b"));
}

#[tokio::test]
async fn namespace_version_and_key_function_shape_the_key() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    let build = |ns: &str, version: u32| {
        CachePrimitive::builder(llm(&calls, Duration::ZERO))
            .store(Arc::clone(&store))
            .namespace(ns)
            .version(version)
            .telemetry(&t)
            .build()
            .unwrap()
    };
    let cx = WorkflowContext::new();
    build("qa", 1).execute("q".into(), &cx).await.unwrap();
    build("qa", 1).execute("q".into(), &cx).await.unwrap();
    assert_eq!(
        count(&calls),
        1,
        "same namespace and version share the store's entry"
    );
    build("qa", 2).execute("q".into(), &cx).await.unwrap();
    build("other", 1).execute("q".into(), &cx).await.unwrap();
    assert_eq!(count(&calls), 3, "a new version or namespace is a new key");

    // A key function: requests that differ only in a request id share entries.
    let keyed = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .key_fn(|prompt: &String| {
            prompt
                .split('#')
                .next()
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        })
        .telemetry(&t)
        .build()
        .unwrap();
    keyed
        .execute("same question#req-1".into(), &cx)
        .await
        .unwrap();
    let out = keyed
        .execute("same question#req-2".into(), &cx)
        .await
        .unwrap();
    assert_eq!(out, "answer to same question#req-1");
    assert_eq!(count(&calls), 4);
}

#[tokio::test]
async fn errors_are_never_cached() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let flaky = from_fn(move |q: String, _| {
        let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(Error::msg("provider 503"))
            } else {
                Ok(q)
            }
        }
    });
    let cache = CachePrimitive::builder(flaky)
        .name("flaky")
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert!(cache.execute("q".into(), &cx).await.is_err());
    assert_eq!(cache.execute("q".into(), &cx).await.unwrap(), "q");
    assert_eq!(cache.execute("q".into(), &cx).await.unwrap(), "q");
    assert_eq!(count(&calls), 2);
    assert_eq!(tt.counter(semconv::HITS, &[("cache", "flaky")]), 1.0);
}

#[tokio::test]
async fn values_over_the_size_limit_are_returned_but_not_stored() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let big = from_fn(move |n: usize, _| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, Error>("x".repeat(n)) }
    });
    let cache = CachePrimitive::builder(big)
        .name("big")
        .max_value_bytes(1_024)
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert_eq!(cache.execute(10_000, &cx).await.unwrap().len(), 10_000);
    assert_eq!(cache.execute(10_000, &cx).await.unwrap().len(), 10_000);
    assert_eq!(count(&calls), 2);
    assert_eq!(
        tt.counter(
            semconv::ERRORS,
            &[("cache", "big"), ("op", "set"), ("error_type", "too_large")]
        ),
        2.0
    );
    cache.execute(10, &cx).await.unwrap();
    cache.execute(10, &cx).await.unwrap();
    assert_eq!(count(&calls), 3, "small values are cached");
}

#[tokio::test]
async fn a_hit_records_the_fills_tokens_and_dollars_as_savings() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .name("answers")
        .telemetry(&t)
        .build()
        .unwrap();
    let filler = WorkflowContext::new();
    cache.execute("q".into(), &filler).await.unwrap();
    assert_eq!(filler.ledger().totals().spent, call_cost());
    assert_eq!(filler.ledger().totals().saved, tta_core::Usd::ZERO);

    let reader = WorkflowContext::new();
    for _ in 0..3 {
        cache.execute("q".into(), &reader).await.unwrap();
    }
    let totals = reader.ledger().totals();
    assert_eq!(totals.spent, tta_core::Usd::ZERO);
    assert_eq!(totals.saved.picos(), call_cost().picos() * 3);
    assert_eq!(
        totals.saved_usage,
        TokenUsage::new(CALL_USAGE.input * 3, CALL_USAGE.output * 3)
    );
    let entries = reader.ledger().entries();
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .all(|e| e.kind == tta_core::AttemptKind::CacheHit && &*e.source == "answers")
    );
    let savings = tt.counter(semconv::COST_SAVINGS, &[("cache", "answers")]);
    assert!((savings - 3.0 * 0.0123).abs() < 1e-12, "{savings}");
}

#[tokio::test]
async fn the_hit_ratio_gauge_exports_the_share_of_hits() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .name("ratio")
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for prompt in ["a", "a", "a", "b"] {
        cache.execute(prompt.into(), &cx).await.unwrap();
    }
    let points = tt.points_matching(semconv::HIT_RATIO, &[("cache", "ratio")]);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].value, PointValue::Gauge(0.5));
    assert!(
        tt.points_matching(semconv::OPERATION_DURATION, &[("cache", "ratio")])
            .is_empty(),
        "the memory store is not timed: a ~100 ns lookup is not worth two clock reads"
    );
}

#[tokio::test]
async fn entries_expire_after_their_ttl_real_time() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .ttl(Duration::from_millis(150))
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    cache.execute("q".into(), &cx).await.unwrap();
    cache.execute("q".into(), &cx).await.unwrap();
    assert_eq!(count(&calls), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    cache.execute("q".into(), &cx).await.unwrap();
    assert_eq!(count(&calls), 2, "expired entries are filled again");
}

#[tokio::test]
async fn the_memory_store_stays_within_its_bound() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::builder().max_entries(20).build().unwrap());
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .store(Arc::clone(&store))
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for i in 0..500 {
        cache.execute(format!("q{i}"), &cx).await.unwrap();
    }
    store.run_pending_tasks();
    assert!(store.entry_count() <= 20, "{} entries", store.entry_count());
    assert!(
        store.entry_count() > 0,
        "the bound evicts, it does not empty the store"
    );
    assert_eq!(count(&calls), 500, "500 distinct prompts, 500 fills");
}

#[tokio::test]
async fn a_memory_store_has_no_breaker_and_no_state_gauge() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .telemetry(&t)
        .build()
        .unwrap();
    cache
        .execute("q".into(), &WorkflowContext::new())
        .await
        .unwrap();
    assert!(tt.points_matching(semconv::STORE_STATE, &[]).is_empty());
    assert!(tt.points_matching(semconv::HITS, &[]).len() == 1);
}

#[tokio::test]
async fn inputs_never_reach_spans() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = CachePrimitive::builder(llm(&calls, Duration::ZERO))
        .telemetry(&t)
        .build()
        .unwrap();
    let secret = "my card number is 4111 1111 1111 1111";
    cache
        .execute(secret.into(), &WorkflowContext::new())
        .await
        .unwrap();
    for span in tt.spans() {
        for kv in &span.attributes {
            assert!(
                !kv.value.to_string().contains("4111"),
                "{}: {}",
                kv.key,
                kv.value
            );
        }
    }
    let span = &tt.spans_named("cache")[0];
    assert_eq!(span_attr(span, semconv::ATTR_KEY).unwrap().len(), 16);
}

#[test]
fn every_bad_setting_is_a_typed_build_error() {
    let inner = || from_fn(|q: String, _| async move { Ok::<_, Error>(q) });
    let b = || CachePrimitive::builder(inner());
    assert!(matches!(
        b().ttl(Duration::ZERO).build(),
        Err(BuildError::Ttl { .. })
    ));
    assert!(matches!(
        b().ttl(Duration::from_secs(31 * 24 * 3600)).build(),
        Err(BuildError::Ttl { .. })
    ));
    assert_eq!(
        b().namespace("has space").build().unwrap_err(),
        BuildError::Namespace(InvalidName::Char { ch: ' ', index: 3 })
    );
    assert_eq!(
        b().namespace("").build().unwrap_err(),
        BuildError::Namespace(InvalidName::Empty)
    );
    assert!(matches!(b().name("a/b").build(), Err(BuildError::Name(_))));
    assert_eq!(
        b().max_value_bytes(0).build().unwrap_err(),
        BuildError::MaxValueBytes
    );
    assert!(matches!(
        MemoryStore::builder().max_entries(0).build(),
        Err(StoreBuildError::Bound(_))
    ));
    assert!(matches!(
        MemoryStore::builder().max_entries(5).max_bytes(5).build(),
        Err(StoreBuildError::Bound(_))
    ));
    let err: Error = b().max_value_bytes(0).build().unwrap_err().into();
    assert!(err.is_invalid_config());
    let ok = b().ttl(Duration::from_millis(1)).build().unwrap();
    assert!(format!("{ok:?}").contains("CachePrimitive"));
    assert_eq!(ok.fills_in_flight(), 0);
}

#[tokio::test]
async fn the_tower_layer_caches_a_service() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let cache = CacheLayer::builder()
        .ttl(Duration::from_secs(60))
        .namespace("svc")
        .name("svc_cache")
        .telemetry(&t)
        .build()
        .unwrap();
    let layer = TowerLayer::new(cache).telemetry(&t);
    let svc = layer.clone().layer(tower::service_fn(move |q: String| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(q.len()) }
    }));
    assert_eq!(svc.clone().oneshot("abcd".into()).await.unwrap(), 4);
    assert_eq!(svc.oneshot("abcd".into()).await.unwrap(), 4);
    assert_eq!(count(&calls), 1);
    assert_eq!(tt.counter(semconv::HITS, &[("cache", "svc_cache")]), 1.0);
    assert!(matches!(
        CacheLayer::builder().namespace("bad ns").build(),
        Err(BuildError::Namespace(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_entry_lives_for_its_ttl_on_tokios_clock() {
    use tta_cache::{CacheKey, CacheStore};
    let store = MemoryStore::new();
    let (short, long) = (
        CacheKey::new("t", 1, b"short"),
        CacheKey::new("t", 1, b"long"),
    );
    let value = bytes::Bytes::from_static(b"v");
    store
        .set(&short, value.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    store
        .set(&long, value.clone(), Duration::from_secs(3600))
        .await
        .unwrap();
    // As of a given instant (the cache passes its execution's start): live before it,
    // gone at it, without reading the clock.
    let set_at = tokio::time::Instant::now();
    let at = |ms: u64| set_at + Duration::from_millis(ms);
    assert_eq!(
        store.get_at(&short, at(9_999)).await.unwrap(),
        Some(value.clone())
    );
    assert_eq!(
        store.get_at(&long, at(10_000)).await.unwrap(),
        Some(value.clone())
    );
    // A boxed store hands the instant on.
    let boxed = tta_cache::BoxStore::new(store.clone());
    assert_eq!(
        boxed.get_at(&short, at(9_999)).await.unwrap(),
        Some(value.clone())
    );
    assert_eq!(store.entry_count(), 2);
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(store.get(&short).await.unwrap(), Some(value.clone()));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(store.get(&short).await.unwrap(), None, "expired at its TTL");
    assert_eq!(
        store.entry_count(),
        1,
        "the expired entry was removed when read"
    );
    assert_eq!(store.get(&long).await.unwrap(), Some(value.clone()));
    // A TTL past the clock's range never expires; sweeping removes only expired entries.
    store
        .set(&short, value.clone(), Duration::MAX)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    store.run_pending_tasks();
    assert_eq!(store.entry_count(), 1);
    assert_eq!(store.get(&short).await.unwrap(), Some(value.clone()));
    assert_eq!(store.get(&long).await.unwrap(), None);
    // Expired as of the instant given, though not yet on the clock.
    store
        .set(&long, value, Duration::from_secs(10))
        .await
        .unwrap();
    let ten_s_on = tokio::time::Instant::now() + Duration::from_secs(10);
    assert_eq!(store.get_at(&long, ten_s_on).await.unwrap(), None);
}

#[tokio::test]
async fn a_huge_bound_allocates_nothing_up_front_and_a_byte_bound_holds() {
    use tta_cache::{CacheKey, CacheStore};
    // A trillion entries or a petabyte: the table starts small and grows as it fills.
    for store in [
        MemoryStore::builder().max_entries(1 << 40).build().unwrap(),
        MemoryStore::builder().max_bytes(1 << 50).build().unwrap(),
    ] {
        let key = CacheKey::new("t", 1, b"k");
        store
            .set(
                &key,
                bytes::Bytes::from_static(b"v"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(store.get(&key).await.unwrap().is_some());
    }
    // 64 KiB of 1 KiB values (and their 32-byte keys): never more than the bound held.
    let store = MemoryStore::builder().max_bytes(64 << 10).build().unwrap();
    for i in 0..1_000u32 {
        let key = CacheKey::new("t", 1, &i.to_le_bytes());
        store
            .set(
                &key,
                bytes::Bytes::from(vec![0u8; 1024]),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    let held = store.entry_count();
    assert!(
        held > 0 && held * (1024 + 32) <= 64 << 10,
        "{held} entries held"
    );
}
