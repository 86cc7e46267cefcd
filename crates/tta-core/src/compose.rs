//! Sequential and parallel composition.
//!
//! `a >> b` ([`Then`]) is transparent: it adds no span or metric of its own, so
//! `(a >> b) >> c` and `a >> (b >> c)` give the same output *and* the same trace.
//! `a | b` ([`Join`]) and [`parallel`] ([`Parallel`]) are primitives of kind `parallel`:
//! one span, under which the branches' spans are siblings.

use std::future::Future;

use futures_util::future::{try_join, try_join_all};

use crate::{
    BoxPrimitive, Error, Flow, Instrumentation, PrimitiveBuilder, WorkflowContext,
    WorkflowPrimitive,
};

/// Implements `>>` ([`Then`]) and `|` ([`Join`]) for a primitive type.
///
/// Every shipped primitive uses it; use it on your own primitive types, or wrap them in
/// [`Flow`](crate::Flow). The type's generic parameters must carry no bounds in its
/// definition (put bounds on the `WorkflowPrimitive` impl instead, as tower does).
///
/// # Examples
///
/// ```
/// use tta_core::{Error, WorkflowContext, WorkflowPrimitive};
///
/// struct Tag<T>(T);
/// impl<T: Send + Sync + Clone> WorkflowPrimitive<String> for Tag<T> where T: Into<String> {
///     type Output = String;
///     fn name(&self) -> &str { "tag" }
///     async fn execute(&self, s: String, _cx: &WorkflowContext) -> Result<String, Error> {
///         Ok(format!("{s}{}", self.0.clone().into()))
///     }
/// }
/// tta_core::impl_composition_ops!(Tag<T>);
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let flow = Tag("a") >> Tag("b");
/// assert_eq!(flow.execute(String::new(), &WorkflowContext::new()).await.unwrap(), "ab");
/// # }
/// ```
#[macro_export]
macro_rules! impl_composition_ops {
    ($ty:ident $(< $($gen:ident),+ >)?) => {
        impl<$($($gen,)+)? __Rhs> ::core::ops::Shr<__Rhs> for $ty $(< $($gen),+ >)? {
            type Output = $crate::Then<Self, __Rhs>;
            fn shr(self, rhs: __Rhs) -> Self::Output {
                $crate::Then::new(self, rhs)
            }
        }
        impl<$($($gen,)+)? __Rhs> ::core::ops::BitOr<__Rhs> for $ty $(< $($gen),+ >)? {
            type Output = $crate::Join<Self, __Rhs>;
            fn bitor(self, rhs: __Rhs) -> Self::Output {
                $crate::Join::new(self, rhs)
            }
        }
    };
}

/// Runs `A`, then `B` on its output; made by `a >> b` or `a.then(b)`.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error, WorkflowContext, WorkflowPrimitive};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let parse = from_fn(|s: String, _| async move { s.trim().parse::<i64>().map_err(Error::inner) });
/// let square = from_fn(|x: i64, _| async move { Ok::<_, Error>(x * x) });
/// let flow = parse >> square;
/// assert_eq!(flow.execute(" 12 ".into(), &WorkflowContext::new()).await.unwrap(), 144);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Then<A, B> {
    first: A,
    second: B,
}

impl<A, B> Then<A, B> {
    /// `first`, then `second` (what `first >> second` makes).
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }

    /// The two steps, `first` then `second`.
    pub fn into_parts(self) -> (A, B) {
        (self.first, self.second)
    }
}

impl<I, A, B> WorkflowPrimitive<I> for Then<A, B>
where
    A: WorkflowPrimitive<I>,
    B: WorkflowPrimitive<A::Output>,
    I: Send,
{
    type Output = B::Output;

    fn name(&self) -> &str {
        "sequential"
    }

    async fn execute(&self, input: I, cx: &WorkflowContext) -> Result<B::Output, Error> {
        let middle = self.first.execute(input, cx).await?;
        self.second.execute(middle, cx).await
    }
}

/// Runs `A` and `B` concurrently on the same input; made by `a | b` or `a.join(b)`.
///
/// The output is `(A::Output, B::Output)`. The first error is returned at once and the
/// other branch's future is dropped (cancelled).
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, Error, WorkflowContext, WorkflowPrimitive};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let len = from_fn(|s: String, _| async move { Ok::<_, Error>(s.len()) });
/// let upper = from_fn(|s: String, _| async move { Ok::<_, Error>(s.to_uppercase()) });
/// let both = len | upper;
/// assert_eq!(both.execute("ab".into(), &WorkflowContext::new()).await.unwrap(), (2, "AB".into()));
/// # }
/// ```
pub struct Join<A, B> {
    left: A,
    right: B,
    inst: Instrumentation,
}

