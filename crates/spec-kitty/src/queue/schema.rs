//! The queue's schema: versioned `.sql` files under `migrations/`, embedded
//! in the binary, and the runner that applies them on `PRAGMA user_version`.
//!
//! Why a runner of our own rather than `rusqlite_migration`: the version
//! that builds against our rusqlite (0.39) is 2.5, which reads
//! `user_version` before it opens its (deferred) transaction. Two commands
//! opening a fresh queue at once would then both see version 0, and the
//! second would fail on `CREATE TABLE` once the first committed. Here the
//! version is read again under an IMMEDIATE transaction (the write lock),
//! so the second process finds the work done. Later versions of the crate
//! need rusqlite 0.40, and two libsqlite3-sys versions cannot link.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{QueueError, classify};

/// The schema versions, oldest first: version N is `MIGRATIONS[N - 1]`.
/// Append a file, never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_queue.sql"),
    include_str!("../../migrations/0002_published.sql"),
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the queue at `path` to [`VERSION`]; refuses a newer one.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), QueueError> {
    let err = |e| classify(path, e);
    let version = user_version(conn).map_err(err)?;
    if version > VERSION {
        return Err(QueueError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: VERSION,
        });
    }
    if version == VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    // Re-read under the write lock: another process may have migrated.
    let current = user_version(&tx).map_err(err)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_current_queue_opens_unchanged() {
        let path = Path::new("memory");
        let mut conn = Connection::open_in_memory().expect("opens");
        migrate(&mut conn, path).expect("creates");
        conn.execute(
            "INSERT INTO events (event_id, event_type, ts_micros, body, queued_at)
             VALUES ('e1', 'T', 1, '{}', 1)",
            [],
        )
        .expect("inserts");
        migrate(&mut conn, path).expect("opens again");
        assert_eq!(user_version(&conn).expect("version"), VERSION);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("counts");
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_newer_queue_is_refused() {
        let mut conn = Connection::open_in_memory().expect("opens");
        conn.pragma_update(None, "user_version", VERSION + 1)
            .expect("sets");
        let err = migrate(&mut conn, Path::new("q.db")).expect_err("refused");
        assert!(
            matches!(err, QueueError::TooNew { found, known, .. } if found == VERSION + 1 && known == VERSION)
        );
    }
}
