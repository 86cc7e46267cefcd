//! `cargo xtask fmt` and `cargo xtask clippy`.

use xshell::{Shell, cmd};

pub(crate) fn fmt(sh: &Shell) -> anyhow::Result<()> {
    crate::tools::ensure_rustup_component(sh, "rustfmt")?;
    cmd!(sh, "cargo fmt --all --check").run()?;
    Ok(())
}

pub(crate) fn clippy(sh: &Shell) -> anyhow::Result<()> {
    crate::tools::ensure_rustup_component(sh, "clippy")?;
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --all-features --locked -- -D warnings"
    )
    .run()?;
    Ok(())
}
