//! `cargo xtask test` and `cargo xtask doctest`.

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    crate::tools::ensure_system_programs(sh)?;
    if crate::tools::has_nextest(sh) {
        cmd!(
            sh,
            "cargo nextest run --workspace --all-features --locked --no-tests=fail"
        )
        .run()?;
    } else {
        eprintln!(
            "xtask: cargo-nextest not found; using cargo test (install: cargo install --locked cargo-nextest)"
        );
        cmd!(
            sh,
            "cargo test --workspace --all-features --locked --lib --bins --tests"
        )
        .run()?;
    }
    doctests(sh)
}

pub(crate) fn doctests(sh: &Shell) -> anyhow::Result<()> {
    cmd!(sh, "cargo test --workspace --all-features --locked --doc").run()?;
    Ok(())
}
