//! `cargo xtask coverage`: the test suite under cargo-llvm-cov, with a line-coverage gate
//! over the library crates. The gate lives in `xtask/coverage-threshold`; it is a ratchet:
//! raise it when coverage rises, never lower it.

use anyhow::Context;
use xshell::{Shell, cmd};

/// Code that is not library code: the xtask, test code, the demo and the benches.
const IGNORE: &str = r"(^|/)(xtask|tests|tta-demo|tta-benches|benches)/";

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    crate::tools::ensure_rustup_component(sh, "llvm-tools-preview")?;
    crate::tools::ensure_cargo_tool(sh, "llvm-cov", "cargo-llvm-cov")?;
    crate::tools::ensure_system_programs(sh)?;
    let threshold = threshold(sh)?;
    let runner: &[&str] = if crate::tools::has_nextest(sh) {
        &["nextest", "--no-tests=fail"]
    } else {
        eprintln!("xtask: cargo-nextest not found; coverage runs cargo test");
        &["test", "--lib", "--bins", "--tests"]
    };
    cmd!(
        sh,
        "cargo llvm-cov {runner...} --workspace --all-features --locked
            --ignore-filename-regex {IGNORE} --fail-under-lines {threshold}"
    )
    .run()
    .with_context(|| {
        format!("tests failed, or line coverage of the library crates is below {threshold}%")
    })?;
    Ok(())
}

fn threshold(sh: &Shell) -> anyhow::Result<String> {
    let raw = sh.read_file("xtask/coverage-threshold")?;
    let value: f64 = raw
        .trim()
        .parse()
        .context("xtask/coverage-threshold is not a number")?;
    anyhow::ensure!(
        value >= 80.0,
        "the coverage gate may not be below 80% (found {value})"
    );
    Ok(raw.trim().to_owned())
}
