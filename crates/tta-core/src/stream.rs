//! Streamed results: a head (the first chunk, already arrived) and a body (the rest), as
//! an HTTP response has headers and a body.
//!
//! A primitive that streams implements [`StreamPrimitive`]: its future resolves when the
//! **first chunk** has arrived, so a failure before it is an ordinary error (a router can
//! fall back on it) and the future's duration is the time to first chunk. The rest comes
//! as a stream of `Result<Chunk, Error>`, which yields at most one error and then ends:
//! a body that ends without an error ended cleanly. Dropping the body cancels
//! everything below it.
//!
//! Wrapping primitives wrap the body (as tower-http's `TimeoutBody` wraps a response
//! body) instead of collecting it: a timeout bounds its gaps, a router settles cost when
//! it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::stream::{Stream, StreamExt};

use crate::{Error, ErrorClass, PrimitiveBuilder, WorkflowContext, WorkflowPrimitive};

/// The body of a [`Streamed`] result: the chunks after the first, boxed.
pub type Body<C> = Pin<Box<dyn Stream<Item = Result<C, Error>> + Send + 'static>>;

/// A streamed result: the first chunk and the body. As a [`Stream`] it yields the first
/// chunk, then the body's items.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tta_core::Streamed;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let streamed = Streamed::new("a", futures_util::stream::iter([Ok("b"), Ok("c")]));
/// assert_eq!(streamed.first(), Some(&"a"));
/// let all: Vec<_> = streamed.map(Result::unwrap).collect().await;
/// assert_eq!(all, ["a", "b", "c"]);
/// # }
/// ```
#[must_use = "a streamed result does nothing unless its body is polled; dropping it cancels the execution"]
pub struct Streamed<C> {
    first: Option<C>,
    body: Body<C>,
}

impl<C> Streamed<C> {
    /// A result whose first chunk is `first` and whose rest is `body`.
    pub fn new(first: C, body: impl Stream<Item = Result<C, Error>> + Send + 'static) -> Self {
        Self {
            first: Some(first),
            body: Box::pin(body),
        }
    }

    /// The first chunk, until it has been polled out.
    pub fn first(&self) -> Option<&C> {
        self.first.as_ref()
    }

    /// Replaces the body with `wrap(body)`, keeping the first chunk: how wrapping
    /// primitives keep their say over the rest of a stream.
    pub fn map_body<S>(self, wrap: impl FnOnce(Body<C>) -> S) -> Self
    where
        S: Stream<Item = Result<C, Error>> + Send + 'static,
    {
        Self {
            first: self.first,
            body: Box::pin(wrap(self.body)),
        }
    }

    /// The first chunk (if not polled out yet) and the body.
    pub fn into_parts(self) -> (Option<C>, Body<C>) {
        (self.first, self.body)
    }
}

// The first chunk is only ever moved, never pinned, and the body is boxed: moving a
// `Streamed` is always fine, whatever `C` is.
impl<C> Unpin for Streamed<C> {}

impl<C> Stream for Streamed<C> {
    type Item = Result<C, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        this.body.as_mut().poll_next(cx)
    }
}

impl<C> std::fmt::Debug for Streamed<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamed")
            .field("first_pending", &self.first.is_some())
            .finish_non_exhaustive()
    }
}

/// An output that can also arrive as a stream of chunks (a chat completion, and its
/// deltas): what lets a router over routes of this output serve streams too.
///
/// # Examples
///
/// ```
/// use tta_core::Streamable;
///
/// /// A chat completion, whole.
/// struct Completion { text: String }
/// /// One delta of it, as streamed.
/// struct Delta { text: String }
///
/// impl Streamable for Completion {
///     type Chunk = Delta;
/// }
///
/// /// Joins a streamed answer back into the whole one.
/// fn join(deltas: Vec<<Completion as Streamable>::Chunk>) -> Completion {
///     Completion { text: deltas.into_iter().map(|d| d.text).collect() }
/// }
/// let whole = join(vec![Delta { text: "Hel".into() }, Delta { text: "lo".into() }]);
/// assert_eq!(whole.text, "Hello");
/// ```
pub trait Streamable {
    /// One chunk of the stream.
    type Chunk: Send + 'static;
}

impl Streamable for String {
    type Chunk = String;
}

