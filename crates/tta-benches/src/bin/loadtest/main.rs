//! `loadtest`: the gateway's overhead by TensorZero's published method (`cargo xtask
//! loadtest` builds and runs it).
//!
//! On one machine: this process is the load generator and the mock provider (the demo's
//! simulated provider, OpenAI's protocol, a fixed latency, no faults), and `tta-gateway`
//! runs as a child process in front of that provider. Open-loop requests at fixed rates
//! (each scheduled at its time whether or not earlier ones have answered) go straight to
//! the provider, then through the gateway with its cache off, then through a gateway
//! with a memory cache and a 90% hit workload; calls, then streams. Overhead at a
//! percentile is the gateway's latency minus the direct latency at that percentile.
//! Before the rates, `--open-streams` streams are held open through the gateway at once,
//! for its RSS per open stream. `--soak N` runs the gateway soak instead ([`soak`]).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

mod soak;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tta_demo::providers::{Providers, STEADY};
use tta_tests::llm_server::{End, LlmServer, Reply};

/// The gateway's overhead at fixed request rates, straight to a mock provider and through
/// `tta-gateway`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The `tta-gateway` binary to run.
    #[arg(long)]
    gateway: PathBuf,
    /// Requests per second, one phase each.
    #[arg(long, value_delimiter = ',', default_values_t = vec![500, 1_000, 2_000, 5_000])]
    rates: Vec<u32>,
    /// Seconds each phase sends for.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The mock provider's latency (a stream's first content chunk comes after a third).
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// What to send: `calls`, `streams`, or both.
    #[arg(long, value_delimiter = ',', default_values_t = vec![Kind::Calls, Kind::Streams])]
    kinds: Vec<Kind>,
    /// Streams held open through the gateway at once (0: skip).
    #[arg(long, default_value_t = 10_000)]
    open_streams: u32,
    /// Instead of the rates: a soak of this many requests (half streamed) at
    /// `--concurrency` to the demo's simulated providers with their faults.
    #[arg(long)]
    soak: Option<u64>,
    /// The soak's concurrency.
    #[arg(long, default_value_t = 256)]
    concurrency: u64,
    /// The soak's provider latency scale (1: the demo's latencies).
    #[arg(long, default_value_t = 0.2)]
    latency_scale: f64,
    /// Where to write every figure as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Calls or streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    Calls,
    Streams,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Calls => "calls",
            Kind::Streams => "streams",
        })
    }
}

/// The key the generated configuration accepts (it stores only the SHA-256).
const KEY: &str = "tta-loadtest-key-0123456789";
const KEY_SHA256: &str = "46fbc2ba982934c5f75268ebd29e66a6f3c550a4872a4e0636e4639ee2198bbc";

