//! `cargo run --release -p tta-demo`: a seeded, simulated LLM workload through
//! timeout around cache around router, over simulated providers on loopback HTTP,
//! serving `/metrics` while it runs. `--providers-only` serves the providers alone.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use tta_demo::providers::{PROFILES, Providers};
use tta_demo::{DemoConfig, Progress, Summary};
use tta_observability_integration::apm::{self, ApmConfig};

/// Runs a seeded, simulated LLM workload through timeout around cache around router, serving
/// Prometheus metrics while it runs, and prints a summary.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How many requests to run.
    #[arg(long, default_value_t = 2_000)]
    requests: u64,
    /// Requests in flight at once (1 to 100,000).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// Seed: the same seed gives the same prompts and provider behaviour.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use the Redis store at this URL (e.g. redis://127.0.0.1:6379).
    #[arg(long)]
    redis: Option<String>,
    /// Where /metrics listens.
    #[arg(long, default_value_t = apm::DEFAULT_METRICS_ADDR)]
    metrics_addr: std::net::SocketAddr,
    /// Also export traces and metrics by OTLP to this URL: http/protobuf (port 4318) by
    /// default, gRPC (port 4317) with OTEL_EXPORTER_OTLP_PROTOCOL=grpc.
    #[arg(long)]
    otlp: Option<String>,
    /// Keep serving /metrics this many seconds after the run.
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Multiplies the simulated latencies (0 removes them, for throughput runs).
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    latency_scale: f64,
    /// Distinct prompts in the workload.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    distinct_prompts: u32,
    /// The share of requests streamed, from 0 to 1.
    #[arg(long, default_value_t = 0.5, value_parser = parse_share)]
    stream_share: f64,
    /// Cap the run's spend at this many dollars: a tta-limit budget reserves before each
    /// request and refuses (kind `limited`) what could pass the cap.
    #[arg(long, value_parser = parse_budget)]
    budget_usd: Option<f64>,
    /// Serve the simulated providers on fixed loopback ports (`--providers-port` and the
    /// three after it), print their base URLs and wait for Ctrl-C: for tta-gateway and
    /// your own tests.
    #[arg(long)]
    providers_only: bool,
    /// The first port of `--providers-only`.
    #[arg(long, default_value_t = 18_101, value_parser = clap::value_parser!(u16).range(1..=65_532))]
    providers_port: u16,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be a number from 0 to 1, got {s}"))
    }
}

fn parse_budget(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a positive number of dollars, got {s}"))
    }
}

/// Serves the simulated providers on their fixed ports until Ctrl-C.
async fn providers_only(args: &Args) -> ExitCode {
    let port = args.providers_port;
    let addrs =
        std::array::from_fn(|i| std::net::SocketAddr::from(([127, 0, 0, 1], port + i as u16)));
    let providers = match Providers::start(addrs, args.seed, args.latency_scale).await {
        Ok(providers) => providers,
        Err(e) => {
            eprintln!(
                "error: cannot serve the simulated providers on 127.0.0.1:{port}-{}: {e}",
                port + PROFILES.len() as u16 - 1
            );
            return ExitCode::FAILURE;
        }
    };
    for (i, p) in PROFILES.iter().enumerate() {
        println!(
            "{:<9} {:<9} {:<14} {}",
            p.name,
            p.protocol.as_str(),
            p.model,
            providers.base_url(i)
        );
    }
    eprintln!("serving the simulated providers (Ctrl-C to stop)");
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be a number from 0 to 100, got {s}"))
    }
}

