//! The demo, run for real: its summary, its `/metrics`, and the operator docs' metrics.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use tta_demo::{DemoConfig, Progress};
use tta_observability_integration::apm::{self, ApmConfig};

/// Every family of the metrics catalogue (DESIGN.md), as Prometheus names.
const CATALOGUE: &[&str] = &[
    "tta_primitive_executions_total",
    "tta_primitive_duration_seconds",
    "tta_router_decisions_total",
    "tta_router_route_duration_seconds",
    "tta_router_errors_total",
    "tta_router_route_state",
    "tta_router_stream_interruptions_total",
    "tta_router_cost_usd_total",
    "tta_router_cost_savings_usd_total",
    "tta_cache_hits_total",
    "tta_cache_misses_total",
    "tta_cache_errors_total",
    "tta_cache_operation_duration_seconds",
    "tta_cache_hit_ratio",
    "tta_cache_cost_savings_usd_total",
    "tta_cache_coalesced_total",
    "tta_cache_store_state",
    "tta_timeout_outcomes_total",
    "tta_timeout_rate",
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_client_token_usage",
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Metric names (`tta_*`, `gen_ai_*`) used in a document, without histogram suffixes.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = (rest.starts_with("tta_") || rest.starts_with("gen_ai_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            // Label names of the GenAI conventions look like metric names; keep metrics.
            if !matches!(
                family,
                "gen_ai_provider_name"
                    | "gen_ai_token_type"
                    | "gen_ai_request_model"
                    | "gen_ai_operation_name"
            ) {
                names.insert(family.to_owned());
            }
            i += len;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    names
}

/// One scraped series: its metric name, its labels and its value.
type Series<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// The labels of a scraped series line, and its value.
fn parse_series(line: &str) -> Option<Series<'_>> {
    let (series, value) = line.rsplit_once(' ')?;
    let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
    let mut labels = Vec::new();
    let mut rest = rest.strip_suffix('}')?;
    while let Some((key, after)) = rest.split_once("=\"") {
        let (value, after) = after.split_once('"')?;
        labels.push((key.trim_start_matches(','), value));
        rest = after;
    }
    Some((name, labels, value.parse().ok()?))
}

/// The value of a sum of `sum(NAME{label="v", label=~"a|b"})` terms over a scrape: the
/// subset of PromQL that docs/metrics.md defines the demo's summary with.
fn eval_sums(scrape: &str, expr: &str) -> f64 {
    expr.split(" + ")
        .map(|term| {
            let inner = term
                .trim()
                .strip_prefix("sum(")
                .and_then(|t| t.strip_suffix(')'))
                .unwrap_or_else(|| panic!("not a sum: {term}"));
            let (name, matchers) = inner.split_once('{').unwrap_or((inner, "}"));
            let matchers: Vec<(&str, bool, &str)> = matchers
                .trim_end_matches('}')
                .split(", ")
                .filter(|m| !m.is_empty())
                .map(|m| {
                    let (key, regex, value) = match m.split_once("=~") {
                        Some((k, v)) => (k, true, v),
                        None => {
                            let (k, v) = m.split_once('=').unwrap();
                            (k, false, v)
                        }
                    };
                    (key, regex, value.trim_matches('"'))
                })
                .collect();
            scrape
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(parse_series)
                .filter(|(n, labels, _)| {
                    *n == name
                        && matchers.iter().all(|(key, regex, want)| {
                            labels.iter().any(|(k, v)| {
                                k == key
                                    && if *regex {
                                        want.split('|').any(|w| w == *v)
                                    } else {
                                        v == want
                                    }
                            })
                        })
                })
                .map(|(_, _, v)| v)
                .sum::<f64>()
        })
        .sum()
}

/// The rows of docs/metrics.md's table defining the demo's summary: key and PromQL.
fn summary_promql() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let table = text
        .split("| JSON key | PromQL |")
        .nth(1)
        .expect("the summary's PromQL table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let unquote = |c: &str| {
                c.trim_matches(|ch| ch == '|' || ch == ' ' || ch == '`')
                    .to_owned()
            };
            (unquote(cells[0]), unquote(cells[1]).replace("\\|", "|"))
        })
        .collect()
}

