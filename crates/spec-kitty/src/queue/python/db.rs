//! One Python queue file, opened so that the Python client can go on using
//! it: never created, never migrated, never vacuumed, its journal mode left
//! alone; the only change ever made is deleting rows whose events are
//! already committed to our queue, as its own sync does after an upload.
//!
//! Its schema (2.1.3, `OfflineQueue._init_db`): table `queue` with `id
//! INTEGER PRIMARY KEY AUTOINCREMENT`, `event_id TEXT UNIQUE NOT NULL`,
//! `event_type`, `data` (the event JSON), `timestamp` (when it was queued,
//! epoch seconds), `retry_count` and, since a migration, `coalesce_key`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params};

use crate::home::paths;

/// The columns the import relies on; `coalesce_key` is left out because
/// files from before its migration lack it.
pub const REQUIRED_COLUMNS: [&str; 5] =
    ["event_id", "event_type", "data", "timestamp", "retry_count"];

/// Why a Python queue file could not be read or changed. Each message
/// names the file and says what to do; the import goes on with the others.
#[derive(Debug, thiserror::Error)]
pub enum PythonFileError {
    #[error("{path} is locked by another process (the Python client, most likely); let it finish, then run `spec-kitty sync import --python-queue` again", path = paths::display(path))]
    Locked { path: PathBuf },
    #[error("{path} is not a readable SQLite database ({reason}); it was left as it is. If the Python client cannot read it either, move it aside (mv {path} {path}.bad): its events cannot be recovered from it", path = paths::display(path))]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} holds no `queue` table, so it is not a Python client queue (or one of an unknown version); it was left as it is. Check which program wrote it", path = paths::display(path))]
    NoQueueTable { path: PathBuf },
    #[error("{path} has a `queue` table without the column(s) {missing}: an unknown schema, not the Python client 2.x's; it was left as it is. Check which program wrote it", path = paths::display(path), missing = missing.join(", "))]
    MissingColumns { path: PathBuf, missing: Vec<String> },
    #[error("cannot read {path}: {reason}. Make it readable (chmod 600 {path}) and run `spec-kitty sync import --python-queue` again", path = paths::display(path))]
    Unreadable { path: PathBuf, reason: String },
    #[error("the events read from {path} are in our queue, but could not be removed from it ({reason}); the Python client may send them too (the server drops the duplicate). Run `spec-kitty sync import --python-queue` again to remove them", path = paths::display(path))]
    NotRemoved { path: PathBuf, reason: String },
    #[error("cannot list {path}: {reason}. Make it readable (chmod 700 {path}) and run `spec-kitty sync import --python-queue` again", path = paths::display(path))]
    Directory { path: PathBuf, reason: String },
    #[error("{path}: {source}", path = paths::display(path))]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// One row as stored. The text columns are read loosely, so that one odd
/// row is refused on its own instead of failing the whole file.
pub struct PythonRow {
    pub rowid: i64,
    pub event_id: Option<String>,
    pub data: Result<String, String>,
}

/// An open Python queue file that has the expected schema.
pub struct PythonDb {
    conn: Connection,
    path: PathBuf,
}

fn classify(path: &Path, source: rusqlite::Error) -> PythonFileError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            PythonFileError::Corrupt {
                reason: source.to_string(),
                path,
            }
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            PythonFileError::Locked { path }
        }
        Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => {
            // SQLite only says "unable to open": the file system says why.
            let reason = match std::fs::File::open(&path) {
                Err(e) => e.to_string(),
                Ok(_) => source.to_string(),
            };
            PythonFileError::Unreadable { path, reason }
        }
        _ => PythonFileError::Sql { path, source },
    }
}

/// SQLITE_READONLY_ROLLBACK: a read-only connection met a hot journal.
const READONLY_ROLLBACK: std::ffi::c_int = 776;

fn is_hot_journal(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == READONLY_ROLLBACK)
}

