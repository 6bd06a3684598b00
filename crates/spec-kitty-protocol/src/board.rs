//! The team board (contract section 8): what an event tells the board, the
//! rule that picks the winning event, and the JSON documents of the read API.
//!
//! The winner rule lives here, next to the types, so the server's live
//! projection, its rebuild and every test compare events the same way.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{FEATURE_CREATED, WP_CREATED, WP_STATUS_CHANGED};
use crate::lanes::SyncLane;

/// What one event tells the board. Events of other types tell it nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A `WPStatusChanged`: the work package's lane.
    Status {
        /// `None` for the Python client's `feature_slug: null` (or empty).
        feature_slug: Option<String>,
        wp_id: String,
        /// `to_lane` as sent (`blocked`, `approved`, `doing`, ...).
        raw_lane: String,
        /// `to_lane` in the four sync lanes.
        lane: SyncLane,
        actor: Option<String>,
    },
    /// A `WPCreated`: the work package's title and dependencies.
    Created {
        feature_slug: Option<String>,
        wp_id: String,
        title: Option<String>,
        dependencies: Vec<String>,
    },
    /// A `FeatureCreated`: the feature exists, even with no work packages.
    Feature { feature_slug: String },
}

impl Fact {
    /// A feature slug as the board keys it: absent, null and empty are the
    /// one "(no feature)" feature.
    pub fn feature_key(slug: Option<&str>) -> Option<String> {
        slug.filter(|s| !s.is_empty()).map(str::to_string)
    }

    /// The fact of an event that passed [`crate::validate_event`]; `None` for
    /// event types the board does not read.
    pub fn of_event(event: &Value) -> Option<Fact> {
        let event_type = event.get("event_type")?.as_str()?;
        let payload = event.get("payload")?;
        let text = |key: &str| payload.get(key).and_then(Value::as_str);
        let feature = || Fact::feature_key(text("feature_slug"));
        match event_type {
            WP_STATUS_CHANGED => {
                let raw_lane = text("to_lane")?.to_string();
                Some(Fact::Status {
                    feature_slug: feature(),
                    wp_id: text("wp_id")?.to_string(),
                    lane: SyncLane::from_wire(&raw_lane).ok()?,
                    raw_lane,
                    actor: text("actor").map(str::to_string),
                })
            }
            WP_CREATED => Some(Fact::Created {
                feature_slug: feature(),
                wp_id: text("wp_id")?.to_string(),
                title: text("title").map(str::to_string),
                dependencies: payload
                    .get("dependencies")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            FEATURE_CREATED => Some(Fact::Feature {
                feature_slug: feature()?,
            }),
            _ => None,
        }
    }

    /// The feature this fact belongs to.
    pub fn feature_slug(&self) -> Option<&str> {
        match self {
            Fact::Status { feature_slug, .. } | Fact::Created { feature_slug, .. } => {
                feature_slug.as_deref()
            }
            Fact::Feature { feature_slug } => Some(feature_slug),
        }
    }
}

/// The order in which events of one kind compete for a work package:
/// `(lamport_clock, node_id, event_id)`, integers as integers and strings
/// bytewise. The greatest wins, whatever order the events arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinnerKey {
    pub lamport: i64,
    pub node_id: String,
    pub event_id: String,
}

impl Ord for WinnerKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.lamport
            .cmp(&other.lamport)
            .then_with(|| self.node_id.as_bytes().cmp(other.node_id.as_bytes()))
            .then_with(|| self.event_id.as_bytes().cmp(other.event_id.as_bytes()))
    }
}

impl PartialOrd for WinnerKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Work packages per sync lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub planned: u64,
    pub doing: u64,
    pub for_review: u64,
    pub done: u64,
}

impl Counts {
    /// Counts one more work package in `lane`.
    pub fn add(&mut self, lane: SyncLane) {
        match lane {
            SyncLane::Planned => self.planned += 1,
            SyncLane::Doing => self.doing += 1,
            SyncLane::ForReview => self.for_review += 1,
            SyncLane::Done => self.done += 1,
        }
    }

    /// How many work packages are in `lane`.
    pub fn get(&self, lane: SyncLane) -> u64 {
        match lane {
            SyncLane::Planned => self.planned,
            SyncLane::Doing => self.doing,
            SyncLane::ForReview => self.for_review,
            SyncLane::Done => self.done,
        }
    }

    pub fn total(&self) -> u64 {
        self.planned + self.doing + self.for_review + self.done
    }
}

