//! `cargo xtask ci`: every gate in order, stopping at the first failure.

use std::time::Instant;

use xshell::Shell;

type Task = fn(&Shell) -> anyhow::Result<()>;

/// The gates in order: cheap first. The coverage run is the one test run.
const TASKS: &[(&str, Task)] = &[
    ("fmt", crate::lint::fmt),
    ("clippy", crate::lint::clippy),
    ("features", crate::features::run),
    ("rules", crate::rules::run),
    ("coverage", crate::coverage::run),
    ("doctest", crate::test::doctests),
    ("doc", crate::doc::run),
    ("deny", crate::deny::run),
    ("package", crate::package::run),
    ("msrv", crate::msrv::run),
];

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timings = Vec::new();
    for (name, task) in TASKS {
        println!("\n==> xtask ci: {name}");
        let t0 = Instant::now();
        if let Err(e) = task(sh) {
            return Err(e.context(format!("ci stopped: task `{name}` failed")));
        }
        timings.push((*name, t0.elapsed()));
    }
    println!(
        "\n==> xtask ci: all tasks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    for (name, t) in timings {
        println!("    {name:<10} {:>6.0}s", t.as_secs_f64());
    }
    Ok(())
}
