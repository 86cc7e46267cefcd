//! Dropping in-flight workflows leaves nothing behind: no task, no single-flight waiter,
//! no ledger entry, no memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tta_observability_integration::cache::CachePrimitive;
use tta_observability_integration::router::{Price, Route, RouterPrimitive};
use tta_observability_integration::timeout::TimeoutPrimitive;
use tta_observability_integration::{Telemetry, TokenUsage, WorkflowContext, WorkflowPrimitive};
use tta_tests::telemetry::PromTelemetry;

use crate::{ALLOCATOR, Provider, Step};

const WORKFLOWS: usize = 10_000;
const DISTINCT: usize = 5_000;

/// Starts `WORKFLOWS` workflows over `DISTINCT` prompts (so half of them wait on another's
/// fill), waits until every fill is in flight, then aborts them all.
async fn spawn_and_drop<S>(stack: &Arc<S>, llm: &Provider, root: &WorkflowContext)
where
    S: WorkflowPrimitive<String> + 'static,
    S::Output: Send,
{
    let before = llm.calls();
    let started = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..WORKFLOWS)
        .map(|i| {
            let (stack, cx, started) =
                (Arc::clone(stack), root.child_scope(), Arc::clone(&started));
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = stack.execute(format!("prompt {}", i % DISTINCT), &cx).await;
            })
        })
        .collect();
    // Every workflow has run up to its first wait, and every fill is in flight.
    while started.load(Ordering::SeqCst) < WORKFLOWS || llm.calls() < before + DISTINCT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for h in &handles {
        h.abort();
    }
    for h in handles {
        assert!(h.await.unwrap_err().is_cancelled());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_ten_thousand_in_flight_workflows_leaves_nothing_behind() {
    let prom = PromTelemetry::new();
    let t = Telemetry::new(prom.meter_provider(), prom.tracer_provider());
    // Every call hangs: all workflows are in flight when they are dropped.
    let llm = Provider::new("llm", TokenUsage::new(100, 10), |_| Step::Hang);
    let router = RouterPrimitive::builder()
        .route(Route::new("llm", llm.primitive::<String>()).price(Price::per_1k_tokens(1.0, 1.0)))
        .usage_reported()
        .telemetry(&t)
        .build()
        .unwrap();
    let cache = CachePrimitive::builder(router)
        .telemetry(&t)
        .build()
        .unwrap();
    let stack = Arc::new(
        TimeoutPrimitive::builder(cache)
            .timeout(Duration::from_secs(3_600))
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let root = WorkflowContext::new();
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    // A first round grows whatever grows once (buffers, label maps); the second must not
    // grow anything.
    spawn_and_drop(&stack, &llm, &root).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let baseline = ALLOCATOR.allocated();
    spawn_and_drop(&stack, &llm, &root).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = ALLOCATOR.allocated();

    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before,
        "no task left behind"
    );
    assert_eq!(
        stack.inner().fills_in_flight(),
        0,
        "no single-flight waiter left behind"
    );
    assert_eq!(
        root.ledger().totals().entries,
        0,
        "no ledger entry from a dropped attempt"
    );
    // One fill per distinct prompt per round, plus any waiter that took over from a
    // leader aborted before it (the aborts land one task at a time).
    assert!(
        (2 * DISTINCT..2 * DISTINCT + WORKFLOWS).contains(&llm.calls()),
        "{} fills",
        llm.calls()
    );
    let grown = after.saturating_sub(baseline);
    eprintln!("live heap: {baseline} bytes after the first round, {after} after the second");
    // The heap is process-wide: the check is exact only when this test has the process
    // to itself, as under cargo-nextest (one process per test), which `cargo xtask` uses.
    if std::env::var_os("NEXTEST_RUN_ID").is_some() {
        assert!(
            grown < 64 * 1024,
            "memory returned to its baseline: {grown} bytes more after 10,000 dropped workflows"
        );
    }
    let cancelled = prom.sum(
        "tta_primitive_executions_total",
        &[("kind", "timeout"), ("outcome", "cancelled")],
    );
    assert_eq!(
        cancelled,
        (2 * WORKFLOWS) as f64,
        "every dropped workflow is recorded as cancelled"
    );
}
