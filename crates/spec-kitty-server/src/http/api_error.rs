//! Errors as HTTP answers: every non-2xx carries the contract's JSON body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use spec_kitty_protocol::ErrorBody;

use crate::store::StoreError;

/// An answer other than success.
#[derive(Debug)]
pub enum ApiError {
    BadRequest {
        error: String,
        details: String,
    },
    Unauthorized(String),
    Forbidden(String),
    /// No such resource for this caller (another team's project too: the
    /// answer never tells which).
    NotFound(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    TooManyRequests {
        retry_after: u64,
    },
    /// Busy: the in-flight body budget is spent; retry after a moment.
    ServiceUnavailable {
        retry_after: u64,
        details: String,
    },
    /// The request body stalled (see `conn::ProgressBody`).
    RequestTimeout(String),
    /// Something broke on our side; the cause is logged, not sent.
    Internal(String),
}

impl ApiError {
    pub fn bad_request(error: impl Into<String>, details: impl Into<String>) -> Self {
        ApiError::BadRequest {
            error: error.into(),
            details: details.into(),
        }
    }

    /// A request body that could not be read: 408 when it stalled, else 400.
    pub fn body_unreadable(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(stalled) = e.downcast_ref::<crate::http::conn::BodyStalled>() {
                return ApiError::RequestTimeout(stalled.to_string());
            }
            cause = e.source();
        }
        ApiError::bad_request("Could not read the request body", error.to_string())
    }

    /// The 401 of every authenticated route.
    pub fn token_invalid() -> Self {
        ApiError::Unauthorized("Token expired or invalid".into())
    }
}

impl From<crate::auth::tokens::SignError> for ApiError {
    fn from(e: crate::auth::tokens::SignError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest { error, details } => (
                StatusCode::BAD_REQUEST,
                ErrorBody::with_details(error, details),
            ),
            ApiError::Unauthorized(msg) => (StatusCode::UNAUTHORIZED, ErrorBody::new(msg)),
            ApiError::Forbidden(msg) => (StatusCode::FORBIDDEN, ErrorBody::new(msg)),
            ApiError::NotFound(msg) => (StatusCode::NOT_FOUND, ErrorBody::new(msg)),
            ApiError::PayloadTooLarge(details) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::with_details("Request body too large", details),
            ),
            ApiError::RequestTimeout(details) => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorBody::with_details("Request body too slow", details),
            ),
            ApiError::UnsupportedMediaType(details) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorBody::with_details("Unsupported content encoding", details),
            ),
            ApiError::TooManyRequests { retry_after } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(ErrorBody::new(format!(
                        "Too many failed log-in attempts; try again in {retry_after} seconds"
                    ))),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return response;
            }
            ApiError::ServiceUnavailable {
                retry_after,
                details,
            } => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(ErrorBody::with_details("Server busy", details)),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return response;
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::new("Internal server error; the server log has the details"),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
