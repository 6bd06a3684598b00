//! Personal access tokens on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::board::projection::for_sqlite;
use crate::store::StoreResult;
use crate::store::tokens::{
    AccessTokenColumns, AccessTokenInfo, INSERT_SQL, LAST_USED_RESOLUTION, LIST_SQL, LIVE_SQL,
    NewAccessToken, REVOKE_SQL, TOUCH_SQL, TokenStore,
};

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_access_token(&self, token: NewAccessToken) -> StoreResult<i64> {
        self.write(move |conn| {
            Ok(conn.query_row(
                &for_sqlite(INSERT_SQL),
                params![
                    token.user_id,
                    token.name,
                    token.hash,
                    token.created_at,
                    token.expires_at
                ],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn use_access_token(&self, hash: &str, now: i64) -> StoreResult<Option<i64>> {
        let hash = hash.to_string();
        let live: Option<(i64, i64, Option<i64>)> = self
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(&for_sqlite(LIVE_SQL))?
                    .query_row(params![hash, now], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?)
            })
            .await?;
        let Some((id, user_id, last_used)) = live else {
            return Ok(None);
        };
        if last_used.is_none_or(|at| at <= now - LAST_USED_RESOLUTION) {
            self.write(move |conn| {
                conn.prepare_cached(&for_sqlite(TOUCH_SQL))?
                    .execute(params![now, id])?;
                Ok(())
            })
            .await?;
        }
        Ok(Some(user_id))
    }

    async fn list_access_tokens(&self, user_id: Option<i64>) -> StoreResult<Vec<AccessTokenInfo>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&for_sqlite(LIST_SQL))?;
            let rows = statement.query_map(params![user_id], |r| {
                AccessTokenColumns::try_from(r).map(AccessTokenInfo::from)
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn revoke_access_token(
        &self,
        id: i64,
        owner: Option<i64>,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(move |conn| {
            Ok(conn.execute(&for_sqlite(REVOKE_SQL), params![now, id, owner])? == 1)
        })
        .await
    }
}
