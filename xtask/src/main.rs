//! Repository automation for the tta workspace: `cargo xtask <task>`.
//!
//! Every task runs alone; `ci` runs the gating ones in order and stops at the first
//! failure, naming it. `cargo xtask help` lists them, from the one table [`TASKS`].

mod bench;
mod ci;
mod coverage;
mod deny;
mod doc;
mod features;
mod fuzz;
mod lint;
mod loadtest;
mod msrv;
mod package;
mod rules;
mod soak;
mod test;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use xshell::Shell;

/// A task: its name, the extra arguments it accepts, one line of help, whether `ci`
/// runs it (in this table's order), and what it runs. The one list of tasks: dispatch,
/// help and `ci` all read it.
pub(crate) struct Task {
    name: &'static str,
    flags: &'static [&'static str],
    help: &'static str,
    in_ci: bool,
    run: fn(&Shell, &[String]) -> anyhow::Result<()>,
}

/// Every task; `ci` runs those marked `in_ci`, in this order: cheap first, the coverage
/// run as the one test run.
pub(crate) const TASKS: &[Task] = &[
    Task {
        name: "fmt",
        flags: &[],
        help: "cargo fmt --check over the workspace",
        in_ci: true,
        run: |sh, _| lint::fmt(sh),
    },
    Task {
        name: "clippy",
        flags: &[],
        help: "cargo clippy on every target and feature, warnings denied",
        in_ci: true,
        run: |sh, _| lint::clippy(sh),
    },
    Task {
        name: "features",
        flags: &[],
        help: "the facade checked with no feature and with each alone; tta-core tested with its default features",
        in_ci: true,
        run: |sh, _| features::run(sh),
    },
    Task {
        name: "rules",
        flags: &[],
        help: "promtool check rules and test rules on docs/prometheus/alerts.yml",
        in_ci: true,
        run: |sh, _| rules::run(sh),
    },
    Task {
        name: "coverage",
        flags: &[],
        help: "the test suite under cargo-llvm-cov, gated by xtask/coverage-threshold",
        in_ci: true,
        run: |sh, _| coverage::run(sh),
    },
    Task {
        name: "doctest",
        flags: &[],
        help: "doctests only",
        in_ci: true,
        run: |sh, _| test::doctests(sh),
    },
    Task {
        name: "doc",
        flags: &[],
        help: "cargo doc with RUSTDOCFLAGS=-D warnings",
        in_ci: true,
        run: |sh, _| doc::run(sh),
    },
    Task {
        name: "deny",
        flags: &[],
        help: "cargo-deny: bans, licenses, sources (offline); advisories when reachable",
        in_ci: true,
        run: |sh, _| deny::run(sh),
    },
    Task {
        name: "package",
        flags: &[],
        help: "cargo publish --workspace --dry-run",
        in_ci: true,
        run: |sh, _| package::run(sh),
    },
    Task {
        name: "msrv",
        flags: &[],
        help: "cargo check with the workspace's rust-version toolchain",
        in_ci: true,
        run: |sh, _| msrv::run(sh),
    },
    Task {
        name: "ci",
        flags: &[],
        help: "every task marked for ci, in order; stops at the first failure, naming it",
        in_ci: false,
        run: |sh, _| ci::run(sh),
    },
    Task {
        name: "test",
        flags: &[],
        help: "the test suite (cargo-nextest when installed, else cargo test) and doctests",
        in_ci: false,
        run: |sh, _| test::run(sh),
    },
    Task {
        name: "bench",
        flags: &["--table"],
        help: "the criterion benches and the store RSS probe, with each ratio against its target (not in ci); --table prints the last run's table",
        in_ci: false,
        run: bench::run,
    },
    Task {
        name: "soak",
        flags: &["--gateway"],
        help: "the large load runs (not in ci): the demo on Redis at 200k requests and on the memory store at 1M; --gateway: 100k requests through tta-gateway to the faulty simulated providers",
        in_ci: false,
        run: soak::run,
    },
    Task {
        name: "fuzz",
        flags: &["--quick"],
        help: "the fuzz properties (SSE parsers, the gateway's request decoder), 120 s each or 10 s with --quick (not in ci)",
        in_ci: false,
        run: fuzz::run,
    },
    Task {
        name: "loadtest",
        flags: &["--quick"],
        help: "the gateway against a mock provider at fixed rates, straight and through it (not in ci): overhead percentiles, errors, CPU and RSS; 10,000 open streams",
        in_ci: false,
        run: loadtest::run,
    },
];

fn help() -> String {
    let mut out = String::from("cargo xtask <task> [flags]\n\nTasks:\n");
    for task in TASKS {
        let flags = task.flags.join(" ");
        out.push_str(&format!(
            "  {:<9} {flags}{}{}\n",
            task.name,
            if flags.is_empty() { "" } else { ": " },
            task.help
        ));
    }
    out.push_str(
        "\nMissing tools are installed by the task (cargo install --locked, rustup component add).\n\
         Under CI=true a tool that cannot be installed fails the task; nothing is skipped silently.\n",
    );
    out
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = dispatch(&args);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> anyhow::Result<()> {
    let Some(name) = args.first() else {
        eprint!("{}", help());
        anyhow::bail!("no task given");
    };
    if matches!(name.as_str(), "help" | "--help" | "-h") {
        print!("{}", help());
        return Ok(());
    }
    let Some(task) = TASKS.iter().find(|t| t.name == name) else {
        eprint!("unknown task `{name}`\n\n{}", help());
        anyhow::bail!("unknown task `{name}`");
    };
    let extra = &args[1..];
    if let Some(unknown) = extra.iter().find(|a| !task.flags.contains(&a.as_str())) {
        eprint!("{}", help());
        anyhow::bail!("task `{name}` does not take `{unknown}`");
    }
    (task.run)(&shell()?, extra)
}

/// A shell at the workspace root.
fn shell() -> anyhow::Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    Ok(sh)
}

fn project_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// `true` when running under CI (`CI=true`), where nothing may be skipped.
fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
