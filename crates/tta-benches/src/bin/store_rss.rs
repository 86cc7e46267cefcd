//! Resident memory of a `MemoryStore` holding 1,000,000 entries of 1 KiB, for
//! `cargo xtask bench` (reads `/proc/self/statm`, so Linux only).

use std::time::Duration;

use bytes::Bytes;
use tta_observability_integration::cache::{CacheKey, CacheStore, MemoryStore};

fn rss_mib() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    const ENTRIES: u64 = 1_000_000;
    let before = rss_mib().unwrap_or(0.0);
    let store = MemoryStore::builder()
        .max_entries(ENTRIES)
        .build()
        .expect("a valid bound");
    let value = Bytes::from(vec![7u8; 1024]);
    for i in 0..ENTRIES {
        let key = CacheKey::new("rss", 1, &i.to_le_bytes());
        // Each entry owns its kilobyte, as a real cache's values would.
        let _ = store
            .set(
                &key,
                Bytes::copy_from_slice(&value),
                Duration::from_secs(3600),
            )
            .await;
    }
    store.run_pending_tasks();
    let after = rss_mib().unwrap_or(0.0);
    // Per entry held: a sharded bound may keep a little less than its total.
    let held = store.entry_count().max(1);
    println!(
        "store_rss: {held} entries of 1 KiB: RSS {after:.1} MiB (process before: {before:.1} MiB), {:.0} bytes per entry",
        (after - before) * 1024.0 * 1024.0 / held as f64
    );
}
