//! The HTTP application: shared state and the route table.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use spec_kitty_protocol::ErrorBody;

use crate::auth::tokens::Signer;
use crate::board::hub::Hub;
use crate::config::Limits;
use crate::http::body::BodyBudget;
use crate::http::metrics::{self, Metrics};
use crate::http::routes;
use crate::store::Store;
use crate::web;
use spec_kitty_protocol::paths;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub signer: Arc<Signer>,
    pub limits: Limits,
    /// Board changes, fanned out to the streams this process serves.
    pub hub: Hub,
    /// Request-body bytes held in memory at once, over all requests.
    pub body_budget: BodyBudget,
    /// One permit per password check that may run at once.
    pub login_slots: Arc<tokio::sync::Semaphore>,
    /// Whether this server speaks https (session cookies are then `Secure`).
    pub tls: bool,
    /// What the server counts, served by the metrics listener if any.
    pub metrics: Metrics,
}

/// Builds the router of contract sections 1 and 2 plus the health checks.
pub fn router(state: AppState) -> Router {
    // Made now, so a failure stops start-up rather than a log-in.
    crate::auth::passwords::decoy_hash();
    Router::new()
        .route("/api/v1/token/", post(routes::auth::login))
        .route("/api/v1/token/refresh/", post(routes::auth::refresh))
        .route(paths::REVOKE, post(routes::revoke::revoke))
        .route("/api/v1/device/code/", post(routes::device::code))
        .route("/api/v1/device/token/", post(routes::device::token))
        .route("/api/v1/events/batch/", post(routes::batch::ingest))
        .route("/api/v1/sync/health/", get(routes::health::sync_health))
        .route("/healthz", get(routes::health::liveness))
        .route(paths::PROJECTS, get(routes::board::projects))
        .route("/api/v1/projects/{uuid}/board/", get(routes::board::board))
        .route(
            "/api/v1/projects/{uuid}/events/",
            get(routes::board::events),
        )
        .route(
            "/api/v1/projects/{uuid}/stream/",
            get(routes::board::stream),
        )
        .route("/", get(web::home))
        .route("/login", post(web::login))
        .route("/logout", post(web::logout))
        .route(
            "/tokens",
            get(web::tokens::tokens_page).post(web::tokens::create_token),
        )
        .route("/tokens/{id}/revoke", post(web::tokens::revoke_token))
        .route(
            "/device",
            get(web::device::device_page).post(web::device::decide),
        )
        .route("/sessions", get(web::sessions::sessions_page))
        .route(
            "/sessions/revoke-all",
            post(web::sessions::sign_out_everywhere),
        )
        .route(
            "/sessions/{family}/revoke",
            post(web::sessions::revoke_session),
        )
        .route("/projects/{uuid}", get(web::board))
        .route("/projects/{uuid}/history", get(web::history))
        .route("/static/app.css", get(web::stylesheet))
        .route("/static/board.js", get(web::script))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(web::security_headers))
        .layer(middleware::from_fn(check_header_size))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn not_found(state: State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if !uri.path().starts_with("/api/") {
        return web::not_found_page(state, headers).await;
    }
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody::new("Not found; the API lives under /api/v1/")),
    )
        .into_response()
}

/// Request header fields accepted at most; hyper's own limit is set higher.
pub const MAX_HEADERS: usize = 100;

/// Bytes of request target and header fields accepted at most (hyper's own
/// buffer limit is about 400 KiB).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// 431, in JSON, for a request head over [`MAX_HEADERS`] fields or
/// [`MAX_HEAD_BYTES`] bytes.
async fn check_header_size(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes = request.uri().to_string().len()
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEAD_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Json(ErrorBody::with_details(
                "Request header fields too large",
                format!(
                    "{} header fields, {bytes} bytes; at most {MAX_HEADERS} fields and {MAX_HEAD_BYTES} bytes",
                    headers.len()
                ),
            )),
        )
            .into_response();
    }
    next.run(request).await
}

/// 405 with the JSON body every error has (axum's own is empty).
async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody::with_details(
            "Method not allowed",
            format!("{} does not accept {method}", uri.path()),
        )),
    )
        .into_response()
}

/// One log line per request: method, path (never the query or headers,
/// which may carry secrets), status and latency.
async fn log_request(State(_): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, %path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, %path, status, elapsed_ms, "request");
    }
    response
}
