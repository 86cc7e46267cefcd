//! Bad input: every builder returns a typed error or a working primitive, never a panic;
//! huge inputs follow the cache's size limit; nothing raw reaches a metric label.

use std::time::Duration;

use proptest::prelude::*;
use tta_observability_integration::apm::ApmConfig;
use tta_observability_integration::cache::CachePrimitive;
use tta_observability_integration::router::{
    Price, Route, RouterPrimitive, Strategy as RouteStrategy,
};
use tta_observability_integration::timeout::TimeoutPrimitive;
use tta_observability_integration::{
    Error, FnPrimitive, PrimitiveName, Telemetry, WorkflowContext, WorkflowPrimitive, from_fn,
};
use tta_tests::telemetry::PromTelemetry;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn echo() -> impl WorkflowPrimitive<String, Output = String> + Clone {
    tta_observability_integration::Flow::new(tta_observability_integration::BoxPrimitive::new(
        from_fn(|s: String, _| async move { Ok::<_, Error>(s) }),
    ))
}

/// Arbitrary text, weighted towards the characters that break label formats.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[a-zA-Z0-9_.-]{0,70}",
        "[\\x00-\\x1f\"{}=,\\\\ \\n]{0,8}",
        proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn names_are_valid_exactly_when_safe_as_labels(name in text()) {
        prop_assert_eq!(PrimitiveName::new(&name).is_ok(), valid_name(&name));
    }

    #[test]
    fn context_metadata_never_holds_control_characters(key in text(), value in text()) {
        match WorkflowContext::builder().metadata(&key, &value).build() {
            Ok(cx) => {
                prop_assert!(valid_name(&key));
                prop_assert!(!cx.metadata(&key).unwrap().chars().any(char::is_control));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn the_timeout_builder_never_panics(timeout in any::<f64>(), grace in any::<f64>(), name in text()) {
        let built = TimeoutPrimitive::builder(echo()).timeout_secs(timeout).grace_secs(grace).name(&name).build();
        if let Ok(t) = built {
            prop_assert!(t.timeout() > Duration::ZERO && valid_name(&name));
            let out = runtime().block_on(async { t.execute("x".to_owned(), &WorkflowContext::new()).await });
            prop_assert_eq!(out.unwrap(), "x");
        }
    }

    #[test]
    fn the_cache_builder_never_panics(ttl_ms in any::<u64>(), namespace in text(), name in text(), max in any::<usize>(), version in any::<u32>()) {
        let built = CachePrimitive::builder(echo())
            .ttl(Duration::from_millis(ttl_ms))
            .namespace(&namespace)
            .name(&name)
            .max_value_bytes(max)
            .version(version)
            .build();
        if let Ok(c) = built {
            let out = runtime().block_on(async { c.execute("x".to_owned(), &WorkflowContext::new()).await });
            prop_assert_eq!(out.unwrap(), "x");
        }
    }

    #[test]
    fn the_router_builder_never_panics(
        routes in proptest::collection::vec((text(), any::<f64>(), any::<f64>(), any::<f64>(), proptest::collection::vec(0usize..6, 0..3)), 0..5),
        attempts in 0usize..5,
        strategy in 0u8..5,
    ) {
        let names: Vec<String> = routes.iter().map(|r| r.0.clone()).collect();
        let mut builder = RouterPrimitive::builder().max_attempts(attempts).strategy(match strategy {
            0 => RouteStrategy::Ordered,
            1 => RouteStrategy::Cheapest,
            2 => RouteStrategy::LowestLatency,
            3 => RouteStrategy::Weighted,
            _ => RouteStrategy::CheapestWithinLatency(Duration::from_millis(10)),
        });
        for (name, input, output, weight, fallbacks) in &routes {
            let fallbacks: Vec<&str> = fallbacks.iter().filter_map(|i| names.get(*i).map(String::as_str)).collect();
            builder = builder.route(
                Route::new(name, echo()).price(Price::per_1k_tokens(*input, *output)).weight(*weight).fallback_to(fallbacks),
            );
        }
        if let Ok(router) = builder.build() {
            let out = runtime().block_on(async { router.execute("x".to_owned(), &WorkflowContext::new()).await });
            prop_assert_eq!(out.unwrap(), "x");
        }
    }

    #[test]
    fn apm_config_from_the_environment_never_panics(vars in proptest::collection::vec((0usize..8, text()), 0..6)) {
        const VARS: [&str; 8] = [
            "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED",
            "TTA_ENVIRONMENT", "TTA_METRICS_ADDR", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_SAMPLER_ARG",
        ];
        let lookup = |k: &str| vars.iter().rev().find(|(i, _)| VARS[*i] == k).map(|(_, v)| v.clone());
        if let Err(e) = ApmConfig::from_lookup(lookup).build() {
            prop_assert!(VARS.contains(&e.variable()));
        }
    }
}

#[tokio::test]
async fn ten_mebibyte_inputs_and_values_follow_the_size_limit() {
    let prom = PromTelemetry::new();
    let t = Telemetry::new(prom.meter_provider(), prom.tracer_provider());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = std::sync::Arc::clone(&calls);
    let echo_big = from_fn(move |s: String, _| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, Error>(s) }
    });
    let cache = CachePrimitive::builder(echo_big)
        .name("big")
        .telemetry(&t)
        .build()
        .unwrap();
    let huge = "x".repeat(10 << 20);
    let cx = WorkflowContext::new();
    for _ in 0..2 {
        assert_eq!(
            cache.execute(huge.clone(), &cx).await.unwrap().len(),
            10 << 20
        );
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "a 10 MiB value is over the 1 MiB limit: not stored"
    );
    assert_eq!(
        prom.sum(
            "tta_cache_errors_total",
            &[("cache", "big"), ("error_type", "too_large")]
        ),
        2.0
    );
}

#[tokio::test]
async fn hostile_strings_never_become_labels() {
    let prom = PromTelemetry::new();
    let t = Telemetry::new(prom.meter_provider(), prom.tracer_provider());
    for hostile in [
        "a\"} 1\nevil_metric 2",
        "tenant{x=\"y\"}",
        "new\nline",
        "\u{0}",
        "naïve",
        "",
        &"n".repeat(65),
    ] {
        assert!(PrimitiveName::new(hostile).is_err(), "{hostile:?}");
        assert!(
            FnPrimitive::builder(|(), _| async { Ok::<(), Error>(()) })
                .name(hostile)
                .build()
                .is_err()
        );
        assert!(
            RouterPrimitive::<String, String>::builder()
                .name(hostile)
                .route(Route::new("a", echo()))
                .build()
                .is_err()
        );
        assert!(
            RouterPrimitive::<String, String>::builder()
                .route(Route::new(hostile, echo()))
                .build()
                .is_err()
        );
        assert!(
            CachePrimitive::builder(echo())
                .namespace(hostile)
                .build()
                .is_err()
        );
    }
    // Inputs with every hostile character flow through, and never reach the exposition.
    let cache = CachePrimitive::builder(echo())
        .name("safe")
        .telemetry(&t)
        .build()
        .unwrap();
    let out = cache
        .execute("a\"} 1\nevil_metric 2".to_owned(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(out, "a\"} 1\nevil_metric 2");
    let scrape = prom.scrape();
    assert!(!scrape.contains("evil_metric"), "{scrape}");
    let verdict =
        tokio::task::spawn_blocking(move || tta_tests::tools::promtool_check_metrics(&scrape))
            .await
            .unwrap();
    assert_eq!(verdict, Ok(()));
}
