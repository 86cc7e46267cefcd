//! Wrapping: a [`Layer`] turns a primitive into a primitive around it, and a [`Stack`]
//! composes layers in the order a request travels.
//!
//! Each wrapping primitive (timeout, cache, limit) has a settings type that is validated
//! once and is its layer. `Stack::new().layer(timeout).layer(cache).into_primitive(router)`
//! reads outermost first: a timeout around a cache around a router. `>>` and `|` are
//! for pipelines (one step's output feeds the next, or branches share an input); a layer
//! is for wrapping.

/// Wraps a primitive `P` in another primitive, as tower's `Layer` does for services.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error, Layer, WorkflowContext, WorkflowPrimitive};
///
/// /// Upper-cases what the inner primitive returns.
/// struct Shout<P>(P);
/// impl<P: WorkflowPrimitive<String, Output = String>> WorkflowPrimitive<String> for Shout<P> {
///     type Output = String;
///     fn name(&self) -> &str { "shout" }
///     async fn execute(&self, s: String, cx: &WorkflowContext) -> Result<String, Error> {
///         Ok(self.0.execute(s, cx).await?.to_uppercase())
///     }
/// }
///
/// struct ShoutLayer;
/// impl<P> Layer<P> for ShoutLayer {
///     type Primitive = Shout<P>;
///     fn layer(&self, inner: P) -> Shout<P> { Shout(inner) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let echo = from_fn(|s: String, _| async move { Ok::<_, Error>(s) });
/// let loud = ShoutLayer.layer(echo);
/// assert_eq!(loud.execute("hi".into(), &WorkflowContext::new()).await?, "HI");
/// # Ok(()) }
/// ```
pub trait Layer<P> {
    /// The primitive around `P`.
    type Primitive;

    /// Wraps `inner`.
    fn layer(&self, inner: P) -> Self::Primitive;
}

/// The layer that wraps nothing: what [`Stack::new`] starts from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<P> Layer<P> for Identity {
    type Primitive = P;

    fn layer(&self, inner: P) -> P {
        inner
    }
}

/// Two layers, `outer` around `inner`; made by [`Stack::layer`].
#[derive(Clone, Debug)]
pub struct Layered<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<P, Inner, Outer> Layer<P> for Layered<Inner, Outer>
where
    Inner: Layer<P>,
    Outer: Layer<Inner::Primitive>,
{
    type Primitive = Outer::Primitive;

    fn layer(&self, inner: P) -> Self::Primitive {
        self.outer.layer(self.inner.layer(inner))
    }
}

/// Layers composed outermost first, as tower's `ServiceBuilder` composes services.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error, Layer, Stack, WorkflowContext, WorkflowPrimitive};
///
/// struct Tag<P>(&'static str, P);
/// impl<P: WorkflowPrimitive<String, Output = String>> WorkflowPrimitive<String> for Tag<P> {
///     type Output = String;
///     fn name(&self) -> &str { self.0 }
///     async fn execute(&self, s: String, cx: &WorkflowContext) -> Result<String, Error> {
///         Ok(format!("{}({})", self.0, self.1.execute(s, cx).await?))
///     }
/// }
/// struct TagLayer(&'static str);
/// impl<P> Layer<P> for TagLayer {
///     type Primitive = Tag<P>;
///     fn layer(&self, inner: P) -> Tag<P> { Tag(self.0, inner) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let router = from_fn(|s: String, _| async move { Ok::<_, Error>(s) });
/// // Read in the order a request travels: the first layer is the outermost.
/// let stack = Stack::new().layer(TagLayer("timeout")).layer(TagLayer("cache")).into_primitive(router);
/// assert_eq!(stack.execute("q".into(), &WorkflowContext::new()).await?, "timeout(cache(q))");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Stack<L = Identity> {
    layers: L,
}

impl Stack {
    /// An empty stack.
    pub fn new() -> Self {
        Self { layers: Identity }
    }
}

impl<L> Stack<L> {
    /// Adds `layer` inside every layer added before it.
    pub fn layer<T>(self, layer: T) -> Stack<Layered<T, L>> {
        Stack {
            layers: Layered {
                inner: layer,
                outer: self.layers,
            },
        }
    }

    /// Wraps `inner` in every layer, the first one added outermost.
    pub fn into_primitive<P>(&self, inner: P) -> L::Primitive
    where
        L: Layer<P>,
    {
        self.layers.layer(inner)
    }
}

impl<P, L: Layer<P>> Layer<P> for Stack<L> {
    type Primitive = L::Primitive;

    fn layer(&self, inner: P) -> Self::Primitive {
        self.layers.layer(inner)
    }
}

/// Marks a wrapping primitive's builder that builds the layer alone (its `build` returns
/// the layer), as `TimeoutLayer::builder()` does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Standalone;

/// Marks a wrapping primitive's builder that builds the primitive around `P` (its
/// `build` returns the primitive), as `TimeoutPrimitive::builder(inner)` does: sugar for
/// building the layer and applying it to `P`.
#[derive(Clone, Copy, Debug)]
pub struct Around<P>(pub P);
