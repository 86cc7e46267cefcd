//! Configuration of the cache primitive, validated once in `build`.

use std::time::Duration;

use tta_core::{InvalidName, PrimitiveName, Telemetry};

use crate::flight::Flights;
use crate::metrics::CacheMetrics;
use crate::{CachePrimitive, CacheStore, KeyWith, MemoryStore, SerializedInput};

/// Why a cache or a store could not be built.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tta_cache::{BuildError, CachePrimitive};
/// use tta_core::{from_fn, Error};
///
/// let inner = from_fn(|q: String, _| async move { Ok::<_, Error>(q) });
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
    /// The TTL is zero or above [`CachePrimitive::MAX_TTL`].
    #[error("ttl must be between 1 ms and {max:?}, got {value:?}")]
    Ttl {
        /// The value given.
        value: Duration,
        /// The maximum.
        max: Duration,
    },
    /// The value size limit is zero.
    #[error("max_value_bytes must be greater than zero")]
    MaxValueBytes,
    /// A store bound is invalid.
    #[error("invalid store bound: {0}")]
    StoreBound(&'static str),
    /// A Redis URL that cannot be used.
    #[error("invalid Redis URL {url:?}: {reason}")]
    RedisUrl {
        /// The URL, with any password removed.
        url: String,
        /// Why.
        reason: String,
    },
    /// A Redis setting that cannot be used (pool size, timeouts, breaker).
    #[error("invalid Redis setting: {0}")]
    RedisSetting(&'static str),
}

impl From<BuildError> for tta_core::Error {
    fn from(e: BuildError) -> Self {
        tta_core::Error::invalid_config(e)
    }
}

/// Builds a [`CachePrimitive`]; made by [`CachePrimitive::builder`].
///
/// | setting | default | rule |
/// |---|---|---|
/// | `store` | a [`MemoryStore`] of 10,000 entries | any [`CacheStore`] |
/// | `ttl` | 1 hour | 1 ms to [`CachePrimitive::MAX_TTL`] (30 days) |
/// | `namespace` | `default` | `[A-Za-z0-9_.-]`, 1 to 64 bytes |
/// | `version` | 1 | bump it to invalidate every entry of the namespace |
/// | `key_fn` | the input's postcard bytes | any `Fn(&I) -> Vec<u8>` |
/// | `max_value_bytes` | 1 MiB | values encoding larger are not stored (counted) |
/// | `name` | `cache` | a valid primitive name |
#[derive(Debug)]
#[must_use]
pub struct CacheBuilder<P, S = MemoryStore, K = SerializedInput> {
    inner: P,
    store: S,
    key: K,
    ttl: Duration,
    namespace: String,
    version: u32,
    max_value_bytes: usize,
    name: String,
    telemetry: Option<Telemetry>,
}

impl<P> CacheBuilder<P> {
    pub(crate) fn new(inner: P) -> Self {
        Self {
            inner,
            store: MemoryStore::new(),
            key: SerializedInput,
            ttl: Duration::from_secs(3600),
            namespace: "default".to_owned(),
            version: 1,
            max_value_bytes: 1 << 20,
            name: "cache".to_owned(),
            telemetry: None,
        }
    }
}

impl<P, S, K> CacheBuilder<P, S, K> {
    /// Where entries live.
    pub fn store<T: CacheStore>(self, store: T) -> CacheBuilder<P, T, K> {
        CacheBuilder {
            inner: self.inner,
            store,
            key: self.key,
            ttl: self.ttl,
            namespace: self.namespace,
            version: self.version,
            max_value_bytes: self.max_value_bytes,
            name: self.name,
            telemetry: self.telemetry,
        }
    }

    /// Derives the key bytes from the input with `f` (returning anything that is bytes:
    /// `Vec<u8>`, `String`, `&[u8]`...) instead of serializing the whole input, to ignore
    /// a request id, say. The bytes are hashed, never stored.
    pub fn key_fn<F>(self, f: F) -> CacheBuilder<P, S, KeyWith<F>> {
        CacheBuilder {
            inner: self.inner,
            store: self.store,
            key: KeyWith(f),
            ttl: self.ttl,
            namespace: self.namespace,
            version: self.version,
            max_value_bytes: self.max_value_bytes,
            name: self.name,
            telemetry: self.telemetry,
        }
    }

    /// How long an entry lives.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The namespace, hashed into every key and shown in store keys.
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// The entry version: a new version never reads an old version's entries.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The largest encoded value stored; larger ones are returned but not cached.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// The primitive's name (the `cache` metric label).
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Uses explicit telemetry providers instead of the global ones.
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = Some(telemetry.clone());
        self
    }

    /// Validates the settings and builds the cache.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for an invalid name or namespace, a TTL out of range, or a zero
    /// value size limit.
    pub fn build(self) -> Result<CachePrimitive<P, S, K>, BuildError>
    where
        S: CacheStore,
    {
        let name = PrimitiveName::new(&self.name).map_err(BuildError::Name)?;
        let namespace = PrimitiveName::new(&self.namespace).map_err(BuildError::Namespace)?;
        if self.ttl < Duration::from_millis(1)
            || self.ttl > CachePrimitive::<(), MemoryStore>::MAX_TTL
        {
            return Err(BuildError::Ttl {
                value: self.ttl,
                max: CachePrimitive::<(), MemoryStore>::MAX_TTL,
            });
        }
        if self.max_value_bytes == 0 {
            return Err(BuildError::MaxValueBytes);
        }
        Ok(self.assemble(name, namespace))
    }

    /// Builds from settings already validated (by [`Self::build`], or by a layer).
    pub(crate) fn assemble(
        self,
        name: PrimitiveName,
        namespace: PrimitiveName,
    ) -> CachePrimitive<P, S, K>
    where
        S: CacheStore,
    {
        let telemetry = self.telemetry.unwrap_or_default();
        CachePrimitive {
            metrics: CacheMetrics::new(&name, self.store.kind(), &telemetry).initialize(),
            inst: tta_core::Instrumentation::new("cache", name, &telemetry),
            inner: self.inner,
            store: self.store,
            key: self.key,
            ttl: self.ttl,
            namespace: namespace.to_arc(),
            version: self.version,
            max_value_bytes: self.max_value_bytes,
            flights: Flights::new(),
        }
    }
}
