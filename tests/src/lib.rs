//! Test support shared by the tta crates' tests: an in-memory OpenTelemetry pipeline
//! whose spans and metrics tests can assert on, a raw HTTP scraper, a scripted LLM
//! provider on loopback HTTP, property runs that double as time-boxed fuzzing, and finders for the external programs (`promtool`,
//! `redis-server`) that tests run for real.
//!
//! It depends on no tta crate, so every tta crate can use it as a dev-dependency.

pub mod faults;
pub mod fuzz;
pub mod http;
pub mod llm_server;
pub mod otlp;
pub mod redis;
pub mod telemetry;
pub mod tools;

/// Serves `app` on `listener` in a task until the returned sender is dropped or sent to
/// (the loopback servers of this crate stop when they are dropped).
pub(crate) fn serve_until_stopped<L>(
    listener: L,
    app: axum::Router,
) -> tokio::sync::oneshot::Sender<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}
