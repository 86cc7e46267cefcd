//! The two-phase timeout primitive for tta workflows.
//!
//! **Not built yet.** It will hold `TimeoutPrimitive`: at `timeout` a call is marked late but may finish; at `timeout + grace` the inner future is dropped and an error of kind timeout naming this primitive is returned; the child context carries the deadline; an optional fallback; `tta.timeout.*` metrics; a tower `Layer` (DESIGN.md, "TimeoutPrimitive").
//!
//! Until then this crate exports nothing; it exists so that the workspace, its
//! manifests and its release tooling are in place. See the workspace's `DESIGN.md`
//! section named above and the crate README.
