use std::sync::Arc;
use std::time::Duration;

use tta_core::{AttemptKind, Error, TokenUsage, Usd, WorkflowContext};
use tta_router::{Price, RouterPrimitive, Strategy, semconv};
use tta_tests::telemetry::{PointValue, parent_of, span_attr};

use crate::{Completion, Provider, always_fails, ask, ok_after, pipeline, price, router};

#[tokio::test(start_paused = true)]
async fn cost_and_savings_equal_the_hand_computed_figures() {
    let (tt, t) = pipeline();
    let premium = Provider::new("premium", ok_after(0)).with_usage(TokenUsage::new(2_000, 400));
    let budget = Provider::new("budget", ok_after(0)).with_usage(TokenUsage::new(2_000, 400));
    let r = router(&t)
        .route(premium.route().price(price(0.01, 0.03)))
        .route(budget.route().price(price(0.0005, 0.0015)))
        .strategy(Strategy::Cheapest)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert_eq!(ask(&r, &cx).await.unwrap(), "budget");
    // budget: 2,000 x 0.0005/1k + 400 x 0.0015/1k = 0.001 + 0.0006 = 0.0016
    // premium for the same usage: 0.02 + 0.012 = 0.032; saved 0.0304
    let totals = cx.ledger().totals();
    assert_eq!(totals.spent, Usd::from_dollars(0.0016).unwrap());
    assert_eq!(totals.usage, TokenUsage::new(2_000, 400));
    assert_eq!(cx.ledger().entries()[0].kind, AttemptKind::RouteCall);
    let cost = tt.counter(semconv::COST, &[("router", "llm"), ("route", "budget")]);
    let saved = tt.counter(semconv::COST_SAVINGS, &[("router", "llm")]);
    assert!((cost - 0.0016).abs() < 1e-15, "{cost}");
    assert!((saved - 0.0304).abs() < 1e-15, "{saved}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_that_was_billed_is_recorded_and_calls_without_usage_use_the_flat_price() {
    let (tt, t) = pipeline();
    let billed = Provider::new(
        "billed",
        Arc::new(|_| {
            Err(Error::msg("stream cut after the prompt was billed")
                .with_billed_usage(TokenUsage::new(3_000, 0)))
        }),
    );
    let backup = Provider::new("backup", ok_after(0));
    let r = RouterPrimitive::<String, Completion>::builder()
        .name("llm")
        .telemetry(&t)
        // No usage extractor: the backup's success is priced per call.
        .route(billed.route().price(price(0.001, 0.002)))
        .route(
            backup
                .route()
                .price(Price::per_1k_tokens(0.5, 0.5).or_per_call(0.25)),
        )
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert_eq!(r.execute("q".into(), &cx).await.unwrap().route, "backup");
    let entries = cx.ledger().entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0].kind, &*entries[0].source),
        (AttemptKind::FailedBilled, "billed")
    );
    assert_eq!(entries[0].spent, Usd::from_dollars(0.003).unwrap());
    assert_eq!(
        (entries[1].kind, entries[1].spent),
        (AttemptKind::Fallback, Usd::from_dollars(0.25).unwrap())
    );
    assert_eq!(
        cx.ledger().totals().spent,
        Usd::from_dollars(0.253).unwrap()
    );
    assert!((tt.counter(semconv::COST, &[("route", "billed")]) - 0.003).abs() < 1e-15);

    // The span and the token histograms agree: 3,000 input tokens billed; the output is
    // unknown (none was produced), so neither records an output count.
    let spans = tt.spans();
    let attempt = spans
        .iter()
        .find(|s| span_attr(s, semconv::ATTR_ROUTE).as_deref() == Some("billed"))
        .expect("the billed attempt's span");
    assert_eq!(
        span_attr(attempt, "gen_ai.usage.input_tokens").as_deref(),
        Some("3000")
    );
    assert_eq!(span_attr(attempt, "gen_ai.usage.output_tokens"), None);
    assert_eq!(
        span_attr(attempt, semconv::ATTR_COST).as_deref(),
        Some("0.003")
    );
    let tokens = |kind| match tt.histogram(
        "gen_ai.client.token.usage",
        &[
            ("gen_ai.request.model", "billed"),
            ("gen_ai.token.type", kind),
        ],
    ) {
        Some(PointValue::Histogram { count, sum, .. }) => (count, sum),
        _ => (0, 0.0),
    };
    assert_eq!(tokens("input"), (1, 3_000.0));
    assert_eq!(
        tokens("output"),
        (0, 0.0),
        "no output count for an unknown output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_reconcile_decisions_attempts_ledgers_and_cost_counters() {
    let (tt, t) = pipeline();
    // Every third call of the primary fails, a fifth of those after billing its prompt.
    let primary = Provider::new(
        "primary",
        Arc::new(|n| match n % 15 {
            0 => Err(Error::msg("503").with_billed_usage(TokenUsage::new(2_000, 0))),
            3 | 6 | 9 | 12 => Err(Error::msg("429")),
            _ => Ok(Duration::from_millis(1)),
        }),
    )
    .with_usage(TokenUsage::new(1_000, 500));
    let secondary =
        Provider::new("secondary", ok_after(1)).with_usage(TokenUsage::new(1_000, 1_000));
    // Costs of 1/2, 3/8 and 1/2 dollar: exact in binary, so the float counters can be
    // compared with the integer ledger exactly.
    let r = Arc::new(
        router(&t)
            .route(primary.route().price(price(0.25, 0.5)))
            .route(secondary.route().price(price(0.125, 0.25)))
            .failure_threshold(u32::MAX)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let r = Arc::clone(&r);
            tokio::spawn(async move {
                let cx = WorkflowContext::new();
                let out = ask(&r, &cx).await;
                (out, cx.ledger().totals(), cx.ledger().entries())
            })
        })
        .collect();
    let mut spent = Usd::ZERO;
    let mut ok = 0;
    for task in tasks {
        let (out, totals, entries) = task.await.unwrap();
        assert!(out.is_ok(), "fallback rescues every failure");
        ok += 1;
        let sum = entries.iter().fold(Usd::ZERO, |acc, e| acc + e.spent);
        assert_eq!(
            sum, totals.spent,
            "per-attempt entries sum to the request's total"
        );
        spent += totals.spent;
    }
    assert_eq!(ok, 1_000);
    let attempts = primary.calls() + secondary.calls();
    let decisions: f64 = ["primary", "secondary"]
        .iter()
        .map(|route| tt.counter(semconv::DECISIONS, &[("router", "llm"), ("route", route)]))
        .sum();
    assert_eq!(decisions, attempts as f64, "one decision per attempt");
    assert_eq!(primary.calls(), 1_000);
    assert_eq!(
        secondary.calls(),
        1_000 / 3 + 1,
        "every failure of the primary fell back once"
    );
    let counters: f64 = ["primary", "secondary"]
        .iter()
        .map(|route| tt.counter(semconv::COST, &[("route", route)]))
        .sum();
    assert_eq!(
        counters,
        spent.dollars(),
        "ledger totals equal the per-route cost counters exactly"
    );
}

