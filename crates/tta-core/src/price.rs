//! What a model call costs, and what a provider client tells a router about the model it
//! calls.

use crate::{TokenUsage, Usd};

/// What a model call charges, in USD: per 1,000 input and output tokens, or per call.
/// Prices are validated where they are given (a router's or a client's `build`):
/// finite, non-negative.
///
/// # Examples
///
/// ```
/// use tta_core::{Price, TokenUsage, Usd};
///
/// let gpt = Price::per_1k_tokens(0.0025, 0.01);
/// let cost = gpt.validate().unwrap().cost(Some(TokenUsage::new(2_000, 500)));
/// assert_eq!(cost, Usd::from_dollars(0.005 + 0.005).unwrap());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    input_per_1k: f64,
    output_per_1k: f64,
    per_call: f64,
}

/// A [`Price`] in exact pico-dollars, after validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidPrice {
    input_per_1k: Usd,
    output_per_1k: Usd,
    per_call: Usd,
}

impl Price {
    /// USD per 1,000 input tokens and per 1,000 output tokens.
    ///
    /// # Examples
    ///
    /// See [`Price`].
    pub fn per_1k_tokens(input_usd: f64, output_usd: f64) -> Self {
        Self {
            input_per_1k: input_usd,
            output_per_1k: output_usd,
            per_call: 0.0,
        }
    }

    /// A flat USD price per call, charged when a call's token usage is unknown.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::Price::per_call(0.002).validate().unwrap();
    /// assert_eq!(p.cost(None), tta_core::Usd::from_dollars(0.002).unwrap());
    /// ```
    pub fn per_call(usd: f64) -> Self {
        Self {
            input_per_1k: 0.0,
            output_per_1k: 0.0,
            per_call: usd,
        }
    }

    /// Adds a flat per-call price, charged when usage is unknown, to a token price.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::Price;
    /// let p = Price::per_1k_tokens(1.0, 1.0).or_per_call(0.5).validate().unwrap();
    /// assert_eq!(p.cost(None).dollars(), 0.5);
    /// ```
    pub fn or_per_call(mut self, usd: f64) -> Self {
        self.per_call = usd;
        self
    }

    /// Checks the amounts: each must be finite and non-negative.
    ///
    /// # Errors
    ///
    /// The first bad amount, by name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Price::per_call(-1.0).validate().is_err());
    /// assert!(tta_core::Price::per_1k_tokens(f64::NAN, 0.0).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<ValidPrice, (&'static str, f64)> {
        let usd = |name: &'static str, v: f64| Usd::from_dollars(v).ok_or((name, v));
        Ok(ValidPrice {
            input_per_1k: usd("input price", self.input_per_1k)?,
            output_per_1k: usd("output price", self.output_per_1k)?,
            per_call: usd("per-call price", self.per_call)?,
        })
    }
}

impl ValidPrice {
    /// The cost of a call: its tokens times the token prices when usage is known (and
    /// token prices are set), the flat per-call price otherwise.
    ///
    /// # Examples
    ///
    /// See [`Price`].
    pub fn cost(&self, usage: Option<TokenUsage>) -> Usd {
        match usage {
            Some(u) if self.has_token_prices() => {
                self.input_per_1k.per_units(u.input, 1_000)
                    + self.output_per_1k.per_units(u.output, 1_000)
            }
            _ => self.per_call,
        }
    }

    /// The most a call of at most `usage` tokens can cost at this price: its tokens at
    /// the token prices or the flat per-call price (charged when a call reports no
    /// usage), whichever is dearer.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Price, TokenUsage, Usd};
    /// let p = Price::per_1k_tokens(1.0, 2.0).or_per_call(0.5).validate().unwrap();
    /// assert_eq!(p.max_cost(TokenUsage::new(1_000, 1_000)), Usd::from_dollars(3.0).unwrap());
    /// assert_eq!(p.max_cost(TokenUsage::new(10, 10)), Usd::from_dollars(0.5).unwrap());
    /// ```
    pub fn max_cost(&self, usage: TokenUsage) -> Usd {
        let tokens = self.input_per_1k.per_units(usage.input, 1_000)
            + self.output_per_1k.per_units(usage.output, 1_000);
        tokens.max(self.per_call)
    }

