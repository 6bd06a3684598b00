//! Batch ingest (contract section 2).
//!
//! The body is read with a hard cap as sent, then inflated through a reader
//! capped at the decompressed limit, so a gzip bomb costs at most that many
//! bytes of memory before it is answered with 413. The inflated bytes count
//! against the in-flight body budget like the body itself: a few small
//! gzip bodies cannot together inflate past it (503 with `Retry-After`).

use std::io::Read;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use flate2::bufread::GzDecoder;
use serde_json::value::RawValue;
use spec_kitty_protocol::{BatchResponse, EventResult, MAX_BATCH_EVENTS};

use crate::config::Limits;
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::body::{BodyBudget, BudgetShare, Budgeted, discard, read_budgeted};
use crate::http::routes::authenticated::Authenticated;
use crate::ingest::decode::{Slot, prepare};
use crate::store::{IncomingEvent, IngestOutcome, Sender};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let text = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding '{other}' is not supported; send gzip or identity"
        ))),
    }
}

/// The size of one read from the inflater, and so the step in which its
/// output is charged to the budget.
const INFLATE_CHUNK: usize = 64 * 1024;

/// Inflates `raw` into at most `cap` bytes, charging the memory it takes
/// to `share` as it grows.
fn inflate(
    raw: &[u8],
    cap: usize,
    budget: &BodyBudget,
    share: &mut BudgetShare,
) -> Result<Vec<u8>, ApiError> {
    let bad_gzip = |e: std::io::Error| {
        ApiError::bad_request(
            "Bad gzip body",
            format!("could not decompress the body: {e}"),
        )
    };
    // Most batches inflate to about four times their size: one
    // allocation, charged with the first chunk.
    let mut out: Vec<u8> = Vec::with_capacity(raw.len().saturating_mul(4).min(cap));
    let mut charged = 0usize;
    let mut chunk = vec![0u8; INFLATE_CHUNK];
    let mut inflater = GzDecoder::new(raw).take(cap as u64 + 1);
    loop {
        let n = inflater.read(&mut chunk).map_err(bad_gzip)?;
        if n == 0 {
            break;
        }
        if out.len() + n > cap {
            return Err(ApiError::PayloadTooLarge(format!(
                "the body exceeds {cap} bytes after decompression"
            )));
        }
        out.extend_from_slice(&chunk[..n]);
        if out.capacity() > charged {
            share.grow(budget, out.capacity() - charged)?;
            charged = out.capacity();
        }
    }
    // One gzip member and nothing after it: bytes after the end of the
    // stream are junk (or a second member), never silently ignored.
    let rest = inflater.into_inner().into_inner();
    if !rest.is_empty() {
        return Err(ApiError::bad_request(
            "Bad gzip body",
            format!("{} bytes follow the end of the gzip stream", rest.len()),
        ));
    }
    Ok(out)
}

/// Inflates (if needed), parses and checks the batch.
fn decode_batch(
    raw: Vec<u8>,
    encoding: Encoding,
    limits: Limits,
    budget: &BodyBudget,
    share: &mut BudgetShare,
) -> Result<(Vec<Slot>, Vec<IncomingEvent>), ApiError> {
    let json = match encoding {
        Encoding::Identity => {
            if raw.len() > limits.max_decompressed_bytes {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the request body exceeds {} bytes",
                    limits.max_decompressed_bytes
                )));
            }
            raw
        }
        Encoding::Gzip => inflate(&raw, limits.max_decompressed_bytes, budget, share)?,
    };
    let batch: RawBatch<'_> = serde_json::from_slice(&json).map_err(|e| {
        if e.is_data() {
            ApiError::bad_request("Invalid batch: expected {\"events\": [...]}", e.to_string())
        } else {
            ApiError::bad_request("Malformed JSON", e.to_string())
        }
    })?;
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::bad_request(
            "Too many events",
            format!(
                "the batch has {} events; at most {MAX_BATCH_EVENTS} are allowed per request",
                batch.events.len()
            ),
        ));
    }
    Ok(prepare(&batch.events))
}

/// The batch as raw event texts: each event is checked from its own bytes
/// and stored exactly as sent, unknown fields and all, with no re-encoding.
#[derive(serde::Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// `POST /api/v1/events/batch/`.
///
/// The token is checked before the body is read, so a stranger's body is
/// never held in memory. A refused body is still read (up to its cap, and
/// thrown away as it comes) so that a client sending a large batch with a
/// stale token reads a clean 401 and refreshes, instead of seeing its
/// upload cut off mid-stream. An accepted body counts against the global
/// in-flight budget until the batch is answered.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let max = state.limits.max_body_bytes;
    let checked = match encoding(&headers) {
        Ok(encoding) => Authenticated::from_headers(&headers, &state)
            .await
            .map(|auth| (encoding, auth)),
        Err(e) => Err(e),
    };
    let (encoding, auth) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            discard(&headers, body, max).await;
            return Err(e);
        }
    };
    let Budgeted {
        bytes: raw,
        mut share,
    } = read_budgeted(&headers, body, max, &state.body_budget).await?;
    let limits = state.limits;
    let budget = state.body_budget.clone();
    // The share comes back and is held until the batch is answered.
    let (decoded, _share) = tokio::task::spawn_blocking(move || {
        let decoded = decode_batch(raw, encoding, limits, &budget, &mut share);
        (decoded, share)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (slots, valid) = decoded?;

    let sender = Sender {
        user_id: auth.user.id,
        username: auth.user.username.clone(),
        team: auth.team.clone(),
    };
    let now = crate::clock::now_secs();
    let count = valid.len();
    let stored = match state.store.ingest(&sender, valid, now).await? {
        IngestOutcome::Stored { flags, advances } => {
            for advance in advances {
                state.hub.publish(advance);
            }
            flags
        }
        IngestOutcome::Forbidden(message) => {
            tracing::warn!(user = %sender.username, "batch refused: {message}");
            return Err(ApiError::Forbidden(message));
        }
    };
    if stored.len() != count {
        return Err(ApiError::Internal(format!(
            "store answered for {} of {count} events",
            stored.len()
        )));
    }
    let results = slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Done(result) => result,
            Slot::Stored { event_id, index } if stored[index] => EventResult::success(event_id),
            Slot::Stored { event_id, .. } => EventResult::duplicate(event_id),
        })
        .collect::<Vec<_>>();
    state.metrics.events_ingested(&results);
    Ok(Json(BatchResponse { results }))
}
