//! `POST /api/v1/token/revoke/`: a log-out ends its refresh-token family.
//!
//! The answer is the same `200` for a token that was revoked now, one that
//! was revoked or used before, an expired one and one this server never
//! issued, so the endpoint tells a caller nothing about a token it holds.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};
use spec_kitty_protocol::RefreshRequest;

use crate::auth::tokens::TokenKind;
use crate::http::api_error::ApiError;
use crate::http::app::AppState;

/// Revokes the family of the presented refresh token. Only a token this
/// server signed names a family, so a forged body revokes nothing.
pub async fn revoke(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let request: RefreshRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("Malformed request body", e.to_string()))?;
    if let Ok(claims) = state.signer.verify(&request.refresh, TokenKind::Refresh)
        && let Some(family) = claims.fam.as_deref()
    {
        state.store.revoke_refresh_family(family).await?;
        tracing::info!(user = %claims.sub, "logged out; session family revoked");
    }
    Ok(Json(json!({"revoked": true})))
}
