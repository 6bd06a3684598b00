//! The board on PostgreSQL: the projection inside the ingest transaction,
//! the reads of the read API, rebuild, web sessions, and `LISTEN` for the
//! changes other instances make.

use std::time::Duration;

use sqlx::postgres::{PgConnection, PgListener, PgPool, PgRow};
use sqlx::{Acquire, AssertSqlSafe, FromRow, Row};

use async_trait::async_trait;

use super::PostgresStore;
use crate::board::hub::{Advance, Hub, NOTIFY_CHANNEL};
use crate::board::projection::{
    CARD_COLUMNS, CREATED_UPSERT, FEATURE_INSERT, Reduced, STATUS_UPSERT, STORED_EVENTS_SQL,
    StoredEvent, StoredEventColumns,
};
use crate::board::{
    BoardRows, CardColumns, ProjectColumns, ProjectRef, ProjectRow, RebuildReport, StoredCard,
};
use crate::store::board::{
    PROJECT_COLUMNS, TEAM_LANE_COUNTS_SQL, TEAM_PROJECT_SQL, TEAM_PROJECTS_SQL, project_rows,
};
use crate::store::sqlite::board::projection_diff;
use crate::store::{
    BoardStore, StoreError, StoreResult, User, WEB_SESSION_SQL, WebSessionColumns, web_session_of,
};

type PgResult<T> = Result<T, sqlx::Error>;

/// Applies a reduced batch to the board, inside the caller's transaction.
pub async fn apply(conn: &mut PgConnection, reduced: &Reduced) -> PgResult<()> {
    for (project_id, key) in &reduced.features {
        sqlx::query(FEATURE_INSERT)
            .bind(project_id)
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    for ((project_id, feature_key, wp_id), won) in &reduced.statuses {
        sqlx::query(STATUS_UPSERT)
            .bind(project_id)
            .bind(feature_key)
            .bind(wp_id)
            .bind(won.lane)
            .bind(&won.raw_lane)
            .bind(&won.actor)
            .bind(&won.updated_at)
            .bind(won.key.lamport)
            .bind(&won.key.node_id)
            .bind(&won.key.event_id)
            .bind(won.seq)
            .execute(&mut *conn)
            .await?;
    }
    for ((project_id, feature_key, wp_id), won) in &reduced.created {
        sqlx::query(CREATED_UPSERT)
            .bind(project_id)
            .bind(feature_key)
            .bind(wp_id)
            .bind(&won.title)
            .bind(&won.dependencies)
            .bind(won.key.lamport)
            .bind(&won.key.node_id)
            .bind(&won.key.event_id)
            .bind(won.seq)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Announces, at commit, where a project's sequence stands.
pub async fn notify(conn: &mut PgConnection, advance: Advance) -> PgResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(advance.to_payload())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn project_from_row(row: &PgRow) -> PgResult<ProjectRef> {
    Ok(ProjectColumns::from_row(row)?.into())
}

pub async fn team_project(pool: &PgPool, team: &str, uuid: &str) -> PgResult<Option<ProjectRef>> {
    let row = sqlx::query(TEAM_PROJECT_SQL)
        .bind(team)
        .bind(uuid)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(project_from_row).transpose()
}

pub async fn team_projects(pool: &PgPool, team: &str) -> PgResult<Vec<ProjectRow>> {
    // One snapshot for both reads, as on SQLite.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(TEAM_PROJECTS_SQL)
        .bind(team)
        .fetch_all(&mut *tx)
        .await?;
    let lanes = sqlx::query(TEAM_LANE_COUNTS_SQL)
        .bind(team)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let projects = rows
        .iter()
        .map(|r| Ok((project_from_row(r)?, r.try_get(4)?, r.try_get(5)?)))
        .collect::<PgResult<Vec<_>>>()?;
    let lanes = lanes
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<PgResult<Vec<_>>>()?;
    Ok(project_rows(projects, lanes))
}

fn card_from_row(row: &PgRow) -> PgResult<StoredCard> {
    Ok(CardColumns::from_row(row)?.into())
}

async fn read_cards(conn: &mut PgConnection, project_id: i64) -> PgResult<Vec<StoredCard>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS} FROM board_cards WHERE project_id = $1"
    )))
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut cards = rows
        .iter()
        .map(card_from_row)
        .collect::<PgResult<Vec<_>>>()?;
    cards.sort_by(|a, b| (&a.feature_key, &a.card.wp_id).cmp(&(&b.feature_key, &b.card.wp_id)));
    Ok(cards)
}