    /// The dearer of two prices, amount by amount: the price a call reaching either
    /// model cannot cost more than.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Price, TokenUsage};
    /// let a = Price::per_1k_tokens(1.0, 0.1).validate().unwrap();
    /// let b = Price::per_1k_tokens(0.1, 1.0).validate().unwrap();
    /// let both = a.dearest(b);
    /// assert_eq!(both.max_cost(TokenUsage::new(1_000, 1_000)).dollars(), 2.0);
    /// ```
    #[must_use]
    pub fn dearest(self, other: ValidPrice) -> ValidPrice {
        ValidPrice {
            input_per_1k: self.input_per_1k.max(other.input_per_1k),
            output_per_1k: self.output_per_1k.max(other.output_per_1k),
            per_call: self.per_call.max(other.per_call),
        }
    }

    fn has_token_prices(&self) -> bool {
        self.input_per_1k > Usd::ZERO || self.output_per_1k > Usd::ZERO
    }
}

/// The most one call through a primitive can be billed: what a budget reserves before
/// the call. Either every attempt at one price ([`CostBound::new`]: a client, or any
/// primitive that may retry), or each of several routes at most once, up to a number of
/// attempts ([`CostBound::routes`]: a router, which tries a route at most once per call;
/// a billed failure and its fallback are both counted).
///
/// # Examples
///
/// ```
/// use tta_core::{CostBound, Price, TokenUsage, Usd};
///
/// let dear = Price::per_1k_tokens(0.01, 0.03).validate().unwrap();
/// let cheap = Price::per_1k_tokens(0.001, 0.003).validate().unwrap();
/// let usage = TokenUsage::new(1_000, 500); // 1,000 tokens in, at most 500 out
/// // Two attempts, each possibly at the dear price.
/// assert_eq!(CostBound::new(dear, 2).max_cost(usage), Usd::from_dollars(2.0 * 0.025).unwrap());
/// // A router over both: each at most once.
/// let router = CostBound::routes([dear, cheap], 2);
/// assert_eq!(router.max_cost(usage), Usd::from_dollars(0.025 + 0.0025).unwrap());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostBound {
    /// One price per route (or one price for every attempt).
    prices: Vec<ValidPrice>,
    /// Attempts per call.
    attempts: u32,
    /// Each price is tried at most once.
    once_each: bool,
}

impl CostBound {
    /// At most `attempts` billed attempts (at least 1), each at most `price`.
    ///
    /// # Examples
    ///
    /// See [`CostBound`].
    pub fn new(price: ValidPrice, attempts: u32) -> Self {
        Self {
            prices: vec![price],
            attempts: attempts.max(1),
            once_each: false,
        }
    }

    /// At most `attempts` billed attempts (at least 1), each on a different one of these
    /// prices: the dearest `attempts` of them bound a call.
    ///
    /// # Examples
    ///
    /// See [`CostBound`].
    pub fn routes(prices: impl IntoIterator<Item = ValidPrice>, attempts: u32) -> Self {
        Self {
            prices: prices.into_iter().collect(),
            attempts: attempts.max(1),
            once_each: true,
        }
    }

    /// The most billed attempts per call.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::Price::per_call(0.1).validate().unwrap();
    /// assert_eq!(tta_core::CostBound::new(p, 0).attempts(), 1);
    /// ```
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The most a call of at most `usage` tokens per attempt can be billed.
    ///
    /// # Examples
    ///
    /// See [`CostBound`].
    pub fn max_cost(&self, usage: TokenUsage) -> Usd {
        if !self.once_each {
            let one = self.prices.first().map_or(Usd::ZERO, |p| p.max_cost(usage));
            return Usd::from_picos(one.picos().saturating_mul(u64::from(self.attempts)));
        }
        let mut each: Vec<Usd> = self.prices.iter().map(|p| p.max_cost(usage)).collect();
        each.sort_unstable_by(|a, b| b.cmp(a));
        each.into_iter()
            .take(self.attempts as usize)
            .fold(Usd::ZERO, |sum, c| sum + c)
    }
}

