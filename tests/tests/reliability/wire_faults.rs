//! Provider faults on the wire: each scenario is a scripted loopback provider (OpenAI's
//! protocol, `tta_tests::llm_server`, or a raw socket for a reset) called through the
//! real `OpenAiCompatible` client, inside a timeout around a router over it and a
//! healthy backup, for calls and for streams. Every request is answered or ends in a
//! typed error of the scenario's class, within the timeout and its grace, with at most
//! one attempt per route, and the ledgers equal the Prometheus cost counter exactly.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tta_observability_integration::llm::{ChatRequest, ChatResponse, Message, OpenAiCompatible};
use tta_observability_integration::router::{Price, Route, RouterPrimitive};
use tta_observability_integration::timeout::TimeoutPrimitive;
use tta_observability_integration::{
    AttemptKind, Error, StreamPrimitive, Telemetry, Usd, WorkflowContext,
};
use tta_tests::faults::{
    Faulty, broken, chunks, empty_or_html, error, filtered, flapping, healthy, malformed, refused,
    resetting, slow,
};
use tta_tests::llm_server::{End, LlmServer, Reply};
use tta_tests::telemetry::PromTelemetry;

const REQUESTS: usize = 6;
const TIMEOUT: Duration = Duration::from_millis(1_500);
const GRACE: Duration = Duration::from_millis(300);
const ATTEMPT: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(300);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a scenario's requests got.
#[derive(Debug, Default)]
struct Seen {
    answered: usize,
    /// What each failed request got (a call's error, or a stream's error item): its
    /// class, or `timeout` for a timeout's error.
    failed: Vec<&'static str>,
    /// Requests whose ledger has a billed failed attempt.
    billed_failures: usize,
    /// What the ledgers billed to the primary.
    primary_spent: Usd,
    /// What the ledgers billed each route, added up in dollars in the order the
    /// attempts were billed, as its Prometheus series adds them.
    dollars: std::collections::BTreeMap<String, f64>,
}

fn client(url: &str, model: &str, window: u64, t: &Telemetry) -> OpenAiCompatible {
    OpenAiCompatible::builder(url)
        .name(model)
        .model(model)
        .price(Price::per_1k_tokens(0.25, 0.5))
        .context_window(window)
        .telemetry(t)
        .build()
        .unwrap()
}

/// Runs `REQUESTS` requests, 20 ms apart, calls or streams, through a timeout around a
/// router over the faulty primary and a healthy backup, and checks every promise.
async fn scenario(name: &str, primary: &Faulty, stream: bool) -> Seen {
    scenario_with(name, primary, stream, false).await
}