fn main() -> ExitCode {
    let mut args = Args::parse();
    let limit = raise_fd_limit();
    let most = u32::try_from(limit.saturating_sub(SPARE_FDS) / 2).unwrap_or(u32::MAX);
    if args.soak.is_none() && args.open_streams > most {
        eprintln!(
            "loadtest: the open-file limit is {limit} here (the hard limit cannot be raised), \
             so {most} streams are held open instead of {} (two descriptors each)",
            args.open_streams
        );
        args.open_streams = most;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An open stream holds two descriptors in the gateway (its client's connection and its
/// provider's, over HTTP/1.1) and two here: 10,000 streams need more than 20,000. Raises
/// the open-file limit as far as this process may, and returns it (the gateway inherits
/// it).
fn raise_fd_limit() -> u64 {
    const WANT: u64 = 65_536;
    if rlimit::setrlimit(rlimit::Resource::NOFILE, WANT, WANT).is_err() {
        let _ = rlimit::increase_nofile_limit(WANT);
    }
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1_024, |(soft, _)| soft)
}

/// Descriptors a gateway or this process needs besides the streams' (listeners, the
/// runtime, the pools' idle connections, files).
const SPARE_FDS: u64 = 400;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn run(args: Args) -> Result<(), AnyError> {
    if let Some(requests) = args.soak {
        return soak::run(
            &args.gateway,
            requests,
            args.concurrency,
            args.latency_scale,
        )
        .await;
    }
    let latency = Duration::from_millis(args.latency_ms);
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let provider = Providers::steady(any, latency).await?;
    let hold = LlmServer::bind(any).await?;
    hold.always(held_stream(Duration::from_secs(15)));
    let steady_url = provider.base_url(0);
    std::fs::create_dir_all("target/loadtest")?;
    // The rates run with the gateway's default `max_concurrency` (what its open-file
    // limit serves, at most 10,000): past that it sheds load (503 with Retry-After)
    // instead of running out of descriptors.
    let config = |cache: &str, max_concurrency: Option<u32>| {
        gateway_config(&steady_url, &hold.base_url(), cache, max_concurrency)
    };
    let client = client();
    let mut report = Report::new(&args);

    if args.open_streams > 0 {
        let gateway = Gateway::start(
            &args.gateway,
            &config("off", Some(args.open_streams + 1_000)),
            "open-streams",
        )?;
        let figures = open_streams(&client, &gateway, args.open_streams).await?;
        report.open_streams(&figures);
        drop(gateway);
    }

    let off = Gateway::start(&args.gateway, &config("off", None), "cache-off")?;
    let cached = Gateway::start(&args.gateway, &config("memory", None), "cache-memory")?;
    let direct_url = format!("{steady_url}/chat/completions");
    for stream in args.kinds.iter().map(|&k| k == Kind::Streams) {
        // Warm every connection pool and the cache's hot prompts.
        for url in [&direct_url, &off.url, &cached.url] {
            phase(&client, url, stream, 200, 1, Workload::Unique("warm")).await;
        }
        for i in 0..HOT_PROMPTS {
            let body = body(&hot_prompt(i), stream);
            let _ = one(&client, &cached.url, body, stream).await;
        }
        for &rate in &args.rates {
            let seconds = args.seconds;
            let direct = phase(
                &client,
                &direct_url,
                stream,
                rate,
                seconds,
                Workload::Unique("direct"),
            )
            .await;
            let before = off.cpu_seconds();
            let through = phase(
                &client,
                &off.url,
                stream,
                rate,
                seconds,
                Workload::Unique("off"),
            )
            .await;
            let off_usage = off.usage(before, through.wall);
            if through.errors > 0 {
                eprintln!(
                    "loadtest: cache off, {rate}/s, stream {stream}: {:#?}",
                    off.failures(&client).await
                );
            }
            let before = cached.cpu_seconds();
            let hits = phase(&client, &cached.url, stream, rate, seconds, Workload::Hot).await;
            let cached_usage = cached.usage(before, hits.wall);
            report.rate(
                stream,
                rate,
                &direct,
                &through,
                off_usage,
                &hits,
                cached_usage,
            );
        }
    }
    drop((off, cached));
    print!("{}", report.markdown);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json)?)?;
        println!("wrote {}", path.display());
    }
    if report.errors > 0 {
        return Err(format!("{} requests failed (see the tables)", report.errors).into());
    }
    Ok(())
}

