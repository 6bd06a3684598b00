//! Batch ingest messages (contract section 2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// `POST /api/v1/events/batch/` body. Events stay raw JSON so that a server
/// can answer each one individually (a bad event is `rejected`, not a 400).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchRequest {
    pub events: Vec<Value>,
}

/// The fate of one event in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Success,
    Duplicate,
    Rejected,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Success => "success",
            EventStatus::Duplicate => "duplicate",
            EventStatus::Rejected => "rejected",
        }
    }
}

/// One entry of `results`, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResult {
    pub event_id: String,
    pub status: EventStatus,
    /// Why the event was rejected. Older servers call it `error_message`.
    #[serde(
        default,
        alias = "error_message",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<String>,
}

impl EventResult {
    pub fn success(event_id: impl Into<String>) -> Self {
        EventResult {
            event_id: event_id.into(),
            status: EventStatus::Success,
            error: None,
        }
    }

    pub fn duplicate(event_id: impl Into<String>) -> Self {
        EventResult {
            event_id: event_id.into(),
            status: EventStatus::Duplicate,
            error: None,
        }
    }

    pub fn rejected(event_id: impl Into<String>, error: impl Into<String>) -> Self {
        EventResult {
            event_id: event_id.into(),
            status: EventStatus::Rejected,
            error: Some(error.into()),
        }
    }
}

/// The `200` answer to a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(default)]
    pub results: Vec<EventResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_message_alias() {
        let r: EventResult = serde_json::from_str(
            r#"{"event_id":"x","status":"rejected","error_message":"bad lane"}"#,
        )
        .expect("parses");
        assert_eq!(r.error.as_deref(), Some("bad lane"));
        assert_eq!(r.status, EventStatus::Rejected);
    }

    #[test]
    fn writes_error_only_when_rejected() {
        let ok = serde_json::to_string(&EventResult::success("a")).expect("serializes");
        assert_eq!(ok, r#"{"event_id":"a","status":"success"}"#);
        let bad = serde_json::to_string(&EventResult::rejected("b", "why")).expect("serializes");
        assert_eq!(bad, r#"{"event_id":"b","status":"rejected","error":"why"}"#);
    }
}
