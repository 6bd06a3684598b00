//! The event envelope and the payloads this workspace builds:
//! `WPStatusChanged` (contract section 3), `WPCreated` and `FeatureCreated`
//! (section 8).

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

/// The `aggregate_type` of a work-package event.
pub const WORK_PACKAGE: &str = "WorkPackage";

/// What an event says about where and when it was made: everything of the
/// envelope that is not derived from its payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Envelope {
    pub event_id: String,
    pub timestamp: String,
    pub node_id: String,
    pub lamport_clock: u64,
    pub correlation_id: Option<String>,
    pub project_uuid: String,
    pub project_slug: Option<String>,
    /// Absent on the wire when `None` (the server then uses the sender's team).
    pub team_slug: Option<String>,
    pub git_branch: Option<String>,
    pub head_commit_sha: Option<String>,
}

/// The `aggregate_type` of a feature event.
pub const FEATURE: &str = "Feature";

/// The event made of a payload and an envelope: the type and aggregate
/// come from the payload's builder, the schema defaults from here, the
/// rest from `envelope`. One function, so every event this crate builds
/// has the same envelope.
fn build(
    event_type: &str,
    aggregate_id: String,
    aggregate_type: &str,
    payload: Value,
    envelope: Envelope,
) -> Event {
    Event {
        event_id: envelope.event_id,
        event_type: event_type.to_string(),
        aggregate_id,
        aggregate_type: Some(aggregate_type.to_string()),
        payload,
        timestamp: envelope.timestamp,
        node_id: envelope.node_id,
        lamport_clock: envelope.lamport_clock,
        causation_id: None,
        correlation_id: envelope.correlation_id,
        project_uuid: envelope.project_uuid,
        project_slug: envelope.project_slug,
        team_slug: envelope.team_slug,
        schema_version: DEFAULT_SCHEMA_VERSION.to_string(),
        data_tier: 0,
        git_branch: envelope.git_branch,
        head_commit_sha: envelope.head_commit_sha,
        repo_slug: None,
        extra: Map::new(),
    }
}

impl WpStatusChanged {
    /// The `WPStatusChanged` event carrying this payload: the type, the
    /// aggregate (`feature/WPnn`, a work package) and the schema defaults
    /// come from here, the rest from `envelope`.
    pub fn into_event(self, envelope: Envelope) -> Event {
        let aggregate_id = format!("{}/{}", self.feature_slug, self.wp_id);
        build(
            WP_STATUS_CHANGED,
            aggregate_id,
            WORK_PACKAGE,
            self.to_value(),
            envelope,
        )
    }

    /// The payload as JSON. Every field is a string, a bool, an option of
    /// those or already a JSON value, and every map key is a string, so
    /// serializing cannot fail; a failure would be a bug in this type.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a WpStatusChanged always serializes")
    }
}

/// The payload of a `WPCreated` event (contract section 8): the title and
/// dependencies the board shows for a work package, before it ever moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WpCreated {
    pub wp_id: String,
    pub title: Option<String>,
    pub feature_slug: String,
    /// Work package ids (`WP` and two or more digits) of the same feature.
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WpCreated {
    /// The `WPCreated` event: aggregate `feature/WPnn`, a work package, as
    /// for [`WpStatusChanged::into_event`].
    pub fn into_event(self, envelope: Envelope) -> Event {
        let aggregate_id = format!("{}/{}", self.feature_slug, self.wp_id);
        build(
            WP_CREATED,
            aggregate_id,
            WORK_PACKAGE,
            self.to_value(),
            envelope,
        )
    }

    /// The payload as JSON (strings, a list of strings and a string-keyed
    /// map: serializing cannot fail).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a WpCreated always serializes")
    }
}

