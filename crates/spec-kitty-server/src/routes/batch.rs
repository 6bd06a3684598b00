//! Batch ingest (contract section 2).
//!
//! The body is read with a hard cap as sent, then inflated through a reader
//! capped at the decompressed limit, so a gzip bomb costs at most that many
//! bytes of memory before it is answered with 413.

use std::borrow::Cow;
use std::io::Read;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use flate2::read::GzDecoder;
use http_body_util::BodyExt;
use serde_json::Value;
use serde_json::value::RawValue;
use spec_kitty_protocol::board::Fact;
use spec_kitty_protocol::event::WP_STATUS_CHANGED;
use spec_kitty_protocol::fast::{CheckedEvent, check_event};
use spec_kitty_protocol::{
    BatchResponse, EventResult, MAX_BATCH_EVENTS, SyncLane, describe_errors, validate_event,
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

/// How much more than its limit a refused body is still read (and thrown
/// away) so that the client, still sending, reads our 413 instead of a
/// reset connection.
const DRAIN_ALLOWANCE: usize = 8 * 1024 * 1024;

/// Whether the client waits for `100 Continue` before sending the body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// Reads the body, refusing it once it passes `limit` bytes. A refused
/// body is drained (up to [`DRAIN_ALLOWANCE`] more) unless the client is
/// waiting for `100 Continue`, in which case it never sends it.
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
    let waiting = expects_continue(headers);
    if declared.is_some_and(|len| len > limit) && waiting {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    let mut over = declared.is_some_and(|len| len > limit);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request("Could not read the request body", e.to_string()))?;
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
    Ok(bytes)
}

/// Inflates (if needed), parses and checks the batch.
fn decode_batch(
    raw: Vec<u8>,
    encoding: Encoding,
    limits: Limits,
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

/// Either the result of an event known already (rejected), or its place in
/// the list handed to the store.
enum Slot {
    Done(EventResult),
    Stored { event_id: String, index: usize },
}

/// The batch as raw event texts: each event is checked from its own bytes
/// and stored exactly as sent, unknown fields and all, with no re-encoding.
#[derive(serde::Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

fn str_field(event: &Value, key: &str) -> Option<String> {
    event.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The team an event names, if any: absent, empty and `local` mean the
/// sender's own team.
fn named_team(team: Option<&str>) -> Option<String> {
    team.filter(|t| !t.is_empty() && *t != "local")
        .map(str::to_string)
}

fn incoming_from_checked(event: CheckedEvent<'_>, body: &str) -> IncomingEvent {
    IncomingEvent {
        event_id: event.event_id.into_owned(),
        event_type: event.event_type.into_owned(),
        aggregate_id: event.aggregate_id.into_owned(),
        project_uuid: event.project_uuid.into_owned(),
        project_slug: event.project_slug.map(Cow::into_owned),
        team: named_team(event.team_slug.as_deref()),
        node_id: event.node_id.into_owned(),
        lamport: i64::try_from(event.lamport_clock).unwrap_or(i64::MAX),
        timestamp: event.timestamp.into_owned(),
        lane: event.lane.map(SyncLane::as_str),
        body: body.to_string(),
        fact: event.fact,
    }
}

/// The slow path: the full validator decides, and writes the message.
fn incoming_from_value(event: &Value, body: &str) -> Result<IncomingEvent, EventResult> {
    let event_id = str_field(event, "event_id").unwrap_or_default();
    let errors = validate_event(event);
    if !errors.is_empty() {
        return Err(EventResult::rejected(event_id, describe_errors(&errors)));
    }
    let event_type = str_field(event, "event_type").unwrap_or_default();
    let lane = if event_type == WP_STATUS_CHANGED {
        event
            .pointer("/payload/to_lane")
            .and_then(Value::as_str)
            .and_then(|l| SyncLane::from_wire(l).ok())
            .map(SyncLane::as_str)
    } else {
        None
    };
    Ok(IncomingEvent {
        event_id,
        event_type,
        aggregate_id: str_field(event, "aggregate_id").unwrap_or_default(),
        project_uuid: str_field(event, "project_uuid").unwrap_or_default(),
        project_slug: str_field(event, "project_slug"),
        team: named_team(event.get("team_slug").and_then(Value::as_str)),
        node_id: str_field(event, "node_id").unwrap_or_default(),
        lamport: event
            .get("lamport_clock")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        timestamp: str_field(event, "timestamp").unwrap_or_default(),
        lane,
        body: body.to_string(),
        fact: Fact::of_event(event),
    })
}

fn prepare(events: &[&RawValue]) -> (Vec<Slot>, Vec<IncomingEvent>) {
    let mut slots = Vec::with_capacity(events.len());
    let mut valid = Vec::with_capacity(events.len());
    for raw in events {
        let body = raw.get();
        let checked = match check_event(body) {
            Some(event) => Ok(incoming_from_checked(event, body)),
            None => match serde_json::from_str::<Value>(body) {
                Ok(value) => incoming_from_value(&value, body),
                Err(e) => Err(EventResult::rejected("", format!("(event): not JSON: {e}"))),
            },
        };
        match checked {
            Ok(incoming) => {
                slots.push(Slot::Stored {
                    event_id: incoming.event_id.clone(),
                    index: valid.len(),
                });
                valid.push(incoming);
            }
            Err(result) => slots.push(Slot::Done(result)),
        }
    }
    (slots, valid)
}

/// `POST /api/v1/events/batch/`.
///
/// The body is read (within its cap) before the token is checked, so a
/// client sending a large batch with a stale token reads a clean 401 and
/// refreshes, instead of seeing its upload cut off mid-stream.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let encoding = encoding(&headers)?;
    // A client waiting for `100 Continue` can be refused before it sends
    // anything; any other has its body read first (see above).
    let early = if expects_continue(&headers) {
        Some(Authenticated::from_headers(&headers, &state).await?)
    } else {
        None
    };
    let raw = read_capped(&headers, body, state.limits.max_body_bytes).await?;
    let auth = match early {
        Some(auth) => auth,
        None => Authenticated::from_headers(&headers, &state).await?,
    };
    let limits = state.limits;
    let (slots, valid) = tokio::task::spawn_blocking(move || decode_batch(raw, encoding, limits))
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
        .collect();
    Ok(Json(BatchResponse { results }))
}
