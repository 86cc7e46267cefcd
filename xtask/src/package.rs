//! `cargo xtask package`: every publishable crate packages and builds as crates.io would.

use std::path::PathBuf;

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    clear_stale_local_registry(sh)?;
    // `--allow-dirty` so it also runs before a commit; CI runs on a clean clone anyway.
    cmd!(
        sh,
        "cargo publish --workspace --dry-run --locked --allow-dirty"
    )
    .run()?;
    Ok(())
}

/// `cargo publish --workspace` verifies each crate against its siblings through a
/// temporary local registry, and cargo keeps the sources it unpacks from it under
/// `$CARGO_HOME/registry/src/<hash>/`. The version stays 0.1.0 between runs, so a stale
/// unpacked (or built) sibling would be verified instead of the current one: remove them
/// first.
fn clear_stale_local_registry(sh: &Shell) -> anyhow::Result<()> {
    sh.remove_path("target/package/tmp-registry")?;
    // Registry crates are fingerprinted by version alone: drop the siblings' build
    // records too, or a stale build of the same version would be linked.
    for profile in ["debug", "release"] {
        let fingerprints = format!("target/{profile}/.fingerprint");
        if let Ok(entries) = std::fs::read_dir(&fingerprints) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("tta-") {
                    sh.remove_path(entry.path())?;
                }
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = cargo_home.map(|h| h.join("registry").join("src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        let is_crates_io = registry
            .file_name()
            .to_string_lossy()
            .starts_with("index.crates.io");
        if is_crates_io {
            continue;
        }
        for unpacked in std::fs::read_dir(registry.path())?.flatten() {
            if unpacked.file_name().to_string_lossy().starts_with("tta-") {
                sh.remove_path(unpacked.path())?;
            }
        }
    }
    Ok(())
}
