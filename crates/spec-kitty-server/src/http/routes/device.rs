//! Device authorization (RFC 8628) for `spec-kitty auth login --web`: a
//! client asks for a pair of codes, shows the user code and a URL, and
//! polls until the user approves or denies it on the page `/device`.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::auth::device;
use crate::clock::now_secs;
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::body::read_capped;
use crate::http::routes::auth::{MAX_AUTH_BODY, client_of, start_session};
use crate::store::device::{NewDeviceCode, Poll};

/// The longest client name kept (longer ones are cut).
const MAX_CLIENT_NAME: usize = 100;

#[derive(Deserialize, Default)]
struct CodeRequest {
    #[serde(default)]
    client_name: Option<String>,
}

#[derive(Deserialize)]
struct TokenRequest {
    device_code: String,
}

/// An error of RFC 8628 section 3.5 (and RFC 6749 section 5.2): `400`
/// with `{"error": CODE}` and nothing else.
fn oauth_error(code: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

/// `https://HOST` or `http://HOST` of this request, for the URLs the
/// client shows.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if state.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// `POST /api/v1/device/code/`: body `{"client_name": "..."}` (optional).
pub async fn code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_capped(&headers, body, MAX_AUTH_BODY).await?;
    let request: CodeRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        CodeRequest::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(request) => request,
            Err(_) => return Ok(oauth_error("invalid_request")),
        }
    };
    let client_name: String = request
        .client_name
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLIENT_NAME)
        .collect();
    let client_name = if client_name.trim().is_empty() {
        "unnamed client".to_string()
    } else {
        client_name.trim().to_string()
    };
    let no_randomness = |e: device::NoRandomness| ApiError::Internal(e.to_string());
    let device_code = device::device_code().map_err(no_randomness)?;
    let user_code = device::user_code().map_err(no_randomness)?;
    let canonical = device::normalize_user_code(&user_code)
        .ok_or_else(|| ApiError::Internal("a user code of the wrong shape".into()))?;
    let now = now_secs();
    let interval = state.limits.device_poll_interval as i64;
    state
        .store
        .create_device_code(NewDeviceCode {
            device_hash: device::hash(&device_code),
            user_code_hash: device::hash(&canonical),
            client_name,
            client_addr: peer.ip().to_string(),
            created_at: now,
            expires_at: now + device::LIFETIME,
            poll_interval: interval,
        })
        .await?;
    let base = base_url(&state, &headers);
    Ok(Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("{base}/device"),
        "verification_uri_complete": format!("{base}/device?code={user_code}"),
        "expires_in": device::LIFETIME,
        "interval": interval,
    }))
    .into_response())
}

/// `POST /api/v1/device/token/` with `{"device_code": "..."}`.
pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_capped(&headers, body, MAX_AUTH_BODY).await?;
    let Ok(request) = serde_json::from_slice::<TokenRequest>(&bytes) else {
        return Ok(oauth_error("invalid_request"));
    };
    let poll = state
        .store
        .poll_device(&device::hash(request.device_code.trim()), now_secs())
        .await?;
    let user_id = match poll {
        Poll::Unknown => return Ok(oauth_error("invalid_grant")),
        Poll::Pending => return Ok(oauth_error("authorization_pending")),
        Poll::SlowDown => return Ok(oauth_error("slow_down")),
        Poll::Denied => return Ok(oauth_error("access_denied")),
        Poll::Expired => return Ok(oauth_error("expired_token")),
        Poll::Approved { user_id } => user_id,
    };
    // Approved moments ago; the user may have been disabled since.
    let Some(user) = state
        .store
        .user_by_id(user_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(oauth_error("access_denied"));
    };
    let client = format!("{} (browser log-in)", client_of(&headers));
    let tokens = start_session(&state, &user, &client, peer.ip()).await?;
    tracing::info!(user = %user.username, "logged in (device code)");
    Ok(Json(tokens).into_response())
}
