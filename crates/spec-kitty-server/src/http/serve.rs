//! Starting and stopping the HTTP(S) server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::task::JoinHandle;

use crate::auth::signing_key::{self, KeyError};
use crate::auth::tokens::Signer;
use crate::board::hub::Hub;
use crate::config::{ServerConfig, Tls};
use crate::http::app::{AppState, router};
use crate::http::body::BodyBudget;
use crate::http::conn::{Guard, OpenConnections};
use crate::http::listener;
use crate::http::metrics::{Metrics, MetricsServer};
use crate::http::self_signed::{self, SelfSignedError};
use crate::store::{self, Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(std::io::Error),
    #[error(transparent)]
    SelfSigned(#[from] SelfSignedError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// A server accepting requests.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub tls: bool,
    pub store: Arc<dyn Store>,
    /// Where `/metrics` is served (`--metrics-listen`), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    metrics: Option<MetricsServer>,
}

impl RunningServer {
    /// The base URL clients use.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A handle that stops the server gracefully from anywhere.
    pub fn handle(&self) -> Handle<SocketAddr> {
        self.handle.clone()
    }

    /// Stops accepting, lets requests in flight finish (up to `grace`), and
    /// waits for the server to end.
    pub async fn shutdown(self, grace: Duration) {
        self.handle.graceful_shutdown(Some(grace));
        let _ = self.task.await;
        if let Some(metrics) = self.metrics {
            metrics.shutdown(grace).await;
        }
    }

    /// Waits until the server ends (after a shutdown from a handle); the
    /// metrics listener ends with it.
    pub async fn wait(self) -> std::io::Result<()> {
        let ended = self
            .task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some(metrics) = self.metrics {
            metrics.shutdown(Duration::from_secs(1)).await;
        }
        ended
    }
}

/// Opens the store and starts serving.
pub async fn start(config: &ServerConfig) -> Result<RunningServer, ServeError> {
    let store = store::open_with(&config.storage.database_url, config.pool).await?;
    start_with_store(config, store).await
}

/// The signing key: a key file named in the config (the same file on every
/// instance), else the key the store shares between instances (PostgreSQL),
/// else the key file in the data directory (made on first start).
async fn signing_key(config: &ServerConfig, store: &Arc<dyn Store>) -> Result<Vec<u8>, ServeError> {
    if let Some(path) = &config.signing_key_file {
        return Ok(signing_key::load_file(path)?);
    }
    let mut candidate = [0u8; 64];
    getrandom::fill(&mut candidate).map_err(|e| KeyError::Random(e.to_string()))?;
    match store.shared_signing_key(&candidate).await? {
        Some(key) => Ok(key),
        None => Ok(signing_key::load_or_create(&config.storage.data_dir)?),
    }
}

/// Starts serving on an already open store.
pub async fn start_with_store(
    config: &ServerConfig,
    store: Arc<dyn Store>,
) -> Result<RunningServer, ServeError> {
    let signer = signer(config, &store).await?;
    build_missing_board(&store).await?;
    let hub = Hub::new();
    store.listen_board(hub.clone());
    let metrics = Metrics::new();
    let state = app_state(config, &store, signer, hub, metrics.clone());
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let bind_error = |source| ServeError::Bind {
        addr: config.listen,
        source,
    };
    let (listener, addr) = bind(config)?;
    let handle: Handle<SocketAddr> = Handle::new();
    let mut server = axum_server::from_tcp(listener)
        .map_err(bind_error)?
        .accept_error_handler(log_accept_error);
    // hyper's header timeout would also cut kept-alive connections short;
    // `conn` keeps the deadlines instead (see there).
    server
        .http_builder()
        .http1()
        .header_read_timeout(None)
        // Above the app's own limits (`app::check_header_size`), so a head
        // too large is answered by the app, in JSON, not by hyper with an
        // empty 431.
        .max_headers(crate::http::app::MAX_HEADERS * 2);
    let limits = config.connections;
    let guard = Guard::new(DefaultAcceptor::new(), limits);
    let connections = guard.open_connections();
    let task = match &config.tls {
        None => tokio::spawn(server.acceptor(guard).handle(handle.clone()).serve(app)),
        Some(source) => {
            // ring is the one crypto provider in this workspace; installing
            // it twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = rustls_config(source, config).await?;
            let acceptor = RustlsAcceptor::new(tls).handshake_timeout(limits.header_read_timeout);
            tokio::spawn(
                server
                    .acceptor(guard.with_acceptor(acceptor))
                    .handle(handle.clone())
                    .serve(app),
            )
        }
    };
    let metrics = match start_metrics(config, metrics, &store, connections) {
        Ok(metrics) => metrics,
        Err(e) => {
            handle.shutdown();
            let _ = task.await;
            return Err(e);
        }
    };
    Ok(RunningServer {
        addr,
        tls: config.tls.is_some(),
        store,
        metrics_addr: metrics.as_ref().map(|m| m.addr),
        handle,
        task,
        metrics,
    })
}

/// The token signer over [`signing_key`]; a key of the wrong shape is
/// reported as a corrupt key file, the one place an operator can mend it.
async fn signer(config: &ServerConfig, store: &Arc<dyn Store>) -> Result<Signer, ServeError> {
    let key = signing_key(config, store).await?;
    let signer =
        Signer::new(&key, config.access_lifetime, config.refresh_lifetime).map_err(|_| {
            KeyError::Corrupt {
                path: config.storage.data_dir.join(signing_key::KEY_FILE),
            }
        })?;
    Ok(signer)
}

/// A database from before the board holds events and no board: build it
/// once from the events, before serving, so no request sees an empty board.
async fn build_missing_board(store: &Arc<dyn Store>) -> Result<(), ServeError> {
    if store.board_missing().await? {
        tracing::info!("building the team board from the stored events (first start with a board)");
        let report = store.rebuild_board(None, false).await?;
        tracing::info!(
            projects = report.projects,
            events = report.events,
            work_packages = report.cards,
            "team board built"
        );
    }
    Ok(())
}

/// What every request handler shares: the store, the signer, the limits of
/// the config and the live board hub.
fn app_state(
    config: &ServerConfig,
    store: &Arc<dyn Store>,
    signer: Signer,
    hub: Hub,
    metrics: Metrics,
) -> AppState {
    AppState {
        store: Arc::clone(store),
        signer: Arc::new(signer),
        limits: config.limits,
        body_budget: BodyBudget::new(config.limits.max_inflight_body_bytes),
        hub,
        login_slots: Arc::new(tokio::sync::Semaphore::new(
            config.limits.login_max_concurrent as usize,
        )),
        tls: config.tls.is_some(),
        metrics,
    }
}

/// The listening socket, bound before the server task starts so that a
/// port in use fails `start` instead of the task, and its actual address
/// (port 0 asks the system for one).
fn bind(config: &ServerConfig) -> Result<(std::net::TcpListener, SocketAddr), ServeError> {
    let bind_error = |source| ServeError::Bind {
        addr: config.listen,
        source,
    };
    let listener = listener::bind(config.listen).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, addr))
}

