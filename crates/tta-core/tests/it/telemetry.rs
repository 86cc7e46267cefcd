use std::time::Duration;

use opentelemetry::trace::{Status, TraceContextExt, Tracer, TracerProvider as _};
use tta_core::{
    Error, Flow, FnPrimitive, Join, Telemetry, WorkflowContext, WorkflowPrimitive, semconv,
};
use tta_tests::telemetry::{PointValue, TestTelemetry, parent_of, span_attr};

fn step(
    name: &str,
    t: &Telemetry,
) -> Flow<impl WorkflowPrimitive<String, Output = String> + use<>> {
    let suffix = name.to_owned();
    Flow::new(
        FnPrimitive::builder(move |s: String, _| {
            let suffix = suffix.clone();
            async move { Ok::<_, Error>(format!("{s}{suffix}")) }
        })
        .name(name)
        .telemetry(t)
        .build()
        .unwrap(),
    )
}

#[tokio::test]
async fn a_then_b_or_c_gives_b_and_c_as_siblings_under_the_parallel_span() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let branches = Join::builder(step("b", &t), step("c", &t))
        .telemetry(&t)
        .build()
        .unwrap();
    let flow = step("a", &t) >> branches;

    let root = tt.tracer_provider().tracer("test").start("request");
    let root_cx = opentelemetry::Context::new().with_span(root);
    let cx = WorkflowContext::builder()
        .workflow_id("wf-tree")
        .otel_context(root_cx.clone())
        .build()
        .unwrap();
    let out = flow.execute("x".into(), &cx).await.unwrap();
    assert_eq!(out, ("xab".to_owned(), "xac".to_owned()));
    root_cx.span().end();

    let spans = tt.spans();
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| span_attr(s, semconv::PRIMITIVE_NAME).as_deref() == Some(n))
            .unwrap_or_else(|| panic!("no span for {n}"))
    };
    let request = spans.iter().find(|s| s.name == "request").unwrap();
    let (a, b, c, par) = (
        by_name("a"),
        by_name("b"),
        by_name("c"),
        by_name("parallel"),
    );
    assert_eq!(a.name, "fn");
    assert_eq!(par.name, "parallel");
    assert_eq!(parent_of(&spans, a).unwrap().name, "request");
    assert_eq!(parent_of(&spans, par).unwrap().name, "request");
    assert_eq!(
        parent_of(&spans, b).unwrap().span_context.span_id(),
        par.span_context.span_id()
    );
    assert_eq!(
        parent_of(&spans, c).unwrap().span_context.span_id(),
        par.span_context.span_id()
    );
    assert!(
        spans
            .iter()
            .all(|s| s.span_context.trace_id() == request.span_context.trace_id())
    );
    assert_eq!(
        span_attr(a, semconv::WORKFLOW_ID).as_deref(),
        Some("wf-tree")
    );
    assert_eq!(
        span_attr(par, semconv::PRIMITIVE_KIND).as_deref(),
        Some("parallel")
    );
    assert_eq!(
        spans.len(),
        5,
        "sequential composition adds no span of its own"
    );
}

#[tokio::test]
async fn regrouping_a_sequence_gives_the_same_trace_shape() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let left = (step("a", &t) >> step("b", &t)) >> step("c", &t);
    let right = step("a", &t) >> (step("b", &t) >> step("c", &t));
    let shape = |tt: &TestTelemetry| {
        let spans = tt.spans();
        spans
            .iter()
            .map(|s| {
                (
                    span_attr(s, semconv::PRIMITIVE_NAME).unwrap(),
                    parent_of(&spans, s).map(|p| p.name.to_string()),
                )
            })
            .collect::<Vec<_>>()
    };
    left.execute(String::new(), &WorkflowContext::new())
        .await
        .unwrap();
    let l = shape(&tt);
    right
        .execute(String::new(), &WorkflowContext::new())
        .await
        .unwrap();
    let both = shape(&tt);
    assert_eq!(l.len(), 3);
    assert_eq!(&both[3..], &l[..]);
    assert!(l.iter().all(|(_, parent)| parent.is_none()));
}

