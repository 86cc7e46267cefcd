//! `cargo xtask soak`: the large load runs (not part of `ci`), with their figures.
//!
//! 1. The demo on a real Redis: 200,000 requests at concurrency 1,024, no simulated
//!    latency. Every request must end in a success or a typed error.
//! 2. The demo on the memory store: 1,000,000 requests at concurrency 512.
//!
//! Each prints the demo's summary and writes its JSON under `target/soak/`.
//!
//! `--gateway`: 100,000 requests (half streamed) at concurrency 256 through `tta-gateway`
//! to the demo's simulated providers with their default fault mix (the `loadtest`
//! binary's `--soak`): every failure of a kind the faults explain, RSS growth under 5%
//! after warm-up, no descriptor growth.

use anyhow::{Context, ensure};
use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell, flags: &[String]) -> anyhow::Result<()> {
    if flags.iter().any(|f| f == "--gateway") {
        return gateway(sh);
    }
    crate::tools::ensure_system_programs(sh)?;
    cmd!(sh, "cargo build --release --locked -p tta-demo").run()?;
    sh.create_dir("target/soak")?;
    let port = "16399";
    let redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("could not start redis-server")?;
    let mut redis = KillOnDrop(redis);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let url = format!("redis://127.0.0.1:{port}");
    let runs: [(&str, Vec<&str>); 2] = [
        (
            "redis-200k",
            vec![
                "--requests",
                "200000",
                "--concurrency",
                "1024",
                "--latency-scale",
                "0",
                "--redis",
                &url,
            ],
        ),
        (
            "memory-1m",
            vec![
                "--requests",
                "1000000",
                "--concurrency",
                "512",
                "--latency-scale",
                "0",
            ],
        ),
    ];
    for (name, args) in runs {
        let json = format!("target/soak/{name}.json");
        println!("\n==> soak: {name}");
        cmd!(
            sh,
            "target/release/tta-demo {args...} --metrics-addr 127.0.0.1:0 --json {json}"
        )
        .run()?;
        let summary = sh.read_file(&json)?;
        let field = |key: &str| -> Option<f64> {
            let at = summary.find(&format!("\"{key}\":"))? + key.len() + 3;
            summary[at..]
                .trim_start()
                .split([',', '\n'])
                .next()?
                .trim()
                .parse()
                .ok()
        };
        let (requests, succeeded, failed) =
            (field("requests"), field("succeeded"), field("failed"));
        ensure!(
            matches!((requests, succeeded, failed), (Some(r), Some(s), Some(f)) if (s + f - r).abs() < 0.5),
            "{name}: requests are unaccounted for"
        );
        if let (Some(warm), Some(end)) = (field("rss_warmup_mb"), field("rss_end_mb")) {
            println!(
                "soak {name}: RSS {warm:.1} MiB after warm-up, {end:.1} MiB at the end ({:+.1}%)",
                100.0 * (end - warm) / warm
            );
        }
    }
    redis.0.kill().ok();
    Ok(())
}

fn gateway(sh: &Shell) -> anyhow::Result<()> {
    cmd!(
        sh,
        "cargo build --release --locked -p tta-gateway -p tta-benches --bin tta-gateway --bin loadtest"
    )
    .run()?;
    sh.create_dir("target/loadtest")?;
    cmd!(
        sh,
        "target/release/loadtest --gateway target/release/tta-gateway --soak 100000 --concurrency 256"
    )
    .run()?;
    Ok(())
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
