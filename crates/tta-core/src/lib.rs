//! The shared core of tta: the [`WorkflowPrimitive`] trait, composition with `>>` and `|`,
//! the [`WorkflowContext`] every step receives, the exact [`CostLedger`], the one
//! [`Error`] type, and the [`Instrumentation`] every primitive uses for its span and
//! metrics.
//!
//! Library code here uses the OpenTelemetry **API** only; install an SDK (for example
//! with `tta-apm`) in the application to export anything.
//!
//! # Examples
//!
//! ```
//! use tta_core::{from_fn, Error, WorkflowContext, WorkflowPrimitive};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
//! let clean = from_fn(|s: String, _| async move { Ok::<_, Error>(s.trim().to_owned()) });
//! let words = from_fn(|s: String, _| async move { Ok::<_, Error>(s.split_whitespace().count()) });
//! let chars = from_fn(|s: String, _| async move { Ok::<_, Error>(s.chars().count()) });
//!
//! // Sequence, then two branches in parallel on the same input.
//! let flow = clean >> (words | chars);
//! let cx = WorkflowContext::new();
//! assert_eq!(flow.execute("  hello tta  ".into(), &cx).await?, (2, 9));
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `tower`: [`tower::PrimitiveService`] and [`tower::ServicePrimitive`].
//! - `bound-instruments`: bind instruments to their label sets at build time (see
//!   [`bound`]); turned on by `tta-apm` together with the SDK's matching feature.
#![doc(test(attr(deny(warnings))))]

pub mod bound;
mod breaker;
mod builder;
mod compose;
mod context;
pub mod deadline;
mod error;
mod idle;
mod instrument;
mod label;
mod layer;
mod ledger;
mod name;
mod price;
mod primitive;
#[cfg(feature = "redis")]
pub mod redis;
pub mod semconv;
mod stream;
mod telemetry;
#[cfg(feature = "tower")]
pub mod tower;
mod window;

pub use breaker::{Breaker, BreakerSnapshot, BreakerState, Detached, Permit, Verdict};
pub use builder::PrimitiveBuilder;
pub use compose::{Join, Parallel, Then, WorkflowPrimitiveExt, parallel};
pub use context::{ContextError, WorkflowContext, WorkflowContextBuilder};
pub use error::{AttemptError, BoxError, Error, ErrorClass, ErrorKind, retry_after};
pub use idle::IdleTimer;
pub use instrument::{Execution, Instrumentation, Outcome};
pub use label::{Label, random_seed};
pub use layer::{Around, Identity, Layer, Layered, Stack, Standalone};
pub use ledger::{AttemptKind, CostEntry, CostLedger, CostTotals, ReportsUsage, TokenUsage, Usd};
pub use name::{InvalidName, PrimitiveName};
pub use price::{CostBound, MaxUsage, ModelInfo, Price, ValidPrice};
pub use primitive::{
    BoxPrimitive, Flow, FnPrimitive, StepFn, SyncFn, WorkflowPrimitive, from_fn, from_sync_fn,
};
pub use stream::{
    Body, BoxStreamPrimitive, OneChunk, StreamFn, StreamPrimitive, Streamable, Streamed,
    first_chunk, from_stream_fn,
};
pub use telemetry::{SCOPE_NAME, Telemetry};
pub use window::OutcomeWindow;