/// A step that streams: [`stream`](Self::stream) resolves when the first chunk has
/// arrived, so a failure before it is an ordinary error (a router can fall back on it)
/// and the future's duration is the time to first chunk. The body yields
/// `Result<Chunk, Error>`, at most one error and then ends; a body that ends without an
/// error ended cleanly. Dropping the body cancels everything below it.
///
/// A primitive may implement both this and [`WorkflowPrimitive`] (a provider client
/// calls and streams). A primitive that only calls is used where a stream is wanted
/// only through [`OneChunk`], which the caller asks for explicitly.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tta_core::{from_stream_fn, Error, StreamPrimitive, WorkflowContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let words = from_stream_fn(|text: String, _cx| async move {
///     let words: Vec<Result<String, Error>> = text.split(' ').map(|w| Ok(w.to_owned())).collect();
///     Ok(futures_util::stream::iter(words))
/// });
/// let streamed = words.stream("hello streaming world".into(), &WorkflowContext::new()).await?;
/// assert_eq!(streamed.first().map(String::as_str), Some("hello"));
/// let all: Vec<String> = streamed.map(|c| c.unwrap()).collect().await;
/// assert_eq!(all, ["hello", "streaming", "world"]);
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not stream `{I}`",
    label = "not a `StreamPrimitive<{I}>`",
    note = "closures that return a stream become streaming primitives with `tta_core::from_stream_fn`",
    note = "a primitive that only calls streams one chunk through `tta_core::OneChunk::new(primitive)`, never silently"
)]
pub trait StreamPrimitive<I>: Send + Sync {
    /// One piece of a streamed result.
    type Chunk: Send + 'static;

    /// A stable, low-cardinality name (a metric label value).
    fn name(&self) -> &str;

    /// Starts the stream; resolves with the first chunk and the body.
    fn stream(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Streamed<Self::Chunk>, Error>> + Send;
}

impl<I, P: StreamPrimitive<I>> StreamPrimitive<I> for Arc<P> {
    type Chunk = P::Chunk;

    fn name(&self) -> &str {
        (**self).name()
    }

    fn stream(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Streamed<P::Chunk>, Error>> + Send {
        (**self).stream(input, cx)
    }
}

trait DynStreamPrimitive<I, C>: Send + Sync {
    fn dyn_name(&self) -> &str;
    fn stream_boxed<'a>(
        &'a self,
        input: I,
        cx: &'a WorkflowContext,
    ) -> BoxFuture<'a, Result<Streamed<C>, Error>>
    where
        I: 'a;
}

impl<I, P: StreamPrimitive<I>> DynStreamPrimitive<I, P::Chunk> for P {
    fn dyn_name(&self) -> &str {
        self.name()
    }

    fn stream_boxed<'a>(
        &'a self,
        input: I,
        cx: &'a WorkflowContext,
    ) -> BoxFuture<'a, Result<Streamed<P::Chunk>, Error>>
    where
        I: 'a,
    {
        Box::pin(self.stream(input, cx))
    }
}

/// A type-erased, cheaply cloneable streaming primitive: what routes hold.
pub struct BoxStreamPrimitive<I, C> {
    inner: Arc<dyn DynStreamPrimitive<I, C>>,
}

impl<I, C> BoxStreamPrimitive<I, C> {
    /// Boxes `primitive`.
    pub fn new<P>(primitive: P) -> Self
    where
        P: StreamPrimitive<I, Chunk = C> + 'static,
        I: Send + 'static,
    {
        Self {
            inner: Arc::new(primitive),
        }
    }
}

impl<I, C> Clone for BoxStreamPrimitive<I, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<I, C> std::fmt::Debug for BoxStreamPrimitive<I, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoxStreamPrimitive")
            .field(&self.inner.dyn_name())
            .finish()
    }
}

impl<I: Send, C: Send + 'static> StreamPrimitive<I> for BoxStreamPrimitive<I, C> {
    type Chunk = C;

    fn name(&self) -> &str {
        self.inner.dyn_name()
    }

    async fn stream(&self, input: I, cx: &WorkflowContext) -> Result<Streamed<C>, Error> {
        self.inner.stream_boxed(input, cx).await
    }
}

/// The error of a stream that ended before its first chunk: the provider answered
/// nothing, which is not an answer.
pub(crate) fn empty_stream() -> Error {
    Error::msg("the stream ended before its first chunk").with_class(ErrorClass::Unavailable)
}

