//! The PostgreSQL backend, for teams that run several server instances
//! behind a load balancer on one database.
//!
//! Everything shared lives in the database: the signing key, refresh-token
//! families, log-in failure counters, users, teams and events, so two
//! instances behave as one server. Queries are checked at run time (no
//! database is needed to build). Batch inserts go through `UNNEST` in one
//! statement, sorted by event id so that concurrent transactions take row
//! locks in the same order and never deadlock each other.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use super::sqlite_board::wp_of;
use super::{
    FailureCount, IncomingEvent, IngestOutcome, NewRefresh, RotateOutcome, Sender, Store,
    StoreError, StoreResult, TeamSummary, User, UserSummary,
};
use super::{insufficient, no_team, not_member, postgres_board};
use crate::board::hub::{Advance, Hub};
use crate::board::projection::{self, Projected, Reduced};
use crate::board::{BoardRows, ProjectRef, ProjectRow, RebuildReport, StoredCard};

/// The schema, one entry per version; append, never edit a shipped entry.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE teams (
        id BIGSERIAL PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE users (
        id BIGSERIAL PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        team_id BIGINT REFERENCES teams(id),
        created_at BIGINT NOT NULL
    );
    CREATE TABLE team_members (
        team_id BIGINT NOT NULL REFERENCES teams(id),
        user_id BIGINT NOT NULL REFERENCES users(id),
        PRIMARY KEY (team_id, user_id)
    );
    CREATE TABLE refresh_tokens (
        jti TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        user_id BIGINT NOT NULL REFERENCES users(id),
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        revoked BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
    CREATE TABLE login_failures (
        key TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX login_failures_key_at ON login_failures(key, at);
    CREATE TABLE projects (
        id BIGSERIAL PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        slug TEXT,
        team_id BIGINT NOT NULL REFERENCES teams(id),
        created_at BIGINT NOT NULL
    );
    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        project_id BIGINT NOT NULL,
        team_id BIGINT NOT NULL,
        user_id BIGINT NOT NULL,
        node_id TEXT NOT NULL,
        lamport BIGINT NOT NULL,
        ts TEXT NOT NULL,
        lane TEXT,
        body TEXT NOT NULL,
        received_at BIGINT NOT NULL
    );
    CREATE TABLE server_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
", "
    ALTER TABLE projects ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE projects ADD COLUMN last_event_at TEXT;
    ALTER TABLE events ADD COLUMN pseq BIGINT;
    ALTER TABLE events ADD COLUMN wp_id TEXT;
    ALTER TABLE events ADD COLUMN feature_key TEXT;
    UPDATE events SET pseq = seq;
    UPDATE projects p SET last_seq = coalesce((SELECT max(pseq) FROM events e WHERE e.project_id = p.id), 0);
    CREATE INDEX events_feed ON events(project_id, pseq);
    CREATE INDEX events_wp ON events(project_id, wp_id, feature_key) WHERE wp_id IS NOT NULL;
    CREATE TABLE board_features (
        project_id BIGINT NOT NULL REFERENCES projects(id),
        feature_key TEXT NOT NULL,
        PRIMARY KEY (project_id, feature_key)
    );
    CREATE TABLE board_cards (
        project_id BIGINT NOT NULL REFERENCES projects(id),
        feature_key TEXT NOT NULL,
        wp_id TEXT NOT NULL,
        lane TEXT,
        raw_lane TEXT,
        actor TEXT,
        updated_at TEXT,
        s_lamport BIGINT,
        s_node TEXT COLLATE \"C\",
        s_event TEXT COLLATE \"C\",
        title TEXT,
        dependencies TEXT NOT NULL DEFAULT '[]',
        c_lamport BIGINT,
        c_node TEXT COLLATE \"C\",
        c_event TEXT COLLATE \"C\",
        changed_seq BIGINT NOT NULL,
        PRIMARY KEY (project_id, feature_key, wp_id)
    );
    CREATE INDEX board_cards_changed ON board_cards(project_id, changed_seq);
    CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users(id),
        team TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
"];

/// Serializes schema changes across instances starting at once.
const MIGRATION_LOCK: i64 = 0x5350_4b54_5359_4e43; // "SPKTSYNC"

/// How the pool connects.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long start-up keeps retrying an unreachable database.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Postgres(e.to_string())
}

fn code_of(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    code_of(e).as_deref() == Some("23505")
}

/// Deadlock or serialization failure: the transaction may simply be retried.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(code_of(e).as_deref(), Some("40P01") | Some("40001"))
}

