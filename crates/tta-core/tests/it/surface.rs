//! The small accessors, renames and formatting of the public API behave as documented.

use std::sync::Arc;

use tta_core::{
    AttemptKind, CostEntry, Error, ErrorKind, Flow, FnPrimitive, Instrumentation, Join, Outcome,
    Parallel, PrimitiveName, Telemetry, Then, TokenUsage, Usd, WorkflowContext, WorkflowPrimitive,
    from_fn, semconv,
};
use tta_tests::telemetry::{TestTelemetry, span_attr};

#[tokio::test]
async fn renamed_parallel_steps_report_their_name_in_spans_and_metrics() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let one = || from_fn(|x: u8, _| async move { Ok::<_, Error>(x) });
    let join = Join::builder(one(), one())
        .name("fan_out")
        .telemetry(&t)
        .build()
        .unwrap();
    assert_eq!(join.name(), "fan_out");
    assert_eq!(
        join.execute(3, &WorkflowContext::new()).await.unwrap(),
        (3, 3)
    );

    let par = Parallel::builder(vec![one().boxed(), one().boxed()])
        .telemetry(&t)
        .name("scatter")
        .build()
        .unwrap();
    assert_eq!(par.name(), "scatter");
    assert_eq!(
        par.execute(4, &WorkflowContext::new()).await.unwrap(),
        vec![4, 4]
    );

    for name in ["fan_out", "scatter"] {
        assert_eq!(
            tt.counter(
                semconv::PRIMITIVE_EXECUTIONS,
                &[("primitive", name), ("kind", "parallel"), ("outcome", "ok")]
            ),
            1.0
        );
        assert_eq!(
            tt.spans_named("parallel")
                .iter()
                .filter(|s| span_attr(s, semconv::PRIMITIVE_NAME).as_deref() == Some(name))
                .count(),
            1,
            "{name}: one span, on the custom provider"
        );
    }
    assert!(
        Join::builder(one(), one())
            .name("bad name")
            .build()
            .is_err()
    );
    assert!(
        Parallel::<u8, u8>::builder(vec![])
            .name("")
            .build()
            .is_err()
    );
}

use tta_core::WorkflowPrimitiveExt as _;

#[tokio::test]
async fn wrappers_delegate_to_the_wrapped_primitive() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let inner = FnPrimitive::builder(move |x: u32, _| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, Error>(x + 1) }
    })
    .name("inc")
    .build()
    .unwrap();
    let shared = Arc::new(inner);
    assert_eq!(shared.name(), "inc");
    assert_eq!(shared.execute(1, &WorkflowContext::new()).await.unwrap(), 2);
    let flow = Flow::new(Arc::clone(&shared));
    assert_eq!(flow.name(), "inc");
    assert_eq!(flow.execute(5, &WorkflowContext::new()).await.unwrap(), 6);
    assert_eq!(flow.get_ref().name(), "inc");
    assert_eq!(
        flow.clone()
            .into_inner()
            .execute(7, &WorkflowContext::new())
            .await
            .unwrap(),
        8
    );
    let seq = Then::new(Arc::clone(&shared), Arc::clone(&shared));
    assert_eq!(seq.name(), "sequential");
    assert_eq!(seq.execute(0, &WorkflowContext::new()).await.unwrap(), 2);
    let (a, b) = seq.into_parts();
    assert_eq!((a.name(), b.name()), ("inc", "inc"));
    // Every call above reached the one closure: 1 + 1 (flow) + 1 (into_inner) + 2 (seq).
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn renaming_keeps_custom_telemetry_in_either_order() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let step = || |x: u8, _| async move { Ok::<_, Error>(x) };
    let name_first = FnPrimitive::builder(step())
        .name("name_first")
        .telemetry(&t)
        .build()
        .unwrap();
    let telemetry_first = FnPrimitive::builder(step())
        .telemetry(&t)
        .name("telemetry_first")
        .build()
        .unwrap();
    let sync = FnPrimitive::sync_builder(|x: u8, _| Ok(x))
        .telemetry(&t)
        .name("sync_step")
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    name_first.execute(1, &cx).await.unwrap();
    telemetry_first.execute(1, &cx).await.unwrap();
    sync.execute(1, &cx).await.unwrap();
    for name in ["name_first", "telemetry_first", "sync_step"] {
        assert_eq!(
            tt.counter(
                semconv::PRIMITIVE_EXECUTIONS,
                &[("primitive", name), ("kind", "fn"), ("outcome", "ok")]
            ),
            1.0,
            "{name}: the metric reached the custom provider"
        );
        assert!(
            tt.spans_named("fn")
                .iter()
                .any(|s| span_attr(s, semconv::PRIMITIVE_NAME).as_deref() == Some(name)),
            "{name}: the span reached the custom provider"
        );
    }
}

#[test]
fn names_convert_and_format_without_quotes_in_display() {
    let name = PrimitiveName::try_from("router.main").unwrap();
    assert_eq!(name.to_string(), "router.main");
    assert_eq!(format!("{name:?}"), "\"router.main\"");
    assert_eq!(name.as_ref(), "router.main");
    assert_eq!(&*name.to_arc(), "router.main");
    assert!(PrimitiveName::try_from("").is_err());
    let err = PrimitiveName::new("x y").unwrap_err();
    assert!(err.to_string().contains("' '"), "{err}");
}

