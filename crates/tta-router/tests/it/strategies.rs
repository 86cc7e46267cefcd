use std::collections::HashMap;
use std::time::Duration;

use tta_core::WorkflowContext;
use tta_router::{Price, Strategy};

use crate::{Provider, ask, ok_after, pipeline, price, router};

#[tokio::test(start_paused = true)]
async fn ordered_tries_routes_in_declaration_order() {
    let (_tt, t) = pipeline();
    let (a, b) = (
        Provider::new("a", ok_after(0)),
        Provider::new("b", ok_after(0)),
    );
    let r = router(&t)
        .route(a.route())
        .route(b.route())
        .build()
        .unwrap();
    for _ in 0..5 {
        assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "a");
    }
    assert_eq!((a.calls(), b.calls()), (5, 0));
    assert_eq!(
        r.plan(&Default::default(), &WorkflowContext::new()),
        ["a", "b"]
    );
}

#[tokio::test(start_paused = true)]
async fn cheapest_picks_the_lowest_expected_cost() {
    let (_tt, t) = pipeline();
    let premium = Provider::new("premium", ok_after(0));
    let budget = Provider::new("budget", ok_after(0));
    let flat = Provider::new("flat", ok_after(0));
    let r = router(&t)
        .route(premium.route().price(price(0.01, 0.03)))
        .route(flat.route().price(Price::per_call(0.004)))
        .route(budget.route().price(price(0.0005, 0.0015)))
        .strategy(Strategy::Cheapest)
        .build()
        .unwrap();
    assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "budget");
    // Expected usage is now 1,000 in / 500 out: budget $0.00125, flat $0.004, premium $0.025.
    assert_eq!(
        r.plan(&Default::default(), &WorkflowContext::new()),
        ["budget", "flat", "premium"]
    );
}

#[tokio::test(start_paused = true)]
async fn lowest_latency_explores_cold_routes_then_prefers_the_fastest() {
    let (_tt, t) = pipeline();
    let slow = Provider::new("slow", ok_after(300));
    let fast = Provider::new("fast", ok_after(20));
    let mid = Provider::new("mid", ok_after(100));
    let r = router(&t)
        .route(slow.route())
        .route(mid.route())
        .route(fast.route())
        .strategy(Strategy::LowestLatency)
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(ask(&r, &WorkflowContext::new()).await.unwrap());
    }
    // Each route is explored until it has 3 observations, then the fastest wins.
    assert_eq!((slow.calls(), mid.calls()), (3, 3));
    assert_eq!(&seen[9..], ["fast", "fast", "fast"]);
    let stats = r.stats();
    assert_eq!(stats[2].latency, Some(Duration::from_millis(20)));
    assert_eq!(
        r.plan(&Default::default(), &WorkflowContext::new()),
        ["fast", "mid", "slow"]
    );
}

#[tokio::test(start_paused = true)]
async fn weighted_routing_follows_the_weights_and_a_seed_reproduces_it() {
    let (_tt, t) = pipeline();
    let providers = [
        Provider::new("a", ok_after(0)),
        Provider::new("b", ok_after(0)),
        Provider::new("c", ok_after(0)),
    ];
    let build = |seed| {
        router(&t)
            .route(providers[0].route().weight(1.0))
            .route(providers[1].route().weight(3.0))
            .route(providers[2].route().weight(6.0))
            .strategy(Strategy::Weighted)
            .seed(seed)
            .build()
            .unwrap()
    };
    let r = build(7);
    let cx = WorkflowContext::new();
    let mut first = HashMap::new();
    let mut sequence = Vec::new();
    for _ in 0..5_000 {
        let plan = r.plan(&Default::default(), &cx);
        assert_eq!(plan.len(), 3, "every route stays available as a fallback");
        *first.entry(plan[0]).or_insert(0) += 1;
        sequence.push(plan[0]);
    }
    let share = |k| f64::from(first[k]) / 5_000.0;
    assert!((share("a") - 0.1).abs() < 0.03, "{first:?}");
    assert!((share("b") - 0.3).abs() < 0.03, "{first:?}");
    assert!((share("c") - 0.6).abs() < 0.03, "{first:?}");
    let again = build(7);
    let replay: Vec<_> = (0..5_000)
        .map(|_| again.plan(&Default::default(), &cx)[0])
        .collect();
    assert_eq!(replay, sequence, "the same seed gives the same choices");
}