/// Hides the password of a database URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects (retrying until `settings.connect_timeout` while the
    /// database is unreachable) and migrates.
    pub async fn open(url: &str, settings: PoolSettings) -> StoreResult<PostgresStore> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::Open {
            path: redact(url),
            reason: e.to_string(),
        })?;
        let deadline = tokio::time::Instant::now() + settings.connect_timeout;
        let mut wait = Duration::from_millis(250);
        let pool = loop {
            let attempt = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(database = %redact(url), error = %e, "database unreachable; retrying in {} ms", wait.as_millis());
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(StoreError::Open {
                        path: redact(url),
                        reason: format!(
                            "{e} (gave up after {} s; check the URL and that PostgreSQL is running)",
                            settings.connect_timeout.as_secs()
                        ),
                    });
                }
            }
        };
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations under a transaction-scoped advisory lock,
    /// so instances starting together migrate once.
    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("CREATE TABLE IF NOT EXISTS spec_kitty_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let current: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM spec_kitty_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let current = current.unwrap_or(0);
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
            sqlx::query("INSERT INTO spec_kitty_schema (version) VALUES ($1)")
                .bind(index as i64 + 1)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn team_id(tx: &mut Transaction<'_, Postgres>, slug: &str) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT id FROM teams WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("no team '{slug}'")))
}

async fn user_id(tx: &mut Transaction<'_, Postgres>, username: &str) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("no user '{username}'")))
}

const USER_BY_NAME: &str = "SELECT u.id, u.username, u.password_hash, u.disabled, t.slug FROM users u LEFT JOIN teams t ON t.id = u.team_id WHERE u.username = $1";
const USER_BY_ID: &str = "SELECT u.id, u.username, u.password_hash, u.disabled, t.slug FROM users u LEFT JOIN teams t ON t.id = u.team_id WHERE u.id = $1";

fn user_from_row(row: &sqlx::postgres::PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        disabled: row.try_get(3)?,
        team: row.try_get(4)?,
    })
}

