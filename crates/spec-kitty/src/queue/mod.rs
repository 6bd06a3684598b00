//! The offline queue: an idempotent outbox in SQLite.
//!
//! Every event waits here until the server has answered `success` or
//! `duplicate` for it; only then is it deleted. WAL mode and one
//! transaction per change make it safe to kill at any instant. Events are
//! replayed oldest first (timestamp, then queue id). The Lamport clock lives
//! in the same database, so a tick and the enqueue of its event are one
//! transaction and concurrent processes never reuse a value.
//!
//! The file is `~/.spec-kitty/events.db`: the Python client's queues are
//! `~/.spec-kitty/queue.db` and `~/.spec-kitty/queues/queue-<h>.db`, and
//! they must not share a file (see [`crate::queue::python`] for moving
//! events from those to this one).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::home::paths::{self, Home};

mod delivered;
pub mod python;
mod row;
mod schema;
mod stats;
mod writer;

pub use row::{Queueable, State};
use row::{Row, insert, queued_from};
pub use stats::{ParkedEvent, RetryBuckets, Stats};
pub use writer::Writer;

/// How long a process waits for another one holding the queue's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the queue could not be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot open the event queue {path}: {reason}", path = paths::display(path))]
    Open { path: PathBuf, reason: String },
    #[error("the event queue {path} is corrupt ({reason}). It was left as it is; move it aside (mv {path} {path}.bad) to start a new queue, and keep the old file if its events matter", path = paths::display(path))]
    Corrupt { path: PathBuf, reason: String },
    #[error("the event queue {path} is locked by another spec-kitty process; try again when it has finished", path = paths::display(path))]
    Locked { path: PathBuf },
    #[error("the event queue {path} was written by a newer spec-kitty (schema {found}, this one knows {known}); upgrade spec-kitty", path = paths::display(path))]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("event queue {path}: {source}", path = paths::display(path))]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("not a queueable event: {0}")]
    Invalid(String),
}

/// One queued event.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub ts_micros: i64,
    pub body: String,
    pub state: State,
    pub retry_count: i64,
    pub last_error: Option<String>,
}

/// Whether an enqueue added a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Added,
    AlreadyQueued,
}

/// A position in replay order: (timestamp, queue id).
pub type Cursor = (i64, i64);

/// The change a sync makes after one answer, applied in one transaction.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub delivered: Vec<i64>,
    pub rejected: Vec<(i64, String)>,
    pub parked: Vec<(i64, String)>,
}

/// The open queue.
pub struct Queue {
    conn: Connection,
    path: PathBuf,
}

fn now_micros() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

fn micros_of(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1000) as i64
}

fn classify(path: &Path, source: rusqlite::Error) -> QueueError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => QueueError::Corrupt {
            path,
            reason: source.to_string(),
        },
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            QueueError::Locked { path }
        }
        Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::PermissionDenied)
        | Some(ErrorCode::ReadOnly) => QueueError::Open {
            path,
            reason: source.to_string(),
        },
        _ => QueueError::Sql { path, source },
    }
}

