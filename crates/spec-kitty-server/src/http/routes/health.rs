//! Liveness and the authenticated sync health check.

use axum::Json;
use serde_json::{Value, json};

use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::routes::authenticated::Authenticated;
use crate::ingest::rules;
use axum::extract::State;

/// `GET /healthz`: the process accepts requests. No authentication, no
/// database access, so a load balancer's probe costs nothing.
pub async fn liveness() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /api/v1/sync/health/`: the token is good and the user may write
/// for their team.
pub async fn sync_health(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Value>, ApiError> {
    let Some(team) = auth.team.clone() else {
        return Err(ApiError::Forbidden(rules::no_team(&auth.user.username)));
    };
    if !state.store.is_member(auth.user.id, &team).await? {
        return Err(ApiError::Forbidden(rules::not_member(
            &team,
            &auth.user.username,
        )));
    }
    Ok(Json(json!({
        "status": "ok",
        "user": auth.user.username,
        "team_slug": team,
        "server_version": env!("CARGO_PKG_VERSION"),
    })))
}
