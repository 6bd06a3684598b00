//! The team board: the server's read side (contract section 8).
//!
//! - [`projection`]: the winner rule applied to stored events, the same in
//!   live ingest and in `board rebuild`.
//! - [`hub`]: notices that a project moved on, fanned out to watchers.
//! - [`feed`]: one reader per watched project, shared by its watchers.
//! - [`stream`]: one watcher per open stream, reading changes by cursor.
//! - [`cursor`]: the opaque feed and stream positions.

pub mod cursor;
pub mod feed;
pub mod hub;
pub mod projection;
pub mod stream;

use std::collections::BTreeMap;

use spec_kitty_protocol::SyncLane;
use spec_kitty_protocol::board::{Board, BoardFeature, Card, Counts, StreamCard};

/// A project as the read side finds it: always within one team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: i64,
    pub uuid: String,
    pub slug: Option<String>,
    /// The sequence of the last event stored for the project.
    pub last_seq: i64,
}

impl ProjectRef {
    /// What to call the project on a page.
    pub fn name(&self) -> &str {
        self.slug.as_deref().unwrap_or(&self.uuid)
    }
}

/// A card as stored, with its feature and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCard {
    /// `""` is "no feature".
    pub feature_key: String,
    pub card: Card,
    pub changed_seq: i64,
}

/// A card's columns in the order of [`projection::CARD_COLUMNS`], as both
/// backends read them: the rules that turn them into a card live once, in
/// the `From` below.
pub type CardColumns = (
    String,         // feature_key
    String,         // wp_id
    Option<String>, // lane (none yet: only created)
    Option<String>, // raw_lane
    Option<String>, // actor
    Option<String>, // updated_at
    Option<String>, // title
    String,         // dependencies, a JSON list
    Option<String>, // s_event
    Option<String>, // c_event
    i64,            // changed_seq
);

impl From<CardColumns> for StoredCard {
    fn from(c: CardColumns) -> StoredCard {
        let (feature_key, wp_id, lane, raw_lane, actor, updated_at, title, dependencies) =
            (c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7);
        StoredCard {
            feature_key,
            card: Card {
                wp_id,
                lane: lane.unwrap_or_else(|| SyncLane::Planned.as_str().into()),
                raw_lane,
                actor,
                updated_at,
                title,
                dependencies: serde_json::from_str(&dependencies).unwrap_or_default(),
                last_event_id: c.8.or(c.9),
            },
            changed_seq: c.10,
        }
    }
}

/// A project's columns in the order of `store::board::PROJECT_COLUMNS`.
pub type ProjectColumns = (i64, String, Option<String>, i64);

impl From<ProjectColumns> for ProjectRef {
    fn from((id, uuid, slug, last_seq): ProjectColumns) -> ProjectRef {
        ProjectRef {
            id,
            uuid,
            slug,
            last_seq,
        }
    }
}

impl StoredCard {
    pub fn stream_card(&self) -> StreamCard {
        StreamCard {
            feature_slug: projection::feature_slug(&self.feature_key),
            card: self.card.clone(),
        }
    }
}

/// Everything a board shows, read in one snapshot.
#[derive(Debug, Clone)]
pub struct BoardRows {
    pub project: ProjectRef,
    pub feature_keys: Vec<String>,
    pub cards: Vec<StoredCard>,
}

/// A project in the team's list.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    pub project: ProjectRef,
    pub features: u64,
    pub counts: Counts,
    pub last_event_at: Option<String>,
}

/// What `board rebuild` found or did.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    pub projects: usize,
    pub events: u64,
    pub cards: usize,
    /// Work packages whose stored card differed from the recomputed one.
    pub differences: Vec<String>,
}

/// `wp_id` order: by length, then bytewise, so WP100 comes after WP99.
pub fn wp_order(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

impl BoardRows {
    /// The `board/` document: features by slug (no feature first), work
    /// packages by id. One pass over the cards, moved rather than copied: a board of
    /// 1,000 work packages is read on every page load.
    pub fn into_document(self) -> Board {
        let mut features: BTreeMap<String, Vec<Card>> = self
            .feature_keys
            .into_iter()
            .map(|key| (key, Vec::new()))
            .collect();
        let mut counts = Counts::default();
        for stored in self.cards {
            counts.add(stored.card.sync_lane());
            features
                .entry(stored.feature_key)
                .or_default()
                .push(stored.card);
        }
        let features = features
            .into_iter()
            .map(|(key, mut work_packages)| {
                work_packages.sort_by(|a, b| wp_order(&a.wp_id, &b.wp_id));
                BoardFeature {
                    feature_slug: projection::feature_slug(&key),
                    work_packages,
                }
            })
            .collect();
        Board {
            project_uuid: self.project.uuid,
            project_slug: self.project.slug,
            counts,
            cursor: cursor::encode(self.project.last_seq),
            features,
        }
    }
}

/// The columns of a board, in workflow order, with their titles.
pub const COLUMNS: [(SyncLane, &str); 4] = [
    (SyncLane::Planned, "Planned"),
    (SyncLane::Doing, "Doing"),
    (SyncLane::ForReview, "For review"),
    (SyncLane::Done, "Done"),
];
