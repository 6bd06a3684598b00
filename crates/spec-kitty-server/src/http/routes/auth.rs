//! Log-in and refresh (contract section 1).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

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
use crate::store::{NewRefresh, Reservation, RotateOutcome, ThrottleKey, User, throttle};

/// The one answer to a wrong password and to an unknown user, so that the
/// server never reveals which usernames exist.
const BAD_CREDENTIALS: &str = "Invalid username or password";

/// A client address may fail this many times more than one username from
/// it may, so a shared NAT does not lock out a whole office.
const ADDRESS_FACTOR: i64 = 4;

/// A username may fail this many times more from all addresses together
/// than from one.
const USER_FACTOR: i64 = 20;

use crate::clock::now_secs as now;

/// The largest log-in or refresh body: a username, a password or a token
/// fit many times over. Larger bodies are answered 413 (in JSON, after
/// reading them, so the client sees the answer rather than a reset).
pub const MAX_AUTH_BODY: usize = 64 * 1024;

/// Reads (within [`MAX_AUTH_BODY`]) and parses a JSON body.
pub(crate) async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
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
    let tokens = start_session(&state, &user, &client_of(&headers), peer.ip()).await?;
    tracing::info!(user = %user.username, "logged in");
    Ok(Json(tokens))
}

/// The client a log-in came from, as the Sessions page names it: its
/// `User-Agent`, bounded and without control characters.
pub fn client_of(headers: &HeaderMap) -> String {
    let agent: String = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    if agent.trim().is_empty() {
        "unknown client".into()
    } else {
        agent.trim().to_string()
    }
}

/// Issues a new session (a new refresh family) for `user`: the answer of
/// a log-in, by password or by an approved device code. The family is
/// recorded with its client and address for the Sessions page.
pub async fn start_session(
    state: &AppState,
    user: &User,
    client: &str,
    address: IpAddr,
) -> Result<TokenResponse, ApiError> {
    let now = now();
    let issued = state.signer.issue(user, None, now)?;
    state
        .store
        .insert_refresh(NewRefresh {
            jti: issued.refresh_jti.clone(),
            family: issued.family.clone(),
            user_id: user.id,
            expires_at: issued.refresh_expires_at,
        })
        .await?;
    state
        .store
        .record_family(&issued.family, user.id, client, &address.to_string(), now)
        .await?;
    Ok(token_response(state, user, issued.access, issued.refresh))
}

/// The throttle's counters for a log-in of `username` from `peer`, each
/// with the failures it allows per window:
///
/// - this user from this address: `login_max_failures`. A guesser locks
///   out only their own address, never the user elsewhere;
/// - this address, any user: [`ADDRESS_FACTOR`] times more (a shared NAT
///   is many users), which bounds one address spraying many usernames;
/// - this user, any address: [`USER_FACTOR`] times more, high enough that
///   only guessing from many addresses at once reaches it.
fn throttle_keys(state: &AppState, username: &str, peer: IpAddr) -> [ThrottleKey; 3] {
    let max = i64::from(state.limits.login_max_failures);
    let addr = address_key(peer);
    [
        ThrottleKey {
            key: throttle::user_address(username, &addr),
            limit: max,
        },
        ThrottleKey {
            key: throttle::address(&addr),
            limit: max * ADDRESS_FACTOR,
        },
        ThrottleKey {
            key: throttle::user(username),
            limit: max * USER_FACTOR,
        },
    ]
}

/// An address as the throttle counts it: IPv4 as is, IPv6 by its /64 (one
/// host usually holds a whole /64, so counting single addresses would let
/// it rotate through them).
pub(crate) fn address_key(peer: IpAddr) -> String {
    match peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// How long a log-in waits for a password-check slot before it is
/// answered 503 (the checks are CPU- and memory-heavy; see
/// `login_max_concurrent`).
const VERIFY_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Checks a username and password with the log-in throttle, for the API
/// and the web page alike: the same limits, the same answers.
///
/// The attempt is reserved (counted as a failure) before the password is
/// checked and taken back only if it was right, so parallel attempts can
/// never check more passwords than the limits allow.
pub async fn verify_login(
    state: &AppState,
    peer: IpAddr,
    username: &str,
    password: String,
) -> Result<User, ApiError> {
    let now = now();
    let window = state.limits.login_window as i64;
    let keys = throttle_keys(state, username, peer);
    if let Reservation::Throttled { retry_after } = state
        .store
        .reserve_login_attempt(&keys, now, window)
        .await?
    {
        tracing::warn!(addr = %peer, "log-in throttled");
        state.metrics.login_throttled();
        return Err(ApiError::TooManyRequests {
            retry_after: retry_after.max(1) as u64,
        });
    }
    let names: Vec<String> = keys.iter().map(|k| k.key.clone()).collect();
    let release = |clear: Option<&str>| {
        let (store, names, clear) = (
            Arc::clone(&state.store),
            names.clone(),
            clear.map(str::to_string),
        );
        async move {
            store
                .release_login_attempt(&names, now, clear.as_deref())
                .await
        }
    };

    let user = state.store.find_user(username).await?;
    let hash = user.as_ref().map_or_else(
        || passwords::decoy_hash().to_string(),
        |u| u.password_hash.clone(),
    );
    let slot = match tokio::time::timeout(
        VERIFY_QUEUE_WAIT,
        Arc::clone(&state.login_slots).acquire_owned(),
    )
    .await
    {
        Ok(Ok(slot)) => slot,
        _ => {
            // Not checked, so not a failure.
            release(None).await?;
            return Err(ApiError::ServiceUnavailable {
                retry_after: 1,
                details: "too many log-ins are being checked at once; retry shortly".into(),
            });
        }
    };
    let matches = tokio::task::spawn_blocking(move || {
        let matches = passwords::verify(&password, &hash);
        drop(slot);
        matches
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            tracing::info!(addr = %peer, "log-in failed");
            state.metrics.login_failed();
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        }
    };
    // The right password: not a failure, whatever follows.
    release(Some(&keys[0].key)).await?;
    if user.disabled {
        return Err(ApiError::Unauthorized(
            "This account is disabled; ask your server administrator".into(),
        ));
    }
    current_team(state, user).await
}

/// The user with their team only while they are still a member of it, so
/// no token (or answer) names a team the user was removed from.
async fn current_team(state: &AppState, mut user: User) -> Result<User, ApiError> {
    if let Some(team) = &user.team
        && !state.store.is_member(user.id, team).await?
    {
        user.team = None;
    }
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
    let user = current_team(&state, user).await?;
    let now = now();
    let issued = state.signer.issue(&user, Some(family), now)?;
    let new = NewRefresh {
        jti: issued.refresh_jti.clone(),
        family: issued.family.clone(),
        user_id: user.id,
        expires_at: issued.refresh_expires_at,
    };
    let grace = state.limits.refresh_grace as i64;
    match state
        .store
        .rotate_refresh(&claims.jti, new, now, grace)
        .await?
    {
        outcome @ (RotateOutcome::Rotated | RotateOutcome::Regranted) => {
            if outcome == RotateOutcome::Regranted {
                tracing::info!(user = %user.username, "just-retired refresh token presented again within the grace window; new pair issued");
            } else {
                tracing::info!(user = %user.username, "token refreshed");
            }
            state.store.touch_family(family, now).await?;
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