/// [`scenario`]; with `fall_back_on_anything`, the router falls back on every error
/// (a content filter included), as a user may configure it.
async fn scenario_with(
    name: &str,
    primary: &Faulty,
    stream: bool,
    fall_back_on_anything: bool,
) -> Seen {
    let prom = PromTelemetry::new();
    let t = Telemetry::new(prom.meter_provider(), prom.tracer_provider());
    let backup = LlmServer::start().await;
    backup.respond_with(healthy("backup-1"));
    let mut router = RouterPrimitive::builder();
    if fall_back_on_anything {
        router = router.fallback_on(|_| true);
    }
    let router = router
        .name("llm")
        .route(Route::client(
            "primary",
            client(&primary.url, "primary-1", 8_000, &t),
        ))
        .route(Route::client(
            "backup",
            client(&backup.base_url(), "backup-1", 128_000, &t),
        ))
        .attempt_timeout(ATTEMPT)
        .idle_timeout(IDLE)
        .failure_threshold(3)
        .usage_reported()
        .telemetry(&t)
        .build()
        .unwrap();
    let stack = TimeoutPrimitive::builder(router)
        .timeout(TIMEOUT)
        .grace(GRACE)
        .idle(IDLE)
        .telemetry(&t)
        .build()
        .unwrap();
    let mut seen = Seen::default();
    for i in 0..REQUESTS {
        let request =
            ChatRequest::new(vec![Message::user(format!("{name}: request {i}"))]).max_tokens(64);
        let cx = WorkflowContext::new();
        let started = Instant::now();
        let what = |e: &Error| {
            if e.is_timeout() {
                "timeout"
            } else {
                e.class().as_str()
            }
        };
        let outcome: Result<(), &'static str> = if stream {
            match stack.stream(request, &cx).await {
                Err(e) => Err(what(&e)),
                Ok(streamed) => {
                    let items: Vec<_> = streamed.collect().await;
                    match items.iter().find_map(|item| item.as_ref().err()) {
                        Some(e) => Err(what(e)),
                        None => Ok(()),
                    }
                }
            }
        } else {
            let out: Result<ChatResponse, _> = stack.execute(request, &cx).await;
            out.map(drop).map_err(|e| what(&e))
        };
        let took = started.elapsed();
        assert!(took <= TIMEOUT + GRACE, "{name}: request {i} took {took:?}");
        match outcome {
            Ok(()) => seen.answered += 1,
            Err(class) => seen.failed.push(class),
        }
        let entries = cx.ledger().entries();
        assert!(
            entries.len() <= 2,
            "{name}: request {i} billed {} attempts: {entries:?}",
            entries.len()
        );
        if entries.iter().any(|e| e.kind == AttemptKind::FailedBilled) {
            seen.billed_failures += 1;
        }
        for entry in &entries {
            if &*entry.source == "primary" {
                seen.primary_spent += entry.spent;
            }
            *seen.dollars.entry(entry.source.to_string()).or_default() += entry.spent.dollars();
        }
        tokio::time::sleep(ms(20)).await;
    }
    assert_eq!(
        seen.answered + seen.failed.len(),
        REQUESTS,
        "{name}: no request is lost"
    );
    let attempts = prom.sum("tta_router_decisions_total", &[("router", "llm")]) as usize;
    assert!(
        attempts <= 2 * REQUESTS,
        "{name}: at most one attempt per route and request ({attempts})"
    );
    assert!(
        primary.calls() <= REQUESTS,
        "{name}: the primary was called {} times for {REQUESTS} requests",
        primary.calls()
    );
    // Stream settlements land when their bodies end; give the last a moment.
    tokio::time::sleep(ms(50)).await;
    for route in ["primary", "backup"] {
        assert_eq!(
            prom.sum(
                "tta_router_cost_usd_total",
                &[("router", "llm"), ("route", route)]
            ),
            seen.dollars.get(route).copied().unwrap_or(0.0),
            "{name}: {route}: the ledgers equal its Prometheus cost series exactly"
        );
    }
    seen
}

fn all_answered(name: &str, seen: &Seen) {
    assert_eq!(seen.answered, REQUESTS, "{name}: {seen:?}");
}