fn print_summary(s: &Summary) {
    let pct = |part: f64, whole: f64| {
        if whole > 0.0 {
            100.0 * part / whole
        } else {
            0.0
        }
    };
    println!(
        "tta-demo: timeout around cache around {}router over {} simulated providers (loopback HTTP)",
        if s.budget_usd.is_some() {
            "budget around "
        } else {
            ""
        },
        s.route_share.len()
    );
    println!("  {:<22} {:>14}", "requests", s.requests);
    println!(
        "  {:<22} {:>14} ({:.2}%)",
        "succeeded",
        s.succeeded,
        pct(s.succeeded as f64, s.requests as f64)
    );
    println!("  {:<22} {:>14}", "failed", s.failed);
    for (kind, n) in &s.errors {
        println!("  {:<22} {:>14}", format!("  {kind}"), n);
    }
    println!("  {:<22} {:>14.3}", "latency p50 ms", s.latency_ms.p50);
    println!("  {:<22} {:>14.3}", "latency p95 ms", s.latency_ms.p95);
    println!("  {:<22} {:>14.3}", "latency p99 ms", s.latency_ms.p99);
    println!("  {:<22} {:>14.3}", "latency max ms", s.latency_ms.max);
    println!(
        "  {:<22} {:>14} ({} interrupted)",
        "streams", s.streams, s.streams_interrupted
    );
    if let Some(ttft) = &s.ttft_ms {
        println!("  {:<22} {:>14.3}", "first chunk p50 ms", ttft.p50);
        println!("  {:<22} {:>14.3}", "first chunk p95 ms", ttft.p95);
        println!("  {:<22} {:>14.3}", "first chunk p99 ms", ttft.p99);
    }
    println!(
        "  {:<22} {:>13.1}% ({} hits, {} misses, {} cache errors)",
        "cache hit ratio",
        pct(s.cache_hits as f64, s.requests as f64),
        s.cache_hits,
        s.cache_misses,
        s.cache_errors
    );
    println!("  {:<22} {:>14}", "cache store", s.cache_store);
    println!("  {:<22} {:>14.4}", "cost USD", s.cost_usd);
    if let Some(budget) = s.budget_usd {
        println!(
            "  {:<22} {:>14.4} ({} requests limited)",
            "budget USD", budget, s.limited
        );
    }
    println!(
        "  {:<22} {:>14.4}",
        "baseline cost USD", s.baseline_cost_usd
    );
    println!(
        "  {:<22} {:>14.4} ({:.1}%; routing {:.4}, cache {:.4})",
        "savings USD",
        s.savings_usd,
        pct(s.savings_usd, s.baseline_cost_usd),
        s.router_savings_usd,
        s.cache_savings_usd
    );
    println!("  {:<22} {:>14}", "timeouts", s.timeouts);
    println!("  {:<22} {:>14}", "fallbacks", s.fallbacks);
    let routed: u64 = s.route_share.iter().map(|(_, n)| n).sum();
    for (route, n) in &s.route_share {
        println!(
            "  {:<22} {:>14} ({:.1}%)",
            format!("route {route}"),
            n,
            pct(*n as f64, routed as f64)
        );
    }
    if let (Some(warm), Some(end)) = (s.rss_warmup_mb, s.rss_end_mb) {
        println!(
            "  {:<22} {:>14.1} (after 10% of the run: {warm:.1})",
            "RSS MiB", end
        );
    }
    println!("  {:<22} {:>14.2}", "wall s", s.wall_s);
    println!("  {:<22} {:>14.0}", "requests/s", s.requests_per_s);
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.providers_only {
        return providers_only(&args).await;
    }
    let mut apm_config = ApmConfig::from_env()
        .service_version(env!("CARGO_PKG_VERSION"))
        .metrics_addr(args.metrics_addr.to_string())
        .console_spans(false);
    // The demo's name is a default: `OTEL_SERVICE_NAME` (or `service.name`) overrides it.
    let named_by_env = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|r| r.contains("service.name="));
    if !named_by_env {
        apm_config = apm_config.service_name("tta-demo");
    }
    if let Some(url) = &args.otlp {
        apm_config = apm_config.otlp_endpoint(url.clone());
    }
    let guard = match apm_config
        .build()
        .map_err(apm::InitError::from)
        .and_then(apm::init)
    {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let status = guard.status();
    eprintln!("telemetry: {status}");
    if status.is_degraded() {
        eprintln!("warning: some telemetry is degraded (see above); the run continues");
    }

    let config = DemoConfig {
        requests: args.requests,
        concurrency: args.concurrency as usize,
        seed: args.seed,
        latency_scale: args.latency_scale,
        redis: args.redis.clone(),
        distinct_prompts: args.distinct_prompts as usize,
        stream_share: args.stream_share,
        budget_usd: args.budget_usd,
    };
    let progress = Arc::new(Progress::default());
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(config.requests);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} requests ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        let (bar2, progress2) = (bar.clone(), Arc::clone(&progress));
        tokio::spawn(async move {
            loop {
                bar2.set_position(progress2.done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        bar
    });
    let summary = tta_demo::run(&config, &progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if summary.cache_store.contains("unreachable") {
        eprintln!(
            "warning: Redis was unreachable at start; requests bypassed the cache while it was down"
        );
    }
    print_summary(&summary);
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&summary)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json + "\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.hold > 0 {
        if let Some(addr) = guard.status().metrics_addr() {
            eprintln!(
                "serving http://{addr}/metrics for {} s (Ctrl-C to stop)",
                args.hold
            );
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.hold)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    let status = guard.status().clone();
    if let Err(e) = guard.shutdown().await {
        eprintln!("warning: {e}");
    }
    if let Some(spans) = status.spans() {
        eprintln!("otlp: {} spans exported", spans.exported);
        if spans.dropped() > 0 || spans.waiting > 0 {
            eprintln!(
                "warning: OTLP span export lost {} spans ({} with the queue full, {} in failed exports, {} unsent at shutdown)",
                spans.dropped() + spans.waiting,
                spans.dropped_queue_full,
                spans.dropped_export_failed,
                spans.waiting
            );
        }
    }
    if summary.succeeded + summary.failed == summary.requests {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: {} requests are unaccounted for",
            summary.requests - summary.succeeded - summary.failed
        );
        ExitCode::FAILURE
    }
}
