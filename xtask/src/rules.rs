//! `cargo xtask rules`: the shipped Prometheus alert rules are valid, and their unit
//! tests pass (each alert fires for the condition it names and stays quiet otherwise).

use xshell::{Shell, cmd};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    crate::tools::ensure_system_programs(sh)?;
    cmd!(sh, "promtool check rules docs/prometheus/alerts.yml").run()?;
    cmd!(sh, "promtool test rules docs/prometheus/alerts_test.yml").run()?;
    Ok(())
}
