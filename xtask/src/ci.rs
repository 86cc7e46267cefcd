//! `cargo xtask ci`: every gate in order, stopping at the first failure.

use std::time::Instant;

use xshell::Shell;

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    let started = Instant::now();
    report_disk(sh);
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

/// The free space a cold run wants: it wrote 4.9 GiB under `target/` (2 cores, with the
/// gateway). When the disk fills, the linker dies of SIGBUS, which reads like a
/// toolchain crash rather than a full disk.
const COLD_RUN_GIB: u64 = 7;

/// Prints the free space where `target/` lives, and warns when a cold run may not fit.
fn report_disk(sh: &Shell) {
    let out = xshell::cmd!(sh, "df -Pk .").quiet().ignore_status().read();
    let free_kib = out.ok().and_then(|o| {
        o.lines()
            .nth(1)?
            .split_whitespace()
            .nth(3)?
            .parse::<u64>()
            .ok()
    });
    match free_kib {
        Some(kib) => {
            let gib = kib as f64 / (1024.0 * 1024.0);
            println!("xtask ci: {gib:.1} GiB free for target/");
            if kib < COLD_RUN_GIB * 1024 * 1024 {
                println!(
                    "xtask ci: warning: a cold run needs about {COLD_RUN_GIB} GiB; \
                     a full disk shows up as `ld terminated with signal 7 [Bus error]`"
                );
            }
        }
        None => println!("xtask ci: free disk unknown (`df -Pk .` gave nothing to read)"),
    }
}
