//! The `llm` bench's clients, for an instruction count: wall-clock ratios of loopback
//! HTTP on a shared VM move by more than the 5% being compared, instruction counts do
//! not. Run one client's calls or streams `N` times under callgrind and compare the
//! totals (the setup is the same in every run, so it cancels out of a difference):
//!
//! ```text
//! cargo build --release -p tta-benches --example llm_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/llm_instructions raw|tta|async_openai call|stream N
//! ```
//!
//! Each run prints what it read, so the clients are seen to do the same work.

#[path = "../benches/support/llm_clients.rs"]
mod llm_clients;

use std::sync::Arc;

use llm_clients::Clients;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [client, what, n] = args.as_slice() else {
        eprintln!("usage: llm_instructions raw|tta|async_openai call|stream N");
        std::process::exit(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("N must be a number, got {n:?}");
        std::process::exit(2);
    };
    let (client, what) = (client.clone(), what.clone());
    let (rt, _guard) = tta_benches::runtime_with_telemetry();
    let read = rt.block_on(async move {
        let (_servers, clients) = Clients::start().await;
        let clients = Arc::new(clients);
        // On the runtime's worker, beside the servers, as in the bench.
        tokio::spawn(async move {
            let mut read = 0usize;
            for _ in 0..n {
                read += match (client.as_str(), what.as_str()) {
                    ("raw", "call") => clients.raw_call().await.len(),
                    ("tta", "call") => clients.tta_call().await.len(),
                    ("async_openai", "call") => clients.peer_call().await.len(),
                    ("raw", "stream") => Arc::clone(&clients).raw_stream().await,
                    ("tta", "stream") => clients.tta_stream().await,
                    ("async_openai", "stream") => clients.peer_stream().await,
                    _ => return None,
                };
            }
            Some(read)
        })
        .await
        .expect("the task")
    });
    match read {
        Some(read) => println!("read {read} bytes of text"),
        None => {
            eprintln!("usage: llm_instructions raw|tta|async_openai call|stream N");
            std::process::exit(2);
        }
    }
}