/// The `/metrics` listener, when `--metrics-listen` asks for one; the
/// caller stops the main server when it cannot start.
fn start_metrics(
    config: &ServerConfig,
    metrics: Metrics,
    store: &Arc<dyn Store>,
    connections: OpenConnections,
) -> Result<Option<MetricsServer>, ServeError> {
    config
        .metrics_listen
        .map(|addr| {
            MetricsServer::start(
                addr,
                config.connections,
                metrics,
                Arc::clone(store),
                connections,
            )
        })
        .transpose()
}

/// The certificate to serve: the operator's files, or one issued now from
/// the private CA in the data directory (see [`self_signed`]).
async fn rustls_config(source: &Tls, config: &ServerConfig) -> Result<RustlsConfig, ServeError> {
    match source {
        Tls::Files { cert, key } => RustlsConfig::from_pem_file(cert, key)
            .await
            .map_err(ServeError::Tls),
        Tls::SelfSigned { names } => {
            let names = self_signed::names_for(config.listen.ip(), names);
            let data_dir = config.storage.data_dir.clone();
            let issued = tokio::task::spawn_blocking(move || self_signed::issue(&data_dir, &names))
                .await
                .map_err(|e| ServeError::Runtime(std::io::Error::other(e)))??;
            if issued.created {
                tracing::info!(ca = %issued.ca_file.display(), "made a private certificate authority for https");
            }
            tracing::info!(
                names = %issued.names.join(", "),
                fingerprint = %issued.ca_fingerprint,
                "https with a certificate from the server's private CA: clients trust it with SSL_CERT_FILE={}",
                issued.ca_file.display()
            );
            RustlsConfig::from_pem(issued.cert_pem.into_bytes(), issued.key_pem.into_bytes())
                .await
                .map_err(ServeError::Tls)
        }
    }
}

/// Logs a failed accept, at most once per [`ACCEPT_LOG_EVERY`] so a flood
/// (out of file descriptors, the connection cap) cannot flood the log.
/// axum-server backs off and keeps accepting after every error, so none
/// stops the server or makes it spin.
fn log_accept_error(peer: Option<&SocketAddr>, error: &std::io::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    static SKIPPED: AtomicU64 = AtomicU64::new(0);
    let now = crate::clock::now_secs().max(0) as u64;
    let last = LAST.load(Ordering::Relaxed);
    if now < last.saturating_add(ACCEPT_LOG_EVERY)
        || LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let skipped = SKIPPED.swap(0, Ordering::Relaxed);
    match peer {
        Some(peer) => tracing::warn!(%peer, %error, skipped, "connection refused or failed"),
        None => tracing::warn!(%error, skipped, "cannot accept connections"),
    }
}

/// Seconds between two accept-error log lines.
const ACCEPT_LOG_EVERY: u64 = 10;

/// A server on its own runtime, for synchronous tests and benchmarks:
/// start it, talk to it over real HTTP, drop it to stop it.
pub struct BackgroundServer {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub url: String,
    pub store: Arc<dyn Store>,
    /// Where `/metrics` is served, if the config asked for it.
    pub metrics_addr: Option<SocketAddr>,
}

impl BackgroundServer {
    pub fn start(config: &ServerConfig) -> Result<BackgroundServer, ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let server = runtime.block_on(start(config))?;
        Ok(BackgroundServer {
            addr: server.addr,
            url: server.url(),
            store: Arc::clone(&server.store),
            metrics_addr: server.metrics_addr,
            server: Some(server),
            runtime: Some(runtime),
        })
    }

    /// Runs a future (an admin operation, say) on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(runtime) => runtime.block_on(future),
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(future))
                .unwrap_or_else(|e| panic!("no runtime for block_on: {e}")),
        }
    }

    /// Stops the server; connections are then refused.
    pub fn stop(&mut self) {
        if let (Some(runtime), Some(server)) = (&self.runtime, self.server.take()) {
            runtime.block_on(server.shutdown(Duration::from_secs(5)));
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        self.stop();
    }
}
