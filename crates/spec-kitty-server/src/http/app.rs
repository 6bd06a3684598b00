//! The HTTP application: shared state and the route table.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use spec_kitty_protocol::ErrorBody;

use crate::auth::tokens::Signer;
use crate::config::Limits;
use crate::http::routes;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub signer: Arc<Signer>,
    pub limits: Limits,
}

/// Builds the router of contract sections 1 and 2 plus the health checks.
pub fn router(state: AppState) -> Router {
    // Made now, so a failure stops start-up rather than a log-in.
    crate::auth::passwords::decoy_hash();
    Router::new()
        .route("/api/v1/token/", post(routes::auth::login))
        .route("/api/v1/token/refresh/", post(routes::auth::refresh))
        .route("/api/v1/events/batch/", post(routes::batch::ingest))
        .route("/api/v1/sync/health/", get(routes::health::sync_health))
        .route("/healthz", get(routes::health::liveness))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody::new("Not found; the API lives under /api/v1/")),
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
