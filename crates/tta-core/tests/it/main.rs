//! tta-core integration tests: one binary, one module per topic.

mod breaker;
mod compose;
mod context;
mod error;
mod ledger;
mod stream;
mod surface;
mod telemetry;
#[cfg(feature = "tower")]
mod tower;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts how many times it was dropped: proves a future was cancelled.
#[derive(Clone, Default)]
pub(crate) struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub(crate) fn guard(&self) -> DropGuard {
        DropGuard(Arc::clone(&self.0))
    }
    pub(crate) fn dropped(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

pub(crate) struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
