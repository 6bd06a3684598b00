//! Storage behind one trait, so the routes never know which database they
//! talk to. SQLite is the embedded default; a PostgreSQL backend implements
//! the same trait.
//!
//! Every operation that must be atomic (rotating a refresh token, ingesting
//! a batch) is one trait method, so each backend can make it one
//! transaction and no route can interleave reads and writes unsafely.

pub mod board;
pub mod device;
pub mod postgres;
pub mod sessions;
pub mod sqlite;
pub mod tokens;

pub use board::BoardStore;
pub use device::DeviceStore;
pub use sessions::SessionStore;
pub use tokens::TokenStore;

use std::sync::Arc;

use async_trait::async_trait;
use spec_kitty_protocol::board::{Fact, WinnerKey};

use crate::board::hub::Advance;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(#[from] sqlx::Error),
    /// The shared signing key in the database is not 128 hex characters.
    #[error("database error: the stored signing key is corrupt")]
    CorruptSigningKey,
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the database schema is version {found}, newer than this server understands ({known}); upgrade spec-kitty-server"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "unsupported database URL '{0}': use sqlite://PATH (or a plain path) or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl(String),
    #[error("storage task failed: {0}")]
    Task(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The form a username is stored and looked up in: ASCII letters folded to
/// lower case, so `Alice` and `alice` are one user. ASCII only, because
/// SQLite's `lower()` (used by migration 3) folds nothing else, and the two
/// must agree or a migrated user could never be found again.
pub fn fold_username(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// A user as the authentication code needs it.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub disabled: bool,
    /// The user's own team: the one events are written for by default.
    pub team: Option<String>,
}

/// A user's columns, as both backends select and read them (like
/// `tokens::AccessTokenColumns`): the mapping lives once, below.
pub const USER_SELECT: &str = "SELECT u.id, u.username, u.password_hash, u.disabled, t.slug FROM users u LEFT JOIN teams t ON t.id = u.team_id";

/// The columns of [`USER_SELECT`], in order.
pub type UserColumns = (i64, String, String, bool, Option<String>);

impl From<UserColumns> for User {
    fn from(c: UserColumns) -> User {
        User {
            id: c.0,
            username: c.1,
            password_hash: c.2,
            disabled: c.3,
            team: c.4,
        }
    }
}

/// The user and team of a live page session (`$1` the id's hash, `$2`
/// now): [`USER_SELECT`]'s columns, then the session's team.
pub const WEB_SESSION_SQL: &str =
    "SELECT u.id, u.username, u.password_hash, u.disabled, t.slug, s.team
     FROM web_sessions s JOIN users u ON u.id = s.user_id
     LEFT JOIN teams t ON t.id = u.team_id
     WHERE s.id_hash = $1 AND s.expires_at > $2";

/// The columns of [`WEB_SESSION_SQL`], in order.
pub type WebSessionColumns = (i64, String, String, bool, Option<String>, String);

/// The user and the session's team, from [`WebSessionColumns`].
pub fn web_session_of(c: WebSessionColumns) -> (User, String) {
    (User::from((c.0, c.1, c.2, c.3, c.4)), c.5)
}

/// A change to one user's row, the same on both backends.
#[derive(Debug, Clone, Copy)]
pub enum UserChange<'a> {
    Disable,
    Enable,
    Password(&'a str),
}

impl UserChange<'_> {
    /// The statement: `$1` is the user's id, `$2` [`UserChange::value`].
    pub fn sql(self) -> &'static str {
        match self {
            UserChange::Disable => "UPDATE users SET disabled = TRUE WHERE id = $1",
            UserChange::Enable => "UPDATE users SET disabled = FALSE WHERE id = $1",
            UserChange::Password(_) => "UPDATE users SET password_hash = $2 WHERE id = $1",
        }
    }

    /// The value bound to `$2`, if the statement has one.
    pub fn value(self) -> Option<String> {
        match self {
            UserChange::Password(hash) => Some(hash.to_string()),
            UserChange::Disable | UserChange::Enable => None,
        }
    }

    /// Whether the change ends the user's sessions ([`END_USER_SESSIONS_SQL`]):
    /// a disabled user's sessions end now, not when their tokens expire, and
    /// a password changed because it leaked locks the holder out at once.
    pub fn ends_sessions(self) -> bool {
        !matches!(self, UserChange::Enable)
    }
}

/// A user as `user list` shows it (and `--json` prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserSummary {
    pub username: String,
    pub disabled: bool,
    pub team: Option<String>,
    pub member_of: Vec<String>,
}

/// A team as `team list` shows it (and `--json` prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TeamSummary {
    pub slug: String,
    pub members: Vec<String>,
    pub projects: i64,
}

/// A refresh token being issued.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub jti: String,
    pub family: String,
    pub user_id: i64,
    pub expires_at: i64,
}

/// The result of presenting a refresh token for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token is now retired and the new one is stored.
    Rotated,
    /// The old token was retired moments ago (within the grace window) and
    /// its successor never used: the answer to it was probably lost, so a
    /// new token of the same family is stored and nothing is revoked.
    Regranted,
    /// The token had already been used: its whole family is now revoked.
    Reused,
    /// The family was revoked earlier, or the token expired.
    Revoked,
    /// No such token was ever issued by this server.
    Unknown,
}

