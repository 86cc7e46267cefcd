//! The small accessors, renames and formatting of the public API behave as documented.

use std::sync::Arc;

use tta_core::tower::ServicePrimitive;
use tta_core::{
    AttemptKind, CostEntry, Error, ErrorKind, Flow, Instrumentation, Join, Outcome, PrimitiveName,
    Telemetry, Then, TokenUsage, Usd, WorkflowContext, WorkflowPrimitive, from_fn, parallel,
    semconv,
};
use tta_tests::telemetry::TestTelemetry;

#[tokio::test]
async fn renamed_parallel_steps_report_their_name_in_spans_and_metrics() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let one = || from_fn(|x: u8, _| async move { Ok::<_, Error>(x) });
    let join = Join::new(one(), one())
        .named("fan_out")
        .unwrap()
        .with_telemetry(&t);
    assert_eq!(join.name(), "fan_out");
    assert!(format!("{join:?}").contains("fan_out"));
    assert_eq!(
        join.execute(3, &WorkflowContext::new()).await.unwrap(),
        (3, 3)
    );

    let par = parallel(vec![one().boxed(), one().boxed()])
        .named("scatter")
        .unwrap()
        .with_telemetry(&t);
    assert_eq!(par.name(), "scatter");
    assert!(format!("{par:?}").contains("branches: 2"));
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
    }
    assert!(Join::new((), ()).named("bad name").is_err());
    assert!(parallel::<u8, u8>(vec![]).named("").is_err());
}

use tta_core::WorkflowPrimitiveExt as _;

#[tokio::test]
async fn wrappers_delegate_to_the_wrapped_primitive() {
    let inner = from_fn(|x: u32, _| async move { Ok::<_, Error>(x + 1) })
        .named("inc")
        .unwrap();
    let shared = Arc::new(inner);
    assert_eq!(shared.name(), "inc");
    assert_eq!(shared.execute(1, &WorkflowContext::new()).await.unwrap(), 2);
    let flow = Flow::new(Arc::clone(&shared));
    assert_eq!(flow.name(), "inc");
    assert_eq!(flow.get_ref().name(), "inc");
    assert_eq!(flow.clone().into_inner().name(), "inc");
    assert!(format!("{:?}", shared).contains("inc"));
    let seq = Then::new(Arc::clone(&shared), Arc::clone(&shared));
    assert_eq!(seq.name(), "sequential");
    assert_eq!(seq.execute(0, &WorkflowContext::new()).await.unwrap(), 2);
    let (a, b) = seq.into_parts();
    assert_eq!((a.name(), b.name()), ("inc", "inc"));
    let svc = ServicePrimitive::new(tower::service_fn(|x: u8| async move { Ok::<_, Error>(x) }))
        .with_telemetry(&Telemetry::global());
    assert_eq!(svc.name(), "service");
    assert!(format!("{svc:?}").contains("service"));
    assert!(ServicePrimitive::new(()).named("ok_name").is_ok());
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

#[test]
fn instrumentation_exposes_its_identity_and_label_sets() {
    let inst = Instrumentation::new(
        "cache",
        PrimitiveName::new("answers").unwrap(),
        &Telemetry::global(),
    );
    assert_eq!(inst.kind(), "cache");
    assert_eq!(inst.name().as_str(), "answers");
    for outcome in Outcome::ALL {
        let labels = inst.labels(outcome);
        assert_eq!(labels[2].value.as_str(), outcome.as_str());
    }
    assert!(format!("{inst:?}").contains("answers"));
    let cx = WorkflowContext::new();
    let exec = inst.start(&cx);
    assert!(exec.started() <= tokio::time::Instant::now());
    assert!(format!("{exec:?}").contains("cache"));
    exec.finish(Outcome::Ok);
    assert!(format!("{:?}", Telemetry::global()).contains("Telemetry"));
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
    let cx = WorkflowContext::builder().workflow_id("wf-dbg").build();
    let dbg = format!("{cx:?}");
    assert!(dbg.contains("wf-dbg") && dbg.contains("cancelled: false"));
    let builder = format!("{:?}", WorkflowContext::builder());
    assert!(builder.contains("WorkflowContextBuilder"));
    assert!(WorkflowContext::default().workflow_id().starts_with("wf-"));
}
