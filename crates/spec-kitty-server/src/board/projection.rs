//! The board projection: the one rule that turns stored events into cards,
//! shared by live ingest (both backends, inside the ingest transaction) and
//! by `board rebuild`.
//!
//! A batch is first reduced in memory to one winning status and one winning
//! `WPCreated` per work package (the winner rule is a maximum, so the
//! maximum of a batch's maxima is the overall maximum whatever the batch
//! boundaries); each backend then applies the reduced facts with the
//! conditional upserts below, which compare against the stored winner. The
//! same set of events therefore gives the same board in any arrival order.

use std::collections::{BTreeMap, BTreeSet};

use spec_kitty_protocol::board::{Fact, WinnerKey};

/// A work package's place: project, feature key (`""` is "no feature"),
/// `wp_id`.
pub type CardKey = (i64, String, String);

/// The winning `WPStatusChanged` of a batch for one work package.
#[derive(Debug, Clone)]
pub struct StatusWin {
    pub key: WinnerKey,
    pub lane: &'static str,
    pub raw_lane: String,
    pub actor: Option<String>,
    pub updated_at: String,
    pub seq: i64,
}

/// The winning `WPCreated` of a batch for one work package.
#[derive(Debug, Clone)]
pub struct CreatedWin {
    pub key: WinnerKey,
    pub title: Option<String>,
    /// JSON list of work package ids.
    pub dependencies: String,
    pub seq: i64,
}

/// What a batch changes on the board, before comparing with what is stored.
#[derive(Debug, Default)]
pub struct Reduced {
    pub features: BTreeSet<(i64, String)>,
    pub statuses: BTreeMap<CardKey, StatusWin>,
    pub created: BTreeMap<CardKey, CreatedWin>,
}

/// One newly stored event, as the projection needs it.
pub struct Projected<'a> {
    pub project_id: i64,
    pub seq: i64,
    pub key: WinnerKey,
    pub timestamp: &'a str,
    pub fact: &'a Fact,
}

/// A stored event read back for `board rebuild`.
pub struct StoredEvent {
    pub project_id: i64,
    pub seq: i64,
    pub event_id: String,
    pub node_id: String,
    pub lamport: i64,
    pub timestamp: String,
    pub body: String,
}

/// A project's stored events in order, as a rebuild reads them (`$1`: the
/// project), and their columns.
pub const STORED_EVENTS_SQL: &str = "SELECT pseq, event_id, node_id, lamport, ts, body FROM events WHERE project_id = $1 ORDER BY pseq";

/// The columns of [`STORED_EVENTS_SQL`], in its order.
pub type StoredEventColumns = (i64, String, String, i64, String, String);

impl StoredEvent {
    pub fn new(project_id: i64, columns: StoredEventColumns) -> StoredEvent {
        let (seq, event_id, node_id, lamport, timestamp, body) = columns;
        StoredEvent {
            project_id,
            seq,
            event_id,
            node_id,
            lamport,
            timestamp,
            body,
        }
    }
}

/// The `wp_id` and feature key stored beside an event, by its id.
pub type Backfill = (String, Option<String>, String);

/// The feature key of a fact: its slug, or `""` for "no feature".
pub fn feature_key(slug: Option<&str>) -> String {
    slug.unwrap_or_default().to_string()
}

/// The slug of a feature key, for JSON (`""` becomes `null`).
pub fn feature_slug(key: &str) -> Option<String> {
    (!key.is_empty()).then(|| key.to_string())
}

impl Reduced {
    /// Folds one event in.
    pub fn add(&mut self, event: Projected<'_>) {
        let Projected {
            project_id,
            seq,
            key,
            timestamp,
            fact,
        } = event;
        let feature = feature_key(fact.feature_slug());
        self.features.insert((project_id, feature.clone()));
        match fact {
            Fact::Status {
                wp_id,
                raw_lane,
                lane,
                actor,
                ..
            } => {
                let card = (project_id, feature, wp_id.clone());
                if self.statuses.get(&card).is_none_or(|won| key > won.key) {
                    self.statuses.insert(
                        card,
                        StatusWin {
                            key,
                            lane: lane.as_str(),
                            raw_lane: raw_lane.clone(),
                            actor: actor.clone(),
                            // Stored with an explicit offset, whatever form
                            // the sender wrote (contract: naive means UTC).
                            updated_at: spec_kitty_protocol::timestamp::parse(timestamp)
                                .map(spec_kitty_protocol::timestamp::format)
                                .unwrap_or_else(|_| timestamp.to_string()),
                            seq,
                        },
                    );
                }
            }
            Fact::Created {
                wp_id,
                title,
                dependencies,
                ..
            } => {
                let card = (project_id, feature, wp_id.clone());
                if self.created.get(&card).is_none_or(|won| key > won.key) {
                    self.created.insert(
                        card,
                        CreatedWin {
                            key,
                            title: title.clone(),
                            dependencies: serde_json::to_string(dependencies)
                                .unwrap_or_else(|_| "[]".into()),
                            seq,
                        },
                    );
                }
            }
            Fact::Feature { .. } => {}
        }
    }

