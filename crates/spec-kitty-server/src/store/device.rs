//! The storage of device authorization codes (RFC 8628). A supertrait of
//! [`super::Store`], implemented by each backend in its own `device.rs`;
//! the SQL is written once here with PostgreSQL's `$N` placeholders.

use async_trait::async_trait;

use super::StoreResult;

/// A device code being stored (hashes only).
#[derive(Debug, Clone)]
pub struct NewDeviceCode {
    pub device_hash: String,
    pub user_code_hash: String,
    pub client_name: String,
    pub client_addr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub poll_interval: i64,
}

/// A pending request as the page /device shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    pub client_name: String,
    pub client_addr: String,
    pub created_at: i64,
}

/// What a poll with a device code finds (RFC 8628, section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// No such code, or one already used: `invalid_grant`.
    Unknown,
    Pending,
    /// Polled before its interval passed; the interval grows by 5 s.
    SlowDown,
    Denied,
    Expired,
    /// Approved by this user; the code is now used.
    Approved {
        user_id: i64,
    },
}

/// `$1..$7`: the columns of [`NewDeviceCode`], in order.
pub const INSERT_SQL: &str = "INSERT INTO device_codes (device_hash, user_code_hash, client_name, client_addr, created_at, expires_at, poll_interval) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The pending, unexpired request with user code hash `$1` at `$2`.
pub const PENDING_SQL: &str = "SELECT client_name, client_addr, created_at FROM device_codes WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2";

/// Approves (`$1` = 'approved', `$2` the user) or denies (`$1` = 'denied')
/// the pending, unexpired request with user code hash `$3` at `$4`.
pub const DECIDE_SQL: &str = "UPDATE device_codes SET status = $1, user_id = $2 WHERE user_code_hash = $3 AND status = 'pending' AND expires_at > $4";

/// Expired codes older than `$1` are pruned when new ones are made.
pub const PRUNE_SQL: &str = "DELETE FROM device_codes WHERE expires_at < $1";

/// Deletes a user's codes (`$1`), when the user is removed.
pub const DELETE_USER_SQL: &str = "DELETE FROM device_codes WHERE user_id = $1";

/// Decides a poll from a code's row, and what to write back: the rule of
/// RFC 8628 section 3.5, once for both backends. A decided code answers at
/// once whatever the interval; only a pending one can be polled too fast.
pub fn decide_poll(
    status: &str,
    expires_at: i64,
    last_poll_at: Option<i64>,
    poll_interval: i64,
    user_id: Option<i64>,
    now: i64,
) -> (Poll, PollWrite) {
    match (status, user_id) {
        ("used", _) => (Poll::Unknown, PollWrite::Nothing),
        _ if expires_at <= now => (Poll::Expired, PollWrite::Nothing),
        ("approved", Some(user_id)) => (Poll::Approved { user_id }, PollWrite::MarkUsed),
        ("denied", _) => (Poll::Denied, PollWrite::Nothing),
        ("pending", _) => match last_poll_at {
            Some(at) if now - at < poll_interval => (Poll::SlowDown, PollWrite::SlowDown),
            _ => (Poll::Pending, PollWrite::Polled),
        },
        _ => (Poll::Unknown, PollWrite::Nothing),
    }
}

/// The write a poll makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollWrite {
    Nothing,
    /// `last_poll_at = now`.
    Polled,
    /// `last_poll_at = now`, interval + 5 s.
    SlowDown,
    /// `status = 'used'`: single use.
    MarkUsed,
}

/// The row of device code hash `$1`, locked for the poll on PostgreSQL.
pub const POLL_SELECT_SQL: &str = "SELECT status, expires_at, last_poll_at, poll_interval, user_id FROM device_codes WHERE device_hash = $1";

/// `$1` now, `$2` the device hash.
pub const POLLED_SQL: &str = "UPDATE device_codes SET last_poll_at = $1 WHERE device_hash = $2";
pub const SLOW_DOWN_SQL: &str = "UPDATE device_codes SET last_poll_at = $1, poll_interval = poll_interval + 5 WHERE device_hash = $2";
/// `$1` the device hash.
pub const MARK_USED_SQL: &str = "UPDATE device_codes SET status = 'used' WHERE device_hash = $1";

#[async_trait]
pub trait DeviceStore {
    async fn create_device_code(&self, code: NewDeviceCode) -> StoreResult<()>;
    async fn pending_device(
        &self,
        user_code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<PendingDevice>>;
    /// Approves (with the user) or denies a pending request; `false` when
    /// there is no such pending, unexpired request.
    async fn decide_device(
        &self,
        user_code_hash: &str,
        user_id: i64,
        approve: bool,
        now: i64,
    ) -> StoreResult<bool>;
    /// One poll, atomically: reads the code, decides, writes back.
    async fn poll_device(&self, device_hash: &str, now: i64) -> StoreResult<Poll>;
}
