//! The LLM provider router primitive for tta workflows.
//!
//! **Not built yet.** It will hold `RouterPrimitive`: named, priced routes; ordered, cheapest, lowest-latency, weighted, cheapest-within-latency-target and user-ranked strategies; fallback validated at build time; per-route health with a single probe after cooldown; exact per-attempt cost accounting and GenAI telemetry (DESIGN.md, "RouterPrimitive").
//!
//! Until then this crate exports nothing; it exists so that the workspace, its
//! manifests and its release tooling are in place. See the workspace's `DESIGN.md`
//! section named above and the crate README.
