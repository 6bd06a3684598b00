//! Log-in state on SQLite: refresh-token families and the failure counters
//! of the log-in throttle. Each step runs on the writer connection the
//! [`Store`](crate::store::Store) impl hands it.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::board::projection::for_sqlite;
use crate::store::{NewRefresh, Reservation, RotateOutcome, StoreResult, ThrottleKey, throttle};

/// Stores the first token of a new family.
pub(super) fn insert_refresh(conn: &Connection, token: NewRefresh) -> StoreResult<()> {
    insert_token(conn, &token, &token.family)?;
    Ok(())
}

/// Adds `token` to `family`: the one statement that stores a refresh
/// token, for a new family and for each rotation alike.
fn insert_token(conn: &Connection, token: &NewRefresh, family: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (jti, family, user_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![token.jti, family, token.user_id, token.expires_at])?;
    Ok(())
}

/// Trades `old_jti` for `new` in one immediate transaction, so two
/// presentations of one token never both rotate it.
pub(super) fn rotate_refresh(
    conn: &mut Connection,
    old_jti: &str,
    new: NewRefresh,
    now: i64,
    grace: i64,
) -> StoreResult<RotateOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let row: Option<(String, Option<i64>, bool, i64)> = tx
        .query_row(
            "SELECT family, used_at, revoked, expires_at FROM refresh_tokens WHERE jti = ?1",
            [&old_jti],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let outcome = match row {
        None => RotateOutcome::Unknown,
        Some((family, Some(used_at), false, expires_at))
            if now - used_at < grace
                && expires_at > now
                && {
                    let later: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family = ?1 AND jti <> ?2 AND used_at IS NOT NULL AND used_at >= ?3)",
                    params![family, old_jti, used_at],
                    |r| r.get(0),
                )?;
                    !later
                } =>
        {
            insert_token(&tx, &new, &family)?;
            RotateOutcome::Regranted
        }
        Some((family, Some(_), _, _)) => {
            tx.execute(
                "UPDATE refresh_tokens SET revoked = 1 WHERE family = ?1",
                [&family],
            )?;
            RotateOutcome::Reused
        }
        Some((_, None, true, _)) => RotateOutcome::Revoked,
        Some((_, None, false, expires_at)) if expires_at <= now => RotateOutcome::Revoked,
        Some((family, None, false, _)) => {
            tx.execute(
                "UPDATE refresh_tokens SET used_at = ?1 WHERE jti = ?2",
                params![now, old_jti],
            )?;
            insert_token(&tx, &new, &family)?;
            RotateOutcome::Rotated
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// Revokes every token of `family`.
pub(super) fn revoke_refresh_family(conn: &Connection, family: &str) -> StoreResult<()> {
    conn.prepare_cached("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?1")?
        .execute([&family])?;
    Ok(())
}

/// Counts a log-in attempt against every key, unless one of them must
/// wait first.
pub(super) fn reserve_login_attempt(
    conn: &mut Connection,
    keys: &[ThrottleKey],
    now: i64,
    window: i64,
) -> StoreResult<Reservation> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM login_failures WHERE at < ?1", [now - window])?;
    let mut wait: Option<i64> = None;
    {
        let mut count = tx.prepare_cached(
            "SELECT count(*), coalesce(min(at), 0) FROM login_failures WHERE key = ?1 AND at >= ?2",
        )?;
        for key in keys {
            let (n, oldest): (i64, i64) = count.query_row(params![key.key, now - window], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            if let Some(until) = key.wait(n, oldest, now, window) {
                wait = Some(wait.map_or(until, |w| w.max(until)));
            }
        }
    }
    let outcome = match wait {
        Some(retry_after) => Reservation::Throttled { retry_after },
        None => {
            let mut insert =
                tx.prepare_cached("INSERT INTO login_failures (key, at) VALUES (?1, ?2)")?;
            for key in keys {
                insert.execute(params![key.key, now])?;
            }
            Reservation::Granted
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// Forgets the failures counted against `username`, from every address.
pub(super) fn clear_user_login_failures(conn: &Connection, username: &str) -> StoreResult<()> {
    let (user, prefix) = (
        throttle::user(username),
        throttle::user_address_prefix(username),
    );
    conn.execute(&for_sqlite(throttle::CLEAR_USER_SQL), params![user, prefix])?;
    Ok(())
}

/// Gives back the attempt reserved at `at`, and clears the key `clear`.
pub(super) fn release_login_attempt(
    conn: &mut Connection,
    keys: &[String],
    at: i64,
    clear: Option<&str>,
) -> StoreResult<()> {
    let tx = conn.transaction()?;
    for key in keys {
        tx.execute(
            "DELETE FROM login_failures WHERE rowid = (SELECT rowid FROM login_failures WHERE key = ?1 AND at = ?2 LIMIT 1)",
            params![key, at],
        )?;
    }
    if let Some(clear) = clear {
        tx.execute("DELETE FROM login_failures WHERE key = ?1", [clear])?;
    }
    tx.commit()?;
    Ok(())
}
