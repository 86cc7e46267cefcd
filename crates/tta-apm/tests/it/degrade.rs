use std::net::TcpListener;
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span, Tracer};
use tta_apm::{Component, ComponentState, InitError, OtlpProtocol};
use tta_core::{Error, FnPrimitive, Telemetry, WorkflowContext, WorkflowPrimitive, from_fn};

use crate::{serial, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_metrics_port_degrades_and_primitives_keep_working() {
    let _serial = serial();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let guard = tta_apm::init(
        test_config("busy")
            .console_spans(false)
            .metrics_addr(addr.to_string())
            .build()
            .unwrap(),
    )
    .unwrap();
    let status = guard.status();
    assert!(status.is_degraded());
    let ComponentState::Degraded(reason) = status.state(Component::Prometheus) else {
        panic!("expected degraded, got {status}");
    };
    assert!(
        reason.contains(&addr.to_string()) && reason.contains("in use"),
        "{reason}"
    );
    assert_eq!(status.metrics_addr(), None);
    assert!(status.to_string().contains("prometheus: degraded"));

    let step = from_fn(|x: u32, _| async move { Ok::<_, Error>(x * 2) });
    assert_eq!(step.execute(21, &WorkflowContext::new()).await.unwrap(), 42);
    guard.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_init_is_refused_and_starts_nothing() {
    let _serial = serial();
    let first = tta_apm::init(test_config("first").console_spans(false).build().unwrap()).unwrap();
    let taken_before = first.status().metrics_addr().unwrap();
    let second = tta_apm::init(
        test_config("second")
            .console_spans(false)
            .metrics_addr("127.0.0.1:0")
            .build()
            .unwrap(),
    );
    assert!(
        matches!(second, Err(InitError::AlreadyInitialized)),
        "{second:?}"
    );
    assert_eq!(first.status().metrics_addr(), Some(taken_before));
    first.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_sdk_installs_nothing_and_primitives_record_nothing() {
    let _serial = serial();
    let guard = tta_apm::init(test_config("off").sdk_disabled(true).build().unwrap()).unwrap();
    assert!(guard.status().is_disabled());
    assert!(!guard.status().is_degraded());
    assert!(guard.meter_provider().is_none());
    assert_eq!(
        guard.status().to_string(),
        "telemetry disabled (OTEL_SDK_DISABLED): nothing installed"
    );
    // The global providers are the no-op ones: spans do not record.
    let span = Telemetry::global().tracer().start("probe");
    assert!(!span.is_recording());
    let step = from_fn(|(), _| async { Ok::<_, Error>(()) });
    step.execute((), &WorkflowContext::new()).await.unwrap();
    guard.shutdown().await.unwrap();
}

#[test]
fn init_outside_a_runtime_is_a_clear_error() {
    let _serial = serial();
    let err = tta_apm::init(test_config("no-rt").build().unwrap()).unwrap_err();
    assert!(matches!(err, InitError::NoRuntime));
    assert!(err.to_string().contains("tokio runtime"));
}

/// A collector that accepts connections and never answers: the worst case for a client.
fn silent_collector() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

async fn shutdown_is_bounded_with_an_unreachable_collector(protocol: OtlpProtocol) {
    let (_collector, url) = silent_collector();
    let config = test_config("otlp-down")
        .console_spans(false)
        .otlp_endpoint(url)
        .otlp_protocol(protocol);
    let guard = tta_apm::init(config.build().unwrap()).unwrap();
    assert_eq!(
        guard.status().state(Component::OtlpTraces),
        &ComponentState::Live
    );
    assert_eq!(
        guard.status().state(Component::OtlpMetrics),
        &ComponentState::Live
    );

    // The application is never blocked by the collector.
    let step = FnPrimitive::builder(|x: u64, _| async move { Ok::<_, Error>(x) })
        .name("work")
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    let started = Instant::now();
    for i in 0..2_000 {
        step.execute(i, &cx).await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let result = guard.shutdown().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?} ({result:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_within_five_seconds_real_time_with_a_silent_http_collector() {
    let _serial = serial();
    shutdown_is_bounded_with_an_unreachable_collector(OtlpProtocol::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_within_five_seconds_real_time_with_a_silent_grpc_collector() {
    let _serial = serial();
    shutdown_is_bounded_with_an_unreachable_collector(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracing_bridge_goes_live_once_and_degrades_when_a_subscriber_exists() {
    let _serial = serial();
    let guard = tta_apm::init(
        test_config("bridge")
            .console_spans(false)
            .tracing_bridge(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        guard.status().state(Component::TracingBridge),
        &ComponentState::Live
    );
    guard.shutdown().await.unwrap();
    // The global `tracing` subscriber cannot be replaced: a second bridge degrades.
    let guard = tta_apm::init(
        test_config("bridge")
            .console_spans(false)
            .tracing_bridge(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(guard.status().state(Component::TracingBridge).is_degraded());
    assert_eq!(
        guard.status().state(Component::Prometheus),
        &ComponentState::Live
    );
    guard.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_compression_from_the_environment_is_honoured_on_the_wire() {
    let _serial = serial();
    gzip_on_the_wire(false).await;
    gzip_on_the_wire(true).await;
}

/// Exports with `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` to a loopback receiver (gRPC, or
/// http/protobuf) and checks each export said gzip.
async fn gzip_on_the_wire(grpc: bool) {
    let receiver = if grpc {
        tta_tests::otlp::OtlpReceiver::start_grpc().await
    } else {
        tta_tests::otlp::OtlpReceiver::start().await
    };
    let endpoint = receiver.endpoint();
    let config = tta_apm::ApmConfig::from_lookup(move |var| match var {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".to_owned()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => {
            Some(if grpc { "grpc" } else { "http/protobuf" }.to_owned())
        }
        "TTA_METRICS_ADDR" => Some("127.0.0.1:0".to_owned()),
        _ => None,
    })
    .service_name("gzip")
    .console_spans(false)
    .build()
    .unwrap();
    assert_eq!(config.otlp_compression(), tta_apm::OtlpCompression::Gzip);
    let guard = tta_apm::init(config).unwrap();
    let step = FnPrimitive::builder(|x: u64, _| async move { Ok::<_, Error>(x) })
        .name("work")
        .build()
        .unwrap();
    step.execute(1, &WorkflowContext::new()).await.unwrap();
    guard.shutdown().await.unwrap();
    let exports = receiver.exports();
    for path in ["/v1/traces", "/v1/metrics"] {
        let export = exports
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no export to {path}: {exports:?}"));
        if grpc {
            // tonic has decompressed the message; the metadata names its encoding.
            assert_eq!(export.header("grpc-encoding"), Some("gzip"), "{path}");
        } else {
            assert_eq!(export.header("content-encoding"), Some("gzip"), "{path}");
            assert_eq!(
                export.body.get(..2),
                Some(&[0x1f, 0x8b][..]),
                "{path}: a gzip stream"
            );
        }
    }
}

/// Runs `n` executions of a primitive (one span each).
async fn spans(n: u64) {
    let step = FnPrimitive::builder(|x: u64, _| async move { Ok::<_, Error>(x) })
        .name("work")
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for i in 0..n {
        step.execute(i, &cx).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_the_queue_cannot_hold_are_counted_as_dropped_in_the_status_and_a_metric() {
    let _serial = serial();
    let (_collector, url) = silent_collector();
    let config = tta_apm::ApmConfig::from_lookup(|var| {
        (var == "OTEL_BSP_MAX_QUEUE_SIZE").then(|| "8".to_owned())
    })
    .service_name("drops")
    .metrics_addr("127.0.0.1:0")
    .console_spans(false)
    .otlp_endpoint(url)
    .build()
    .unwrap();
    assert_eq!(config.span_queue(), 8);
    let guard = tta_apm::init(config).unwrap();
    spans(200).await;
    let stats = guard.status().spans().expect("OTLP traces are on");
    assert!(stats.dropped_queue_full >= 200 - 8, "{stats:?}");
    assert!(guard.status().is_degraded());
    let shown = guard.status().to_string();
    assert!(
        shown.contains("dropping spans") && shown.contains("OTEL_BSP_MAX_QUEUE_SIZE"),
        "{shown}"
    );
    let addr = guard.status().metrics_addr().unwrap();
    let scrape = crate::scrape(addr, "/metrics").await.body;
    let dropped = tta_tests::telemetry::sample_sum(
        &scrape,
        "tta_apm_spans_dropped_total",
        &[("reason", "queue_full")],
    );
    assert!(dropped >= 192.0, "{dropped}\n{scrape}");
    let status = guard.status().clone();
    let _ = guard.shutdown().await;
    // Every span is accounted for: exported, dropped (the queue, or a failed export to
    // the silent collector), or still waiting when shutdown gave up.
    let stats = status.spans().unwrap();
    assert_eq!(
        stats.exported + stats.dropped() + stats.waiting,
        200,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_live_collector_every_span_is_exported_and_none_dropped() {
    let _serial = serial();
    let receiver = tta_tests::otlp::OtlpReceiver::start().await;
    let guard = tta_apm::init(
        test_config("all-spans")
            .console_spans(false)
            .otlp_endpoint(receiver.endpoint())
            .build()
            .unwrap(),
    )
    .unwrap();
    spans(5_000).await;
    let status = guard.status().clone();
    guard.shutdown().await.unwrap();
    let stats = status.spans().unwrap();
    assert_eq!(
        (stats.exported, stats.dropped(), stats.waiting),
        (5_000, 0, 0),
        "{stats:?}"
    );
    assert!(!status.is_degraded(), "{status}");
    assert!(
        receiver.exports().iter().any(|e| e.path == "/v1/traces"),
        "the spans reached the collector"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_exported_histogram_point_has_min_above_max() {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;

    let _serial = serial();
    let receiver = tta_tests::otlp::OtlpReceiver::start().await;
    let guard = tta_apm::init(
        test_config("histograms")
            .console_spans(false)
            .otlp_endpoint(receiver.endpoint())
            .build()
            .unwrap(),
    )
    .unwrap();
    // A timeout binds its histograms when built; only some of its outcomes happen.
    let step = FnPrimitive::builder(|x: u64, _| async move { Ok::<_, Error>(x) })
        .name("work")
        .build()
        .unwrap();
    let guarded = tta_timeout::TimeoutPrimitive::builder(step)
        .name("guarded")
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    guarded.execute(7, &WorkflowContext::new()).await.unwrap();
    guard.shutdown().await.unwrap();
    let mut points = 0;
    for metric in receiver.metrics() {
        let Some(Data::Histogram(h)) = &metric.data else {
            continue;
        };
        for p in &h.data_points {
            points += 1;
            if let (Some(min), Some(max)) = (p.min, p.max) {
                assert!(min <= max, "{}: min {min} > max {max} ({p:?})", metric.name);
            }
            if p.count == 0 {
                assert_eq!(
                    (p.min, p.max),
                    (None, None),
                    "{}: an empty point",
                    metric.name
                );
            }
        }
    }
    assert!(points > 0, "histograms were exported");
}
