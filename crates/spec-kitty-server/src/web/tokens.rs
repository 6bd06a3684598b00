//! The Tokens page: a signed-in user makes personal access tokens (each
//! shown once, on the answer that made it), sees theirs and revokes them.
//! Forms are refused from another site (`Origin`) and without a session;
//! a user only ever sees or revokes their own tokens.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::views::{NewToken, TokenRow, TokensPage};
use super::{chrome, form_viewer, message, page, viewer, who};
use crate::admin::{self, AdminError};
use crate::clock::{minute, now_secs};
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::routes::board::Viewer;

async fn render(
    state: &AppState,
    viewer: &Viewer,
    created: Option<NewToken>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let now = now_secs();
    let tokens = state
        .store
        .list_access_tokens(Some(viewer.user.id))
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            created: minute(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".into(), minute),
            expires: t.expires_at.map_or_else(|| "never".into(), minute),
            state: match (t.revoked_at, t.expires_at) {
                (Some(_), _) => "revoked",
                (None, Some(at)) if at <= now => "expired",
                _ => "active",
            },
        })
        .collect();
    Ok(page(
        &TokensPage {
            chrome: chrome(Some(who(viewer))),
            created,
            error,
            tokens,
        },
        status,
    ))
}

/// `GET /tokens`.
pub async fn tokens_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = match viewer(&headers, &state).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return Redirect::to("/").into_response(),
        Err(e) => return e.into_response(),
    };
    render(&state, &viewer, None, None, StatusCode::OK)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    /// Days; empty for a token that never expires.
    #[serde(default)]
    expires: String,
}

/// `POST /tokens`: makes a token and shows it, once.
pub async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let viewer = match form_viewer(&state, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let days = match form.expires.trim() {
        "" => Ok(None),
        days => days
            .parse::<u32>()
            .map(Some)
            .map_err(|_| AdminError::Invalid(format!("'{days}' is not a number of days"))),
    };
    let made = match days {
        Ok(days) => admin::create_token_for(&state.store, viewer.user.id, &form.name, days).await,
        Err(e) => Err(e),
    };
    let result = match made {
        Ok(made) => {
            tracing::info!(user = %viewer.user.username, id = made.id, "token created");
            let created = NewToken {
                name: form.name.trim().to_string(),
                token: made.token,
            };
            render(&state, &viewer, Some(created), None, StatusCode::CREATED).await
        }
        Err(AdminError::Invalid(text)) => {
            render(&state, &viewer, None, Some(text), StatusCode::BAD_REQUEST).await
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /tokens/{id}/revoke`: only the user's own live token.
pub async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let viewer = match form_viewer(&state, &headers).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    match state
        .store
        .revoke_access_token(id, Some(viewer.user.id), now_secs())
        .await
    {
        Ok(true) => {
            tracing::info!(user = %viewer.user.username, id, "token revoked");
            Redirect::to("/tokens").into_response()
        }
        Ok(false) => message(
            Some(who(&viewer)),
            StatusCode::NOT_FOUND,
            "No such token",
            "You have no live token with this id.",
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}