/// Who sends a batch, as the verified access token says.
#[derive(Debug, Clone)]
pub struct Sender {
    pub user_id: i64,
    pub username: String,
    /// The team named in the token.
    pub team: Option<String>,
}

/// One valid event, ready to store.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub event_id: String,
    pub event_type: String,
    pub aggregate_id: String,
    pub project_uuid: String,
    pub project_slug: Option<String>,
    /// The team named by the event itself, if any (never `local`).
    pub team: Option<String>,
    pub node_id: String,
    pub lamport: i64,
    pub timestamp: String,
    /// The four-lane value of a `WPStatusChanged` event.
    pub lane: Option<&'static str>,
    pub body: String,
    /// What the event tells the board, if anything.
    pub fact: Option<Fact>,
}

impl IncomingEvent {
    /// The event's place in the winner rule of contract section 8.
    /// The `wp_id` and feature key stored beside the event, so a work
    /// package's history is one indexed read.
    pub fn board_columns(&self) -> (Option<String>, Option<String>) {
        match &self.fact {
            Some(Fact::Status {
                wp_id,
                feature_slug,
                ..
            })
            | Some(Fact::Created {
                wp_id,
                feature_slug,
                ..
            }) => (
                Some(wp_id.clone()),
                Some(feature_slug.clone().unwrap_or_default()),
            ),
            Some(Fact::Feature { feature_slug }) => (None, Some(feature_slug.clone())),
            None => (None, None),
        }
    }

    pub fn winner_key(&self) -> WinnerKey {
        WinnerKey {
            lamport: self.lamport,
            node_id: self.node_id.clone(),
            event_id: self.event_id.clone(),
        }
    }
}

/// The whole-batch answer of [`Store::ingest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// One flag per event, in order: `true` if newly stored, `false` if an
    /// event with the same id was stored before; and where each project's
    /// sequence now stands, for the board's watchers.
    Stored {
        flags: Vec<bool>,
        advances: Vec<Advance>,
    },
    /// The sender may not write this batch; nothing of it was stored.
    Forbidden(String),
}

/// One counter of the log-in throttle (per user and address, per address,
/// per user) and how many failures it allows per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    pub key: String,
    pub limit: i64,
}

/// Ends every session of a user (`$1`: the user id): their refresh tokens
/// can no longer refresh, their page sessions are gone and their personal
/// access tokens are deleted (one made with a leaked password must not
/// outlive the new one). Used when a user is disabled or their password
/// changes, on both backends.
pub const END_USER_SESSIONS_SQL: [&str; 3] = [
    "UPDATE refresh_tokens SET revoked = TRUE WHERE user_id = $1",
    "DELETE FROM web_sessions WHERE user_id = $1",
    tokens::DELETE_USER_SQL,
];

/// The log-in throttle's keys for a user, written once for the log-in
/// route and `user unlock`: this user from one address, and from any.
pub mod throttle {
    /// This user (lower-cased) from the address `addr`.
    pub fn user_address(user: &str, addr: &str) -> String {
        format!("{}{addr}", user_address_prefix(user))
    }

    /// What every [`user_address`] key of `user` starts with.
    pub fn user_address_prefix(user: &str) -> String {
        format!("user-addr:{}|", user.to_lowercase())
    }

    /// This user from any address.
    pub fn user(user: &str) -> String {
        format!("user:{}", user.to_lowercase())
    }

    /// This address, any user.
    pub fn address(addr: &str) -> String {
        format!("addr:{addr}")
    }

    /// Deletes a user's keys (`$1`: [`user`], `$2`: [`user_address_prefix`]).
    pub const CLEAR_USER_SQL: &str =
        "DELETE FROM login_failures WHERE key = $1 OR substr(key, 1, length($2)) = $2";
}

impl ThrottleKey {
    /// How long until this key is under its limit again, given its `count`
    /// of failures in the window and the time of the `oldest` (both
    /// backends count, this decides); `None` when it is under it now.
    pub fn wait(&self, count: i64, oldest: i64, now: i64, window: i64) -> Option<i64> {
        (count >= self.limit).then(|| oldest + window - now)
    }
}

/// The answer of [`Store::reserve_login_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt is counted as a failure under every key until it is
    /// released (it succeeded).
    Granted,
    /// A key is at its limit: nothing was counted; retry after this many
    /// seconds.
    Throttled { retry_after: i64 },
}

/// How many database connections a store holds, for the metrics: the
/// reader handles of SQLite (its one writer aside), the sqlx pool of
/// PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections lent out to a request right now.
    pub in_use: usize,
    /// Connections open and waiting to be lent.
    pub idle: usize,
    /// Connections the pool may open at most.
    pub max: usize,
}

