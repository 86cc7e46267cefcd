//! The trait, its boxed form, closures as primitives, and the `Flow` wrapper.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::{Error, Instrumentation, PrimitiveBuilder, WorkflowContext};

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
/// [`Flow`] to get the operators, or use [`WorkflowPrimitiveExt::then`](crate::WorkflowPrimitiveExt::then) and
/// [`WorkflowPrimitiveExt::join`](crate::WorkflowPrimitiveExt::join).
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
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a workflow primitive taking `{I}`",
    label = "not a `WorkflowPrimitive<{I}>`",
    note = "closures become primitives with `tta_core::from_fn` (async) or `tta_core::from_sync_fn`",
    note = "a wrapping primitive is one only when its inner primitive meets its bounds: a cache needs an output that is `Clone + Serialize + DeserializeOwned`, a router an input that is `Clone`"
)]
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
    /// Boxes `primitive` (the same as [`WorkflowPrimitiveExt::boxed`](crate::WorkflowPrimitiveExt::boxed)).
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
    pub fn new(primitive: P) -> Self {
        Self(primitive)
    }

    /// The wrapped primitive.
    pub fn get_ref(&self) -> &P {
        &self.0
    }

    /// Unwraps the primitive.
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

/// A closure as an instrumented primitive of kind `fn`; made by [`from_fn`],
/// [`from_sync_fn`] or [`FnPrimitive::builder`].
pub struct FnPrimitive<F> {
    f: F,
    inst: Instrumentation,
}

/// What a [`FnPrimitive`] calls: an async closure `Fn(I, WorkflowContext) -> impl
/// Future<Output = Result<O, Error>>`, or a synchronous closure in a [`SyncFn`].
///
/// The async closure takes the context **by value**, where
/// [`WorkflowPrimitive::execute`] borrows it: a future that borrowed the context would
/// need an async closure whose future is `Send`, which stable Rust cannot yet state in a
/// bound. Cloning the context is one reference count, so nothing is lost.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be called as a workflow step taking `{I}`",
    label = "expected `Fn({I}, WorkflowContext) -> impl Future<Output = Result<_, tta_core::Error>>`",
    note = "async closures go to `from_fn(|input, cx| async move {{ .. }})`; synchronous ones to `from_sync_fn(|input, cx| Ok(..))`"
)]
pub trait StepFn<I>: Send + Sync {
    /// What a successful call returns.
    type Output;

    /// Calls the closure.
    fn call(
        &self,
        input: I,
        cx: WorkflowContext,
    ) -> impl Future<Output = Result<Self::Output, Error>> + Send;
}

