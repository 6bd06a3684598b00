//! Personal access tokens on PostgreSQL.

use async_trait::async_trait;
use sqlx::FromRow;

use super::PostgresStore;
use crate::store::StoreResult;
use crate::store::tokens::{
    AccessTokenColumns, AccessTokenInfo, INSERT_SQL, LAST_USED_RESOLUTION, LIST_SQL, LIVE_SQL,
    NewAccessToken, REVOKE_SQL, TOUCH_SQL, TokenStore,
};

#[async_trait]
impl TokenStore for PostgresStore {
    async fn create_access_token(&self, token: NewAccessToken) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(INSERT_SQL)
            .bind(token.user_id)
            .bind(token.name)
            .bind(token.hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn use_access_token(&self, hash: &str, now: i64) -> StoreResult<Option<i64>> {
        let live: Option<(i64, i64, Option<i64>)> = sqlx::query_as(LIVE_SQL)
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some((id, user_id, last_used)) = live else {
            return Ok(None);
        };
        if last_used.is_none_or(|at| at <= now - LAST_USED_RESOLUTION) {
            sqlx::query(TOUCH_SQL)
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(user_id))
    }

    async fn list_access_tokens(&self, user_id: Option<i64>) -> StoreResult<Vec<AccessTokenInfo>> {
        let rows = sqlx::query(LIST_SQL)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| AccessTokenColumns::from_row(r).map(AccessTokenInfo::from))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn revoke_access_token(
        &self,
        id: i64,
        owner: Option<i64>,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(REVOKE_SQL)
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
