//! The cache as a tower `Layer`.

use std::sync::Arc;
use std::time::Duration;

use tower::Layer;
use tta_core::tower::{PrimitiveService, ServicePrimitive};
use tta_core::{PrimitiveName, Telemetry};

use crate::{BuildError, CachePrimitive, CacheStore, SerializedInput};

/// Wraps any `tower::Service<I>` in a [`CachePrimitive`] sharing one store, and serves it
/// again as a `Service<I>` whose error type is [`tta_core::Error`]. The request must be
/// `Serialize` (it is the key) and the response `Serialize + DeserializeOwned + Clone`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tower::{Layer, ServiceExt};
/// use tta_cache::{CacheLayer, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = CacheLayer::new(MemoryStore::new(), Duration::from_secs(60), "svc").unwrap();
/// let svc = layer.layer(tower::service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) }));
/// assert_eq!(svc.clone().oneshot("abc".to_owned()).await.unwrap(), 3);
/// assert_eq!(svc.oneshot("abc".to_owned()).await.unwrap(), 3); // served from the cache
/// # }
/// ```
#[derive(Debug)]
pub struct CacheLayer<S> {
    store: Arc<S>,
    ttl: Duration,
    name: PrimitiveName,
    namespace: PrimitiveName,
    telemetry: Option<Telemetry>,
}

impl<S> Clone for CacheLayer<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            ttl: self.ttl,
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            telemetry: self.telemetry.clone(),
        }
    }
}

impl<S: CacheStore> CacheLayer<S> {
    /// A layer caching in `store` for `ttl`, under `namespace`, named `cache`.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for an invalid namespace or TTL.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tta_cache::{CacheLayer, MemoryStore};
    /// assert!(CacheLayer::new(MemoryStore::new(), Duration::ZERO, "svc").is_err());
    /// ```
    pub fn new(store: S, ttl: Duration, namespace: &str) -> Result<Self, BuildError> {
        let store = Arc::new(store);
        CachePrimitive::builder(())
            .store(Arc::clone(&store))
            .ttl(ttl)
            .namespace(namespace)
            .telemetry(&Telemetry::new(
                &opentelemetry::metrics::noop::NoopMeterProvider::new(),
                &opentelemetry::trace::noop::NoopTracerProvider::new(),
            ))
            .build()?;
        Ok(Self {
            store,
            ttl,
            name: PrimitiveName::new("cache").map_err(BuildError::Name)?,
            namespace: PrimitiveName::new(namespace).map_err(BuildError::Namespace)?,
            telemetry: None,
        })
    }

    /// Renames the caches the layer builds.
    ///
    /// # Errors
    ///
    /// [`BuildError::Name`] for an invalid name.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = tta_cache::CacheLayer::new(tta_cache::MemoryStore::new(), Duration::from_secs(1), "n").unwrap();
    /// assert!(layer.named("bad name").is_err());
    /// ```
    pub fn named(self, name: &str) -> Result<Self, BuildError> {
        Ok(Self {
            name: PrimitiveName::new(name).map_err(BuildError::Name)?,
            ..self
        })
    }

    /// Uses explicit telemetry providers instead of the global ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = tta_cache::CacheLayer::new(tta_cache::MemoryStore::new(), Duration::from_secs(1), "n")
    ///     .unwrap()
    ///     .with_telemetry(&tta_core::Telemetry::global());
    /// # let _ = layer;
    /// ```
    pub fn with_telemetry(self, telemetry: &Telemetry) -> Self {
        Self {
            telemetry: Some(telemetry.clone()),
            ..self
        }
    }
}

impl<S: CacheStore, Svc> Layer<Svc> for CacheLayer<S> {
    type Service = PrimitiveService<CachePrimitive<ServicePrimitive<Svc>, Arc<S>, SerializedInput>>;

    fn layer(&self, service: Svc) -> Self::Service {
        let telemetry = self.telemetry.clone().unwrap_or_default();
        let inner = ServicePrimitive::new(service).with_telemetry(&telemetry);
        let cache = CachePrimitive::builder(inner)
            .store(Arc::clone(&self.store))
            .ttl(self.ttl)
            .telemetry(&telemetry)
            .assemble(self.name.clone(), self.namespace.clone());
        PrimitiveService::new(cache)
    }
}
