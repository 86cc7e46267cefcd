//! A route: a named, priced primitive, with the provider and model it calls.

use std::sync::Arc;

use tta_core::{BoxPrimitive, StreamPrimitive, Streamable, TokenUsage, Usd, WorkflowPrimitive};

use crate::attempt::{RouteStream, StreamOf};

/// What a route charges. Prices are validated when the router is built (finite,
/// non-negative).
///
/// # Examples
///
/// ```
/// use tta_core::{TokenUsage, Usd};
/// use tta_router::Price;
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
    /// let p = tta_router::Price::per_call(0.002).validate().unwrap();
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
    /// use tta_router::Price;
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
    /// assert!(tta_router::Price::per_call(-1.0).validate().is_err());
    /// assert!(tta_router::Price::per_1k_tokens(f64::NAN, 0.0).validate().is_err());
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

/// One route of a router.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error};
/// use tta_router::{Price, Route};
///
/// let openai = Route::new("openai", from_fn(|q: String, _| async move { Ok::<_, Error>(q) }))
///     .price(Price::per_1k_tokens(0.0025, 0.01))
///     .provider("openai")
///     .model("gpt-4o")
///     .weight(3.0)
///     .fallback_to(["anthropic"]);
/// assert_eq!(openai.name(), "openai");
/// ```
pub struct Route<I, O> {
    pub(crate) name: String,
    pub(crate) primitive: BoxPrimitive<I, O>,
    pub(crate) price: Price,
    pub(crate) provider: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) weight: f64,
    pub(crate) fallbacks: Vec<String>,
    pub(crate) context_window: Option<u64>,
    pub(crate) stream: Option<Arc<dyn RouteStream<I, O>>>,
}

impl<I, O> Route<I, O> {
    /// A route named `name` (validated when the router is built) calling `primitive`;
    /// free, weight 1, no declared fallbacks.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    pub fn new<P>(name: &str, primitive: P) -> Self
    where
        P: WorkflowPrimitive<I, Output = O> + 'static,
        I: Send + 'static,
    {
        Self {
            name: name.to_owned(),
            primitive: BoxPrimitive::new(primitive),
            price: Price::per_call(0.0),
            provider: None,
            model: None,
            weight: 1.0,
            fallbacks: Vec::new(),
            context_window: None,
            stream: None,
        }
    }

    /// A route that calls and streams with `primitive` (a provider client does both).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use tta_core::{Error, StreamPrimitive, Streamed, WorkflowContext, WorkflowPrimitive};
    /// use tta_router::{Route, RouterPrimitive};
    ///
    /// /// Answers with the question, in one call or word by word.
    /// #[derive(Clone)]
    /// struct Echo;
    /// impl WorkflowPrimitive<String> for Echo {
    ///     type Output = String;
    ///     fn name(&self) -> &str { "echo" }
    ///     async fn execute(&self, q: String, _: &WorkflowContext) -> Result<String, Error> { Ok(q) }
    /// }
    /// impl StreamPrimitive<String> for Echo {
    ///     type Chunk = String;
    ///     fn name(&self) -> &str { "echo" }
    ///     async fn stream(&self, q: String, _: &WorkflowContext) -> Result<Streamed<String>, Error> {
    ///         let words: Vec<_> = q.split(' ').map(|w| Ok(w.to_owned())).collect();
    ///         tta_core::first_chunk(futures_util::stream::iter(words)).await
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let router = RouterPrimitive::builder().route(Route::streaming("echo", Echo)).build()?;
    /// let cx = WorkflowContext::new();
    /// assert_eq!(router.execute("a b".into(), &cx).await?, "a b");
    /// let words: Vec<String> = router.stream("a b".into(), &cx).await?.map(Result::unwrap).collect().await;
    /// assert_eq!(words, ["a", "b"]);
    /// # Ok(()) }
    /// ```
    pub fn streaming<P>(name: &str, primitive: P) -> Self
    where
        P: WorkflowPrimitive<I, Output = O>
            + StreamPrimitive<I, Chunk = O::Chunk>
            + Clone
            + 'static,
        O: Streamable + 'static,
        I: Send + 'static,
    {
        Self::new(name, primitive.clone()).stream_with(primitive)
    }

    /// Streams with `primitive` (the route calls with the one given to [`Route::new`]).
    pub fn stream_with<P>(mut self, primitive: P) -> Self
    where
        P: StreamPrimitive<I, Chunk = O::Chunk> + 'static,
        O: Streamable + 'static,
        I: 'static,
    {
        self.stream = Some(Arc::new(StreamOf(primitive)));
        self
    }

    /// The route's name.
    ///
    /// # Examples
    ///
    /// See [`Route`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the route charges.
    pub fn price(mut self, price: Price) -> Self {
        self.price = price;
        self
    }

    /// The provider, for `gen_ai.provider.name` (default: the route's name).
    pub fn provider(mut self, provider: &str) -> Self {
        self.provider = Some(provider.to_owned());
        self
    }

    /// The model, for `gen_ai.request.model` (default: the route's name).
    pub fn model(mut self, model: &str) -> Self {
        self.model = Some(model.to_owned());
        self
    }

    /// The weight for [`Strategy::Weighted`](crate::Strategy::Weighted) (positive).
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// The model's context window, in tokens. After a context-length error the router
    /// falls back only to routes with a larger declared window.
    pub fn context_window(mut self, tokens: u64) -> Self {
        self.context_window = Some(tokens);
        self
    }

    /// Routes to try, in order, right after this one fails (before the strategy's next
    /// choice). Checked when the router is built: the names must exist and the
    /// references must not form a cycle.
    pub fn fallback_to<S: AsRef<str>>(mut self, routes: impl IntoIterator<Item = S>) -> Self {
        self.fallbacks = routes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }
}

impl<I, O> std::fmt::Debug for Route<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("price", &self.price)
            .field("weight", &self.weight)
            .field("context_window", &self.context_window)
            .field("streams", &self.stream.is_some())
            .field("fallbacks", &self.fallbacks)
            .finish_non_exhaustive()
    }
}
