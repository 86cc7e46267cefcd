//! The cache for streams: a miss tees the live body to its caller and to coalesced
//! waiters as chunks arrive; the chunk list is stored only when the body ended cleanly;
//! a hit replays it.
//!
//! The tee has no task of its own: whichever consumer needs the next chunk polls the
//! fill's body, and every consumer reads the chunks received so far from one list. The
//! fill runs while at least one consumer remains; when the last one drops, the fill's
//! body is dropped (cancelled) and nothing is stored.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream;
use opentelemetry::KeyValue;
use tokio::time::Instant;
use tta_core::{Body, CostEntry, CostLedger, Error, StreamPrimitive, Streamed, WorkflowContext};

use crate::codec::{self, Chunks, FillCost};
use crate::flight::{self, Leader, Role};
use crate::metrics::{CacheMetrics, PendingLookup};
use crate::{
    CacheConfig, CacheKey, CachePrimitive, CacheStore, Cacheable, KeyFn, LeaseToken, Lookup,
    MAX_TAKEOVERS, Remote, semconv,
};

/// Written before the input's key bytes: a streamed answer (a list of chunks) and a
/// called one (one value) for the same input are different entries.
const STREAM_KEY_MARK: &[u8] = b"\0tta.stream\0";

/// What a stream's single flight hands its followers: the leader's tee, while it lives.
type TeeHandle<C> = Weak<Tee<C>>;

/// A streamed execution through the cache: a miss tees the live body to its caller and
/// to every coalesced caller of the key; the chunk list is stored only after a clean end;
/// a hit replays it. The fill runs while one of its consumers remains.
impl<I, P, S, K> StreamPrimitive<I> for CachePrimitive<P, S, K>
where
    P: StreamPrimitive<I>,
    P::Chunk: Cacheable,
    S: CacheStore,
    K: KeyFn<I> + 'static,
    I: Send,
{
    type Chunk = P::Chunk;

    fn name(&self) -> &str {
        self.inst.name().as_str()
    }

    fn stream(
        &self,
        input: I,
        cx: &WorkflowContext,
    ) -> impl Future<Output = Result<Streamed<P::Chunk>, Error>> + Send {
        self.inst
            .run_stream_started(cx, move |child, started| async move {
                let span = child.primitive_span();
                let config = &self.config;
                let Some(key) =
                    CacheKey::hashed(Arc::clone(&config.namespace), config.version, |w| {
                        std::io::Write::write_all(w, STREAM_KEY_MARK).is_ok()
                            && config.key.write_key(&input, w)
                    })
                else {
                    self.metrics.error("key", "encode");
                    return self.inner.stream(input, &child).await;
                };
                if let Some(span) = &span {
                    span.set_attribute(KeyValue::new(semconv::ATTR_KEY, key.short()));
                }
                // Counted when the lookup is answered; cut before, a miss (see `execute`
                // of the call).
                let mut pending = PendingLookup::new(&self.metrics);
                let write = match self.lookup::<Chunks<P::Chunk>>(&key, started).await {
                    Lookup::Hit(chunks, cost) => {
                        pending.counted();
                        self.record_hit(&child, cost, "hit");
                        return Ok(self.replay(chunks, key));
                    }
                    // An empty list is no answer either: fill it again.
                    Lookup::Miss | Lookup::Junk => true,
                    Lookup::Failed => false,
                };
                let mut takeovers = 0;
                loop {
                    let mut rx = match self.flights.join::<TeeHandle<P::Chunk>>(key.hash()) {
                        Role::Leader(leader) => {
                            // The leader counts its lookup (see `lead`).
                            return self
                                .lead_stream(leader, key, input, &child, write, pending)
                                .await;
                        }
                        Role::Follower(rx) => rx,
                    };
                    match flight::follow(&mut rx).await {
                        Some(Ok((tee, _))) => {
                            // The leader's tee, unless every consumer of it is already gone.
                            if let Some(tee) = tee.upgrade() {
                                // Counted a hit or a miss when its stream ends (a follower
                                // of a fill that fails was not answered from the cache).
                                self.metrics.coalesced();
                                if let Some(span) = &span {
                                    span.set_attribute(KeyValue::new(
                                        semconv::ATTR_RESULT,
                                        "coalesced",
                                    ));
                                }
                                // Its consumer counts it when its stream ends.
                                pending.counted();
                                let saver = Saver {
                                    cx: child.clone(),
                                    cache: self.inst.name().to_arc(),
                                    metrics: Arc::clone(&self.metrics),
                                };
                                return Tee::follow(tee, Some(saver)).await;
                            }
                            // Every consumer of the fill is gone: it ended, and its write
                            // holds the flight. Once that lands, the store has the answer
                            // (a fill here would pay for it twice).
                            flight::landed(rx).await;
                            if let Lookup::Hit(chunks, cost) =
                                self.lookup::<Chunks<P::Chunk>>(&key, Instant::now()).await
                            {
                                pending.counted();
                                self.record_hit(&child, cost, "hit");
                                return Ok(self.replay(chunks, key));
                            }
                        }
                        Some(Err(e)) if e.class().is_retryable() && takeovers < MAX_TAKEOVERS => {
                            takeovers += 1;
                        }
                        Some(Err(e)) => {
                            pending.counted();
                            self.metrics.coalesced();
                            self.metrics.lookup(false);
                            return Err(e);
                        }
                        None => {}
                    }
                }
            })
    }
}

