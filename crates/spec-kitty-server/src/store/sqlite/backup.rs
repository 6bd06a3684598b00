//! A consistent copy of a SQLite database, taken while the server runs,
//! and putting one back while it is stopped.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::connection::{connect, prepare_private_file};
use crate::store::{StoreError, StoreResult};

fn open_error(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Writes a consistent snapshot of the database at `db` to `to` (which must
/// not exist), with `VACUUM INTO`: it reads one transaction's view, so
/// writes going on meanwhile (a running server, in WAL mode) are either
/// wholly in the copy or wholly not. The copy is made 0600 before anything
/// is written to it: it holds password hashes.
pub fn backup(db: &Path, to: &Path) -> StoreResult<()> {
    if !db.exists() {
        return Err(open_error(
            db,
            "no database here (check --data-dir / --database)",
        ));
    }
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| match e.kind() {
            // Never overwritten: it may be the only good copy.
            std::io::ErrorKind::AlreadyExists => StoreError::Conflict(format!(
                "{} already exists; a backup never replaces a file: choose a new name or move the old one aside",
                to.display()
            )),
            _ => open_error(to, e),
        })?;
    let result = (|| {
        let conn = connect(db)?;
        let target = to
            .to_str()
            .ok_or_else(|| open_error(to, "the path is not UTF-8"))?;
        conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(to);
    }
    result
}

/// Replaces the database at `db` with the backup `from`, for a stopped
/// server. The backup is checked first (a SQLite file that passes
/// `integrity_check` and holds this server's schema), copied beside `db`
/// and renamed over it, so a failure leaves the old database in place.
/// A `-wal` file beside `db` means a server still has it open (or stopped
/// uncleanly): refused unless `force`.
pub fn restore(from: &Path, db: &Path, force: bool) -> StoreResult<()> {
    let wal = sidecar(db, "-wal");
    if wal.exists() && !force {
        return Err(StoreError::Conflict(format!(
            "{} exists: a server may still be running on this database. Stop it (a clean stop removes that file), or pass --force if it is stopped",
            wal.display()
        )));
    }
    {
        let check = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| open_error(from, e))?;
        let verdict: String = check
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| open_error(from, format!("not a SQLite database: {e}")))?;
        if verdict != "ok" {
            return Err(open_error(from, format!("damaged: {verdict}")));
        }
        let ours: bool = check
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| open_error(from, e))?;
        if !ours {
            return Err(open_error(from, "not a spec-kitty-server database"));
        }
    }
    let staged = sidecar(db, ".restoring");
    let _ = std::fs::remove_file(&staged);
    prepare_private_file(&staged).map_err(|e| open_error(&staged, e))?;
    let result = (|| {
        std::fs::copy(from, &staged).map_err(|e| open_error(&staged, e))?;
        // `copy` gives the copy the backup's mode; the database is 0600.
        std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| open_error(&staged, e))?;
        for leftover in ["-wal", "-shm"] {
            let path = sidecar(db, leftover);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| open_error(&path, e))?;
            }
        }
        std::fs::rename(&staged, db).map_err(|e| open_error(db, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
