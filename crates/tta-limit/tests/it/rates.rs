//! Rates and concurrency, tenants and their labels, limits inside routes, spans, and
//! every configuration a user can write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::Notify;
use tta_core::{Error, Layer, TokenUsage, WorkflowContext};
use tta_limit::{BuildError, LimitExceeded, LimitLayer, MemoryStore, Refusal, Resource};
use tta_router::{Route, RouterPrimitive};
use tta_tests::telemetry::parent_of;

use crate::{Answer, Prompt, pipeline, route, tenant};

fn answer_with(usage: TokenUsage) -> impl tta_core::WorkflowPrimitive<Prompt, Output = Answer> {
    tta_core::from_fn(move |_: Prompt, _| async move { Ok::<_, Error>(Answer { usage }) })
}

#[tokio::test(start_paused = true)]
async fn tokens_per_window_reserve_the_maximum_and_settle_to_the_usage() {
    let (_tt, t) = pipeline();
    let limited = LimitLayer::builder()
        .tokens_per(1_000, Duration::from_secs(60))
        .telemetry(&t)
        .build()
        .unwrap()
        .layer(tta_core::from_fn(
            |p: Prompt, cx: WorkflowContext| async move {
                // What a router records for a call: its usage, in the ledger.
                let usage = TokenUsage::new(p.input, 50);
                cx.ledger().record(tta_core::CostEntry::spent(
                    tta_core::AttemptKind::RouteCall,
                    "m",
                    usage,
                    tta_core::Usd::ZERO,
                ));
                Ok::<_, Error>(Answer { usage })
            },
        ));
    let p = |n| Prompt {
        input: 50,
        max_output: Some(250),
        n,
    };
    let cx = WorkflowContext::new();
    // Each reserves 300 and uses 100: after eight (800 used), a ninth cannot reserve 300.
    for n in 0..8 {
        limited.execute(p(n), &cx).await.unwrap();
    }
    let refused = limited.execute(p(8), &cx).await.unwrap_err();
    let why = refused.downcast_ref::<LimitExceeded>().unwrap();
    assert_eq!(why.resource(), Resource::Tokens);
    assert_eq!(
        why.refusal(),
        Some(Refusal::Spent {
            window_ends_in: Duration::from_secs(60)
        })
    );
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(60)));
    // What is left still serves a call that declares it fits: 50 in, at most 150 out.
    let small = Prompt {
        input: 50,
        max_output: Some(150),
        n: 9,
    };
    limited.execute(small, &cx).await.unwrap();
    // 900 used: refused until the window ends, then a full window again.
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(limited.execute(small, &cx).await.unwrap_err().is_limited());
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 10..18 {
        limited.execute(p(n), &cx).await.unwrap();
    }
    assert_eq!(limited.stats().allowed, 17);
    assert_eq!(limited.stats().refused, 2);
}

