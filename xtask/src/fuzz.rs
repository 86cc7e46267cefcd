//! `cargo xtask fuzz`: the fuzz properties, time-boxed (not part of `ci`).
//!
//! The properties are ordinary tests named `fuzz` (tta-llm's SSE rules under OpenAI's
//! and Anthropic's parsers, tta-gateway's request decoder), which `ci` runs over a few
//! hundred inputs each. Here each keeps generating inputs for its time box
//! (`tta_tests::fuzz::SECONDS_VAR`): 120 s, or 10 s with `--quick`; the variable, when set,
//! overrides both. A failure prints the shrunk input and fails the task.

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell, flags: &[String]) -> anyhow::Result<()> {
    let quick = flags.iter().any(|f| f == "--quick");
    let seconds = std::env::var("TTA_FUZZ_SECONDS")
        .unwrap_or_else(|_| if quick { "10" } else { "120" }.to_owned());
    cmd!(
        sh,
        "cargo test --release --locked -p tta-llm -p tta-gateway --lib fuzz -- --nocapture --test-threads 2"
    )
    .env("TTA_FUZZ_SECONDS", &seconds)
    .run()?;
    Ok(())
}
