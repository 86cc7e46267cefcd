//! Configuration of the cache, validated once in `build`: into a [`CacheLayer`], or
//! straight into a [`CachePrimitive`] around an inner primitive.

use std::sync::Arc;
use std::time::Duration;

use tta_core::{Around, InvalidName, Layer, PrimitiveName, Standalone, Telemetry};

use crate::flight::Flights;
use crate::metrics::CacheMetrics;
use crate::{CachePrimitive, CacheStore, KeyWith, MemoryStore, SerializedInput};

/// Why a cache could not be built (a store's own settings fail with
/// [`StoreBuildError`](crate::StoreBuildError) when the store is built).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_cache::{BuildError, CachePrimitive};
/// use tta_core::from_sync_fn;
///
/// let inner = from_sync_fn(|q: String, _| Ok(q));
/// let err = CachePrimitive::builder(inner).ttl(Duration::ZERO).build().unwrap_err();
/// assert!(matches!(err, BuildError::Ttl { .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The cache's name is not a valid primitive name.
    #[error("invalid cache name: {0}")]
    Name(InvalidName),
    /// The namespace is not a valid name (`[A-Za-z0-9_.-]`, 1 to 64 bytes).
    #[error("invalid namespace: {0}")]
    Namespace(InvalidName),
    /// The TTL is below 1 ms or above [`CachePrimitive::MAX_TTL`].
    #[error("ttl must be between 1 ms and {max:?}, got {value:?}")]
    Ttl {
        /// The value given.
        value: Duration,
        /// [`CachePrimitive::MAX_TTL`], the longest TTL accepted.
        max: Duration,
    },
    /// The value size limit is zero.
    #[error("max_value_bytes must be greater than zero")]
    MaxValueBytes,
}

impl From<BuildError> for tta_core::Error {
    fn from(e: BuildError) -> Self {
        tta_core::Error::invalid_config(e)
    }
}

/// Builds a [`CacheLayer`] (made by [`CacheLayer::builder`]) or, as sugar over the same
/// settings, a [`CachePrimitive`] around an inner primitive (made by
/// [`CachePrimitive::builder`]). Setters only store; `build` validates once.
///
/// | setting | default | rule |
/// |---|---|---|
/// | `store` | a [`MemoryStore`] of 10,000 entries | any [`CacheStore`]; [`BoxStore`](crate::BoxStore) to choose at run time |
/// | `ttl` | 1 hour | 1 ms to [`CachePrimitive::MAX_TTL`] (30 days) |
/// | `namespace` | `default` | `[A-Za-z0-9_.-]`, 1 to 64 bytes |
/// | `version` | 1 | bump it to invalidate every entry of the namespace |
/// | `key_fn` | the input's postcard bytes | any `Fn(&I) -> B` where `B: AsRef<[u8]>` (`Vec<u8>`, `String`, `&[u8]`...) |
/// | `max_value_bytes` | 1 MiB | values encoding larger are not stored (counted) |
/// | `name` | `cache` | a valid primitive name |
/// | `telemetry` | [`Telemetry::global`] | |
#[derive(Debug)]
#[must_use]
pub struct CacheBuilder<T = Standalone, S = MemoryStore, K = SerializedInput> {
    target: T,
    store: S,
    key: K,
    settings: Settings,
}

/// The settings that do not change the builder's type.
#[derive(Debug)]
struct Settings {
    ttl: Duration,
    namespace: String,
    version: u32,
    max_value_bytes: usize,
    name: String,
    telemetry: Option<Telemetry>,
}

impl<T> CacheBuilder<T> {
    pub(crate) fn new(target: T) -> Self {
        Self {
            target,
            store: MemoryStore::new(),
            key: SerializedInput,
            settings: Settings {
                ttl: Duration::from_secs(3600),
                namespace: "default".to_owned(),
                version: 1,
                max_value_bytes: 1 << 20,
                name: "cache".to_owned(),
                telemetry: None,
            },
        }
    }
}

impl<T, S, K> CacheBuilder<T, S, K> {
    /// Where entries live.
    pub fn store<U: CacheStore>(self, store: U) -> CacheBuilder<T, U, K> {
        CacheBuilder {
            target: self.target,
            store,
            key: self.key,
            settings: self.settings,
        }
    }

    /// Derives the key bytes from the input with `f` instead of serializing the whole
    /// input, to ignore a request id, say. The bytes are hashed, never stored.
    pub fn key_fn<F>(self, f: F) -> CacheBuilder<T, S, KeyWith<F>> {
        CacheBuilder {
            target: self.target,
            store: self.store,
            key: KeyWith(f),
            settings: self.settings,
        }
    }

