//! The embedded SQLite backend.
//!
//! One writer connection (behind a mutex) takes every write, so writes never
//! fight over SQLite's single write lock inside this process; readers come
//! from a small pool. Admin commands run in other processes against the same
//! file: WAL mode and a busy timeout let them work while the server runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::board::{BoardRows, ProjectRef, ProjectRow, RebuildReport, StoredCard};

use super::{
    FailureCount, IncomingEvent, IngestOutcome, NewRefresh, RotateOutcome, Sender, Store,
    StoreError, StoreResult, TeamSummary, User, UserSummary,
};
use super::{insufficient, no_team, not_member, sqlite_board};
use crate::board::hub::Advance;
use crate::board::projection::{self, Projected, Reduced};

/// The schema, one entry per version. Never edit an entry that has shipped:
/// add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: users, teams, tokens, throttling, projects, events.
    "
    CREATE TABLE teams (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        team_id INTEGER REFERENCES teams(id),
        created_at INTEGER NOT NULL
    );
    CREATE TABLE team_members (
        team_id INTEGER NOT NULL REFERENCES teams(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        PRIMARY KEY (team_id, user_id)
    );
    CREATE TABLE refresh_tokens (
        jti TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id),
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
    CREATE TABLE login_failures (
        key TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX login_failures_key_at ON login_failures(key, at);
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        slug TEXT,
        team_id INTEGER NOT NULL REFERENCES teams(id),
        created_at INTEGER NOT NULL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        team_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        node_id TEXT NOT NULL,
        lamport INTEGER NOT NULL,
        ts TEXT NOT NULL,
        lane TEXT,
        body TEXT NOT NULL,
        received_at INTEGER NOT NULL
    );
    ",
    // 2: the board (contract section 8): per-project event sequence in
    // commit order, the projection's tables, web sessions.
    "
    ALTER TABLE projects ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE projects ADD COLUMN last_event_at TEXT;
    ALTER TABLE events ADD COLUMN pseq INTEGER;
    ALTER TABLE events ADD COLUMN wp_id TEXT;
    ALTER TABLE events ADD COLUMN feature_key TEXT;
    UPDATE events SET pseq = seq;
    UPDATE projects SET last_seq = coalesce((SELECT max(pseq) FROM events e WHERE e.project_id = projects.id), 0);
    CREATE INDEX events_feed ON events(project_id, pseq);
    CREATE INDEX events_wp ON events(project_id, wp_id, feature_key) WHERE wp_id IS NOT NULL;
    CREATE TABLE board_features (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        feature_key TEXT NOT NULL,
        PRIMARY KEY (project_id, feature_key)
    );
    CREATE TABLE board_cards (
        project_id INTEGER NOT NULL REFERENCES projects(id),
        feature_key TEXT NOT NULL,
        wp_id TEXT NOT NULL,
        lane TEXT,
        raw_lane TEXT,
        actor TEXT,
        updated_at TEXT,
        s_lamport INTEGER,
        s_node TEXT,
        s_event TEXT,
        title TEXT,
        dependencies TEXT NOT NULL DEFAULT '[]',
        c_lamport INTEGER,
        c_node TEXT,
        c_event TEXT,
        changed_seq INTEGER NOT NULL,
        PRIMARY KEY (project_id, feature_key, wp_id)
    );
    CREATE INDEX board_cards_changed ON board_cards(project_id, changed_seq);
    CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        team TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    ",
];

/// The statement that stores one event; the ingest benchmark's raw baseline
/// runs the very same statement.
pub const INSERT_EVENT_SQL: &str = "INSERT INTO events (event_id, event_type, aggregate_id, project_id, team_id, user_id, node_id, lamport, ts, lane, body, received_at, pseq, wp_id, feature_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT(event_id) DO NOTHING";

/// Reads the path out of `sqlite://PATH`, `sqlite:PATH` or a plain path.
pub fn path_from_url(url: &str) -> StoreResult<PathBuf> {
    let rest = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    } else {
        url
    };
    let rest = rest.split('?').next().unwrap_or_default();
    if rest.is_empty() {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    Ok(PathBuf::from(rest))
}

