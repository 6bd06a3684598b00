//! The one validator of events, shared by server and client.
//!
//! The server answers `rejected` with its message; the client's
//! `sync diagnose` prints the same findings field by field, so a user sees
//! exactly what the server would say before anything is sent.

use std::fmt;

use serde_json::{Map, Value};

use crate::event::{FEATURE_CREATED, WP_CREATED, WP_STATUS_CHANGED};
use crate::lanes::SyncLane;
use crate::timestamp;

/// One problem with one field of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path, e.g. `payload.to_lane`.
    pub path: String,
    /// What the contract asks for.
    pub expected: String,
    /// What the event held, described for a person.
    pub found: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.path, self.expected, self.found
        )
    }
}

/// Joins field errors into the single `error` text of a `rejected` result.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks an event against the envelope rules and, for known event types,
/// the payload rules. An empty list means the event is valid.
pub fn validate_event(event: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(obj) = event.as_object() else {
        errors.push(FieldError {
            path: "(event)".into(),
            expected: "a JSON object".into(),
            found: describe_value(Some(event)),
        });
        return errors;
    };
    let mut check = Checker {
        obj,
        prefix: "",
        errors: &mut errors,
    };
    check.required_str("event_id", IdKind::UlidOrUuid);
    check.required_str("event_type", IdKind::NonEmpty);
    check.required_str("aggregate_id", IdKind::NonEmpty);
    check.optional_str("aggregate_type", IdKind::Any);
    check.required_str("timestamp", IdKind::Timestamp);
    check.required_str("node_id", IdKind::NonEmpty);
    check.lamport("lamport_clock");
    check.optional_str("causation_id", IdKind::UlidOrUuid);
    check.optional_str("correlation_id", IdKind::UlidOrUuid);
    check.required_str("project_uuid", IdKind::Uuid);
    check.optional_str("project_slug", IdKind::Any);
    check.optional_str("team_slug", IdKind::Any);
    check.optional_str("schema_version", IdKind::Semver);
    check.data_tier("data_tier");
    for key in ["git_branch", "head_commit_sha", "repo_slug"] {
        check.optional_str(key, IdKind::Any);
    }
    match obj.get("payload") {
        Some(Value::Object(payload)) => match obj.get("event_type").and_then(Value::as_str) {
            Some(WP_STATUS_CHANGED) => validate_wp_status_changed(payload, check.errors),
            Some(WP_CREATED) => validate_wp_created(payload, check.errors),
            Some(FEATURE_CREATED) => validate_feature_created(payload, check.errors),
            _ => {}
        },
        other => check.errors.push(FieldError {
            path: "payload".into(),
            expected: "a JSON object".into(),
            found: describe_value(other),
        }),
    }
    errors
}

fn validate_wp_status_changed(payload: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let mut check = Checker {
        obj: payload,
        prefix: "payload.",
        errors,
    };
    check.required_str("wp_id", IdKind::WpId);
    check.lane("to_lane", true);
    check.lane("from_lane", false);
    check.optional_str("feature_slug", IdKind::Any);
    check.optional_str("actor", IdKind::Any);
    let force = match payload.get("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        other => {
            check.push("force", "true or false", describe_value(other));
            false
        }
    };
    let reason = payload.get("reason");
    match reason {
        None | Some(Value::Null) => {
            if force {
                check.push(
                    "reason",
                    "a reason when force is true",
                    describe_value(reason),
                );
            }
        }
        Some(Value::String(text)) => {
            if force && text.trim().is_empty() {
                check.push(
                    "reason",
                    "a reason when force is true",
                    describe_value(reason),
                );
            }
        }
        other => check.push("reason", "a string or null", describe_value(other)),
    }
}

/// The largest Lamport clock a server stores (`i64::MAX`).
pub const MAX_LAMPORT: u64 = i64::MAX as u64;

const LAMPORT_EXPECTED: &str = "an integer from 0 to 9223372036854775807";