impl Queue {
    /// Opens the queue, creating it (and `~/.spec-kitty`) if missing.
    pub fn open(home: &Home) -> Result<Queue, QueueError> {
        let path = home.queue();
        home.ensure().map_err(|e| QueueError::Open {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Queue::open_retrying(&path, true)
    }

    /// Opens the queue, retrying while another process holds a lock that
    /// SQLite reports at once instead of waiting in its busy handler (a
    /// file being created and switched to WAL by several processes at the
    /// same moment does this); a lock held for longer than the busy
    /// timeout is still reported.
    fn open_retrying(path: &Path, create: bool) -> Result<Queue, QueueError> {
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        loop {
            match Queue::open_at(path, create) {
                Err(QueueError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Opens the queue only if it exists (for commands without side
    /// effects, like `sync status`).
    pub fn open_existing(home: &Home) -> Result<Option<Queue>, QueueError> {
        let path = home.queue();
        if !path.exists() {
            return Ok(None);
        }
        Queue::open_retrying(&path, false).map(Some)
    }

    fn open_at(path: &Path, create: bool) -> Result<Queue, QueueError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let err = |e| classify(path, e);
        let mut conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // Each command is a short process: without this, every one of them
        // would checkpoint and delete the WAL on exit (four fsyncs), and the
        // next would create it again. SQLite still checkpoints as the WAL
        // grows, inside ordinary commits.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(err)?;
        schema::migrate(&mut conn, path)?;
        restrict_mode(path);
        Ok(Queue {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An IMMEDIATE transaction: the write lock from the start, so two
    /// processes never both read and then both try to write.
    fn begin(&mut self) -> Result<rusqlite::Transaction<'_>, QueueError> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.path, e))
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> QueueError + '_ {
        |e| classify(&self.path, e)
    }

    /// The number of queued events.
    pub fn len(&self) -> Result<i64, QueueError> {
        self.conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(self.err())
    }

    pub fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len()? == 0)
    }

    /// Queues one event (a JSON object with at least `event_id`,
    /// `event_type` and `timestamp`). Queuing an event id twice keeps the
    /// first.
    pub fn enqueue(&mut self, event: &impl Queueable) -> Result<Enqueued, QueueError> {
        let row = Row::of(event)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.path, e))?;
        let added = insert(&tx, &row).map_err(|e| classify(&self.path, e))?;
        tx.commit().map_err(|e| classify(&self.path, e))?;
        Ok(added)
    }

    /// Queues many events in one transaction (import).
    pub fn enqueue_all<T: Queueable>(&mut self, events: &[T]) -> Result<usize, QueueError> {
        let rows = events.iter().map(Row::of).collect::<Result<Vec<_>, _>>()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(&self.path, e))?;
        let mut added = 0;
        for row in &rows {
            if insert(&tx, row).map_err(|e| classify(&self.path, e))? == Enqueued::Added {
                added += 1;
            }
        }
        tx.commit().map_err(|e| classify(&self.path, e))?;
        Ok(added)
    }

    /// The current Lamport clock value (0 when never ticked).
    pub fn lamport(&self) -> Result<u64, QueueError> {
        let value: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'lamport'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())?;
        Ok(value.unwrap_or(0).max(0) as u64)
    }

    /// The next events to send after `cursor` in replay order, at most
    /// `max_events` and about `max_bytes` of JSON (always at least one).
    /// Parked events are skipped: they wait for `sync diagnose` and
    /// `sync discard`.
    pub fn next_batch(
        &self,
        cursor: Option<Cursor>,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<Queued>, QueueError> {
        let (ts, id) = cursor.unwrap_or((i64::MIN, i64::MIN));
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, event_id, event_type, ts_micros, body, state, retry_count, last_error
                 FROM events
                 WHERE state != 'parked' AND (ts_micros > ?1 OR (ts_micros = ?1 AND id > ?2))
                 ORDER BY ts_micros, id LIMIT ?3",
            )
            .map_err(self.err())?;
        let mut rows = stmt
            .query(params![ts, id, max_events as i64])
            .map_err(|e| classify(&self.path, e))?;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.next().map_err(|e| classify(&self.path, e))? {
            let queued = queued_from(row).map_err(|e| classify(&self.path, e))?;
            if !batch.is_empty() && bytes + queued.body.len() > max_bytes {
                break;
            }
            bytes += queued.body.len() + 1;
            batch.push(queued);
        }
        Ok(batch)
    }

    /// Every queued event in replay order, parked ones included, one at a
    /// time (for `sync diagnose` on large queues).
    pub fn for_each(&self, mut visit: impl FnMut(Queued)) -> Result<(), QueueError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, event_id, event_type, ts_micros, body, state, retry_count, last_error
                 FROM events ORDER BY ts_micros, id",
            )
            .map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(|e| classify(&self.path, e))?;
        while let Some(row) = rows.next().map_err(|e| classify(&self.path, e))? {
            visit(queued_from(row).map_err(|e| classify(&self.path, e))?);
        }
        Ok(())
    }