#[tokio::test]
async fn instrumentation_exposes_its_identity_and_label_sets() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let inst = Instrumentation::new("cache", PrimitiveName::new("answers").unwrap(), &t);
    assert_eq!(inst.kind(), "cache");
    assert_eq!(inst.name().as_str(), "answers");
    for outcome in Outcome::ALL {
        let labels = inst.labels(outcome);
        let pairs: Vec<(String, String)> = labels
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("primitive".to_owned(), "answers".to_owned()),
                ("kind".to_owned(), "cache".to_owned()),
                ("outcome".to_owned(), outcome.as_str().to_owned()),
            ]
        );
    }
    let cx = WorkflowContext::new();
    let exec = inst.start(&cx);
    assert!(exec.started() <= tokio::time::Instant::now());
    exec.finish(Outcome::Error);
    // Dropped unfinished: recorded as cancelled.
    drop(inst.start(&cx));
    let count = |outcome: &str| {
        tt.counter(
            semconv::PRIMITIVE_EXECUTIONS,
            &[
                ("primitive", "answers"),
                ("kind", "cache"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(
        (count("error"), count("cancelled"), count("ok")),
        (1.0, 1.0, 0.0)
    );
}

#[test]
fn outcomes_follow_error_kinds() {
    assert_eq!(Outcome::of(&Ok::<(), Error>(())), Outcome::Ok);
    assert_eq!(
        Outcome::of::<()>(&Err(Error::timeout("t", "x"))),
        Outcome::Timeout
    );
    assert_eq!(
        Outcome::of::<()>(&Err(Error::cancelled())),
        Outcome::Cancelled
    );
    assert_eq!(
        Outcome::of::<()>(&Err(Error::no_route("x"))),
        Outcome::Error
    );
    let labels: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(labels, ["ok", "error", "timeout", "cancelled"]);
}

#[test]
fn money_tokens_and_entries_format_and_saturate() {
    assert_eq!(Usd::from_picos(1_500_000).to_string(), "$0.000002");
    assert_eq!(
        Usd::from_picos(5).saturating_sub(Usd::from_picos(2)),
        Usd::from_picos(3)
    );
    let mut total = Usd::ZERO;
    total += Usd::from_picos(4);
    assert_eq!(total.picos(), 4);
    let mut usage = TokenUsage::new(1, 2);
    usage += TokenUsage::new(u64::MAX, 1);
    assert_eq!(usage, TokenUsage::new(u64::MAX, 3));
    assert_eq!(TokenUsage::new(u64::MAX, 1).total(), u64::MAX);
    let kinds = [
        AttemptKind::RouteCall,
        AttemptKind::Fallback,
        AttemptKind::CacheHit,
        AttemptKind::FailedBilled,
    ]
    .map(AttemptKind::as_str);
    assert_eq!(
        kinds,
        ["route_call", "fallback", "cache_hit", "failed_billed"]
    );
    let entry = CostEntry::saved("c", TokenUsage::new(3, 4), Usd::from_picos(9));
    assert_eq!(
        (entry.kind, entry.usage, entry.saved_usage),
        (
            AttemptKind::CacheHit,
            TokenUsage::default(),
            TokenUsage::new(3, 4)
        )
    );
}

#[test]
fn errors_debug_print_their_parts() {
    let err = Error::msg("boom")
        .with_primitive("step")
        .with_source(std::fmt::Error)
        .with_billed_usage(TokenUsage::new(1, 2));
    let dbg = format!("{err:?}");
    for part in ["Inner", "boom", "step", "source", "billed_usage"] {
        assert!(dbg.contains(part), "{part} missing from {dbg}");
    }
    let all = Error::all_routes_failed(vec![tta_core::AttemptError::new("a", err.clone())]);
    assert!(format!("{all:?}").contains("attempts"));
    assert_eq!(ErrorKind::Backend.to_string(), "backend");
    // Changing a shared error leaves the other handle unchanged.
    let shared = err.clone().with_primitive("renamed");
    assert_eq!(err.primitive(), Some("step"));
    assert_eq!(shared.primitive(), Some("renamed"));
    assert_eq!(shared.billed_usage(), Some(TokenUsage::new(1, 2)));
}

#[test]
fn contexts_debug_print_ids_but_not_the_ledger() {
    let cx = WorkflowContext::builder()
        .workflow_id("wf-dbg")
        .build()
        .unwrap();
    cx.ledger().record(CostEntry::spent(
        AttemptKind::RouteCall,
        "secret-route",
        TokenUsage::new(123_456, 7),
        Usd::from_picos(987_654_321),
    ));
    let dbg = format!("{cx:?}");
    assert!(dbg.contains("wf-dbg") && dbg.contains("cancelled: false"));
    for ledger_part in [
        "ledger",
        "secret-route",
        "123456",
        "987654321",
        "CostLedger",
    ] {
        assert!(
            !dbg.contains(ledger_part),
            "{ledger_part} leaked into {dbg}"
        );
    }
    assert!(WorkflowContext::default().workflow_id().starts_with("wf-"));
}
