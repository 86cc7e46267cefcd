//! The accept loop: HTTP/1.1 connections with a header read timeout, so a client that
//! sends its headers slowly (slowloris) is cut, a bound on the headers' size (431
//! beyond it), and a graceful shutdown that stops accepting and waits for the
//! connections in flight (streams included).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::Config;

/// The least [`ConnectionLimits::max_header_bytes`] can be (hyper's smallest buffer).
pub(crate) const MIN_HEADER_BYTES: usize = 8192;

/// What one connection may take before it is cut.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// A connection whose request headers take longer is closed.
    pub header_timeout: Duration,
    /// A request whose line and headers are larger gets 431 (at least 8,192: a smaller
    /// value counts as 8,192).
    pub max_header_bytes: usize,
}

impl From<&Config> for ConnectionLimits {
    fn from(config: &Config) -> Self {
        Self {
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            max_header_bytes: config.max_header_bytes,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for every connection in flight to finish (bound it with a timeout around this
/// future), each connection within `limits`. An accept error (a full file table) is
/// retried after 10 ms.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let max_buf = limits.max_header_bytes.max(MIN_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .max_buf_size(max_buf)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that went away, or was cut, ends its connection: nothing to do.
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
