//! Criterion benchmarks for tta (`cargo bench -p tta-benches`).
//!
//! **Not built yet.** The benchmark ids of DESIGN.md ("Benchmarks") will live here:
//! `overhead/bare_call`, `overhead/instrumented_call`, `overhead/stack_memory_hit`,
//! `overhead/tower_moka_hit`, `redis/raw_fred_get` and `redis/cache_hit`.
