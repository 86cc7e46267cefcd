//! Sequential and parallel composition.
//!
//! `a >> b` ([`Then`]) is transparent: it adds no span or metric of its own, so
//! `(a >> b) >> c` and `a >> (b >> c)` give the same output *and* the same trace.
//! `a | b` ([`Join`]) and [`parallel`] ([`Parallel`]) are primitives of kind `parallel`:
//! one span, under which the branches' spans are siblings.

use std::future::Future;

use futures_util::future::{try_join, try_join_all};

use crate::primitive::BoxPrimitive;
use crate::{
    Error, Instrumentation, InvalidName, PrimitiveName, Telemetry, WorkflowContext,
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
    /// `first`, then `second`.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = tta_core::Then::new(1, 2);
    /// assert_eq!(t.into_parts(), (1, 2));
    /// ```
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }

    /// The two steps.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::Then::new('a', 'b').into_parts().1, 'b');
    /// ```
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
    /// `left` and `right` in parallel, named `parallel`, with [`Telemetry::global`].
    ///
    /// # Examples
    ///
    /// ```
    /// let j = tta_core::Join::new((), ());
    /// # let _ = j;
    /// ```
    pub fn new(left: A, right: B) -> Self {
        Self {
            left,
            right,
            inst: parallel_instrumentation(
                PrimitiveName::from_static("parallel"),
                &Telemetry::global(),
            ),
        }
    }

    /// Renames the parallel step.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when `name` is not a valid [`PrimitiveName`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(tta_core::Join::new((), ()).named("fan-out").is_ok());
    /// ```
    pub fn named(self, name: &str) -> Result<Self, InvalidName> {
        let name = PrimitiveName::new(name)?;
        Ok(Self {
            inst: parallel_instrumentation(name, &Telemetry::global()),
            ..self
        })
    }

    /// Uses `telemetry` instead of the global providers.
    ///
    /// # Examples
    ///
    /// ```
    /// let j = tta_core::Join::new((), ()).with_telemetry(&tta_core::Telemetry::global());
    /// # let _ = j;
    /// ```
    pub fn with_telemetry(self, telemetry: &Telemetry) -> Self {
        Self {
            inst: parallel_instrumentation(self.inst.name().clone(), telemetry),
            ..self
        }
    }
}

fn parallel_instrumentation(name: PrimitiveName, telemetry: &Telemetry) -> Instrumentation {
    Instrumentation::new("parallel", name, telemetry)
}

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
    Parallel {
        branches,
        inst: parallel_instrumentation(
            PrimitiveName::from_static("parallel"),
            &Telemetry::global(),
        ),
    }
}

impl<I, O> Parallel<I, O> {
    /// Renames the parallel step.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when `name` is not a valid [`PrimitiveName`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::parallel::<(), ()>(vec![]);
    /// assert!(p.named("").is_err());
    /// ```
    pub fn named(self, name: &str) -> Result<Self, InvalidName> {
        let name = PrimitiveName::new(name)?;
        Ok(Self {
            inst: parallel_instrumentation(name, &Telemetry::global()),
            ..self
        })
    }

    /// Uses `telemetry` instead of the global providers.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::parallel::<(), ()>(vec![]).with_telemetry(&tta_core::Telemetry::global());
    /// # let _ = p;
    /// ```
    pub fn with_telemetry(self, telemetry: &Telemetry) -> Self {
        Self {
            inst: parallel_instrumentation(self.inst.name().clone(), telemetry),
            ..self
        }
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
