//! The `taskapi` binary: read the settings, then serve (default) or migrate.

use std::process::ExitCode;

use clap::Parser;
use taskapi::app::{Application, ReadyDatabase};
use taskapi::config::{Cli, CliCommand};

// glibc malloc showed up at ~6% of the server's CPU under load; mimalloc is faster for
// the many small, short-lived allocations of request handling (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; real environment variables win over it.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    taskapi::telemetry::init(
        cli.settings.log_format,
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole chain: "cannot reach the database: …: SQLSTATE 28000 (FATAL): …".
            let error = taskapi::db::error::chain(error.as_ref());
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    if cli.command == Some(CliCommand::Migrate) {
        let database = ReadyDatabase::prepare(&cli.settings.database()?).await?;
        tracing::info!("the database schema is up to date");
        database.shutdown().await;
        return Ok(());
    }
    let settings = cli.settings.validate()?;
    let app = Application::build(settings).await?;
    let address = app.local_addr()?;
    tracing::info!("listening on http://{address} (docs at http://{address}/docs)");
    if let Some(metrics) = app.metrics_addr()? {
        tracing::info!("metrics at http://{metrics}/metrics");
    }
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
