//! `cargo xtask loadtest`: the gateway's overhead against a mock provider at fixed
//! request rates (TensorZero's method; not part of `ci`). Builds `tta-gateway` and the
//! `loadtest` binary of tta-benches in release, runs them, prints the tables and writes
//! `target/loadtest/loadtest.json`. `--quick`: 5 s per rate, up to 2,000 per second.

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell, flags: &[String]) -> anyhow::Result<()> {
    cmd!(
        sh,
        "cargo build --release --locked -p tta-gateway -p tta-benches --bin tta-gateway --bin loadtest"
    )
    .run()?;
    let quick: &[&str] = if flags.iter().any(|f| f == "--quick") {
        &[
            "--seconds",
            "5",
            "--rates",
            "500,1000,2000",
            "--open-streams",
            "2000",
        ]
    } else {
        &[]
    };
    cmd!(
        sh,
        "target/release/loadtest --gateway target/release/tta-gateway --json target/loadtest/loadtest.json {quick...}"
    )
    .run()?;
    Ok(())
}
