//! The provider faults of `tests/reliability/wire_faults.rs`, through the gateway binary:
//! a faulty primary and a healthy backup behind model `chat`, six requests per scenario
//! over HTTP, calls and streams. Every request is answered or gets OpenAI's error (a
//! status and code, or a stream's error event instead of `[DONE]`) within the time
//! limits; no route is asked more than once per request; the backup's
//! `tta_router_cost_usd_total`, scraped from `/metrics`, is exactly what its answers
//! billed, and the primary's is whole replies only, never more than it answered.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tta_tests::faults::{
    Faulty, broken, chunks, empty_or_html, error, filtered, flapping, good, malformed, refused,
    resetting, slow,
};
use tta_tests::llm_server::{End, Reply};
use tta_tests::telemetry::sample_sum;

use crate::{ACME_KEY, Process, keys_and_tenants, ms};

const REQUESTS: usize = 6;
/// The gateway's total limit for a request, and how late an answer may be beyond it.
const TOTAL: Duration = Duration::from_millis(1_500);
const GRACE: Duration = Duration::from_millis(500);
/// What one reply of 100 prompt and 20 completion tokens costs at $0.25 / $0.50 per 1k.
const REPLY_USD: f64 = 0.035;

/// What a scenario's six requests must get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Every one answered.
    Answered,
    /// The first three fail with this code (the fault shows after the first chunk), then
    /// the breaker holds the primary and the backup answers.
    FailedUntilTheBreakerOpens(&'static str),
    /// Every one fails with this code.
    Failed(&'static str),
}

fn config(primary: &str, backup: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"

[providers.primary]
kind = "openai"
base_url = "{primary}"
[providers.primary.models.primary-1]
input_per_1k = 0.25
output_per_1k = 0.5
context_window = 8000

[providers.backup]
kind = "openai"
base_url = "{backup}"
[providers.backup.models.backup-1]
input_per_1k = 0.25
output_per_1k = 0.5
context_window = 128000

[models.chat]
attempt_timeout_ms = 400
failure_threshold = 3
routes = [{{ provider = "primary", model = "primary-1" }}, {{ provider = "backup", model = "backup-1" }}]

[timeouts]
first_chunk_ms = 1500
idle_ms = 300
total_ms = 1500

[cache]
store = "off"
{}"#,
        keys_and_tenants("")
    )
}

/// What one request got: `Ok` for an answer, else the error's code.
async fn request(http: &reqwest::Client, url: &str, stream: bool, i: usize) -> Result<(), String> {
    let body = json!({"model": "chat", "max_tokens": 64, "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": format!("request {i}")}]});
    let r = http
        .post(url)
        .bearer_auth(ACME_KEY)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| format!("a cut body: {e}"))?;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("?").to_owned();
    if status != 200 {
        return Err(code(
            &serde_json::from_str(&text).map_err(|_| text.clone())?,
        ));
    }
    if !stream {
        return Ok(());
    }
    let last = text.trim_end().lines().last().unwrap_or_default();
    if last == "data: [DONE]" {
        return Ok(());
    }
    let event: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap_or(last))
        .map_err(|_| format!("neither [DONE] nor an error event: {text}"))?;
    Err(code(&event))
}

