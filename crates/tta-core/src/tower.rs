//! tower interop: any primitive as a [`tower::Service`], any `Service` as a primitive.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tower::{Service, ServiceExt};

use crate::{
    BoxError, Error, Instrumentation, InvalidName, PrimitiveName, Telemetry, WorkflowContext,
    WorkflowPrimitive,
};

/// A primitive as a `tower::Service<I>`: each call runs in a child scope of a base
/// [`WorkflowContext`] (a fresh root per call unless [`PrimitiveService::with_context`]
/// sets one).
///
/// # Examples
///
/// ```
/// use tower::ServiceExt;
/// use tta_core::{from_fn, tower::PrimitiveService, Error};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = PrimitiveService::new(from_fn(|x: u32, _| async move { Ok::<_, Error>(x + 1) }));
/// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
/// # }
/// ```
pub struct PrimitiveService<P> {
    primitive: Arc<P>,
    base: Option<WorkflowContext>,
}

impl<P> PrimitiveService<P> {
    /// Serves `primitive`.
    ///
    /// # Examples
    ///
    /// ```
    /// let svc = tta_core::tower::PrimitiveService::new(tta_core::from_fn(|(), _| async { Ok::<_, tta_core::Error>(()) }));
    /// # let _ = svc;
    /// ```
    pub fn new(primitive: P) -> Self {
        Self {
            primitive: Arc::new(primitive),
            base: None,
        }
    }

    /// Runs every call in a child scope of `cx` (sharing its ids, ledger and deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::{from_fn, tower::PrimitiveService, Error, WorkflowContext};
    /// let svc = PrimitiveService::new(from_fn(|(), _| async { Ok::<_, Error>(()) }))
    ///     .with_context(WorkflowContext::new());
    /// # let _ = svc;
    /// ```
    pub fn with_context(mut self, cx: WorkflowContext) -> Self {
        self.base = Some(cx);
        self
    }
}

impl<P> Clone for PrimitiveService<P> {
    fn clone(&self) -> Self {
        Self {
            primitive: Arc::clone(&self.primitive),
            base: self.base.clone(),
        }
    }
}

impl<P> std::fmt::Debug for PrimitiveService<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimitiveService").finish_non_exhaustive()
    }
}

impl<P, I> Service<I> for PrimitiveService<P>
where
    P: WorkflowPrimitive<I> + 'static,
    I: Send + 'static,
{
    type Response = P::Output;
    type Error = Error;
    type Future = BoxFuture<'static, Result<P::Output, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, input: I) -> Self::Future {
        let primitive = Arc::clone(&self.primitive);
        let cx = match &self.base {
            Some(base) => base.child_scope(),
            None => WorkflowContext::new(),
        };
        Box::pin(async move { primitive.execute(input, &cx).await })
    }
}

/// A `tower::Service<I>` as an instrumented primitive of kind `service`.
///
/// The service is cloned per call (tower's usual contract for shared services); its
/// errors become [`Error`]s of kind inner, and an `Error` it returns is passed through
/// unchanged.
///
/// # Examples
///
/// ```
/// use tta_core::{tower::ServicePrimitive, WorkflowContext, WorkflowPrimitive};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x * 2) });
/// let step = ServicePrimitive::new(svc).named("double").unwrap();
/// assert_eq!(step.execute(21, &WorkflowContext::new()).await.unwrap(), 42);
/// # }
/// ```
pub struct ServicePrimitive<S> {
    service: S,
    inst: Instrumentation,
}

impl<S> ServicePrimitive<S> {
    /// Wraps `service`, named `service`, with [`Telemetry::global`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::tower::ServicePrimitive::new(tower::service_fn(|x: u8| async move { Ok::<_, std::io::Error>(x) }));
    /// # let _ = p;
    /// ```
    pub fn new(service: S) -> Self {
        Self {
            service,
            inst: Instrumentation::new(
                "service",
                PrimitiveName::from_static("service"),
                &Telemetry::global(),
            ),
        }
    }

    /// Renames the primitive.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when `name` is not a valid [`PrimitiveName`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::tower::ServicePrimitive::new(());
    /// assert!(p.named("has space").is_err());
    /// ```
    pub fn named(self, name: &str) -> Result<Self, InvalidName> {
        let name = PrimitiveName::new(name)?;
        Ok(Self {
            service: self.service,
            inst: Instrumentation::new("service", name, &Telemetry::global()),
        })
    }

    /// Uses `telemetry` instead of the global providers.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = tta_core::tower::ServicePrimitive::new(()).with_telemetry(&tta_core::Telemetry::global());
    /// # let _ = p;
    /// ```
    pub fn with_telemetry(self, telemetry: &Telemetry) -> Self {
        let name = self.inst.name().clone();
        Self {
            service: self.service,
            inst: Instrumentation::new("service", name, telemetry),
        }
    }
}

impl<S> std::fmt::Debug for ServicePrimitive<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePrimitive")
            .field("name", self.inst.name())
            .finish_non_exhaustive()
    }
}

impl<S, I> WorkflowPrimitive<I> for ServicePrimitive<S>
where
    S: Service<I> + Clone + Send + Sync,
    S::Future: Send,
    S::Error: Into<BoxError>,
    I: Send,
{
    type Output = S::Response;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    fn execute(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<S::Response, Error>> + Send {
        let service = self.service.clone();
        self.inst.run(cx, move |_child| async move {
            service
                .oneshot(input)
                .await
                .map_err(|e| Error::from_boxed(e.into()))
        })
    }
}

crate::impl_composition_ops!(ServicePrimitive<S>);
