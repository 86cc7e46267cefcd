//! `llm*`: what the OpenAI-compatible client costs over a hand-written reqwest call of
//! the same request, and what the peer client (async-openai) costs, against a loopback
//! provider (the scripted `tta_tests` server), with telemetry on (`tta_apm::init`).
//!
//! - `llm/reqwest_raw`: POST the same JSON with reqwest, parse the body with serde_json,
//!   take the content. `llm/openai_complete`: `OpenAiCompatible::execute`.
//!   `llm/async_openai_complete`: async-openai's `chat().create`, its own types and client.
//! - `llm/reqwest_raw_stream`: POST with `stream: true`, parse the events with
//!   eventsource-stream and serde_json up to `[DONE]`, take each delta.
//!   `llm/openai_stream`: `OpenAiCompatible::stream`, every chunk read.
//!   `llm/async_openai_stream`: `chat().create_stream`, every chunk read.
//! - `llm/*_ttft`: the same three streams, timed from the request to the first content
//!   delta only (the rest of each stream is read untimed, so the connection goes back to
//!   the pool as in the other groups).
//!
//! Every measured body runs in a task on the runtime's one worker, beside the server, as
//! a gateway's handler would: a body polled by criterion's own thread would pay a
//! cross-thread wake-up per chunk, and async-openai, which reads its stream in a task of
//! its own, would not (it measured 6x faster per stream that way, for that reason only).
//! Before timing, each variant's answer is checked to be the same.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt;
use tta_observability_integration::{StreamPrimitive, WorkflowContext};

#[path = "support/llm_clients.rs"]
mod llm_clients;

use llm_clients::{ANSWER, CHUNKS, Clients, request};

/// Runs `f` in a task on the runtime's worker, beside the server.
async fn in_task<F, Fut, T>(clients: &Arc<Clients>, f: F) -> T
where
    F: FnOnce(Arc<Clients>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(f(Arc::clone(clients)))
        .await
        .expect("the task")
}

/// Times `timed` `iters` times in one task, each time after an untimed `other`: both
/// sides of a ratio see the same server, scheduler and pool state, so a loopback round
/// trip's drift within a run (tens of microseconds on this 2-core VM) cancels out of it,
/// as in the `redis` bench.
async fn alternating<A, Fa, B, Fb>(
    clients: &Arc<Clients>,
    iters: u64,
    timed: A,
    other: B,
) -> Duration
where
    A: Fn(Arc<Clients>) -> Fa + Send + 'static,
    Fa: Future + Send,
    B: Fn(Arc<Clients>) -> Fb + Send + 'static,
    Fb: Future + Send,
{
    in_task(clients, move |c| async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            black_box(other(Arc::clone(&c)).await);
            let start = Instant::now();
            black_box(timed(Arc::clone(&c)).await);
            total += start.elapsed();
        }
        total
    })
    .await
}

/// Times `first` (a request up to its first chunk) `iters` times in one task; `rest`
/// reads what is left of each stream, untimed.
async fn time_to_first<S, F, Fs, R, Fr>(
    clients: &Arc<Clients>,
    iters: u64,
    first: F,
    rest: R,
) -> Duration
where
    F: Fn(Arc<Clients>) -> Fs + Send + 'static,
    Fs: Future<Output = S> + Send,
    R: Fn(S) -> Fr + Send + 'static,
    Fr: Future<Output = ()> + Send,
    S: Send,
{
    in_task(clients, move |c| async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            let stream = black_box(first(Arc::clone(&c)).await);
            total += start.elapsed();
            rest(stream).await;
        }
        total
    })
    .await
}

fn llm(c: &mut Criterion) {
    let (rt, _guard) = tta_benches::runtime_with_telemetry();
    let (_servers, clients) = rt.block_on(Clients::start());
    let clients = Arc::new(clients);

    // The three read the same answers.
    rt.block_on(async {
        for answer in [
            in_task(&clients, |c| async move { c.raw_call().await }).await,
            in_task(&clients, |c| async move { c.tta_call().await }).await,
            in_task(&clients, |c| async move { c.peer_call().await }).await,
        ] {
            assert_eq!(answer, ANSWER);
        }
        let text: usize = (0..CHUNKS).map(|i| format!("tok{i} ").len()).sum();
        for streamed in [
            in_task(&clients, |c| async move { c.raw_stream().await }).await,
            in_task(&clients, |c| async move { c.tta_stream().await }).await,
            in_task(&clients, |c| async move { c.peer_stream().await }).await,
        ] {
            assert_eq!(streamed, text);
        }
    });

    // Each variant alternates with an untimed call of another: the raw call with tta's,
    // the clients with the raw call.
    macro_rules! paired {
        ($group:expr, $id:literal, $timed:ident, $other:ident) => {
            $group.bench_function($id, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    alternating(
                        &clients,
                        iters,
                        |c| async move { c.$timed().await },
                        |c| async move { c.$other().await },
                    )
                });
            });
        };
    }
    let mut group = c.benchmark_group("llm");
    paired!(group, "reqwest_raw", raw_call, tta_call);
    paired!(group, "openai_complete", tta_call, raw_call);
    paired!(group, "async_openai_complete", peer_call, raw_call);
    paired!(group, "reqwest_raw_stream", raw_stream, tta_stream);
    paired!(group, "openai_stream", tta_stream, raw_stream);
    paired!(group, "async_openai_stream", peer_stream, raw_stream);
    group.bench_function("reqwest_raw_ttft", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            time_to_first(
                &clients,
                iters,
                |c| async move { c.raw_first().await.1 },
                |mut events| async move { while events.next().await.is_some() {} },
            )
        });
    });
    group.bench_function("openai_ttft", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            time_to_first(
                &clients,
                iters,
                |c| async move {
                    c.stream
                        .stream(request(), &WorkflowContext::new())
                        .await
                        .expect("a stream")
                },
                |mut body| async move { while body.next().await.is_some() {} },
            )
        });
    });
    group.bench_function("async_openai_ttft", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            time_to_first(
                &clients,
                iters,
                |c| async move {
                    // async-openai resolves at the response's head: its first chunk is
                    // one more read.
                    let mut body = c.peer_open().await;
                    black_box(body.next().await.expect("a chunk").expect("a chunk"));
                    body
                },
                |mut body| async move { while body.next().await.is_some() {} },
            )
        });
    });
    group.finish();
}

criterion_group!(benches, llm);
criterion_main!(benches);