/// One work package on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub wp_id: String,
    pub title: Option<String>,
    /// One of the four sync lanes; `planned` when only `WPCreated` is known.
    pub lane: String,
    /// `to_lane` of the winning `WPStatusChanged` as sent.
    pub raw_lane: Option<String>,
    pub actor: Option<String>,
    pub updated_at: Option<String>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    pub last_event_id: Option<String>,
}

impl Card {
    /// The card's column.
    pub fn sync_lane(&self) -> SyncLane {
        SyncLane::from_wire(&self.lane).unwrap_or(SyncLane::Planned)
    }

    /// The raw lane when it says more than the column (`blocked`,
    /// `approved`, `canceled`, ...), for a badge.
    pub fn badge(&self) -> Option<&str> {
        self.raw_lane
            .as_deref()
            .filter(|raw| *raw != self.lane && *raw != "in_progress")
    }
}

/// A card as the stream sends it: the card and its feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCard {
    pub feature_slug: Option<String>,
    #[serde(flatten)]
    pub card: Card,
}

/// A feature and its work packages, sorted by `wp_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardFeature {
    pub feature_slug: Option<String>,
    pub work_packages: Vec<Card>,
}

/// `GET /api/v1/projects/{uuid}/board/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    pub project_uuid: String,
    pub project_slug: Option<String>,
    pub counts: Counts,
    /// Where the event feed and the stream stand for this board.
    pub cursor: String,
    pub features: Vec<BoardFeature>,
}

/// One entry of `GET /api/v1/projects/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub project_uuid: String,
    pub project_slug: Option<String>,
    pub features: u64,
    pub work_packages: u64,
    pub counts: Counts,
    pub last_event_at: Option<String>,
}

/// `GET /api/v1/projects/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectList {
    pub projects: Vec<ProjectSummary>,
}

/// `GET /api/v1/projects/{uuid}/events/`: stored events as sent, oldest
/// first, and the cursor to continue from (`None` at the end).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<Box<serde_json::value::RawValue>>,
    pub next: Option<String>,
}

/// The most events one page of the feed holds, and the default.
pub const MAX_FEED_LIMIT: u32 = 1000;
pub const DEFAULT_FEED_LIMIT: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(lamport: i64, node: &str, id: &str) -> WinnerKey {
        WinnerKey {
            lamport,
            node_id: node.into(),
            event_id: id.into(),
        }
    }

    #[test]
    fn winner_compares_lamport_then_node_then_id_bytewise() {
        assert!(key(2, "a", "a") > key(1, "z", "z"));
        assert!(key(10, "a", "a") > key(9, "a", "a"), "integers as integers");
        assert!(key(1, "b", "a") > key(1, "a", "z"));
        assert!(key(1, "a", "b") > key(1, "a", "a"));
        assert!(key(1, "a", "a") > key(1, "B", "a"), "bytewise: 'a' > 'B'");
        assert_eq!(key(1, "a", "a").cmp(&key(1, "a", "a")), Ordering::Equal);
    }

    #[test]
    fn facts_of_events() {
        let status = json!({"event_type": "WPStatusChanged", "payload": {
            "feature_slug": null, "wp_id": "WP03", "to_lane": "blocked", "actor": "bob"}});
        assert_eq!(
            Fact::of_event(&status),
            Some(Fact::Status {
                feature_slug: None,
                wp_id: "WP03".into(),
                raw_lane: "blocked".into(),
                lane: SyncLane::Doing,
                actor: Some("bob".into()),
            })
        );
        let created = json!({"event_type": "WPCreated", "payload": {
            "feature_slug": "039-x", "wp_id": "WP01", "title": "T", "dependencies": ["WP02"]}});
        assert_eq!(
            Fact::of_event(&created).and_then(|f| f.feature_slug().map(str::to_string)),
            Some("039-x".into())
        );
        let other = json!({"event_type": "HistoryAdded", "payload": {}});
        assert_eq!(Fact::of_event(&other), None);
    }

    #[test]
    fn badges_only_when_the_raw_lane_says_more() {
        let mut card = Card {
            wp_id: "WP01".into(),
            title: None,
            lane: "doing".into(),
            raw_lane: Some("blocked".into()),
            actor: None,
            updated_at: None,
            dependencies: vec![],
            last_event_id: None,
        };
        assert_eq!(card.badge(), Some("blocked"));
        card.raw_lane = Some("in_progress".into());
        assert_eq!(card.badge(), None);
        card.raw_lane = Some("doing".into());
        assert_eq!(card.badge(), None);
    }
}