#[tokio::test(start_paused = true)]
async fn spans_follow_the_genai_conventions_under_the_router_span() {
    let (tt, t) = pipeline();
    let a = Provider::new("a", always_fails());
    let b = Provider::new("b", ok_after(20)).with_usage(TokenUsage::new(300, 40));
    let r = router(&t)
        .route(a.traced_route(&t).provider("openai").model("gpt-4o"))
        .route(
            b.traced_route(&t)
                .provider("anthropic")
                .model("claude-sonnet")
                .price(price(0.003, 0.015)),
        )
        .build()
        .unwrap();
    ask(&r, &WorkflowContext::new()).await.unwrap();
    let spans = tt.spans();
    let router_span = spans.iter().find(|s| s.name == "router").unwrap();
    assert_eq!(
        span_attr(router_span, semconv::ATTR_ROUTE).as_deref(),
        Some("b")
    );
    assert_eq!(
        span_attr(router_span, semconv::ATTR_REASON).as_deref(),
        Some("fallback")
    );
    assert_eq!(
        span_attr(router_span, semconv::ATTR_ATTEMPTS).as_deref(),
        Some("2")
    );
    let first = spans.iter().find(|s| s.name == "chat gpt-4o").unwrap();
    let second = spans
        .iter()
        .find(|s| s.name == "chat claude-sonnet")
        .unwrap();
    for attempt in [first, second] {
        assert_eq!(parent_of(&spans, attempt).unwrap().name, "router");
        assert_eq!(attempt.span_kind, opentelemetry::trace::SpanKind::Client);
        assert_eq!(
            span_attr(attempt, "gen_ai.operation.name").as_deref(),
            Some("chat")
        );
    }
    assert_eq!(
        span_attr(first, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(span_attr(first, "error.type").as_deref(), Some("other"));
    assert_eq!(
        span_attr(second, "gen_ai.request.model").as_deref(),
        Some("claude-sonnet")
    );
    assert_eq!(
        span_attr(second, "gen_ai.usage.input_tokens").as_deref(),
        Some("300")
    );
    assert_eq!(
        span_attr(second, "gen_ai.usage.output_tokens").as_deref(),
        Some("40")
    );
    assert_eq!(
        span_attr(second, semconv::ATTR_REASON).as_deref(),
        Some("fallback")
    );
    // The route's own primitive span nests under its attempt span.
    let inner = spans
        .iter()
        .filter(|s| s.name == "fn")
        .find(|s| parent_of(&spans, s).is_some_and(|p| p.name == "chat claude-sonnet"));
    assert!(inner.is_some());

    let input = tt.histogram(
        "gen_ai.client.token.usage",
        &[
            ("gen_ai.provider.name", "anthropic"),
            ("gen_ai.token.type", "input"),
        ],
    );
    let Some(PointValue::Histogram { sum, bounds, .. }) = input else {
        panic!("no token usage")
    };
    assert_eq!(sum, 300.0);
    assert_eq!(bounds.first(), Some(&1.0));
    let Some(PointValue::Histogram { count, .. }) = tt.histogram(
        "gen_ai.client.operation.duration",
        &[("gen_ai.request.model", "claude-sonnet")],
    ) else {
        panic!("no operation duration")
    };
    assert_eq!(count, 1);
    // Every label value comes from configuration: no prompt, no error text.
    for p in tt.points() {
        for v in p.attrs.values() {
            assert!(!v.contains("503") && !v.contains("prompt"), "{p:?}");
        }
    }
}