fn lines(joined: Option<String>) -> Vec<String> {
    joined
        .map(|m| m.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn shared_signing_key(&self, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let hex: String = candidate.iter().map(|b| format!("{b:02x}")).collect();
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('jwt_hs256', $1) ON CONFLICT (name) DO NOTHING")
            .bind(&hex)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        let stored: String =
            sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'jwt_hs256'")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        let bytes = (0..stored.len())
            .step_by(2)
            .map(|i| {
                stored
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|k| k.len() >= 32)
            .ok_or_else(|| StoreError::Postgres("the stored signing key is corrupt".into()))?;
        Ok(Some(bytes))
    }

    async fn create_team(&self, slug: &str) -> StoreResult<()> {
        let result = sqlx::query("INSERT INTO teams (slug, created_at) VALUES ($1, $2)")
            .bind(slug)
            .bind(now_secs())
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "team '{slug}' already exists"
            ))),
            Err(e) => Err(db(e)),
        }
    }

    async fn list_teams(&self) -> StoreResult<Vec<TeamSummary>> {
        let rows = sqlx::query(
            "SELECT t.slug,
                    (SELECT string_agg(u.username, E'\\n' ORDER BY u.username)
                       FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = t.id),
                    (SELECT count(*) FROM projects p WHERE p.team_id = t.id)
             FROM teams t ORDER BY t.slug",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(TeamSummary {
                    slug: r.try_get(0)?,
                    members: lines(r.try_get(1)?),
                    projects: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        team: &str,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let tid = team_id(&mut tx, team).await?;
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, password_hash, team_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(tid)
        .bind(now_secs())
        .fetch_one(&mut *tx)
        .await;
        let uid = match inserted {
            Ok(uid) => uid,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "user '{username}' already exists"
                )));
            }
            Err(e) => return Err(db(e)),
        };
        sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
            .bind(tid)
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn find_user(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(USER_BY_NAME)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose().map_err(db)
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query(USER_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user_from_row).transpose().map_err(db)
    }

    async fn disable_user(&self, username: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let uid = user_id(&mut tx, username).await?;
        sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("UPDATE refresh_tokens SET revoked = TRUE WHERE user_id = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn list_users(&self) -> StoreResult<Vec<UserSummary>> {
        let rows = sqlx::query(
            "SELECT u.username, u.disabled, t.slug,
                    (SELECT string_agg(tt.slug, E'\\n' ORDER BY tt.slug)
                       FROM team_members m JOIN teams tt ON tt.id = m.team_id WHERE m.user_id = u.id)
             FROM users u LEFT JOIN teams t ON t.id = u.team_id ORDER BY u.username",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(UserSummary {
                    username: r.try_get(0)?,
                    disabled: r.try_get(1)?,
                    team: r.try_get(2)?,
                    member_of: lines(r.try_get(3)?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    async fn add_member(&self, team: &str, username: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let tid = team_id(&mut tx, team).await?;
        let uid = user_id(&mut tx, username).await?;
        let added = sqlx::query(
            "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(tid)
        .bind(uid)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if added == 0 {
            return Err(StoreError::Conflict(format!(
                "user '{username}' is already a member of team '{team}'"
            )));
        }
        sqlx::query("UPDATE users SET team_id = $1 WHERE id = $2 AND team_id IS NULL")
            .bind(tid)
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn remove_member(&self, team: &str, username: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let tid = team_id(&mut tx, team).await?;
        let uid = user_id(&mut tx, username).await?;
        let removed = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(tid)
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::NotFound(format!(
                "user '{username}' is not a member of team '{team}'"
            )));
        }
        tx.commit().await.map_err(db)
    }

    async fn is_member(&self, user_id: i64, team: &str) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 AND t.slug = $2",
        )
        .bind(user_id)
        .bind(team)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(found.is_some())
    }

    async fn insert_refresh(&self, token: NewRefresh) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.jti)
        .bind(&token.family)
        .bind(token.user_id)
        .bind(token.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        old_jti: &str,
        new: NewRefresh,
        now: i64,
    ) -> StoreResult<RotateOutcome> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // FOR UPDATE: two instances presenting the same token serialize here,
        // and the second sees it used.
        let row = sqlx::query(
            "SELECT family, used_at, revoked, expires_at FROM refresh_tokens WHERE jti = $1 FOR UPDATE",
        )
        .bind(old_jti)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let outcome = match row {
            None => RotateOutcome::Unknown,
            Some(row) => {
                let family: String = row.try_get(0).map_err(db)?;
                let used_at: Option<i64> = row.try_get(1).map_err(db)?;
                let revoked: bool = row.try_get(2).map_err(db)?;
                let expires_at: i64 = row.try_get(3).map_err(db)?;
                if used_at.is_some() {
                    sqlx::query("UPDATE refresh_tokens SET revoked = TRUE WHERE family = $1")
                        .bind(&family)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    RotateOutcome::Reused
                } else if revoked || expires_at <= now {
                    RotateOutcome::Revoked
                } else {
                    sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE jti = $2")
                        .bind(now)
                        .bind(old_jti)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    sqlx::query(
                        "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&new.jti)
                    .bind(&family)
                    .bind(new.user_id)
                    .bind(new.expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    RotateOutcome::Rotated
                }
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(outcome)
    }

    async fn login_failures(&self, keys: &[String], since: i64) -> StoreResult<Vec<FailureCount>> {
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            let row = sqlx::query(
                "SELECT count(*), coalesce(min(at), 0) FROM login_failures WHERE key = $1 AND at >= $2",
            )
            .bind(key)
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            counts.push(FailureCount {
                count: row.try_get(0).map_err(db)?,
                oldest: row.try_get(1).map_err(db)?,
            });
        }
        Ok(counts)
    }

    async fn record_login_failure(
        &self,
        keys: &[String],
        at: i64,
        prune_before: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(prune_before)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for key in keys {
            sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn ingest(
        &self,
        sender: &Sender,
        events: Vec<IncomingEvent>,
        now: i64,
    ) -> StoreResult<IngestOutcome> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ingest_once(sender, &events, now).await {
                Err(IngestFailure::Retryable(e)) if attempt < 5 => {
                    tracing::debug!(error = %e, attempt, "ingest transaction retried");
                }
                Err(IngestFailure::Retryable(e)) => return Err(db(e)),
                Err(IngestFailure::Store(e)) => return Err(e),
                Ok(outcome) => return Ok(outcome),
            }
        }
    }

    async fn event_count(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn team_project(&self, team: &str, uuid: &str) -> StoreResult<Option<ProjectRef>> {
        postgres_board::team_project(&self.pool, team, uuid)
            .await
            .map_err(db)
    }

    async fn team_projects(&self, team: &str) -> StoreResult<Vec<ProjectRow>> {
        postgres_board::team_projects(&self.pool, team)
            .await
            .map_err(db)
    }

    async fn board(&self, project: &ProjectRef) -> StoreResult<BoardRows> {
        postgres_board::board(&self.pool, project).await.map_err(db)
    }

    async fn cards_since(
        &self,
        project_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<StoredCard>> {
        postgres_board::cards_since(&self.pool, project_id, after, limit)
            .await
            .map_err(db)
    }

    async fn project_seq(&self, project_id: i64) -> StoreResult<i64> {
        postgres_board::project_seq(&self.pool, project_id)
            .await
            .map_err(db)
    }

    async fn feed(
        &self,
        project_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        postgres_board::feed(&self.pool, project_id, after, limit)
            .await
            .map_err(db)
    }

    async fn wp_history(
        &self,
        project_id: i64,
        feature_key: &str,
        wp_id: &str,
    ) -> StoreResult<Vec<String>> {
        postgres_board::wp_history(&self.pool, project_id, feature_key, wp_id)
            .await
            .map_err(db)
    }

    async fn rebuild_board(
        &self,
        project_uuid: Option<&str>,
        check: bool,
    ) -> StoreResult<RebuildReport> {
        postgres_board::rebuild(&self.pool, project_uuid, check)
            .await
            .map_err(db)
    }

    fn listen_board(&self, hub: Hub) {
        postgres_board::listen(self.pool.clone(), hub);
    }

    async fn create_web_session(
        &self,
        id_hash: &str,
        user_id: i64,
        team: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        postgres_board::create_web_session(&self.pool, id_hash, user_id, team, expires_at)
            .await
            .map_err(db)
    }

    async fn web_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(User, String)>> {
        postgres_board::web_session(&self.pool, id_hash, now)
            .await
            .map_err(db)
    }

    async fn delete_web_session(&self, id_hash: &str) -> StoreResult<()> {
        postgres_board::delete_web_session(&self.pool, id_hash)
            .await
            .map_err(db)
    }
}

enum IngestFailure {
    Retryable(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for IngestFailure {
    fn from(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
            IngestFailure::Retryable(e)
        } else {
            IngestFailure::Store(db(e))
        }
    }
}

impl PostgresStore {
    async fn ingest_once(
        &self,
        sender: &Sender,
        events: &[IncomingEvent],
        now: i64,
    ) -> Result<IngestOutcome, IngestFailure> {
        let Some(own_team) = sender.team.clone() else {
            return Ok(IngestOutcome::Forbidden(no_team(&sender.username)));
        };
        let mut tx = self.pool.begin().await?;
        let mut teams: HashMap<String, Option<i64>> = HashMap::new();
        let mut wanted: Vec<&str> = vec![own_team.as_str()];
        wanted.extend(events.iter().filter_map(|e| e.team.as_deref()));
        for slug in wanted {
            if teams.contains_key(slug) {
                continue;
            }
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT t.id FROM teams t JOIN team_members m ON m.team_id = t.id WHERE t.slug = $1 AND m.user_id = $2",
            )
            .bind(slug)
            .bind(sender.user_id)
            .fetch_optional(&mut *tx)
            .await?;
            teams.insert(slug.to_string(), found);
        }
        if teams.get(own_team.as_str()).copied().flatten().is_none() {
            return Ok(IngestOutcome::Forbidden(not_member(
                &own_team,
                &sender.username,
            )));
        }
        let mut projects: HashMap<&str, (i64, i64)> = HashMap::new();
        let mut seqs: HashMap<i64, i64> = HashMap::new();
        let mut placed = Vec::with_capacity(events.len());
        for event in events {
            let team_slug = event.team.as_deref().unwrap_or(&own_team);
            let project_name = event.project_slug.as_deref().unwrap_or(&event.project_uuid);
            let Some(tid) = teams.get(team_slug).copied().flatten() else {
                return Ok(IngestOutcome::Forbidden(insufficient(
                    team_slug,
                    project_name,
                )));
            };
            let (pid, owner) = match projects.get(event.project_uuid.as_str()) {
                Some(found) => *found,
                None => {
                    sqlx::query(
                        "INSERT INTO projects (uuid, slug, team_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (uuid) DO NOTHING",
                    )
                    .bind(&event.project_uuid)
                    .bind(&event.project_slug)
                    .bind(tid)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    // FOR UPDATE: batches for one project number their
                    // events one transaction at a time, in commit order.
                    let row = sqlx::query(
                        "SELECT id, team_id, last_seq FROM projects WHERE uuid = $1 FOR UPDATE",
                    )
                    .bind(&event.project_uuid)
                    .fetch_one(&mut *tx)
                    .await?;
                    let found: (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                    seqs.insert(found.0, row.try_get(2)?);
                    projects.insert(event.project_uuid.as_str(), found);
                    found
                }
            };
            if owner != tid {
                return Ok(IngestOutcome::Forbidden(insufficient(
                    team_slug,
                    project_name,
                )));
            }
            placed.push((pid, tid));
        }
        let numbered: Vec<i64> = placed
            .iter()
            .map(|(pid, _)| {
                let seq = seqs.entry(*pid).or_insert(0);
                *seq += 1;
                *seq
            })
            .collect();
        // First occurrence of each id in this batch, sorted by id so that
        // concurrent batches lock rows in one order.
        let mut seen = HashSet::with_capacity(events.len());
        let mut order: Vec<usize> = (0..events.len())
            .filter(|&i| seen.insert(events[i].event_id.as_str()))
            .collect();
        order.sort_by(|&a, &b| events[a].event_id.cmp(&events[b].event_id));
        let column =
            |f: &dyn Fn(usize) -> String| order.iter().map(|&i| f(i)).collect::<Vec<String>>();
        let ids = column(&|i| events[i].event_id.clone());
        let types = column(&|i| events[i].event_type.clone());
        let aggregates = column(&|i| events[i].aggregate_id.clone());
        let nodes = column(&|i| events[i].node_id.clone());
        let stamps = column(&|i| events[i].timestamp.clone());
        let bodies = column(&|i| events[i].body.clone());
        let lanes: Vec<Option<String>> = order
            .iter()
            .map(|&i| events[i].lane.map(str::to_string))
            .collect();
        let project_ids: Vec<i64> = order.iter().map(|&i| placed[i].0).collect();
        let team_ids: Vec<i64> = order.iter().map(|&i| placed[i].1).collect();
        let lamports: Vec<i64> = order.iter().map(|&i| events[i].lamport).collect();
        let pseqs: Vec<i64> = order.iter().map(|&i| numbered[i]).collect();
        let wp_ids: Vec<Option<String>> = order
            .iter()
            .map(|&i| events[i].fact.as_ref().and_then(wp_of))
            .collect();
        let feature_keys: Vec<Option<String>> = order
            .iter()
            .map(|&i| {
                events[i]
                    .fact
                    .as_ref()
                    .map(|f| projection::feature_key(f.feature_slug()))
            })
            .collect();
        let inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO events (event_id, event_type, aggregate_id, project_id, team_id, user_id, node_id, lamport, ts, lane, body, received_at, pseq, wp_id, feature_key)
             SELECT e.event_id, e.event_type, e.aggregate_id, e.project_id, e.team_id, $7, e.node_id, e.lamport, e.ts, e.lane, e.body, $12, e.pseq, e.wp_id, e.feature_key
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $13::bigint[], $14::text[], $15::text[])
                  WITH ORDINALITY AS e(event_id, event_type, aggregate_id, project_id, team_id, node_id, lamport, ts, lane, body, pseq, wp_id, feature_key, n)
             ORDER BY e.n
             ON CONFLICT (event_id) DO NOTHING
             RETURNING event_id",
        )
        .bind(&ids)
        .bind(&types)
        .bind(&aggregates)
        .bind(&project_ids)
        .bind(&team_ids)
        .bind(&nodes)
        .bind(sender.user_id)
        .bind(&lamports)
        .bind(&stamps)
        .bind(&lanes)
        .bind(&bodies)
        .bind(now)
        .bind(&pseqs)
        .bind(&wp_ids)
        .bind(&feature_keys)
        .fetch_all(&mut *tx)
        .await?;
        let mut fresh: HashSet<String> = inserted.into_iter().collect();
        let stored: Vec<bool> = events.iter().map(|e| fresh.remove(&e.event_id)).collect();
        let mut reduced = Reduced::default();
        for (i, event) in events.iter().enumerate() {
            if let (true, Some(fact)) = (stored[i], &event.fact) {
                reduced.add(Projected {
                    project_id: placed[i].0,
                    seq: numbered[i],
                    key: event.winner_key(),
                    timestamp: &event.timestamp,
                    fact,
                });
            }
        }
        postgres_board::apply(&mut tx, &reduced).await?;
        let stamp = stored
            .iter()
            .any(|s| *s)
            .then(spec_kitty_protocol::timestamp::now);
        let mut advances = Vec::with_capacity(seqs.len());
        for (project_id, seq) in seqs {
            sqlx::query(
                "UPDATE projects SET last_seq = $2, last_event_at = coalesce($3, last_event_at) WHERE id = $1",
            )
            .bind(project_id)
            .bind(seq)
            .bind(&stamp)
            .execute(&mut *tx)
            .await?;
            let advance = Advance { project_id, seq };
            postgres_board::notify(&mut tx, advance).await?;
            advances.push(advance);
        }
        tx.commit().await?;
        Ok(IngestOutcome::Stored {
            flags: stored,
            advances,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:secret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
