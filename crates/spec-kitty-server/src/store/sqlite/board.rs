//! The board on SQLite: the projection inside the ingest transaction, the
//! reads of the read API, rebuild, and web sessions.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use async_trait::async_trait;

use super::SqliteStore;
use crate::board::projection::{
    Backfill, CARD_COLUMNS, CREATED_UPSERT, FEATURE_INSERT, Reduced, STATUS_UPSERT,
    STORED_EVENTS_SQL, StoredEvent, StoredEventColumns, for_sqlite,
};
use crate::board::{
    BoardRows, CardColumns, ProjectColumns, ProjectRef, ProjectRow, RebuildReport, StoredCard,
};
use crate::store::board::{
    PROJECT_COLUMNS, TEAM_LANE_COUNTS_SQL, TEAM_PROJECT_SQL, TEAM_PROJECTS_SQL, project_rows,
};
use crate::store::{
    BoardStore, StoreResult, User, WEB_SESSION_SQL, WebSessionColumns, web_session_of,
};

/// Events stored, board empty (both backends).
pub const BOARD_MISSING: &str =
    "SELECT EXISTS (SELECT 1 FROM events) AND NOT EXISTS (SELECT 1 FROM board_features)";

/// Applies a reduced batch to the board, inside the caller's transaction.
pub fn apply(tx: &Connection, reduced: &Reduced) -> rusqlite::Result<()> {
    if reduced.is_empty() {
        return Ok(());
    }
    let mut feature = tx.prepare_cached(&for_sqlite(FEATURE_INSERT))?;
    for (project_id, key) in &reduced.features {
        feature.execute(params![project_id, key])?;
    }
    let mut status = tx.prepare_cached(&for_sqlite(STATUS_UPSERT))?;
    for ((project_id, feature_key, wp_id), won) in &reduced.statuses {
        status.execute(params![
            project_id,
            feature_key,
            wp_id,
            won.lane,
            won.raw_lane,
            won.actor,
            won.updated_at,
            won.key.lamport,
            won.key.node_id,
            won.key.event_id,
            won.seq,
        ])?;
    }
    let mut created = tx.prepare_cached(&for_sqlite(CREATED_UPSERT))?;
    for ((project_id, feature_key, wp_id), won) in &reduced.created {
        created.execute(params![
            project_id,
            feature_key,
            wp_id,
            won.title,
            won.dependencies,
            won.key.lamport,
            won.key.node_id,
            won.key.event_id,
            won.seq,
        ])?;
    }
    Ok(())
}

fn project_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectRef> {
    Ok(ProjectColumns::try_from(row)?.into())
}

/// A project of `team`, by uuid.
pub fn team_project(conn: &Connection, team: &str, uuid: &str) -> StoreResult<Option<ProjectRef>> {
    Ok(conn
        .prepare_cached(&for_sqlite(TEAM_PROJECT_SQL))?
        .query_row(params![team, uuid], project_from_row)
        .optional()?)
}

/// Every project of `team`, by name.
pub fn team_projects(conn: &Connection, team: &str) -> StoreResult<Vec<ProjectRow>> {
    let tx = conn.unchecked_transaction()?;
    let projects = tx
        .prepare_cached(&for_sqlite(TEAM_PROJECTS_SQL))?
        .query_map([team], |r| Ok((project_from_row(r)?, r.get(4)?, r.get(5)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let lanes = tx
        .prepare_cached(&for_sqlite(TEAM_LANE_COUNTS_SQL))?
        .query_map([team], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    tx.finish()?;
    Ok(project_rows(projects, lanes))
}

fn card_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCard> {
    CardColumns::try_from(row).map(StoredCard::from)
}

/// The whole board of a project, read in one transaction.
pub fn board(conn: &Connection, project: &ProjectRef) -> StoreResult<BoardRows> {
    let tx = conn.unchecked_transaction()?;
    let project = tx
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = ?1"
        ))?
        .query_row([project.id], project_from_row)?;
    let feature_keys = tx
        .prepare_cached("SELECT feature_key FROM board_features WHERE project_id = ?1")?
        .query_map([project.id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let cards = tx
        .prepare_cached(&format!(
            "SELECT {CARD_COLUMNS} FROM board_cards WHERE project_id = ?1"
        ))?
        .query_map([project.id], card_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    tx.finish()?;
    Ok(BoardRows {
        project,
        feature_keys,
        cards,
    })
}

/// Cards changed after `after`, oldest change first.
pub fn cards_since(
    conn: &Connection,
    project_id: i64,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<StoredCard>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CARD_COLUMNS} FROM board_cards WHERE project_id = ?1 AND changed_seq > ?2 ORDER BY changed_seq LIMIT ?3"
        ))?
        .query_map(params![project_id, after, limit as i64], card_from_row)?
        .collect::<Result<Vec<_>, _>>()?)
}

pub fn project_seq(conn: &Connection, project_id: i64) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached("SELECT last_seq FROM projects WHERE id = ?1")?
        .query_row([project_id], |r| r.get(0))?)
}

