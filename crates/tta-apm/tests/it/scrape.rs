use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::global;
use tta_apm::{Component, ComponentState};
use tta_core::{Error, FnPrimitive, WorkflowContext};
use tta_timeout::TimeoutPrimitive;

use crate::{scrape, serial, test_config};

async fn record_some_telemetry() {
    // Built after `init`, so they take the installed providers.
    let step = FnPrimitive::builder(|fail: bool, _| async move {
        if fail {
            Err(Error::msg("boom"))
        } else {
            Ok(())
        }
    })
    .name("step")
    .build()
    .unwrap();
    let guarded = TimeoutPrimitive::builder(step)
        .name("guarded")
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for i in 0..5 {
        let _ = guarded.execute(i == 0, &cx).await;
    }
    let meter = global::meter("gen_ai-test");
    let duration = meter
        .f64_histogram("gen_ai.client.operation.duration")
        .with_description("GenAI operation duration.")
        .with_unit("s")
        .build();
    let tokens = meter
        .u64_histogram("gen_ai.client.token.usage")
        .with_description("Tokens used.")
        .with_unit("{token}")
        .build();
    let attrs = [
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.provider.name", "openai"),
    ];
    duration.record(0.7, &attrs);
    tokens.record(
        300,
        &[
            attrs[0].clone(),
            attrs[1].clone(),
            KeyValue::new("gen_ai.token.type", "input"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_as_prometheus_text_with_seconds_buckets_and_target_info() {
    let _serial = serial();
    let guard = tta_apm::init(
        test_config("scrape-svc")
            .console_spans(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        guard.status().state(Component::Prometheus),
        &ComponentState::Live
    );
    let addr = guard.status().metrics_addr().unwrap();
    record_some_telemetry().await;

    let response = scrape(addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let body = &response.body;
    for expected in [
        "# TYPE tta_primitive_executions_total counter",
        r#"tta_primitive_executions_total{kind="fn",outcome="error",primitive="step",otel_scope_name="tta",otel_scope_version="0.1.0"} 1"#,
        r#"tta_primitive_executions_total{kind="fn",outcome="ok",primitive="step",otel_scope_name="tta",otel_scope_version="0.1.0"} 4"#,
        "# TYPE tta_primitive_duration_seconds histogram",
        r#"le="0.0001"}"#,
        r#"le="60"}"#,
        r#"tta_timeout_outcomes_total{outcome="ok",primitive="guarded",otel_scope_name="tta",otel_scope_version="0.1.0"} 4"#,
        "# TYPE tta_timeout_rate gauge",
        "# TYPE gen_ai_client_operation_duration_seconds histogram",
        r#"gen_ai_client_operation_duration_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",otel_scope_name="gen_ai-test",le="0.01"} 0"#,
        r#"le="0.64"} 0"#,
        r#"le="1.28"} 1"#,
        "# TYPE gen_ai_client_token_usage histogram",
        r#"gen_ai_token_type="input",otel_scope_name="gen_ai-test",le="256"} 0"#,
        r#"le="1024"} 1"#,
        "# TYPE target_info gauge",
        r#"service_name="scrape-svc""#,
        r#"service_version="1.2.3""#,
        r#"deployment_environment_name="test""#,
    ] {
        assert!(
            body.contains(expected),
            "missing {expected:?} in scrape:\n{body}"
        );
    }
    assert!(
        !body.contains(r#"le="5000""#),
        "no millisecond-scale default buckets on second histograms"
    );
    guard.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_scrape() {
    let _serial = serial();
    let guard = tta_apm::init(
        test_config("promtool-svc")
            .console_spans(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    let addr = guard.status().metrics_addr().unwrap();
    record_some_telemetry().await;
    let body = scrape(addr, "/metrics").await.body;
    let verdict =
        tokio::task::spawn_blocking(move || tta_tests::tools::promtool_check_metrics(&body))
            .await
            .unwrap();
    assert_eq!(verdict, Ok(()));
    guard.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_are_not_found() {
    let _serial = serial();
    let guard = tta_apm::init(test_config("paths").console_spans(false).build().unwrap()).unwrap();
    let addr = guard.status().metrics_addr().unwrap();
    for path in ["/", "/metric", "/metrics/extra", "/health"] {
        assert_eq!(scrape(addr, path).await.status, 404, "{path}");
    }
    guard.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_server_and_a_new_init_can_start_again() {
    let _serial = serial();
    let guard =
        tta_apm::init(test_config("restart").console_spans(false).build().unwrap()).unwrap();
    let addr = guard.status().metrics_addr().unwrap();
    assert_eq!(scrape(addr, "/metrics").await.status, 200);
    guard.shutdown().await.unwrap();
    let refused = tokio::task::spawn_blocking(move || tta_tests::http::get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(refused.is_err(), "the server is gone after shutdown");
    let again =
        tta_apm::init(test_config("restart").console_spans(false).build().unwrap()).unwrap();
    assert!(again.status().metrics_addr().is_some());
    drop(again);
    // Drop is a best-effort shutdown: init works once more.
    tta_apm::init(test_config("restart").console_spans(false).build().unwrap())
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}
