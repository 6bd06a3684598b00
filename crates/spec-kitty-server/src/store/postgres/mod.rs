//! The PostgreSQL backend, for teams that run several server instances
//! behind a load balancer on one database.
//!
//! Everything shared lives in the database: the signing key, refresh-token
//! families, log-in failure counters, users, teams and events, so two
//! instances behave as one server. Queries are checked at run time (no
//! database is needed to build). Batch inserts go through `UNNEST` in one
//! statement, sorted by event id so that concurrent transactions take row
//! locks in the same order and never deadlock each other.

pub mod board;
mod connect;
mod device;
mod ingest;
mod login;
mod schema;
mod sessions;
mod tokens;

pub use connect::{PoolSettings, redact};

use ingest::IngestFailure;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};

use super::{
    END_USER_SESSIONS_SQL, IncomingEvent, IngestOutcome, NewRefresh, PoolUse, Reservation,
    RotateOutcome, Sender, Store, StoreError, StoreResult, TeamSummary, ThrottleKey, USER_SELECT,
    User, UserChange, UserColumns, UserSummary, fold_username,
};
use crate::auth::signing_key;
use crate::clock::now_secs;

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
pub(super) fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(code_of(e).as_deref(), Some("40P01") | Some("40001"))
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

async fn team_id(tx: &mut Transaction<'_, Postgres>, slug: &str) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT id FROM teams WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no team '{slug}'")))
}