/// Stored events after `after`, oldest first, with their sequence numbers.
pub fn feed(
    conn: &Connection,
    project_id: i64,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<(i64, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT pseq, body FROM events WHERE project_id = ?1 AND pseq > ?2 ORDER BY pseq LIMIT ?3",
        )?
        .query_map(params![project_id, after, limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The stored events of one work package, as sent.
pub fn wp_history(
    conn: &Connection,
    project_id: i64,
    feature_key: &str,
    wp_id: &str,
) -> StoreResult<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT body FROM events WHERE project_id = ?1 AND wp_id = ?2 AND feature_key = ?3 ORDER BY pseq",
        )?
        .query_map(params![project_id, wp_id, feature_key], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?)
}

/// Recomputes the board of one project (or all) from its events alone.
/// With `check`, reports differences and writes nothing.
pub fn rebuild(
    conn: &mut Connection,
    project_uuid: Option<&str>,
    check: bool,
) -> StoreResult<RebuildReport> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let projects: Vec<(i64, String)> = match project_uuid {
        Some(uuid) => tx
            .prepare("SELECT id, uuid FROM projects WHERE uuid = ?1")?
            .query_map([uuid], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
        None => tx
            .prepare("SELECT id, uuid FROM projects ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
    };
    let mut report = RebuildReport {
        projects: projects.len(),
        ..RebuildReport::default()
    };
    for (project_id, uuid) in projects {
        let (reduced, events, columns) = reduce_stored(&tx, project_id)?;
        report.events += events;
        if !check {
            let mut backfill = tx.prepare_cached(
                "UPDATE events SET wp_id = ?2, feature_key = ?3 WHERE event_id = ?1",
            )?;
            for (event_id, wp_id, feature_key) in &columns {
                backfill.execute(params![event_id, wp_id, feature_key])?;
            }
        }
        let before = read_cards(&tx, project_id)?;
        tx.execute(
            "DELETE FROM board_cards WHERE project_id = ?1",
            [project_id],
        )?;
        tx.execute(
            "DELETE FROM board_features WHERE project_id = ?1",
            [project_id],
        )?;
        apply(&tx, &reduced)?;
        let after = read_cards(&tx, project_id)?;
        report.cards += after.len();
        report
            .differences
            .extend(projection_diff(&uuid, &before, &after));
    }
    if check {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(report)
}

/// Every stored event of a project through the projection.
fn reduce_stored(
    tx: &Transaction<'_>,
    project_id: i64,
) -> StoreResult<(Reduced, u64, Vec<Backfill>)> {
    let mut stmt = tx.prepare(&for_sqlite(STORED_EVENTS_SQL))?;
    let mut rows = stmt.query([project_id])?;
    let mut reduced = Reduced::default();
    let mut count = 0u64;
    let mut columns = Vec::new();
    while let Some(row) = rows.next()? {
        count += 1;
        let event = StoredEvent::new(project_id, StoredEventColumns::try_from(row)?);
        columns.extend(reduced.add_stored(event));
    }
    Ok((reduced, count, columns))
}

fn read_cards(tx: &Transaction<'_>, project_id: i64) -> StoreResult<Vec<StoredCard>> {
    let mut cards = tx
        .prepare_cached(&format!(
            "SELECT {CARD_COLUMNS} FROM board_cards WHERE project_id = ?1"
        ))?
        .query_map([project_id], card_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    cards.sort_by(|a, b| (&a.feature_key, &a.card.wp_id).cmp(&(&b.feature_key, &b.card.wp_id)));
    Ok(cards)
}

/// Human lines for the cards that differ between two sorted card lists.
pub fn projection_diff(uuid: &str, before: &[StoredCard], after: &[StoredCard]) -> Vec<String> {
    let name = |c: &StoredCard| {
        let feature = if c.feature_key.is_empty() {
            "(no feature)"
        } else {
            &c.feature_key
        };
        format!("{uuid} {feature}/{}", c.card.wp_id)
    };
    let mut out = Vec::new();
    for card in before {
        match after
            .iter()
            .find(|a| a.feature_key == card.feature_key && a.card.wp_id == card.card.wp_id)
        {
            None => out.push(format!("{}: stored but not in the events", name(card))),
            Some(other) if other != card => out.push(format!(
                "{}: stored lane {} (event {}), recomputed lane {} (event {})",
                name(card),
                card.card.lane,
                card.card.last_event_id.as_deref().unwrap_or("-"),
                other.card.lane,
                other.card.last_event_id.as_deref().unwrap_or("-"),
            )),
            Some(_) => {}
        }
    }
    for card in after {
        if !before
            .iter()
            .any(|b| b.feature_key == card.feature_key && b.card.wp_id == card.card.wp_id)
        {
            out.push(format!("{}: missing from the stored board", name(card)));
        }
    }
    out
}

/// Stores a web session (only a hash of its id).
pub fn create_web_session(
    conn: &Connection,
    id_hash: &str,
    user_id: i64,
    team: &str,
    expires_at: i64,
) -> StoreResult<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "INSERT INTO web_sessions (id_hash, user_id, team, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id_hash, user_id, team, now, expires_at],
    )?;
    Ok(())
}

/// The user and team of a live session.
pub fn web_session(
    conn: &Connection,
    id_hash: &str,
    now: i64,
) -> StoreResult<Option<(User, String)>> {
    let found = conn
        .prepare_cached(&for_sqlite(WEB_SESSION_SQL))?
        .query_row(params![id_hash, now], |r| WebSessionColumns::try_from(r))
        .optional()?;
    Ok(found.map(web_session_of))
}

pub fn delete_web_session(conn: &Connection, id_hash: &str) -> StoreResult<()> {
    conn.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

#[async_trait]
impl BoardStore for SqliteStore {
    async fn team_project(&self, team: &str, uuid: &str) -> StoreResult<Option<ProjectRef>> {
        let (team, uuid) = (team.to_string(), uuid.to_string());
        self.read(move |conn| team_project(conn, &team, &uuid))
            .await
    }

    async fn team_projects(&self, team: &str) -> StoreResult<Vec<ProjectRow>> {
        let team = team.to_string();
        self.read(move |conn| team_projects(conn, &team)).await
    }

    async fn board(&self, project: &ProjectRef) -> StoreResult<BoardRows> {
        let project = project.clone();
        self.read(move |conn| board(conn, &project)).await
    }

    async fn cards_since(
        &self,
        project_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<StoredCard>> {
        self.read(move |conn| cards_since(conn, project_id, after, limit))
            .await
    }

    async fn project_seq(&self, project_id: i64) -> StoreResult<i64> {
        self.read(move |conn| project_seq(conn, project_id)).await
    }

    async fn board_missing(&self) -> StoreResult<bool> {
        self.read(|conn| Ok(conn.query_row(BOARD_MISSING, [], |r| r.get(0))?))
            .await
    }

    async fn feed(
        &self,
        project_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        self.read(move |conn| feed(conn, project_id, after, limit))
            .await
    }

    async fn wp_history(
        &self,
        project_id: i64,
        feature_key: &str,
        wp_id: &str,
    ) -> StoreResult<Vec<String>> {
        let (feature_key, wp_id) = (feature_key.to_string(), wp_id.to_string());
        self.read(move |conn| wp_history(conn, project_id, &feature_key, &wp_id))
            .await
    }

    async fn rebuild_board(
        &self,
        project_uuid: Option<&str>,
        check: bool,
    ) -> StoreResult<RebuildReport> {
        let project_uuid = project_uuid.map(str::to_string);
        self.write(move |conn| rebuild(conn, project_uuid.as_deref(), check))
            .await
    }

    async fn create_web_session(
        &self,
        id_hash: &str,
        user_id: i64,
        team: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (id_hash, team) = (id_hash.to_string(), team.to_string());
        self.write(move |conn| create_web_session(conn, &id_hash, user_id, &team, expires_at))
            .await
    }

    async fn web_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(User, String)>> {
        let id_hash = id_hash.to_string();
        self.read(move |conn| web_session(conn, &id_hash, now))
            .await
    }

    async fn delete_web_session(&self, id_hash: &str) -> StoreResult<()> {
        let id_hash = id_hash.to_string();
        self.write(move |conn| delete_web_session(conn, &id_hash))
            .await
    }
}
