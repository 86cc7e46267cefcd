//! Streamed executions: the head at the first chunk, the span and metrics at the body's
//! end, cancellation when the body is dropped.

use std::time::Duration;

use futures_util::StreamExt;
use tta_core::{
    BoxStreamPrimitive, Error, ErrorClass, FnPrimitive, OneChunk, StreamPrimitive, Telemetry,
    WorkflowContext, from_stream_fn, from_sync_fn, semconv,
};
use tta_tests::telemetry::TestTelemetry;

use crate::DropCounter;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Three chunks a second apart; `drops` counts the provider stream's drop.
fn ticker(t: &Telemetry, drops: &DropCounter) -> impl StreamPrimitive<u32, Chunk = u32> + use<> {
    let drops = drops.clone();
    FnPrimitive::stream_builder(move |n: u32, _cx| {
        let guard = drops.guard();
        async move {
            Ok(futures_util::stream::unfold(
                (0, guard),
                move |(i, guard)| async move {
                    if i == n {
                        return None;
                    }
                    tokio::time::sleep(secs(1)).await;
                    Some((Ok(i), (i + 1, guard)))
                },
            ))
        }
    })
    .name("ticker")
    .telemetry(t)
    .build()
    .unwrap()
}

fn outcome(tt: &TestTelemetry, outcome: &str) -> f64 {
    tt.counter(
        semconv::PRIMITIVE_EXECUTIONS,
        &[("primitive", "ticker"), ("outcome", outcome)],
    )
}

#[tokio::test(start_paused = true)]
async fn the_head_resolves_at_the_first_chunk_and_the_span_ends_with_the_body() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let drops = DropCounter::default();
    let ticker = ticker(&t, &drops);
    let started = tokio::time::Instant::now();
    let streamed = ticker.stream(3, &WorkflowContext::new()).await.unwrap();
    assert_eq!(
        started.elapsed(),
        secs(1),
        "time to first chunk is the head's duration"
    );
    assert_eq!(streamed.first(), Some(&0));
    assert!(tt.spans_named("fn").is_empty(), "the span is still open");
    assert_eq!(outcome(&tt, "ok"), 0.0);
    let chunks: Vec<u32> = streamed.map(Result::unwrap).collect().await;
    assert_eq!(chunks, [0, 1, 2]);
    assert_eq!(started.elapsed(), secs(3));
    let spans = tt.spans_named("fn");
    assert_eq!(spans.len(), 1, "the span ended with the body");
    assert!(
        spans[0]
            .events
            .iter()
            .any(|e| e.name == semconv::EVENT_FIRST_CHUNK),
        "a span event marks the first chunk"
    );
    assert_eq!(outcome(&tt, "ok"), 1.0);
    let Some(tta_tests::telemetry::PointValue::Histogram { sum, .. }) = tt.histogram(
        semconv::PRIMITIVE_DURATION,
        &[("primitive", "ticker"), ("outcome", "ok")],
    ) else {
        panic!("no duration");
    };
    assert_eq!(sum, 3.0, "the duration covers the whole stream");
    assert_eq!(drops.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_body_cancels_the_stream_below_and_records_cancelled() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let drops = DropCounter::default();
    let ticker = ticker(&t, &drops);
    let mut streamed = ticker.stream(100, &WorkflowContext::new()).await.unwrap();
    assert_eq!(streamed.next().await.unwrap().unwrap(), 0);
    assert_eq!(streamed.next().await.unwrap().unwrap(), 1);
    assert_eq!(drops.dropped(), 0);
    drop(streamed);
    assert_eq!(
        drops.dropped(),
        1,
        "the provider's stream is dropped with the body"
    );
    assert_eq!((outcome(&tt, "cancelled"), outcome(&tt, "ok")), (1.0, 0.0));
    assert_eq!(tt.spans_named("fn").len(), 1, "the span ended");
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_context_ends_the_body_with_one_cancelled_error() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let drops = DropCounter::default();
    let ticker = ticker(&t, &drops);
    let cx = WorkflowContext::new();
    let mut streamed = ticker.stream(100, &cx).await.unwrap();
    streamed.next().await.unwrap().unwrap();
    let canceller = cx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        canceller.cancel();
    });
    assert_eq!(streamed.next().await.unwrap().unwrap(), 1);
    let err = streamed.next().await.unwrap().unwrap_err();
    assert!(err.is_cancelled());
    assert!(
        streamed.next().await.is_none(),
        "the body ends after its error"
    );
    assert_eq!(outcome(&tt, "cancelled"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn an_error_item_ends_the_body_and_is_the_outcome() {
    let tt = TestTelemetry::new();
    let t = Telemetry::new(tt.meter_provider(), tt.tracer_provider());
    let cut = FnPrimitive::stream_builder(|(), _cx| async {
        Ok(futures_util::stream::iter([
            Ok(1),
            Ok(2),
            Err(Error::msg("connection reset").with_class(ErrorClass::Unavailable)),
            Ok(3),
        ]))
    })
    .name("ticker")
    .telemetry(&t)
    .build()
    .unwrap();
    let items: Vec<_> = cut
        .stream((), &WorkflowContext::new())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 3, "nothing after the error");
    assert!(
        items[2]
            .as_ref()
            .is_err_and(|e| e.class() == ErrorClass::Unavailable)
    );
    assert_eq!((outcome(&tt, "error"), outcome(&tt, "ok")), (1.0, 0.0));
}

#[tokio::test]
async fn a_stream_that_fails_or_ends_before_its_first_chunk_is_an_error_of_the_head() {
    let failing = from_stream_fn(|(), _cx| async {
        Ok(futures_util::stream::iter([Err::<u8, _>(
            Error::msg("429").with_class(ErrorClass::RateLimited { retry_after: None }),
        )]))
    });
    let err = failing
        .stream((), &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(
        err.class().is_rate_limited(),
        "a router can fall back on it"
    );
    let empty =
        from_stream_fn(|(), _cx| async { Ok(futures_util::stream::empty::<Result<u8, Error>>()) });
    let err = empty.stream((), &WorkflowContext::new()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unavailable);
    let refused = from_stream_fn(|(), _cx| async {
        Err::<futures_util::stream::Empty<Result<u8, Error>>, _>(
            Error::msg("401").with_class(ErrorClass::Auth),
        )
    });
    assert_eq!(
        refused
            .stream((), &WorkflowContext::new())
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Auth
    );
}

#[tokio::test]
async fn a_calling_primitive_streams_only_through_the_explicit_one_chunk_adapter() {
    let whole = BoxStreamPrimitive::new(OneChunk::new(from_sync_fn(|q: String, _| Ok(q.len()))));
    assert_eq!(whole.name(), "fn");
    let chunks: Vec<usize> = whole
        .clone()
        .stream("four".into(), &WorkflowContext::new())
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(chunks, [4]);
    assert!(format!("{whole:?}").starts_with("BoxStreamPrimitive"));
}