/// `WPCreated` (contract section 8): the work package's title and
/// dependencies for the board.
fn validate_wp_created(payload: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let mut check = Checker {
        obj: payload,
        prefix: "payload.",
        errors,
    };
    check.required_str("wp_id", IdKind::WpId);
    check.optional_str("title", IdKind::Any);
    check.optional_str("feature_slug", IdKind::Any);
    match payload.get("dependencies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if !item.as_str().is_some_and(is_wp_id) {
                    check.push(
                        &format!("dependencies[{index}]"),
                        IdKind::WpId.expected(),
                        describe_value(Some(item)),
                    );
                }
            }
        }
        other => check.push(
            "dependencies",
            "a list of work package ids like [\"WP01\"]",
            describe_value(other),
        ),
    }
}

/// `FeatureCreated` (contract section 8).
fn validate_feature_created(payload: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let mut check = Checker {
        obj: payload,
        prefix: "payload.",
        errors,
    };
    check.required_str("feature_slug", IdKind::NonEmpty);
    check.optional_str("target_branch", IdKind::Any);
    match payload.get("feature_number") {
        None | Some(Value::Null) => {}
        Some(Value::String(number))
            if number.len() == 3 && number.bytes().all(|b| b.is_ascii_digit()) => {}
        other => check.push(
            "feature_number",
            "three digits as a string, like \"039\"",
            describe_value(other),
        ),
    }
    match payload.get("wp_count") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_u64() => {}
        other => check.push("wp_count", "an integer >= 0", describe_value(other)),
    }
}

#[derive(Clone, Copy)]
enum IdKind {
    Any,
    NonEmpty,
    UlidOrUuid,
    Uuid,
    Timestamp,
    Semver,
    WpId,
}

impl IdKind {
    fn expected(self) -> &'static str {
        match self {
            IdKind::Any => "a string",
            IdKind::NonEmpty => "a non-empty string",
            IdKind::UlidOrUuid => "a ULID (26 Crockford base32 characters) or a UUID",
            IdKind::Uuid => "a UUID",
            IdKind::Timestamp => "an ISO 8601 timestamp",
            IdKind::Semver => "a semantic version like 1.0.0",
            IdKind::WpId => "WP followed by two or more digits, like WP03",
        }
    }

    fn accepts(self, text: &str) -> bool {
        match self {
            IdKind::Any => true,
            IdKind::NonEmpty => !text.trim().is_empty(),
            IdKind::UlidOrUuid => is_ulid(text) || is_uuid(text),
            IdKind::Uuid => is_uuid(text),
            IdKind::Timestamp => timestamp::parse(text).is_ok(),
            IdKind::Semver => is_semver(text),
            IdKind::WpId => is_wp_id(text),
        }
    }
}

struct Checker<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'static str,
    errors: &'a mut Vec<FieldError>,
}

impl Checker<'_> {
    fn push(&mut self, key: &str, expected: &str, found: String) {
        self.errors.push(FieldError {
            path: format!("{}{key}", self.prefix),
            expected: expected.to_string(),
            found,
        });
    }

    fn required_str(&mut self, key: &str, kind: IdKind) {
        match self.obj.get(key) {
            Some(Value::String(text)) if kind.accepts(text) => {}
            other => self.push(key, kind.expected(), describe_value(other)),
        }
    }

    fn optional_str(&mut self, key: &str, kind: IdKind) {
        match self.obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if kind.accepts(text) => {}
            other => {
                let expected = format!("{} or null", kind.expected());
                self.push(key, &expected, describe_value(other));
            }
        }
    }

    fn lamport(&mut self, key: &str) {
        match self.obj.get(key) {
            // Stored and compared as a signed 64-bit integer: a larger
            // value is refused, never clamped.
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= MAX_LAMPORT) => {}
            Some(Value::Number(n)) if n.is_u64() => {
                self.push(key, LAMPORT_EXPECTED, describe_value(self.obj.get(key)));
            }
            other => self.push(key, "an integer >= 0", describe_value(other)),
        }
    }

    fn data_tier(&mut self, key: &str) {
        match self.obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|t| t <= 4) => {}
            other => self.push(key, "an integer from 0 to 4", describe_value(other)),
        }
    }

    fn lane(&mut self, key: &str, required: bool) {
        const EXPECTED: &str = "a lane: planned, doing, for_review or done (or a canonical lane: claimed, in_progress, blocked, canceled, approved)";
        match self.obj.get(key) {
            None | Some(Value::Null) if !required => {}
            Some(Value::String(text)) if SyncLane::from_wire(text).is_ok() => {}
            Some(Value::String(text)) => {
                let found = format!("unknown lane '{text}'");
                self.push(key, EXPECTED, found);
            }
            other => self.push(key, EXPECTED, describe_value(other)),
        }
    }
}

