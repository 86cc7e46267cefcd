//! A route: a named, priced primitive, with the provider and model it calls.

use std::sync::Arc;

use tta_core::{BoxPrimitive, ModelInfo, Price, StreamPrimitive, Streamable, WorkflowPrimitive};

use crate::attempt::{RouteStream, StreamOf};

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

    /// A route that calls and streams with a provider client, named, priced and sized by
    /// the client's [`ModelInfo`]: its provider, model (when it has a default one), price
    /// and context window. Setters called afterwards override them.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Error, ModelInfo, Price, StreamPrimitive, Streamed, WorkflowContext, WorkflowPrimitive};
    /// use tta_router::{Route, RouterPrimitive};
    ///
    /// /// A stand-in for a provider client (`tta_llm::OpenAiCompatible` is one).
    /// #[derive(Clone)]
    /// struct Client;
    /// impl WorkflowPrimitive<String> for Client {
    ///     type Output = String;
    ///     fn name(&self) -> &str { "llm" }
    ///     async fn execute(&self, q: String, _: &WorkflowContext) -> Result<String, Error> { Ok(q) }
    /// }
    /// impl StreamPrimitive<String> for Client {
    ///     type Chunk = String;
    ///     fn name(&self) -> &str { "llm" }
    ///     async fn stream(&self, q: String, _: &WorkflowContext) -> Result<Streamed<String>, Error> {
    ///         tta_core::first_chunk(futures_util::stream::iter([Ok(q)])).await
    ///     }
    /// }
    /// impl ModelInfo for Client {
    ///     fn provider(&self) -> &str { "openai" }
    ///     fn model(&self) -> Option<&str> { Some("gpt-4o-mini") }
    ///     fn price(&self) -> Price { Price::per_1k_tokens(0.00015, 0.0006) }
    ///     fn context_window(&self) -> Option<u64> { Some(128_000) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let router = RouterPrimitive::builder().route(Route::client("mini", Client)).build()?;
    /// assert_eq!(router.execute("hi".to_owned(), &WorkflowContext::new()).await?, "hi");
    /// # Ok(()) }
    /// ```
    pub fn client<P>(name: &str, client: P) -> Self
    where
        P: WorkflowPrimitive<I, Output = O>
            + StreamPrimitive<I, Chunk = O::Chunk>
            + ModelInfo
            + Clone
            + 'static,
        O: Streamable + 'static,
        I: Send + 'static,
    {
        let mut route = Self::new(name, client.clone())
            .price(client.price())
            .provider(client.provider());
        route.model = client.model().map(str::to_owned);
        route.context_window = client.context_window();
        route.stream_with(client)
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
