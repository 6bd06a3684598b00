//! Finding and opening the database file.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

/// Reads the path out of `sqlite://PATH`, `sqlite:PATH` or a plain path.
pub fn path_from_url(url: &str) -> StoreResult<PathBuf> {
    let rest = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    } else {
        url
    };
    let rest = rest.split('?').next().unwrap_or_default();
    if rest.is_empty() {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    Ok(PathBuf::from(rest))
}

/// Creates the database's directory (0700) and an empty database file
/// (0600) if they are missing: the database holds password hashes, and
/// SQLite gives its -wal and -shm files the mode of the main file.
pub(super) fn prepare_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The page size of a new database. Events are rows of about 850 bytes
/// (the event as sent and the columns read from it); 16 KiB pages hold
/// about 19 of them against 4 for SQLite's default 4 KiB, so a batch
/// touches fewer pages, splits fewer and writes fewer WAL frame headers.
/// Measured on the ingest bench's rows (100,000 in 1000-row transactions,
/// from Python's sqlite3, so the figures include its own overhead):
/// 0.80-0.84 s with 4 KiB pages, 0.59-0.69 s with 16 KiB. A database made
/// before keeps its page size (SQLite cannot change it in WAL mode).
pub const PAGE_SIZE: i64 = 16 * 1024;

/// Opens a connection with the pragmas every connection needs.
pub fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Before WAL mode: once the database has a header its page size is
    // fixed, so this applies to a new (empty) database only.
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    ))
    .map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            path_from_url("sqlite:///tmp/a.db").ok(),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(
            path_from_url("sqlite:data/a.db").ok(),
            Some(PathBuf::from("data/a.db"))
        );
        assert_eq!(
            path_from_url("/tmp/b.db").ok(),
            Some(PathBuf::from("/tmp/b.db"))
        );
        assert!(path_from_url("mysql://x").is_err());
        assert!(path_from_url("sqlite://").is_err());
    }

    fn page_size(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size")
    }

    #[test]
    fn a_new_database_gets_large_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("new.db");
        prepare_private_file(&new).expect("creates");
        let conn = connect(&new).expect("opens");
        conn.execute("CREATE TABLE t (x)", []).expect("writes");
        assert_eq!(page_size(&conn), PAGE_SIZE);
        drop(conn);
        assert_eq!(page_size(&connect(&new).expect("opens again")), PAGE_SIZE);

        // A database written with SQLite's default pages, in WAL mode, as
        // every database before this change.
        let old = dir.path().join("old.db");
        {
            let conn = Connection::open(&old).expect("opens");
            conn.execute_batch(
                "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
            )
            .expect("writes");
        }
        let conn = connect(&old).expect("opens an old database");
        assert_eq!(page_size(&conn), 4096);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("reads");
        assert_eq!(rows, 1);
    }
}
