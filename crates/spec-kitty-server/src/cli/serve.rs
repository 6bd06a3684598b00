//! `spec-kitty-server serve`: start, log, and stop on a signal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::Failure;
use crate::config::{LogFormat, ServeArgs, ServerConfig, StorageArgs};
use crate::store;

/// Standard error for log lines, dropping whatever cannot be written.
///
/// Under `serve 2>&1 | tee log`, Ctrl-C ends `tee` as well, and from then on
/// every write to stderr fails with `EPIPE` (Rust ignores `SIGPIPE`). A log
/// line that cannot be written is lost; it must never be a reason to stop
/// answering requests, nor to miss the shutdown that follows the signal.
pub(super) struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Writes `line` and a newline to stderr, ignoring a closed pipe where
/// `eprintln!` would panic.
pub(super) fn print_error(line: &str) {
    let _ = writeln!(LossyStderr, "{line}");
}

/// Whether log lines on stderr get colour: `--color always|never`, or for
/// `auto` a terminal without `NO_COLOR` (<https://no-color.org>: present
/// and not empty).
pub(super) fn colour_logs(when: super::ColorWhen) -> bool {
    match when {
        super::ColorWhen::Always => true,
        super::ColorWhen::Never => false,
        super::ColorWhen::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

pub(super) fn init_logging(format: LogFormat, default_level: &str, ansi: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // `log_internal_errors(false)`: on a failed write the fmt layer would
    // otherwise report it with `eprintln!`, which panics on the same closed
    // pipe (the panic the issue saw in a runtime worker).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .log_internal_errors(false)
        .with_writer(|| LossyStderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub(super) async fn serve(
    args: ServeArgs,
    storage: StorageArgs,
    ansi: bool,
) -> Result<(), Failure> {
    let config = ServerConfig::resolve(&args, &storage)?;
    init_logging(config.log_format, "info", ansi);
    let server = crate::http::serve::start(&config).await?;
    tracing::info!(
        url = %server.url(),
        database = %store::postgres::redact(&config.storage.database_url),
        data_dir = %config.storage.data_dir.display(),
        backend = server.store.backend(),
        "spec-kitty-server listening"
    );
    if let Some(addr) = server.metrics_addr {
        tracing::info!(url = %format!("http://{addr}/metrics"), "metrics listening");
    }
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
        // Stop first, then say so: the stop must not wait on a log line.
        handle.graceful_shutdown(Some(Duration::from_secs(10)));
        tracing::info!("shutting down: finishing requests in flight");
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
