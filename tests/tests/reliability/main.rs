//! The reliability suite: provider faults, Redis faults on a real `redis-server`,
//! cancellation and leaks, a load run, and property tests over every builder. The large
//! load runs are `cargo xtask soak`; their figures are in `docs/reliability.md`.

mod bad_input;
mod cancellation;
mod composition;
mod deadlines;
mod load;
mod provider_faults;
mod redis_faults;
mod streams;
mod wire_faults;

/// Counts live heap bytes, so the leak tests can prove memory returns to its baseline.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tta_observability_integration::{
    Error, ReportsUsage, TokenUsage, WorkflowContext, WorkflowPrimitive, from_fn,
};

/// A simulated completion.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Completion {
    pub(crate) route: String,
    pub(crate) input: u64,
    pub(crate) output: u64,
}

impl ReportsUsage for Completion {
    fn token_usage(&self) -> Option<TokenUsage> {
        Some(TokenUsage::new(self.input, self.output))
    }
}

/// What a simulated provider does on its n-th call.
#[derive(Clone)]
pub(crate) enum Step {
    Answer(Duration),
    Fail(Error, Duration),
    Hang,
}

/// A simulated provider: a script of steps by call number, and a call counter.
#[derive(Clone)]
pub(crate) struct Provider {
    pub(crate) name: &'static str,
    pub(crate) calls: Arc<AtomicUsize>,
    script: Arc<dyn Fn(usize) -> Step + Send + Sync>,
    usage: TokenUsage,
}

impl Provider {
    pub(crate) fn new(
        name: &'static str,
        usage: TokenUsage,
        script: impl Fn(usize) -> Step + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            calls: Arc::new(AtomicUsize::new(0)),
            script: Arc::new(script),
            usage,
        }
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn primitive<I: Send + 'static>(
        &self,
    ) -> impl WorkflowPrimitive<I, Output = Completion> + use<I> {
        let p = self.clone();
        from_fn(move |_input: I, _cx: WorkflowContext| {
            let n = p.calls.fetch_add(1, Ordering::SeqCst);
            let step = (p.script)(n);
            let (route, usage) = (p.name.to_owned(), p.usage);
            async move {
                match step {
                    Step::Answer(delay) => {
                        tokio::time::sleep(delay).await;
                        Ok(Completion {
                            route,
                            input: usage.input,
                            output: usage.output,
                        })
                    }
                    Step::Fail(e, delay) => {
                        tokio::time::sleep(delay).await;
                        Err(e)
                    }
                    Step::Hang => std::future::pending().await,
                }
            }
        })
    }
}