impl<P, S: CacheStore, K: Send + Sync + 'static> CachePrimitive<P, S, K> {
    /// Opens the fill's stream as the flight's leader; at its first chunk, hands the tee
    /// to the followers and returns the leader's own consumer.
    async fn lead_stream<I>(
        &self,
        leader: Leader<TeeHandle<P::Chunk>>,
        key: CacheKey,
        input: I,
        cx: &WorkflowContext,
        write: bool,
        mut pending: PendingLookup<'_>,
    ) -> Result<Streamed<P::Chunk>, Error>
    where
        P: StreamPrimitive<I>,
        P::Chunk: Cacheable,
    {
        // Another process may be filling the key: its stored answer, once stored.
        let lease = if write {
            match self.remote::<Chunks<P::Chunk>>(&key, cx).await {
                Remote::Hit(chunks, cost) => {
                    // Local followers claim again and find it stored.
                    drop(leader);
                    pending.counted();
                    self.metrics.coalesced();
                    self.record_hit(cx, cost, "coalesced");
                    return Ok(self.replay(chunks, key));
                }
                Remote::Lead(lease) => lease,
            }
        } else {
            None
        };
        pending.counted();
        self.metrics.lookup(false);
        if let Some(span) = cx.primitive_span() {
            span.set_attribute(KeyValue::new(semconv::ATTR_RESULT, "miss"));
        }
        let (fill_cx, scope) = cx.with_ledger_scope();
        let streamed = match self.inner.stream(input, &fill_cx).await {
            Ok(streamed) => streamed,
            Err(e) => {
                leader.fail(e.clone());
                if let Some(token) = &lease {
                    self.config.store.release(&key, token).await;
                }
                return Err(e);
            }
        };
        let (first, body) = streamed.into_parts();
        let store = write.then(|| {
            Box::new(Store {
                config: Arc::clone(&self.config),
                metrics: Arc::clone(&self.metrics),
                key,
                lease,
            }) as Box<dyn Write<P::Chunk>>
        });
        let tee = Arc::new(Tee {
            state: Mutex::new(TeeState {
                chunks: first.into_iter().collect(),
                upstream: Some(body),
                end: None,
                wakers: Vec::new(),
                consumers: 0,
                scope,
                store,
                leader: None,
            }),
        });
        leader.publish(Arc::downgrade(&tee), FillCost::default());
        // The flight lives as long as the fill: callers arriving mid-stream join it
        // instead of starting another fill.
        tee.lock().leader = Some(leader);
        Tee::follow(tee, None).await
    }
}

