//! The PostgreSQL side of the ingest rules ([`crate::ingest::rules`]).

use std::collections::HashSet;

use sqlx::{Postgres, Row, Transaction};

use super::{PostgresStore, board, is_retryable};
use crate::board::hub::Advance;
use crate::board::projection::Reduced;
use crate::ingest::rules::{self, IngestTx, Placement};
use crate::store::{IncomingEvent, IngestOutcome, Sender, StoreError};

pub(super) enum IngestFailure {
    Retryable(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for IngestFailure {
    fn from(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
            IngestFailure::Retryable(e)
        } else {
            IngestFailure::Store(e.into())
        }
    }
}

impl PostgresStore {
    /// One attempt at a batch: the ingest rules in one transaction.
    pub(super) async fn ingest_once(
        &self,
        sender: &Sender,
        events: &[IncomingEvent],
        now: i64,
    ) -> Result<IngestOutcome, IngestFailure> {
        let mut tx = PgIngest(self.pool.begin().await?);
        let outcome = rules::apply(&mut tx, sender, events, now).await?;
        if matches!(outcome, IngestOutcome::Stored { .. }) {
            tx.0.commit().await?;
        }
        Ok(outcome)
    }
}

/// The ingest lookups and inserts over an open PostgreSQL transaction.
struct PgIngest(Transaction<'static, Postgres>);

impl IngestTx for PgIngest {
    type Error = IngestFailure;

    async fn member_team_id(
        &mut self,
        slug: &str,
        user_id: i64,
    ) -> Result<Option<i64>, IngestFailure> {
        Ok(sqlx::query_scalar(
            "SELECT t.id FROM teams t JOIN team_members m ON m.team_id = t.id WHERE t.slug = $1 AND m.user_id = $2",
        )
        .bind(slug)
        .bind(user_id)
        .fetch_optional(&mut *self.0)
        .await?)
    }

    async fn place_project(
        &mut self,
        uuid: &str,
        slug: Option<&str>,
        team_id: i64,
        now: i64,
    ) -> Result<(i64, i64), IngestFailure> {
        sqlx::query(
            "INSERT INTO projects (uuid, slug, team_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, uuid) DO NOTHING",
        )
        .bind(uuid)
        .bind(slug)
        .bind(team_id)
        .bind(now)
        .execute(&mut *self.0)
        .await?;
        // FOR UPDATE: batches for one project number their events one
        // transaction at a time, so numbers follow commits on every instance.
        let row = sqlx::query(
            "SELECT id, last_seq FROM projects WHERE team_id = $1 AND uuid = $2 FOR UPDATE",
        )
        .bind(team_id)
        .bind(uuid)
        .fetch_one(&mut *self.0)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// One `UNNEST` statement over the batch's first occurrence of each id,
    /// sorted by id so that concurrent batches lock rows in one order and
    /// never deadlock each other.
    async fn insert_events(
        &mut self,
        sender: &Sender,
        events: &[IncomingEvent],
        placed: &[Placement],
        now: i64,
    ) -> Result<Vec<bool>, IngestFailure> {
        let mut seen = HashSet::with_capacity(events.len());
        let mut order: Vec<usize> = (0..events.len())
            .filter(|&i| seen.insert(events[i].event_id.as_str()))
            .collect();
        order.sort_by(|&a, &b| events[a].event_id.cmp(&events[b].event_id));
        let columns = EventColumns::new(events, placed, &order);
        let inserted: Vec<String> = sqlx::query_scalar(INSERT_EVENTS_SQL)
            .bind(&columns.ids)
            .bind(&columns.types)
            .bind(&columns.aggregates)
            .bind(&columns.project_ids)
            .bind(&columns.team_ids)
            .bind(&columns.nodes)
            .bind(sender.user_id)
            .bind(&columns.lamports)
            .bind(&columns.stamps)
            .bind(&columns.lanes)
            .bind(&columns.bodies)
            .bind(now)
            .bind(&columns.seqs)
            .bind(&columns.wp_ids)
            .bind(&columns.feature_keys)
            .fetch_all(&mut *self.0)
            .await?;
        let mut fresh: HashSet<String> = inserted.into_iter().collect();
        Ok(events.iter().map(|e| fresh.remove(&e.event_id)).collect())
    }

    async fn apply_projection(&mut self, reduced: &Reduced) -> Result<(), IngestFailure> {
        Ok(board::apply(&mut self.0, reduced).await?)
    }

    async fn advance_projects(
        &mut self,
        advances: &[Advance],
        stamp: &str,
    ) -> Result<(), IngestFailure> {
        for advance in advances {
            sqlx::query("UPDATE projects SET last_seq = $2, last_event_at = $3 WHERE id = $1")
                .bind(advance.project_id)
                .bind(advance.seq)
                .bind(stamp)
                .execute(&mut *self.0)
                .await?;
            board::notify(&mut self.0, *advance).await?;
        }
        Ok(())
    }
}

/// The batch insert: one row per element of the bound arrays, in order.
const INSERT_EVENTS_SQL: &str = "INSERT INTO events (event_id, event_type, aggregate_id, project_id, team_id, user_id, node_id, lamport, ts, lane, body, received_at, pseq, wp_id, feature_key)
     SELECT e.event_id, e.event_type, e.aggregate_id, e.project_id, e.team_id, $7, e.node_id, e.lamport, e.ts, e.lane, e.body, $12, e.pseq, e.wp_id, e.feature_key
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $13::bigint[], $14::text[], $15::text[])
          WITH ORDINALITY AS e(event_id, event_type, aggregate_id, project_id, team_id, node_id, lamport, ts, lane, body, pseq, wp_id, feature_key, n)
     ORDER BY e.n
     ON CONFLICT (event_id) DO NOTHING
     RETURNING event_id";

/// The events picked by `order`, one array per column, for `UNNEST`.
struct EventColumns {
    ids: Vec<String>,
    types: Vec<String>,
    aggregates: Vec<String>,
    nodes: Vec<String>,
    stamps: Vec<String>,
    bodies: Vec<String>,
    lanes: Vec<Option<String>>,
    project_ids: Vec<i64>,
    team_ids: Vec<i64>,
    lamports: Vec<i64>,
    seqs: Vec<i64>,
    wp_ids: Vec<Option<String>>,
    feature_keys: Vec<Option<String>>,
}

impl EventColumns {
    fn new(events: &[IncomingEvent], placed: &[Placement], order: &[usize]) -> EventColumns {
        let (wp_ids, feature_keys) = order.iter().map(|&i| events[i].board_columns()).unzip();
        let text = |f: &dyn Fn(&IncomingEvent) -> &str| {
            order
                .iter()
                .map(|&i| f(&events[i]).to_string())
                .collect::<Vec<String>>()
        };
        EventColumns {
            ids: text(&|e| &e.event_id),
            types: text(&|e| &e.event_type),
            aggregates: text(&|e| &e.aggregate_id),
            nodes: text(&|e| &e.node_id),
            stamps: text(&|e| &e.timestamp),
            bodies: text(&|e| &e.body),
            lanes: order
                .iter()
                .map(|&i| events[i].lane.map(str::to_string))
                .collect(),
            project_ids: order.iter().map(|&i| placed[i].project_id).collect(),
            team_ids: order.iter().map(|&i| placed[i].team_id).collect(),
            lamports: order.iter().map(|&i| events[i].lamport).collect(),
            seqs: order.iter().map(|&i| placed[i].seq).collect(),
            wp_ids,
            feature_keys,
        }
    }
}
