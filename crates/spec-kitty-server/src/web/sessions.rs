//! The Sessions page: the signed-in user's devices (one per refresh-token
//! family: client, address, signed in, last used), each with Revoke, and
//! "Sign out everywhere". A revoked family's next refresh is refused, so
//! the device must log in again. Forms are refused from another site and
//! without a session; a user only sees and revokes their own.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::views::{SessionRow, SessionsPage};
use super::{chrome, form_viewer, message, page, session, viewer, who};
use crate::clock::{minute, now_secs};
use crate::http::api_error::ApiError;
use crate::http::app::AppState;

/// `GET /sessions`.
pub async fn sessions_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = match viewer(&headers, &state).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return Redirect::to("/").into_response(),
        Err(e) => return e.into_response(),
    };
    match state.store.live_families(viewer.user.id, now_secs()).await {
        Ok(families) => page(
            &SessionsPage {
                chrome: chrome(Some(who(&viewer))),
                sessions: families
                    .into_iter()
                    .map(|f| SessionRow {
                        family: f.family,
                        client: f.client,
                        address: f.address,
                        created: minute(f.created_at),
                        last_used: minute(f.last_used_at),
                    })
                    .collect(),
            },
            StatusCode::OK,
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /sessions/{family}/revoke`.
pub async fn revoke_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(family): Path<String>,
) -> Response {
    let viewer = match form_viewer(&state, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    match state.store.revoke_family_of(&family, viewer.user.id).await {
        Ok(true) => {
            tracing::info!(user = %viewer.user.username, "session revoked from the page");
            Redirect::to("/sessions").into_response()
        }
        Ok(false) => message(
            Some(who(&viewer)),
            StatusCode::NOT_FOUND,
            "No such session",
            "You have no live session with this id.",
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /sessions/revoke-all`: every device, and this page's session.
pub async fn sign_out_everywhere(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = match form_viewer(&state, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    if let Err(e) = state.store.sign_out_everywhere(viewer.user.id).await {
        return ApiError::from(e).into_response();
    }
    tracing::info!(user = %viewer.user.username, "signed out everywhere");
    session::end_and_go_home(&headers, &state).await
}
