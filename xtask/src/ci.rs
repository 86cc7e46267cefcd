//! `cargo xtask ci`: every gate in order, stopping at the first failure.

use std::time::Instant;

use xshell::Shell;

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timings = Vec::new();
    for task in crate::TASKS.iter().filter(|t| t.in_ci) {
        let name = task.name;
        println!("\n==> xtask ci: {name}");
        let t0 = Instant::now();
        if let Err(e) = (task.run)(sh, &[]) {
            return Err(e.context(format!("ci stopped: task `{name}` failed")));
        }
        timings.push((name, t0.elapsed()));
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