impl<A, B> Join<A, B> {
    /// `left` and `right` in parallel, named `parallel`, with [`Telemetry::global`](crate::Telemetry::global)
    /// (what `left | right` makes).
    pub fn new(left: A, right: B) -> Self {
        Self::builder(left, right).build_default()
    }

    /// Configures the name and telemetry of `left` and `right` in parallel.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_fn, Error, Join, WorkflowPrimitive};
    /// let ask = |who: &'static str| from_fn(move |q: String, _| async move { Ok::<_, Error>(format!("{who}: {q}")) });
    /// let both = Join::builder(ask("a"), ask("b")).name("ask_both").build()?;
    /// assert_eq!(both.name(), "ask_both");
    /// # Ok::<(), tta_core::InvalidName>(())
    /// ```
    pub fn builder(left: A, right: B) -> PrimitiveBuilder<(A, B), Self> {
        PrimitiveBuilder::new(PARALLEL, (left, right), |(left, right), inst| Self {
            left,
            right,
            inst,
        })
    }
}

/// The kind (and default name) of `|` and [`parallel`].
const PARALLEL: &str = "parallel";

impl<A, B> std::fmt::Debug for Join<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Join")
            .field("name", self.inst.name())
            .finish_non_exhaustive()
    }
}

impl<I, A, B> WorkflowPrimitive<I> for Join<A, B>
where
    A: WorkflowPrimitive<I>,
    B: WorkflowPrimitive<I>,
    A::Output: Send,
    B::Output: Send,
    I: Clone + Send,
{
    type Output = (A::Output, B::Output);

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Self::Output, Error>> + Send {
        self.inst.run(cx, move |child| async move {
            try_join(
                self.left.execute(input.clone(), &child),
                self.right.execute(input, &child),
            )
            .await
        })
    }
}

/// Runs every branch concurrently on clones of the input; made by [`parallel`].
///
/// The outputs come back in branch order. The first error is returned at once and every
/// other branch's future is dropped.
pub struct Parallel<I, O> {
    branches: Vec<BoxPrimitive<I, O>>,
    inst: Instrumentation,
}

/// An n-ary parallel step over boxed branches, returning `Vec<O>` in branch order.
///
/// With no branches it returns an empty `Vec`.
///
/// # Examples
///
/// ```
/// use tta_core::{from_fn, parallel, Error, WorkflowContext, WorkflowPrimitive, WorkflowPrimitiveExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let branches = (1..=3u32)
///     .map(|k| from_fn(move |x: u32, _| async move { Ok::<_, Error>(x * k) }).boxed())
///     .collect();
/// let fan_out = parallel(branches);
/// assert_eq!(fan_out.execute(10, &WorkflowContext::new()).await.unwrap(), vec![10, 20, 30]);
/// # }
/// ```
pub fn parallel<I, O>(branches: Vec<BoxPrimitive<I, O>>) -> Parallel<I, O> {
    Parallel::builder(branches).build_default()
}

impl<I, O> Parallel<I, O> {
    /// Configures the name and telemetry of a parallel step over `branches`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{Parallel, WorkflowPrimitive};
    /// let none = Parallel::<u8, u8>::builder(vec![]).name("fan_out").build()?;
    /// assert_eq!(none.name(), "fan_out");
    /// # Ok::<(), tta_core::InvalidName>(())
    /// ```
    pub fn builder(
        branches: Vec<BoxPrimitive<I, O>>,
    ) -> PrimitiveBuilder<Vec<BoxPrimitive<I, O>>, Self> {
        PrimitiveBuilder::new(PARALLEL, branches, |branches, inst| Self { branches, inst })
    }
}

impl<I, O> std::fmt::Debug for Parallel<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("name", self.inst.name())
            .field("branches", &self.branches.len())
            .finish_non_exhaustive()
    }
}

impl<I, O> WorkflowPrimitive<I> for Parallel<I, O>
where
    I: Clone + Send + 'static,
    O: Send,
{
    type Output = Vec<O>;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Vec<O>, Error>> + Send {
        self.inst.run(cx, move |child| async move {
            try_join_all(
                self.branches
                    .iter()
                    .map(|branch| branch.execute(input.clone(), &child)),
            )
            .await
        })
    }
}

crate::impl_composition_ops!(Then<A, B>);
crate::impl_composition_ops!(Join<A, B>);
crate::impl_composition_ops!(Parallel<I, O>);

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
        Flow::new(self)
    }
}

impl<I, P: WorkflowPrimitive<I>> WorkflowPrimitiveExt<I> for P {}