/// The storage of the server.
#[async_trait]
pub trait Store:
    BoardStore + TokenStore + DeviceStore + SessionStore + Send + Sync + 'static
{
    /// A short name for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The connections the store holds now (read when metrics are scraped).
    fn pool_use(&self) -> PoolUse;

    /// The signing key every instance on this store shares, stored on
    /// first call with `candidate`; `None` when the backend keeps no key
    /// (SQLite: one server, key file in the data directory).
    async fn shared_signing_key(&self, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let _ = candidate;
        Ok(None)
    }

    async fn create_team(&self, slug: &str) -> StoreResult<()>;
    async fn list_teams(&self) -> StoreResult<Vec<TeamSummary>>;
    /// Adds a user with `team` as their own team (they become a member).
    async fn create_user(&self, username: &str, password_hash: &str, team: &str)
    -> StoreResult<()>;
    async fn find_user(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    /// Applies one change to the user `username`, with the sessions it ends,
    /// in one transaction.
    async fn change_user(&self, username: &str, change: UserChange<'_>) -> StoreResult<()>;
    /// Stops a user from logging in and ends their sessions.
    async fn disable_user(&self, username: &str) -> StoreResult<()> {
        self.change_user(username, UserChange::Disable).await
    }
    /// Lets a disabled user log in again; tokens revoked on disabling stay
    /// revoked.
    async fn enable_user(&self, username: &str) -> StoreResult<()> {
        self.change_user(username, UserChange::Enable).await
    }
    /// Replaces a user's password hash and ends their sessions, so a
    /// password changed because it leaked locks the holder out at once.
    async fn set_password(&self, username: &str, password_hash: &str) -> StoreResult<()> {
        self.change_user(username, UserChange::Password(password_hash))
            .await
    }
    /// Deletes a user with their memberships, tokens and page sessions.
    /// Events they uploaded stay: they belong to the team's history.
    async fn remove_user(&self, username: &str) -> StoreResult<()>;
    /// Deletes a team that holds no projects, with its memberships; users
    /// whose own team it was get another of their teams, or none. A team
    /// with projects is refused: its events are the team's history.
    async fn remove_team(&self, slug: &str) -> StoreResult<()>;
    async fn list_users(&self) -> StoreResult<Vec<UserSummary>>;
    async fn add_member(&self, team: &str, username: &str) -> StoreResult<()>;
    async fn remove_member(&self, team: &str, username: &str) -> StoreResult<()>;
    async fn is_member(&self, user_id: i64, team: &str) -> StoreResult<bool>;

    async fn insert_refresh(&self, token: NewRefresh) -> StoreResult<()>;
    /// Retires `old_jti` and stores `new` in the same family, atomically.
    /// A token that was already retired revokes its whole family, unless it
    /// was retired less than `grace` seconds ago and is the family's latest
    /// retired token ([`RotateOutcome::Regranted`]).
    async fn rotate_refresh(
        &self,
        old_jti: &str,
        new: NewRefresh,
        now: i64,
        grace: i64,
    ) -> StoreResult<RotateOutcome>;

    /// Revokes every refresh token of `family` (a log-out): none of them
    /// can refresh again. A family that does not exist is no error.
    async fn revoke_refresh_family(&self, family: &str) -> StoreResult<()>;

    /// Reserves a log-in attempt before its password is checked, in one
    /// transaction: if every key has fewer failures than its limit since
    /// `now - window`, the attempt is counted under each key (as a failure
    /// until released) and granted; otherwise nothing is counted. Checking
    /// and counting at once means parallel attempts cannot all pass a
    /// check made before any of them is counted. Failures older than the
    /// window are pruned.
    async fn reserve_login_attempt(
        &self,
        keys: &[ThrottleKey],
        now: i64,
        window: i64,
    ) -> StoreResult<Reservation>;
    /// Clears the failed log-ins counted against a user, from every
    /// address (`user unlock`); what an address counts across users stays.
    async fn clear_user_login_failures(&self, username: &str) -> StoreResult<()>;
    /// Takes back an attempt reserved at `at` that did not fail (one count
    /// under each of `keys`) and clears every failure counted under `clear`.
    async fn release_login_attempt(
        &self,
        keys: &[String],
        at: i64,
        clear: Option<&str>,
    ) -> StoreResult<()>;

    /// Stores a batch, all or nothing: permissions are checked for every
    /// event first, projects are registered to their team on first sight,
    /// and duplicates are found by the unique `event_id`, so the same event
    /// arriving on several connections at once is stored once.
    async fn ingest(
        &self,
        sender: &Sender,
        events: Vec<IncomingEvent>,
        now: i64,
    ) -> StoreResult<IngestOutcome>;

    /// How many events are stored (for admin views and tests).
    async fn event_count(&self) -> StoreResult<i64>;
}

/// Opens the store named by a database URL (`postgres://` or
/// `postgresql://` for PostgreSQL, otherwise SQLite), running its
/// migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_with(url, postgres::PoolSettings::default()).await
}

/// [`open`] with explicit PostgreSQL pool settings.
pub async fn open_with(url: &str, settings: postgres::PoolSettings) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(
            postgres::PostgresStore::open(url, settings).await?,
        ));
    }
    let path = sqlite::path_from_url(url)?;
    Ok(Arc::new(sqlite::SqliteStore::open(path).await?))
}
