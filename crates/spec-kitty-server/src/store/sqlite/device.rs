//! Device authorization codes on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use crate::board::projection::for_sqlite;
use crate::store::StoreResult;
use crate::store::device::{
    DECIDE_SQL, DeviceStore, INSERT_SQL, MARK_USED_SQL, NewDeviceCode, PENDING_SQL,
    POLL_SELECT_SQL, POLLED_SQL, PRUNE_SQL, PendingDevice, Poll, PollWrite, SLOW_DOWN_SQL,
    decide_poll,
};

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn create_device_code(&self, code: NewDeviceCode) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(&for_sqlite(PRUNE_SQL), [code.created_at - 86_400])?;
            tx.execute(
                &for_sqlite(INSERT_SQL),
                params![
                    code.device_hash,
                    code.user_code_hash,
                    code.client_name,
                    code.client_addr,
                    code.created_at,
                    code.expires_at,
                    code.poll_interval
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn pending_device(
        &self,
        user_code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<PendingDevice>> {
        let hash = user_code_hash.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(&for_sqlite(PENDING_SQL), params![hash, now], |r| {
                    Ok(PendingDevice {
                        client_name: r.get(0)?,
                        client_addr: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn decide_device(
        &self,
        user_code_hash: &str,
        user_id: i64,
        approve: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let hash = user_code_hash.to_string();
        self.write(move |conn| {
            let status = if approve { "approved" } else { "denied" };
            let user = approve.then_some(user_id);
            Ok(conn.execute(&for_sqlite(DECIDE_SQL), params![status, user, hash, now])? == 1)
        })
        .await
    }

    async fn poll_device(&self, device_hash: &str, now: i64) -> StoreResult<Poll> {
        let hash = device_hash.to_string();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(String, i64, Option<i64>, i64, Option<i64>)> = tx
                .query_row(&for_sqlite(POLL_SELECT_SQL), [&hash], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            let Some((status, expires_at, last_poll_at, interval, user_id)) = row else {
                return Ok(Poll::Unknown);
            };
            let (poll, write) =
                decide_poll(&status, expires_at, last_poll_at, interval, user_id, now);
            match write {
                PollWrite::Nothing => {}
                PollWrite::Polled => {
                    tx.execute(&for_sqlite(POLLED_SQL), params![now, hash])?;
                }
                PollWrite::SlowDown => {
                    tx.execute(&for_sqlite(SLOW_DOWN_SQL), params![now, hash])?;
                }
                PollWrite::MarkUsed => {
                    tx.execute(&for_sqlite(MARK_USED_SQL), [&hash])?;
                }
            }
            tx.commit()?;
            Ok(poll)
        })
        .await
    }
}
