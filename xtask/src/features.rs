//! `cargo xtask features`: the facade builds with each feature alone, and with none; and
//! tta-core's tests pass with its default features.

use xshell::{Shell, cmd};

/// Every feature of `tta-observability-integration`, checked one at a time.
const FEATURES: &[&str] = &[
    "apm",
    "otlp",
    "timeout",
    "cache",
    "cache-redis",
    "router",
    "llm",
    "limit",
    "limit-redis",
    "tower",
    "full",
];

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let package = "tta-observability-integration";
    cmd!(
        sh,
        "cargo check --locked -p {package} --no-default-features"
    )
    .run()?;
    for feature in FEATURES {
        cmd!(
            sh,
            "cargo check --locked -p {package} --no-default-features --features {feature}"
        )
        .run()?;
    }
    // The build every user without tta-apm gets: tta-core's tests with its default
    // features (no tower, no bound instruments), not only checked.
    cmd!(sh, "cargo test --locked -p tta-core").run()?;
    Ok(())
}