    /// How long an entry lives.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// The namespace, hashed into every key and shown in store keys.
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.settings.namespace);
        self
    }

    /// The entry version: a new version never reads an old version's entries.
    pub fn version(mut self, version: u32) -> Self {
        self.settings.version = version;
        self
    }

    /// The largest encoded value stored; larger ones are returned but not cached.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_value_bytes = bytes;
        self
    }

    /// The primitive's name (the `cache` metric label).
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.settings.name);
        self
    }

    /// Explicit telemetry providers instead of the global ones.
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.settings.telemetry = Some(telemetry.clone());
        self
    }

    fn validate(self) -> Result<(T, CacheLayer<S, K>), BuildError> {
        let s = self.settings;
        let name = PrimitiveName::new(&s.name).map_err(BuildError::Name)?;
        let namespace = PrimitiveName::new(&s.namespace).map_err(BuildError::Namespace)?;
        let max_ttl = CachePrimitive::<()>::MAX_TTL;
        if s.ttl < Duration::from_millis(1) || s.ttl > max_ttl {
            return Err(BuildError::Ttl {
                value: s.ttl,
                max: max_ttl,
            });
        }
        if s.max_value_bytes == 0 {
            return Err(BuildError::MaxValueBytes);
        }
        let layer = CacheLayer {
            config: CacheConfig {
                store: self.store,
                key: self.key,
                ttl: s.ttl,
                namespace: namespace.to_arc(),
                version: s.version,
                max_value_bytes: s.max_value_bytes,
            },
            name,
            telemetry: s.telemetry.unwrap_or_default(),
        };
        Ok((self.target, layer))
    }
}

impl<S, K> CacheBuilder<Standalone, S, K> {
    /// Validates the settings and builds the layer.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for an invalid name or namespace, a TTL out of range, or a zero
    /// value size limit.
    pub fn build(self) -> Result<CacheLayer<S, K>, BuildError> {
        self.validate().map(|(Standalone, layer)| layer)
    }
}

impl<P, S: CacheStore, K> CacheBuilder<Around<P>, S, K> {
    /// Validates the settings and builds the cache around the inner primitive.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for an invalid name or namespace, a TTL out of range, or a zero
    /// value size limit.
    pub fn build(self) -> Result<CachePrimitive<P, S, K>, BuildError> {
        let (Around(inner), layer) = self.validate()?;
        Ok(layer.wrap(inner))
    }
}

/// The cache's validated settings, and its [`Layer`]: a [`CachePrimitive`] around
/// whatever it wraps. Made by [`CacheLayer::builder`].
///
/// Every primitive a layer wraps shares its store (a clone of it): give each its own
/// namespace unless they answer the same questions.
///
/// As a tower layer: `tta_core::tower::TowerLayer::new(cache)` (feature `tower`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_cache::CacheLayer;
/// use tta_core::{from_sync_fn, Stack, WorkflowContext};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = CacheLayer::builder().namespace("qa").ttl(Duration::from_secs(600)).build()?;
/// let llm = from_sync_fn(|q: String, _| Ok(format!("answer to {q}")));
/// let cached = Stack::new().layer(cache).into_primitive(llm);
/// let cx = WorkflowContext::new();
/// cached.execute("hi".into(), &cx).await?;
/// cached.execute("hi".into(), &cx).await?;
/// assert_eq!(cached.stats().hits, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CacheLayer<S = MemoryStore, K = SerializedInput> {
    config: CacheConfig<S, K>,
    name: PrimitiveName,
    telemetry: Telemetry,
}

/// What a cache does with each request: the validated settings a [`CacheLayer`] hands
/// every [`CachePrimitive`] it builds.
#[derive(Clone, Debug)]
pub(crate) struct CacheConfig<S, K> {
    pub(crate) store: S,
    pub(crate) key: K,
    pub(crate) ttl: Duration,
    pub(crate) namespace: Arc<str>,
    pub(crate) version: u32,
    pub(crate) max_value_bytes: usize,
}

impl CacheLayer {
    /// Starts configuring a cache layer (in memory by default).
    pub fn builder() -> CacheBuilder<Standalone> {
        CacheBuilder::new(Standalone)
    }
}

impl<S: CacheStore, K> CacheLayer<S, K> {
    /// Builds the cache around `inner`, consuming the settings.
    fn wrap<P>(self, inner: P) -> CachePrimitive<P, S, K> {
        let store = &self.config.store;
        CachePrimitive {
            metrics: Arc::new(
                CacheMetrics::new(
                    &self.name,
                    store.kind(),
                    store.breaker_state().is_some(),
                    store.is_timed(),
                    &self.telemetry,
                )
                .initialize(),
            ),
            inst: tta_core::Instrumentation::new("cache", self.name, &self.telemetry),
            inner,
            config: Arc::new(self.config),
            flights: Arc::new(Flights::new()),
        }
    }
}

impl<P, S: CacheStore + Clone, K: Clone> Layer<P> for CacheLayer<S, K> {
    type Primitive = CachePrimitive<P, S, K>;

    fn layer(&self, inner: P) -> Self::Primitive {
        self.clone().wrap(inner)
    }
}