/// A fault after the first chunk cannot fall back: the first three requests fail with
/// `class` (their streams end in an error item, never a clean truncated answer), then
/// the breaker holds the primary and the backup answers the rest.
fn failed_until_the_breaker_opens(name: &str, seen: &Seen, class: &str) {
    assert_eq!(seen.failed, [class; 3], "{name}: {seen:?}");
    assert_eq!(seen.answered, REQUESTS - 3, "{name}: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_falls_back_and_the_primary_waits_out_its_hint() {
    for stream in [false, true] {
        let primary =
            Faulty::scripted(|_, _| error(429, &[("retry-after", "30")], "rate_limit_exceeded"))
                .await;
        let seen = scenario("429 + retry-after", &primary, stream).await;
        all_answered("429 + retry-after", &seen);
        assert_eq!(primary.calls(), 1, "the hint holds the route");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_without_a_hint_falls_back_until_the_breaker_holds_the_primary() {
    for stream in [false, true] {
        let primary = Faulty::scripted(|_, _| error(429, &[], "rate_limit_exceeded")).await;
        let seen = scenario("429", &primary, stream).await;
        all_answered("429", &seen);
        assert!(primary.calls() <= 3, "three failures open the breaker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_before_the_response_falls_back() {
    for stream in [false, true] {
        let primary = resetting().await;
        let seen = scenario("reset", &primary, stream).await;
        all_answered("reset", &seen);
        assert!(primary.calls() >= 1 && primary.calls() <= 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_never_answers_is_cut_at_the_attempt_timeout_and_falls_back() {
    for stream in [false, true] {
        let primary = Faulty::scripted(|_, _| Reply::Hang).await;
        let seen = scenario("hang", &primary, stream).await;
        all_answered("hang", &seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_chunk_falls_back_before_any_chunk_reached_the_caller() {
    for stream in [false, true] {
        let primary = Faulty::scripted(|_, stream| slow(stream, ms(1_000))).await;
        let seen = scenario("slow first chunk", &primary, stream).await;
        all_answered("slow first chunk", &seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_answer_is_an_error_of_the_stream_and_billed_once() {
    let primary = Faulty::scripted(|_, stream| broken(stream, End::Cut, false, "")).await;
    let seen = scenario("cut", &primary, true).await;
    failed_until_the_breaker_opens("cut", &seen, "unavailable");
    // A call whose body is cut (here: empty) falls back instead.
    let primary = Faulty::scripted(|_, stream| broken(stream, End::Cut, false, "")).await;
    all_answered("cut call", &scenario("cut call", &primary, false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stalled_after_its_first_chunk_is_cut_at_the_idle_limit() {
    let primary = Faulty::scripted(|_, stream| broken(stream, End::Stall, false, "")).await;
    let seen = scenario("stall", &primary, true).await;
    // Each stall is cut at the router's idle limit (the timeout's is the same, and the
    // router's wait started first) and reaches its caller as a timeout; it counts as
    // the route's failure, so three open the primary's breaker.
    failed_until_the_breaker_opens("stall", &seen, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunk_is_an_error_of_the_stream_and_a_malformed_answer_falls_back() {
    let primary = Faulty::scripted(|_, stream| malformed(stream)).await;
    let seen = scenario("malformed", &primary, true).await;
    failed_until_the_breaker_opens("malformed", &seen, "unavailable");
    let primary = Faulty::scripted(|_, _| malformed(false)).await;
    all_answered(
        "malformed call",
        &scenario("malformed call", &primary, false).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_its_terminator_is_an_error_of_the_stream() {
    let primary =
        Faulty::scripted(|_, _| Reply::events(&chunks("primary-1"), ms(5), false, End::Close))
            .await;
    let seen = scenario("no [DONE]", &primary, true).await;
    failed_until_the_breaker_opens("no [DONE]", &seen, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_length_error_falls_back_to_the_larger_window() {
    for stream in [false, true] {
        let primary = Faulty::scripted(|_, _| error(400, &[], "context_length_exceeded")).await;
        let seen = scenario("context length", &primary, stream).await;
        all_answered("context length", &seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_filter_finish_reaches_the_caller_billed_and_does_not_fall_back() {
    for stream in [false, true] {
        let primary = Faulty::scripted(|_, stream| filtered(stream)).await;
        let seen = scenario("content filter", &primary, stream).await;
        assert_eq!(seen.failed, ["content_filter"; REQUESTS], "{seen:?}");
        assert_eq!(
            primary.calls(),
            REQUESTS,
            "a filtered prompt is not a route's fault"
        );
        if !stream {
            assert_eq!(
                seen.billed_failures, REQUESTS,
                "each filtered answer is billed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_primary_is_used_when_it_answers_and_fallen_back_from_when_it_does_not() {
    for stream in [false, true] {
        let primary = Faulty::scripted(flapping).await;
        let seen = scenario("flapping", &primary, stream).await;
        all_answered("flapping", &seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billed_failure_then_its_fallback_bill_each_route_its_own_cost() {
    // The primary bills a filtered answer; a router told to fall back on anything then
    // asks the backup. Each route's counter holds what its attempts billed.
    for stream in [false, true] {
        let primary = Faulty::scripted(|_, stream| filtered(stream)).await;
        let seen = scenario_with("billed failure", &primary, stream, true).await;
        if stream {
            // The filter shows only after the first chunk: too late to fall back.
            assert_eq!(seen.failed, ["content_filter"; REQUESTS], "{seen:?}");
        } else {
            all_answered("billed failure", &seen);
            assert_eq!(seen.billed_failures, REQUESTS, "{seen:?}");
            assert!(
                seen.primary_spent > Usd::ZERO,
                "the filtered answers were billed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_200_and_an_html_502_fall_back() {
    for stream in [false, true] {
        let primary = Faulty::scripted(|n, _| empty_or_html(n)).await;
        let seen = scenario("empty 200, html 502", &primary, stream).await;
        all_answered("empty 200, html 502", &seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_on_one_route_falls_back() {
    for stream in [false, true] {
        let primary = refused();
        let seen = scenario("refused", &primary, stream).await;
        all_answered("refused", &seen);
    }
}
