//! tower interop: any primitive as a [`tower::Service`], any `Service` as a primitive.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tower::{Service, ServiceExt};

use crate::{
    BoxError, Error, Instrumentation, Layer, PrimitiveBuilder, StreamPrimitive, Streamed,
    Telemetry, WorkflowContext, WorkflowPrimitive,
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
pub struct PrimitiveService<P>(Served<P>);

/// What a service over a primitive holds: the primitive, and the context its calls run
/// in a child scope of.
struct Served<P> {
    primitive: Arc<P>,
    base: Option<WorkflowContext>,
}

impl<P> Served<P> {
    fn new(primitive: P) -> Self {
        Self {
            primitive: Arc::new(primitive),
            base: None,
        }
    }

    /// The primitive and the context of one call.
    fn call(&self) -> (Arc<P>, WorkflowContext) {
        let cx = match &self.base {
            Some(base) => base.child_scope(),
            None => WorkflowContext::new(),
        };
        (Arc::clone(&self.primitive), cx)
    }
}

impl<P> Clone for Served<P> {
    fn clone(&self) -> Self {
        Self {
            primitive: Arc::clone(&self.primitive),
            base: self.base.clone(),
        }
    }
}

impl<P> PrimitiveService<P> {
    /// Serves `primitive`, each call in a fresh root context.
    pub fn new(primitive: P) -> Self {
        Self(Served::new(primitive))
    }

    /// Runs every call in a child scope of `cx` (sharing its ids, ledger and deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::ServiceExt;
    /// use tta_core::{from_fn, tower::PrimitiveService, Error, WorkflowContext};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cx = WorkflowContext::builder().metadata("tenant", "acme").build().unwrap();
    /// let svc = PrimitiveService::new(from_fn(|(), cx: WorkflowContext| async move {
    ///     Ok::<_, Error>(cx.metadata("tenant").map(str::to_owned))
    /// }))
    /// .with_context(cx);
    /// assert_eq!(svc.oneshot(()).await.unwrap().as_deref(), Some("acme"));
    /// # }
    /// ```
    pub fn with_context(mut self, cx: WorkflowContext) -> Self {
        self.0.base = Some(cx);
        self
    }
}

impl<P> Clone for PrimitiveService<P> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
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
        let (primitive, cx) = self.0.call();
        Box::pin(async move { primitive.execute(input, &cx).await })
    }
}

/// A streaming primitive as a `tower::Service<I>` whose response is the stream: the
/// response future resolves at the first chunk (as [`StreamPrimitive::stream`] does),
/// and the body follows. Each call runs in a child scope of a base context, as
/// [`PrimitiveService`] does.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tower::ServiceExt;
/// use tta_core::{from_stream_fn, tower::StreamService, Error};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = StreamService::new(from_stream_fn(|n: u8, _| async move {
///     Ok(futures_util::stream::iter((0..n).map(Ok::<_, Error>)))
/// }));
/// let chunks: Vec<u8> = svc.oneshot(3).await.unwrap().map(Result::unwrap).collect().await;
/// assert_eq!(chunks, [0, 1, 2]);
/// # }
/// ```
pub struct StreamService<P>(Served<P>);

impl<P> StreamService<P> {
    /// Serves `primitive`'s streams, each call in a fresh root context.
    pub fn new(primitive: P) -> Self {
        Self(Served::new(primitive))
    }

    /// Runs every call in a child scope of `cx`.
    #[must_use]
    pub fn with_context(mut self, cx: WorkflowContext) -> Self {
        self.0.base = Some(cx);
        self
    }
}

impl<P> Clone for StreamService<P> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<P> std::fmt::Debug for StreamService<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamService").finish_non_exhaustive()
    }
}

impl<P, I> Service<I> for StreamService<P>
where
    P: StreamPrimitive<I> + 'static,
    I: Send + 'static,
{
    type Response = Streamed<P::Chunk>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Streamed<P::Chunk>, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, input: I) -> Self::Future {
        let (primitive, cx) = self.0.call();
        Box::pin(async move { primitive.stream(input, &cx).await })
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
/// let step = ServicePrimitive::builder(svc).name("double").build().unwrap();
/// assert_eq!(step.execute(21, &WorkflowContext::new()).await.unwrap(), 42);
/// # }
/// ```
pub struct ServicePrimitive<S> {
    service: S,
    inst: Instrumentation,
}

impl<S> ServicePrimitive<S> {
    /// Wraps `service`, named `service`, with [`Telemetry::global`](crate::Telemetry::global).
    pub fn new(service: S) -> Self {
        Self::builder(service).build_default()
    }

    /// Configures the name and telemetry of `service` as a primitive.
    ///
    /// # Examples
    ///
    /// ```
    /// use tta_core::tower::ServicePrimitive;
    /// let svc = tower::service_fn(|x: u8| async move { Ok::<_, std::io::Error>(x) });
    /// assert!(ServicePrimitive::builder(svc).name("has space").build().is_err());
    /// ```
    pub fn builder(service: S) -> PrimitiveBuilder<S, Self> {
        PrimitiveBuilder::new("service", service, |service, inst| Self { service, inst })
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

/// Any tta [`Layer`] as a `tower::Layer`: the service is wrapped as a
/// [`ServicePrimitive`], the layer's primitive goes around it, and the result is served
/// again as a [`PrimitiveService`] (error type [`Error`]). One adapter for every wrapping
/// primitive: the layer's settings are validated when the layer itself is built.
///
/// # Examples
///
/// ```
/// use tower::{Layer as _, ServiceExt};
/// use tta_core::tower::TowerLayer;
/// use tta_core::Identity;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = TowerLayer::new(Identity);
/// let svc = layer.layer(tower::service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
/// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TowerLayer<L> {
    layer: L,
    telemetry: Option<Telemetry>,
}

impl<L> TowerLayer<L> {
    /// Adapts `layer`; the wrapped services are instrumented with
    /// [`Telemetry::global`](crate::Telemetry::global) unless [`Self::telemetry`] says otherwise.
    pub fn new(layer: L) -> Self {
        Self {
            layer,
            telemetry: None,
        }
    }

    /// The telemetry of the wrapped services' own spans and metrics.
    #[must_use]
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = Some(telemetry.clone());
        self
    }
}

impl<S, L> tower::Layer<S> for TowerLayer<L>
where
    L: Layer<ServicePrimitive<S>>,
{
    type Service = PrimitiveService<L::Primitive>;

    fn layer(&self, service: S) -> Self::Service {
        let inner = match &self.telemetry {
            Some(telemetry) => ServicePrimitive::builder(service)
                .telemetry(telemetry)
                .build_default(),
            None => ServicePrimitive::new(service),
        };
        PrimitiveService::new(self.layer.layer(inner))
    }
}
