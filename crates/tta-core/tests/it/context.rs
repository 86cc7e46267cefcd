use std::time::Duration;

use tokio::time::Instant;
use tta_core::{ContextError, Error, WorkflowContext, WorkflowPrimitive, from_fn};

use crate::DropCounter;

#[tokio::test(start_paused = true)]
async fn child_deadline_can_only_tighten() {
    let root = WorkflowContext::new().with_timeout(Duration::from_secs(10));
    let tighter = root.with_timeout(Duration::from_secs(2));
    assert_eq!(tighter.remaining(), Some(Duration::from_secs(2)));
    let looser = tighter.with_timeout(Duration::from_secs(60));
    assert_eq!(looser.deadline(), tighter.deadline());
    assert_eq!(root.remaining(), Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn remaining_counts_down_and_stops_at_zero() {
    let cx = WorkflowContext::new().with_timeout(Duration::from_millis(300));
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(cx.remaining(), Some(Duration::from_millis(200)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cx.remaining(), Some(Duration::ZERO));
    assert_eq!(WorkflowContext::new().remaining(), None);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_parent_cancels_running_children_promptly() {
    let drops = DropCounter::default();
    let d = drops.clone();
    let hang = from_fn(move |(), _| {
        let guard = d.guard();
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok::<(), Error>(())
        }
    });
    let parent = WorkflowContext::new();
    let child = parent.child_scope();
    let canceller = {
        let parent = parent.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            parent.cancel();
        })
    };
    let started = Instant::now();
    let err = hang.execute((), &child).await.unwrap_err();
    canceller.await.unwrap();
    assert!(err.is_cancelled());
    assert_eq!(err.primitive(), Some("fn"));
    assert_eq!(started.elapsed(), Duration::from_millis(20));
    assert_eq!(drops.dropped(), 1);
}

#[tokio::test]
async fn cancelling_a_child_scope_leaves_the_parent_running() {
    let parent = WorkflowContext::new();
    let child = parent.child_scope();
    child.cancel();
    let ok = from_fn(|(), _| async { Ok::<_, Error>(1) });
    assert!(ok.execute((), &child).await.unwrap_err().is_cancelled());
    assert_eq!(ok.execute((), &parent).await.unwrap(), 1);
}

#[test]
fn clones_and_children_share_ids_metadata_and_ledger() {
    let root = WorkflowContext::builder()
        .workflow_id("wf-7")
        .session_id("sess")
        .correlation_id("corr")
        .metadata("tenant", "acme")
        .build()
        .unwrap();
    let child = root.child_scope().with_timeout(Duration::from_secs(1));
    assert_eq!(child.workflow_id(), "wf-7");
    assert_eq!(child.session_id(), Some("sess"));
    assert_eq!(child.correlation_id(), Some("corr"));
    assert_eq!(
        child.metadata_iter().collect::<Vec<_>>(),
        vec![("tenant", "acme")]
    );
    assert!(std::ptr::eq(root.ledger(), child.ledger()));
    let other = WorkflowContext::new();
    assert_ne!(other.workflow_id(), WorkflowContext::new().workflow_id());
}

#[test]
fn bad_metadata_and_ids_are_typed_errors_of_build() {
    let b = || WorkflowContext::builder();
    assert!(matches!(
        b().metadata("", "v").build(),
        Err(ContextError::MetadataKey { .. })
    ));
    assert!(matches!(
        b().metadata("k", "line\nbreak").build(),
        Err(ContextError::MetadataValue { .. })
    ));
    assert!(matches!(
        b().metadata("k", &"x".repeat(WorkflowContext::MAX_VALUE_LEN + 1))
            .build(),
        Err(ContextError::MetadataValue { .. })
    ));
    assert!(matches!(
        b().session_id("").build(),
        Err(ContextError::Id {
            field: "session id",
            ..
        })
    ));
    // An invalid workflow id is an error too, never silently replaced.
    assert!(matches!(
        b().workflow_id("tab\there").build(),
        Err(ContextError::Id {
            field: "workflow id",
            ..
        })
    ));
    assert!(matches!(
        b().correlation_id(&"c".repeat(WorkflowContext::MAX_VALUE_LEN + 1))
            .build(),
        Err(ContextError::Id {
            field: "correlation id",
            ..
        })
    ));
    let mut full = b();
    for i in 0..WorkflowContext::MAX_METADATA_ENTRIES {
        full = full.metadata(&format!("k{i}"), "v");
    }
    // Replacing an existing key is fine, and the later value wins; a new key is one too many.
    let full = full.metadata("k0", "again");
    let cx = full.build().unwrap();
    assert_eq!(cx.metadata("k0"), Some("again"));
    let mut over = b();
    for i in 0..=WorkflowContext::MAX_METADATA_ENTRIES {
        over = over.metadata(&format!("k{i}"), "v");
    }
    assert_eq!(
        over.build().unwrap_err(),
        ContextError::TooManyEntries { max: 64 }
    );
    let err = b().metadata("bad\u{1b}key", "v").build().unwrap_err();
    assert!(err.to_string().contains("\\u{1b}"), "escaped: {err}");
}

#[test]
fn a_loop_of_instant_executions_yields_to_other_tasks() {
    // A cache hit completes without touching a tokio resource; a task running such calls
    // in a loop must still let its neighbours (and their timers) run.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let iterations_before_neighbour_ran = rt.block_on(async {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        tokio::spawn(async move { r.store(true, std::sync::atomic::Ordering::SeqCst) });
        let ready = from_fn(|(), _| async { Ok::<_, Error>(()) });
        let cx = WorkflowContext::new();
        let mut n = 0u32;
        while !ran.load(std::sync::atomic::Ordering::SeqCst) && n < 1_000_000 {
            ready.execute((), &cx).await.unwrap();
            n += 1;
        }
        n
    });
    assert!(
        iterations_before_neighbour_ran < 1_000,
        "the loop ran {iterations_before_neighbour_ran} times before yielding"
    );
}