    /// Applies the answers to one batch: delete the delivered, count a
    /// retry on the rejected, park the poisoned.
    pub fn apply(&mut self, outcomes: &Outcomes) -> Result<(), QueueError> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let now = now_micros();
        let tx = self.begin()?;
        {
            delivered::delete_ids(&tx, &outcomes.delivered).map_err(err)?;
            let mut mark = tx
                .prepare_cached(
                    "UPDATE events SET state = ?4, retry_count = retry_count + 1,
                     last_error = ?2, last_attempt_at = ?3 WHERE id = ?1",
                )
                .map_err(err)?;
            for (state, events) in [
                (State::Rejected, &outcomes.rejected),
                (State::Parked, &outcomes.parked),
            ] {
                for (id, reason) in events {
                    mark.execute(params![id, reason, now, state.as_str()])
                        .map_err(err)?;
                }
            }
        }
        if !outcomes.delivered.is_empty() {
            delivered::stamp_sync(&tx, now).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// Removes the named events; returns how many were queued.
    pub fn discard(&mut self, event_ids: &[String]) -> Result<usize, QueueError> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut removed = 0;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM events WHERE event_id = ?1")
                .map_err(err)?;
            for id in event_ids {
                removed += stmt.execute([id]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(removed)
    }

    /// The ids among `event_ids` that are not in the queue, in the order
    /// given, so `sync discard` can name them before it asks anything.
    pub fn missing(&self, event_ids: &[String]) -> Result<Vec<String>, QueueError> {
        let err = |e| classify(&self.path, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")
            .map_err(err)?;
        let mut missing = Vec::new();
        for id in event_ids {
            if !stmt.exists([id]).map_err(err)? {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    /// Puts parked events back in line (all of them, or the named ones);
    /// returns how many.
    pub fn unpark(&mut self, event_ids: Option<&[String]>) -> Result<usize, QueueError> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let changed = match event_ids {
            None => tx
                .execute(
                    "UPDATE events SET state = 'pending' WHERE state = 'parked'",
                    [],
                )
                .map_err(err)?,
            Some(ids) => {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE events SET state = 'pending' WHERE state = 'parked' AND event_id = ?1",
                    )
                    .map_err(err)?;
                let mut changed = 0;
                for id in ids {
                    changed += stmt.execute([id]).map_err(err)?;
                }
                changed
            }
        };
        tx.commit().map_err(err)?;
        Ok(changed)
    }

    /// Whether any event would be sent by a drain (parked ones are not).
    pub fn has_sendable(&self) -> Result<bool, QueueError> {
        Ok(!self.next_batch(None, 1, 1)?.is_empty())
    }

    /// Ids of the events the server rejected or that were parked.
    pub fn failed_ids(&self) -> Result<Vec<String>, QueueError> {
        let mut stmt = self
            .conn
            .prepare("SELECT event_id FROM events WHERE state != 'pending' ORDER BY ts_micros, id")
            .map_err(self.err())?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.err())?
            .collect::<Result<Vec<String>, _>>()
            .map_err(self.err())?;
        Ok(ids)
    }
}

/// Narrows the queue files to 0600: events name projects and people.
fn restrict_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn queue() -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().join(".spec-kitty"));
        let q = Queue::open(&home).expect("opens");
        (dir, q)
    }

    fn event(id: &str, ts: &str) -> Value {
        json!({"event_id": id, "event_type": "WPStatusChanged", "timestamp": ts, "payload": {}})
    }

