//! The SQLite side of the ingest rules ([`crate::ingest::rules`]).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{INSERT_EVENT_SQL, board};
use crate::board::hub::Advance;
use crate::board::projection::Reduced;
use crate::ingest::rules::{self, IngestTx, Placement};
use crate::store::{IncomingEvent, IngestOutcome, Sender, StoreError, StoreResult};

/// Runs the ingest rules in one immediate transaction on the writer.
pub(super) fn ingest_blocking(
    conn: &mut Connection,
    sender: &Sender,
    events: &[IncomingEvent],
    now: i64,
) -> StoreResult<IngestOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcome = run_ready(rules::apply(&mut SqliteIngest(&tx), sender, events, now))??;
    if matches!(outcome, IngestOutcome::Stored { .. }) {
        tx.commit()?;
    }
    Ok(outcome)
}

/// Drives a future that never waits, on the current thread. The SQLite
/// side of [`IngestTx`] does all its work synchronously, so the rules'
/// future is ready on its first poll; anything else is a bug, reported
/// as an error rather than a hang.
fn run_ready<F: std::future::Future>(future: F) -> StoreResult<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err(StoreError::Task(
            "the SQLite ingest waited on something; it must run synchronously".into(),
        )),
    }
}

/// The ingest lookups and inserts over an open SQLite transaction.
struct SqliteIngest<'a>(&'a Connection);

impl IngestTx for SqliteIngest<'_> {
    type Error = StoreError;

    async fn member_team_id(&mut self, slug: &str, user_id: i64) -> StoreResult<Option<i64>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT t.id FROM teams t JOIN team_members m ON m.team_id = t.id
                 WHERE t.slug = ?1 AND m.user_id = ?2",
            )?
            .query_row(params![slug, user_id], |r| r.get(0))
            .optional()?)
    }

    async fn place_project(
        &mut self,
        uuid: &str,
        slug: Option<&str>,
        team_id: i64,
        now: i64,
    ) -> StoreResult<(i64, i64)> {
        // The writer's immediate transaction already excludes every other
        // writer, so the project needs no lock of its own here.
        self.0
            .prepare_cached(
                "INSERT INTO projects (uuid, slug, team_id, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(team_id, uuid) DO NOTHING",
            )?
            .execute(params![uuid, slug, team_id, now])?;
        Ok(self
            .0
            .prepare_cached("SELECT id, last_seq FROM projects WHERE team_id = ?1 AND uuid = ?2")?
            .query_row(params![team_id, uuid], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    async fn insert_events(
        &mut self,
        sender: &Sender,
        events: &[IncomingEvent],
        placed: &[Placement],
        now: i64,
    ) -> StoreResult<Vec<bool>> {
        let mut insert = self.0.prepare_cached(INSERT_EVENT_SQL)?;
        let mut stored = Vec::with_capacity(events.len());
        for (event, place) in events.iter().zip(placed) {
            let (wp_id, feature_key) = event.board_columns();
            let changed = insert.execute(params![
                event.event_id,
                event.event_type,
                event.aggregate_id,
                place.project_id,
                place.team_id,
                sender.user_id,
                event.node_id,
                event.lamport,
                event.timestamp,
                event.lane,
                event.body,
                now,
                place.seq,
                wp_id,
                feature_key,
            ])?;
            stored.push(changed == 1);
        }
        Ok(stored)
    }

    async fn apply_projection(&mut self, reduced: &Reduced) -> StoreResult<()> {
        Ok(board::apply(self.0, reduced)?)
    }

    async fn advance_projects(&mut self, advances: &[Advance], stamp: &str) -> StoreResult<()> {
        let mut bump = self.0.prepare_cached(
            "UPDATE projects SET last_seq = ?2, last_event_at = ?3 WHERE id = ?1",
        )?;
        for advance in advances {
            bump.execute(params![advance.project_id, advance.seq, stamp])?;
        }
        Ok(())
    }
}
