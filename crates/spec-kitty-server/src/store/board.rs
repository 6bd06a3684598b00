//! The read side's storage (contract section 8): the board, the event
//! feed, rebuild, and the web sessions of the page. A supertrait of
//! [`super::Store`], so every store has it and each backend implements it
//! in its own `board.rs`.

use async_trait::async_trait;

use std::collections::HashMap;

use spec_kitty_protocol::SyncLane;
use spec_kitty_protocol::board::Counts;

use super::{StoreResult, User};
use crate::board::hub::Hub;
use crate::board::{BoardRows, ProjectRef, ProjectRow, RebuildReport, StoredCard};

// The read side's SQL, written once with PostgreSQL's `$N` placeholders
// (SQLite takes them through `projection::for_sqlite`).

/// The columns of a [`ProjectRef`], in its order.
pub const PROJECT_COLUMNS: &str = "p.id, p.uuid, p.slug, p.last_seq";

/// A project of a team (`$1`) by uuid (`$2`).
pub const TEAM_PROJECT_SQL: &str = "SELECT p.id, p.uuid, p.slug, p.last_seq FROM projects p JOIN teams t ON t.id = p.team_id WHERE t.slug = $1 AND p.uuid = $2";

/// Every project of a team (`$1`): its [`PROJECT_COLUMNS`], the time of its
/// last event and how many features it has, by name.
pub const TEAM_PROJECTS_SQL: &str = "SELECT p.id, p.uuid, p.slug, p.last_seq, p.last_event_at,
        (SELECT count(*) FROM board_features f WHERE f.project_id = p.id)
 FROM projects p JOIN teams t ON t.id = p.team_id WHERE t.slug = $1
 ORDER BY coalesce(p.slug, p.uuid), p.uuid";

/// The cards per lane of every project of a team (`$1`), in one query.
pub const TEAM_LANE_COUNTS_SQL: &str = "SELECT c.project_id, coalesce(c.lane, 'planned'), count(*)
 FROM board_cards c JOIN projects p ON p.id = c.project_id JOIN teams t ON t.id = p.team_id
 WHERE t.slug = $1 GROUP BY 1, 2";

/// A row of [`TEAM_PROJECTS_SQL`]: the project, its last event's time, its
/// number of features.
pub type TeamProject = (ProjectRef, Option<String>, i64);

/// Joins the team's projects with their lane counts (rows of
/// [`TEAM_LANE_COUNTS_SQL`]: project id, lane, cards).
pub fn project_rows(projects: Vec<TeamProject>, lanes: Vec<(i64, String, i64)>) -> Vec<ProjectRow> {
    let mut counts: HashMap<i64, Counts> = HashMap::new();
    for (project_id, lane, n) in lanes {
        let Ok(lane) = SyncLane::from_wire(&lane) else {
            continue;
        };
        let entry = counts.entry(project_id).or_default();
        for _ in 0..n {
            entry.add(lane);
        }
    }
    projects
        .into_iter()
        .map(|(project, last_event_at, features)| ProjectRow {
            counts: counts.remove(&project.id).unwrap_or_default(),
            features: features.max(0) as u64,
            project,
            last_event_at,
        })
        .collect()
}

/// Reads of the board and web sessions.
#[async_trait]
pub trait BoardStore {
    /// A project of `team` by uuid; `None` when it does not exist there.
    async fn team_project(&self, team: &str, uuid: &str) -> StoreResult<Option<ProjectRef>>;
    /// Every project of `team`, with its lane counts.
    async fn team_projects(&self, team: &str) -> StoreResult<Vec<ProjectRow>>;
    /// A project's features and cards, read in one snapshot.
    async fn board(&self, project: &ProjectRef) -> StoreResult<BoardRows>;
    /// Cards changed after sequence `after`, oldest change first.
    async fn cards_since(
        &self,
        project_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<StoredCard>>;
    /// Whether events are stored but the board holds nothing: a database
    /// from before the board, whose board is then built once at start.
    async fn board_missing(&self) -> StoreResult<bool>;
    /// The sequence of the project's last stored event.
    async fn project_seq(&self, project_id: i64) -> StoreResult<i64>;
    /// Stored events after `after` as sent, oldest first, with their
    /// sequence numbers.
    async fn feed(
        &self,
        project_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>>;
    /// The stored events of one work package, as sent, oldest first.
    async fn wp_history(
        &self,
        project_id: i64,
        feature_key: &str,
        wp_id: &str,
    ) -> StoreResult<Vec<String>>;
    /// Recomputes the board from the stored events (one project or all);
    /// with `check`, only reports differences.
    async fn rebuild_board(
        &self,
        project_uuid: Option<&str>,
        check: bool,
    ) -> StoreResult<RebuildReport>;
    /// Starts forwarding other instances' board changes to `hub` (a no-op
    /// where this process is the only writer).
    fn listen_board(&self, hub: Hub) {
        let _ = hub;
    }

    // --- Web sessions (only a hash of each session id is stored) ---

    async fn create_web_session(
        &self,
        id_hash: &str,
        user_id: i64,
        team: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The user and team of a live session.
    async fn web_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(User, String)>>;
    async fn delete_web_session(&self, id_hash: &str) -> StoreResult<()>;
}
