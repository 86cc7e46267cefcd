//! The trait, its boxed form, closures as primitives, and the `Flow` wrapper.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::compose::{Join, Then};
use crate::{Error, Instrumentation, InvalidName, PrimitiveName, Telemetry, WorkflowContext};

/// One step of a workflow: takes an `I`, returns an [`Output`](Self::Output) or an
/// [`Error`].
///
/// # Contract
///
/// What a caller may assume:
/// - `execute` may be called concurrently from many tasks through `&self`.
/// - Dropping the returned future cancels the execution: nothing keeps running behind
///   the caller's back, and nothing is recorded as a success.
/// - [`name`](Self::name) is stable and low-cardinality (validated at build time), so it
///   is safe as a metric label.
///
/// What an implementer must do:
/// - Pass `cx` (or a child of it) to inner primitives, so deadlines, cancellation, the
///   cost ledger and span parenting flow through.
/// - Never put user data (prompts, completions, keys) into span names or metric labels.
/// - Return an [`Error`] rather than panic on any input.
///
/// Shipped primitives implement `>>` (sequence) and `|` (parallel); wrap your own in
/// [`Flow`] to get the operators, or use [`WorkflowPrimitiveExt::then`] and
/// [`WorkflowPrimitiveExt::join`].
///
/// # Examples
///
/// ```
/// use tta_core::{Error, WorkflowContext, WorkflowPrimitive};
///
/// struct Upper;
///
/// impl WorkflowPrimitive<String> for Upper {
///     type Output = String;
///     fn name(&self) -> &str { "upper" }
///     async fn execute(&self, input: String, _cx: &WorkflowContext) -> Result<String, Error> {
///         Ok(input.to_uppercase())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = Upper.execute("hi".to_owned(), &WorkflowContext::new()).await.unwrap();
/// assert_eq!(out, "HI");
/// # }
/// ```
pub trait WorkflowPrimitive<I>: Send + Sync {
    /// What a successful execution returns.
    type Output;

    /// A stable, low-cardinality name (a metric label value).
    fn name(&self) -> &str;

    /// Runs the step.
    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Self::Output, Error>> + Send;
}

impl<I, P: WorkflowPrimitive<I>> WorkflowPrimitive<I> for Arc<P> {
    type Output = P::Output;

    fn name(&self) -> &str {
        (**self).name()
    }

    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Self::Output, Error>> + Send {
        (**self).execute(input, cx)
    }
}

/// Combinators available on every primitive.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error, WorkflowContext, WorkflowPrimitive, WorkflowPrimitiveExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let double = from_fn(|x: u32, _cx| async move { Ok::<_, Error>(x * 2) });
/// let inc = from_fn(|x: u32, _cx| async move { Ok::<_, Error>(x + 1) });
/// let both = double.then(inc);
/// assert_eq!(both.execute(5, &WorkflowContext::new()).await.unwrap(), 11);
/// # }
/// ```
pub trait WorkflowPrimitiveExt<I>: WorkflowPrimitive<I> + Sized {
    /// Runs `self`, then `next` on its output (the same as `self >> next`).
    fn then<B>(self, next: B) -> Then<Self, B>
    where
        B: WorkflowPrimitive<Self::Output>,
    {
        Then::new(self, next)
    }

    /// Runs `self` and `other` concurrently on clones of the input (the same as
    /// `self | other`).
    fn join<B>(self, other: B) -> Join<Self, B>
    where
        B: WorkflowPrimitive<I>,
    {
        Join::new(self, other)
    }

    /// Erases the type, for routes and registries.
    fn boxed(self) -> BoxPrimitive<I, Self::Output>
    where
        Self: 'static,
        I: Send + 'static,
    {
        BoxPrimitive::new(self)
    }

    /// Wraps `self` in [`Flow`] to get the `>>` and `|` operators.
    fn flow(self) -> Flow<Self> {
        Flow(self)
    }
}

impl<I, P: WorkflowPrimitive<I>> WorkflowPrimitiveExt<I> for P {}

trait DynPrimitive<I, O>: Send + Sync {
    fn dyn_name(&self) -> &str;
    fn execute_boxed<'a>(
        &'a self,
        input: I,
        cx: &'a WorkflowContext,
    ) -> BoxFuture<'a, Result<O, Error>>
    where
        I: 'a;
}

impl<I, P> DynPrimitive<I, P::Output> for P
where
    P: WorkflowPrimitive<I>,
{
    fn dyn_name(&self) -> &str {
        self.name()
    }

    fn execute_boxed<'a>(
        &'a self,
        input: I,
        cx: &'a WorkflowContext,
    ) -> BoxFuture<'a, Result<P::Output, Error>>
    where
        I: 'a,
    {
        Box::pin(self.execute(input, cx))
    }
}

/// A type-erased, cheaply cloneable primitive from `I` to `O`.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, BoxPrimitive, Error, WorkflowContext, WorkflowPrimitive};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let steps: Vec<BoxPrimitive<u8, u8>> = vec![
///     BoxPrimitive::new(from_fn(|x: u8, _| async move { Ok::<_, Error>(x + 1) })),
///     BoxPrimitive::new(from_fn(|x: u8, _| async move { Ok::<_, Error>(x * 3) })),
/// ];
/// let cx = WorkflowContext::new();
/// assert_eq!(steps[1].clone().execute(2, &cx).await.unwrap(), 6);
/// # }
/// ```
pub struct BoxPrimitive<I, O> {
    inner: Arc<dyn DynPrimitive<I, O>>,
}