#[tokio::test]
async fn executions_are_counted_by_outcome() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let flaky = FnPrimitive::builder(|fail: bool, _| async move {
        if fail {
            Err(Error::msg("nope"))
        } else {
            Ok(())
        }
    })
    .name("flaky")
    .telemetry(&t)
    .build()
    .unwrap();
    let cx = WorkflowContext::new();
    for i in 0..10 {
        let _ = flaky.execute(i % 3 == 0, &cx).await;
    }
    let attrs = |o| [("primitive", "flaky"), ("kind", "fn"), ("outcome", o)];
    assert_eq!(tt.counter(semconv::PRIMITIVE_EXECUTIONS, &attrs("ok")), 6.0);
    assert_eq!(
        tt.counter(semconv::PRIMITIVE_EXECUTIONS, &attrs("error")),
        4.0
    );
    assert_eq!(
        tt.counter(semconv::PRIMITIVE_EXECUTIONS, &attrs("timeout")),
        0.0
    );

    let spans = tt.spans();
    let failed: Vec<_> = spans
        .iter()
        .filter(|s| matches!(s.status, Status::Error { .. }))
        .collect();
    assert_eq!(failed.len(), 4);
    assert_eq!(
        span_attr(failed[0], semconv::ERROR_TYPE).as_deref(),
        Some("error")
    );
    // The error message (user data) never reaches the span.
    assert!(spans.iter().all(|s| {
        s.attributes
            .iter()
            .all(|kv| !kv.value.to_string().contains("nope"))
    }));
}

#[tokio::test(start_paused = true)]
async fn durations_are_seconds_with_second_scale_buckets() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let slow = FnPrimitive::builder(|ms: u64, _| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, Error>(())
    })
    .name("slow")
    .telemetry(&t)
    .build()
    .unwrap();
    let cx = WorkflowContext::new();
    slow.execute(300, &cx).await.unwrap();
    slow.execute(1_500, &cx).await.unwrap();
    let point = tt.points_matching(
        semconv::PRIMITIVE_DURATION,
        &[("primitive", "slow"), ("outcome", "ok")],
    );
    assert_eq!(point.len(), 1);
    assert_eq!(point[0].unit, "s");
    let PointValue::Histogram {
        count,
        sum,
        bounds,
        buckets,
    } = &point[0].value
    else {
        panic!("not a histogram: {point:?}");
    };
    assert_eq!(*count, 2);
    assert!((sum - 1.8).abs() < 1e-6, "sum {sum}");
    assert_eq!(bounds.as_slice(), semconv::DURATION_BUCKETS_SECONDS);
    let idx = |v: f64| bounds.iter().position(|b| v <= *b).unwrap();
    assert_eq!(buckets[idx(0.3)], 1);
    assert_eq!(buckets[idx(1.5)], 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_execution_is_recorded_as_cancelled() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let hang = FnPrimitive::builder(|(), _| async {
        std::future::pending::<()>().await;
        Ok::<(), Error>(())
    })
    .name("hang")
    .telemetry(&t)
    .build()
    .unwrap();
    let cx = WorkflowContext::new();
    let res = tokio::time::timeout(Duration::from_millis(10), hang.execute((), &cx)).await;
    assert!(res.is_err());
    assert_eq!(
        tt.counter(
            semconv::PRIMITIVE_EXECUTIONS,
            &[("primitive", "hang"), ("outcome", "cancelled")]
        ),
        1.0
    );
    let spans = tt.spans_named("fn");
    assert_eq!(spans.len(), 1, "the span of a dropped execution still ends");
    assert_eq!(
        span_attr(&spans[0], semconv::ERROR_TYPE).as_deref(),
        Some("cancelled")
    );
}

#[tokio::test]
async fn many_executions_reuse_one_series_per_outcome() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let echo = FnPrimitive::builder(|x: u64, _| async move { Ok::<_, Error>(x) })
        .name("echo")
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    for i in 0..500 {
        echo.execute(i, &cx).await.unwrap();
    }
    let series = tt.points_matching(semconv::PRIMITIVE_EXECUTIONS, &[("primitive", "echo")]);
    // At most one series per outcome (bound instruments start all four at zero).
    assert!(series.len() <= 4, "inputs never become labels: {series:?}");
    for point in &series {
        assert_eq!(
            point.attrs.keys().collect::<Vec<_>>(),
            ["kind", "outcome", "primitive"]
        );
        let expected = if point.attrs["outcome"] == "ok" {
            500.0
        } else {
            0.0
        };
        assert_eq!(point.value, PointValue::Sum(expected), "{point:?}");
    }
    assert!(series.iter().any(|p| p.attrs["outcome"] == "ok"));
}

