use std::time::Duration;

use tower::{Layer, ServiceExt};
use tta_core::tower::TowerLayer;
use tta_core::{Error, WorkflowContext, WorkflowPrimitive, from_fn};
use tta_tests::telemetry::{PointValue, span_attr};
use tta_timeout::{BuildError, TimeoutLayer, TimeoutPrimitive, semconv};

use crate::{Drops, guarded, ms, pipeline};

#[tokio::test(start_paused = true)]
async fn outcomes_durations_and_the_rate_gauge_are_recorded() {
    let (tt, t) = pipeline();
    let drops = Drops::default();
    let p = guarded(&drops, &t, "llm_timeout", 1_000, 500);
    let cx = WorkflowContext::new();
    // 2 on time, 1 late, 1 timeout.
    for input in [100, 200, 1_200, 5_000] {
        let _ = p.execute(input, &cx).await;
    }
    let outcome = |o| {
        tt.counter(
            semconv::OUTCOMES,
            &[("primitive", "llm_timeout"), ("outcome", o)],
        )
    };
    assert_eq!(
        (
            outcome("ok"),
            outcome("late_ok"),
            outcome("timeout"),
            outcome("error")
        ),
        (2.0, 1.0, 1.0, 0.0)
    );
    let rate = tt.points_matching(semconv::RATE, &[("primitive", "llm_timeout")]);
    assert_eq!(rate.len(), 1);
    assert_eq!(rate[0].value, PointValue::Gauge(0.25));
    // Durations are the generic histogram's (no duplicate of the timeout's own).
    let Some(PointValue::Histogram { count, sum, .. }) = tt.histogram(
        "tta.primitive.duration",
        &[
            ("primitive", "llm_timeout"),
            ("kind", "timeout"),
            ("outcome", "timeout"),
        ],
    ) else {
        panic!("no duration histogram");
    };
    assert!(
        tt.points()
            .iter()
            .all(|p| !p.name.starts_with("tta.timeout.execution")),
        "no timeout-specific duration histogram"
    );
    assert_eq!(count, 1);
    assert!(
        (sum - 1.5).abs() < 1e-9,
        "a timeout lasts timeout + grace: {sum}"
    );
    // The generic metrics see the same executions, with kind `timeout`.
    let generic = |o| {
        tt.counter(
            "tta.primitive.executions",
            &[
                ("primitive", "llm_timeout"),
                ("kind", "timeout"),
                ("outcome", o),
            ],
        )
    };
    assert_eq!((generic("ok"), generic("timeout")), (3.0, 1.0));
}

#[tokio::test(start_paused = true)]
async fn spans_mark_late_calls_cancellations_and_a_shrunk_budget() {
    let (tt, t) = pipeline();
    let drops = Drops::default();
    let p = guarded(&drops, &t, "timeout", 1_000, 500);
    p.execute(100, &WorkflowContext::new()).await.unwrap();
    p.execute(1_200, &WorkflowContext::new()).await.unwrap();
    let caller = WorkflowContext::new().with_timeout(ms(300));
    p.execute(5_000, &caller).await.unwrap_err();

    let spans = tt.spans_named("timeout");
    assert_eq!(spans.len(), 3);
    let events = |i: usize| {
        spans[i]
            .events
            .iter()
            .map(|e| e.name.to_string())
            .collect::<Vec<_>>()
    };
    assert!(events(0).is_empty());
    assert_eq!(events(1), [semconv::EVENT_LATE]);
    assert_eq!(
        span_attr(&spans[1], semconv::ATTR_OUTCOME).as_deref(),
        Some("late_ok")
    );
    assert_eq!(events(2), [semconv::EVENT_CANCELLED]);
    assert_eq!(
        span_attr(&spans[2], semconv::ATTR_SHRUNK).as_deref(),
        Some("true")
    );
    assert_eq!(
        span_attr(&spans[2], semconv::ATTR_EFFECTIVE_LIMIT).as_deref(),
        Some("0.3")
    );
    assert_eq!(
        span_attr(&spans[0], semconv::ATTR_SHRUNK).as_deref(),
        Some("false")
    );
    // The inner primitive's span is a child of the timeout span.
    let inner = tt.spans_named("fn");
    assert_eq!(inner.len(), 3);
    assert_eq!(inner[0].parent_span_id, spans[0].span_context.span_id());
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_bounds_any_service() {
    let (tt, t) = pipeline();
    let timeout = TimeoutLayer::builder()
        .timeout(ms(100))
        .grace(ms(50))
        .name("svc_timeout")
        .telemetry(&t)
        .build()
        .unwrap();
    let svc = TowerLayer::new(timeout)
        .telemetry(&t)
        .layer(tower::service_fn(|delay: u64| async move {
            tokio::time::sleep(ms(delay)).await;
            Ok::<_, std::io::Error>(delay)
        }));
    assert_eq!(svc.clone().oneshot(120).await.unwrap(), 120);
    let err = svc.oneshot(1_000).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.primitive(), Some("svc_timeout"));
    assert_eq!(
        tt.counter(
            semconv::OUTCOMES,
            &[("primitive", "svc_timeout"), ("outcome", "late_ok")]
        ),
        1.0
    );
    assert!(matches!(
        TimeoutLayer::builder().timeout(ms(1)).grace(MAX).build(),
        Err(BuildError::TooLong {
            setting: "grace",
            ..
        })
    ));
    // And the primitive composes with `>>` like every other.
    let flow = TimeoutPrimitive::builder(from_fn(|x: u32, _| async move { Ok::<_, Error>(x + 1) }))
        .timeout(ms(10))
        .telemetry(&t)
        .build()
        .unwrap()
        >> from_fn(|x: u32, _| async move { Ok::<_, Error>(x * 2) });
    assert_eq!(flow.execute(1, &WorkflowContext::new()).await.unwrap(), 4);
}

const MAX: Duration = Duration::from_secs(24 * 3600 + 1);