/// The payload of a `FeatureCreated` event (contract section 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCreated {
    pub feature_slug: String,
    /// The three digits the slug starts with, as a string (`"039"`).
    pub feature_number: String,
    pub target_branch: String,
    pub wp_count: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FeatureCreated {
    /// The `FeatureCreated` event: aggregate the feature slug, a feature.
    pub fn into_event(self, envelope: Envelope) -> Event {
        let aggregate_id = self.feature_slug.clone();
        build(
            FEATURE_CREATED,
            aggregate_id,
            FEATURE,
            self.to_value(),
            envelope,
        )
    }

    /// The payload as JSON (strings, an integer and a string-keyed map:
    /// serializing cannot fail).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a FeatureCreated always serializes")
    }
}

impl Event {
    /// The payload read as `WPStatusChanged`, when it is one.
    pub fn wp_status_changed(&self) -> Option<WpStatusChanged> {
        if self.event_type != WP_STATUS_CHANGED {
            return None;
        }
        serde_json::from_value(self.payload.clone()).ok()
    }

    /// The event as one line of JSON (what the client queues and sends).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Event always serializes")
    }
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
    fn built_event_has_the_wire_shape() {
        let payload = WpStatusChanged {
            feature_slug: "039-x".into(),
            wp_id: "WP03".into(),
            from_lane: None,
            to_lane: "doing".into(),
            actor: "alice".into(),
            force: false,
            reason: None,
            execution_mode: None,
            review_ref: None,
            evidence: None,
            extra: Map::new(),
        };
        let event = payload.clone().into_event(Envelope {
            event_id: "01HV0000000000000000000000".into(),
            lamport_clock: 3,
            ..Envelope::default()
        });
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["aggregate_id"], "039-x/WP03");
        assert_eq!(json["aggregate_type"], "WorkPackage");
        assert!(json.get("team_slug").is_none(), "absent, not null");
        for key in ["causation_id", "repo_slug", "git_branch", "head_commit_sha"] {
            assert_eq!(json.get(key), Some(&Value::Null), "{key} is null");
        }
        for key in [
            "from_lane",
            "reason",
            "execution_mode",
            "review_ref",
            "evidence",
        ] {
            assert_eq!(
                json["payload"].get(key),
                Some(&Value::Null),
                "{key} is null"
            );
        }
        assert_eq!(event.wp_status_changed(), Some(payload));
    }

    #[test]
    fn created_events_have_the_wire_shape_and_pass_validation() {
        let envelope = Envelope {
            event_id: "01HV0000000000000000000000".into(),
            timestamp: "2026-02-12T10:15:00+00:00".into(),
            node_id: "3f2a9c1b7d4e".into(),
            lamport_clock: 4,
            project_uuid: "550e8400-e29b-41d4-a716-446655440000".into(),
            ..Envelope::default()
        };
        let wp = WpCreated {
            wp_id: "WP03".into(),
            title: Some("Fix it".into()),
            feature_slug: "039-x".into(),
            dependencies: vec!["WP01".into()],
            extra: Map::new(),
        }
        .into_event(envelope.clone());
        let json = serde_json::to_value(&wp).expect("serializes");
        assert_eq!(json["event_type"], "WPCreated");
        assert_eq!(json["aggregate_id"], "039-x/WP03");
        assert_eq!(json["aggregate_type"], "WorkPackage");
        assert_eq!(
            json["payload"],
            serde_json::json!({"wp_id": "WP03", "title": "Fix it", "feature_slug": "039-x", "dependencies": ["WP01"]})
        );
        assert!(crate::validate_event(&json).is_empty());
        let feature = FeatureCreated {
            feature_slug: "039-x".into(),
            feature_number: "039".into(),
            target_branch: "main".into(),
            wp_count: 6,
            extra: Map::new(),
        }
        .into_event(envelope);
        let json = serde_json::to_value(&feature).expect("serializes");
        assert_eq!(json["event_type"], "FeatureCreated");
        assert_eq!(json["aggregate_id"], "039-x");
        assert_eq!(json["aggregate_type"], "Feature");
        assert_eq!(
            json["payload"],
            serde_json::json!({"feature_slug": "039-x", "feature_number": "039", "target_branch": "main", "wp_count": 6})
        );
        assert!(crate::validate_event(&json).is_empty());
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
