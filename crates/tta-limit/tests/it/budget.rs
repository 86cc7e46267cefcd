//! Budgets: exact under 1,000 concurrent requests, streams settled at what they cost,
//! cancelled and dropped calls giving their reservation back, inputs without a maximum.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use futures_util::StreamExt;
use tta_core::{
    CostBound, Error, Layer, StreamPrimitive, TokenUsage, Usd, WorkflowContext, WorkflowPrimitive,
};
use tta_limit::{LimitExceeded, LimitLayer, LimitPrimitive, MemoryStore, Refusal, Resource};
use tta_router::RouterPrimitive;

use crate::{Answer, Prompt, pipeline, router, streaming_router};

pub(crate) const CAP_USD: f64 = 0.05;

/// What a batch of requests came to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) answered: u64,
    pub(crate) failed: u64,
    pub(crate) refused: u64,
    /// Refusals that were not of kind `limited` (must stay zero).
    pub(crate) refused_otherwise: u64,
    pub(crate) spent: Usd,
}

/// The most one prompt of [`prompt`] can cost through [`router`]: 100 tokens in, 200 out,
/// on the primary and then the backup.
pub(crate) fn max_reservation() -> Usd {
    let price = |p: tta_router::Price| p.validate().unwrap().max_cost(TokenUsage::new(100, 200));
    price(crate::primary_price()) + price(crate::backup_price())
}

pub(crate) fn prompt(n: u64) -> Prompt {
    Prompt {
        input: 100,
        max_output: Some(200),
        n,
    }
}

