//! What the Sessions page knows of each refresh-token family: the client,
//! address and times of one signed-in device. A supertrait of
//! [`super::Store`]; the SQL is written once here with `$N` placeholders
//! and run by each backend in its own `sessions.rs`.

use async_trait::async_trait;

use super::StoreResult;

/// A signed-in device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSession {
    pub family: String,
    pub client: String,
    pub address: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// `$1` family, `$2` user, `$3` client, `$4` address, `$5` now.
pub const INSERT_SQL: &str = "INSERT INTO refresh_families (family, user_id, client, address, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $5)";

/// `$1` now, `$2` family.
pub const TOUCH_SQL: &str = "UPDATE refresh_families SET last_used_at = $1 WHERE family = $2";

/// The live families of user `$1` at `$2`: one whose latest refresh token
/// is neither revoked, used nor expired. Newest first.
pub const LIST_SQL: &str = "SELECT f.family, f.client, f.address, f.created_at, f.last_used_at FROM refresh_families f WHERE f.user_id = $1 AND EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family = f.family AND r.revoked = FALSE AND r.used_at IS NULL AND r.expires_at > $2) ORDER BY f.created_at DESC, f.family DESC";

/// Revokes family `$1` if user `$2` holds it.
pub const REVOKE_SQL: &str = "UPDATE refresh_tokens SET revoked = TRUE WHERE family = $1 AND user_id = $2 AND revoked = FALSE";

/// Revokes every family of user `$1`.
pub const REVOKE_ALL_SQL: &str =
    "UPDATE refresh_tokens SET revoked = TRUE WHERE user_id = $1 AND revoked = FALSE";

/// Ends every page session of user `$1` ("sign out everywhere").
pub const END_PAGES_SQL: &str = "DELETE FROM web_sessions WHERE user_id = $1";

/// Deletes a user's rows (`$1`), when the user is removed.
pub const DELETE_USER_SQL: &str = "DELETE FROM refresh_families WHERE user_id = $1";

#[async_trait]
pub trait SessionStore {
    /// Records a new family (a log-in).
    async fn record_family(
        &self,
        family: &str,
        user_id: i64,
        client: &str,
        address: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// Notes that a family refreshed now.
    async fn touch_family(&self, family: &str, now: i64) -> StoreResult<()>;
    async fn live_families(&self, user_id: i64, now: i64) -> StoreResult<Vec<DeviceSession>>;
    /// Revokes one of the user's families; `false` when none was live.
    async fn revoke_family_of(&self, family: &str, user_id: i64) -> StoreResult<bool>;
    /// Revokes every family of the user and ends their page sessions.
    async fn sign_out_everywhere(&self, user_id: i64) -> StoreResult<()>;
}