/// Waits for the first chunk of `stream`: the head of a [`Streamed`] result.
///
/// # Errors
///
/// The stream's first item when it is an error, and an error of class unavailable when
/// the stream ends before its first chunk.
///
/// # Examples
///
/// ```
/// use tta_core::{Error, first_chunk};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let streamed = first_chunk(futures_util::stream::iter([Ok::<_, Error>(1), Ok(2)])).await.unwrap();
/// assert_eq!(streamed.first(), Some(&1));
/// let empty = first_chunk(futures_util::stream::empty::<Result<u8, Error>>()).await;
/// assert!(empty.unwrap_err().to_string().contains("before its first chunk"));
/// # }
/// ```
pub async fn first_chunk<C, S>(stream: S) -> Result<Streamed<C>, Error>
where
    S: Stream<Item = Result<C, Error>> + Send + 'static,
{
    let mut stream = Box::pin(stream);
    match stream.next().await {
        Some(Ok(first)) => Ok(Streamed {
            first: Some(first),
            body: stream,
        }),
        Some(Err(e)) => Err(e),
        None => Err(empty_stream()),
    }
}

/// A closure that returns a stream, as a [`StreamPrimitive`]: what [`from_stream_fn`]
/// wraps in a [`FnPrimitive`](crate::FnPrimitive).
#[derive(Clone, Copy)]
pub struct StreamFn<F>(F);

/// Lifts a closure `Fn(I, WorkflowContext) -> impl Future<Output = Result<impl Stream<Item =
/// Result<C, Error>>, Error>>` into a streaming primitive of kind and name `fn`: the
/// future opens the stream (an HTTP request, say), the stream yields the chunks. The
/// primitive's own future resolves at the first chunk; a stream that ends before one is
/// an error.
///
/// # Examples
///
/// See [`StreamPrimitive`].
pub fn from_stream_fn<I, C, F, Fut, S>(f: F) -> crate::FnPrimitive<StreamFn<F>>
where
    F: Fn(I, WorkflowContext) -> Fut,
    Fut: Future<Output = Result<S, Error>>,
    S: Stream<Item = Result<C, Error>>,
{
    crate::FnPrimitive::stream_builder(f).build_default()
}

impl<F> crate::FnPrimitive<StreamFn<F>> {
    /// Configures the name and telemetry of a streaming closure primitive (what
    /// [`from_stream_fn`] makes).
    pub fn stream_builder<I, C, Fut, S>(f: F) -> PrimitiveBuilder<StreamFn<F>, Self>
    where
        F: Fn(I, WorkflowContext) -> Fut,
        Fut: Future<Output = Result<S, Error>>,
        S: Stream<Item = Result<C, Error>>,
    {
        Self::assemble(StreamFn(f))
    }
}

impl<I, C, F, Fut, S> StreamPrimitive<I> for crate::FnPrimitive<StreamFn<F>>
where
    F: Fn(I, WorkflowContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<S, Error>> + Send,
    S: Stream<Item = Result<C, Error>> + Send + 'static,
    C: Send + 'static,
    I: Send,
{
    type Chunk = C;

    fn name(&self) -> &str {
        self.instrumentation().name().as_str()
    }

    fn stream(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Streamed<C>, Error>> + Send {
        let f = &self.step().0;
        self.instrumentation()
            .run_stream(cx, move |child| async move {
                first_chunk(f(input, child).await?).await
            })
    }
}

/// A calling primitive used where a stream is wanted: its output is the one and only
/// chunk. Never applied silently; ask for it with `OneChunk::new(primitive)`.
///
/// # Examples
///
/// ```
/// use futures_util::StreamExt;
/// use tta_core::{from_sync_fn, OneChunk, StreamPrimitive, WorkflowContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tta_core::Error> {
/// let whole = OneChunk::new(from_sync_fn(|q: String, _| Ok(q.to_uppercase())));
/// let chunks: Vec<_> = whole.stream("hi".into(), &WorkflowContext::new()).await?.collect().await;
/// assert_eq!(chunks.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OneChunk<P>(P);

impl<P> OneChunk<P> {
    /// Streams `primitive`'s output as one chunk.
    pub fn new(primitive: P) -> Self {
        Self(primitive)
    }
}

impl<I, P> StreamPrimitive<I> for OneChunk<P>
where
    P: WorkflowPrimitive<I>,
    P::Output: Send + 'static,
    I: Send,
{
    type Chunk = P::Output;

    fn name(&self) -> &str {
        self.0.name()
    }

    async fn stream(&self, input: I, cx: &WorkflowContext) -> Result<Streamed<P::Output>, Error> {
        let output = self.0.execute(input, cx).await?;
        Ok(Streamed::new(output, futures_util::stream::empty()))
    }
}