    /// Folds in a stored event, as a rebuild reads it; returns the
    /// columns to store beside it, or `None` when it tells the board
    /// nothing (another type, or a body that is no longer JSON).
    pub fn add_stored(&mut self, event: StoredEvent) -> Option<Backfill> {
        let value = serde_json::from_str::<serde_json::Value>(&event.body).ok()?;
        let fact = Fact::of_event(&value)?;
        let wp_id = match &fact {
            Fact::Status { wp_id, .. } | Fact::Created { wp_id, .. } => Some(wp_id.clone()),
            Fact::Feature { .. } => None,
        };
        let backfill = (
            event.event_id.clone(),
            wp_id,
            feature_key(fact.feature_slug()),
        );
        self.add(Projected {
            project_id: event.project_id,
            seq: event.seq,
            key: WinnerKey {
                lamport: event.lamport,
                node_id: event.node_id,
                event_id: event.event_id,
            },
            timestamp: &event.timestamp,
            fact: &fact,
        });
        Some(backfill)
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}

/// Records that a feature exists.
pub const FEATURE_INSERT: &str =
    "INSERT INTO board_features (project_id, feature_key) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// Applies a winning status unless the stored one wins. Row-value
/// comparison is `(lamport, node, event)`; on PostgreSQL the two text
/// columns are `COLLATE "C"`, so strings compare bytewise as in SQLite.
pub const STATUS_UPSERT: &str = "INSERT INTO board_cards (project_id, feature_key, wp_id, lane, raw_lane, actor, updated_at, s_lamport, s_node, s_event, changed_seq)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
 ON CONFLICT (project_id, feature_key, wp_id) DO UPDATE SET
   lane = excluded.lane, raw_lane = excluded.raw_lane, actor = excluded.actor,
   updated_at = excluded.updated_at, s_lamport = excluded.s_lamport,
   s_node = excluded.s_node, s_event = excluded.s_event,
   changed_seq = CASE WHEN excluded.changed_seq > board_cards.changed_seq
                      THEN excluded.changed_seq ELSE board_cards.changed_seq END
 WHERE board_cards.s_lamport IS NULL
    OR (excluded.s_lamport, excluded.s_node, excluded.s_event)
       > (board_cards.s_lamport, board_cards.s_node, board_cards.s_event)";

/// Applies a winning `WPCreated` unless the stored one wins.
pub const CREATED_UPSERT: &str = "INSERT INTO board_cards (project_id, feature_key, wp_id, title, dependencies, c_lamport, c_node, c_event, changed_seq)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
 ON CONFLICT (project_id, feature_key, wp_id) DO UPDATE SET
   title = excluded.title, dependencies = excluded.dependencies,
   c_lamport = excluded.c_lamport, c_node = excluded.c_node, c_event = excluded.c_event,
   changed_seq = CASE WHEN excluded.changed_seq > board_cards.changed_seq
                      THEN excluded.changed_seq ELSE board_cards.changed_seq END
 WHERE board_cards.c_lamport IS NULL
    OR (excluded.c_lamport, excluded.c_node, excluded.c_event)
       > (board_cards.c_lamport, board_cards.c_node, board_cards.c_event)";

/// The card columns every read selects, in this order.
pub const CARD_COLUMNS: &str = "feature_key, wp_id, lane, raw_lane, actor, updated_at, title, dependencies, s_event, c_event, changed_seq";

/// The same SQL with SQLite's numbered placeholders (`?1`) for
/// PostgreSQL's (`$1`): the statements are written once.
pub fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec_kitty_protocol::SyncLane;

    fn status(lamport: i64, node: &str, id: &str, lane: SyncLane) -> (WinnerKey, Fact) {
        (
            WinnerKey {
                lamport,
                node_id: node.into(),
                event_id: id.into(),
            },
            Fact::Status {
                feature_slug: Some("001-x".into()),
                wp_id: "WP01".into(),
                raw_lane: lane.as_str().into(),
                lane,
                actor: None,
            },
        )
    }

    #[test]
    fn a_batch_keeps_its_greatest_status_per_card() {
        let events = [
            status(3, "a", "01A", SyncLane::Done),
            status(5, "a", "01B", SyncLane::Doing),
            status(5, "b", "01C", SyncLane::ForReview),
            status(4, "z", "01D", SyncLane::Planned),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let mut reduced = Reduced::default();
            for (seq, i) in order.iter().enumerate() {
                let (key, fact) = &events[*i];
                reduced.add(Projected {
                    project_id: 1,
                    seq: seq as i64,
                    key: key.clone(),
                    timestamp: "2026-01-01T00:00:00+00:00",
                    fact,
                });
            }
            let won = &reduced.statuses[&(1, "001-x".to_string(), "WP01".to_string())];
            assert_eq!(won.lane, "for_review", "order {order:?}");
        }
    }

    #[test]
    fn placeholders_for_sqlite() {
        assert_eq!(for_sqlite("VALUES ($1, $2)"), "VALUES (?1, ?2)");
    }
}
