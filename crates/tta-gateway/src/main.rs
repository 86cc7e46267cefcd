//! `tta-gateway --config PATH`: serves the gateway; `--check-config PATH` checks a
//! configuration and exits.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tta_apm::ApmConfig;
use tta_gateway::{Config, Gateway};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "An OpenAI-compatible LLM gateway built from the tta crates."
)]
struct Args {
    /// The configuration to serve.
    #[arg(
        long,
        conflicts_with = "check_config",
        required_unless_present = "check_config"
    )]
    config: Option<std::path::PathBuf>,
    /// Check this configuration, print every error with its location, and exit.
    #[arg(long)]
    check_config: Option<std::path::PathBuf>,
}

fn read(path: &std::path::Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Config::parse(&text).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check_config {
        return match read(path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(path) = &args.config else {
        return ExitCode::FAILURE;
    };
    let config = match read(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let mut apm = ApmConfig::from_env()
        .metrics_addr(config.metrics_listen.clone())
        .console_spans(false);
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        apm = apm.service_name(
            config
                .telemetry
                .service_name
                .clone()
                .unwrap_or_else(|| "tta-gateway".to_owned()),
        );
    }
    let guard = match apm.build().map(tta_apm::init) {
        Ok(Ok(guard)) => guard,
        Ok(Err(e)) => {
            eprintln!("error: telemetry: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: telemetry configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Each request or open stream holds two descriptors; a soft limit of 1,024 (systemd's
    // default for services) would fail connections well before `max_concurrency`.
    let raised = rlimit::increase_nofile_limit(u64::MAX);
    let open_files = tta_gateway::config::open_file_limit();
    if let Err(e) = &raised {
        eprintln!("warning: cannot raise the open-file limit: {e}");
    }
    if let (Some(wanted), Some(limit)) = (config.max_concurrency, open_files) {
        let capacity = tta_gateway::config::open_file_capacity(limit);
        if u64::try_from(wanted).unwrap_or(u64::MAX) > capacity {
            eprintln!(
                "warning: max_concurrency = {wanted}, but the open-file limit ({limit}) serves \
                 about {capacity} requests at once (two descriptors each): past that, \
                 connections fail instead of getting 503"
            );
        }
    }
    let gateway = match Gateway::new(&config).await {
        Ok(g) => g,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or(config.listen.clone(), |a| a.to_string());
    println!("listening on http://{addr}");
    match guard.status().metrics_addr() {
        Some(metrics) => println!("metrics on http://{metrics}/metrics"),
        None => eprintln!("warning: /metrics is not served (see above)"),
    }
    let why = match (config.max_concurrency, open_files) {
        (Some(_), _) => "max_concurrency".to_owned(),
        (None, Some(limit)) => format!("max_concurrency left out; the open-file limit is {limit}"),
        (None, None) => "max_concurrency left out; the open-file limit is unknown".to_owned(),
    };
    println!(
        "serving at most {} requests at once ({why})",
        gateway.concurrency()
    );
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = std::pin::pin!(tta_gateway::serve(
        listener,
        gateway.app(),
        (&config).into(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::select! {
        () = &mut server => {}
        () = terminated() => {
            eprintln!("shutting down: draining requests in flight (at most {grace:?})");
            let _ = stop_tx.send(());
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                eprintln!("warning: requests still in flight after the grace were cut");
            }
        }
    }
    if let Err(e) = guard.shutdown().await {
        eprintln!("warning: {e}");
    }
    ExitCode::SUCCESS
}

/// SIGTERM or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
