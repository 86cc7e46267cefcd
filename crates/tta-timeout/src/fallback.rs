//! What runs when the hard limit is reached.

use std::future::Future;

use tta_core::{Error, WorkflowContext, WorkflowPrimitive};

/// The fallback slot of a [`TimeoutPrimitive`](crate::TimeoutPrimitive): either
/// [`NoFallback`] or [`WithFallback`]. Sealed; set it with
/// [`TimeoutBuilder::fallback`](crate::TimeoutBuilder::fallback).
pub trait Fallback<I, O>: Send + Sync + sealed::Sealed {
    /// Keeps a copy of the input for the fallback (only when there is one, so inputs
    /// need not be `Clone` otherwise).
    #[doc(hidden)]
    fn keep(&self, input: &I) -> Option<I>;

    /// The fallback's name, when there is one.
    #[doc(hidden)]
    fn name(&self) -> Option<&str>;

    /// Runs the fallback.
    #[doc(hidden)]
    fn run(&self, input: I, cx: &WorkflowContext) -> impl Future<Output = Result<O, Error>> + Send;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoFallback {}
    impl<F> Sealed for super::WithFallback<F> {}
}

/// No fallback: a timeout is returned as an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFallback;

/// A fallback primitive, run on a copy of the input when the hard limit is reached.
#[derive(Clone, Debug)]
pub struct WithFallback<F>(pub(crate) F);

impl<I, O: Send> Fallback<I, O> for NoFallback {
    fn keep(&self, _input: &I) -> Option<I> {
        None
    }

    fn name(&self) -> Option<&str> {
        None
    }

    fn run(
        &self,
        input: I,
        _cx: &WorkflowContext,
    ) -> impl Future<Output = Result<O, Error>> + Send {
        // `keep` returned `None`, so the primitive never calls this; the input is dropped
        // here rather than held by a future that would then need `I: Send`.
        drop(input);
        std::future::ready(Err(Error::msg("no fallback configured")))
    }
}

impl<I, F> Fallback<I, F::Output> for WithFallback<F>
where
    F: WorkflowPrimitive<I>,
    I: Clone + Send,
{
    fn keep(&self, input: &I) -> Option<I> {
        Some(input.clone())
    }

    fn name(&self) -> Option<&str> {
        Some(self.0.name())
    }

    fn run(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<F::Output, Error>> + Send {
        self.0.execute(input, cx)
    }
}