impl<P, S: CacheStore, K: Send + Sync + 'static> CachePrimitive<P, S, K> {
    /// Replays a stored stream: its first chunk at once, each other chunk decoded when
    /// it is read. A chunk that does not decode (an entry cut or written by another
    /// chunk type under the same `version`) ends the stream with an error, is counted
    /// as a decode error, and blanks the entry, which the next request fills again.
    fn replay<C: Cacheable>(&self, chunks: Chunks<C>, key: CacheKey) -> Streamed<C> {
        let (config, metrics) = (Arc::clone(&self.config), Arc::clone(&self.metrics));
        let mut key = Some(key);
        let name = self.inst.name().to_arc();
        let rest = chunks.rest.map(move |chunk| {
            chunk.map_err(|()| {
                metrics.error("get", "decode");
                if let (Some(key), Ok(runtime)) =
                    (key.take(), tokio::runtime::Handle::try_current())
                {
                    let config = Arc::clone(&config);
                    runtime.spawn(async move {
                        let _ = config.store.set(&key, Bytes::new(), config.ttl).await;
                    });
                }
                Error::msg("a stored chunk does not decode").with_primitive(Arc::clone(&name))
            })
        });
        Streamed::new(chunks.first, futures_util::stream::iter(rest))
    }
}

/// Where a cleanly ended fill is stored.
struct Store<S: CacheStore, K: Send + Sync + 'static> {
    config: Arc<CacheConfig<S, K>>,
    metrics: Arc<CacheMetrics>,
    key: CacheKey,
    /// The lease of a shared store, released once the answer is stored, or when the
    /// fill ends without one (this is dropped unwritten).
    lease: Option<LeaseToken>,
}

impl<S: CacheStore, K: Send + Sync + 'static> Drop for Store<S, K> {
    fn drop(&mut self) {
        let Some(token) = self.lease.take() else {
            return;
        };
        let (config, key) = (Arc::clone(&self.config), self.key.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { config.store.release(&key, &token).await });
        }
    }
}

/// A stored value's write, erased over the store's type so the tee is only generic in
/// its chunks.
trait Write<C>: Send {
    /// Encodes and writes `chunks`; keeps `leader` (the flight) until the write is done.
    fn write(self: Box<Self>, chunks: Vec<C>, cost: FillCost, leader: Option<Box<dyn Send>>);
}

impl<C, S, K> Write<C> for Store<S, K>
where
    C: Cacheable,
    S: CacheStore,
    K: Send + Sync + 'static,
{
    fn write(self: Box<Self>, chunks: Vec<C>, cost: FillCost, leader: Option<Box<dyn Send>>) {
        let bytes = match codec::encode(&chunks, cost) {
            Ok(bytes) => bytes,
            Err(_) => return self.metrics.error("set", "encode"),
        };
        if bytes.len() > self.config.max_value_bytes {
            return self.metrics.error("set", "too_large");
        }
        // The write outlives the consumers (the last one may have just finished): it runs
        // on its own, bounded by the store's own command timeout.
        tokio::spawn(async move {
            let mut this = self;
            let _flight = leader;
            store(&this, bytes).await;
            if let Some(token) = this.lease.take() {
                this.config.store.release(&this.key, &token).await;
            }
        });
    }
}

async fn store<S: CacheStore, K: Send + Sync + 'static>(store: &Store<S, K>, bytes: Bytes) {
    let config = &store.config;
    let written = config.store.set(&store.key, bytes, config.ttl).await;
    store.metrics.store_state(config.store.breaker_state());
    if let Err(e) = written {
        store.metrics.error("set", e.kind().as_str());
    }
}

/// A fill's live body, shared by its consumers.
struct Tee<C> {
    state: Mutex<TeeState<C>>,
}

struct TeeState<C> {
    /// Every chunk received so far: what late consumers read, and what gets stored.
    chunks: Vec<C>,
    /// The fill's body; `None` once it ended or was dropped.
    upstream: Option<Body<C>>,
    /// How the fill ended, once it did.
    end: Option<Result<(), Error>>,
    /// Consumers waiting for the next chunk.
    wakers: Vec<Waker>,
    consumers: usize,
    /// What the fill cost, once its body has ended.
    scope: Arc<CostLedger>,
    /// Where to store a clean end (`None` when the store failed this request's lookup).
    store: Option<Box<dyn Write<C>>>,
    /// The flight, released when the fill is stored (or dropped).
    leader: Option<Leader<TeeHandle<C>>>,
}

