//! The response cache primitive for tta workflows.
//!
//! **Not built yet.** It will hold `CachePrimitive` with a `CacheStore` trait, a bounded in-memory store on moka and a Redis store on fred (feature `redis`), keys hashed from namespace, version and the serialized input, single flight for concurrent misses, errors never cached, and savings recorded on every hit; Redis faults bypass to the inner primitive (DESIGN.md, "CachePrimitive").
//!
//! Until then this crate exports nothing; it exists so that the workspace, its
//! manifests and its release tooling are in place. See the workspace's `DESIGN.md`
//! section named above and the crate README.
