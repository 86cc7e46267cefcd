//! Finding and installing the tools the tasks need.

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// Makes sure `cargo <subcommand>` works, installing `krate` with `cargo install --locked`
/// when it does not.
pub(crate) fn ensure_cargo_tool(sh: &Shell, subcommand: &str, krate: &str) -> anyhow::Result<()> {
    if cmd!(sh, "cargo {subcommand} --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    eprintln!(
        "xtask: `cargo {subcommand}` is missing; installing it with `cargo install --locked {krate}`"
    );
    cmd!(sh, "cargo install --locked {krate}")
        .run()
        .with_context(|| {
            format!("could not install {krate}; install it with `cargo install --locked {krate}`")
        })
}

/// Makes sure the rustup component is installed.
pub(crate) fn ensure_rustup_component(sh: &Shell, component: &str) -> anyhow::Result<()> {
    let installed = cmd!(sh, "rustup component list --installed")
        .quiet()
        .read()
        .unwrap_or_default();
    let base = component.trim_end_matches("-preview");
    if installed.lines().any(|l| l.starts_with(base)) {
        return Ok(());
    }
    eprintln!("xtask: rustup component `{component}` is missing; installing it");
    cmd!(sh, "rustup component add {component}")
        .run()
        .with_context(|| format!("could not install it; run `rustup component add {component}`"))
}

/// `true` when `cargo nextest` is available. Under CI it is installed when missing;
/// elsewhere plain `cargo test` is the fallback.
pub(crate) fn has_nextest(sh: &Shell) -> bool {
    let found = || {
        cmd!(sh, "cargo nextest --version")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok()
    };
    found()
        || (crate::is_ci() && ensure_cargo_tool(sh, "nextest", "cargo-nextest").is_ok() && found())
}

/// Makes sure the rustup toolchain `version` is installed (minimal profile).
pub(crate) fn ensure_toolchain(sh: &Shell, version: &str) -> anyhow::Result<()> {
    let installed = cmd!(sh, "rustup toolchain list")
        .quiet()
        .read()
        .unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.starts_with(&format!("{version}-")))
    {
        return Ok(());
    }
    eprintln!("xtask: toolchain {version} is missing; installing it");
    cmd!(sh, "rustup toolchain install {version} --profile minimal")
        .run()
        .with_context(|| format!("run `rustup toolchain install {version} --profile minimal`"))
}

/// Reads `rust-version` from the workspace manifest.
pub(crate) fn workspace_rust_version(sh: &Shell) -> anyhow::Result<String> {
    let manifest = sh.read_file("Cargo.toml")?;
    for line in manifest.lines() {
        if let Some(rest) = line.trim().strip_prefix("rust-version") {
            let value = rest
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            if !value.is_empty() {
                return Ok(value.to_owned());
            }
        }
    }
    bail!("no rust-version in the workspace Cargo.toml")
}

/// The system programs the test suite runs for real, with the Debian package of each.
const SYSTEM_PROGRAMS: &[(&str, &str)] = &[
    ("promtool", "prometheus"),
    ("redis-server", "redis-server"),
    // The cluster tests join their nodes with it.
    ("redis-cli", "redis-tools"),
    // The TLS tests make their CA and certificate with it.
    ("openssl", "openssl"),
];

fn program_exists(bin: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .any(|dir| dir.join(bin).is_file())
}

/// Installs the system programs the tests need (promtool, redis-server) when missing.
pub(crate) fn ensure_system_programs(sh: &Shell) -> anyhow::Result<()> {
    let packages: Vec<&str> = SYSTEM_PROGRAMS
        .iter()
        .filter(|(bin, _)| !program_exists(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    eprintln!("xtask: installing {list} (needed by the tests)");
    let _frontend = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -q")
        .run()
        .context("apt-get update failed")?;
    cmd!(
        sh,
        "apt-get install -y -q --no-install-recommends {packages...}"
    )
    .run()
    .with_context(|| format!("could not install them; run `apt-get install {list}`"))
}
