//! The page `/device`: a signed-in user enters (or follows a link with)
//! the code a terminal shows, sees what asks for access (client, address,
//! time) and approves or denies it. Looking a code up counts against a
//! throttle per user and per address until it is found, so codes cannot
//! be guessed; the decision form is refused from another site and without
//! a session.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::views::{DevicePage, DeviceRequest, LoginPage};
use super::{chrome, form_viewer, message, page, viewer, who};
use crate::auth::device;
use crate::clock::{minute, now_secs};
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::routes::auth::address_key;
use crate::http::routes::board::Viewer;
use crate::store::{Reservation, ThrottleKey};

#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
pub struct DecisionForm {
    code: String,
    decision: String,
}

/// The guessing throttle's counters: this user, and this address.
fn keys(state: &AppState, viewer: &Viewer, peer: SocketAddr) -> Vec<ThrottleKey> {
    let max = i64::from(state.limits.login_max_failures) * 2;
    vec![
        ThrottleKey {
            key: format!("device-user:{}", viewer.user.id),
            limit: max,
        },
        ThrottleKey {
            key: format!("device-addr:{}", address_key(peer.ip())),
            limit: max * 4,
        },
    ]
}

fn code_form(viewer: &Viewer, typed: &str, error: Option<String>, status: StatusCode) -> Response {
    page(
        &DevicePage {
            chrome: chrome(Some(who(viewer))),
            username: viewer.user.username.clone(),
            team: viewer.team.clone(),
            pending: None,
            error,
            typed: typed.chars().take(20).collect(),
        },
        status,
    )
}

/// Looks a typed code up under the throttle: the pending request with its
/// canonical code, or the response to send instead.
async fn find_pending(
    state: &AppState,
    viewer: &Viewer,
    peer: SocketAddr,
    typed: &str,
) -> Result<(String, crate::store::device::PendingDevice), Response> {
    let keys = keys(state, viewer, peer);
    let now = now_secs();
    let window = state.limits.login_window as i64;
    match state.store.reserve_login_attempt(&keys, now, window).await {
        Ok(Reservation::Granted) => {}
        Ok(Reservation::Throttled { retry_after }) => {
            return Err(code_form(
                viewer,
                typed,
                Some(format!(
                    "Too many wrong codes. Try again in {retry_after} seconds."
                )),
                StatusCode::TOO_MANY_REQUESTS,
            ));
        }
        Err(e) => return Err(ApiError::from(e).into_response()),
    }
    let found = match device::normalize_user_code(typed) {
        Some(code) => match state.store.pending_device(&device::hash(&code), now).await {
            Ok(found) => found.map(|pending| (code, pending)),
            Err(e) => return Err(ApiError::from(e).into_response()),
        },
        None => None,
    };
    match found {
        Some(found) => {
            let names: Vec<String> = keys.into_iter().map(|k| k.key).collect();
            if let Err(e) = state.store.release_login_attempt(&names, now, None).await {
                return Err(ApiError::from(e).into_response());
            }
            Ok(found)
        }
        None => Err(code_form(
            viewer,
            typed,
            Some(
                "No request waits for this code: it may be mistyped, already used or expired (codes last 10 minutes)."
                    .into(),
            ),
            StatusCode::NOT_FOUND,
        )),
    }
}

/// `GET /device[?code=XXXX-XXXX]`.
pub async fn device_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<CodeQuery>,
) -> Response {
    let typed = query.code.unwrap_or_default();
    let viewer = match viewer(&headers, &state).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => {
            // Log in first, then back here with the code.
            let next = match device::normalize_user_code(&typed) {
                Some(code) => format!("/device?code={}", device::display_user_code(&code)),
                None => "/device".to_string(),
            };
            return page(
                &LoginPage {
                    chrome: chrome(None),
                    error: None,
                    username: String::new(),
                    next,
                },
                StatusCode::OK,
            );
        }
        Err(e) => return e.into_response(),
    };
    if typed.trim().is_empty() {
        return code_form(&viewer, "", None, StatusCode::OK);
    }
    let (code, pending) = match find_pending(&state, &viewer, peer, &typed).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    page(
        &DevicePage {
            chrome: chrome(Some(who(&viewer))),
            username: viewer.user.username.clone(),
            team: viewer.team.clone(),
            pending: Some(DeviceRequest {
                code: device::display_user_code(&code),
                client_name: pending.client_name,
                client_addr: pending.client_addr,
                asked: minute(pending.created_at),
            }),
            error: None,
            typed: String::new(),
        },
        StatusCode::OK,
    )
}

/// `POST /device`: approve or deny.
pub async fn decide(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let viewer = match form_viewer(&state, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return code_form(
                &viewer,
                &form.code,
                Some("Choose Approve or Deny.".into()),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let (code, _) = match find_pending(&state, &viewer, peer, &form.code).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match state
        .store
        .decide_device(&device::hash(&code), viewer.user.id, approve, now_secs())
        .await
    {
        Ok(true) if approve => {
            tracing::info!(user = %viewer.user.username, "device approved");
            message(
                Some(who(&viewer)),
                StatusCode::OK,
                "Device connected",
                "You can close this page: the terminal is logging in.",
            )
        }
        Ok(true) => message(
            Some(who(&viewer)),
            StatusCode::OK,
            "Request denied",
            "The terminal was refused access. Nothing else changed.",
        ),
        Ok(false) => code_form(
            &viewer,
            &form.code,
            Some("This request was decided meanwhile, or has expired.".into()),
            StatusCode::CONFLICT,
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}
