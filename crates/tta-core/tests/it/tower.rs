use tower::{Service, ServiceExt};
use tta_core::tower::{PrimitiveService, ServicePrimitive};
use tta_core::{Error, WorkflowContext, WorkflowPrimitive, from_fn};

#[tokio::test]
async fn a_primitive_serves_as_a_tower_service_in_a_child_scope() {
    let base = WorkflowContext::builder()
        .workflow_id("svc-wf")
        .build()
        .unwrap();
    let echo_id = from_fn(|suffix: &'static str, cx: WorkflowContext| async move {
        Ok::<_, Error>(format!("{}{suffix}", cx.workflow_id()))
    });
    let mut svc = PrimitiveService::new(echo_id).with_context(base.clone());
    let out = svc.ready().await.unwrap().call("!").await.unwrap();
    assert_eq!(out, "svc-wf!");
    // Calls run in a child scope: cancelling the base cancels them.
    base.cancel();
    let err = svc.clone().oneshot("?").await.unwrap_err();
    assert!(err.is_cancelled());
}

#[tokio::test]
async fn a_tower_service_runs_as_a_primitive_and_keeps_its_error_type() {
    let svc = tower::service_fn(|x: i32| async move {
        if x < 0 {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "negative",
            ))
        } else {
            Ok(x * 2)
        }
    });
    let step = ServicePrimitive::builder(svc)
        .name("double")
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    assert_eq!(step.execute(4, &cx).await.unwrap(), 8);
    let err = step.execute(-1, &cx).await.unwrap_err();
    assert!(err.is_inner());
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let failing = tower::service_fn(|()| async { Err::<(), _>(Error::no_route("none")) });
    let err = ServicePrimitive::new(failing)
        .execute((), &cx)
        .await
        .unwrap_err();
    assert!(err.is_no_route(), "a tta error passes through unchanged");
    // Composes with other primitives.
    let flow = ServicePrimitive::new(tower::service_fn(
        |x: i32| async move { Ok::<_, Error>(x + 1) },
    )) >> from_fn(|x: i32, _| async move { Ok::<_, Error>(x * 10) });
    assert_eq!(flow.execute(1, &cx).await.unwrap(), 20);
}

#[tokio::test]
async fn a_service_primitive_is_named_service_unless_built_with_a_name() {
    let svc = ServicePrimitive::new(tower::service_fn(
        |x: u8| async move { Ok::<_, Error>(x * 3) },
    ));
    assert_eq!(svc.name(), "service");
    assert_eq!(svc.execute(2, &WorkflowContext::new()).await.unwrap(), 6);
    let named =
        ServicePrimitive::builder(tower::service_fn(|x: u8| async move { Ok::<_, Error>(x) }))
            .name("ok_name")
            .build()
            .unwrap();
    assert_eq!(named.name(), "ok_name");
}
