//! Streams through the router: fallback before the first chunk, an attempt final after
//! it, and exact cost for every way a stream ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tta_core::{
    AttemptKind, Error, ErrorClass, FnPrimitive, ReportsUsage, StreamPrimitive, Streamable,
    Telemetry, TokenUsage, Usd, WorkflowContext,
};
use tta_router::{Price, Route, RouterPrimitive};

use crate::{Completion, pipeline};

/// One piece of a streamed completion; the last one reports the usage.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Piece {
    route: &'static str,
    usage: Option<TokenUsage>,
}

impl ReportsUsage for Piece {
    fn token_usage(&self) -> Option<TokenUsage> {
        self.usage
    }
}

impl Streamable for Completion {
    type Chunk = Piece;
}

/// How a simulated streaming provider behaves.
#[derive(Clone, Copy)]
enum Script {
    /// The first chunk after `first` ms, then `n` chunks 10 ms apart, the last with usage.
    Full { first: u64, n: u32 },
    /// `n` chunks 10 ms apart, then a connection reset (no usage reported).
    CutAfter { n: u32 },
    /// Fails before its first chunk.
    Refuses(ErrorClass),
    /// `n` chunks 10 ms apart, then nothing, ever.
    StallsAfter { n: u32 },
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const USAGE: TokenUsage = TokenUsage::new(1_000, 500);

fn streaming_route(
    name: &'static str,
    script: Script,
    calls: &Arc<AtomicUsize>,
    t: &Telemetry,
) -> Route<String, Completion> {
    let calls = Arc::clone(calls);
    let stream = FnPrimitive::stream_builder(move |_q: String, _cx| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let (first, n, cut) = match script {
                Script::Full { first, n } => (first, n, false),
                Script::CutAfter { n } => (10, n, true),
                Script::StallsAfter { n } => {
                    let chunks = futures_util::stream::iter(0..n).then(move |_| async move {
                        tokio::time::sleep(ms(10)).await;
                        Ok(Piece {
                            route: name,
                            usage: None,
                        })
                    });
                    return Ok(chunks.chain(futures_util::stream::pending()).boxed());
                }
                Script::Refuses(class) => {
                    return Err(Error::msg("refused").with_class(class));
                }
            };
            Ok(futures_util::stream::unfold(0u32, move |i| async move {
                match i {
                    i if i < n => {
                        tokio::time::sleep(ms(if i == 0 { first } else { 10 })).await;
                        let usage = (!cut && i == n - 1).then_some(USAGE);
                        Some((Ok(Piece { route: name, usage }), i + 1))
                    }
                    i if cut && i == n => {
                        tokio::time::sleep(ms(10)).await;
                        Some((
                            Err(Error::msg("connection reset").with_class(ErrorClass::Unavailable)),
                            i + 1,
                        ))
                    }
                    _ => None,
                }
            })
            .boxed())
        }
    })
    .name(name)
    .telemetry(t)
    .build()
    .unwrap();
    let call = tta_core::from_fn(move |_q: String, _| async move {
        Ok::<_, Error>(Completion {
            route: name,
            usage: USAGE,
        })
    });
    // 2^-12 and 2^-11 dollars a token: every cost is exact in binary, so the f64
    // counters can equal the ledger exactly.
    Route::new(name, call)
        .stream_with(stream)
        .price(Price::per_1k_tokens(0.244140625, 0.48828125))
}