/// Creates the database's directory (0700) and an empty database file
/// (0600) if they are missing: the database holds password hashes, and
/// SQLite gives its -wal and -shm files the mode of the main file.
fn prepare_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens a connection with the pragmas every connection needs.
pub fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(conn)
}

/// Brings the schema up to date. Safe when several processes start at once:
/// the version is read inside an immediate (write-locked) transaction.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Inner {
    fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Task("writer connection poisoned".into()))?;
        f(&mut conn)
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self
            .readers
            .lock()
            .map_err(|_| StoreError::Task("reader pool poisoned".into()))?
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < 8
        {
            pool.push(conn);
        }
        result
    }
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn open(path: PathBuf) -> StoreResult<SqliteStore> {
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The blocking body of [`SqliteStore::open`], for tools without a runtime.
    pub fn open_blocking(path: PathBuf) -> StoreResult<SqliteStore> {
        prepare_private_file(&path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut writer = connect(&path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_writer(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_reader(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn team_id(conn: &Connection, slug: &str) -> StoreResult<i64> {
    conn.query_row("SELECT id FROM teams WHERE slug = ?1", [slug], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no team '{slug}'")))
}

fn user_id(conn: &Connection, username: &str) -> StoreResult<i64> {
    conn.query_row(
        "SELECT id FROM users WHERE username = ?1",
        [username],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no user '{username}'")))
}

const USER_COLUMNS: &str = "SELECT u.id, u.username, u.password_hash, u.disabled, t.slug FROM users u LEFT JOIN teams t ON t.id = u.team_id";

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        disabled: row.get(3)?,
        team: row.get(4)?,
    })
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
            username.to_string(),
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
        let username = username.to_string();
        self.read(move |conn| {
            let sql = format!("{USER_COLUMNS} WHERE u.username = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([username], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        self.read(move |conn| {
            let sql = format!("{USER_COLUMNS} WHERE u.id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([id], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn disable_user(&self, username: &str) -> StoreResult<()> {
        let username = username.to_string();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let uid = user_id(&tx, &username)?;
            tx.execute("UPDATE users SET disabled = 1 WHERE id = ?1", [uid])?;
            // A disabled user's sessions end now, not when their tokens expire.
            tx.execute(
                "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1",
                [uid],
            )?;
            tx.execute("DELETE FROM web_sessions WHERE user_id = ?1", [uid])?;
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
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token.jti, token.family, token.user_id, token.expires_at])?;
            Ok(())
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        old_jti: &str,
        new: NewRefresh,
        now: i64,
    ) -> StoreResult<RotateOutcome> {
        let old_jti = old_jti.to_string();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(String, Option<i64>, bool, i64)> = tx
                .query_row(
                    "SELECT family, used_at, revoked, expires_at FROM refresh_tokens WHERE jti = ?1",
                    [&old_jti],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let outcome = match row {
                None => RotateOutcome::Unknown,
                Some((family, Some(_), _, _)) => {
                    tx.execute("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?1", [&family])?;
                    RotateOutcome::Reused
                }
                Some((_, None, true, _)) => RotateOutcome::Revoked,
                Some((_, None, false, expires_at)) if expires_at <= now => RotateOutcome::Revoked,
                Some((family, None, false, _)) => {
                    tx.execute(
                        "UPDATE refresh_tokens SET used_at = ?1 WHERE jti = ?2",
                        params![now, old_jti],
                    )?;
                    tx.execute(
                        "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
                        params![new.jti, family, new.user_id, new.expires_at],
                    )?;
                    RotateOutcome::Rotated
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn login_failures(&self, keys: &[String], since: i64) -> StoreResult<Vec<FailureCount>> {
        let keys = keys.to_vec();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT count(*), coalesce(min(at), 0) FROM login_failures WHERE key = ?1 AND at >= ?2",
            )?;
            keys.iter()
                .map(|key| {
                    Ok(stmt.query_row(params![key, since], |r| {
                        Ok(FailureCount {
                            count: r.get(0)?,
                            oldest: r.get(1)?,
                        })
                    })?)
                })
                .collect()
        })
        .await
    }

    async fn record_login_failure(
        &self,
        keys: &[String],
        at: i64,
        prune_before: i64,
    ) -> StoreResult<()> {
        let keys = keys.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM login_failures WHERE at < ?1", [prune_before])?;
            for key in &keys {
                tx.execute(
                    "INSERT INTO login_failures (key, at) VALUES (?1, ?2)",
                    params![key, at],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        let key = key.to_string();
        self.write(move |conn| {
            conn.execute("DELETE FROM login_failures WHERE key = ?1", [key])?;
            Ok(())
        })
        .await
    }

    async fn ingest(
        &self,
        sender: &Sender,
        events: Vec<IncomingEvent>,
        now: i64,
    ) -> StoreResult<IngestOutcome> {
        let sender = sender.clone();
        self.write(move |conn| ingest_blocking(conn, &sender, &events, now))
            .await
    }

    async fn event_count(&self) -> StoreResult<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?))
            .await
    }

    async fn team_project(&self, team: &str, uuid: &str) -> StoreResult<Option<ProjectRef>> {
        let (team, uuid) = (team.to_string(), uuid.to_string());
        self.read(move |conn| sqlite_board::team_project(conn, &team, &uuid))
            .await
    }

    async fn team_projects(&self, team: &str) -> StoreResult<Vec<ProjectRow>> {
        let team = team.to_string();
        self.read(move |conn| sqlite_board::team_projects(conn, &team))
            .await
    }

    async fn board(&self, project: &ProjectRef) -> StoreResult<BoardRows> {
        let project = project.clone();
        self.read(move |conn| sqlite_board::board(conn, &project))
            .await
    }

    async fn cards_since(
        &self,
        project_id: i64,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<StoredCard>> {
        self.read(move |conn| sqlite_board::cards_since(conn, project_id, after, limit))
            .await
    }

    async fn project_seq(&self, project_id: i64) -> StoreResult<i64> {
        self.read(move |conn| sqlite_board::project_seq(conn, project_id))
            .await
    }

    async fn feed(
        &self,
        project_id: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        self.read(move |conn| sqlite_board::feed(conn, project_id, after, limit))
            .await
    }

    async fn wp_history(
        &self,
        project_id: i64,
        feature_key: &str,
        wp_id: &str,
    ) -> StoreResult<Vec<String>> {
        let (feature_key, wp_id) = (feature_key.to_string(), wp_id.to_string());
        self.read(move |conn| sqlite_board::wp_history(conn, project_id, &feature_key, &wp_id))
            .await
    }

    async fn rebuild_board(
        &self,
        project_uuid: Option<&str>,
        check: bool,
    ) -> StoreResult<RebuildReport> {
        let project_uuid = project_uuid.map(str::to_string);
        self.write(move |conn| sqlite_board::rebuild(conn, project_uuid.as_deref(), check))
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
        self.write(move |conn| {
            sqlite_board::create_web_session(conn, &id_hash, user_id, &team, expires_at)
        })
        .await
    }

    async fn web_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<(User, String)>> {
        let id_hash = id_hash.to_string();
        self.read(move |conn| sqlite_board::web_session(conn, &id_hash, now))
            .await
    }

    async fn delete_web_session(&self, id_hash: &str) -> StoreResult<()> {
        let id_hash = id_hash.to_string();
        self.write(move |conn| sqlite_board::delete_web_session(conn, &id_hash))
            .await
    }
}

fn ingest_blocking(
    conn: &mut Connection,
    sender: &Sender,
    events: &[IncomingEvent],
    now: i64,
) -> StoreResult<IngestOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // team slug -> team id, for teams the sender is a member of (None: not).
    let mut teams: HashMap<String, Option<i64>> = HashMap::new();
    let mut membership = |tx: &rusqlite::Transaction<'_>, slug: &str| -> StoreResult<Option<i64>> {
        if let Some(known) = teams.get(slug) {
            return Ok(*known);
        }
        let found = tx
            .prepare_cached(
                "SELECT t.id FROM teams t JOIN team_members m ON m.team_id = t.id
                 WHERE t.slug = ?1 AND m.user_id = ?2",
            )?
            .query_row(params![slug, sender.user_id], |r| r.get(0))
            .optional()?;
        teams.insert(slug.to_string(), found);
        Ok(found)
    };
    let Some(own_team) = sender.team.clone() else {
        return Ok(IngestOutcome::Forbidden(no_team(&sender.username)));
    };
    if membership(&tx, &own_team)?.is_none() {
        return Ok(IngestOutcome::Forbidden(not_member(
            &own_team,
            &sender.username,
        )));
    }
    // project uuid -> (project id, team id)
    let mut projects: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut placed = Vec::with_capacity(events.len());
    for event in events {
        let team_slug = event.team.as_deref().unwrap_or(&own_team);
        let project_name = event.project_slug.as_deref().unwrap_or(&event.project_uuid);
        let Some(tid) = membership(&tx, team_slug)? else {
            return Ok(IngestOutcome::Forbidden(insufficient(
                team_slug,
                project_name,
            )));
        };
        let (pid, owner) =
            match projects.get(event.project_uuid.as_str()) {
                Some(found) => *found,
                None => {
                    tx.prepare_cached(
                    "INSERT INTO projects (uuid, slug, team_id, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(uuid) DO NOTHING",
                )?
                .execute(params![event.project_uuid, event.project_slug, tid, now])?;
                    let found: (i64, i64) = tx
                        .prepare_cached("SELECT id, team_id FROM projects WHERE uuid = ?1")?
                        .query_row([&event.project_uuid], |r| Ok((r.get(0)?, r.get(1)?)))?;
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
    let mut stored = Vec::with_capacity(events.len());
    // Number the batch per project after the project's current sequence:
    // this transaction holds the write lock, so numbers follow commits.
    let mut seqs: HashMap<i64, i64> = HashMap::new();
    let mut reduced = Reduced::default();
    {
        let mut insert = tx.prepare_cached(INSERT_EVENT_SQL)?;
        let mut last = tx.prepare_cached("SELECT last_seq FROM projects WHERE id = ?1")?;
        for (event, (pid, tid)) in events.iter().zip(placed) {
            let seq = match seqs.get_mut(&pid) {
                Some(seq) => seq,
                None => {
                    let current: i64 = last.query_row([pid], |r| r.get(0))?;
                    seqs.entry(pid).or_insert(current)
                }
            };
            *seq += 1;
            let seq = *seq;
            let (wp_id, feature_key) = match &event.fact {
                Some(fact) => (
                    sqlite_board::wp_of(fact),
                    Some(projection::feature_key(fact.feature_slug())),
                ),
                None => (None, None),
            };
            let changed = insert.execute(params![
                event.event_id,
                event.event_type,
                event.aggregate_id,
                pid,
                tid,
                sender.user_id,
                event.node_id,
                event.lamport,
                event.timestamp,
                event.lane,
                event.body,
                now,
                seq,
                wp_id,
                feature_key,
            ])?;
            stored.push(changed == 1);
            if changed == 1
                && let Some(fact) = &event.fact
            {
                reduced.add(Projected {
                    project_id: pid,
                    seq,
                    key: event.winner_key(),
                    timestamp: &event.timestamp,
                    fact,
                });
            }
        }
        let mut bump = tx.prepare_cached(
            "UPDATE projects SET last_seq = ?2, last_event_at = coalesce(?3, last_event_at) WHERE id = ?1",
        )?;
        let stamp = stored.iter().any(|s| *s).then(sqlite_board::now_text);
        for (pid, seq) in &seqs {
            bump.execute(params![pid, seq, stamp])?;
        }
    }
    sqlite_board::apply(&tx, &reduced)?;
    tx.commit()?;
    let advances = seqs
        .into_iter()
        .map(|(project_id, seq)| Advance { project_id, seq })
        .collect();
    Ok(IngestOutcome::Stored {
        flags: stored,
        advances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            path_from_url("sqlite:///tmp/a.db").ok(),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(
            path_from_url("sqlite:data/a.db").ok(),
            Some(PathBuf::from("data/a.db"))
        );
        assert_eq!(
            path_from_url("/tmp/b.db").ok(),
            Some(PathBuf::from("/tmp/b.db"))
        );
        assert!(path_from_url("mysql://x").is_err());
        assert!(path_from_url("sqlite://").is_err());
    }
}