#[tokio::test]
async fn without_a_tracer_primitives_skip_spans_and_children_keep_the_parent_span() {
    use opentelemetry::metrics::noop::NoopMeterProvider;
    use opentelemetry::trace::noop::NoopTracerProvider;

    let tt = TestTelemetry::new();
    let sdk = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    assert!(sdk.starts_spans(), "an SDK tracer makes spans");
    let noop = Telemetry::new(&NoopMeterProvider::new(), &NoopTracerProvider::new());
    assert!(
        !noop.starts_spans(),
        "the no-op tracer only hands back its parent"
    );
    assert!(tt.spans().is_empty(), "asking exported no span");

    // A parent span from elsewhere (an incoming request): the child context a no-op
    // primitive hands its inner work carries that span, as a no-op span would have.
    let root = tt.tracer_provider().tracer("test").start("request");
    let root_cx = opentelemetry::Context::new().with_span(root);
    let root_id = root_cx.span().span_context().clone();
    let cx = WorkflowContext::builder()
        .otel_context(root_cx)
        .build()
        .unwrap();
    let seen = FnPrimitive::builder(|(), cx: WorkflowContext| async move {
        Ok::<_, Error>(cx.otel_context().span().span_context().clone())
    })
    .telemetry(&noop)
    .build()
    .unwrap();
    assert_eq!(seen.execute((), &cx).await.unwrap(), root_id);
}

#[tokio::test(start_paused = true)]
async fn run_timed_ends_the_execution_at_the_instant_its_work_hands_back() {
    use tokio::time::{Instant, sleep};
    use tta_core::{Instrumentation, PrimitiveName};

    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let inst = Instrumentation::new("fn", PrimitiveName::new("timed").unwrap(), &t);
    let cx = WorkflowContext::new();
    // Work that ends after 1 s, then spends 2 s more before it returns: 1 s is recorded.
    let answer = inst
        .run_timed(&cx, |_, started| async move {
            sleep(Duration::from_secs(1)).await;
            let ended = Instant::now();
            assert_eq!(ended - started, Duration::from_secs(1));
            sleep(Duration::from_secs(2)).await;
            (Ok::<_, Error>(7), Some(ended))
        })
        .await;
    assert_eq!(answer.unwrap(), 7);
    // Without an instant the execution reads the clock: 0.5 s.
    let failed = inst
        .run_timed(&cx, |_, _| async {
            sleep(Duration::from_millis(500)).await;
            (Err::<u8, _>(Error::msg("boom")), None)
        })
        .await;
    assert!(failed.is_err());
    let sum_of = |outcome: &str| {
        let point = tt.points_matching(
            semconv::PRIMITIVE_DURATION,
            &[("primitive", "timed"), ("outcome", outcome)],
        );
        let [point] = point.as_slice() else {
            panic!("one point for {outcome}: {point:?}");
        };
        let PointValue::Histogram { count, sum, .. } = &point.value else {
            panic!("not a histogram: {point:?}");
        };
        (*count, *sum)
    };
    assert_eq!(sum_of("ok"), (1, 1.0));
    assert_eq!(sum_of("error"), (1, 0.5));

    // A cancelled context runs no work, and records the execution as cancelled.
    cx.cancel();
    let ran = std::sync::atomic::AtomicBool::new(false);
    let cancelled = inst
        .run_timed(&cx, |_, _| async {
            ran.store(true, std::sync::atomic::Ordering::Relaxed);
            (Ok::<_, Error>(()), Some(Instant::now()))
        })
        .await;
    assert!(cancelled.unwrap_err().is_cancelled());
    assert!(!ran.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(
        tt.counter(
            semconv::PRIMITIVE_EXECUTIONS,
            &[("primitive", "timed"), ("outcome", "cancelled")]
        ),
        1.0
    );
}