/// The whole board, read in one repeatable-read snapshot.
pub async fn board(pool: &PgPool, project: &ProjectRef) -> PgResult<BoardRows> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"
    )))
    .bind(project.id)
    .fetch_one(&mut *tx)
    .await?;
    let project = project_from_row(&row)?;
    let feature_keys: Vec<String> =
        sqlx::query_scalar("SELECT feature_key FROM board_features WHERE project_id = $1")
            .bind(project.id)
            .fetch_all(&mut *tx)
            .await?;
    let cards = read_cards(&mut tx, project.id).await?;
    tx.commit().await?;
    Ok(BoardRows {
        project,
        feature_keys,
        cards,
    })
}

pub async fn cards_since(
    pool: &PgPool,
    project_id: i64,
    after: i64,
    limit: usize,
) -> PgResult<Vec<StoredCard>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {CARD_COLUMNS} FROM board_cards WHERE project_id = $1 AND changed_seq > $2 ORDER BY changed_seq LIMIT $3"
    )))
    .bind(project_id)
    .bind(after)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    rows.iter().map(card_from_row).collect()
}

pub async fn project_seq(pool: &PgPool, project_id: i64) -> PgResult<i64> {
    sqlx::query_scalar("SELECT last_seq FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_one(pool)
        .await
}

pub async fn feed(
    pool: &PgPool,
    project_id: i64,
    after: i64,
    limit: u32,
) -> PgResult<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT pseq, body FROM events WHERE project_id = $1 AND pseq > $2 ORDER BY pseq LIMIT $3",
    )
    .bind(project_id)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub async fn wp_history(
    pool: &PgPool,
    project_id: i64,
    feature_key: &str,
    wp_id: &str,
) -> PgResult<Vec<String>> {
    sqlx::query_scalar(
        "SELECT body FROM events WHERE project_id = $1 AND wp_id = $2 AND feature_key = $3 ORDER BY pseq",
    )
    .bind(project_id)
    .bind(wp_id)
    .bind(feature_key)
    .fetch_all(pool)
    .await
}

