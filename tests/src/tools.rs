//! Finding (or installing) the external programs some tests need: `promtool` and
//! `redis-server`. A missing program is installed with Debian's packages when possible;
//! otherwise the test fails with the install command. Tests never skip.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

static INSTALL: Mutex<()> = Mutex::new(());

/// The path of `binary`, installing Debian's `package` when it is missing.
///
/// # Panics
///
/// When the program is missing and cannot be installed: the message says how to
/// install it.
pub fn find_or_install(binary: &str, package: &str) -> PathBuf {
    if let Some(path) = which(binary) {
        return path;
    }
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = which(binary) {
        return path;
    }
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed =
        quiet(&["update"]) && quiet(&["install", "-y", "--no-install-recommends", package]);
    match which(binary) {
        Some(path) if installed => path,
        Some(path) => path,
        None => panic!(
            "`{binary}` is needed by this test and could not be installed; run `apt-get install {package}`"
        ),
    }
}

fn which(binary: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .chain([
            "/usr/bin".into(),
            "/usr/sbin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// Runs `promtool check metrics` on `exposition`; `Err` holds promtool's complaints.
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    use std::io::Write;
    let promtool = find_or_install("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(exposition.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
