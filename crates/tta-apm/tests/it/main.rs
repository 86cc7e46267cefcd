//! tta-apm integration tests: a real pipeline, scraped over real HTTP.
//!
//! `init` installs process-wide providers, so each test holds `serial()` for its whole
//! run (nextest runs each test in its own process anyway; `cargo test` does not).

#![allow(
    clippy::await_holding_lock,
    reason = "each test holds the process-wide lock for its whole run on its own runtime; nothing else awaits it"
)]

mod config;
mod degrade;
mod scrape;

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use tta_apm::{ApmConfig, ApmConfigBuilder};

static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A config on a free port with console export off (tests read their own output).
pub(crate) fn test_config(service: &str) -> ApmConfigBuilder {
    ApmConfig::builder(service)
        .service_version("1.2.3")
        .environment("test")
        .metrics_addr("127.0.0.1:0")
}

pub(crate) async fn scrape(addr: SocketAddr, path: &str) -> tta_tests::http::Response {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || tta_tests::http::get(addr, &path))
        .await
        .expect("scrape task")
        .expect("scrape")
}
