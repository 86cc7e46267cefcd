//! Repository automation for the tta workspace: `cargo xtask <task>`.
//!
//! Every task runs alone; `ci` runs the gating ones in order and stops at the first
//! failure, naming it.

mod bench;
mod ci;
mod coverage;
mod deny;
mod doc;
mod features;
mod lint;
mod msrv;
mod package;
mod rules;
mod soak;
mod test;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use xshell::Shell;

const HELP: &str = "\
cargo xtask <task>

Tasks:
  bench     the criterion benches and the store RSS probe, with a table of each ratio
            against its target (not in ci); `bench --table` prints the table of the
            last run without running anything
  ci        fmt, clippy, features, rules, coverage (the test run, with the line-coverage gate),
            doctests, doc, deny, package and msrv, in order; stops at the first failure
  fmt       cargo fmt --check over the workspace
  features  the facade checked with no feature and with each feature alone
  clippy    cargo clippy on every target and feature, warnings denied
  test      the test suite (cargo-nextest when installed, else cargo test) and doctests
  doctest   doctests only
  doc       cargo doc with RUSTDOCFLAGS=-D warnings
  coverage  the test suite under cargo-llvm-cov, gated by xtask/coverage-threshold
  deny      cargo-deny: bans, licenses, sources (offline); advisories when reachable
  package   cargo publish --workspace --dry-run
  rules     promtool check rules on docs/prometheus/alerts.yml
  soak      the large load runs (not in ci): the demo on Redis at 200k requests, and on
            the memory store at 1M requests; figures in docs/reliability.md
  msrv      cargo check with the workspace's rust-version toolchain

Missing tools are installed by the task (cargo install --locked, rustup component add).
Under CI=true a tool that cannot be installed fails the task; nothing is skipped silently.
";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = shell().and_then(|sh| match task.as_deref() {
        Some("ci") => ci::run(&sh),
        Some("bench") if std::env::args().nth(2).as_deref() == Some("--table") => {
            bench::table(&sh);
            Ok(())
        }
        Some("bench") => bench::run(&sh),
        Some("fmt") => lint::fmt(&sh),
        Some("features") => features::run(&sh),
        Some("clippy") => lint::clippy(&sh),
        Some("test") => test::run(&sh),
        Some("doctest") => test::doctests(&sh),
        Some("doc") => doc::run(&sh),
        Some("coverage") => coverage::run(&sh),
        Some("deny") => deny::run(&sh),
        Some("package") => package::run(&sh),
        Some("rules") => rules::run(&sh),
        Some("soak") => soak::run(&sh),
        Some("msrv") => msrv::run(&sh),
        Some("help" | "--help" | "-h") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => {
            eprint!("unknown task `{other}`\n\n{HELP}");
            Err(anyhow::anyhow!("unknown task `{other}`"))
        }
        None => {
            eprint!("{HELP}");
            Err(anyhow::anyhow!("no task given"))
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A shell at the workspace root.
fn shell() -> anyhow::Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    Ok(sh)
}

fn project_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// `true` when running under CI (`CI=true`), where nothing may be skipped.
fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
