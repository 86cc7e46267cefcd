//! Criterion benchmarks for tta (`cargo bench -p tta-benches`).
//!
//! Built so far: `timeout/tokio` and `timeout/tta` (`benches/timeout.rs`). The remaining
//! benchmark ids of DESIGN.md ("Benchmarks") join them as their crates are built:
//! `overhead/bare_call`, `overhead/instrumented_call`, `overhead/stack_memory_hit`,
//! `overhead/tower_moka_hit`, `redis/raw_fred_get` and `redis/cache_hit`.