    #[test]
    fn replay_is_oldest_first_and_batches_respect_limits() {
        let (_dir, mut q) = queue();
        q.enqueue(&event("c", "2026-01-01T00:00:03Z"))
            .expect("enqueue");
        q.enqueue(&event("a", "2026-01-01T00:00:01Z"))
            .expect("enqueue");
        q.enqueue(&event("b", "2026-01-01T00:00:01Z"))
            .expect("enqueue");
        assert_eq!(
            q.enqueue(&event("a", "2026-01-01T00:00:09Z"))
                .expect("enqueue"),
            Enqueued::AlreadyQueued
        );
        let all = q.next_batch(None, 10, 1 << 20).expect("batch");
        let ids: Vec<_> = all.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let first = q.next_batch(None, 2, 1 << 20).expect("batch");
        assert_eq!(first.len(), 2);
        let last = first.last().expect("two");
        let rest = q
            .next_batch(Some((last.ts_micros, last.id)), 2, 1 << 20)
            .expect("batch");
        assert_eq!(rest.len(), 1);
        assert_eq!(
            q.next_batch(None, 10, 1).expect("batch").len(),
            1,
            "at least one"
        );
    }

    #[test]
    fn outcomes_delete_count_retries_and_park() {
        let (_dir, mut q) = queue();
        for (id, ts) in [
            ("a", "2026-01-01T00:00:01Z"),
            ("b", "2026-01-01T00:00:02Z"),
            ("c", "2026-01-01T00:00:03Z"),
        ] {
            q.enqueue(&event(id, ts)).expect("enqueue");
        }
        let batch = q.next_batch(None, 10, 1 << 20).expect("batch");
        q.apply(&Outcomes {
            delivered: vec![batch[0].id],
            rejected: vec![(batch[1].id, "bad lane".into())],
            parked: vec![(batch[2].id, "poison".into())],
        })
        .expect("apply");
        let left = q.next_batch(None, 10, 1 << 20).expect("batch");
        assert_eq!(left.len(), 1, "parked events are not resent");
        assert_eq!(left[0].retry_count, 1);
        assert_eq!(left[0].last_error.as_deref(), Some("bad lane"));
        let stats = q.stats().expect("stats");
        assert_eq!(stats.depth, 2);
        assert_eq!(stats.parked.len(), 1);
        assert_eq!(stats.retries.few, 2);
        assert!(stats.last_sync_at.is_some());
        assert_eq!(q.failed_ids().expect("ids"), ["b", "c"]);
        assert_eq!(q.discard(&["b".into(), "zzz".into()]).expect("discard"), 1);
    }

    #[test]
    fn lamport_ticks_forward_with_the_enqueue() {
        let (_dir, mut q) = queue();
        let mut tick_and_queue = |floor: u64, id: &str, fail: bool| {
            q.write(floor, |w| {
                let t = w.tick();
                w.enqueue(&json!({"event_id": id, "event_type": "T", "timestamp": "2026-01-01T00:00:00Z", "lamport_clock": t}))?;
                if fail {
                    return Err(QueueError::Invalid("the build failed".into()));
                }
                Ok(t)
            })
        };
        let first = tick_and_queue(0, "x1", false).expect("queued");
        let second = tick_and_queue(10, "x2", false).expect("queued");
        assert_eq!((first, second), (1, 11));
        assert!(tick_and_queue(0, "x3", true).is_err());
        assert_eq!(
            q.lamport().expect("clock"),
            11,
            "a failed write does not tick"
        );
        assert_eq!(q.len().expect("count"), 2, "nor queue");
    }

    #[test]
    fn corrupt_file_is_reported_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().join(".spec-kitty"));
        home.ensure().expect("dir");
        std::fs::write(
            home.queue(),
            b"this is not a database at all, not even close....",
        )
        .expect("write");
        let err = Queue::open(&home).err().expect("corrupt");
        assert!(matches!(err, QueueError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("events.db"), "{err}");
        assert!(home.queue().exists());
    }
}