/// A stream that sends its first content chunk at once, then holds for `hold`.
fn held_stream(hold: Duration) -> Reply {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        json!({"id": "hold", "object": "chat.completion.chunk", "created": 1_700_000_000_u64,
               "model": "hold-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let values = [
        chunk(
            json!({"role": "assistant", "content": "held "}),
            json!(null),
        ),
        chunk(json!({"content": "open"}), json!(null)),
        chunk(json!({}), json!("stop")),
    ];
    let mut reply = Reply::events(&values, Duration::ZERO, true, End::Close);
    if let Reply::Events { frames, .. } = &mut reply {
        frames[1].0 = hold;
    }
    reply
}

fn gateway_config(steady: &str, hold: &str, cache: &str, max_concurrency: Option<u32>) -> String {
    let (model, price_in, price_out) = (STEADY.model, STEADY.price_in, STEADY.price_out);
    let max_concurrency = max_concurrency
        .map(|n| format!("max_concurrency = {n}\n"))
        .unwrap_or_default();
    format!(
        r#"listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
{max_concurrency}
[providers.steady]
kind = "openai"
base_url = "{steady}"
[providers.steady.models.{model}]
input_per_1k = {price_in}
output_per_1k = {price_out}

[providers.hold]
kind = "openai"
base_url = "{hold}"
[providers.hold.models.hold-1]
input_per_1k = {price_in}
output_per_1k = {price_out}

[models.steady]
routes = [{{ provider = "steady", model = "{model}" }}]

[models.hold]
routes = [{{ provider = "hold", model = "hold-1" }}]

[cache]
store = "{cache}"
ttl_s = 3600

[timeouts]
first_chunk_ms = 10000
idle_ms = 60000
total_ms = 120000

[[keys]]
sha256 = "{KEY_SHA256}"
tenant = "load"

# No budget nor rate limit: the load test measures the gateway, not its refusals.
[tenants.load]
"#
    )
}

/// A `tta-gateway` child process, killed when dropped.
struct Gateway {
    child: Child,
    url: String,
    metrics: String,
}

impl Gateway {
    fn start(bin: &std::path::Path, config: &str, name: &str) -> Result<Self, AnyError> {
        let path = format!("target/loadtest/{name}.toml");
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(format!("target/loadtest/{name}.log"))?;
        let mut child = Command::new(bin)
            .args(["--config", &path])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut gateway = Self {
            child,
            url: String::new(),
            metrics: String::new(),
        };
        while gateway.url.is_empty() || gateway.metrics.is_empty() {
            let line = lines
                .next()
                .ok_or_else(|| format!("tta-gateway exited; see target/loadtest/{name}.log"))??;
            if let Some(addr) = line.strip_prefix("listening on ") {
                gateway.url = format!("{addr}/v1/chat/completions");
            } else if let Some(metrics) = line.strip_prefix("metrics on ") {
                gateway.metrics = metrics.to_owned();
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        eprintln!(
            "loadtest: {name}: {} (metrics on {})",
            gateway.url, gateway.metrics
        );
        Ok(gateway)
    }

    /// User plus system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&self.child.id().to_string())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in MiB.
    fn rss_mib(&self) -> f64 {
        rss_mib_of(self.pid())
    }

    /// The gateway's non-zero router error and interruption series (why requests
    /// failed, by class).
    async fn failures(&self, client: &reqwest::Client) -> Vec<String> {
        let Ok(response) = client.get(&self.metrics).send().await else {
            return vec!["(no scrape)".to_owned()];
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                (l.starts_with("tta_router_errors_total")
                    || l.starts_with("tta_router_stream_interruptions_total")
                    || l.starts_with("tta_router_decisions_total")
                    || l.starts_with("tta_timeout_outcomes_total"))
                    && !l.ends_with(" 0")
            })
            .map(|l| l.replace(",otel_scope_name=\"tta\",otel_scope_version=\"0.1.0\"", ""))
            .collect()
    }

    fn usage(&self, cpu_before: f64, wall: Duration) -> Usage {
        Usage {
            cpu_percent: 100.0 * (self.cpu_seconds() - cpu_before) / wall.as_secs_f64(),
            rss_mib: self.rss_mib(),
        }
    }
}

/// A process's user plus system CPU seconds so far (`/proc/PID/stat`, in USER_HZ = 100
/// ticks); `pid` may be `self`.
fn process_cpu_seconds(pid: &str) -> f64 {
    process_cpu_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// User plus system CPU seconds in the text of a `/proc/PID/stat` (its command name, in
/// parentheses, may hold spaces and parentheses; 0 when the text is not one).
fn process_cpu_of(stat: &str) -> f64 {
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// The machine's busy CPU seconds so far, summed over its cores.
fn machine_busy_seconds() -> f64 {
    machine_busy_of(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

/// Busy CPU seconds in the text of `/proc/stat`, from its `cpu` line: user, nice,
/// system, irq, softirq and steal (idle and iowait are not busy; guest time is counted
/// in user already). 0 when the text has no such line.
fn machine_busy_of(stat: &str) -> f64 {
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .unwrap_or("")
        .split_whitespace()
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / 100.0
}

/// Busy CPU seconds so far: the whole machine's and this process's (the load generator
/// and the mock provider).
#[derive(Clone, Copy)]
struct CpuMark {
    machine: f64,
    own: f64,
}

impl CpuMark {
    fn now() -> Self {
        Self {
            machine: machine_busy_seconds(),
            own: process_cpu_seconds("self"),
        }
    }
}

/// Where the machine's CPU went during a phase, in percent of one core (over the
/// phase's wall time, as the gateway's own figure is).
#[derive(Clone, Copy, Default)]
struct Cpu {
    /// Every process: up to 100% times the cores.
    machine: f64,
    /// This process: the load generator and the mock provider.
    generator: f64,
}

impl Cpu {
    /// The figures from `before` to now, over `wall`.
    fn since(before: CpuMark, wall: Duration) -> Self {
        let now = CpuMark::now();
        let wall = wall.as_secs_f64();
        if wall <= 0.0 {
            return Self::default();
        }
        Self {
            machine: 100.0 * (now.machine - before.machine) / wall,
            generator: 100.0 * (now.own - before.own) / wall,
        }
    }
}

/// A process's resident memory now, in MiB (`VmRSS`).
fn rss_mib_of(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1_024.0)
}

/// How many descriptors a process has open now.
fn descriptors_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy)]
struct Usage {
    cpu_percent: f64,
    rss_mib: f64,
}

fn client() -> reqwest::Client {
    // reqwest is built without a rustls provider of its own (as tta-llm installs it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(120))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a reqwest client")
}

const HOT_PROMPTS: usize = 100;

fn hot_prompt(i: usize) -> String {
    format!("Summarise incident report number {i} in two sentences.")
}

/// Which prompts a phase sends.
#[derive(Clone, Copy)]
enum Workload {
    /// A new prompt each request: every request reaches the provider.
    Unique(&'static str),
    /// Nine in ten requests one of the warmed hot prompts, one in ten new.
    Hot,
}

impl Workload {
    fn prompt(self, i: u64, rate: u32, stream: bool) -> (String, bool) {
        match self {
            Workload::Unique(tag) => (format!("loadtest {tag} {rate} {stream} request {i}"), false),
            Workload::Hot if !i.is_multiple_of(10) => {
                (hot_prompt((i as usize * 7) % HOT_PROMPTS), true)
            }
            Workload::Hot => (format!("loadtest hot {rate} {stream} miss {i}"), false),
        }
    }
}

fn body(prompt: &str, stream: bool) -> Vec<u8> {
    let mut body = json!({
        "model": "steady",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 64,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body.to_string().into_bytes()
}

/// What one request took.
struct Sample {
    /// From its send to the end of the answer (a stream's `[DONE]`).
    total: Duration,
    /// From its send to the first content in the body (a call: its whole answer).
    first: Duration,
}

/// One request, timed from its send: a call to its whole answer, a stream to its
/// `[DONE]` (a gateway's error event is a `stream error`).
async fn one(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    stream: bool,
) -> Result<Sample, String> {
    let started = Instant::now();
    let response = post(client, url, body).await?;
    if !stream {
        let bytes = response.bytes().await.map_err(|e| format!("body: {e}"))?;
        if memchr(b"\"choices\"", &bytes).is_none() {
            return Err("an answer without choices".to_owned());
        }
        let total = started.elapsed();
        return Ok(Sample {
            total,
            first: total,
        });
    }
    let mut response = response;
    let mut first = None;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("stream: {e}"))? {
        tail.extend_from_slice(&chunk);
        if first.is_none() && memchr(b"\"content\":\"", &tail).is_some() {
            first = Some(started.elapsed());
        }
        if memchr(b"data: [DONE]", &tail).is_some() {
            let total = started.elapsed();
            return Ok(Sample {
                total,
                first: first.unwrap_or(total),
            });
        }
        // The gateway's error event: the stream failed after its first chunk.
        if memchr(b"data: {\"error\"", &tail).is_some() {
            return Err("stream error".to_owned());
        }
        // Keep only what a marker split across chunks needs.
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    Err("stream ended without [DONE]".to_owned())
}

/// Posts `body` with the load test's key: the response when its status is a success,
/// else what failed.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> Result<reqwest::Response, String> {
    let response = client
        .post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !response.status().is_success() {
        return Err(failure(response).await);
    }
    Ok(response)
}

/// A failed response's status and the start of its body.
async fn failure(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    format!(
        "status {status}: {}",
        body.chars().take(160).collect::<String>()
    )
}

fn memchr(needle: &[u8], haystack: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What one phase measured.
struct Phase {
    total: Histogram<u64>,
    first: Histogram<u64>,
    /// Hot prompts only (the 90% hit workload).
    hot: Histogram<u64>,
    /// The misses of a hot workload, or every request of a unique one.
    cold: Histogram<u64>,
    /// How late requests were sent against their schedule.
    lag: Histogram<u64>,
    sent: u64,
    /// How long sending took (the schedule's length, when the generator kept up).
    sending: Duration,
    errors: u64,
    first_error: Option<String>,
    wall: Duration,
    cpu: Cpu,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Open-loop: request `i` is due at `i / rate` seconds from the start and is sent then
/// (checked every millisecond), whether or not the ones before it have answered.
async fn phase(
    client: &reqwest::Client,
    url: &str,
    stream: bool,
    rate: u32,
    seconds: u64,
    workload: Workload,
) -> Phase {
    let total_requests = u64::from(rate) * seconds;
    let mut tasks = JoinSet::new();
    let cpu_before = CpuMark::now();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let mut lag = histogram();
    while sent < total_requests {
        tick.tick().await;
        let now = start.elapsed();
        let due = ((now.as_secs_f64() * f64::from(rate)) as u64).min(total_requests);
        while sent < due {
            let scheduled = Duration::from_secs_f64(sent as f64 / f64::from(rate));
            let _ = lag.record(now.saturating_sub(scheduled).as_micros() as u64);
            let (prompt, hot) = workload.prompt(sent, rate, stream);
            let (client, url, body) = (client.clone(), url.to_owned(), body(&prompt, stream));
            tasks.spawn(async move { (hot, one(&client, &url, body, stream).await) });
            sent += 1;
        }
    }
    let sending = start.elapsed();
    let mut phase = Phase {
        sending,
        total: histogram(),
        first: histogram(),
        hot: histogram(),
        cold: histogram(),
        lag,
        sent,
        errors: 0,
        first_error: None,
        wall: Duration::ZERO,
        cpu: Cpu::default(),
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((hot, Ok(sample))) => {
                let micros = |d: Duration| (d.as_micros() as u64).max(1);
                let _ = phase.total.record(micros(sample.total));
                let _ = phase.first.record(micros(sample.first));
                let split = if hot { &mut phase.hot } else { &mut phase.cold };
                let _ = split.record(micros(sample.total));
            }
            Ok((_, Err(e))) => {
                phase.errors += 1;
                phase.first_error.get_or_insert(e);
            }
            Err(e) => {
                phase.errors += 1;
                phase.first_error.get_or_insert(e.to_string());
            }
        }
    }
    phase.wall = start.elapsed();
    phase.cpu = Cpu::since(cpu_before, phase.wall);
    phase
}

/// What holding `n` streams open through a fresh gateway showed.
struct OpenStreams {
    n: u32,
    idle_mib: f64,
    open_mib: f64,
    opened_in: Duration,
    completed: u32,
    errors: u32,
    first_error: Option<String>,
}

async fn open_streams(
    client: &reqwest::Client,
    gateway: &Gateway,
    n: u32,
) -> Result<OpenStreams, AnyError> {
    // Warm the gateway's paths once, then read its idle memory.
    let _ = one(client, &gateway.url, body("warm", false), false).await;
    let idle_mib = gateway.rss_mib();
    let started = Instant::now();
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (client, url, opened) = (client.clone(), gateway.url.clone(), Arc::clone(&opened));
        let mut request = json!({"model": "hold", "stream": true,
                                 "messages": [{"role": "user", "content": format!("hold {i}")}]});
        request["max_tokens"] = json!(16);
        tasks.spawn(async move {
            let mut settled = Settled(Some(opened));
            hold_one(&client, &url, request.to_string(), &mut settled).await
        });
        // Spread the connects: a listen backlog overflows with 10,000 SYNs at once.
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Every stream has its first chunk, or has failed (the held chunk comes 15 s later).
    let all = tokio::time::timeout(Duration::from_secs(12), opened.acquire_many(n)).await;
    let opened_in = started.elapsed();
    let open_mib = gateway.rss_mib();
    if all.is_err() {
        eprintln!("loadtest: not every stream had its first chunk or failed within 12 s");
    }
    let mut figures = OpenStreams {
        n,
        idle_mib,
        open_mib,
        opened_in,
        completed: 0,
        errors: 0,
        first_error: None,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(()) => figures.completed += 1,
            Err(e) => {
                figures.errors += 1;
                figures.first_error.get_or_insert(e);
            }
        }
    }
    Ok(figures)
}

/// Counts a held stream as settled (open, or failed) once, when its first chunk came or
/// when it ended before.
struct Settled(Option<Arc<tokio::sync::Semaphore>>);

impl Settled {
    fn now(&mut self) {
        if let Some(opened) = self.0.take() {
            opened.add_permits(1);
        }
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        self.now();
    }
}

async fn hold_one(
    client: &reqwest::Client,
    url: &str,
    body: String,
    settled: &mut Settled,
) -> Result<(), String> {
    let mut response = post(client, url, body).await?;
    let mut seen: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("stream: {e}"))? {
        seen.extend_from_slice(&chunk);
        if memchr(b"held ", &seen).is_some() {
            settled.now();
        }
        if memchr(b"data: [DONE]", &seen).is_some() {
            return Ok(());
        }
    }
    Err("stream ended without [DONE]".to_owned())
}

/// The tables and the JSON, built as the phases end.
struct Report {
    markdown: String,
    json: serde_json::Value,
    errors: u64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

fn signed_ms(a: u64, b: u64) -> f64 {
    (a as f64 - b as f64) / 1_000.0
}

impl Report {
    fn new(args: &Args) -> Self {
        let mut markdown = String::new();
        let _ = writeln!(
            markdown,
            "\n# loadtest: {} s per phase, provider latency {} ms, rates {:?}\n",
            args.seconds, args.latency_ms, args.rates
        );
        Self {
            markdown,
            json: json!({"seconds": args.seconds, "latency_ms": args.latency_ms,
                         "open_streams": null, "rates": []}),
            errors: 0,
        }
    }

    fn open_streams(&mut self, f: &OpenStreams) {
        let per_stream_kib = (f.open_mib - f.idle_mib) * 1_024.0 / f64::from(f.n);
        let _ = writeln!(
            self.markdown,
            "## {} streams open at once through the gateway\n\n\
             | gateway RSS idle | with every stream open | per open stream | all open after | completed | errors |\n\
             |---|---|---|---|---|---|\n\
             | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.2} s | {} | {}{} |\n",
            f.n,
            f.idle_mib,
            f.open_mib,
            per_stream_kib,
            f.opened_in.as_secs_f64(),
            f.completed,
            f.errors,
            f.first_error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
        );
        self.errors += u64::from(f.errors);
        self.json["open_streams"] = json!({
            "streams": f.n, "idle_rss_mib": f.idle_mib, "open_rss_mib": f.open_mib,
            "per_stream_kib": per_stream_kib, "opened_s": f.opened_in.as_secs_f64(),
            "completed": f.completed, "errors": f.errors,
        });
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one row: the three phases of a rate and the two gateways' usage"
    )]
    fn rate(
        &mut self,
        stream: bool,
        rate: u32,
        direct: &Phase,
        off: &Phase,
        off_usage: Usage,
        hot: &Phase,
        hot_usage: Usage,
    ) {
        let kind = if stream { "streams" } else { "calls" };
        if self.json["rates"]
            .as_array()
            .is_none_or(|r| r.last().is_none_or(|last| last["kind"] != kind))
        {
            let _ = writeln!(
                self.markdown,
                "## {kind}{}\n\n\
                 | rate | achieved | direct p50 / p99 | overhead p50 | p95 | p99 | max | {}errors | gateway CPU | RSS | 90% hits: hit p50 / p99 / max | miss overhead p99 | errors | CPU | RSS | send lag p99 | machine busy: direct / cache off | generator + provider CPU: direct / cache off |\n\
                 |---|---|---|---|---|---|---|---|{}---|---|---|---|---|---|---|---|---|---|",
                if stream {
                    " (latency to [DONE]; first-chunk overhead beside it)"
                } else {
                    ""
                },
                if stream {
                    "first chunk p50 / p99 | "
                } else {
                    ""
                },
                if stream { "---|" } else { "" },
            );
        }
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
        let over = |q_: f64| signed_ms(q(&off.total, q_), q(&direct.total, q_));
        let first_over = |q_: f64| signed_ms(q(&off.first, q_), q(&direct.first, q_));
        let achieved = off.sent as f64 / off.sending.as_secs_f64();
        let stream_col = if stream {
            format!("{:+.2} / {:+.2} ms | ", first_over(0.5), first_over(0.99))
        } else {
            String::new()
        };
        let _ = writeln!(
            self.markdown,
            "| {rate} | {achieved:.0} | {:.1} / {:.1} ms | {:+.2} ms | {:+.2} ms | {:+.2} ms | {:+.2} ms | {stream_col}{} | {:.0}% | {:.1} MiB | {:.2} / {:.2} / {:.2} ms | {:+.2} ms | {} | {:.0}% | {:.1} MiB | {:.2} ms | {:.0}% / {:.0}% | {:.0}% / {:.0}% |",
            ms(q(&direct.total, 0.5)),
            ms(q(&direct.total, 0.99)),
            over(0.5),
            over(0.95),
            over(0.99),
            signed_ms(off.total.max(), direct.total.max()),
            off.errors + direct.errors,
            off_usage.cpu_percent,
            off_usage.rss_mib,
            ms(q(&hot.hot, 0.5)),
            ms(q(&hot.hot, 0.99)),
            ms(hot.hot.max()),
            signed_ms(q(&hot.cold, 0.99), q(&direct.total, 0.99)),
            hot.errors,
            hot_usage.cpu_percent,
            hot_usage.rss_mib,
            ms(off
                .lag
                .value_at_quantile(0.99)
                .max(hot.lag.value_at_quantile(0.99))),
            direct.cpu.machine,
            off.cpu.machine,
            direct.cpu.generator,
            off.cpu.generator,
        );
        for (name, p) in [("direct", direct), ("cache off", off), ("90% hits", hot)] {
            if let Some(e) = &p.first_error {
                let _ = writeln!(
                    self.markdown,
                    "<!-- {kind} {rate} {name}: {} errors, first: {e} -->",
                    p.errors
                );
            }
        }
        self.errors += direct.errors + off.errors + hot.errors;
        let pct = |h: &Histogram<u64>| json!({"p50_ms": ms(q(h, 0.5)), "p95_ms": ms(q(h, 0.95)), "p99_ms": ms(q(h, 0.99)), "max_ms": ms(h.max())});
        let entry = json!({
            "kind": kind, "rate": rate,
            "direct": {"sent": direct.sent, "errors": direct.errors, "latency": pct(&direct.total), "first_chunk": pct(&direct.first),
                       "machine_cpu_percent": direct.cpu.machine, "generator_cpu_percent": direct.cpu.generator},
            "cache_off": {"sent": off.sent, "errors": off.errors, "latency": pct(&off.total), "first_chunk": pct(&off.first),
                          "overhead_ms": {"p50": over(0.5), "p95": over(0.95), "p99": over(0.99),
                                          "max": signed_ms(off.total.max(), direct.total.max())},
                          "first_chunk_overhead_ms": {"p50": first_over(0.5), "p99": first_over(0.99)},
                          "cpu_percent": off_usage.cpu_percent, "rss_mib": off_usage.rss_mib,
                          "send_lag_p99_ms": ms(off.lag.value_at_quantile(0.99)),
                          "machine_cpu_percent": off.cpu.machine, "generator_cpu_percent": off.cpu.generator},
            "hits_90": {"sent": hot.sent, "errors": hot.errors, "hit_latency": pct(&hot.hot), "miss_latency": pct(&hot.cold),
                        "cpu_percent": hot_usage.cpu_percent, "rss_mib": hot_usage.rss_mib},
        });
        if let Some(rates) = self.json["rates"].as_array_mut() {
            rates.push(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_cpu_line_counts_idle_and_iowait_as_not_busy_and_ignores_guest_time() {
        let stat = "cpu  300 20 80 1000 100 5 15 30 200 0\ncpu0 150 10 40 500 50 2 8 15 100 0\n";
        let busy = machine_busy_of(stat);
        assert!((busy - 4.5).abs() < 1e-9, "{busy}");
        assert_eq!(machine_busy_of(""), 0.0);
        assert_eq!(machine_busy_of("intr 1 2 3\n"), 0.0);
    }

    #[test]
    fn a_process_stat_with_parentheses_in_its_name_reads_its_user_and_system_ticks() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        let stat = "4242 (tta) (a b)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0";
        assert!((process_cpu_of(stat) - 3.25).abs() < 1e-9);
        assert_eq!(process_cpu_of(""), 0.0);
        assert_eq!(process_cpu_of("garbage"), 0.0);
    }

    #[test]
    fn a_phase_that_spins_a_core_shows_in_its_own_and_the_machines_cpu() {
        let before = CpuMark::now();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(400) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let cpu = Cpu::since(before, started.elapsed());
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        // Ticks are 10 ms, and other tests may share the cores: a loose lower bound.
        assert!(cpu.generator > 20.0, "own CPU {}%", cpu.generator);
        assert!(
            cpu.machine >= cpu.generator * 0.8,
            "machine {}% own {}%",
            cpu.machine,
            cpu.generator
        );
        assert!(
            cpu.machine <= 100.0 * cores + 10.0,
            "machine {}%",
            cpu.machine
        );
    }
}