/// Every failed request failed in a way the simulated faults explain: a filtered answer
/// (billed, never retried), a stream cut or stalled after its first chunk (cut by the
/// idle limit: a timeout), or every route failing; and no more than the faults allow.
fn assert_failures_are_explained(summary: &tta_demo::Summary) {
    for (kind, n) in &summary.errors {
        assert!(
            matches!(
                kind.as_str(),
                "content_filter" | "unavailable" | "timeout" | "all_routes_failed"
            ),
            "{n} requests failed as {kind}: {summary:?}"
        );
    }
    assert!(
        summary.failed * 100 <= summary.requests,
        "at most 1% of the requests fail: {summary:?}"
    );
    assert!(summary.streams_interrupted <= summary.failed);
}

/// The summary's counts of two runs (timings left out).
fn counts(summary: &tta_demo::Summary) -> serde_json::Value {
    let mut value = serde_json::to_value(summary).unwrap();
    let object = value.as_object_mut().unwrap();
    for timing in [
        "latency_ms",
        "ttft_ms",
        "wall_s",
        "requests_per_s",
        "rss_warmup_mb",
        "rss_end_mb",
    ] {
        object.remove(timing);
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_caps_the_runs_spend_and_counts_what_it_refused() {
    let config = DemoConfig {
        requests: 600,
        concurrency: 32,
        latency_scale: 0.0,
        budget_usd: Some(0.06),
        ..DemoConfig::default()
    };
    let s = tta_demo::run(&config, &Progress::default()).await.unwrap();
    assert!(s.cost_usd <= 0.06, "spent {} of a $0.06 budget", s.cost_usd);
    assert!(s.limited > 0, "{s:?}");
    assert_eq!(s.errors.get("limited").copied(), Some(s.limited));
    assert_eq!(s.succeeded + s.failed, 600);
    assert_eq!(s.budget_usd, Some(0.06));
    // Hits need no budget: they go on being answered once the budget is spent.
    assert!(s.cache_hits > 0);
    // Without a budget the same run spends more than the cap.
    let free = tta_demo::run(
        &DemoConfig {
            budget_usd: None,
            ..config.clone()
        },
        &Progress::default(),
    )
    .await
    .unwrap();
    assert!(free.cost_usd > 0.06, "the cap binds: {}", free.cost_usd);
    assert_eq!(free.limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_concurrency_one_the_same_seed_gives_the_same_counts() {
    let config = DemoConfig {
        requests: 400,
        concurrency: 1,
        latency_scale: 0.0,
        seed: 7,
        ..DemoConfig::default()
    };
    let first = tta_demo::run(&config, &Progress::default()).await.unwrap();
    let second = tta_demo::run(&config, &Progress::default()).await.unwrap();
    assert_eq!(counts(&first), counts(&second));
    assert_eq!(first.succeeded + first.failed, 400);
    assert!(
        first.cache_hits > 0 && first.fallbacks > 0 && first.streams > 0,
        "{first:?}"
    );
    let other_seed = tta_demo::run(
        &DemoConfig {
            seed: 8,
            ..config.clone()
        },
        &Progress::default(),
    )
    .await
    .unwrap();
    assert_ne!(
        counts(&first),
        counts(&other_seed),
        "another seed, another run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_exports_every_catalogue_family_and_every_metric_the_docs_use() {
    // On a real Redis: the store's own families (its breaker state, its operation
    // durations) are exported for remote stores only.
    let redis = tta_tests::redis::RedisServer::start();
    let guard = apm::init(
        ApmConfig::builder("tta-demo-test")
            .metrics_addr("127.0.0.1:0")
            .build()
            .unwrap(),
    )
    .unwrap();
    let config = DemoConfig {
        requests: 1_500,
        concurrency: 64,
        latency_scale: 0.02,
        redis: Some(redis.url()),
        ..DemoConfig::default()
    };
    let addr = guard.status().metrics_addr().unwrap();
    let scrape = || async move {
        tokio::task::spawn_blocking(move || tta_tests::http::get(addr, "/metrics"))
            .await
            .unwrap()
            .unwrap()
            .body
    };

    // Built, not yet run: every series whose labels are known at build time is there,
    // at zero, so `rate()` sees the first burst. (The run below adds to the same series.)
    let idle = DemoConfig {
        requests: 0,
        ..config.clone()
    };
    tta_demo::run(&idle, &Progress::default()).await.unwrap();
    let before = scrape().await;
    let series = |family: &str| -> Vec<(String, f64)> {
        before
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse().unwrap())
            })
            .collect()
    };
    for (family, expected) in [
        // 7 classes x 4 routes.
        ("tta_router_errors_total", 28),
        // 5 reasons x 4 routes.
        ("tta_router_decisions_total", 20),
        // The codec's 4, and the store's 5 kinds for get and for set.
        ("tta_cache_errors_total", 14),
        ("tta_cache_hits_total", 1),
        ("tta_cache_misses_total", 1),
        ("tta_timeout_outcomes_total", 4),
        ("tta_timeout_fallbacks_total", 2),
        ("tta_router_cost_usd_total", 4),
        ("tta_router_stream_interruptions_total", 4),
    ] {
        let found = series(family);
        assert_eq!(found.len(), expected, "{family}: {found:?}");
        assert!(found.iter().all(|(_, v)| *v == 0.0), "{family}: {found:?}");
    }
    let executions = series("tta_primitive_executions_total");
    assert!(
        executions.len() >= 4 * 7 && executions.iter().all(|(_, v)| *v == 0.0),
        "every primitive's outcomes: {executions:?}"
    );

    let summary = tta_demo::run(&config, &Progress::default()).await.unwrap();
    assert_eq!(
        summary.succeeded + summary.failed,
        1_500,
        "no request is lost"
    );
    assert_failures_are_explained(&summary);
    assert!(
        summary.cache_hits > 0 && summary.fallbacks > 0,
        "{summary:?}"
    );
    assert!(
        summary.streams > 500 && summary.streams < 1_000,
        "about half the requests stream: {summary:?}"
    );
    assert!(
        summary
            .ttft_ms
            .is_some_and(|t| t.p50 <= summary.latency_ms.p99)
    );

    let scrape = scrape().await;
    let families: BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    for family in CATALOGUE {
        assert!(
            families.contains(*family),
            "{family} missing from the scrape"
        );
    }
    for doc in [
        "docs/grafana/tta-dashboard.json",
        "docs/prometheus/alerts.yml",
    ] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        let used = names_in(&text);
        assert!(!used.is_empty(), "{doc} uses no metric");
        for name in used {
            assert!(
                families.contains(&name),
                "{doc} uses {name}, which the demo does not export"
            );
        }
    }
    // Every key of the summary equals its PromQL expression in docs/metrics.md.
    let json = serde_json::to_value(&summary).unwrap();
    let rows = summary_promql();
    assert!(rows.len() >= 13, "{rows:?}");
    for (key, expr) in rows {
        let scraped = eval_sums(&scrape, &expr);
        let reported = json[&key]
            .as_f64()
            .unwrap_or_else(|| panic!("no summary key {key}"));
        if key.ends_with("_usd") {
            assert!(
                (scraped - reported).abs() <= 1e-9 * reported.abs().max(1e-6),
                "{key}: {reported} in the JSON, {scraped} = {expr}"
            );
        } else {
            assert_eq!(scraped, reported, "{key} = {expr}");
        }
    }
    for (route, answers) in &summary.route_share {
        let expr = format!(
            "sum(tta_router_route_duration_seconds_count{{route=\"{route}\", outcome=\"ok\"}})"
        );
        assert_eq!(eval_sums(&scrape, &expr), *answers as f64, "{expr}");
    }
    assert!(summary.savings_usd > 0.0 && summary.cache_savings_usd > 0.0);
    let scrape_for_promtool = scrape.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        tta_tests::tools::promtool_check_metrics(&scrape_for_promtool)
    })
    .await
    .unwrap();
    assert_eq!(verdict, Ok(()));
    guard.shutdown().await.unwrap();
}