#[tokio::test(start_paused = true)]
async fn requests_per_window_count_every_call_even_failed_ones() {
    let (_tt, t) = pipeline();
    let fails = tta_core::from_fn(|_: Prompt, _| async { Err::<Answer, _>(Error::msg("boom")) });
    let limited = LimitLayer::builder()
        .requests_per(3, Duration::from_secs(1))
        .telemetry(&t)
        .build()
        .unwrap()
        .layer(fails);
    let cx = WorkflowContext::new();
    for n in 0..3 {
        assert!(
            !limited
                .execute(crate::budget::prompt(n), &cx)
                .await
                .unwrap_err()
                .is_limited()
        );
    }
    assert!(
        limited
            .execute(crate::budget::prompt(3), &cx)
            .await
            .unwrap_err()
            .is_limited()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !limited
            .execute(crate::budget::prompt(4), &cx)
            .await
            .unwrap_err()
            .is_limited()
    );
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_holds_under_a_thousand_tasks() {
    let (_tt, t) = pipeline();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let inner = {
        let (running, peak, release) = (
            Arc::clone(&running),
            Arc::clone(&peak),
            Arc::clone(&release),
        );
        tta_core::from_fn(move |_: Prompt, _| {
            let (running, peak, release) = (
                Arc::clone(&running),
                Arc::clone(&peak),
                Arc::clone(&release),
            );
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                release.notified().await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Error>(Answer {
                    usage: TokenUsage::new(1, 1),
                })
            }
        })
    };
    let limited = Arc::new(
        LimitLayer::builder()
            .concurrency(10)
            .telemetry(&t)
            .build()
            .unwrap()
            .layer(inner),
    );
    let tasks: Vec<_> = (0..1_000)
        .map(|n| {
            let limited = Arc::clone(&limited);
            tokio::spawn(async move {
                limited
                    .execute(crate::budget::prompt(n), &WorkflowContext::new())
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(running.load(Ordering::SeqCst), 10);
    release.notify_waiters();
    let mut ok = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.is_limited(), "{e}");
                assert_eq!(
                    e.downcast_ref::<LimitExceeded>().unwrap().resource(),
                    Resource::Concurrency
                );
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (10, 990));
    assert_eq!(peak.load(Ordering::SeqCst), 10);
    // The slots are free again.
    release.notify_one();
    limited
        .execute(crate::budget::prompt(1), &WorkflowContext::new())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn tenants_have_their_own_budgets_and_only_listed_ones_are_labels() {
    let (tt, t) = pipeline();
    let limited = LimitLayer::builder()
        .name("per_tenant")
        .tenant_from("tenant")
        .tenant_labels(["acme"])
        .requests_per(2, Duration::from_secs(60))
        .telemetry(&t)
        .build()
        .unwrap()
        .layer(answer_with(TokenUsage::new(1, 1)));
    for who in ["acme", "globex", "initech"] {
        let cx = tenant(who);
        for n in 0..2 {
            limited
                .execute(crate::budget::prompt(n), &cx)
                .await
                .unwrap();
        }
        assert!(
            limited
                .execute(crate::budget::prompt(2), &cx)
                .await
                .unwrap_err()
                .is_limited()
        );
    }
    // No tenant metadata: one shared key of its own.
    let anonymous = WorkflowContext::new();
    limited
        .execute(crate::budget::prompt(0), &anonymous)
        .await
        .unwrap();
    tt.meter_provider().force_flush().unwrap();
    let count = |tenant: &str, result: &str| {
        tt.counter(
            "tta.limit.decisions",
            &[
                ("limit", "per_tenant"),
                ("resource", "requests"),
                ("result", result),
                ("tenant", tenant),
            ],
        ) as u64
    };
    assert_eq!((count("acme", "allowed"), count("acme", "refused")), (2, 1));
    assert_eq!(
        (count("other", "allowed"), count("other", "refused")),
        (5, 2)
    );
    // Every label set is one of acme / other: the tenants themselves never appear.
    let tenants: std::collections::BTreeSet<String> = tt
        .points_matching("tta.limit.decisions", &[])
        .iter()
        .filter_map(|p| p.attrs.get("tenant").cloned())
        .collect();
    assert_eq!(tenants, ["acme".to_owned(), "other".to_owned()].into());
    // Series start at zero: failed_open exists before anything failed open.
    assert_eq!(count("acme", "failed_open"), 0);
    assert!(
        !tt.points_matching(
            "tta.limit.decisions",
            &[("tenant", "acme"), ("result", "failed_open")]
        )
        .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn a_limit_inside_a_route_falls_back_without_cooling_the_route_for_others() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicU64::new(0));
    // The primary route has a per-tenant limit of one call; the backup none.
    let per_tenant = LimitLayer::builder()
        .name("primary_quota")
        .tenant_from("tenant")
        .requests_per(1, Duration::from_secs(3600))
        .telemetry(&t)
        .build()
        .unwrap();
    let primary = per_tenant.layer(answer_with(TokenUsage::new(1, 1)));
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(Route::new("primary", primary))
        .route(route(
            "backup",
            crate::backup_price(),
            Duration::ZERO,
            None,
            &calls,
        ))
        .failure_threshold(1)
        .usage_reported()
        .telemetry(&t)
        .build()
        .unwrap();
    let acme = tenant("acme");
    router
        .execute(crate::budget::prompt(1), &acme)
        .await
        .unwrap();
    // Acme's quota is spent: its calls go to the backup, many times.
    for n in 2..10 {
        router
            .execute(crate::budget::prompt(n), &acme)
            .await
            .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    // Globex still gets the primary: the route was never held against it.
    router
        .execute(crate::budget::prompt(10), &tenant("globex"))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    let primary_stats = router
        .stats()
        .into_iter()
        .find(|s| &*s.name == "primary")
        .unwrap();
    assert_eq!(primary_stats.state, tta_core::BreakerState::Closed);
    assert_eq!(primary_stats.consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn the_limit_span_parents_the_router_and_says_what_it_reserved() {
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicU64::new(0));
    let router = crate::router(Duration::ZERO, &t, &calls);
    let limited = crate::budget::budget(router, MemoryStore::new(), &t);
    limited
        .execute(crate::budget::prompt(1), &tenant("acme"))
        .await
        .unwrap();
    tt.tracer_provider().force_flush().unwrap();
    let spans = tt.spans();
    let limit = &tt.spans_named("limit")[0];
    let router_span = &tt.spans_named("router")[0];
    assert_eq!(
        parent_of(&spans, router_span).map(|s| s.span_context.span_id()),
        Some(limit.span_context.span_id())
    );
    let attr = |k| tta_tests::telemetry::span_attr(limit, k);
    assert_eq!(attr("tta.limit.result").as_deref(), Some("allowed"));
    assert_eq!(attr("tta.limit.key").as_deref(), Some("*"));
    let reserved: f64 = attr("tta.limit.reserved_usd").unwrap().parse().unwrap();
    let settled: f64 = attr("tta.limit.settled_usd").unwrap().parse().unwrap();
    assert!((reserved - crate::budget::max_reservation().dollars()).abs() < 1e-12);
    assert!(settled > 0.0 && settled <= reserved);
}

#[test]
fn every_setting_out_of_range_is_a_typed_build_error() {
    let w = Duration::from_secs(1);
    let err = |b: tta_limit::LimitBuilder| b.build().unwrap_err();
    assert_eq!(err(LimitLayer::builder()), BuildError::NoLimit);
    assert!(matches!(
        err(LimitLayer::builder().requests_per(0, w)),
        BuildError::BadCap { .. }
    ));
    assert!(matches!(
        err(LimitLayer::builder().requests_per(1, Duration::ZERO)),
        BuildError::BadWindow { .. }
    ));
    assert!(matches!(
        err(LimitLayer::builder().requests_per(1, w).requests_per(2, w)),
        BuildError::Duplicate { .. }
    ));
    assert!(matches!(
        err(LimitLayer::builder().concurrency(0)),
        BuildError::BadCap { .. }
    ));
    assert!(matches!(
        err(LimitLayer::builder().usd_per(f64::NAN, w)),
        BuildError::BadCap { .. }
    ));
    assert!(matches!(
        err(LimitLayer::builder().concurrency(1).tenant_labels(["a"])),
        BuildError::BadTenantLabels(_)
    ));
    assert!(matches!(
        err(LimitLayer::builder().concurrency(1).tenant_from("")),
        BuildError::EmptyTenantKey
    ));
    assert!(matches!(
        err(LimitLayer::builder().concurrency(1).hold(Duration::ZERO)),
        BuildError::BadHold(_)
    ));
    assert!(matches!(
        err(LimitLayer::builder().concurrency(1).name("has space")),
        BuildError::Name(_)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any configuration builds or gives a typed error; one that builds serves a call.
    #[test]
    fn any_config_builds_or_is_a_typed_error(
        requests in proptest::option::of((0u64..5, 0u64..100_000)),
        tokens in proptest::option::of((0u64..5_000, 0u64..100_000)),
        usd in proptest::option::of((prop_oneof![Just(f64::NAN), Just(-1.0), Just(f64::INFINITY), 0.0f64..10.0], 0u64..100_000)),
        concurrency in proptest::option::of(0usize..4),
        hold_ms in 0u64..10_000,
        tenant_key in proptest::option::of("[a-z]{0,3}"),
        labels in proptest::option::of(proptest::collection::vec("[a-z]{0,3}", 0..4)),
        bound in any::<bool>(),
        name in "[a-z_ ]{0,6}",
    ) {
        let mut b = LimitLayer::builder().name(&name).hold(Duration::from_millis(hold_ms));
        if let Some((n, ms)) = requests { b = b.requests_per(n, Duration::from_millis(ms)); }
        if let Some((n, ms)) = tokens { b = b.tokens_per(n, Duration::from_millis(ms)); }
        if let Some((usd, ms)) = usd { b = b.usd_per(usd, Duration::from_millis(ms)); }
        if let Some(n) = concurrency { b = b.concurrency(n); }
        if let Some(k) = &tenant_key { b = b.tenant_from(k); }
        if let Some(l) = &labels { b = b.tenant_labels(l); }
        if bound {
            b = b.cost_bound(tta_core::CostBound::new(crate::primary_price().validate().unwrap(), 2));
        }
        match b.build() {
            Ok(layer) => {
                let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
                let limited = layer.layer(answer_with(TokenUsage::new(1, 1)));
                let r = rt.block_on(limited.execute(crate::budget::prompt(1), &WorkflowContext::new()));
                if let Err(e) = r {
                    prop_assert!(e.is_limited(), "{e}");
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
