//! Log-in state on PostgreSQL: refresh-token families and the failure
//! counters of the log-in throttle, shared by every instance.

use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::store::{
    NewRefresh, Reservation, RotateOutcome, StoreError, StoreResult, ThrottleKey, throttle,
};

/// The first key of the two-key advisory locks that serialize log-in
/// attempts on one throttle key (the second is the key's hash); two-key
/// locks never meet the one-key lock of the migrations.
const LOGIN_LOCK_SPACE: i32 = 0x4c6f_6731;

/// Stores the first token of a new family.
pub(super) async fn insert_refresh(pool: &PgPool, token: NewRefresh) -> StoreResult<()> {
    insert_token(pool, &token, &token.family).await?;
    Ok(())
}

/// Adds `token` to `family`: the one statement that stores a refresh
/// token, for a new family and for each rotation alike.
async fn insert_token<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    token: &NewRefresh,
    family: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&token.jti)
    .bind(family)
    .bind(token.user_id)
    .bind(token.expires_at)
    .execute(executor)
    .await?;
    Ok(())
}

/// Trades `old_jti` for `new` in one transaction that locks the old row.
pub(super) async fn rotate_refresh(
    pool: &PgPool,
    old_jti: &str,
    new: NewRefresh,
    now: i64,
    grace: i64,
) -> StoreResult<RotateOutcome> {
    let mut tx = pool.begin().await?;
    // FOR UPDATE: two instances presenting the same token serialize here,
    // and the second sees it used.
    let row = sqlx::query(
        "SELECT family, used_at, revoked, expires_at FROM refresh_tokens WHERE jti = $1 FOR UPDATE",
    )
    .bind(old_jti)
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = match row {
        None => RotateOutcome::Unknown,
        Some(row) => {
            let family: String = row.try_get(0)?;
            let used_at: Option<i64> = row.try_get(1)?;
            let revoked: bool = row.try_get(2)?;
            let expires_at: i64 = row.try_get(3)?;
            let regrant = match used_at {
                Some(used_at) if !revoked && expires_at > now && now - used_at < grace => {
                    let later: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family = $1 AND jti <> $2 AND used_at IS NOT NULL AND used_at >= $3)",
                    )
                    .bind(&family)
                    .bind(old_jti)
                    .bind(used_at)
                    .fetch_one(&mut *tx)
                    .await?;
                    !later
                }
                _ => false,
            };
            if regrant {
                insert_token(&mut *tx, &new, &family).await?;
                RotateOutcome::Regranted
            } else if used_at.is_some() {
                sqlx::query("UPDATE refresh_tokens SET revoked = TRUE WHERE family = $1")
                    .bind(&family)
                    .execute(&mut *tx)
                    .await?;
                RotateOutcome::Reused
            } else if revoked || expires_at <= now {
                RotateOutcome::Revoked
            } else {
                sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE jti = $2")
                    .bind(now)
                    .bind(old_jti)
                    .execute(&mut *tx)
                    .await?;
                insert_token(&mut *tx, &new, &family).await?;
                RotateOutcome::Rotated
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Revokes every token of `family`.
pub(super) async fn revoke_refresh_family(pool: &PgPool, family: &str) -> StoreResult<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked = TRUE WHERE family = $1")
        .bind(family)
        .execute(pool)
        .await?;
    Ok(())
}

/// Counts a log-in attempt against every key, unless one of them must
/// wait first.
pub(super) async fn reserve_login_attempt(
    pool: &PgPool,
    keys: &[ThrottleKey],
    now: i64,
    window: i64,
) -> StoreResult<Reservation> {
    let mut tx = pool.begin().await?;
    // Attempts on the same keys serialize here, on every instance; in
    // key order, so two attempts never wait on each other crosswise.
    let mut sorted: Vec<&ThrottleKey> = keys.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for key in &sorted {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOGIN_LOCK_SPACE)
            .bind(&key.key)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(now - window)
        .execute(&mut *tx)
        .await?;
    let mut wait: Option<i64> = None;
    for key in keys {
        let row = sqlx::query(
            "SELECT count(*), coalesce(min(at), 0) FROM login_failures WHERE key = $1 AND at >= $2",
        )
        .bind(&key.key)
        .bind(now - window)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(until) = key.wait(row.try_get(0)?, row.try_get(1)?, now, window) {
            wait = Some(wait.map_or(until, |w| w.max(until)));
        }
    }
    let outcome = match wait {
        Some(retry_after) => Reservation::Throttled { retry_after },
        None => {
            for key in keys {
                sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                    .bind(&key.key)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            Reservation::Granted
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Forgets the failures counted against `username`, from every address.
pub(super) async fn clear_user_login_failures(pool: &PgPool, username: &str) -> StoreResult<()> {
    sqlx::query(throttle::CLEAR_USER_SQL)
        .bind(throttle::user(username))
        .bind(throttle::user_address_prefix(username))
        .execute(pool)
        .await?;
    Ok(())
}

/// Gives back the attempt reserved at `at`, and clears the key `clear`.
pub(super) async fn release_login_attempt(
    pool: &PgPool,
    keys: &[String],
    at: i64,
    clear: Option<&str>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    for key in keys {
        sqlx::query(
            "DELETE FROM login_failures WHERE ctid = (SELECT ctid FROM login_failures WHERE key = $1 AND at = $2 LIMIT 1)",
        )
        .bind(key)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(clear) = clear {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(clear)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await.map_err(StoreError::from)
}