#[test]
fn the_binary_writes_every_summary_key_and_accounts_for_every_request() {
    let dir = std::env::temp_dir().join(format!("tta-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("summary.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tta-demo"))
        .args([
            "--requests",
            "400",
            "--concurrency",
            "16",
            "--latency-scale",
            "0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for row in [
        "requests",
        "succeeded",
        "latency p99 ms",
        "cache hit ratio",
        "baseline cost USD",
        "savings USD",
        "fallbacks",
        "route budget",
        "streams",
        "first chunk p95 ms",
    ] {
        assert!(stdout.contains(row), "summary table lacks {row}:\n{stdout}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "requests",
        "succeeded",
        "failed",
        "cache_hits",
        "cache_misses",
        "cache_errors",
        "timeouts",
        "fallbacks",
        "cost_usd",
        "baseline_cost_usd",
        "savings_usd",
        "latency_ms",
        "ttft_ms",
        "streams",
        "streams_interrupted",
        "limited",
        "budget_usd",
        "wall_s",
    ] {
        assert!(summary.get(key).is_some(), "JSON summary lacks {key}");
    }
    for p in ["p50", "p95", "p99"] {
        assert!(summary["latency_ms"][p].is_number());
        assert!(summary["ttft_ms"][p].is_number());
    }
    assert_eq!(summary["requests"], 400);
    assert_eq!(
        summary["succeeded"].as_u64().unwrap() + summary["failed"].as_u64().unwrap(),
        400
    );
    let savings =
        summary["baseline_cost_usd"].as_f64().unwrap() - summary["cost_usd"].as_f64().unwrap();
    assert!((savings - summary["savings_usd"].as_f64().unwrap()).abs() < 1e-9);

    for (flag, name) in [
        ("--latency-scale=-1", "latency-scale"),
        ("--stream-share=1.5", "stream-share"),
        ("--stream-share=NaN", "stream-share"),
        ("--budget-usd=0", "budget-usd"),
        ("--budget-usd=-2", "budget-usd"),
        ("--budget-usd=inf", "budget-usd"),
    ] {
        let bad = Command::new(env!("CARGO_BIN_EXE_tta-demo"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(!bad.status.success(), "{flag}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains(name),
            "{flag}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_unreachable_at_start_warns_and_the_run_continues() {
    let port = tta_tests::redis::RedisServer::unused_port();
    let json = std::env::temp_dir().join(format!("tta-demo-redis-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_tta-demo"))
        .args([
            "--requests",
            "200",
            "--latency-scale",
            "0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--redis", &format!("redis://127.0.0.1:{port}")])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Redis was unreachable at start"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unreachable at start"), "{stdout}");
    // The store being down fails no request: only the simulated faults do.
    let summary: tta_demo::Summary =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary.succeeded + summary.failed, 200);
    assert_failures_are_explained(&summary);
    assert!(summary.cache_errors > 0, "{summary:?}");
    let _ = std::fs::remove_file(&json);
}

#[test]
fn the_demo_runs_on_a_real_redis() {
    let redis = tta_tests::redis::RedisServer::start();
    let out = Command::new(env!("CARGO_BIN_EXE_tta-demo"))
        .args([
            "--requests",
            "300",
            "--latency-scale",
            "0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--redis",
            &redis.url(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let store = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("cache store"))
        .unwrap();
    assert_eq!(store.split_whitespace().last(), Some("redis"), "{stdout}");
    let keys: u64 = redis.command(&["DBSIZE"]).unwrap().parse().unwrap();
    assert!(keys > 0, "the demo filled Redis");
}

/// Four consecutive free loopback ports, the first returned.
fn free_ports() -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if first > 65_000 {
            continue;
        }
        let all_free =
            (first..first + 4).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return first;
        }
    }
    panic!("no four consecutive free loopback ports")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_only_serves_the_simulated_providers_until_stopped() {
    use std::io::{BufRead, BufReader};
    use tta_observability_integration::llm::{Anthropic, ChatRequest, Message, OpenAiCompatible};
    use tta_observability_integration::{WorkflowContext, WorkflowPrimitive};

    let port = free_ports();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tta-demo"))
        .args(["--providers-only", "--providers-port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(4)
        .map(Result::unwrap)
        .collect();
    let urls: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[1].to_owned(), fields[3].to_owned())
        })
        .collect();
    let expected: Vec<String> = (port..port + 4)
        .map(|p| format!("http://127.0.0.1:{p}/v1"))
        .collect();
    assert_eq!(
        urls.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>(),
        expected,
        "{lines:?}"
    );
    // Each answers in its protocol, as its model: a fault is retried (each try of the
    // same text draws again), a hang is cut at 2 s.
    let request =
        ChatRequest::new(vec![Message::user("Where can I find my invoice?")]).max_tokens(20);
    for (line, (protocol, url)) in lines.iter().zip(&urls) {
        let model = line.split_whitespace().nth(2).unwrap();
        let mut answered = None;
        for _ in 0..10 {
            let cx = WorkflowContext::new();
            let call = async {
                if protocol == "anthropic" {
                    Anthropic::builder(url)
                        .build()
                        .unwrap()
                        .execute(request.clone(), &cx)
                        .await
                } else {
                    OpenAiCompatible::builder(url)
                        .build()
                        .unwrap()
                        .execute(request.clone(), &cx)
                        .await
                }
            };
            if let Ok(Ok(answer)) =
                tokio::time::timeout(std::time::Duration::from_secs(2), call).await
            {
                answered = Some(answer);
                break;
            }
        }
        let answer = answered.unwrap_or_else(|| panic!("{line}: no answer in 10 tries"));
        assert_eq!(answer.model, model, "{line}");
        assert_eq!(answer.usage.map(|u| u.output_tokens), Some(20), "{line}");
        assert!(answer.content.starts_with(&format!("[{model}]")), "{line}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // A busy port is one clear error line, not a panic.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_tta-demo"))
        .args([
            "--providers-only",
            "--providers-port",
            &busy_port.to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot serve the simulated providers") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// The cumulative buckets `(le, count)` of a histogram family's series matching
/// `matcher` in a scrape, summed by `le` and sorted by bound (`+Inf` last).
fn histogram_buckets(scrape: &str, family: &str, matcher: (&str, &str)) -> Vec<(f64, f64)> {
    let mut buckets: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    let bucket = format!("{family}_bucket");
    for (name, labels, value) in scrape.lines().filter_map(parse_series) {
        if name != bucket || !labels.contains(&matcher) {
            continue;
        }
        let le = labels.iter().find(|(k, _)| *k == "le").unwrap().1;
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        buckets.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += value;
    }
    let mut sorted: Vec<(f64, f64)> = buckets.into_values().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
}

/// `histogram_quantile(q, sum by (le) (rate(family_bucket{matchers}[..])))` over
/// buckets of counters from zero: Prometheus' linear interpolation within the bucket the
/// rank falls in (the first bucket starts at 0; the `+Inf` bucket answers its lower
/// bound).
fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().unwrap().1;
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            return lower.0 + (bound - lower.0) * (rank - lower.1) / (count - lower.1);
        }
        lower = (bound, count);
    }
    lower.0
}

/// The bounds `(lower, upper)` of the bucket a value falls in (`lower < value <= upper`).
fn bucket_of(buckets: &[(f64, f64)], value: f64) -> (f64, f64) {
    let mut lower = 0.0;
    for &(bound, _) in buckets {
        if value <= bound {
            return (lower, bound);
        }
        lower = bound;
    }
    (lower, f64::INFINITY)
}

#[test]
fn histogram_quantile_interpolates_in_the_bucket_of_the_rank() {
    // 10 at or under 1, 30 at or under 2, 40 in all.
    let buckets = [(1.0, 10.0), (2.0, 30.0), (f64::INFINITY, 40.0)];
    assert_eq!(histogram_quantile(&buckets, 0.25), 1.0);
    assert_eq!(histogram_quantile(&buckets, 0.5), 1.5);
    assert_eq!(histogram_quantile(&buckets, 0.9), 2.0);
    assert_eq!(bucket_of(&buckets, 0.5), (0.0, 1.0));
    assert_eq!(bucket_of(&buckets, 1.0), (0.0, 1.0));
    assert_eq!(bucket_of(&buckets, 1.2), (1.0, 2.0));
    assert_eq!(bucket_of(&buckets, 9.0), (2.0, f64::INFINITY));
}

/// A histogram's quantile is only as exact as its buckets: Prometheus interpolates
/// linearly inside the bucket the rank falls in, so an exact quantile just above a bound
/// (0.203 ms over 0.2 ms, say, with most of the bucket below it near its top) can come
/// out a bucket's width away. The test asserts what the catalogue promises: buckets at
/// most 28% wide where the demo's quantiles fall, and each scraped quantile within a
/// bucket's width of the exact one.
#[test]
fn the_scraped_latency_quantiles_match_the_demos_own_within_a_bucket() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let json = std::env::temp_dir().join(format!("tta-demo-quantiles-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    // The default run, held open for the scrape.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tta-demo"))
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--hold",
            "60",
        ])
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let summary: tta_demo::Summary = loop {
        if let Ok(text) = std::fs::read_to_string(&json)
            && let Ok(summary) = serde_json::from_str(&text)
        {
            break summary;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the demo did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let scrape = tta_tests::http::get(addr, "/metrics").unwrap().body;
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(&json);
    let buckets = histogram_buckets(
        &scrape,
        "tta_primitive_duration_seconds",
        ("primitive", "request_timeout"),
    );
    for (q, own) in [
        (0.50, summary.latency_ms.p50),
        (0.95, summary.latency_ms.p95),
        (0.99, summary.latency_ms.p99),
    ] {
        let scraped = 1_000.0 * histogram_quantile(&buckets, q);
        let (lower, upper) = bucket_of(&buckets, own / 1_000.0);
        let (lower, upper) = (1_000.0 * lower, 1_000.0 * upper);
        eprintln!(
            "p{}: the demo {own:.4} ms, histogram_quantile {scraped:.4} ms, its bucket ({lower}, {upper}] ms",
            q * 100.0
        );
        assert!(
            lower > 0.0 && upper <= 1.281 * lower,
            "p{}: the demo's {own} ms falls in the bucket ({lower}, {upper}] ms, wider than 28%",
            q * 100.0
        );
        // The primitive's own quantile may sit across the bound from the demo's (which
        // times a little more): the estimate may then land in the next bucket up, at most
        // 28% wider than this one.
        let width = 1.281 * (upper - lower);
        assert!(
            (scraped - own).abs() <= width,
            "p{}: the demo measured {own} ms, histogram_quantile gives {scraped} ms, more than a bucket ({width} ms) away",
            q * 100.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_otlp_http_every_span_of_twenty_thousand_requests_arrives_with_tree_and_counters() {
    otlp_run(false, 20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_otlp_grpc_every_span_arrives_with_its_tree_the_resource_and_the_counters() {
    otlp_run(true, 2_000).await;
}

/// Runs the demo with `--otlp` into a loopback receiver (gRPC, or http/protobuf) and
/// checks what arrived.
async fn otlp_run(grpc: bool, requests: u64) {
    let service = if grpc { "support-bot" } else { "tta-demo" };
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};

    let receiver = if grpc {
        tta_tests::otlp::OtlpReceiver::start_grpc().await
    } else {
        tta_tests::otlp::OtlpReceiver::start().await
    };
    let json =
        std::env::temp_dir().join(format!("tta-demo-otlp-{}-{grpc}.json", std::process::id()));
    let endpoint = receiver.endpoint();
    let json_arg = json.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tta-demo"))
            .args([
                "--requests",
                &requests.to_string(),
                "--concurrency",
                "128",
                "--latency-scale",
                "0",
            ])
            .args(["--metrics-addr", "127.0.0.1:0", "--otlp", &endpoint])
            .arg("--json")
            .arg(&json_arg)
            .env_remove("OTEL_RESOURCE_ATTRIBUTES")
            .env(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                if grpc { "grpc" } else { "http/protobuf" },
            )
            // The demo's name is a default the environment overrides (here, over gRPC).
            .envs(grpc.then_some(("OTEL_SERVICE_NAME", service)))
            .env_remove(if grpc {
                "TTA_UNUSED"
            } else {
                "OTEL_SERVICE_NAME"
            })
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("otlp traces: live"), "{stderr}");
    assert!(!stderr.contains("lost"), "no span was dropped: {stderr}");
    let summary: tta_demo::Summary =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);

    let text = |v: &Option<AnyValue>| match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let attr = |attrs: &[KeyValue], key: &str| {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| text(&kv.value))
    };
    let mut spans = Vec::new();
    for request in receiver.trace_requests() {
        for resource in &request.resource_spans {
            let attrs = &resource.resource.as_ref().unwrap().attributes;
            assert_eq!(attr(attrs, "service.name").as_deref(), Some(service));
            assert_eq!(
                attr(attrs, "service.version").as_deref(),
                Some(env!("CARGO_PKG_VERSION"))
            );
            assert!(attr(attrs, "deployment.environment.name").is_some());
            spans.extend(resource.scope_spans.iter().flat_map(|s| s.spans.clone()));
        }
    }
    // Every span the demo exported arrived, and none was lost.
    let exported: usize = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("otlp: ")?
                .strip_suffix(" spans exported")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no export count: {stderr}"));
    assert_eq!(spans.len(), exported, "{stderr}");
    assert!(
        exported as u64 > requests,
        "{exported} spans for {requests} requests"
    );
    // No prompt text anywhere: the prompts say "case #".
    for span in &spans {
        for kv in &span.attributes {
            let value = text(&kv.value);
            assert!(
                !value.contains("case #"),
                "{}: {} = {value}",
                span.name,
                kv.key
            );
        }
    }
    // One answered request's tree: timeout > cache > router > attempt > client.
    let by_id = |id: &[u8]| spans.iter().find(|s| s.span_id == id);
    let client_of = |attempt: &opentelemetry_proto::tonic::trace::v1::Span| {
        spans
            .iter()
            .find(|s| s.parent_span_id == attempt.span_id)
            .cloned()
    };
    let attempt = spans
        .iter()
        .find(|s| {
            s.name.starts_with("chat ")
                && attr(&s.attributes, "tta.router.reason").as_deref() == Some("strategy")
                && client_of(s).is_some_and(|c| attr(&c.attributes, "gen_ai.response.id").is_some())
        })
        .expect("an answered attempt's span");
    assert_eq!(
        attr(&attempt.attributes, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert!(attr(&attempt.attributes, "gen_ai.provider.name").is_some());
    assert!(attr(&attempt.attributes, "gen_ai.request.model").is_some());
    let mut chain = vec![attempt.name.clone()];
    let mut at = attempt;
    while !at.parent_span_id.is_empty() {
        at = by_id(&at.parent_span_id).expect("every parent arrived");
        chain.push(at.name.clone());
    }
    assert_eq!(chain[1..], ["router", "cache", "timeout"], "{chain:?}");
    let client = client_of(attempt).expect("the client's span under its attempt");
    assert_eq!(client.name, "llm");
    assert!(attr(&client.attributes, "gen_ai.response.model").is_some());

    // A counter's exported value equals the JSON's.
    let mut hits = None;
    for metric in receiver.metrics() {
        if let (true, Some(Data::Sum(sum))) = (metric.name == "tta.cache.hits", &metric.data) {
            let total: i64 = sum
                .data_points
                .iter()
                .map(|p| match p.value {
                    Some(number_data_point::Value::AsInt(v)) => v,
                    _ => 0,
                })
                .sum();
            // Cumulative: the last export holds the run's total.
            hits = Some(total);
        }
    }
    assert_eq!(hits, Some(summary.cache_hits as i64));
}
