//! The storage of personal access tokens. A supertrait of
//! [`super::Store`], implemented by each backend in its own `tokens.rs`;
//! the SQL is written once here with PostgreSQL's `$N` placeholders
//! (SQLite takes them through `projection::for_sqlite`).

use async_trait::async_trait;

use super::StoreResult;

/// A token being stored (only its hash).
#[derive(Debug, Clone)]
pub struct NewAccessToken {
    pub user_id: i64,
    pub name: String,
    pub hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A token as `token list` and the Tokens page show it; never the token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessTokenInfo {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A listed token's columns in the order of [`LIST_SQL`], as both backends
/// read them (like `board::CardColumns`): the mapping lives once, below.
pub type AccessTokenColumns = (
    i64,         // id
    String,      // username
    String,      // name
    i64,         // created_at
    Option<i64>, // last_used_at
    Option<i64>, // expires_at
    Option<i64>, // revoked_at
);

impl From<AccessTokenColumns> for AccessTokenInfo {
    fn from(c: AccessTokenColumns) -> AccessTokenInfo {
        AccessTokenInfo {
            id: c.0,
            username: c.1,
            name: c.2,
            created_at: c.3,
            last_used_at: c.4,
            expires_at: c.5,
            revoked_at: c.6,
        }
    }
}

/// Last use is recorded at most this often (seconds) per token, so a busy
/// CI job does not turn every read into a write.
pub const LAST_USED_RESOLUTION: i64 = 60;

/// `$1` user, `$2` name, `$3` hash, `$4` created, `$5` expires.
pub const INSERT_SQL: &str = "INSERT INTO access_tokens (user_id, name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id";

/// The live token with hash `$1` at time `$2`: id, user id, last use.
pub const LIVE_SQL: &str = "SELECT id, user_id, last_used_at FROM access_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)";

/// Records use `$1` of token `$2`.
pub const TOUCH_SQL: &str = "UPDATE access_tokens SET last_used_at = $1 WHERE id = $2";

/// Every token with its user's name, optionally of one user (`$1`, or NULL).
pub const LIST_SQL: &str = "SELECT a.id, u.username, a.name, a.created_at, a.last_used_at, a.expires_at, a.revoked_at FROM access_tokens a JOIN users u ON u.id = a.user_id WHERE a.user_id = coalesce($1, a.user_id) ORDER BY a.id";

/// Revokes at `$1` the live token `$2`, of user `$3` when not NULL.
pub const REVOKE_SQL: &str = "UPDATE access_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND user_id = coalesce($3, user_id)";

/// Deletes a user's tokens (`$1`), when the user is removed.
pub const DELETE_USER_SQL: &str = "DELETE FROM access_tokens WHERE user_id = $1";

#[async_trait]
pub trait TokenStore {
    /// Stores a token; answers its id.
    async fn create_access_token(&self, token: NewAccessToken) -> StoreResult<i64>;
    /// The user id of the live (not revoked, not expired) token with this
    /// hash, recording its use; `None` for any other.
    async fn use_access_token(&self, hash: &str, now: i64) -> StoreResult<Option<i64>>;
    /// Every token, or those of one user, oldest first.
    async fn list_access_tokens(&self, user_id: Option<i64>) -> StoreResult<Vec<AccessTokenInfo>>;
    /// Revokes a live token (only if `owner` holds it, when given);
    /// `false` when there is no such live token.
    async fn revoke_access_token(&self, id: i64, owner: Option<i64>, now: i64)
    -> StoreResult<bool>;
}