/// Sends requests `from..to`, all at once. A request refused because calls in flight
/// hold the rest of the budget tries again `retry` later; one refused because the
/// window is spent is counted refused.
pub(crate) async fn drive(
    limited: &Arc<LimitPrimitive<RouterPrimitive<Prompt, Answer>>>,
    from: u64,
    to: u64,
    retry: Duration,
) -> Tally {
    let tasks: Vec<_> = (from..to)
        .map(|n| {
            let limited = Arc::clone(limited);
            tokio::spawn(async move {
                let cx = WorkflowContext::new();
                let result = loop {
                    match limited.execute(prompt(n), &cx).await {
                        Err(e) if e.is_limited() => {
                            let why = e.downcast_ref::<LimitExceeded>().map(|w| w.refusal());
                            if let Some(Some(Refusal::Held { .. })) = why {
                                tokio::time::sleep(retry).await;
                                continue;
                            }
                            break Err(e);
                        }
                        other => break other,
                    }
                };
                (result, cx.ledger().totals().spent)
            })
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        let (result, spent) = task.await.unwrap();
        tally.spent += spent;
        match result {
            Ok(_) => tally.answered += 1,
            Err(e) if e.is_limited() => {
                tally.refused += 1;
                assert_eq!(spent, Usd::ZERO, "a refused request spends nothing");
                assert!(e.retry_after().is_some(), "{e}");
            }
            Err(e) if e.class().is_rate_limited() => tally.refused_otherwise += 1,
            Err(_) => tally.failed += 1,
        }
    }
    tally
}

pub(crate) fn budget(
    router: RouterPrimitive<Prompt, Answer>,
    store: impl tta_limit::LimitStore,
    t: &tta_core::Telemetry,
) -> LimitPrimitive<RouterPrimitive<Prompt, Answer>> {
    LimitLayer::builder()
        .name("budget")
        .usd_per(CAP_USD, Duration::from_secs(3600))
        .cost_bound(router.cost_bound())
        .store(store)
        .telemetry(t)
        .build()
        .unwrap()
        .layer(router)
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_requests_never_spend_past_the_cap() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicU64::new(0));
    let router = router(Duration::from_millis(5), &t, &calls);
    let store = MemoryStore::new();
    let limited = Arc::new(budget(router.clone(), store.clone(), &t));

    let tally = drive(&limited, 0, 1_000, Duration::from_millis(1)).await;

    let cap = Usd::from_dollars(CAP_USD).unwrap();
    assert!(tally.spent <= cap, "spent {:?} > cap", tally.spent);
    // The last refusals found the window spent: less than one reservation was left.
    assert!(
        tally.spent.picos() + max_reservation().picos() > cap.picos(),
        "spent {} leaves more than one reservation unused",
        tally.spent.dollars()
    );
    assert_eq!(tally.refused_otherwise, 0);
    assert_eq!(tally.answered + tally.failed + tally.refused, 1_000);
    assert!(tally.refused > 0 && tally.answered > 0, "{tally:?}");
    // Ledger, router and store agree exactly, and nothing is left reserved.
    assert_eq!(router.totals().cost, tally.spent);
    let counters = store.counters();
    assert_eq!(counters.len(), 1);
    assert_eq!(counters[0].used, tally.spent.picos());
    assert_eq!(counters[0].reserved, 0);
    let stats = limited.stats();
    assert_eq!(stats.holding, 0);
    assert_eq!(stats.overshoots, 0);
    // Each call reserved once; refusals count every try (held ones were retried).
    assert_eq!(stats.allowed, tally.answered + tally.failed);
    assert!(stats.refused >= tally.refused);
    // Billed failures fell back: both routes were paid for.
    assert!(router.totals().fallbacks > 0);
    // The decisions metric says the same as the stats.
    tt.meter_provider().force_flush().unwrap();
    let refused = tt.counter(
        "tta.limit.decisions",
        &[
            ("limit", "budget"),
            ("resource", "usd"),
            ("result", "refused"),
        ],
    );
    assert_eq!(refused as u64, stats.refused);
    let allowed = tt.counter(
        "tta.limit.decisions",
        &[
            ("limit", "budget"),
            ("resource", "usd"),
            ("result", "allowed"),
        ],
    );
    assert_eq!(allowed as u64, stats.allowed);
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_midway_settles_at_what_it_was_billed() {
    let (_tt, t) = pipeline();
    let store = MemoryStore::new();
    for cut in [true, false] {
        let router = streaming_router(5, cut, &t);
        let limited = LimitLayer::builder()
            .name(if cut { "cut" } else { "whole" })
            .usd_per(1.0, Duration::from_secs(60))
            .tokens_per(100_000, Duration::from_secs(60))
            .cost_bound(router.cost_bound())
            .store(store.clone())
            .telemetry(&t)
            .build()
            .unwrap()
            .layer(router);
        let cx = WorkflowContext::new();
        let streamed = limited.stream(crate::budget::prompt(1), &cx).await.unwrap();
        // Held while the body runs.
        assert_eq!(limited.stats().holding, 1);
        let items: Vec<_> = streamed.collect().await;
        assert_eq!(items.last().unwrap().is_err(), cut);
        assert_eq!(limited.stats().holding, 0);
        let spent = cx.ledger().totals();
        assert!(spent.spent > Usd::ZERO, "an interrupted stream is billed");
        let mine: Vec<_> = store
            .counters()
            .into_iter()
            .filter(|c| c.limit == if cut { "cut" } else { "whole" })
            .collect();
        for c in &mine {
            assert_eq!(c.reserved, 0);
            match c.resource {
                Resource::Usd => assert_eq!(c.used, spent.spent.picos()),
                Resource::Tokens => assert_eq!(c.used, spent.usage.total()),
                other => panic!("unexpected counter {other:?}"),
            }
        }
        assert_eq!(mine.len(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn cancelled_and_dropped_calls_give_their_reservations_back() {
    let (_tt, t) = pipeline();
    let store = MemoryStore::new();
    let hangs = tta_core::from_fn(|_: Prompt, _| std::future::pending::<Result<Answer, Error>>());
    let limited = Arc::new(
        LimitLayer::builder()
            .usd_per(1_000.0, Duration::from_secs(60))
            .requests_per(1_000_000, Duration::from_secs(60))
            .concurrency(20_000)
            .cost_bound(CostBound::new(
                crate::primary_price().validate().unwrap(),
                1,
            ))
            .store(store.clone())
            .telemetry(&t)
            .build()
            .unwrap()
            .layer(hangs),
    );
    // 10,000 requests started, then dropped (their tasks aborted).
    let tasks: Vec<_> = (0..10_000)
        .map(|n| {
            let limited = Arc::clone(&limited);
            tokio::spawn(async move { limited.execute(prompt(n), &WorkflowContext::new()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(limited.stats().holding, 10_000);
    let usd = |store: &MemoryStore| {
        store
            .counters()
            .into_iter()
            .find(|c| c.resource == Resource::Usd)
            .unwrap()
    };
    assert_eq!(
        usd(&store).reserved,
        10_000
            * CostBound::new(crate::primary_price().validate().unwrap(), 1)
                .max_cost(TokenUsage::new(100, 200))
                .picos()
    );
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(limited.stats().holding, 0);
    assert_eq!(usd(&store).reserved, 0);
    assert_eq!(usd(&store).used, 0, "nothing was billed");
    // A cancelled context: the call returns cancelled and gives its reservation back.
    let cx = WorkflowContext::new();
    let call = {
        let limited = Arc::clone(&limited);
        let cx = cx.clone();
        tokio::spawn(async move { limited.execute(prompt(1), &cx).await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(usd(&store).reserved > 0);
    cx.cancel();
    assert!(call.await.unwrap().unwrap_err().is_cancelled());
    assert_eq!(usd(&store).reserved, 0);
    let requests = store
        .counters()
        .into_iter()
        .find(|c| c.resource == Resource::Requests)
        .unwrap();
    assert_eq!((requests.used, requests.reserved), (10_001, 0));
}

#[tokio::test(start_paused = true)]
async fn an_input_without_a_maximum_runs_alone_and_its_overshoot_is_counted() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicU64::new(0));
    let router = router(Duration::from_millis(50), &t, &calls);
    let store = MemoryStore::new();
    let limited = Arc::new(
        LimitLayer::builder()
            .usd_per(0.002, Duration::from_secs(60))
            .cost_bound(router.cost_bound())
            .store(store.clone())
            .telemetry(&t)
            .build()
            .unwrap()
            .layer(router),
    );
    let open = |n| Prompt {
        input: 100,
        max_output: None,
        n,
    };
    // The first takes everything left; a second, meanwhile, is refused (held).
    let first = {
        let limited = Arc::clone(&limited);
        tokio::spawn(async move { limited.execute(open(1), &WorkflowContext::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    let second = limited.execute(open(2), &WorkflowContext::new()).await;
    let why = second.unwrap_err();
    assert!(matches!(
        why.downcast_ref::<LimitExceeded>().unwrap().refusal(),
        Some(Refusal::Held { .. })
    ));
    assert!(why.retry_after().unwrap() <= Duration::from_millis(250));
    first.await.unwrap().unwrap();
    // Call 1 used 100 in and up to 400 out at the primary's price: more than $0.002.
    let used = store.counters()[0].used;
    assert!(used > Usd::from_dollars(0.002).unwrap().picos());
    assert_eq!(limited.stats().overshoots, 1);
    // Now the window is spent: refused until it ends.
    let third = limited
        .execute(open(3), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(matches!(
        third.downcast_ref::<LimitExceeded>().unwrap().refusal(),
        Some(Refusal::Spent { .. })
    ));
    assert!(third.retry_after().unwrap() > Duration::from_secs(59));
    tokio::time::sleep(third.retry_after().unwrap()).await;
    limited
        .execute(
            Prompt {
                input: 10,
                max_output: Some(10),
                n: 4,
            },
            &WorkflowContext::new(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_call_dearer_than_the_whole_budget_is_refused_without_a_retry_hint() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicU64::new(0));
    let router = router(Duration::ZERO, &t, &calls);
    let limited = budget(router, MemoryStore::new(), &t);
    let huge = Prompt {
        input: 1_000_000,
        max_output: Some(1_000_000),
        n: 1,
    };
    let err = limited
        .execute(huge, &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(err.is_limited());
    assert_eq!(
        err.downcast_ref::<LimitExceeded>().unwrap().refusal(),
        Some(Refusal::TooLarge)
    );
    assert_eq!(err.retry_after(), None);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(WorkflowPrimitive::<Prompt>::name(&limited), "budget");
}