impl PythonDb {
    /// Opens `path` (never creating it) and checks its schema. `Ok(None)`
    /// for a database without any table: a file the Python client created
    /// but never got to set up holds no events.
    pub fn open(
        path: &Path,
        writable: bool,
        busy: Duration,
    ) -> Result<Option<PythonDb>, PythonFileError> {
        match Self::open_as(path, writable, busy) {
            // A write that was killed midway (ours or the Python client's)
            // leaves a hot journal that only a writer may roll back; SQLite
            // refuses a reader until then. Rolling it back is what either
            // client does on its next open, and it changes no committed row.
            Err(PythonFileError::Sql { source, .. }) if !writable && is_hot_journal(&source) => {
                Self::open_as(path, true, busy)
            }
            other => other,
        }
    }

    fn open_as(
        path: &Path,
        writable: bool,
        busy: Duration,
    ) -> Result<Option<PythonDb>, PythonFileError> {
        let mode = if writable {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let err = |e| classify(path, e);
        let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(err)?;
        conn.busy_timeout(busy).map_err(err)?;
        let db = PythonDb {
            conn,
            path: path.to_path_buf(),
        };
        let columns = db.queue_columns()?;
        if columns.is_empty() {
            let tables: i64 = db
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(err)?;
            return if tables == 0 {
                Ok(None)
            } else {
                Err(PythonFileError::NoQueueTable {
                    path: path.to_path_buf(),
                })
            };
        }
        let missing: Vec<String> = REQUIRED_COLUMNS
            .iter()
            .filter(|c| !columns.iter().any(|have| have == *c))
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(PythonFileError::MissingColumns {
                path: path.to_path_buf(),
                missing,
            });
        }
        Ok(Some(db))
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> PythonFileError + '_ {
        |e| classify(&self.path, e)
    }

    fn queue_columns(&self) -> Result<Vec<String>, PythonFileError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info('queue')")
            .map_err(self.err())?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(names)
    }

    /// How many events wait in the file: one `count(*)`.
    pub fn count(&self) -> Result<i64, PythonFileError> {
        self.conn
            .query_row("SELECT count(*) FROM queue", [], |r| r.get(0))
            .map_err(self.err())
    }

    /// Up to `limit` rows after `after`, in row order. The rowid only grows
    /// (AUTOINCREMENT), so rows the Python client adds meanwhile come in
    /// a later chunk and none is read twice.
    pub fn chunk(&self, after: i64, limit: usize) -> Result<Vec<PythonRow>, PythonFileError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, event_id, data FROM queue WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            )
            .map_err(self.err())?;
        let mut rows = stmt
            .query(params![after, limit as i64])
            .map_err(self.err())?;
        let mut chunk = Vec::new();
        while let Some(row) = rows.next().map_err(self.err())? {
            let rowid: i64 = row.get(0).map_err(self.err())?;
            let event_id = text(row.get_ref(1).map_err(self.err())?).ok();
            let data = text(row.get_ref(2).map_err(self.err())?);
            chunk.push(PythonRow {
                rowid,
                event_id,
                data,
            });
        }
        Ok(chunk)
    }

    /// Deletes the rows of these events, in one transaction. Call only
    /// once our queue has committed them.
    pub fn remove(&mut self, event_ids: &[String]) -> Result<(), PythonFileError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let not_removed = |e: rusqlite::Error| PythonFileError::NotRemoved {
            path: path.clone(),
            reason: match classify(&path, e) {
                PythonFileError::Locked { .. } => "the file is locked".to_string(),
                PythonFileError::Unreadable { reason, .. } => reason,
                other => other.to_string(),
            },
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&not_removed)?;
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM queue WHERE event_id = ?1")
                .map_err(&not_removed)?;
            for id in event_ids {
                delete.execute([id]).map_err(&not_removed)?;
            }
        }
        tx.commit().map_err(&not_removed)
    }
}

/// A text column, read whether SQLite holds it as text or as a blob.
fn text(value: ValueRef<'_>) -> Result<String, String> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => String::from_utf8(bytes.to_vec())
            .map_err(|_| "the stored text is not UTF-8".to_string()),
        ValueRef::Null => Err("the stored value is NULL".to_string()),
        ValueRef::Integer(_) | ValueRef::Real(_) => {
            Err("the stored value is a number, not text".to_string())
        }
    }
}
