//! Moving the events waiting in the Python client's queue
//! (`~/.spec-kitty/queue.db`, table `queue`, the event JSON in `data`) into
//! ours, so a user can switch clients without losing or duplicating any.
//!
//! Events are first committed to our queue, then deleted from the Python
//! one. A crash between the two leaves an event in both; running the import
//! again finds it already queued (the event id is unique) and only deletes
//! it from the Python queue, and the server's duplicate detection would
//! absorb a double send anyway.

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::home::paths::{self, Home};
use crate::queue::{Queue, QueueError};

/// Why the Python queue could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PythonQueueError {
    #[error("no Python client queue at {path}; nothing to import", path = paths::display(path))]
    Absent { path: PathBuf },
    #[error("cannot read the Python client queue {path}: {reason}", path = paths::display(path))]
    Unreadable { path: PathBuf, reason: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Moved {
    /// Events now in our queue and gone from the Python one.
    pub moved: usize,
    /// Of those, how many were in our queue already.
    pub already_queued: usize,
    /// Rows left in the Python queue because they are not events we can
    /// read, with the reason.
    pub left: Vec<(String, String)>,
}

/// Moves every readable event from the Python queue into `queue`.
pub fn import(home: &Home, queue: &mut Queue) -> Result<Moved, PythonQueueError> {
    let path = home.python_queue();
    if !path.exists() {
        return Err(PythonQueueError::Absent { path });
    }
    let unreadable = |e: rusqlite::Error| PythonQueueError::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    };
    let mut conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(unreadable)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(unreadable)?;
    let rows: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT event_id, data FROM queue ORDER BY timestamp, id")
            .map_err(unreadable)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(unreadable)?
            .collect::<Result<_, _>>()
            .map_err(unreadable)?
    };
    let mut result = Moved::default();
    let mut events = Vec::new();
    let mut ids = Vec::new();
    for (event_id, data) in rows {
        match serde_json::from_str::<Value>(&data) {
            Ok(event)
                if event.get("event_id").and_then(Value::as_str) == Some(event_id.as_str())
                    && event.get("event_type").and_then(Value::as_str).is_some() =>
            {
                events.push(event);
                ids.push(event_id);
            }
            Ok(_) => result.left.push((
                event_id,
                "the stored JSON lacks a matching event_id or an event_type".into(),
            )),
            Err(e) => result
                .left
                .push((event_id, format!("the stored JSON is unreadable: {e}"))),
        }
    }
    let added = queue.enqueue_all(&events)?;
    result.moved = ids.len();
    result.already_queued = ids.len() - added;
    let tx = conn.transaction().map_err(unreadable)?;
    {
        let mut delete = tx
            .prepare("DELETE FROM queue WHERE event_id = ?1")
            .map_err(unreadable)?;
        for id in &ids {
            delete.execute([id]).map_err(unreadable)?;
        }
    }
    tx.commit().map_err(unreadable)?;
    Ok(result)
}
