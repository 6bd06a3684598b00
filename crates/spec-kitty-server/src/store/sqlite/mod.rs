//! The embedded SQLite backend.
//!
//! One writer connection (behind a mutex) takes every write, so writes never
//! fight over SQLite's single write lock inside this process; readers come
//! from a bounded pool ([`MAX_READERS`] handles at most, idle ones closed
//! after [`READER_IDLE`]), so a burst of requests can never open a handle
//! (and three file descriptors) per request. Admin commands run in other processes against the same
//! file: WAL mode and a busy timeout let them work while the server runs.

pub mod backup;
pub mod board;
pub mod checkpoint;
mod connection;
mod device;
mod ingest;
mod login;
mod pool;
mod schema;
mod sessions;
mod tokens;

pub use connection::{connect, path_from_url};
pub use pool::{MAX_READERS, READER_IDLE, SqliteStore};
pub use schema::migrate;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    END_USER_SESSIONS_SQL, IncomingEvent, IngestOutcome, NewRefresh, PoolUse, Reservation,
    RotateOutcome, Sender, Store, StoreError, StoreResult, TeamSummary, ThrottleKey, USER_SELECT,
    User, UserChange, UserColumns, UserSummary, fold_username,
};
use crate::board::projection::for_sqlite;
use crate::clock::now_secs;

/// The statement that stores one event; the ingest benchmark's raw baseline
/// runs the very same statement.
pub const INSERT_EVENT_SQL: &str = "INSERT INTO events (event_id, event_type, aggregate_id, project_id, team_id, user_id, node_id, lamport, ts, lane, body, received_at, pseq, wp_id, feature_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT(event_id) DO NOTHING";

fn end_user_sessions(conn: &Connection, uid: i64) -> StoreResult<()> {
    for sql in END_USER_SESSIONS_SQL {
        conn.execute(&for_sqlite(sql), [uid])?;
    }
    Ok(())
}

