//! The SQLite schema: versioned `.sql` files under `migrations/sqlite/`,
//! applied in order, the version kept in `PRAGMA user_version`.
//!
//! A small runner of our own rather than `rusqlite_migration`: its
//! release for rusqlite 0.39 (2.5) reads `user_version` outside its
//! migration transaction, so two processes opening a new file at once (the
//! server and an admin command) could both run migration 1. Here the
//! version is read and written inside one immediate (write-locked)
//! transaction, so the second process waits and then finds nothing to do.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::{StoreError, StoreResult};

/// The migrations, one per version, in order. Never edit a file that has
/// shipped: add the next one.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../migrations/sqlite/0002_board.sql"),
    include_str!("../../../migrations/sqlite/0003_usernames.sql"),
    include_str!("../../../migrations/sqlite/0004_access_tokens.sql"),
    include_str!("../../../migrations/sqlite/0005_device_codes.sql"),
    include_str!("../../../migrations/sqlite/0006_sessions.sql"),
];

/// Brings the schema up to date. Safe when several processes start at once:
/// the version is read inside an immediate (write-locked) transaction.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        if index + 1 == 3 {
            refuse_case_clashes(&tx)?;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

/// Before migration 3 folds usernames to lower case: names the users that
/// differ only in case, which it cannot merge (they have separate
/// passwords and tokens), instead of failing on a bare UNIQUE constraint.
fn refuse_case_clashes(tx: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    let clash: Option<String> = tx.query_row(
        "SELECT group_concat(username || ' (id ' || id || ')', ', ') FROM
            (SELECT username, id FROM users
             WHERE lower(username) IN (SELECT lower(username) FROM users GROUP BY 1 HAVING count(*) > 1)
             ORDER BY id)",
        [],
        |r| r.get(0),
    )?;
    match clash {
        None => Ok(()),
        Some(clash) => Err(StoreError::Conflict(format!(
            "cannot upgrade the database: usernames are case-insensitive from schema version 3, and these differ only in case: {clash}. Rename all but one (sqlite3 DB \"UPDATE users SET username = 'NEW' WHERE id = ID\") and try again"
        ))),
    }
}
