//! `cargo xtask msrv`: the workspace builds with the toolchain named by its `rust-version`.

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let version = crate::tools::workspace_rust_version(sh)?;
    crate::tools::ensure_toolchain(sh, &version)?;
    let toolchain = format!("+{version}");
    // A separate target directory keeps the stable build's artifacts intact.
    cmd!(
        sh,
        "cargo {toolchain} check --workspace --all-targets --all-features --locked --target-dir target/msrv"
    )
    .run()?;
    Ok(())
}
