//! The tta facade: one dependency for composable, observable LLM workflow primitives.
//!
//! Today it re-exports [`tta_core`], the shared trait, composition, context, cost ledger
//! and instrumentation. The apm, timeout, cache and router crates join it behind the
//! features `apm`, `timeout`, `cache`, `cache-redis`, `router` and `full` as they are
//! built (DESIGN.md, "Crate map").
//!
//! # Examples
//!
//! ```
//! use tta_observability_integration::core::{from_fn, Error, WorkflowContext, WorkflowPrimitive};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let step = from_fn(|x: u32, _| async move { Ok::<_, Error>(x + 1) });
//! assert_eq!(step.execute(1, &WorkflowContext::new()).await.unwrap(), 2);
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

#[doc(inline)]
pub use tta_core as core;
