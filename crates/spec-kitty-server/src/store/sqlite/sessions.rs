//! Device sessions on SQLite.

use async_trait::async_trait;
use rusqlite::{TransactionBehavior, params};

use super::SqliteStore;
use crate::board::projection::for_sqlite;
use crate::store::StoreResult;
use crate::store::sessions::{
    DeviceSession, END_PAGES_SQL, INSERT_SQL, LIST_SQL, REVOKE_ALL_SQL, REVOKE_SQL, SessionStore,
    TOUCH_SQL,
};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn record_family(
        &self,
        family: &str,
        user_id: i64,
        client: &str,
        address: &str,
        now: i64,
    ) -> StoreResult<()> {
        let (family, client, address) =
            (family.to_string(), client.to_string(), address.to_string());
        self.write(move |conn| {
            conn.execute(
                &for_sqlite(INSERT_SQL),
                params![family, user_id, client, address, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn touch_family(&self, family: &str, now: i64) -> StoreResult<()> {
        let family = family.to_string();
        self.write(move |conn| {
            conn.execute(&for_sqlite(TOUCH_SQL), params![now, family])?;
            Ok(())
        })
        .await
    }

    async fn live_families(&self, user_id: i64, now: i64) -> StoreResult<Vec<DeviceSession>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&for_sqlite(LIST_SQL))?;
            let rows = statement.query_map(params![user_id, now], |r| {
                Ok(DeviceSession {
                    family: r.get(0)?,
                    client: r.get(1)?,
                    address: r.get(2)?,
                    created_at: r.get(3)?,
                    last_used_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn revoke_family_of(&self, family: &str, user_id: i64) -> StoreResult<bool> {
        let family = family.to_string();
        self.write(move |conn| {
            Ok(conn.execute(&for_sqlite(REVOKE_SQL), params![family, user_id])? > 0)
        })
        .await
    }

    async fn sign_out_everywhere(&self, user_id: i64) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(&for_sqlite(REVOKE_ALL_SQL), [user_id])?;
            tx.execute(&for_sqlite(END_PAGES_SQL), [user_id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
