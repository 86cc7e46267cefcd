//! Simulated LLM providers: different prices, latency distributions (with tails) and
//! failure modes, each seeded per request so a run is reproducible.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use tta_observability_integration::router::Price;
use tta_observability_integration::{
    Error, ErrorClass, TokenUsage, WorkflowContext, WorkflowPrimitive,
};

use crate::workload::{Completion, Request};

/// How a simulated provider behaves.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// The route's name.
    pub name: &'static str,
    /// The provider, for `gen_ai.provider.name`.
    pub provider: &'static str,
    /// The model, for `gen_ai.request.model`.
    pub model: &'static str,
    /// USD per 1k input tokens and per 1k output tokens (or per call, when `per_call`).
    pub price_in: f64,
    /// USD per 1k output tokens.
    pub price_out: f64,
    /// A flat price per call instead of token prices.
    pub per_call: Option<f64>,
    /// Median latency.
    pub median_ms: f64,
    /// Log-normal spread.
    pub sigma: f64,
    /// Share of calls in the slow tail (5x slower).
    pub tail_rate: f64,
    /// Share of calls that fail (503 or 429).
    pub error_rate: f64,
    /// Share of calls that fail after the prompt was billed.
    pub billed_error_rate: f64,
    /// Share of calls that never answer.
    pub hang_rate: f64,
}

impl Profile {
    /// The route's price.
    pub fn price(&self) -> Price {
        match self.per_call {
            Some(usd) => Price::per_call(usd),
            None => Price::per_1k_tokens(self.price_in, self.price_out),
        }
    }
}

/// The demo's providers, most expensive first.
pub const PROFILES: [Profile; 4] = [
    Profile {
        name: "frontier",
        provider: "openai",
        model: "gpt-4o",
        price_in: 0.0025,
        price_out: 0.01,
        per_call: None,
        median_ms: 420.0,
        sigma: 0.35,
        tail_rate: 0.02,
        error_rate: 0.01,
        billed_error_rate: 0.005,
        hang_rate: 0.002,
    },
    Profile {
        name: "balanced",
        provider: "anthropic",
        model: "claude-haiku",
        price_in: 0.0008,
        price_out: 0.004,
        per_call: None,
        median_ms: 260.0,
        sigma: 0.4,
        tail_rate: 0.03,
        error_rate: 0.02,
        billed_error_rate: 0.005,
        hang_rate: 0.003,
    },
    Profile {
        name: "budget",
        provider: "mistral",
        model: "mistral-small",
        price_in: 0.0001,
        price_out: 0.0003,
        per_call: None,
        median_ms: 180.0,
        sigma: 0.5,
        tail_rate: 0.04,
        error_rate: 0.04,
        billed_error_rate: 0.01,
        hang_rate: 0.005,
    },
    // The self-hosted last resort: slow, dear per call, never fails.
    Profile {
        name: "local",
        provider: "vllm",
        model: "llama-3.1-8b",
        price_in: 0.0,
        price_out: 0.0,
        per_call: Some(0.02),
        median_ms: 120.0,
        sigma: 0.2,
        tail_rate: 0.0,
        error_rate: 0.0,
        billed_error_rate: 0.0,
        hang_rate: 0.0,
    },
];

/// Counts what the simulated providers did.
#[derive(Debug, Default)]
pub struct ProviderCounters {
    /// Calls cut by a timeout before they answered.
    pub cut: AtomicU64,
}

/// One simulated provider as a primitive.
pub struct SimulatedProvider {
    profile: Profile,
    salt: u64,
    seed: u64,
    latency_scale: f64,
    latency: LogNormal<f64>,
    counters: Arc<ProviderCounters>,
}

impl SimulatedProvider {
    /// A provider behaving as `profile`, seeded with `seed`.
    pub fn new(
        profile: Profile,
        index: usize,
        seed: u64,
        latency_scale: f64,
        counters: Arc<ProviderCounters>,
    ) -> Self {
        // mu = ln(median); sigma as given (a valid, finite spread).
        let latency = LogNormal::new(profile.median_ms.ln(), profile.sigma)
            .expect("finite log-normal parameters");
        Self {
            profile,
            salt: (index as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93),
            seed,
            latency_scale,
            latency,
            counters,
        }
    }
}

/// Counts the call as cut if it is dropped before it answers.
struct CutGuard<'a> {
    counters: &'a ProviderCounters,
    armed: bool,
}

impl Drop for CutGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.counters.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl WorkflowPrimitive<Request> for SimulatedProvider {
    type Output = Completion;

    fn name(&self) -> &str {
        self.profile.name
    }

    async fn execute(&self, request: Request, _cx: &WorkflowContext) -> Result<Completion, Error> {
        // The same request meets the same behaviour on this provider, whatever the
        // concurrency or the order of calls.
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ self.salt ^ request.id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let p = &self.profile;
        let roll: f64 = rng.random();
        let mut guard = CutGuard {
            counters: &self.counters,
            armed: true,
        };
        if roll < p.hang_rate {
            std::future::pending::<()>().await;
        }
        let mut ms = self.latency.sample(&mut rng);
        if rng.random_bool(p.tail_rate) {
            ms *= 5.0;
        }
        let wait = Duration::from_secs_f64(ms * self.latency_scale / 1_000.0);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        guard.armed = false;
        if roll < p.hang_rate + p.billed_error_rate {
            return Err(
                Error::msg("stream interrupted after the prompt was processed")
                    .with_class(ErrorClass::Unavailable)
                    .with_billed_usage(TokenUsage::new(request.input_tokens, 0)),
            );
        }
        if roll < p.hang_rate + p.billed_error_rate + p.error_rate {
            return Err(if rng.random_bool(0.5) {
                Error::msg("503 service unavailable").with_class(ErrorClass::Unavailable)
            } else {
                Error::msg("429 rate limited")
                    .with_class(ErrorClass::RateLimited { retry_after: None })
            });
        }
        let chars = (request.output_tokens * 4) as usize;
        let mut text = format!("[{}] ", p.model);
        while text.len() < chars {
            text.push_str("Here is what happened and what to do next. ");
        }
        text.truncate(chars.max(16));
        Ok(Completion {
            text,
            route: p.name.to_owned(),
            input_tokens: request.input_tokens,
            output_tokens: request.output_tokens,
        })
    }
}
