//! `cargo xtask package`: every publishable crate packages and builds as crates.io would.

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    // `--allow-dirty` so it also runs before a commit; CI runs on a clean clone anyway.
    cmd!(
        sh,
        "cargo publish --workspace --dry-run --locked --allow-dirty"
    )
    .run()?;
    Ok(())
}
