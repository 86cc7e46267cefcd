//! The tta facade: one dependency for composable async workflow primitives for LLM and
//! agent applications, with OpenTelemetry spans, Prometheus metrics and token and dollar
//! accounting built in.
//!
//! Everything of [`tta_core`] is re-exported at the root; each other crate joins behind
//! its feature, as a module:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | (always) | the root | `tta-core`: `WorkflowPrimitive`, `>>` / `\|`, `WorkflowContext`, `CostLedger`, `Error` |
//! | `apm` (`otlp` adds OTLP export) | [`apm`] | `tta-apm`: providers, `/metrics`, degradation |
//! | `timeout` | [`timeout`] | `tta-timeout`: `TimeoutPrimitive` |
//! | `cache` (`cache-redis` adds Redis) | [`cache`] | `tta-cache`: `CachePrimitive`, stores |
//! | `router` | [`router`] | `tta-router`: `RouterPrimitive` |
//! | `llm` | [`llm`] | `tta-llm`: chat types, `OpenAiCompatible`, `Anthropic` |
//! | `limit` (`limit-redis` adds Redis) | [`limit`] | `tta-limit`: `LimitLayer`, budgets and rates |
//! | `tower` | | tower interop in every included crate |
//! | `full` | | all of the above |
//!
//! [`prelude`] imports what a typical program needs.
//!
//! # Examples
//!
//! Install telemetry, build a timeout around a cache around a router of two providers,
//! run it, and read `/metrics` (this example runs with the `full` feature):
//!
#![cfg_attr(feature = "full", doc = "```rust")]
#![cfg_attr(not(feature = "full"), doc = "```text")]
//! use std::time::Duration;
//! use tta_observability_integration::prelude::*;
//! use tta_observability_integration::{apm, cache, router, timeout};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct Completion { text: String, input_tokens: u64, output_tokens: u64 }
//! impl ReportsUsage for Completion {
//!     fn token_usage(&self) -> Option<TokenUsage> {
//!         Some(TokenUsage::new(self.input_tokens, self.output_tokens))
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 1. Telemetry first: primitives take their instruments when they are built.
//! let guard = apm::init(apm::ApmConfig::from_env().service_name("support-bot")
//!     .metrics_addr("127.0.0.1:0").build()?)?;
//!
//! // 2. The providers, behind a router that prefers the cheaper one.
//! let provider = |name: &'static str| from_fn(move |prompt: String, _| async move {
//!     Ok::<_, Error>(Completion { text: format!("{name}: {prompt}"), input_tokens: 900, output_tokens: 150 })
//! });
//! let llm = router::RouterPrimitive::builder()
//!     .name("llm")
//!     .route(router::Route::new("premium", provider("premium")).price(router::Price::per_1k_tokens(0.005, 0.015)))
//!     .route(router::Route::new("budget", provider("budget")).price(router::Price::per_1k_tokens(0.0002, 0.0006)))
//!     .strategy(router::Strategy::Cheapest)
//!     .usage_reported()
//!     .build()?;
//!
//! // 3. A timeout around a cache around the router, read in the order a request travels:
//! //    the timeout bounds the whole call, the cache answers repeated prompts without
//! //    calling the router. (`>>` and `|` are for pipelines, not for wrapping.)
//! let stack = Stack::new()
//!     .layer(timeout::TimeoutLayer::builder().timeout(Duration::from_secs(2)).grace(Duration::from_millis(500)).build()?)
//!     .layer(cache::CacheLayer::builder().name("answers").ttl(Duration::from_secs(600)).build()?)
//!     .into_primitive(llm);
//!
//! // 4. Run it; the context carries ids, the deadline, cancellation and the cost ledger.
//! let cx = WorkflowContext::new();
//! for _ in 0..3 {
//!     stack.execute("Where is my order?".to_owned(), &cx).await?;
//! }
//! let totals = cx.ledger().totals();
//! assert!(totals.spent > Usd::ZERO && totals.saved > Usd::ZERO); // one fill, two hits
//!
//! // 5. Everything above is on /metrics.
//! let addr = guard.status().metrics_addr().expect("the metrics endpoint is live");
//! let body = tokio::task::spawn_blocking(move || tta_tests::http::get(addr, "/metrics")).await??.body;
//! assert!(body.contains("tta_cache_hits_total"));
//! assert!(body.contains("tta_router_cost_usd_total"));
//! assert!(body.contains("gen_ai_client_token_usage_bucket"));
//! guard.shutdown().await?;
//! # Ok(()) }
//! ```
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use tta_core::*;

/// OpenTelemetry and Prometheus setup: the `tta-apm` crate.
#[cfg(feature = "apm")]
#[cfg_attr(docsrs, doc(cfg(feature = "apm")))]
pub mod apm {
    #[doc(inline)]
    pub use tta_apm::*;
}

/// The two-phase timeout primitive: the `tta-timeout` crate.
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub mod timeout {
    #[doc(inline)]
    pub use tta_timeout::*;
}

/// The response cache: the `tta-cache` crate.
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache {
    #[doc(inline)]
    pub use tta_cache::*;
}

/// The LLM provider router: the `tta-router` crate.
#[cfg(feature = "router")]
#[cfg_attr(docsrs, doc(cfg(feature = "router")))]
pub mod router {
    #[doc(inline)]
    pub use tta_router::*;
}

/// Provider clients: the `tta-llm` crate.
#[cfg(feature = "llm")]
#[cfg_attr(docsrs, doc(cfg(feature = "llm")))]
pub mod llm {
    #[doc(inline)]
    pub use tta_llm::*;
}

/// Budgets and rate limits: the `tta-limit` crate.
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod limit {
    #[doc(inline)]
    pub use tta_limit::*;
}

/// What a typical program imports: `use tta_observability_integration::prelude::*;`.
pub mod prelude {
    pub use tta_core::{
        BoxPrimitive, Error, ErrorClass, ErrorKind, Flow, Layer, OneChunk, ReportsUsage, Stack,
        StreamPrimitive, Streamable, Streamed, TokenUsage, Usd, WorkflowContext, WorkflowPrimitive,
        WorkflowPrimitiveExt, from_fn, from_stream_fn, from_sync_fn, parallel,
    };

    #[cfg(feature = "cache")]
    pub use tta_cache::{CacheLayer, CachePrimitive, MemoryStore};
    #[cfg(feature = "limit")]
    pub use tta_limit::LimitLayer;
    #[cfg(feature = "router")]
    pub use tta_router::{Price, Route, RouterPrimitive, Strategy};
    #[cfg(feature = "timeout")]
    pub use tta_timeout::{TimeoutLayer, TimeoutPrimitive};
}

/// The workspace README's example, compiled as a doctest so it stays true.
#[cfg(all(feature = "full", doctest))]
#[doc = include_str!("../../../README.md")]
mod readme {}

/// This crate's README (its streaming example), compiled as a doctest so it stays true.
#[cfg(all(feature = "full", doctest))]
#[doc = include_str!("../README.md")]
mod facade_readme {}
