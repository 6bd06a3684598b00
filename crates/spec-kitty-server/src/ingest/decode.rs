//! From raw event texts to events ready for the store: each event is
//! checked from its own bytes and kept exactly as sent.

use std::borrow::Cow;

use serde_json::Value;
use serde_json::value::RawValue;
use spec_kitty_protocol::board::Fact;
use spec_kitty_protocol::event::WP_STATUS_CHANGED;
use spec_kitty_protocol::fast::{CheckedEvent, check_event};
use spec_kitty_protocol::{EventResult, SyncLane, describe_errors, validate_event};

use crate::store::IncomingEvent;

/// Either the result of an event known already (rejected), or its place in
/// the list handed to the store.
pub enum Slot {
    Done(EventResult),
    Stored { event_id: String, index: usize },
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

/// The form an event id is stored (and deduplicated) under: ULIDs are
/// case-insensitive and canonically upper case, UUIDs lower case, so a
/// copy of an event with its id in another case is the same event. The
/// event's text and the answer keep the id as sent.
fn canonical_id(id: &str) -> String {
    if id.len() == 26 {
        id.to_ascii_uppercase()
    } else {
        id.to_ascii_lowercase()
    }
}

/// Checks each event (the fast path first, the full validator when it
/// declines) and splits the batch into per-event slots and the valid
/// events to store.
pub fn prepare(events: &[&RawValue]) -> (Vec<Slot>, Vec<IncomingEvent>) {
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
            Ok(mut incoming) => {
                let canonical = canonical_id(&incoming.event_id);
                slots.push(Slot::Stored {
                    event_id: std::mem::replace(&mut incoming.event_id, canonical),
                    index: valid.len(),
                });
                valid.push(incoming);
            }
            Err(result) => slots.push(Slot::Done(result)),
        }
    }
    (slots, valid)
}