impl<I, O, F, Fut> StepFn<I> for F
where
    F: Fn(I, WorkflowContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<O, Error>> + Send,
{
    type Output = O;

    fn call(&self, input: I, cx: WorkflowContext) -> impl Future<Output = Result<O, Error>> + Send {
        self(input, cx)
    }
}

/// A synchronous closure `Fn(I, &WorkflowContext) -> Result<O, Error>` as a [`StepFn`];
/// made by [`from_sync_fn`] or [`SyncFn::new`].
#[derive(Clone, Copy)]
pub struct SyncFn<F>(F);

impl<F> SyncFn<F> {
    /// Wraps `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{StepFn, SyncFn, WorkflowContext};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tta_core::Error> {
    /// // Any `StepFn` can be called directly, as `FnPrimitive` does.
    /// let double = SyncFn::new(|x: u32, _| Ok(x * 2));
    /// assert_eq!(double.call(4, WorkflowContext::new()).await?, 8);
    /// # Ok(()) }
    /// ```
    pub fn new<I, O>(f: F) -> Self
    where
        F: Fn(I, &WorkflowContext) -> Result<O, Error>,
    {
        Self(f)
    }
}

impl<I, O, F> StepFn<I> for SyncFn<F>
where
    F: Fn(I, &WorkflowContext) -> Result<O, Error> + Send + Sync,
    O: Send,
{
    type Output = O;

    fn call(&self, input: I, cx: WorkflowContext) -> impl Future<Output = Result<O, Error>> + Send {
        std::future::ready((self.0)(input, &cx))
    }
}

/// Lifts an async closure `Fn(I, WorkflowContext) -> impl Future<Output = Result<O,
/// Error>>` into a primitive of kind and name `fn` (rename it with
/// [`FnPrimitive::builder`]). It takes the context by value: see [`StepFn`] for why.
///
/// Its span and metrics use [`Telemetry::global`](crate::Telemetry::global) as it is when `from_fn` is called.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error, WorkflowContext, WorkflowPrimitive};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let tenant_of = from_fn(|_: (), cx: WorkflowContext| async move {
///     Ok::<_, Error>(cx.metadata("tenant").unwrap_or("none").to_owned())
/// });
/// let cx = WorkflowContext::builder().metadata("tenant", "acme").build().map_err(Error::invalid_config)?;
/// assert_eq!(tenant_of.execute((), &cx).await?, "acme");
/// # Ok(()) }
/// ```
pub fn from_fn<I, O, F, Fut>(f: F) -> FnPrimitive<F>
where
    F: Fn(I, WorkflowContext) -> Fut,
    Fut: Future<Output = Result<O, Error>>,
{
    FnPrimitive::builder(f).build_default()
}

/// Lifts a synchronous closure `Fn(I, &WorkflowContext) -> Result<O, Error>` into a
/// primitive of kind and name `fn`.
///
/// # Examples
///
/// ```
/// use tta_core::{from_sync_fn, WorkflowContext, WorkflowPrimitive};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tta_core::Error> {
/// let inc = from_sync_fn(|x: u32, _| Ok(x + 1));
/// assert_eq!(inc.execute(41, &WorkflowContext::new()).await?, 42);
/// # Ok(()) }
/// ```
pub fn from_sync_fn<I, O, F>(f: F) -> FnPrimitive<SyncFn<F>>
where
    F: Fn(I, &WorkflowContext) -> Result<O, Error>,
{
    FnPrimitive::sync_builder(f).build_default()
}

impl<F> FnPrimitive<F> {
    /// Configures the name and telemetry of an async closure primitive (what
    /// [`from_fn`] makes); see [`PrimitiveBuilder`].
    pub fn builder<I, O, Fut>(f: F) -> PrimitiveBuilder<F, Self>
    where
        F: Fn(I, WorkflowContext) -> Fut,
        Fut: Future<Output = Result<O, Error>>,
    {
        Self::assemble(f)
    }

    pub(crate) fn assemble(f: F) -> PrimitiveBuilder<F, Self> {
        PrimitiveBuilder::new("fn", f, |f, inst| Self { f, inst })
    }

    pub(crate) fn instrumentation(&self) -> &Instrumentation {
        &self.inst
    }

    pub(crate) fn step(&self) -> &F {
        &self.f
    }
}

impl<F> FnPrimitive<SyncFn<F>> {
    /// Configures the name and telemetry of a synchronous closure primitive (what
    /// [`from_sync_fn`] makes).
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{FnPrimitive, WorkflowPrimitive};
    /// let inc = FnPrimitive::sync_builder(|x: u32, _| Ok(x + 1)).name("inc").build()?;
    /// assert_eq!(inc.name(), "inc");
    /// # Ok::<(), tta_core::InvalidName>(())
    /// ```
    pub fn sync_builder<I, O>(f: F) -> PrimitiveBuilder<SyncFn<F>, Self>
    where
        F: Fn(I, &WorkflowContext) -> Result<O, Error>,
    {
        FnPrimitive::assemble(SyncFn(f))
    }
}

impl<F> std::fmt::Debug for FnPrimitive<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnPrimitive")
            .field("name", self.inst.name())
            .finish_non_exhaustive()
    }
}

impl<I, F> WorkflowPrimitive<I> for FnPrimitive<F>
where
    F: StepFn<I>,
    I: Send,
{
    type Output = F::Output;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<F::Output, Error>> + Send {
        self.inst.run(cx, move |child| self.f.call(input, child))
    }
}

crate::impl_composition_ops!(Flow<P>);
crate::impl_composition_ops!(FnPrimitive<F>);
crate::impl_composition_ops!(BoxPrimitive<I, O>);
