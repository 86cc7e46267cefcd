//! Test support shared by the tta crates' tests: an in-memory OpenTelemetry pipeline
//! whose spans and metrics tests can assert on, a raw HTTP scraper, a scripted LLM
//! provider on loopback HTTP, and finders for the external programs (`promtool`,
//! `redis-server`) that tests run for real.
//!
//! It depends on no tta crate, so every tta crate can use it as a dev-dependency.

pub mod http;
pub mod llm_server;
pub mod otlp;
pub mod redis;
pub mod telemetry;
pub mod tools;