impl<I, O> BoxPrimitive<I, O> {
    /// Boxes `primitive`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_fn, BoxPrimitive, Error};
    /// let b: BoxPrimitive<(), ()> = BoxPrimitive::new(from_fn(|(), _| async { Ok::<_, Error>(()) }));
    /// # let _ = b;
    /// ```
    pub fn new<P>(primitive: P) -> Self
    where
        P: WorkflowPrimitive<I, Output = O> + 'static,
        I: Send + 'static,
    {
        Self {
            inner: Arc::new(primitive),
        }
    }
}

impl<I, O> Clone for BoxPrimitive<I, O> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<I, O> std::fmt::Debug for BoxPrimitive<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoxPrimitive")
            .field(&self.inner.dyn_name())
            .finish()
    }
}

impl<I: Send, O> WorkflowPrimitive<I> for BoxPrimitive<I, O> {
    type Output = O;

    fn name(&self) -> &str {
        self.inner.dyn_name()
    }

    // An `async fn` names both borrows separately; the boxed future's single lifetime
    // is their intersection, which an opaque return type cannot name directly.
    async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<O, Error> {
        self.inner.execute_boxed(input, cx).await
    }
}

/// Lifts any primitive so that `>>` and `|` work on it.
///
/// # Examples
///
/// ```
/// use tta_core::{Error, Flow, WorkflowContext, WorkflowPrimitive};
///
/// struct AddOne;
/// impl WorkflowPrimitive<i32> for AddOne {
///     type Output = i32;
///     fn name(&self) -> &str { "add_one" }
///     async fn execute(&self, x: i32, _cx: &WorkflowContext) -> Result<i32, Error> { Ok(x + 1) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let flow = Flow::new(AddOne) >> AddOne >> AddOne;
/// assert_eq!(flow.execute(0, &WorkflowContext::new()).await.unwrap(), 3);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Flow<P>(P);

impl<P> Flow<P> {
    /// Wraps `primitive`.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = tta_core::Flow::new(42);
    /// assert_eq!(f.into_inner(), 42);
    /// ```
    pub fn new(primitive: P) -> Self {
        Self(primitive)
    }

    /// The wrapped primitive.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(*tta_core::Flow::new(1).get_ref(), 1);
    /// ```
    pub fn get_ref(&self) -> &P {
        &self.0
    }

    /// Unwraps the primitive.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Flow::new("p").into_inner(), "p");
    /// ```
    pub fn into_inner(self) -> P {
        self.0
    }
}

impl<I, P: WorkflowPrimitive<I>> WorkflowPrimitive<I> for Flow<P> {
    type Output = P::Output;

    fn name(&self) -> &str {
        self.0.name()
    }

    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Self::Output, Error>> + Send {
        self.0.execute(input, cx)
    }
}

/// An async closure as an instrumented primitive; made by [`from_fn`].
pub struct FnPrimitive<F> {
    f: F,
    inst: Instrumentation,
}

/// Lifts an async closure `Fn(I, WorkflowContext) -> Future<Output = Result<O, Error>>`
/// into a primitive of kind `fn`, named `fn` until [`FnPrimitive::named`] renames it.
///
/// Its span and metrics use [`Telemetry::global`] as it is when `from_fn` is called;
/// [`FnPrimitive::with_telemetry`] picks other providers.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error, WorkflowContext, WorkflowPrimitive};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let summarize = from_fn(|text: String, _cx: WorkflowContext| async move {
///     Ok::<_, Error>(text.split_whitespace().count())
/// })
/// .named("count_words")
/// .map_err(Error::invalid_config)?;
/// assert_eq!(summarize.name(), "count_words");
/// assert_eq!(summarize.execute("a b c".into(), &WorkflowContext::new()).await?, 3);
/// # Ok(()) }
/// ```
pub fn from_fn<I, O, F, Fut>(f: F) -> FnPrimitive<F>
where
    F: Fn(I, WorkflowContext) -> Fut,
    Fut: Future<Output = Result<O, Error>>,
{
    FnPrimitive {
        f,
        inst: Instrumentation::new("fn", PrimitiveName::from_static("fn"), &Telemetry::global()),
    }
}

impl<F> FnPrimitive<F> {
    /// Renames the primitive.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when `name` is not a valid [`PrimitiveName`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::from_fn(|(), _| async { Ok::<_, tta_core::Error>(()) });
    /// assert!(p.named("bad name").is_err());
    /// ```
    pub fn named(self, name: &str) -> Result<Self, InvalidName> {
        let name = PrimitiveName::new(name)?;
        Ok(self.rebuild(name, None))
    }

    /// Uses `telemetry` instead of the global providers.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::from_fn(|(), _| async { Ok::<_, tta_core::Error>(()) })
    ///     .with_telemetry(&tta_core::Telemetry::global());
    /// # let _ = p;
    /// ```
    pub fn with_telemetry(self, telemetry: &Telemetry) -> Self {
        let name = self.inst.name().clone();
        self.rebuild(name, Some(telemetry))
    }

    fn rebuild(self, name: PrimitiveName, telemetry: Option<&Telemetry>) -> Self {
        let telemetry = telemetry.cloned().unwrap_or_default();
        Self {
            f: self.f,
            inst: Instrumentation::new("fn", name, &telemetry),
        }
    }
}

impl<F> std::fmt::Debug for FnPrimitive<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnPrimitive")
            .field("name", self.inst.name())
            .finish_non_exhaustive()
    }
}

impl<I, O, F, Fut> WorkflowPrimitive<I> for FnPrimitive<F>
where
    F: Fn(I, WorkflowContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<O, Error>> + Send,
    I: Send,
{
    type Output = O;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<O, Error>> + Send {
        self.inst.run(cx, move |child| (self.f)(input, child))
    }
}

crate::impl_composition_ops!(Flow<P>);
crate::impl_composition_ops!(FnPrimitive<F>);
crate::impl_composition_ops!(BoxPrimitive<I, O>);
