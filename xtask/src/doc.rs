//! `cargo xtask doc`: the docs build with every warning denied.

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let _flags = sh.push_env("RUSTDOCFLAGS", "-D warnings");
    cmd!(
        sh,
        "cargo doc --workspace --all-features --no-deps --locked"
    )
    .run()?;
    Ok(())
}
