//! Cancellation reaches the wire: a cancelled call, an aborted task and a dropped stream
//! each close their HTTP request, and the provider sees its client go.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tta_core::{StreamPrimitive, WorkflowContext, WorkflowPrimitive};
use tta_tests::llm_server::{End, LlmServer, Reply};

use crate::{client, pipeline, request};

/// Waits (in real time: the wire is real) until `done` holds, at most five seconds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < give_up, "{what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_cancelled_call_an_aborted_task_and_a_dropped_stream_close_their_requests() {
    let server = LlmServer::start().await;
    let (_tt, t) = pipeline();
    let llm = client(&server, &t);

    server.push(Reply::Hang);
    let cx = WorkflowContext::new();
    let call = tokio::spawn({
        let (llm, cx) = (llm.clone(), cx.clone());
        async move { llm.execute(request(), &cx).await }
    });
    eventually("the call reached the provider", || {
        server.requests().len() == 1
    })
    .await;
    cx.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    eventually("the provider saw the cancelled call go", || {
        server.abandoned() == 1
    })
    .await;

    server.push(Reply::Hang);
    let call = tokio::spawn({
        let llm = llm.clone();
        async move { llm.execute(request(), &WorkflowContext::new()).await }
    });
    eventually("the call reached the provider", || {
        server.requests().len() == 2
    })
    .await;
    call.abort();
    eventually("the provider saw the aborted call go", || {
        server.abandoned() == 2
    })
    .await;

    server.push(Reply::events(
        &[json!({"id": "s", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]})],
        Duration::ZERO,
        false,
        End::Stall,
    ));
    let mut body = llm
        .stream(request(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(body.next().await.unwrap().unwrap().delta, "Hel");
    drop(body);
    eventually("the provider saw the dropped stream go", || {
        server.abandoned() == 3
    })
    .await;
}
