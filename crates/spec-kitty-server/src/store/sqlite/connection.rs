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

/// Opens a connection with the pragmas every connection needs.
pub fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
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
}
