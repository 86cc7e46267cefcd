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

    fn has_token_prices(&self) -> bool {
        self.input_per_1k > Usd::ZERO || self.output_per_1k > Usd::ZERO
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
