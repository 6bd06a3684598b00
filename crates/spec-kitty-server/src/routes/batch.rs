//! Batch ingest (contract section 2).
//!
//! The body is read with a hard cap as sent, then inflated through a reader
//! capped at the decompressed limit, so a gzip bomb costs at most that many
//! bytes of memory before it is answered with 413.

use std::io::Read;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use flate2::read::GzDecoder;
use http_body_util::BodyExt;
use serde_json::Value;
use spec_kitty_protocol::event::WP_STATUS_CHANGED;
use spec_kitty_protocol::{
    BatchRequest, BatchResponse, EventResult, MAX_BATCH_EVENTS, SyncLane, describe_errors,
    validate_event,
};

use crate::api_error::ApiError;
use crate::app::AppState;
use crate::config::Limits;
use crate::routes::authenticated::Authenticated;
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

/// Reads the body, refusing it as soon as it passes `limit` bytes.
async fn read_capped(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("the request body exceeds {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request("Could not read the request body", e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Inflates (if needed) and parses the batch, then checks each event.
fn decode_batch(
    raw: Vec<u8>,
    encoding: Encoding,
    limits: Limits,
) -> Result<BatchRequest, ApiError> {
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
        Encoding::Gzip => {
            let cap = limits.max_decompressed_bytes;
            let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(cap));
            GzDecoder::new(raw.as_slice())
                .take(cap as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(
                        "Bad gzip body",
                        format!("could not decompress the body: {e}"),
                    )
                })?;
            if out.len() > cap {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the body exceeds {cap} bytes after decompression"
                )));
            }
            out
        }
    };
    let batch: BatchRequest = serde_json::from_slice(&json).map_err(|e| {
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
    Ok(batch)
}

/// Either the result of an event known already (rejected), or its place in
/// the list handed to the store.
enum Slot {
    Done(EventResult),
    Stored { event_id: String, index: usize },
}

fn str_field(event: &Value, key: &str) -> Option<String> {
    event.get(key).and_then(Value::as_str).map(str::to_string)
}

fn prepare(events: Vec<Value>) -> (Vec<Slot>, Vec<IncomingEvent>) {
    let mut slots = Vec::with_capacity(events.len());
    let mut valid = Vec::with_capacity(events.len());
    for event in events {
        let event_id = str_field(&event, "event_id").unwrap_or_default();
        let errors = validate_event(&event);
        if !errors.is_empty() {
            slots.push(Slot::Done(EventResult::rejected(
                event_id,
                describe_errors(&errors),
            )));
            continue;
        }
        let event_type = str_field(&event, "event_type").unwrap_or_default();
        let lane = if event_type == WP_STATUS_CHANGED {
            event
                .pointer("/payload/to_lane")
                .and_then(Value::as_str)
                .and_then(|l| SyncLane::from_wire(l).ok())
                .map(SyncLane::as_str)
        } else {
            None
        };
        let team = str_field(&event, "team_slug").filter(|t| !t.is_empty() && t != "local");
        let body = event.to_string();
        slots.push(Slot::Stored {
            event_id: event_id.clone(),
            index: valid.len(),
        });
        valid.push(IncomingEvent {
            event_id,
            event_type,
            aggregate_id: str_field(&event, "aggregate_id").unwrap_or_default(),
            project_uuid: str_field(&event, "project_uuid").unwrap_or_default(),
            project_slug: str_field(&event, "project_slug"),
            team,
            node_id: str_field(&event, "node_id").unwrap_or_default(),
            lamport: event
                .get("lamport_clock")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            timestamp: str_field(&event, "timestamp").unwrap_or_default(),
            lane,
            body,
        });
    }
    (slots, valid)
}

/// `POST /api/v1/events/batch/`.
pub async fn ingest(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let encoding = encoding(&headers)?;
    let raw = read_capped(&headers, body, state.limits.max_body_bytes).await?;
    let limits = state.limits;
    let (slots, valid) = tokio::task::spawn_blocking(move || {
        decode_batch(raw, encoding, limits).map(|batch| prepare(batch.events))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;

    let sender = Sender {
        user_id: auth.user.id,
        username: auth.user.username.clone(),
        team: auth.team.clone(),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let count = valid.len();
    let stored = match state.store.ingest(&sender, valid, now).await? {
        IngestOutcome::Stored(flags) => flags,
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
        .collect();
    Ok(Json(BatchResponse { results }))
}
