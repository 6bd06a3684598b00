//! Device sessions on PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::StoreResult;
use crate::store::sessions::{
    DeviceSession, END_PAGES_SQL, INSERT_SQL, LIST_SQL, REVOKE_ALL_SQL, REVOKE_SQL, SessionStore,
    TOUCH_SQL,
};

#[async_trait]
impl SessionStore for PostgresStore {
    async fn record_family(
        &self,
        family: &str,
        user_id: i64,
        client: &str,
        address: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(INSERT_SQL)
            .bind(family)
            .bind(user_id)
            .bind(client)
            .bind(address)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn touch_family(&self, family: &str, now: i64) -> StoreResult<()> {
        sqlx::query(TOUCH_SQL)
            .bind(now)
            .bind(family)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn live_families(&self, user_id: i64, now: i64) -> StoreResult<Vec<DeviceSession>> {
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(LIST_SQL)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(family, client, address, created_at, last_used_at)| DeviceSession {
                    family,
                    client,
                    address,
                    created_at,
                    last_used_at,
                },
            )
            .collect())
    }

    async fn revoke_family_of(&self, family: &str, user_id: i64) -> StoreResult<bool> {
        let done = sqlx::query(REVOKE_SQL)
            .bind(family)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sign_out_everywhere(&self, user_id: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [REVOKE_ALL_SQL, END_PAGES_SQL] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
