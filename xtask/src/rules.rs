//! `cargo xtask rules`: the shipped Prometheus alert rules are valid.

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    crate::tools::ensure_system_programs(sh)?;
    cmd!(sh, "promtool check rules docs/prometheus/alerts.yml").run()?;
    Ok(())
}
