//! Device authorization codes on PostgreSQL: a poll locks its row, so two
//! instances polled at once hand out one set of tokens.

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::StoreResult;
use crate::store::device::{
    DECIDE_SQL, DeviceStore, INSERT_SQL, MARK_USED_SQL, NewDeviceCode, PENDING_SQL, POLLED_SQL,
    PRUNE_SQL, PendingDevice, Poll, PollWrite, SLOW_DOWN_SQL, decide_poll,
};

/// [`crate::store::device::POLL_SELECT_SQL`], with the row locked.
const POLL_SELECT_FOR_UPDATE: &str = "SELECT status, expires_at, last_poll_at, poll_interval, user_id FROM device_codes WHERE device_hash = $1 FOR UPDATE";

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn create_device_code(&self, code: NewDeviceCode) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(PRUNE_SQL)
            .bind(code.created_at - 86_400)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_SQL)
            .bind(code.device_hash)
            .bind(code.user_code_hash)
            .bind(code.client_name)
            .bind(code.client_addr)
            .bind(code.created_at)
            .bind(code.expires_at)
            .bind(code.poll_interval)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_device(
        &self,
        user_code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<PendingDevice>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(PENDING_SQL)
            .bind(user_code_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(
            row.map(|(client_name, client_addr, created_at)| PendingDevice {
                client_name,
                client_addr,
                created_at,
            }),
        )
    }

    async fn decide_device(
        &self,
        user_code_hash: &str,
        user_id: i64,
        approve: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let status = if approve { "approved" } else { "denied" };
        let done = sqlx::query(DECIDE_SQL)
            .bind(status)
            .bind(approve.then_some(user_id))
            .bind(user_code_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn poll_device(&self, device_hash: &str, now: i64) -> StoreResult<Poll> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, i64, Option<i64>, i64, Option<i64>)> =
            sqlx::query_as(POLL_SELECT_FOR_UPDATE)
                .bind(device_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, expires_at, last_poll_at, interval, user_id)) = row else {
            return Ok(Poll::Unknown);
        };
        let (poll, write) = decide_poll(&status, expires_at, last_poll_at, interval, user_id, now);
        match write {
            PollWrite::Nothing => {}
            PollWrite::Polled | PollWrite::SlowDown => {
                let sql = if write == PollWrite::Polled {
                    POLLED_SQL
                } else {
                    SLOW_DOWN_SQL
                };
                sqlx::query(sql)
                    .bind(now)
                    .bind(device_hash)
                    .execute(&mut *tx)
                    .await?;
            }
            PollWrite::MarkUsed => {
                sqlx::query(MARK_USED_SQL)
                    .bind(device_hash)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(poll)
    }
}
