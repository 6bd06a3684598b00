//! The read side's storage (contract section 8): the board, the event
//! feed, rebuild, and the web sessions of the page. A supertrait of
//! [`super::Store`], so every store has it and each backend implements it
//! in its own `board.rs`.

use async_trait::async_trait;

use super::{StoreResult, User};
use crate::board::hub::Hub;
use crate::board::{BoardRows, ProjectRef, ProjectRow, RebuildReport, StoredCard};

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
