//! tta-gateway: an OpenAI-compatible gateway built from the tta crates, for teams that do
//! not write Rust.
//!
//! One HTTP endpoint any OpenAI SDK can call. Each exposed model is a
//! [`tta_router::RouterPrimitive`] over provider clients ([`tta_llm`]), inside a cache
//! ([`tta_cache`]) and a request timeout ([`tta_timeout`]); each API key's tenant has its
//! budgets and rate limits ([`tta_limit`]) around them. So the gateway has what the crates
//! have: exact per-attempt cost, no fallback loops (a route is tried at most once per
//! request), fallback before the first streamed chunk and never after it, budgets that
//! cannot overshoot, a cut stream that ends with an error event instead of `[DONE]`.
//!
//! - `POST /v1/chat/completions`: OpenAI's request and response shapes; `stream: true`
//!   answers server-sent events ending in `data: [DONE]`, with the usage chunk when
//!   `stream_options.include_usage` is set; every failure is OpenAI's error object.
//! - `GET /v1/models`, `GET /healthz`, `GET /readyz`; `/metrics` on its own address
//!   through tta-apm.
//!
//! The configuration is TOML ([`Config`]), documented in `docs/gateway.md`.
#![doc(test(attr(deny(warnings))))]

mod app;
mod auth;
pub mod config;
mod http_telemetry;
mod serve;
mod wire;

pub use app::Gateway;
pub use auth::key_digest;
pub use config::{Config, ConfigError, ConfigErrors};
pub use serve::{ConnectionLimits, serve};