/// Describes a JSON value for an error message, short enough for one line.
fn describe_value(value: Option<&Value>) -> String {
    match value {
        None => "nothing (the field is missing)".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::Bool(b)) => format!("the boolean {b}"),
        Some(Value::Number(n)) => format!("the number {n}"),
        Some(Value::String(s)) if s.is_empty() => "an empty string".into(),
        Some(Value::String(s)) => {
            let shown: String = s.chars().take(60).collect();
            let more = if s.chars().count() > 60 { "..." } else { "" };
            format!("'{shown}{more}'")
        }
        Some(Value::Array(_)) => "a list".into(),
        Some(Value::Object(_)) => "an object".into(),
    }
}

/// A ULID: 26 Crockford base32 characters whose first is at most `7`.
pub fn is_ulid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 26
        && matches!(bytes[0], b'0'..=b'7')
        && bytes.iter().all(|b| {
            // Crockford base32: digits and letters except I, L, O and U.
            matches!(b.to_ascii_uppercase(), b'0'..=b'9' | b'A'..=b'H' | b'J' | b'K' | b'M' | b'N' | b'P'..=b'T' | b'V'..=b'Z')
        })
}

/// A UUID in its hyphenated form (what every client writes).
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
}

/// `WP` followed by two or more ASCII digits.
pub fn is_wp_id(text: &str) -> bool {
    text.strip_prefix("WP")
        .is_some_and(|digits| digits.len() >= 2 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// `MAJOR.MINOR.PATCH` with optional `-pre` and `+build` parts.
pub fn is_semver_str(text: &str) -> bool {
    is_semver(text)
}

fn is_semver(text: &str) -> bool {
    let core = text.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A valid `WPStatusChanged` with every optional field written out
    /// (the fast path's tests start from it too).
    pub(crate) fn good_event() -> Value {
        json!({
            "event_id": "01HV5Z3K8Y6Q2W9E4R7T1N0M3P",
            "event_type": "WPStatusChanged",
            "aggregate_id": "039-cli-2x-readiness/WP03",
            "aggregate_type": "WorkPackage",
            "payload": {"feature_slug": "039-cli-2x-readiness", "wp_id": "WP03",
                "from_lane": "planned", "to_lane": "doing", "actor": "alice",
                "force": false, "reason": null, "execution_mode": "worktree",
                "review_ref": null, "evidence": null},
            "timestamp": "2026-02-12T10:15:00+00:00",
            "node_id": "3f2a9c1b7d4e",
            "lamport_clock": 12,
            "causation_id": null,
            "correlation_id": "01HV5Z3K8Y6Q2W9E4R7T1N0M3Q",
            "project_uuid": "550e8400-e29b-41d4-a716-446655440000",
            "project_slug": "my-project",
            "schema_version": "1.0.0",
            "data_tier": 0,
            "git_branch": "main",
            "head_commit_sha": null,
            "repo_slug": null
        })
    }

    fn errors_of(event: &Value) -> Vec<String> {
        validate_event(event)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_event_has_no_errors() {
        assert_eq!(errors_of(&good_event()), Vec::<String>::new());
    }

    #[test]
    fn unknown_lane_names_field_and_value() {
        let mut e = good_event();
        e["payload"]["to_lane"] = json!("doingg");
        let errs = errors_of(&e);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("payload.to_lane: expected a lane"),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains("unknown lane 'doingg'"), "{}", errs[0]);
    }

    #[test]
    fn each_field_error_has_path_expected_and_found() {
        let mut e = good_event();
        e["lamport_clock"] = json!(-1);
        e["project_uuid"] = json!("not-a-uuid");
        e["payload"]["wp_id"] = json!("WP3");
        e.as_object_mut().expect("object").remove("node_id");
        let found = validate_event(&e);
        let by_path = |p: &str| found.iter().find(|f| f.path == p).cloned();
        let lamport = by_path("lamport_clock").expect("lamport error");
        assert_eq!(lamport.expected, "an integer >= 0");
        assert_eq!(lamport.found, "the number -1");
        assert_eq!(
            by_path("project_uuid").expect("uuid error").found,
            "'not-a-uuid'"
        );
        assert_eq!(
            by_path("node_id").expect("node_id error").found,
            "nothing (the field is missing)"
        );
        assert!(by_path("payload.wp_id").is_some());
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn force_requires_a_reason() {
        let mut e = good_event();
        e["payload"]["force"] = json!(true);
        let errs = errors_of(&e);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("payload.reason:"), "{}", errs[0]);
        e["payload"]["reason"] = json!("reopened after review");
        assert!(errors_of(&e).is_empty());
    }

    #[test]
    fn first_transition_may_have_null_from_lane_and_python_lanes_pass() {
        let mut e = good_event();
        e["payload"]["from_lane"] = Value::Null;
        e["payload"]["to_lane"] = json!("approved");
        assert!(errors_of(&e).is_empty());
        e["payload"]["to_lane"] = json!("in_progress");
        assert!(errors_of(&e).is_empty());
    }

    #[test]
    fn other_event_types_are_checked_only_against_the_envelope() {
        let mut e = good_event();
        e["event_type"] = json!("HistoryAdded");
        e["payload"] = json!({"anything": "goes"});
        assert!(errors_of(&e).is_empty());
        e["payload"] = json!([1]);
        assert_eq!(errors_of(&e).len(), 1);
    }

    #[test]
    fn uuid_event_ids_and_naive_timestamps_are_accepted() {
        let mut e = good_event();
        e["event_id"] = json!("550e8400-e29b-41d4-a716-446655440001");
        e["timestamp"] = json!("2026-02-12T10:15:00.123456");
        assert!(errors_of(&e).is_empty());
        e["event_id"] = json!("not-an-id");
        assert_eq!(errors_of(&e).len(), 1);
    }

    #[test]
    fn lamport_above_i64_is_refused_not_clamped() {
        let mut e = good_event();
        e["lamport_clock"] = json!(9_223_372_036_854_775_807u64);
        assert!(errors_of(&e).is_empty());
        e["lamport_clock"] = json!(9_223_372_036_854_775_808u64);
        let errs = errors_of(&e);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("lamport_clock: expected an integer from 0 to 9223372036854775807"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn wp_created_and_feature_created_payloads_are_checked() {
        let mut e = good_event();
        e["event_type"] = json!("WPCreated");
        e["payload"] = json!({"wp_id": "WP03", "title": "Fix it", "feature_slug": "039-x", "dependencies": ["WP01"]});
        assert!(errors_of(&e).is_empty());
        e["payload"]["dependencies"] = json!(["WP1", 3]);
        e["payload"]["wp_id"] = json!("W3");
        let errs = errors_of(&e);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs.iter()
                .any(|m| m.starts_with("payload.dependencies[0]:")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|m| m.starts_with("payload.wp_id:")),
            "{errs:?}"
        );
        e["payload"] = json!({"wp_id": "WP03", "dependencies": "WP01"});
        assert_eq!(errors_of(&e).len(), 1);

        e["event_type"] = json!("FeatureCreated");
        e["payload"] = json!({"feature_slug": "039-x", "feature_number": "039", "target_branch": "main", "wp_count": 6});
        assert!(errors_of(&e).is_empty());
        e["payload"] = json!({"feature_number": 39, "wp_count": -1});
        let errs = errors_of(&e);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs.iter().any(|m| m.starts_with("payload.feature_slug:")),
            "{errs:?}"
        );
    }

    #[test]
    fn not_an_object() {
        let errs = validate_event(&json!([1, 2]));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].found, "a list");
    }

    #[test]
    fn helpers() {
        assert!(is_wp_id("WP03") && is_wp_id("WP123"));
        assert!(!is_wp_id("WP3") && !is_wp_id("wp03") && !is_wp_id("WP0a"));
        assert!(is_semver("1.0.0") && is_semver("2.10.3-rc.1+b5"));
        assert!(!is_semver("1.0") && !is_semver("v1.0.0"));
        assert!(is_ulid("01HV5Z3K8Y6Q2W9E4R7T1N0M3P"));
        assert!(
            !is_ulid("81HV5Z3K8Y6Q2W9E4R7T1N0M3P"),
            "overflowing first char"
        );
    }
}
