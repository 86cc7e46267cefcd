//! Test support shared by the tta crates' tests: an in-memory OpenTelemetry pipeline
//! whose spans and metrics tests can assert on.
//!
//! It depends on no tta crate, so every tta crate can use it as a dev-dependency.

pub mod telemetry;
