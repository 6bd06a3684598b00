//! The event envelope and the `WPStatusChanged` payload (contract section 3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The event type a lane change produces.
pub const WP_STATUS_CHANGED: &str = "WPStatusChanged";

/// The event that tells the board a work package exists (title, dependencies).
pub const WP_CREATED: &str = "WPCreated";

/// The event that tells the board a feature exists.
pub const FEATURE_CREATED: &str = "FeatureCreated";

/// The schema version written when an event does not name one.
pub const DEFAULT_SCHEMA_VERSION: &str = "1.0.0";

fn default_schema_version() -> String {
    DEFAULT_SCHEMA_VERSION.to_string()
}

/// One event. Fields this version does not know land in `extra` and are
/// written back unchanged, so an older client or server never strips what a
/// newer one added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub aggregate_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    pub payload: Value,
    pub timestamp: String,
    pub node_id: String,
    pub lamport_clock: u64,
    #[serde(default)]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub project_uuid: String,
    #[serde(default)]
    pub project_slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_slug: Option<String>,
    #[serde(default = "default_schema_version")]
    pub schema_version: String,
    #[serde(default)]
    pub data_tier: u8,
    #[serde(default)]
    pub git_branch: Option<String>,
    #[serde(default)]
    pub head_commit_sha: Option<String>,
    #[serde(default)]
    pub repo_slug: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The payload of a `WPStatusChanged` event. `to_lane` and `from_lane`
/// carry the four-lane sync values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WpStatusChanged {
    pub feature_slug: String,
    pub wp_id: String,
    pub from_lane: Option<String>,
    pub to_lane: String,
    pub actor: String,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub execution_mode: Option<String>,
    #[serde(default)]
    pub review_ref: Option<String>,
    #[serde(default)]
    pub evidence: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let input = json!({
            "event_id": "01HV0000000000000000000000",
            "event_type": "WPStatusChanged",
            "aggregate_id": "039-x/WP03",
            "payload": {"wp_id": "WP03", "to_lane": "doing", "custom": [1, 2]},
            "timestamp": "2026-02-12T10:15:00+00:00",
            "node_id": "3f2a9c1b7d4e",
            "lamport_clock": 7,
            "project_uuid": "550e8400-e29b-41d4-a716-446655440000",
            "future_field": {"nested": true},
            "another": 3
        });
        let event: Event = serde_json::from_value(input.clone()).expect("parses");
        assert_eq!(
            event.extra.get("future_field"),
            Some(&json!({"nested": true}))
        );
        assert_eq!(event.schema_version, DEFAULT_SCHEMA_VERSION);
        let back = serde_json::to_value(&event).expect("serializes");
        for (key, value) in input.as_object().expect("object") {
            assert_eq!(back.get(key), Some(value), "field {key} kept");
        }
    }

    #[test]
    fn payload_round_trip_keeps_extras() {
        let input = json!({"feature_slug": "f", "wp_id": "WP01", "from_lane": null,
            "to_lane": "planned", "actor": "a", "shell_pid": "42"});
        let payload: WpStatusChanged = serde_json::from_value(input).expect("parses");
        assert_eq!(payload.extra.get("shell_pid"), Some(&json!("42")));
        assert!(!payload.force);
    }
}
