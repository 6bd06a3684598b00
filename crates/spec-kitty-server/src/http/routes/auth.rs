//! Log-in and refresh (contract section 1).

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use spec_kitty_protocol::{LoginRequest, RefreshRequest, TokenResponse};

use crate::auth::passwords;
use crate::auth::tokens::TokenKind;
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::body::read_capped;
use crate::store::{NewRefresh, RotateOutcome, User};

/// The one answer to a wrong password and to an unknown user, so that the
/// server never reveals which usernames exist.
const BAD_CREDENTIALS: &str = "Invalid username or password";

/// A client address may fail this many times more than one username may,
/// so a shared NAT does not lock out a whole office.
const ADDRESS_FACTOR: i64 = 4;

use crate::clock::now_secs as now;

/// The largest log-in or refresh body: a username, a password or a token
/// fit many times over. Larger bodies are answered 413 (in JSON, after
/// reading them, so the client sees the answer rather than a reset).
pub const MAX_AUTH_BODY: usize = 64 * 1024;

/// Reads (within [`MAX_AUTH_BODY`]) and parses a JSON body.
async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    let bytes = read_capped(headers, body, MAX_AUTH_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("Malformed request body", e.to_string()))
}

fn token_response(state: &AppState, user: &User, access: String, refresh: String) -> TokenResponse {
    TokenResponse {
        access,
        refresh: Some(refresh),
        access_lifetime: state.signer.access_lifetime,
        refresh_lifetime: state.signer.refresh_lifetime,
        team_slug: user.team.clone(),
    }
}

/// `POST /api/v1/token/`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TokenResponse>, ApiError> {
    let request: LoginRequest = read_json(&headers, body).await?;
    let user = verify_login(&state, peer.ip(), &request.username, request.password).await?;
    let now = now();
    let issued = state.signer.issue(&user, None, now)?;
    state
        .store
        .insert_refresh(NewRefresh {
            jti: issued.refresh_jti.clone(),
            family: issued.family.clone(),
            user_id: user.id,
            expires_at: issued.refresh_expires_at,
        })
        .await?;
    tracing::info!(user = %user.username, "logged in");
    Ok(Json(token_response(
        &state,
        &user,
        issued.access,
        issued.refresh,
    )))
}

/// Checks a username and password with the log-in throttle, for the API
/// and the web page alike: the same limits, the same answers.
pub async fn verify_login(
    state: &AppState,
    peer: IpAddr,
    username: &str,
    password: String,
) -> Result<User, ApiError> {
    let now = now();
    let window = state.limits.login_window as i64;
    let keys = [
        format!("user:{}", username.to_lowercase()),
        format!("addr:{peer}"),
    ];
    let counts = state.store.login_failures(&keys, now - window).await?;
    let max = i64::from(state.limits.login_max_failures);
    let over = counts
        .iter()
        .zip([max, max * ADDRESS_FACTOR])
        .filter(|(count, limit)| count.count >= *limit)
        .map(|(count, _)| count.oldest + window - now)
        .max();
    if let Some(wait) = over {
        tracing::warn!(addr = %peer, "log-in throttled");
        return Err(ApiError::TooManyRequests {
            retry_after: wait.max(1) as u64,
        });
    }

    let user = state.store.find_user(username).await?;
    let hash = user.as_ref().map_or_else(
        || passwords::decoy_hash().to_string(),
        |u| u.password_hash.clone(),
    );
    let matches = tokio::task::spawn_blocking(move || passwords::verify(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            state
                .store
                .record_login_failure(&keys, now, now - window)
                .await?;
            tracing::info!(addr = %peer, "log-in failed");
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        }
    };
    if user.disabled {
        return Err(ApiError::Unauthorized(
            "This account is disabled; ask your server administrator".into(),
        ));
    }
    state.store.clear_login_failures(&keys[0]).await?;
    Ok(user)
}

/// `POST /api/v1/token/refresh/`: rotates the refresh token.
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TokenResponse>, ApiError> {
    const REFUSED: &str = "Refresh token invalid, expired or already used; log in again";
    let request: RefreshRequest = read_json(&headers, body).await?;
    let claims = state
        .signer
        .verify(&request.refresh, TokenKind::Refresh)
        .map_err(|_| ApiError::Unauthorized(REFUSED.into()))?;
    let Some(family) = claims.fam.as_deref() else {
        return Err(ApiError::Unauthorized(REFUSED.into()));
    };
    let user = state
        .store
        .user_by_id(claims.uid)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::Unauthorized(REFUSED.into()))?;
    let now = now();
    let issued = state.signer.issue(&user, Some(family), now)?;
    let new = NewRefresh {
        jti: issued.refresh_jti.clone(),
        family: issued.family.clone(),
        user_id: user.id,
        expires_at: issued.refresh_expires_at,
    };
    match state.store.rotate_refresh(&claims.jti, new, now).await? {
        RotateOutcome::Rotated => {
            tracing::info!(user = %user.username, "token refreshed");
            Ok(Json(token_response(
                &state,
                &user,
                issued.access,
                issued.refresh,
            )))
        }
        RotateOutcome::Reused => {
            tracing::warn!(user = %user.username, "retired refresh token presented; session family revoked");
            Err(ApiError::Unauthorized(REFUSED.into()))
        }
        RotateOutcome::Revoked | RotateOutcome::Unknown => {
            Err(ApiError::Unauthorized(REFUSED.into()))
        }
    }
}