#[tokio::test(start_paused = true)]
async fn cheapest_within_latency_respects_the_target_and_the_remaining_deadline() {
    let (_tt, t) = pipeline();
    let cheap_slow = Provider::new("cheap_slow", ok_after(2_000));
    let dear_fast = Provider::new("dear_fast", ok_after(100));
    let r = router(&t)
        .route(cheap_slow.route().price(price(0.0001, 0.0001)))
        .route(dear_fast.route().price(price(0.01, 0.01)))
        .strategy(Strategy::CheapestWithinLatency(Duration::from_secs(5)))
        .build()
        .unwrap();
    // Warm both routes' latency averages.
    assert_eq!(
        ask(&r, &WorkflowContext::new()).await.unwrap(),
        "cheap_slow"
    );
    assert_eq!(
        r.plan(&Default::default(), &WorkflowContext::new()),
        ["cheap_slow", "dear_fast"]
    );
    // With one second left, the slow route no longer fits: the fast one goes first.
    let hurried = WorkflowContext::new().with_timeout(Duration::from_secs(1));
    assert_eq!(
        r.plan(&Default::default(), &hurried),
        ["dear_fast", "cheap_slow"]
    );
    assert_eq!(ask(&r, &hurried).await.unwrap(), "dear_fast");
    // A tighter target than both latencies: the fastest first.
    let strict = router(&t)
        .route(cheap_slow.route().price(price(0.0001, 0.0001)))
        .route(dear_fast.route().price(price(0.01, 0.01)))
        .strategy(Strategy::CheapestWithinLatency(Duration::from_millis(10)))
        .build()
        .unwrap();
    assert_eq!(
        ask(&strict, &WorkflowContext::new()).await.unwrap(),
        "cheap_slow",
        "cold routes fit"
    );
    ask(&strict, &WorkflowContext::new()).await.unwrap();
    assert_eq!(
        strict.plan(&Default::default(), &WorkflowContext::new()),
        ["dear_fast", "cheap_slow"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_user_function_ranks_the_routes() {
    let (_tt, t) = pipeline();
    let (a, b, c) = (
        Provider::new("a", ok_after(0)),
        Provider::new("b", ok_after(0)),
        Provider::new("c", ok_after(0)),
    );
    // Reverse order, with junk indices and repeats that must be ignored; `a` left out.
    let r = router(&t)
        .route(a.route())
        .route(b.route())
        .route(c.route())
        .strategy(Strategy::custom(|stats| {
            assert_eq!(stats.len(), 3);
            vec![2, 99, 2, 1]
        }))
        .build()
        .unwrap();
    assert_eq!(
        r.plan(&Default::default(), &WorkflowContext::new()),
        ["c", "b"]
    );
    assert_eq!(ask(&r, &WorkflowContext::new()).await.unwrap(), "c");
    let none = router(&t)
        .route(a.route())
        .strategy(Strategy::custom(|_| vec![]))
        .build()
        .unwrap();
    let err = ask(&none, &WorkflowContext::new()).await.unwrap_err();
    assert!(err.is_no_route(), "{err}");
    assert_eq!(format!("{:?}", Strategy::custom(|_| vec![])), "custom");
    assert_eq!(
        format!(
            "{:?}",
            Strategy::CheapestWithinLatency(Duration::from_secs(1))
        ),
        "CheapestWithinLatency(1s)"
    );
}
