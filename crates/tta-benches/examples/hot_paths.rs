//! The hot paths of issue 20's targets, for an instruction count: wall-clock medians on
//! a shared VM move by 10% or more between runs, instruction counts do not. Runs one
//! path `N` times, set up as its bench sets it up, so that two runs under callgrind give
//! the instructions per call: `(I(N2) - I(N1)) / (N2 - N1)` (the setup cancels out).
//!
//! ```text
//! cargo build --release -p tta-benches --example hot_paths
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/hot_paths instrumented_call|router_call|router_direct|stack_memory_hit N
//! ```
//!
//! - `instrumented_call`, `stack_memory_hit`: as `overhead/*`, telemetry installed.
//! - `router_call`, `router_direct`: as `router/call` and `router/direct`, no telemetry.

use std::hint::black_box;

use tta_observability_integration::{Error, WorkflowContext, WorkflowPrimitive, from_fn};

const USAGE: &str =
    "usage: hot_paths instrumented_call|router_call|router_direct|stack_memory_hit N";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, n] = args.as_slice() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("N must be a number, got {n:?}");
        std::process::exit(2);
    };
    let done = match path.as_str() {
        "instrumented_call" => instrumented_call(n),
        "stack_memory_hit" => stack_memory_hit(n),
        "router_call" => router(n, true),
        "router_direct" => router(n, false),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    println!("{done} calls answered");
}

fn instrumented_call(n: u64) -> u64 {
    let (rt, _guard) = tta_benches::runtime_with_telemetry();
    let instrumented = from_fn(|x: u64, _| async move { Ok::<_, Error>(x) });
    let cx = WorkflowContext::new();
    rt.block_on(async {
        let mut ok = 0;
        for _ in 0..n {
            ok += u64::from(instrumented.execute(black_box(7), &cx).await.is_ok());
        }
        ok
    })
}

fn stack_memory_hit(n: u64) -> u64 {
    let (rt, _guard) = tta_benches::runtime_with_telemetry();
    let stack = tta_benches::hit_stack();
    let prompt = "What is the capital of France?".to_owned();
    let cx = WorkflowContext::new();
    rt.block_on(async {
        stack.execute(prompt.clone(), &cx).await.expect("the fill");
        let mut ok = 0;
        for _ in 0..n {
            ok += u64::from(stack.execute(prompt.clone(), &cx).await.is_ok());
        }
        ok
    })
}

fn router(n: u64, routed: bool) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (router, direct) = tta_benches::two_routes();
    rt.block_on(async {
        let mut ok = 0;
        for _ in 0..n {
            // A context per call, as a request has: the ledger does not grow across calls.
            let cx = WorkflowContext::new();
            let result = if routed {
                router.execute(black_box(7), &cx).await
            } else {
                direct.execute(black_box(7), &cx).await
            };
            ok += u64::from(result.is_ok());
        }
        ok
    })
}
