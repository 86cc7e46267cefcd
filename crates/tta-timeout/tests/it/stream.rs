//! The timeout around streams: the first chunk within timeout + grace, every gap within
//! `idle`, the whole stream within `total`.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tta_core::{Error, FnPrimitive, StreamPrimitive, Telemetry, WorkflowContext};
use tta_timeout::{BuildError, Elapsed, TimeoutPrimitive, semconv};

use crate::{ms, pipeline};

/// A stream whose first chunk comes after `first`, then one chunk per `gaps` entry after
/// that gap.
fn paced(
    t: &Telemetry,
    first: u64,
    gaps: Vec<u64>,
) -> impl StreamPrimitive<(), Chunk = u32> + use<> {
    FnPrimitive::stream_builder(move |(), _cx| {
        let gaps = gaps.clone();
        async move {
            tokio::time::sleep(ms(first)).await;
            Ok(futures_util::stream::unfold(
                (0usize, gaps),
                |(i, gaps)| async move {
                    if i > gaps.len() {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(ms(gaps[i - 1])).await;
                    }
                    Some((Ok::<_, Error>(i as u32), (i + 1, gaps)))
                },
            ))
        }
    })
    .name("provider")
    .telemetry(t)
    .build()
    .unwrap()
}

fn outcomes(tt: &tta_tests::telemetry::TestTelemetry, outcome: &str) -> f64 {
    tt.counter(
        semconv::OUTCOMES,
        &[("primitive", "timeout"), ("outcome", outcome)],
    )
}

#[tokio::test(start_paused = true)]
async fn timeout_and_grace_bound_the_time_to_the_first_chunk() {
    let (tt, t) = pipeline();
    let build = |first| {
        TimeoutPrimitive::builder(paced(&t, first, vec![5_000, 5_000]))
            .timeout(ms(1_000))
            .grace(ms(500))
            .telemetry(&t)
            .build()
            .unwrap()
    };
    // Late but within the grace: the stream is kept, and lasts as long as it needs.
    let started = Instant::now();
    let chunks: Vec<u32> = build(1_200)
        .stream((), &WorkflowContext::new())
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(chunks, [0, 1, 2]);
    assert_eq!(
        started.elapsed(),
        ms(11_200),
        "after the first chunk, timeout + grace no longer apply"
    );
    assert_eq!(outcomes(&tt, "late_ok"), 1.0);

    // No first chunk by timeout + grace: the timeout's own error, before any chunk.
    let started = Instant::now();
    let err = build(2_000)
        .stream((), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), ms(1_500));
    assert!(err.is_timeout());
    assert_eq!(err.primitive(), Some("timeout"));
    assert_eq!(err.downcast_ref::<Elapsed>().unwrap().limit(), ms(1_500));
    assert_eq!(outcomes(&tt, "timeout"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn idle_cuts_a_stalled_stream_at_the_right_instant() {
    let (tt, t) = pipeline();
    let timeout = TimeoutPrimitive::builder(paced(&t, 100, vec![200, 200, 60_000]))
        .timeout(ms(1_000))
        .idle(ms(1_000))
        .telemetry(&t)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut streamed = timeout.stream((), &WorkflowContext::new()).await.unwrap();
    let mut received = Vec::new();
    let err = loop {
        match streamed.next().await.unwrap() {
            Ok(chunk) => received.push(chunk),
            Err(e) => break e,
        }
    };
    assert_eq!(
        received,
        [0, 1, 2],
        "every chunk before the stall reached the caller"
    );
    // The last chunk came at 500 ms; one idle second later the stall is cut.
    assert_eq!(started.elapsed(), ms(1_500));
    assert!(
        err.is_timeout() && err.primitive() == Some("timeout"),
        "{err}"
    );
    assert_eq!(err.downcast_ref::<Elapsed>().unwrap().limit(), ms(1_000));
    assert!(
        streamed.next().await.is_none(),
        "one error item, then the body ends"
    );
    assert_eq!(outcomes(&tt, "timeout"), 1.0);
    assert_eq!(
        tt.counter(
            "tta.primitive.executions",
            &[("primitive", "timeout"), ("outcome", "timeout")]
        ),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn total_cuts_a_slow_but_steady_stream() {
    let (tt, t) = pipeline();
    let timeout = TimeoutPrimitive::builder(paced(&t, 100, vec![400; 100]))
        .timeout(ms(1_000))
        .idle(ms(1_000))
        .total(ms(3_000))
        .telemetry(&t)
        .build()
        .unwrap();
    let started = Instant::now();
    let items: Vec<_> = timeout
        .stream((), &WorkflowContext::new())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        started.elapsed(),
        ms(3_000),
        "the whole stream within its total"
    );
    let (last, chunks) = items.split_last().unwrap();
    assert_eq!(chunks.len(), 8, "chunks at 0.1, 0.5, ..., 2.9 s");
    assert!(last.as_ref().is_err_and(Error::is_timeout));
    assert_eq!(outcomes(&tt, "timeout"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_stream_within_its_limits_ends_cleanly_and_counts_ok() {
    let (tt, t) = pipeline();
    let timeout = TimeoutPrimitive::builder(paced(&t, 10, vec![10; 5]))
        .timeout(ms(1_000))
        .idle(ms(100))
        .total(ms(1_000))
        .telemetry(&t)
        .build()
        .unwrap();
    let items: Vec<_> = timeout
        .stream((), &WorkflowContext::new())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(Result::is_ok));
    assert_eq!((outcomes(&tt, "ok"), outcomes(&tt, "timeout")), (1.0, 0.0));
}

#[test]
fn zero_or_overlong_stream_limits_are_build_errors() {
    let b = || TimeoutPrimitive::builder(tta_core::from_sync_fn(|(), _| Ok(()))).timeout(ms(1));
    assert_eq!(
        b().idle(Duration::ZERO).build().unwrap_err(),
        BuildError::Zero { setting: "idle" }
    );
    assert_eq!(
        b().total(Duration::ZERO).build().unwrap_err(),
        BuildError::Zero { setting: "total" }
    );
    assert!(matches!(
        b().total(Duration::from_secs(100_000)).build().unwrap_err(),
        BuildError::TooLong {
            setting: "total",
            ..
        }
    ));
}
