//! A fast path for the validator: checks an event straight from its JSON
//! text into borrowed, typed fields, without building a `Value` tree.
//!
//! The server runs it on every event of every batch. It only ever says
//! "valid" for an event [`crate::validate_event`] finds valid (the tests
//! below hold the two to that); anything it cannot vouch for (a rule
//! broken, a type it did not expect, a duplicate key) makes it return
//! `None`, and the caller asks the full validator, which is the authority
//! and writes the messages.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::board::Fact;
use crate::event::{FEATURE_CREATED, WP_CREATED, WP_STATUS_CHANGED};
use crate::lanes::SyncLane;
use crate::timestamp;
use crate::validate::{is_semver_str, is_ulid, is_uuid, is_wp_id};

/// The fields a server needs from a valid event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEvent<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub aggregate_id: Cow<'a, str>,
    pub node_id: Cow<'a, str>,
    pub lamport_clock: u64,
    pub timestamp: Cow<'a, str>,
    pub project_uuid: Cow<'a, str>,
    pub project_slug: Option<Cow<'a, str>>,
    pub team_slug: Option<Cow<'a, str>>,
    /// The four-lane `to_lane` of a `WPStatusChanged` event.
    pub lane: Option<SyncLane>,
    /// What the event tells the board, if anything.
    pub fact: Option<Fact>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    aggregate_id: Cow<'a, str>,
    #[serde(borrow, default)]
    aggregate_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Payload<'a>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    node_id: Cow<'a, str>,
    lamport_clock: u64,
    #[serde(borrow, default)]
    causation_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    project_uuid: Cow<'a, str>,
    #[serde(borrow, default)]
    project_slug: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    team_slug: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema_version: Option<Cow<'a, str>>,
    #[serde(default)]
    data_tier: Option<u64>,
    #[serde(borrow, default)]
    git_branch: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    head_commit_sha: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    repo_slug: Option<Cow<'a, str>>,
}

/// A payload value of one of the kinds the fast path checks; anything
/// else (a number, a list, an object) is `Other`, read past, never an
/// error, since a payload of another event type may hold anything.
enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    Bool(bool),
    Other,
}

