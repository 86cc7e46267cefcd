//! OpenTelemetry and Prometheus setup for tta applications.
//!
//! **Not built yet.** It will hold `ApmConfig` (from code and from the `OTEL_*` / `TTA_*` environment), `init` installing the global meter and tracer providers, a Prometheus `/metrics` HTTP server (default `127.0.0.1:9464`), console and OTLP span export, second-scale histogram views, and an `ApmGuard` that flushes and shuts down; a busy port, an unreachable collector or a disabled SDK degrade to a readable status, never a panic (DESIGN.md, "apm setup").
//!
//! Until then this crate exports nothing; it exists so that the workspace, its
//! manifests and its release tooling are in place. See the workspace's `DESIGN.md`
//! section named above and the crate README.
