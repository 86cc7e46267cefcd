//! `cargo xtask features`: the facade builds with each feature alone, and with none.

use xshell::{Shell, cmd};

/// Every feature of `tta-observability-integration`, checked one at a time.
const FEATURES: &[&str] = &[
    "apm",
    "otlp",
    "timeout",
    "cache",
    "cache-redis",
    "router",
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
    Ok(())
}