impl<C> Tee<C> {
    fn lock(&self) -> MutexGuard<'_, TeeState<C>> {
        // Every critical section leaves the state consistent: a poisoned lock holds
        // valid data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C: Cacheable> Tee<C> {
    /// A consumer from the first chunk (in the list before the tee is shared, so this
    /// resolves at once); a follower records the fill's cost as saved when the fill ends
    /// cleanly.
    async fn follow(tee: Arc<Self>, saver: Option<Saver>) -> Result<Streamed<C>, Error> {
        tee.lock().consumers += 1;
        tta_core::first_chunk(Consumer {
            tee,
            next: 0,
            done: false,
            saver,
        })
        .await
    }
}

/// How a coalesced follower records its lookup (a hit when its stream ends cleanly; a
/// miss when the fill fails or it leaves early: it was not answered) and what it saved.
struct Saver {
    cx: WorkflowContext,
    cache: Arc<str>,
    metrics: Arc<CacheMetrics>,
}

/// One consumer of a tee.
struct Consumer<C> {
    tee: Arc<Tee<C>>,
    /// The index of the next chunk this consumer reads.
    next: usize,
    done: bool,
    /// For a coalesced follower: where to record its savings.
    saver: Option<Saver>,
}

impl<C: Cacheable> Stream for Consumer<C> {
    type Item = Result<C, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut state = this.tee.lock();
        if let Some(chunk) = state.chunks.get(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(chunk.clone())));
        }
        if state.end.is_none() {
            let polled = match state.upstream.as_mut() {
                Some(upstream) => upstream.as_mut().poll_next(cx),
                None => Poll::Ready(Some(Err(Error::cancelled()))),
            };
            match polled {
                Poll::Pending => {
                    if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        state.wakers.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    state.chunks.push(chunk.clone());
                    state.wakers.drain(..).for_each(Waker::wake);
                    this.next += 1;
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(e))) => {
                    state.upstream = None;
                    state.end = Some(Err(e));
                    // A cut or failed fill stores nothing, and frees its key.
                    state.store = None;
                    state.leader = None;
                    state.wakers.drain(..).for_each(Waker::wake);
                }
                Poll::Ready(None) => {
                    state.upstream = None;
                    state.end = Some(Ok(()));
                    state.wakers.drain(..).for_each(Waker::wake);
                    let totals = state.scope.totals();
                    let cost = FillCost {
                        usage: totals.usage,
                        cost: totals.spent,
                    };
                    let leader = state.leader.take().map(|l| Box::new(l) as Box<dyn Send>);
                    if let Some(store) = state.store.take() {
                        store.write(state.chunks.clone(), cost, leader);
                    }
                }
            }
        }
        this.done = true;
        match &state.end {
            Some(Err(e)) => {
                if let Some(saver) = this.saver.take() {
                    saver.metrics.lookup(false);
                }
                Poll::Ready(Some(Err(e.clone())))
            }
            _ => {
                if let Some(saver) = this.saver.take() {
                    let totals = state.scope.totals();
                    saver.metrics.lookup(true);
                    saver.metrics.saved(totals.spent);
                    saver.cx.ledger().record(CostEntry::saved(
                        saver.cache,
                        totals.usage,
                        totals.spent,
                    ));
                }
                Poll::Ready(None)
            }
        }
    }
}

impl<C> Drop for Consumer<C> {
    fn drop(&mut self) {
        // A follower that leaves before the end (its caller gave up, a timeout cut it)
        // was not answered.
        if let Some(saver) = self.saver.take() {
            saver.metrics.lookup(false);
        }
        let mut state = self.tee.lock();
        state.consumers -= 1;
        if state.consumers == 0 && state.end.is_none() {
            // Nobody is left to read the fill: cancel it, store nothing, free the key.
            state.upstream = None;
            state.store = None;
            state.leader = None;
        } else {
            // Whoever was polling the fill may be gone: let the others take it over.
            state.wakers.drain(..).for_each(Waker::wake);
        }
    }
}