impl<'a> Scalar<'a> {
    /// The value as an optional string (absent or `null`: none), or
    /// `Err` when it is of another kind.
    fn opt_str(value: Option<Scalar<'a>>) -> Result<Option<Cow<'a, str>>, ()> {
        match value {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(_) => Err(()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

/// A payload key, named without copying it.
enum Field {
    WpId,
    ToLane,
    FromLane,
    FeatureSlug,
    Actor,
    Force,
    Reason,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a payload key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "wp_id" => Field::WpId,
                    "to_lane" => Field::ToLane,
                    "from_lane" => Field::FromLane,
                    "feature_slug" => Field::FeatureSlug,
                    "actor" => Field::Actor,
                    "force" => Field::Force,
                    "reason" => Field::Reason,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

/// The payload fields a `WPStatusChanged` event is checked on, read in
/// the same pass as the envelope (a second parse of the payload's text
/// was a sixth of the fast path's time). The payload must be an object;
/// what its fields hold is judged afterwards, by event type. A field
/// given twice makes the whole event go to the full validator, as serde
/// refuses a duplicate field.
#[derive(Default)]
struct Payload<'a> {
    wp_id: Option<Scalar<'a>>,
    to_lane: Option<Scalar<'a>>,
    from_lane: Option<Scalar<'a>>,
    feature_slug: Option<Scalar<'a>>,
    actor: Option<Scalar<'a>>,
    force: Option<Scalar<'a>>,
    reason: Option<Scalar<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Payload<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PayloadVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for PayloadVisitor<'a> {
            type Value = Payload<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a payload object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut p = Payload::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let slot = match field {
                        Field::WpId => &mut p.wp_id,
                        Field::ToLane => &mut p.to_lane,
                        Field::FromLane => &mut p.from_lane,
                        Field::FeatureSlug => &mut p.feature_slug,
                        Field::Actor => &mut p.actor,
                        Field::Force => &mut p.force,
                        Field::Reason => &mut p.reason,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field("payload field"));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(p)
            }
        }
        d.deserialize_map(PayloadVisitor(PhantomData))
    }
}

fn id_ok(id: &str) -> bool {
    is_ulid(id) || is_uuid(id)
}

/// Checks one event's JSON text; `None` means "ask the full validator".
pub fn check_event(raw: &str) -> Option<CheckedEvent<'_>> {
    let e: Envelope<'_> = serde_json::from_str(raw).ok()?;
    let _ = (
        &e.aggregate_type,
        &e.git_branch,
        &e.head_commit_sha,
        &e.repo_slug,
    );
    let ok = id_ok(&e.event_id)
        && !e.event_type.trim().is_empty()
        && !e.aggregate_id.trim().is_empty()
        && !e.node_id.trim().is_empty()
        && timestamp::parse(&e.timestamp).is_ok()
        && e.causation_id.as_deref().is_none_or(id_ok)
        && e.correlation_id.as_deref().is_none_or(id_ok)
        && is_uuid(&e.project_uuid)
        && e.schema_version.as_deref().is_none_or(is_semver_str)
        && e.data_tier.is_none_or(|t| t <= 4)
        && e.lamport_clock <= crate::validate::MAX_LAMPORT
        // Board payloads are rare: the full validator checks them.
        && e.event_type != WP_CREATED
        && e.event_type != FEATURE_CREATED;
    if !ok {
        return None;
    }
    let mut fact = None;
    let lane = if e.event_type == WP_STATUS_CHANGED {
        let p = e.payload;
        let (Some(Scalar::Str(wp_id)), Some(Scalar::Str(to_lane))) = (p.wp_id, p.to_lane) else {
            return None;
        };
        let from_lane = Scalar::opt_str(p.from_lane).ok()?;
        let feature_slug = Scalar::opt_str(p.feature_slug).ok()?;
        let actor = Scalar::opt_str(p.actor).ok()?;
        let reason = Scalar::opt_str(p.reason).ok()?;
        let force = match p.force {
            None | Some(Scalar::Null) => false,
            Some(Scalar::Bool(force)) => force,
            Some(_) => return None,
        };
        let valid = is_wp_id(&wp_id)
            && from_lane
                .as_deref()
                .is_none_or(|l| SyncLane::from_wire(l).is_ok())
            && (!force || reason.as_deref().is_some_and(|r| !r.trim().is_empty()));
        if !valid {
            return None;
        }
        let lane = SyncLane::from_wire(&to_lane).ok()?;
        fact = Some(Fact::Status {
            feature_slug: Fact::feature_key(feature_slug.as_deref()),
            wp_id: wp_id.into_owned(),
            raw_lane: to_lane.into_owned(),
            lane,
            actor: actor.map(Cow::into_owned),
        });
        Some(lane)
    } else {
        None
    };
    Some(CheckedEvent {
        event_id: e.event_id,
        event_type: e.event_type,
        aggregate_id: e.aggregate_id,
        node_id: e.node_id,
        lamport_clock: e.lamport_clock,
        timestamp: e.timestamp,
        project_uuid: e.project_uuid,
        project_slug: e.project_slug,
        team_slug: e.team_slug,
        lane,
        fact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate_event;
    use serde_json::{Value, json};

    /// The validator's good event, with a team and an unknown field (kept).
    fn good() -> Value {
        let mut event = crate::validate::tests::good_event();
        event["team_slug"] = json!("acme");
        event["extra"] = json!({"kept": true});
        event
    }

    /// Every variant of the good event with one field removed or replaced
    /// by a value of another kind, plus rule-specific bad values.
    fn variants() -> Vec<Value> {
        let replacements = [
            Value::Null,
            json!(true),
            json!(-1),
            json!(5),
            json!(4.5),
            json!(""),
            json!("   "),
            json!("x"),
            json!("doingg"),
            json!("approved"),
            json!("WP3"),
            json!("1.0"),
            json!("2026-02-12T10:15:00"),
            json!("550e8400-e29b-41d4-a716-446655440000"),
            json!("01HV5Z3K8Y6Q2W9E4R7T1N0M3P"),
            json!("81HV5Z3K8Y6Q2W9E4R7T1N0M3P"),
            json!([]),
            json!({}),
        ];
        let base = good();
        let mut out = vec![base.clone()];
        let top: Vec<String> = base.as_object().expect("object").keys().cloned().collect();
        let inner: Vec<String> = base["payload"]
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        for key in &top {
            let mut removed = base.clone();
            removed.as_object_mut().expect("object").remove(key);
            out.push(removed);
            for value in &replacements {
                let mut changed = base.clone();
                changed[key.as_str()] = value.clone();
                out.push(changed);
            }
        }
        for key in &inner {
            let mut removed = base.clone();
            removed["payload"]
                .as_object_mut()
                .expect("object")
                .remove(key);
            out.push(removed);
            for value in &replacements {
                let mut changed = base.clone();
                changed["payload"][key.as_str()] = value.clone();
                let mut forced = changed.clone();
                forced["payload"]["force"] = json!(true);
                out.push(changed);
                out.push(forced);
            }
        }
        let mut other = base.clone();
        other["event_type"] = json!("HistoryAdded");
        other["payload"] = json!({"anything": 1});
        out.push(other);
        out
    }

    #[test]
    fn the_fast_path_never_accepts_what_the_validator_rejects() {
        let mut accepted = 0;
        for event in variants() {
            let text = event.to_string();
            let full = validate_event(&event);
            if let Some(checked) = check_event(&text) {
                accepted += 1;
                assert!(
                    full.is_empty(),
                    "fast path accepted an invalid event: {text}\n{full:?}"
                );
                assert_eq!(checked.event_id, event["event_id"].as_str().expect("id"));
            }
        }
        assert!(
            accepted > 100,
            "the fast path should accept most valid variants ({accepted})"
        );
    }

    #[test]
    fn valid_events_take_the_fast_path_with_their_fields() {
        let text = good().to_string();
        let checked = check_event(&text).expect("fast");
        assert_eq!(checked.lane, Some(SyncLane::Doing));
        assert_eq!(checked.lamport_clock, 12);
        assert_eq!(checked.team_slug.as_deref(), Some("acme"));
        assert!(
            matches!(checked.event_id, Cow::Borrowed(_)),
            "no copy for plain strings"
        );
        assert!(check_event("{\"event_id\": 1}").is_none());
        // A payload given as a list, or with a field twice, is left to the
        // full validator (which refuses both).
        let mut listed = good();
        listed["payload"] = json!(["WP01", "doing"]);
        assert!(check_event(&listed.to_string()).is_none());
        assert!(!validate_event(&listed).is_empty());
        let text = good().to_string();
        let twice = text.replacen("\"wp_id\":", "\"wp_id\":\"WP09\",\"wp_id\":", 1);
        assert_ne!(twice, text, "the event names wp_id");
        assert!(check_event(&twice).is_none());
        // Escaped keys and values are read as the validator reads them.
        let escaped = text.replacen("\"to_lane\":", "\"to_\\u006cane\":", 1);
        assert_ne!(escaped, text, "the event names to_lane");
        assert_eq!(
            check_event(&escaped).map(|c| c.lane),
            Some(Some(SyncLane::Doing))
        );
        assert!(check_event("not json").is_none());
    }
}
