//! Browser sessions: a random id in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` over TLS); the database keeps only its SHA-256, so a
//! stolen database copy holds no usable session. A session ends at log-out,
//! at expiry, when the user is disabled, and (checked on every request)
//! when the user is no longer a member of its team.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::store::User;

/// The cookie's name.
pub const COOKIE: &str = "sk_session";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a session id.
pub fn hash(id: &str) -> String {
    hex(&Sha256::digest(id.as_bytes()))
}

/// The session id a request's cookie carries, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The user and team of a request's live session; `None` without one.
/// A disabled user's session is no session.
pub async fn from_headers(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<(User, String)>, ApiError> {
    let Some(id) = cookie_value(headers) else {
        return Ok(None);
    };
    let found = state.store.web_session(&hash(&id), now()).await?;
    Ok(found.filter(|(user, _)| !user.disabled))
}

/// Starts a session for `user` in `team`; returns the `Set-Cookie` value.
pub async fn start(state: &AppState, user: &User, team: &str) -> Result<HeaderValue, ApiError> {
    let mut id = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let id = hex(&id);
    let lifetime = state.signer.refresh_lifetime;
    state
        .store
        .create_web_session(&hash(&id), user.id, team, now() + lifetime as i64)
        .await?;
    let secure = if state.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={lifetime}{secure}"
    ))
    .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Ends the request's session, if any; returns the clearing `Set-Cookie`.
pub async fn end(headers: &HeaderMap, state: &AppState) -> Result<HeaderValue, ApiError> {
    if let Some(id) = cookie_value(headers) {
        state.store.delete_web_session(&hash(&id)).await?;
    }
    let secure = if state.tls { "; Secure" } else { "" };
    Ok(HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("sk_session=; Path=/; Max-Age=0")))
}

/// Ends the session and sends the browser to the start page, without
/// its cookie (log-out, and "sign out everywhere" for this browser).
pub async fn end_and_go_home(headers: &HeaderMap, state: &AppState) -> Response {
    match end(headers, state).await {
        Ok(cookie) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_takes_only_well_formed_ids() {
        let id = "ab".repeat(32);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).expect("header"),
        );
        assert_eq!(cookie_value(&headers), Some(id.clone()));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("sk_session=../../etc"),
        );
        assert_eq!(cookie_value(&headers), None);
        assert_eq!(hash(&id).len(), 64);
        assert_ne!(hash(&id), id);
    }
}
