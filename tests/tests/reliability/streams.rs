//! Streams through the whole stack, a timeout around a cache around a router: the span
//! tree of a streamed miss answered by a fallback, and exact ledgers under a thousand
//! concurrent streams with random cuts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tta_observability_integration::cache::CacheLayer;
use tta_observability_integration::router::{Price, Route, RouterPrimitive, Strategy};
use tta_observability_integration::timeout::TimeoutLayer;
use tta_observability_integration::{
    Error, ErrorClass, FnPrimitive, ReportsUsage, Stack, StreamPrimitive, Streamable, Telemetry,
    TokenUsage, Usd, WorkflowContext, from_fn, semconv,
};
use tta_tests::telemetry::{PromTelemetry, TestTelemetry, parent_of};

use crate::Completion;

/// A piece of a streamed completion; the last reports the usage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Piece {
    text: String,
    usage: Option<(u64, u64)>,
}

impl ReportsUsage for Piece {
    fn token_usage(&self) -> Option<TokenUsage> {
        self.usage.map(|(i, o)| TokenUsage::new(i, o))
    }
}

impl Streamable for Completion {
    type Chunk = Piece;
}

/// A streaming route: `first_ms` to its first chunk, then `n` chunks; when `cut_at` is
/// set, a reset after that many chunks. Prices are powers of two per token, so the f64
/// counters can equal the exact ledgers.
fn route(
    name: &'static str,
    first_ms: u64,
    n: usize,
    cut: Arc<dyn Fn() -> Option<usize> + Send + Sync>,
    calls: &Arc<AtomicUsize>,
    t: &Telemetry,
) -> Route<String, Completion> {
    let calls = Arc::clone(calls);
    let stream = FnPrimitive::stream_builder(move |q: String, _cx| {
        calls.fetch_add(1, Ordering::SeqCst);
        let cut_at = cut();
        async move {
            tokio::time::sleep(Duration::from_millis(first_ms)).await;
            Ok(futures_util::stream::unfold(0usize, move |i| {
                let q = q.clone();
                async move {
                    if cut_at == Some(i) {
                        return Some((
                            Err(Error::msg("reset").with_class(ErrorClass::Unavailable)),
                            usize::MAX,
                        ));
                    }
                    if i >= n {
                        return None;
                    }
                    let usage = (i + 1 == n).then_some((64, n as u64));
                    Some((
                        Ok(Piece {
                            text: format!("{q}:{i}"),
                            usage,
                        }),
                        i + 1,
                    ))
                }
            }))
        }
    })
    .name(name)
    .telemetry(t)
    .build()
    .unwrap();
    let call = from_fn(move |_q: String, _| async move {
        Ok::<_, Error>(Completion {
            route: name.to_owned(),
            input: 64,
            output: n as u64,
        })
    });
    Route::new(name, call)
        .stream_with(stream)
        .price(Price::per_1k_tokens(0.244140625, 0.48828125))
}

fn never() -> Arc<dyn Fn() -> Option<usize> + Send + Sync> {
    Arc::new(|| None)
}

#[tokio::test(start_paused = true)]
async fn a_streamed_miss_answered_by_a_fallback_has_the_whole_span_tree() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let calls = Arc::new(AtomicUsize::new(0));
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(route("slow", 5_000, 3, never(), &calls, &t))
        .route(route("fast", 10, 3, never(), &calls, &t))
        .attempt_timeout(Duration::from_millis(500))
        .telemetry(&t)
        .build()
        .unwrap();
    let stack = Stack::new()
        .layer(
            TimeoutLayer::builder()
                .timeout(Duration::from_secs(2))
                .telemetry(&t)
                .build()
                .unwrap(),
        )
        .layer(CacheLayer::builder().telemetry(&t).build().unwrap())
        .into_primitive(router);
    let pieces: Vec<Piece> = stack
        .stream("q".into(), &WorkflowContext::new())
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(pieces.len(), 3);
    let spans = tt.spans();
    let named = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    let (timeout, cache, router) = (named("timeout"), named("cache"), named("router"));
    assert_eq!(
        (timeout.len(), cache.len(), router.len()),
        (1, 1, 1),
        "each span ended"
    );
    assert_eq!(parent_of(&spans, router[0]).unwrap().name, "cache");
    assert_eq!(parent_of(&spans, cache[0]).unwrap().name, "timeout");
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .collect();
    assert_eq!(
        attempts.len(),
        2,
        "the slow attempt and its fallback, both ended"
    );
    assert!(
        attempts
            .iter()
            .all(|a| parent_of(&spans, a).unwrap().name == "router")
    );
    for outer in [timeout[0], cache[0], router[0]] {
        assert!(
            outer
                .events
                .iter()
                .any(|e| e.name == semconv::EVENT_FIRST_CHUNK),
            "{}: the first-chunk event",
            outer.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_streams_with_random_cuts_keep_every_ledger_exact() {
    let prom = PromTelemetry::new();
    let t = Telemetry::new(prom.meter_provider(), prom.tracer_provider());
    let calls = Arc::new(AtomicUsize::new(0));
    let rng = Arc::new(std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(7)));
    let cut: Arc<dyn Fn() -> Option<usize> + Send + Sync> = Arc::new(move || {
        let mut rng = rng.lock().unwrap();
        rng.random_bool(0.3).then(|| rng.random_range(1..4))
    });
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(route("a", 1, 4, Arc::clone(&cut), &calls, &t))
        .route(route("b", 1, 4, cut, &calls, &t))
        .strategy(Strategy::Weighted)
        .seed(3)
        .failure_threshold(u32::MAX)
        .telemetry(&t)
        .build()
        .unwrap();
    let cache = CacheLayer::builder().telemetry(&t).build().unwrap();
    let stack = Arc::new(
        Stack::new()
            .layer(
                TimeoutLayer::builder()
                    .timeout(Duration::from_secs(5))
                    .telemetry(&t)
                    .build()
                    .unwrap(),
            )
            .layer(cache)
            .into_primitive(router),
    );
    let shared = WorkflowContext::new();
    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            let (stack, cx) = (Arc::clone(&stack), shared.child_scope());
            tokio::spawn(async move {
                let (request, scope) = cx.with_ledger_scope();
                // 50 distinct prompts: misses, coalesced followers and hits all happen.
                if let Ok(streamed) = stack.stream(format!("prompt {}", i % 50), &request).await {
                    let _: Vec<_> = streamed.collect().await;
                }
                scope.totals()
            })
        })
        .collect();
    let (mut spent, mut saved) = (Usd::ZERO, Usd::ZERO);
    for task in tasks {
        let totals = task.await.unwrap();
        spent += totals.spent;
        saved += totals.saved;
    }
    let totals = shared.ledger().totals();
    assert_eq!(
        (spent, saved),
        (totals.spent, totals.saved),
        "per-request ledgers sum to the shared one"
    );
    assert_eq!(
        prom.sum("tta_router_cost_usd_total", &[("router", "llm")]),
        totals.spent.dollars(),
        "and equal the Prometheus cost counter exactly"
    );
    assert!(
        calls.load(Ordering::SeqCst) < 1_000,
        "the cache served some streams"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        stack.inner().fills_in_flight(),
        0,
        "no single-flight entry left over"
    );
}
