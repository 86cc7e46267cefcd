//! The seeded workload: a catalogue of prompts, requested with Zipf-distributed
//! popularity, each with token counts derived from its text.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};
use tta_observability_integration::{ReportsUsage, TokenUsage};

/// The system prompt every request carries, in tokens.
const SYSTEM_PROMPT_TOKENS: u64 = 180;
/// One in this many prompts asks for a long report (a large answer).
const LONG_EVERY: usize = 40;

const SUBJECTS: &[&str] = &[
    "my invoice",
    "the refund",
    "shipping to Canada",
    "a password reset",
    "the pro plan",
    "billing dates",
    "API latency",
    "the cache",
    "rate limits",
    "token usage",
    "the dashboard",
    "an export",
    "alert rules",
    "my quota",
    "two-factor login",
    "a failed payment",
    "the webhook",
    "data retention",
    "team seats",
    "the SDK",
];
const ASKS: &[&str] = &[
    "How do I change",
    "Why did I get charged for",
    "Can you explain",
    "What happened to",
    "Is there a limit on",
    "Where can I find",
    "Please summarize",
    "Help me troubleshoot",
];

/// One request of the workload (keyed in the cache by its prompt alone).
#[derive(Clone, Debug)]
pub struct Request {
    /// Its position in the run (seeds the simulated providers' behaviour).
    pub id: u64,
    /// The prompt (the cache key).
    pub prompt: Arc<str>,
    /// Prompt tokens, derived from the prompt.
    pub input_tokens: u64,
    /// Completion tokens the answer will have, derived from the prompt.
    pub output_tokens: u64,
}

/// A simulated completion.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Completion {
    /// The answer.
    pub text: String,
    /// The route that answered.
    pub route: String,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl ReportsUsage for Completion {
    fn token_usage(&self) -> Option<TokenUsage> {
        Some(TokenUsage::new(self.input_tokens, self.output_tokens))
    }
}

/// The distinct prompts of a run and their popularity.
#[derive(Debug)]
pub struct Catalogue {
    prompts: Vec<(Arc<str>, u64, u64)>,
    zipf: Zipf<f64>,
    seed: u64,
}

impl Catalogue {
    /// `distinct` prompts made from `seed`; popularity follows Zipf with exponent 1.1.
    pub fn new(seed: u64, distinct: usize) -> Self {
        let distinct = distinct.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let prompts = (0..distinct)
            .map(|i| {
                let long = i % LONG_EVERY == LONG_EVERY - 1;
                let ask = ASKS[rng.random_range(0..ASKS.len())];
                let subject = SUBJECTS[rng.random_range(0..SUBJECTS.len())];
                let detail = rng.random_range(0..10_000u32);
                let prompt = if long {
                    format!("Write a detailed report on {subject} for case #{detail}, with every step and its reasons.")
                } else {
                    format!("{ask} {subject}? (case #{detail})")
                };
                // About 1.3 tokens a word, plus the system prompt.
                let words = prompt.split_whitespace().count() as u64;
                let input = SYSTEM_PROMPT_TOKENS + words * 13 / 10;
                let output = if long { rng.random_range(1_500..3_000) } else { rng.random_range(40..400) };
                (Arc::from(prompt), input, output)
            })
            .collect();
        let zipf =
            Zipf::new(distinct as f64, 1.1).expect("n >= 1 and s = 1.1 are valid Zipf parameters");
        Self {
            prompts,
            zipf,
            seed,
        }
    }

    /// The `id`-th request: the same for the same seed, whatever the concurrency.
    pub fn request(&self, id: u64) -> Request {
        let mut rng = StdRng::seed_from_u64(self.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rank = self.zipf.sample(&mut rng) as usize;
        let (prompt, input_tokens, output_tokens) =
            self.prompts[rank.clamp(1, self.prompts.len()) - 1].clone();
        Request {
            id,
            prompt,
            input_tokens,
            output_tokens,
        }
    }

    /// How many distinct prompts there are.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// `true` when there are no prompts (never: there is at least one).
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}
