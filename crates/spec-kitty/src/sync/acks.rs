//! Delivered events waiting to be deleted from the queue.
//!
//! The server's `success` or `duplicate` makes an event deletable; it is
//! not deleted there and then but with the others of the last couple of
//! seconds, in one transaction, and a drain that empties the queue deletes
//! everything at once by emptying the table (see
//! [`Queue::delete_delivered`]). A `kill -9` before that loses nothing:
//! the events are still queued and the next run sends them again, which
//! the server answers with `duplicate` (it is idempotent on `event_id`).
//! The bounds below cap how much such a run sends twice.

use std::time::{Duration, Instant};

use crate::queue::{Queue, QueueError};

/// Delete at least this often while events are being delivered.
const FLUSH_AFTER: Duration = Duration::from_secs(2);

/// Delete once this many events wait (800 KiB of ids).
const FLUSH_EVENTS: usize = 100_000;

/// The ids of delivered events not yet deleted, and since when the oldest
/// of them waits.
#[derive(Debug, Default)]
pub(super) struct Acks {
    ids: Vec<i64>,
    since: Option<Instant>,
}

impl Acks {
    /// Adds delivered events; deletes them all when the bounds say so.
    pub(super) fn add(&mut self, ids: &[i64], queue: &mut Queue) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.since.get_or_insert_with(Instant::now);
        self.ids.extend_from_slice(ids);
        let due = self.ids.len() >= FLUSH_EVENTS
            || self
                .since
                .is_some_and(|since| since.elapsed() >= FLUSH_AFTER);
        if due { self.flush(queue) } else { Ok(()) }
    }

    /// Deletes every waiting event (the end of a run, whatever ended it).
    pub(super) fn flush(&mut self, queue: &mut Queue) -> Result<(), QueueError> {
        queue.delete_delivered(&self.ids)?;
        self.ids.clear();
        self.since = None;
        Ok(())
    }
}