async fn scenario(name: &str, primary: Faulty, stream: bool, expect: Expect) {
    let name = format!("{name} ({})", if stream { "stream" } else { "call" });
    let backup = Faulty::scripted(|_, stream| good("backup-1", stream)).await;
    let gateway = Process::start("faults", &config(&primary.url, &backup.url), &[]);
    let http = crate::http();
    let url = gateway.url("/v1/chat/completions");
    let mut got = Vec::new();
    for i in 0..REQUESTS {
        let (primary_before, backup_before) = (primary.calls(), backup.calls());
        let started = Instant::now();
        got.push(request(&http, &url, stream, i).await);
        let took = started.elapsed();
        assert!(took <= TOTAL + GRACE, "{name}: request {i} took {took:?}");
        let asked = (
            primary.calls() - primary_before,
            backup.calls() - backup_before,
        );
        assert!(
            asked.0 <= 1 && asked.1 <= 1,
            "{name}: request {i} asked (primary, backup) {asked:?} times: {got:?}"
        );
        tokio::time::sleep(ms(20)).await;
    }
    let failed: Vec<&str> = got
        .iter()
        .filter_map(|g| g.as_ref().err())
        .map(String::as_str)
        .collect();
    match expect {
        Expect::Answered => assert!(failed.is_empty(), "{name}: {got:?}"),
        Expect::Failed(code) => assert_eq!(failed, [code; REQUESTS], "{name}: {got:?}"),
        Expect::FailedUntilTheBreakerOpens(code) => {
            assert_eq!(
                got[..3].iter().filter(|g| g.is_err()).count(),
                3,
                "{name}: {got:?}"
            );
            assert_eq!(failed, [code; 3], "{name}: {got:?}");
        }
    }
    // Stream settlements land when their bodies end; give the last a moment.
    tokio::time::sleep(ms(100)).await;
    let metrics = tta_tests::http::get(gateway.metrics, "/metrics")
        .unwrap()
        .body;
    let cost = |route: &str| sample_sum(&metrics, "tta_router_cost_usd_total", &[("route", route)]);
    let backup_answers = backup.calls() as f64;
    assert!(
        (cost("backup.backup-1") - backup_answers * REPLY_USD).abs() < 1e-12,
        "{name}: the backup billed {} for {backup_answers} answers",
        cost("backup.backup-1")
    );
    // Every route's cost is its tokens at its prices: what it reported, or for a
    // stream cut before its usage, the router's estimate, marked as such on the span.
    for (route, provider) in [
        ("primary.primary-1", "primary"),
        ("backup.backup-1", "backup"),
    ] {
        let tokens = |kind: &str| {
            sample_sum(
                &metrics,
                "gen_ai_client_token_usage_sum",
                &[
                    ("gen_ai_provider_name", provider),
                    ("gen_ai_token_type", kind),
                ],
            )
        };
        let priced = tokens("input") * 0.25 / 1000.0 + tokens("output") * 0.5 / 1000.0;
        assert!(
            (cost(route) - priced).abs() < 1e-9,
            "{name}: {route} billed {} for tokens worth {priced}",
            cost(route)
        );
    }
    println!("{name}: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_resets_silence_and_slow_starts_fall_back() {
    for stream in [false, true] {
        let hinted =
            Faulty::scripted(|_, _| error(429, &[("retry-after", "1")], "rate_limit_exceeded"))
                .await;
        scenario("429 with Retry-After", hinted, stream, Expect::Answered).await;
        let bare = Faulty::scripted(|_, _| error(429, &[], "rate_limit_exceeded")).await;
        scenario("429 without Retry-After", bare, stream, Expect::Answered).await;
        scenario(
            "reset before the response",
            resetting().await,
            stream,
            Expect::Answered,
        )
        .await;
        let silent = Faulty::scripted(|_, _| Reply::Hang).await;
        scenario("never answers", silent, stream, Expect::Answered).await;
        let slow = Faulty::scripted(|_, stream| slow(stream, ms(1_000))).await;
        scenario("slow first chunk", slow, stream, Expect::Answered).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_after_the_first_chunk_end_the_stream_with_an_error_event() {
    let cut = Faulty::scripted(|_, stream| broken(stream, End::Cut, false, "")).await;
    scenario(
        "cut mid-answer",
        cut,
        true,
        Expect::FailedUntilTheBreakerOpens("unavailable"),
    )
    .await;
    let cut = Faulty::scripted(|_, stream| broken(stream, End::Cut, false, "")).await;
    scenario("cut mid-answer", cut, false, Expect::Answered).await;
    // Each stall is cut at the idle limit; three open the primary's breaker.
    let stalled = Faulty::scripted(|_, stream| broken(stream, End::Stall, false, "")).await;
    scenario(
        "stalled after the first chunk",
        stalled,
        true,
        Expect::FailedUntilTheBreakerOpens("timeout"),
    )
    .await;
    let malformed_chunk = Faulty::scripted(|_, stream| malformed(stream)).await;
    scenario(
        "malformed chunk",
        malformed_chunk,
        true,
        Expect::FailedUntilTheBreakerOpens("unavailable"),
    )
    .await;
    let malformed_answer = Faulty::scripted(|_, _| malformed(false)).await;
    scenario(
        "malformed answer",
        malformed_answer,
        false,
        Expect::Answered,
    )
    .await;
    let unterminated =
        Faulty::scripted(|_, _| Reply::events(&chunks("primary-1"), ms(5), false, End::Close))
            .await;
    scenario(
        "no terminator",
        unterminated,
        true,
        Expect::FailedUntilTheBreakerOpens("unavailable"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_provider_refuses_or_filters_and_broken_routes() {
    for stream in [false, true] {
        let long = Faulty::scripted(|_, _| error(400, &[], "context_length_exceeded")).await;
        scenario("context length", long, stream, Expect::Answered).await;
        let filter = Faulty::scripted(|_, stream| filtered(stream)).await;
        scenario(
            "content filter",
            filter,
            stream,
            Expect::Failed("content_filter"),
        )
        .await;
        let flapping = Faulty::scripted(flapping).await;
        scenario("flapping primary", flapping, stream, Expect::Answered).await;
        let odd = Faulty::scripted(|n, _| empty_or_html(n)).await;
        scenario("empty 200, HTML 502", odd, stream, Expect::Answered).await;
        scenario("connection refused", refused(), stream, Expect::Answered).await;
    }
}