/// What an input says about the most it can use, so that a budget can reserve for it
/// before the call: the input tokens it will send (an upper bound, not a guess) and the
/// most output tokens it allows. `None` when it sets no maximum on its output; a budget
/// then lets it run alone (see tta-limit).
///
/// # Examples
///
/// ```
/// use tta_core::{MaxUsage, TokenUsage};
///
/// struct Prompt { text: String, max_tokens: Option<u64> }
/// impl MaxUsage for Prompt {
///     fn max_usage(&self) -> Option<TokenUsage> {
///         // A byte-level tokenizer never makes more tokens than bytes.
///         Some(TokenUsage::new(self.text.len() as u64, self.max_tokens?))
///     }
/// }
/// let p = Prompt { text: "hello".into(), max_tokens: Some(16) };
/// assert_eq!(p.max_usage(), Some(TokenUsage::new(5, 16)));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say the most a call with it can use",
    label = "needs `MaxUsage` to be reserved for by a limit",
    note = "implement `tta_core::MaxUsage` (`fn max_usage(&self) -> Option<TokenUsage>`); return `None` when the input sets no maximum"
)]
pub trait MaxUsage {
    /// The most tokens a call with this input can use, if it sets a maximum.
    fn max_usage(&self) -> Option<TokenUsage>;
}

/// Text sets no maximum on its answer.
impl MaxUsage for String {
    fn max_usage(&self) -> Option<TokenUsage> {
        None
    }
}

/// What a provider client knows about the model it calls: the provider, the model, its
/// price and context window. A router's `Route::client` reads it, so a route built from
/// a client is named, priced and sized by the client's own configuration.
///
/// # Examples
///
/// ```
/// use tta_core::{ModelInfo, Price};
///
/// struct Local;
/// impl ModelInfo for Local {
///     fn provider(&self) -> &str { "llama.cpp" }
///     fn model(&self) -> Option<&str> { Some("qwen2.5-7b") }
/// }
/// assert_eq!(Local.price(), Price::per_call(0.0));
/// assert_eq!(Local.context_window(), None);
/// ```
pub trait ModelInfo {
    /// The provider, as `gen_ai.provider.name` names it (`openai`, `anthropic`, ...).
    fn provider(&self) -> &str;

    /// The model requests go to when they name none, if the client has one.
    fn model(&self) -> Option<&str>;

    /// What a call costs (default: free).
    fn price(&self) -> Price {
        Price::per_call(0.0)
    }

    /// The model's context window in tokens, when known.
    fn context_window(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64, per_call: f64) -> ValidPrice {
        Price::per_1k_tokens(input, output)
            .or_per_call(per_call)
            .validate()
            .unwrap()
    }

    #[test]
    fn a_routers_bound_takes_each_route_once_the_dearest_first() {
        let usage = TokenUsage::new(1_000, 1_000);
        let (dear, mid, cheap) = (
            price(2.0, 2.0, 0.0),
            price(1.0, 0.0, 0.0),
            price(0.0, 0.0, 0.5),
        );
        let bound = CostBound::routes([cheap, dear, mid], 2);
        assert_eq!(bound.max_cost(usage), Usd::from_dollars(4.0 + 1.0).unwrap());
        assert_eq!(
            CostBound::routes([cheap, dear], 5)
                .max_cost(usage)
                .dollars(),
            4.5
        );
        assert_eq!(CostBound::routes([], 3).max_cost(usage), Usd::ZERO);
        assert_eq!(CostBound::new(mid, 3).max_cost(usage).dollars(), 3.0);
        // A flat price is the bound of a call too small for the token prices to pass it.
        assert_eq!(cheap.max_cost(TokenUsage::new(1, 1)).dollars(), 0.5);
        assert_eq!(dear.dearest(cheap), price(2.0, 2.0, 0.5));
        assert_eq!(String::from("x").max_usage(), None);
    }
}
