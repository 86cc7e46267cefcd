//! The stack as users write it: layers composed outermost first, a store chosen at run
//! time, an input-aware router, and each primitive's counts without a metrics backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tta_observability_integration::cache::{BoxStore, CacheLayer, CacheStore, MemoryStore};
use tta_observability_integration::router::{Route, RouterPrimitive};
use tta_observability_integration::timeout::TimeoutLayer;
use tta_observability_integration::{
    Error, Layer, Stack, Telemetry, TokenUsage, WorkflowContext, WorkflowPrimitive, from_fn,
};
use tta_tests::telemetry::{TestTelemetry, parent_of};

use crate::{Completion, Provider, Step};

fn usage() -> TokenUsage {
    TokenUsage::new(10, 10)
}

#[tokio::test(start_paused = true)]
async fn a_stack_wraps_outermost_first_and_one_layer_serves_many_primitives() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let provider = Provider::new("p", usage(), |_| Step::Answer(Duration::from_millis(5)));
    let router = RouterPrimitive::builder()
        .route(Route::new("p", provider.primitive::<String>()))
        .telemetry(&t)
        .build()
        .unwrap();
    let timeout = TimeoutLayer::builder()
        .timeout(Duration::from_secs(1))
        .telemetry(&t)
        .build()
        .unwrap();
    let cache = CacheLayer::builder().telemetry(&t).build().unwrap();
    let stack = Stack::new()
        .layer(timeout.clone())
        .layer(cache)
        .into_primitive(router);
    assert_eq!(stack.name(), "timeout", "the first layer is the outermost");
    assert_eq!(stack.inner().name(), "cache");
    let cx = WorkflowContext::new();
    stack.execute("q".into(), &cx).await.unwrap();
    stack.execute("q".into(), &cx).await.unwrap();
    assert_eq!(provider.calls(), 1, "the second call was a cache hit");
    assert_eq!(stack.inner().stats().hits, 1);
    let stats = stack.stats();
    assert_eq!((stats.ok, stats.timeouts, stats.errors), (2, 0, 0));
    // Spans nest in the same order: timeout > cache > router.
    let spans = tt.spans();
    let router_span = spans.iter().find(|s| s.name == "router").unwrap();
    let cache_span = parent_of(&spans, router_span).unwrap();
    assert_eq!(cache_span.name, "cache");
    assert_eq!(parent_of(&spans, cache_span).unwrap().name, "timeout");

    // The same layer wraps another primitive: its settings, not a primitive, are shared.
    let other = timeout.layer(from_fn(|x: u8, _| async move { Ok::<_, Error>(x) }));
    assert_eq!(other.execute(3, &WorkflowContext::new()).await.unwrap(), 3);
    assert_eq!(other.timeout(), Duration::from_secs(1));
}

#[tokio::test]
async fn a_store_chosen_at_run_time_serves_through_one_builder_call() {
    for shared in [false, true] {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let llm = from_fn(move |q: String, _| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Error>(q.len()) }
        });
        let store = if shared {
            BoxStore::new(Arc::new(
                MemoryStore::builder().max_entries(10).build().unwrap(),
            ))
        } else {
            BoxStore::new(MemoryStore::new())
        };
        assert_eq!(store.kind(), "memory");
        assert!(store.breaker_state().is_none());
        let cache = Stack::new()
            .layer(CacheLayer::builder().store(store).build().unwrap())
            .into_primitive(llm);
        let cx = WorkflowContext::new();
        for _ in 0..3 {
            assert_eq!(cache.execute("four".into(), &cx).await.unwrap(), 4);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one fill, two hits through the box"
        );
        assert_eq!(cache.stats().hits, 2);
    }
}

#[tokio::test]
async fn the_router_orders_routes_from_the_input_and_falls_back_to_the_strategy_on_unknown_names() {
    let premium = Provider::new("premium", usage(), |_| Step::Answer(Duration::ZERO));
    let budget = Provider::new("budget", usage(), |_| Step::Answer(Duration::ZERO));
    let router = RouterPrimitive::builder()
        .route(Route::new("budget", budget.primitive::<String>()))
        .route(Route::new("premium", premium.primitive::<String>()))
        .route_by(
            |q: &String, cx: &WorkflowContext, _| match cx.metadata("tier") {
                Some("pro") => vec!["premium"],
                Some("typo") => vec!["premum"],
                _ if q.len() > 10 => vec!["premium", "budget"],
                _ => vec!["budget"],
            },
        )
        .build()
        .unwrap();
    let ask = |tier: Option<&str>, q: &str| {
        let cx = match tier {
            Some(tier) => WorkflowContext::builder()
                .metadata("tier", tier)
                .build()
                .unwrap(),
            None => WorkflowContext::new(),
        };
        let router = &router;
        let q = q.to_owned();
        async move { router.execute(q, &cx).await.map(|c: Completion| c.route) }
    };
    assert_eq!(ask(Some("pro"), "hi").await.unwrap(), "premium");
    assert_eq!(ask(None, "hi").await.unwrap(), "budget");
    assert_eq!(ask(None, "a long question").await.unwrap(), "premium");
    assert_eq!(router.route_fn_errors(), 0);
    // A name that is not a route: counted, and the strategy's order (declaration) is used.
    assert_eq!(ask(Some("typo"), "hi").await.unwrap(), "budget");
    assert_eq!(router.route_fn_errors(), 1);
}
