//! `spec-kitty-server serve`: start, log, and stop on a signal.

use std::io::IsTerminal;
use std::time::Duration;

use super::Failure;
use crate::config::{LogFormat, ServeArgs, ServerConfig, StorageArgs};
use crate::store;

pub(super) fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(super) async fn serve(args: ServeArgs, storage: StorageArgs) -> Result<(), Failure> {
    let config = ServerConfig::resolve(&args, &storage)?;
    init_logging(config.log_format, "info");
    let server = crate::http::serve::start(&config).await?;
    tracing::info!(
        url = %server.url(),
        database = %store::postgres::redact(&config.storage.database_url),
        data_dir = %config.storage.data_dir.display(),
        backend = server.store.backend(),
        "spec-kitty-server listening"
    );
    if server
        .store
        .list_users()
        .await
        .map(|u| u.is_empty())
        .unwrap_or(false)
    {
        tracing::info!(
            "no users yet: add one with `spec-kitty-server team add acme` then `spec-kitty-server user add alice --team acme` (same --data-dir)"
        );
    }
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        handle.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
