//! The tta demo workload: a seeded, simulated LLM pipeline built from tta-core primitives.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tta_core::{Error, WorkflowContext, WorkflowPrimitive, from_fn};

/// Runs a seeded, simulated LLM request pipeline through tta primitives.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How many requests to run.
    #[arg(long, default_value_t = 2000)]
    requests: u64,
    /// How many requests are in flight at once (at least 1).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Seed: the same seed gives the same latencies and failures per request.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Multiplies every simulated latency (0 removes them).
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    latency_scale: f64,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && (0.0..=1000.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be a number from 0 to 1000, got {s}"))
    }
}

/// One simulated request: its prompt and the seeded behaviour of each step.
#[derive(Clone, Debug)]
struct Request {
    prompt: String,
    /// Step latencies in milliseconds: normalize, classify, retrieve, respond.
    latency_ms: [f64; 4],
    /// Whether the respond step fails.
    fails: bool,
}

impl Request {
    fn generate(seed: u64, index: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let words = rng.random_range(3..40);
        let prompt = (0..words)
            .map(|_| TOPICS[rng.random_range(0..TOPICS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        // Log-normal-ish latencies: most calls are quick, a few are slow (a tail).
        let mut lat =
            |median: f64| median * (rng.random::<f64>() * 1.2 - 0.6).exp() * tail(&mut rng);
        let latency_ms = [lat(1.0), lat(8.0), lat(12.0), lat(25.0)];
        let fails = rng.random_bool(0.02);
        Self {
            prompt,
            latency_ms,
            fails,
        }
    }
}

fn tail(rng: &mut StdRng) -> f64 {
    if rng.random_bool(0.02) { 6.0 } else { 1.0 }
}

const TOPICS: &[&str] = &[
    "invoice",
    "refund",
    "shipping",
    "password",
    "upgrade",
    "billing",
    "latency",
    "cache",
    "router",
    "token",
    "model",
    "timeout",
    "export",
    "dashboard",
    "alert",
    "quota",
];

async fn simulate(ms: f64, scale: f64) {
    let d = Duration::from_secs_f64(ms * scale / 1000.0);
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let scale = args.latency_scale;

    let normalize = from_fn(move |req: Request, _cx| async move {
        simulate(req.latency_ms[0], scale).await;
        let prompt = req.prompt.trim().to_lowercase();
        Ok::<_, Error>(Request { prompt, ..req })
    });
    let classify = from_fn(move |req: Request, _cx| async move {
        simulate(req.latency_ms[1], scale).await;
        let intent = if req.prompt.contains("refund") || req.prompt.contains("billing") {
            "billing"
        } else {
            "support"
        };
        Ok::<_, Error>((intent, req))
    });
    let retrieve = from_fn(move |req: Request, _cx| async move {
        simulate(req.latency_ms[2], scale).await;
        Ok::<_, Error>(req.prompt.split_whitespace().count())
    });
    let respond = from_fn(
        move |((intent, req), docs): ((&'static str, Request), usize), _cx| async move {
            simulate(req.latency_ms[3], scale).await;
            if req.fails {
                return Err(Error::msg("simulated provider error"));
            }
            Ok(format!("[{intent}] answered using {docs} passages"))
        },
    );
    let (Ok(normalize), Ok(classify), Ok(retrieve), Ok(respond)) = (
        normalize.named("normalize"),
        classify.named("classify"),
        retrieve.named("retrieve"),
        respond.named("respond"),
    ) else {
        eprintln!("error: invalid built-in step name");
        return ExitCode::FAILURE;
    };
    let pipeline = Arc::new(normalize >> (classify | retrieve) >> respond);

    let limit = Arc::new(Semaphore::new(args.concurrency as usize));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.requests {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            break;
        };
        let pipeline = Arc::clone(&pipeline);
        let request = Request::generate(args.seed, index);
        tasks.spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let result = pipeline.execute(request, &WorkflowContext::new()).await;
            (result.is_ok(), t0.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(args.requests as usize);
    let (mut succeeded, mut failed) = (0u64, 0u64);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((ok, latency)) => {
                if ok {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
                latencies.push(latency);
            }
            Err(e) => {
                eprintln!("error: a request task failed: {e}");
                failed += 1;
            }
        }
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    println!("tta-demo: normalize >> (classify | retrieve) >> respond");
    println!("{:<14} {:>12}", "requests", args.requests);
    println!("{:<14} {:>12}", "succeeded", succeeded);
    println!("{:<14} {:>12}", "failed", failed);
    println!(
        "{:<14} {:>12.2}",
        "latency p50 ms",
        ms(percentile(&latencies, 50.0))
    );
    println!(
        "{:<14} {:>12.2}",
        "latency p95 ms",
        ms(percentile(&latencies, 95.0))
    );
    println!(
        "{:<14} {:>12.2}",
        "latency p99 ms",
        ms(percentile(&latencies, 99.0))
    );
    println!("{:<14} {:>12.3}", "wall s", wall.as_secs_f64());
    println!(
        "{:<14} {:>12.0}",
        "requests/s",
        args.requests as f64 / wall.as_secs_f64().max(1e-9)
    );
    if succeeded + failed == args.requests {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: {} requests were lost",
            args.requests - succeeded - failed
        );
        ExitCode::FAILURE
    }
}