fn team_id(conn: &Connection, slug: &str) -> StoreResult<i64> {
    conn.query_row("SELECT id FROM teams WHERE slug = ?1", [slug], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no team '{slug}'")))
}

fn user_id(conn: &Connection, username: &str) -> StoreResult<i64> {
    conn.query_row(
        "SELECT id FROM users WHERE username = ?1",
        [fold_username(username)],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no user '{username}'")))
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    UserColumns::try_from(row).map(User::from)
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pool_use(&self) -> PoolUse {
        self.reader_use()
    }

    async fn create_team(&self, slug: &str) -> StoreResult<()> {
        let slug = slug.to_string();
        self.write(move |conn| {
            match conn.execute(
                "INSERT INTO teams (slug, created_at) VALUES (?1, ?2)",
                params![slug, now_secs()],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "team '{slug}' already exists"
                ))),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn list_teams(&self) -> StoreResult<Vec<TeamSummary>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT t.slug,
                        (SELECT group_concat(u.username, char(10)) FROM
                            (SELECT u.username FROM team_members m JOIN users u ON u.id = m.user_id
                             WHERE m.team_id = t.id ORDER BY u.username) u),
                        (SELECT count(*) FROM projects p WHERE p.team_id = t.id)
                 FROM teams t ORDER BY t.slug",
            )?;
            let rows = stmt.query_map([], |r| {
                let members: Option<String> = r.get(1)?;
                Ok(TeamSummary {
                    slug: r.get(0)?,
                    members: members
                        .map(|m| m.lines().map(str::to_string).collect())
                        .unwrap_or_default(),
                    projects: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        team: &str,
    ) -> StoreResult<()> {
        let (username, hash, team) = (
            fold_username(username),
            password_hash.to_string(),
            team.to_string(),
        );
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let team_id = team_id(&tx, &team)?;
            let inserted = tx.execute(
                "INSERT INTO users (username, password_hash, team_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![username, hash, team_id, now_secs()],
            );
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!("user '{username}' already exists")));
                }
                Err(e) => return Err(e.into()),
            }
            let uid = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO team_members (team_id, user_id) VALUES (?1, ?2)",
                params![team_id, uid],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn find_user(&self, username: &str) -> StoreResult<Option<User>> {
        let username = fold_username(username);
        self.read(move |conn| {
            let sql = format!("{USER_SELECT} WHERE u.username = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([username], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        self.read(move |conn| {
            let sql = format!("{USER_SELECT} WHERE u.id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([id], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn change_user(&self, username: &str, change: UserChange<'_>) -> StoreResult<()> {
        let (username, sql, value) = (
            username.to_string(),
            for_sqlite(change.sql()),
            change.value(),
        );
        let ends_sessions = change.ends_sessions();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let uid = user_id(&tx, &username)?;
            match &value {
                Some(value) => tx.execute(&sql, params![uid, value])?,
                None => tx.execute(&sql, [uid])?,
            };
            if ends_sessions {
                end_user_sessions(&tx, uid)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_user(&self, username: &str) -> StoreResult<()> {
        let username = username.to_string();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let uid = user_id(&tx, &username)?;
            tx.execute("DELETE FROM refresh_tokens WHERE user_id = ?1", [uid])?;
            tx.execute(&for_sqlite(super::tokens::DELETE_USER_SQL), [uid])?;
            tx.execute(&for_sqlite(super::device::DELETE_USER_SQL), [uid])?;
            tx.execute(&for_sqlite(super::sessions::DELETE_USER_SQL), [uid])?;
            tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [uid])?;
            tx.execute("DELETE FROM team_members WHERE user_id = ?1", [uid])?;
            tx.execute("DELETE FROM users WHERE id = ?1", [uid])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_team(&self, slug: &str) -> StoreResult<()> {
        let slug = slug.to_string();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tid = team_id(&tx, &slug)?;
            let projects: i64 = tx.query_row(
                "SELECT count(*) FROM projects WHERE team_id = ?1",
                [tid],
                |r| r.get(0),
            )?;
            if projects > 0 {
                return Err(StoreError::Conflict(format!(
                    "team '{slug}' has {projects} project(s) on the board; a team with events cannot be removed (remove its members instead)"
                )));
            }
            tx.execute("DELETE FROM team_members WHERE team_id = ?1", [tid])?;
            tx.execute(
                "UPDATE users SET team_id = (SELECT min(m.team_id) FROM team_members m WHERE m.user_id = users.id)
                 WHERE team_id = ?1",
                [tid],
            )?;
            tx.execute("DELETE FROM web_sessions WHERE team = ?1", [&slug])?;
            tx.execute("DELETE FROM teams WHERE id = ?1", [tid])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserSummary>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT u.username, u.disabled, t.slug,
                        (SELECT group_concat(slug, char(10)) FROM
                            (SELECT tt.slug FROM team_members m JOIN teams tt ON tt.id = m.team_id
                             WHERE m.user_id = u.id ORDER BY tt.slug))
                 FROM users u LEFT JOIN teams t ON t.id = u.team_id ORDER BY u.username",
            )?;
            let rows = stmt.query_map([], |r| {
                let member_of: Option<String> = r.get(3)?;
                Ok(UserSummary {
                    username: r.get(0)?,
                    disabled: r.get(1)?,
                    team: r.get(2)?,
                    member_of: member_of
                        .map(|m| m.lines().map(str::to_string).collect())
                        .unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn add_member(&self, team: &str, username: &str) -> StoreResult<()> {
        let (team, username) = (team.to_string(), username.to_string());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tid = team_id(&tx, &team)?;
            let uid = user_id(&tx, &username)?;
            let added = tx.execute(
                "INSERT INTO team_members (team_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![tid, uid],
            )?;
            if added == 0 {
                return Err(StoreError::Conflict(format!(
                    "user '{username}' is already a member of team '{team}'"
                )));
            }
            // A user without a team of their own gets this one.
            tx.execute(
                "UPDATE users SET team_id = ?1 WHERE id = ?2 AND team_id IS NULL",
                params![tid, uid],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_member(&self, team: &str, username: &str) -> StoreResult<()> {
        let (team, username) = (team.to_string(), username.to_string());
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tid = team_id(&tx, &team)?;
            let uid = user_id(&tx, &username)?;
            let removed = tx.execute(
                "DELETE FROM team_members WHERE team_id = ?1 AND user_id = ?2",
                params![tid, uid],
            )?;
            if removed == 0 {
                return Err(StoreError::NotFound(format!(
                    "user '{username}' is not a member of team '{team}'"
                )));
            }
            // Their own team must be one they belong to, or log-in would
            // keep announcing a team that refuses their events.
            tx.execute(
                "UPDATE users SET team_id = (SELECT min(m.team_id) FROM team_members m WHERE m.user_id = users.id)
                 WHERE id = ?1 AND team_id = ?2",
                params![uid, tid],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn is_member(&self, user_id: i64, team: &str) -> StoreResult<bool> {
        let team = team.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id
                     WHERE m.user_id = ?1 AND t.slug = ?2",
                )?
                .exists(params![user_id, team])?)
        })
        .await
    }

    async fn insert_refresh(&self, token: NewRefresh) -> StoreResult<()> {
        self.write(move |conn| login::insert_refresh(conn, token))
            .await
    }

    async fn rotate_refresh(
        &self,
        old_jti: &str,
        new: NewRefresh,
        now: i64,
        grace: i64,
    ) -> StoreResult<RotateOutcome> {
        let old_jti = old_jti.to_string();
        self.write(move |conn| login::rotate_refresh(conn, &old_jti, new, now, grace))
            .await
    }

    async fn revoke_refresh_family(&self, family: &str) -> StoreResult<()> {
        let family = family.to_string();
        self.write(move |conn| login::revoke_refresh_family(conn, &family))
            .await
    }

    async fn reserve_login_attempt(
        &self,
        keys: &[ThrottleKey],
        now: i64,
        window: i64,
    ) -> StoreResult<Reservation> {
        let keys = keys.to_vec();
        self.write(move |conn| login::reserve_login_attempt(conn, &keys, now, window))
            .await
    }

    async fn clear_user_login_failures(&self, username: &str) -> StoreResult<()> {
        let username = username.to_string();
        self.write(move |conn| login::clear_user_login_failures(conn, &username))
            .await
    }

    async fn release_login_attempt(
        &self,
        keys: &[String],
        at: i64,
        clear: Option<&str>,
    ) -> StoreResult<()> {
        let keys = keys.to_vec();
        let clear = clear.map(str::to_string);
        self.write(move |conn| login::release_login_attempt(conn, &keys, at, clear.as_deref()))
            .await
    }

    async fn ingest(
        &self,
        sender: &Sender,
        events: Vec<IncomingEvent>,
        now: i64,
    ) -> StoreResult<IngestOutcome> {
        let sender = sender.clone();
        // The events come back out of the writer's lock to be dropped: a
        // thousand events are eight thousand strings to free, a twentieth
        // of the writer's time when it was freed under the lock.
        let (outcome, events) = self
            .write(move |conn| {
                ingest::ingest_blocking(conn, &sender, &events, now).map(|o| (o, events))
            })
            .await?;
        drop(events);
        Ok(outcome)
    }

    async fn event_count(&self) -> StoreResult<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?))
            .await
    }
}
