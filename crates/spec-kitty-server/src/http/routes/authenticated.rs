//! The `Authorization: Bearer` extractor shared by authenticated routes:
//! a JWT access token, or a personal access token (`skp_...`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::auth::personal;
use crate::auth::tokens::TokenKind;
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::store::User;

/// A request whose access token verified and whose user still exists and
/// is enabled. Team membership is checked by each route, because a removed
/// member must get 403, not 401.
pub struct Authenticated {
    pub user: User,
    /// The team the token was issued for.
    pub team: Option<String>,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Authenticated::from_headers(&parts.headers, state).await
    }
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme is
/// case-insensitive (RFC 9110, section 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Authenticated {
    /// Verifies the bearer token of a request and loads its user.
    pub async fn from_headers(headers: &HeaderMap, state: &AppState) -> Result<Self, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or_else(ApiError::token_invalid)?;
        if token.starts_with(personal::PREFIX) {
            return Authenticated::personal(token, state).await;
        }
        let claims = state
            .signer
            .verify(token, TokenKind::Access)
            .map_err(|_| ApiError::token_invalid())?;
        let user = state
            .store
            .user_by_id(claims.uid)
            .await?
            .filter(|u| !u.disabled && u.username == claims.sub)
            .ok_or_else(ApiError::token_invalid)?;
        Ok(Authenticated {
            user,
            team: claims.team,
        })
    }

    /// A personal access token: live in the store (so a revocation counts
    /// at once, on every instance), its user enabled. The team is the
    /// user's own team now; routes check membership as for any token. A
    /// malformed token (wrong checksum) is refused without a database read.
    async fn personal(token: &str, state: &AppState) -> Result<Self, ApiError> {
        if !personal::well_formed(token) {
            return Err(ApiError::token_invalid());
        }
        let user_id = state
            .store
            .use_access_token(&personal::hash(token), crate::clock::now_secs())
            .await?
            .ok_or_else(ApiError::token_invalid)?;
        let user = state
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(ApiError::token_invalid)?;
        Ok(Authenticated {
            team: user.team.clone(),
            user,
        })
    }
}
