use std::time::Duration;

use tokio::time::Instant;
use tta_core::{
    BoxPrimitive, Error, Flow, WorkflowContext, WorkflowPrimitive, WorkflowPrimitiveExt, from_fn,
    parallel,
};

use crate::DropCounter;

fn add(k: i64) -> impl WorkflowPrimitive<i64, Output = i64> + Clone {
    Flow::new(BoxPrimitive::new(from_fn(move |x: i64, _| async move {
        Ok::<_, Error>(x + k)
    })))
}

fn mul(k: i64) -> impl WorkflowPrimitive<i64, Output = i64> + Clone {
    Flow::new(BoxPrimitive::new(from_fn(move |x: i64, _| async move {
        Ok::<_, Error>(x * k)
    })))
}

#[tokio::test]
async fn sequential_composition_is_associative() {
    let cx = WorkflowContext::new();
    for x in [-3, 0, 7, 1_000] {
        let left = (Flow::new(add(1)) >> mul(3)) >> add(-5);
        let right = Flow::new(add(1)) >> (Flow::new(mul(3)) >> add(-5));
        let l = left.execute(x, &cx).await.unwrap();
        let r = right.execute(x, &cx).await.unwrap();
        assert_eq!(l, r);
        assert_eq!(l, (x + 1) * 3 - 5);
    }
}

#[tokio::test]
async fn parallel_composition_is_associative_in_meaning() {
    let cx = WorkflowContext::new();
    let left = (Flow::new(add(1)) | mul(2)) | add(10);
    let right = Flow::new(add(1)) | (Flow::new(mul(2)) | add(10));
    let ((a1, b1), c1) = left.execute(5, &cx).await.unwrap();
    let (a2, (b2, c2)) = right.execute(5, &cx).await.unwrap();
    assert_eq!((a1, b1, c1), (a2, b2, c2));
    assert_eq!((a1, b1, c1), (6, 10, 15));
}

#[tokio::test]
async fn then_and_join_methods_match_the_operators() {
    let cx = WorkflowContext::new();
    let by_method = add(1).then(mul(2).join(add(3)));
    let by_ops = Flow::new(add(1)) >> (Flow::new(mul(2)) | add(3));
    assert_eq!(
        by_method.execute(4, &cx).await.unwrap(),
        by_ops.execute(4, &cx).await.unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_branches_run_concurrently() {
    let slow = |id: u32| {
        from_fn(move |(), _| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Error>(id)
        })
    };
    let started = Instant::now();
    let out = (slow(1) | slow(2))
        .execute((), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(out, (1, 2));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn first_parallel_error_cancels_the_sibling_and_is_returned() {
    let drops = DropCounter::default();
    let d = drops.clone();
    let hangs = from_fn(move |(), _| {
        let guard = d.guard();
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok::<u32, Error>(0)
        }
    });
    let fails = from_fn(|(), _| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<u32, _>(Error::msg("provider returned 503"))
    });
    let started = Instant::now();
    let err = (hangs | fails)
        .execute((), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(err.is_inner());
    assert!(err.to_string().contains("503"));
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(drops.dropped(), 1, "the hanging sibling was dropped");
}

#[tokio::test(start_paused = true)]
async fn n_ary_parallel_keeps_branch_order_and_runs_concurrently() {
    let branches: Vec<BoxPrimitive<u64, u64>> = (1..=5u64)
        .map(|k| {
            from_fn(move |x: u64, _| async move {
                // The later branches finish first.
                tokio::time::sleep(Duration::from_millis(100 * (6 - k))).await;
                Ok::<_, Error>(x * k)
            })
            .boxed()
        })
        .collect();
    let started = Instant::now();
    let out = parallel(branches)
        .execute(10, &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(out, vec![10, 20, 30, 40, 50]);
    assert_eq!(started.elapsed(), Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn n_ary_parallel_first_error_drops_every_other_branch() {
    let drops = DropCounter::default();
    let mut branches: Vec<BoxPrimitive<(), ()>> = (0..8)
        .map(|_| {
            let d = drops.clone();
            from_fn(move |(), _| {
                let guard = d.guard();
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok::<(), Error>(())
                }
            })
            .boxed()
        })
        .collect();
    branches.push(from_fn(|(), _| async { Err::<(), _>(Error::msg("boom")) }).boxed());
    let err = parallel(branches)
        .execute((), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "inner: boom");
    assert_eq!(drops.dropped(), 8);
}

#[tokio::test]
async fn empty_n_ary_parallel_returns_no_outputs() {
    let out = parallel::<u8, u8>(vec![])
        .execute(1, &WorkflowContext::new())
        .await
        .unwrap();
    assert!(out.is_empty());
}

#[tokio::test]
async fn an_error_stops_a_sequence_before_the_next_step() {
    let drops = DropCounter::default();
    let d = drops.clone();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let fail = from_fn(move |(), _| {
        let _g = d.guard();
        async { Err::<(), _>(Error::msg("first step failed")) }
    });
    let next = from_fn(move |(), _| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<(), Error>(()) }
    });
    let err = (fail >> next)
        .execute((), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(err.is_inner());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn user_primitives_compose_through_flow_and_boxing() {
    struct Exclaim;
    impl WorkflowPrimitive<String> for Exclaim {
        type Output = String;
        fn name(&self) -> &str {
            "exclaim"
        }
        async fn execute(&self, s: String, _cx: &WorkflowContext) -> Result<String, Error> {
            Ok(s + "!")
        }
    }
    let boxed: BoxPrimitive<String, String> = Exclaim.boxed();
    assert_eq!(boxed.name(), "exclaim");
    assert_eq!(format!("{boxed:?}"), "BoxPrimitive(\"exclaim\")");
    let flow = Flow::new(Exclaim) >> boxed.clone() >> Exclaim;
    let out = flow
        .execute("hi".into(), &WorkflowContext::new())
        .await
        .unwrap();
    assert_eq!(out, "hi!!!");
}