async fn end_user_sessions(tx: &mut Transaction<'_, Postgres>, uid: i64) -> StoreResult<()> {
    for sql in END_USER_SESSIONS_SQL {
        sqlx::query(sql).bind(uid).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn user_id(tx: &mut Transaction<'_, Postgres>, username: &str) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(fold_username(username))
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no user '{username}'")))
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

    fn pool_use(&self) -> PoolUse {
        let open = self.pool.size() as usize;
        let idle = self.pool.num_idle();
        PoolUse {
            in_use: open.saturating_sub(idle),
            idle,
            max: self.pool.options().get_max_connections() as usize,
        }
    }

    async fn shared_signing_key(&self, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('jwt_hs256', $1) ON CONFLICT (name) DO NOTHING")
            .bind(signing_key::encode_key(candidate))
            .execute(&self.pool)
            .await?;
        let stored: String =
            sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'jwt_hs256'")
                .fetch_one(&self.pool)
                .await?;
        let bytes = signing_key::decode_key(&stored).ok_or(StoreError::CorruptSigningKey)?;
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
            Err(e) => Err(e.into()),
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
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TeamSummary {
                    slug: r.try_get(0)?,
                    members: lines(r.try_get(1)?),
                    projects: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        team: &str,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let tid = team_id(&mut tx, team).await?;
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, password_hash, team_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(fold_username(username))
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
            Err(e) => return Err(e.into()),
        };
        sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
            .bind(tid)
            .bind(uid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn find_user(&self, username: &str) -> StoreResult<Option<User>> {
        let sql = format!("{USER_SELECT} WHERE u.username = $1");
        let row: Option<UserColumns> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(fold_username(username))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(User::from))
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = format!("{USER_SELECT} WHERE u.id = $1");
        let row: Option<UserColumns> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(User::from))
    }

    async fn change_user(&self, username: &str, change: UserChange<'_>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let uid = user_id(&mut tx, username).await?;
        let mut update = sqlx::query(change.sql()).bind(uid);
        if let Some(value) = change.value() {
            update = update.bind(value);
        }
        update.execute(&mut *tx).await?;
        if change.ends_sessions() {
            end_user_sessions(&mut tx, uid).await?;
        }
        tx.commit().await.map_err(StoreError::from)
    }

    async fn remove_user(&self, username: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let uid = user_id(&mut tx, username).await?;
        for sql in [
            "DELETE FROM refresh_tokens WHERE user_id = $1",
            super::tokens::DELETE_USER_SQL,
            super::device::DELETE_USER_SQL,
            super::sessions::DELETE_USER_SQL,
            "DELETE FROM web_sessions WHERE user_id = $1",
            "DELETE FROM team_members WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            sqlx::query(sql).bind(uid).execute(&mut *tx).await?;
        }
        tx.commit().await.map_err(StoreError::from)
    }

    async fn remove_team(&self, slug: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let tid = team_id(&mut tx, slug).await?;
        // Locks the team's row so no batch registers a project meanwhile.
        sqlx::query("SELECT id FROM teams WHERE id = $1 FOR UPDATE")
            .bind(tid)
            .execute(&mut *tx)
            .await?;
        let projects: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE team_id = $1")
            .bind(tid)
            .fetch_one(&mut *tx)
            .await?;
        if projects > 0 {
            return Err(StoreError::Conflict(format!(
                "team '{slug}' has {projects} project(s) on the board; a team with events cannot be removed (remove its members instead)"
            )));
        }
        sqlx::query("DELETE FROM team_members WHERE team_id = $1")
            .bind(tid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE users SET team_id = (SELECT min(m.team_id) FROM team_members m WHERE m.user_id = users.id)
             WHERE team_id = $1",
        )
        .bind(tid)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM web_sessions WHERE team = $1")
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM teams WHERE id = $1")
            .bind(tid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(StoreError::from)
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
        ?;
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
            .map_err(StoreError::from)
    }

    async fn add_member(&self, team: &str, username: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let tid = team_id(&mut tx, team).await?;
        let uid = user_id(&mut tx, username).await?;
        let added = sqlx::query(
            "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(tid)
        .bind(uid)
        .execute(&mut *tx)
        .await?
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
            .await?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn remove_member(&self, team: &str, username: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let tid = team_id(&mut tx, team).await?;
        let uid = user_id(&mut tx, username).await?;
        let removed = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(tid)
            .bind(uid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::NotFound(format!(
                "user '{username}' is not a member of team '{team}'"
            )));
        }
        // Their own team must be one they belong to, or log-in would keep
        // announcing a team that refuses their events.
        sqlx::query(
            "UPDATE users SET team_id = (SELECT min(m.team_id) FROM team_members m WHERE m.user_id = users.id)
             WHERE id = $1 AND team_id = $2",
        )
        .bind(uid)
        .bind(tid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(StoreError::from)
    }

    async fn is_member(&self, user_id: i64, team: &str) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 AND t.slug = $2",
        )
        .bind(user_id)
        .bind(team)
        .fetch_optional(&self.pool)
        .await
        ?;
        Ok(found.is_some())
    }

    async fn insert_refresh(&self, token: NewRefresh) -> StoreResult<()> {
        login::insert_refresh(&self.pool, token).await
    }

    async fn rotate_refresh(
        &self,
        old_jti: &str,
        new: NewRefresh,
        now: i64,
        grace: i64,
    ) -> StoreResult<RotateOutcome> {
        login::rotate_refresh(&self.pool, old_jti, new, now, grace).await
    }

    async fn revoke_refresh_family(&self, family: &str) -> StoreResult<()> {
        login::revoke_refresh_family(&self.pool, family).await
    }

    async fn reserve_login_attempt(
        &self,
        keys: &[ThrottleKey],
        now: i64,
        window: i64,
    ) -> StoreResult<Reservation> {
        login::reserve_login_attempt(&self.pool, keys, now, window).await
    }

    async fn clear_user_login_failures(&self, username: &str) -> StoreResult<()> {
        login::clear_user_login_failures(&self.pool, username).await
    }

    async fn release_login_attempt(
        &self,
        keys: &[String],
        at: i64,
        clear: Option<&str>,
    ) -> StoreResult<()> {
        login::release_login_attempt(&self.pool, keys, at, clear).await
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
                Err(IngestFailure::Retryable(e)) => return Err(e.into()),
                Err(IngestFailure::Store(e)) => return Err(e),
                Ok(outcome) => return Ok(outcome),
            }
        }
    }

    async fn event_count(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from)
    }
}