/// Recomputes boards from the stored events; with `check`, writes nothing.
pub async fn rebuild(
    pool: &PgPool,
    project_uuid: Option<&str>,
    check: bool,
) -> PgResult<RebuildReport> {
    let mut tx = pool.begin().await?;
    let projects: Vec<(i64, String)> = match project_uuid {
        Some(uuid) => {
            sqlx::query_as("SELECT id, uuid FROM projects WHERE uuid = $1 ORDER BY id FOR UPDATE")
                .bind(uuid)
                .fetch_all(&mut *tx)
                .await?
        }
        None => {
            sqlx::query_as("SELECT id, uuid FROM projects ORDER BY id FOR UPDATE")
                .fetch_all(&mut *tx)
                .await?
        }
    };
    let mut report = RebuildReport {
        projects: projects.len(),
        ..RebuildReport::default()
    };
    for (project_id, uuid) in projects {
        let conn = tx.acquire().await?;
        let (reduced, events) = reduce_stored(conn, project_id, check).await?;
        report.events += events;
        let before = read_cards(conn, project_id).await?;
        sqlx::query("DELETE FROM board_cards WHERE project_id = $1")
            .bind(project_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM board_features WHERE project_id = $1")
            .bind(project_id)
            .execute(&mut *conn)
            .await?;
        apply(conn, &reduced).await?;
        let after = read_cards(conn, project_id).await?;
        report.cards += after.len();
        report
            .differences
            .extend(projection_diff(&uuid, &before, &after));
    }
    if check {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(report)
}

async fn reduce_stored(
    conn: &mut PgConnection,
    project_id: i64,
    check: bool,
) -> PgResult<(Reduced, u64)> {
    let rows = sqlx::query(STORED_EVENTS_SQL)
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut reduced = Reduced::default();
    let mut backfill = Vec::new();
    for row in &rows {
        let columns = StoredEventColumns::from_row(row)?;
        backfill.extend(reduced.add_stored(StoredEvent::new(project_id, columns)));
    }
    if !check {
        for (event_id, wp_id, feature_key) in &backfill {
            sqlx::query("UPDATE events SET wp_id = $2, feature_key = $3 WHERE event_id = $1")
                .bind(event_id)
                .bind(wp_id)
                .bind(feature_key)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok((reduced, rows.len() as u64))
}

pub async fn create_web_session(
    pool: &PgPool,
    id_hash: &str,
    user_id: i64,
    team: &str,
    expires_at: i64,
) -> PgResult<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, user_id, team, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(team)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn web_session(
    pool: &PgPool,
    id_hash: &str,
    now: i64,
) -> PgResult<Option<(User, String)>> {
    let row: Option<WebSessionColumns> = sqlx::query_as(WEB_SESSION_SQL)
        .bind(id_hash)
        .bind(now)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(web_session_of))
}

pub async fn delete_web_session(pool: &PgPool, id_hash: &str) -> PgResult<()> {
    sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Forwards `NOTIFY` from every instance to this process's hub, for as
/// long as the process runs; reconnects with back-off, and after a
/// reconnect wakes every watcher (a notice may have been missed).
pub fn listen(pool: PgPool, hub: Hub) {
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(250);
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
                        tracing::warn!(error = %e, "board: cannot LISTEN; retrying");
                    } else {
                        wait = Duration::from_millis(250);
                        hub.publish(Advance {
                            project_id: 0,
                            seq: 0,
                        });
                        loop {
                            match listener.recv().await {
                                Ok(note) => {
                                    if let Some(advance) = Advance::from_payload(note.payload()) {
                                        hub.publish(advance);
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "board: notifications interrupted; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "board: cannot connect for notifications; retrying")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    });
}

#[async_trait]
impl BoardStore for PostgresStore {
    async fn team_project(&self, team: &str, uuid: &str) -> StoreResult<Option<ProjectRef>> {
        team_project(&self.pool, team, uuid)
            .await
            .map_err(StoreError::from)
    }

    async fn team_projects(&self, team: &str) -> StoreResult<Vec<ProjectRow>> {
        team_projects(&self.pool, team)
            .await
            .map_err(StoreError::from)
    }

    async fn board(&self, project: &ProjectRef) -> StoreResult<BoardRows> {
        board(&self.pool, project).await.map_err(StoreError::from)
    }

    async fn cards_since(
        &self,
        project_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<StoredCard>> {
        cards_since(&self.pool, project_id, after, limit)
            .await
            .map_err(StoreError::from)
    }

    async fn board_missing(&self) -> StoreResult<bool> {
        Ok(
            sqlx::query_scalar(crate::store::sqlite::board::BOARD_MISSING)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn project_seq(&self, project_id: i64) -> StoreResult<i64> {
        project_seq(&self.pool, project_id)
            .await
            .map_err(StoreError::from)
    }

    async fn feed(
        &self,
        project_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        feed(&self.pool, project_id, after, limit)
            .await
            .map_err(StoreError::from)
    }

    async fn wp_history(
        &self,
        project_id: i64,
        feature_key: &str,
        wp_id: &str,
    ) -> StoreResult<Vec<String>> {
        wp_history(&self.pool, project_id, feature_key, wp_id)
            .await
            .map_err(StoreError::from)
    }

    async fn rebuild_board(
        &self,
        project_uuid: Option<&str>,
        check: bool,
    ) -> StoreResult<RebuildReport> {
        rebuild(&self.pool, project_uuid, check)
            .await
            .map_err(StoreError::from)
    }

    fn listen_board(&self, hub: Hub) {
        listen(self.pool.clone(), hub);
    }

    async fn create_web_session(
        &self,
        id_hash: &str,
        user_id: i64,
        team: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        create_web_session(&self.pool, id_hash, user_id, team, expires_at)
            .await
            .map_err(StoreError::from)
    }

    async fn web_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(User, String)>> {
        web_session(&self.pool, id_hash, now)
            .await
            .map_err(StoreError::from)
    }

    async fn delete_web_session(&self, id_hash: &str) -> StoreResult<()> {
        delete_web_session(&self.pool, id_hash)
            .await
            .map_err(StoreError::from)
    }
}
