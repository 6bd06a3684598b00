//! Reading request bodies within a cap, answering every refusal in JSON.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::http::api_error::ApiError;

/// How much more than its limit a refused body is still read (and thrown
/// away) so that the client, still sending, reads our 413 instead of a
/// reset connection.
const DRAIN_ALLOWANCE: usize = 8 * 1024 * 1024;

/// Whether the client waits for `100 Continue` before sending the body.
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// A body read into memory.
pub struct Budgeted {
    pub bytes: Vec<u8>,
}

/// Reads the body, refusing it once it passes `limit` bytes. A refused
/// body is drained (up to [`DRAIN_ALLOWANCE`] more) unless the client is
/// waiting for `100 Continue`, in which case it never sends it.
pub async fn read_capped(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    Ok(read(headers, body, limit).await?.bytes)
}

async fn read(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Budgeted, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("the request body exceeds {limit} bytes"));
    let declared = declared_length(headers);
    let waiting = expects_continue(headers);
    if declared.is_some_and(|len| len > limit) && waiting {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    let mut over = declared.is_some_and(|len| len > limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::body_unreadable(&e))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > limit {
                over = true;
                bytes = Vec::new();
            }
            if over {
                if seen > limit.saturating_add(DRAIN_ALLOWANCE) {
                    break;
                }
                continue;
            }
            bytes.extend_from_slice(&data);
        }
    }
    if over {
        return Err(too_large());
    }
    Ok(Budgeted { bytes })
}
