//! `--soak N`: N requests (half streamed) at a fixed concurrency through `tta-gateway`
//! (its cache off) to the demo's simulated providers with their default fault mix
//! (`cargo xtask soak --gateway`). Every failure must be of a kind the faults explain; the gateway's RSS
//! may grow by less than 5% after warm-up, and its open descriptors may not grow.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tta_demo::providers::Providers;

use crate::{AnyError, Gateway, KEY_SHA256};

/// What a request of the soak ended as: `ok`, or the kind of its failure.
fn kind_of_failure(text: &str) -> String {
    // `status 503 Service Unavailable: {"error":{"code":"unavailable",...}}`
    let status = text
        .strip_prefix("status ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    let code = text
        .find('{')
        .and_then(|at| serde_json::from_str::<Value>(&text[at..]).ok())
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
    match (status, code) {
        ("", _) => text.split(':').next().unwrap_or(text).to_owned(),
        (status, Some(code)) => format!("{status} {code}"),
        (status, None) => format!("{status} (no error object)"),
    }
}

/// The failures the simulated providers' faults explain: every route failed or was
/// cooling (503 `unavailable`), no answer in time (504 `timeout`), a filtered answer
/// (400 `content_filter`), every route rate limited (429), and a stream that failed
/// after its first chunk (an error event, `stream error`).
const EXPLAINED: [&str; 5] = [
    "503 unavailable",
    "504 timeout",
    "400 content_filter",
    "429 rate_limit_exceeded",
    "stream error",
];

fn config(providers: &Providers) -> String {
    let mut text = String::from("listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\n");
    text.push_str(&providers.gateway_toml());
    text.push_str(
        r#"[models.chat]
strategy = "ordered"
attempt_timeout_ms = 2000
routes = [
  { provider = "budget", model = "mistral-small" },
  { provider = "balanced", model = "claude-haiku" },
  { provider = "frontier", model = "gpt-4o" },
]

# Off: every request reaches the providers and their faults, and a cache filling up
# would read as memory growth.
[cache]
store = "off"

[timeouts]
first_chunk_ms = 5000
idle_ms = 2000
total_ms = 30000

[[keys]]
"#,
    );
    text.push_str(&format!(
        "sha256 = \"{KEY_SHA256}\"\ntenant = \"soak\"\n\n[tenants.soak]\n"
    ));
    text
}

/// Runs the soak; an error when a failure is unexplained or the gateway grew.
pub(crate) async fn run(
    bin: &Path,
    requests: u64,
    concurrency: u64,
    latency_scale: f64,
) -> Result<(), AnyError> {
    let providers = Providers::start_anywhere(42, latency_scale).await?;
    let gateway = Gateway::start(bin, &config(&providers), "soak")?;
    let client = crate::client();
    let next = Arc::new(AtomicU64::new(0));
    // RSS and descriptors at every tenth of the run. The first half is the warm-up:
    // the connection pools grow to each provider as the traffic moves between routes
    // (breakers opening and closing), and the allocator reaches its high-water mark.
    let tenth = (requests / 10).max(1);
    let samples: Arc<std::sync::Mutex<Vec<(f64, usize)>>> = Arc::default();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, next, samples) = (
            client.clone(),
            gateway.url.clone(),
            Arc::clone(&next),
            Arc::clone(&samples),
        );
        let gateway_pid = gateway.pid();
        workers.spawn(async move {
            let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return kinds;
                }
                if i > 0 && i % tenth == 0 {
                    let sample = (
                        crate::rss_mib_of(gateway_pid),
                        crate::descriptors_of(gateway_pid),
                    );
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(sample);
                }
                let stream = i % 2 == 1;
                let prompt = format!("soak: request {i}");
                let mut body = json!({"model": "chat", "max_tokens": 64,
                                      "messages": [{"role": "user", "content": prompt}]});
                if stream {
                    body["stream"] = json!(true);
                }
                let kind =
                    match crate::one(&client, &url, body.to_string().into_bytes(), stream).await {
                        Ok(_) => "ok".to_owned(),
                        Err(e) => kind_of_failure(&e),
                    };
                *kinds.entry(kind).or_default() += 1;
            }
        });
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(joined) = workers.join_next().await {
        for (kind, n) in joined? {
            *kinds.entry(kind).or_default() += n;
        }
    }
    let wall = started.elapsed();
    // Idle connections settle before the last reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_end, fds_end) = (gateway.rss_mib(), crate::descriptors_of(gateway.pid()));
    let why = gateway.failures(&client).await;
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // The samples are at 10%, 20%, ... 90%: the one at 50% ends the warm-up.
    let half = samples.len() / 2;
    let (rss_warm, _) = *samples.get(half).ok_or("the soak took no sample")?;
    // No descriptor growth: the end holds no more than the warm-up's most.
    let fds_warm = samples[..=half].iter().map(|s| s.1).max().unwrap_or(0);
    let growth = 100.0 * (rss_end - rss_warm) / rss_warm;
    println!(
        "\n# gateway soak: {requests} requests (half streamed), concurrency {concurrency}, \
         latency scale {latency_scale}, {:.1} s ({:.0} requests/s)\n",
        wall.as_secs_f64(),
        requests as f64 / wall.as_secs_f64()
    );
    println!("| ended as | requests |\n|---|---|");
    for (kind, n) in &kinds {
        println!("| {kind} | {n} |");
    }
    let trace: Vec<String> = samples
        .iter()
        .map(|(rss, fds)| format!("{rss:.1} MiB/{fds}"))
        .collect();
    println!(
        "\ngateway RSS and descriptors at each tenth: {}; at the end {rss_end:.1} MiB/{fds_end}",
        trace.join(", ")
    );
    println!(
        "after the warm-up (the first half): RSS {rss_warm:.1} -> {rss_end:.1} MiB ({growth:+.1}%), \
         descriptors at most {fds_warm} then, {fds_end} at the end"
    );
    println!("\nthe gateway's router errors, interruptions and timeout outcomes:");
    for line in &why {
        println!("  {line}");
    }
    let total: u64 = kinds.values().sum();
    let unexplained: Vec<&String> = kinds
        .keys()
        .filter(|k| *k != "ok" && !EXPLAINED.contains(&k.as_str()))
        .collect();
    if total != requests {
        return Err(format!(
            "{} of {requests} requests are unaccounted for",
            requests - total
        )
        .into());
    }
    if !unexplained.is_empty() {
        return Err(format!("failures the faults do not explain: {unexplained:?}").into());
    }
    if growth >= 5.0 {
        return Err(format!("RSS grew by {growth:.1}% after warm-up").into());
    }
    if fds_end > fds_warm {
        return Err(format!("open descriptors grew from {fds_warm} to {fds_end}").into());
    }
    Ok(())
}