async fn collect(
    router: &RouterPrimitive<String, Completion>,
    cx: &WorkflowContext,
) -> Result<Vec<Result<Piece, Error>>, Error> {
    Ok(router.stream("q".to_owned(), cx).await?.collect().await)
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_chunk_falls_back_before_any_chunk_reaches_the_caller() {
    let (tt, t) = pipeline();
    let (slow_calls, fast_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(streaming_route(
            "slow",
            Script::Full { first: 5_000, n: 3 },
            &slow_calls,
            &t,
        ))
        .route(streaming_route(
            "fast",
            Script::Full { first: 50, n: 4 },
            &fast_calls,
            &t,
        ))
        .attempt_timeout(ms(500))
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    let started = Instant::now();
    let pieces = collect(&router, &cx).await.unwrap();
    assert_eq!(started.elapsed(), ms(500 + 50 + 30));
    assert_eq!(pieces.len(), 4);
    assert!(
        pieces.iter().all(|p| p.as_ref().unwrap().route == "fast"),
        "the caller sees only the second route's chunks"
    );
    assert_eq!(
        (
            slow_calls.load(Ordering::SeqCst),
            fast_calls.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    let entries = cx.ledger().entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].kind, entries[0].estimated),
        (AttemptKind::Fallback, false)
    );
    assert_eq!(
        entries[0].usage, USAGE,
        "the final chunk's usage is not lost"
    );
    assert_eq!(
        tt.counter("tta.router.cost.usd", &[("router", "llm")]),
        cx.ledger().totals().spent.dollars()
    );
    assert_eq!(
        tt.counter(
            "tta.router.errors",
            &[("route", "slow"), ("error_class", "unavailable")]
        ),
        1.0
    );
    let ttft = tt
        .histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            &[("gen_ai.request.model", "fast")],
        )
        .expect("time to first chunk recorded");
    assert!(matches!(
        ttft,
        tta_tests::telemetry::PointValue::Histogram { count: 1, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_cut_after_the_first_chunk_is_final_billed_as_interrupted_and_counted_against_health() {
    let (tt, t) = pipeline();
    let (cut_calls, backup_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(streaming_route(
            "cut",
            Script::CutAfter { n: 5 },
            &cut_calls,
            &t,
        ))
        .route(streaming_route(
            "backup",
            Script::Full { first: 10, n: 2 },
            &backup_calls,
            &t,
        ))
        .failure_threshold(1)
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    let items = collect(&router, &cx).await.unwrap();
    assert_eq!(items.len(), 6, "5 chunks, then the error");
    assert!(items[..5].iter().all(Result::is_ok));
    let err = items[5].as_ref().unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Unavailable,
        "the body yields the error, never a clean end"
    );
    assert_eq!(
        backup_calls.load(Ordering::SeqCst),
        0,
        "no fallback after the first chunk"
    );
    let entries = cx.ledger().entries();
    assert_eq!(entries.len(), 1, "billed once");
    let entry = &entries[0];
    assert_eq!(entry.kind, AttemptKind::InterruptedStream);
    assert!(
        entry.estimated,
        "no usage was reported: an estimate, marked"
    );
    assert_eq!(entry.usage.output, 5, "one token per chunk received");
    assert!(entry.spent > Usd::ZERO);
    assert!(r_cooling(&router, 0), "health counted the cut");
    assert_eq!(
        tt.counter("tta.router.cost.usd", &[("router", "llm")]),
        cx.ledger().totals().spent.dollars(),
        "the counters equal the ledger"
    );
    let interruptions = |route| {
        tt.counter(
            "tta.router.stream.interruptions",
            &[("router", "llm"), ("route", route)],
        )
    };
    assert_eq!((interruptions("cut"), interruptions("backup")), (1.0, 0.0));
    assert_eq!(router.totals().interrupted, 1);
    // The next request falls back at once: the cut route is cooling.
    let next = collect(&router, &WorkflowContext::new()).await.unwrap();
    assert!(next.iter().all(|p| p.as_ref().unwrap().route == "backup"));
}

fn r_cooling(router: &RouterPrimitive<String, Completion>, route: usize) -> bool {
    router.stats()[route].cooling
}

#[tokio::test(start_paused = true)]
async fn a_refusal_before_the_first_chunk_follows_the_call_rules() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let router = RouterPrimitive::builder()
        .route(streaming_route(
            "bad",
            Script::Refuses(ErrorClass::InvalidRequest),
            &calls,
            &t,
        ))
        .route(streaming_route(
            "other",
            Script::Full { first: 10, n: 1 },
            &calls,
            &t,
        ))
        .telemetry(&t)
        .build()
        .unwrap();
    let err = collect(&router, &WorkflowContext::new()).await.unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::InvalidRequest,
        "returned at once, as for calls"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let router = RouterPrimitive::builder()
        .route(streaming_route(
            "limited",
            Script::Refuses(ErrorClass::RateLimited { retry_after: None }),
            &calls,
            &t,
        ))
        .route(streaming_route(
            "other",
            Script::Full { first: 10, n: 2 },
            &calls,
            &t,
        ))
        .telemetry(&t)
        .build()
        .unwrap();
    let pieces = collect(&router, &WorkflowContext::new()).await.unwrap();
    assert!(
        pieces.iter().all(|p| p.as_ref().unwrap().route == "other"),
        "falls back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_body_bills_what_was_received_and_frees_the_route() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let router = RouterPrimitive::builder()
        .route(streaming_route(
            "long",
            Script::Full { first: 10, n: 100 },
            &calls,
            &t,
        ))
        .failure_threshold(1)
        .telemetry(&t)
        .build()
        .unwrap();
    let cx = WorkflowContext::new();
    let mut streamed = router.stream("q".to_owned(), &cx).await.unwrap();
    for _ in 0..3 {
        streamed.next().await.unwrap().unwrap();
    }
    drop(streamed);
    let entries = cx.ledger().entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, AttemptKind::InterruptedStream);
    assert_eq!(entries[0].usage.output, 3);
    assert!(
        !r_cooling(&router, 0),
        "the caller's drop is not the route's failure"
    );
}

#[tokio::test(start_paused = true)]
async fn only_routes_that_stream_serve_a_stream() {
    let (_tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let call_only = tta_core::from_fn(|_q: String, _| async move {
        Ok::<_, Error>(Completion {
            route: "call_only",
            usage: USAGE,
        })
    });
    let router = RouterPrimitive::builder()
        .route(Route::new("call_only", call_only))
        .route(streaming_route(
            "streams",
            Script::Full { first: 10, n: 1 },
            &calls,
            &t,
        ))
        .telemetry(&t)
        .build()
        .unwrap();
    let pieces = collect(&router, &WorkflowContext::new()).await.unwrap();
    assert_eq!(pieces[0].as_ref().unwrap().route, "streams");
    // Calls still use every route, in order.
    let out =
        tta_core::WorkflowPrimitive::execute(&router, "q".to_owned(), &WorkflowContext::new())
            .await
            .unwrap();
    assert_eq!(out.route, "call_only");
    // A router with no streaming route says so, as an invalid request: not "cooling".
    let calls_only = RouterPrimitive::builder()
        .route(Route::new(
            "call_only",
            tta_core::from_fn(|_q: String, _| async move {
                Ok::<_, Error>(Completion {
                    route: "call_only",
                    usage: USAGE,
                })
            }),
        ))
        .build()
        .unwrap();
    let err = collect(&calls_only, &WorkflowContext::new())
        .await
        .unwrap_err();
    assert!(
        err.is_no_route() && err.class() == ErrorClass::InvalidRequest,
        "{err}"
    );
    assert!(err.to_string().contains("no route of this router streams"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_streams_with_random_cuts_keep_the_ledgers_exact() {
    use rand::{Rng, SeedableRng};
    let (tt, t) = pipeline();
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Arc::new(
        RouterPrimitive::builder()
            .name("llm")
            .route(streaming_route(
                "full",
                Script::Full { first: 1, n: 3 },
                &calls,
                &t,
            ))
            .route(streaming_route(
                "cut",
                Script::CutAfter { n: 2 },
                &calls,
                &t,
            ))
            .strategy(tta_router::Strategy::Weighted)
            .seed(7)
            .failure_threshold(u32::MAX)
            .telemetry(&t)
            .build()
            .unwrap(),
    );
    let shared = WorkflowContext::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (router, cx) = (Arc::clone(&router), shared.child_scope());
            let drop_after: Option<usize> = rng.random_bool(0.2).then(|| rng.random_range(1..3));
            tokio::spawn(async move {
                let (request, scope) = cx.with_ledger_scope();
                if let Ok(mut streamed) = router.stream("q".to_owned(), &request).await {
                    let mut taken = 0;
                    while let Some(item) = streamed.next().await {
                        taken += 1;
                        if item.is_err() || drop_after == Some(taken) {
                            break;
                        }
                    }
                }
                scope.totals().spent
            })
        })
        .collect();
    let mut sum = Usd::ZERO;
    for task in tasks {
        sum += task.await.unwrap();
    }
    assert_eq!(
        sum,
        shared.ledger().totals().spent,
        "per-request ledgers sum to the shared one"
    );
    assert_eq!(
        tt.counter("tta.router.cost.usd", &[("router", "llm")]),
        sum.dollars(),
        "and equal the Prometheus cost counters"
    );
    assert_eq!(
        shared.ledger().totals().entries,
        1_000,
        "one entry per stream, never two"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_stalls_is_cut_at_the_idle_timeout_and_opens_its_routes_breaker() {
    let (tt, t) = pipeline();
    let (stall_calls, steady_calls) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let router = RouterPrimitive::builder()
        .name("llm")
        .route(streaming_route(
            "stalls",
            Script::StallsAfter { n: 1 },
            &stall_calls,
            &t,
        ))
        .route(streaming_route(
            "steady",
            Script::Full { first: 10, n: 3 },
            &steady_calls,
            &t,
        ))
        .idle_timeout(ms(200))
        .telemetry(&t)
        .build()
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let pieces = collect(&router, &WorkflowContext::new()).await.unwrap();
        assert_eq!(started.elapsed(), ms(10 + 200));
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert_eq!(pieces[0].as_ref().unwrap().route, "stalls");
        assert!(pieces[1].as_ref().unwrap_err().is_timeout(), "{pieces:?}");
    }
    // Three stalls in a row: the breaker holds the route, and the steady one answers.
    let pieces = collect(&router, &WorkflowContext::new()).await.unwrap();
    assert!(
        pieces.iter().all(|p| p.as_ref().unwrap().route == "steady"),
        "{pieces:?}"
    );
    assert_eq!(stall_calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        tt.counter("tta.router.stream.interruptions", &[("route", "stalls")]),
        3.0
    );
    assert_eq!(
        tt.counter(
            "tta.router.errors",
            &[("route", "stalls"), ("error_class", "unavailable")]
        ),
        3.0
    );
    // A stream whose chunks keep coming within the limit is not cut, however long.
    let slow = RouterPrimitive::builder()
        .name("slow")
        .route(streaming_route(
            "steady",
            Script::Full { first: 10, n: 50 },
            &steady_calls,
            &t,
        ))
        .idle_timeout(ms(20))
        .telemetry(&t)
        .build()
        .unwrap();
    let pieces = collect(&slow, &WorkflowContext::new()).await.unwrap();
    assert_eq!(pieces.len(), 50);
    assert!(pieces.iter().all(Result::is_ok));
}
