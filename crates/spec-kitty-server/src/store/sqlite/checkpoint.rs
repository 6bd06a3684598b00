//! Checkpoints mostly off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the
//! write-ahead log past its threshold: that commit copies the log's pages
//! into the database file and waits for them to reach the disk (an
//! `fsync`), so one batch in about twenty paid for all of them. Profiled on
//! the ingest bench, the checkpoint was a seventh of the writer's time, and
//! more in wall-clock time, since the writer sat idle during the `fsync`.
//!
//! Here the writer only notes how long the log has grown (a WAL hook that
//! replaces the automatic checkpoint). Past [`CHECKPOINT_PAGES`] a thread
//! of its own, with its own connection, runs a `PASSIVE` checkpoint (which
//! blocks neither the writer nor the readers) while the writer goes on.
//!
//! That alone would let the log grow without end under a steady stream of
//! batches: SQLite starts the log over only when a transaction begins with
//! the whole log already copied, and the writer begins its next
//! transaction as soon as the last one commits, before the thread can
//! catch up (measured: a 138 MiB log for an 88 MiB database after 100,000
//! events). So past [`RESTART_PAGES`] the writer checkpoints itself once,
//! between two transactions: the thread has copied most of the log by
//! then, only the tail is left, and the next transaction starts the log
//! over. Durability is unchanged: with `synchronous = NORMAL` a commit
//! never waited for the disk, and a checkpoint still syncs the log before
//! it copies it.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use super::connection::connect;

/// Pages in the log after which the thread is asked to checkpoint:
/// SQLite's own default for its automatic checkpoint.
pub const CHECKPOINT_PAGES: c_int = 1000;

/// Pages in the log after which the writer copies the rest itself, so the
/// log starts over: the log stays under about this many pages (32 MiB with
/// 16 KiB pages).
pub const RESTART_PAGES: c_int = 2 * CHECKPOINT_PAGES;

thread_local! {
    /// Pages in the log after the last commit on this thread, as the WAL
    /// hook reported them; the writer reads (and clears) it right after
    /// its work, on the same thread.
    static LOG_PAGES: Cell<c_int> = const { Cell::new(0) };
}

fn note_log_pages(_wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    LOG_PAGES.set(pages);
    Ok(())
}

/// Makes `writer` note the log's length after each commit instead of
/// checkpointing inline (the hook replaces SQLite's automatic checkpoint).
pub fn watch_log(writer: &Connection) {
    writer.wal_hook(Some(note_log_pages));
}

/// The log's length the last commit on this thread reported, cleared.
fn take_log_pages() -> c_int {
    LOG_PAGES.replace(0)
}

/// The checkpointing thread: asked to run, it checkpoints once; asks that
/// come while it runs fold into one more run. Dropping it (with the store)
/// ends the thread and waits for it, so its connection is closed before
/// the process goes: SQLite removes the `-wal` file when the last
/// connection closes, which is how `restore` tells a cleanly stopped
/// server from a running one.
pub struct Checkpointer {
    ask: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: PathBuf) -> std::io::Result<Checkpointer> {
        let (ask, asked) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(path, asked))?;
        Ok(Checkpointer {
            ask: Some(ask),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint; never waits. `false` when the thread has
    /// ended (it could not open the database): the caller checkpoints
    /// itself, so the log stays bounded.
    pub fn request(&self) -> bool {
        match self.ask.as_ref().map(|ask| ask.try_send(())) {
            // Full: one is already asked for and will see these pages too.
            Some(Ok(()) | Err(TrySendError::Full(()))) => true,
            Some(Err(TrySendError::Disconnected(()))) | None => false,
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop after the checkpoint
        // it may be running.
        drop(self.ask.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the checkpoint thread panicked");
        }
    }
}

/// What the writer does after its work (every commit of it happened on
/// this thread): asks the thread to checkpoint past [`CHECKPOINT_PAGES`],
/// and finishes the checkpoint itself past [`RESTART_PAGES`] or when the
/// thread is gone. Returns the log's length the last commit reported.
pub fn after_writes(conn: &Connection, checkpointer: &Checkpointer) -> c_int {
    let pages = take_log_pages();
    if pages >= RESTART_PAGES || (pages >= CHECKPOINT_PAGES && !checkpointer.request()) {
        checkpoint_here(conn);
    }
    pages
}

/// A checkpoint on the caller's connection. Busy (another checkpoint is
/// running) is not an error: the next commit past the mark tries again.
fn checkpoint_here(conn: &Connection) {
    if let Err(e) = checkpoint(conn) {
        tracing::warn!("checkpoint failed: {e}");
    }
}

/// (busy, pages in the log, pages copied): busy only when another
/// checkpoint ran at the same time, which the next ask retries.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

fn run(path: PathBuf, asked: Receiver<()>) {
    let conn = match connect(&path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!("checkpoints cannot open the database: {e}");
            return;
        }
    };
    while asked.recv().is_ok() {
        match checkpoint(&conn) {
            Ok((busy, log, copied)) => tracing::debug!(busy, log, copied, "checkpoint"),
            Err(e) => tracing::warn!("checkpoint failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The writer's commits no longer checkpoint by themselves: the hook
    /// only notes the log's length. With [`after_writes`] after each
    /// commit, a stream of commits with no pause between them still sees
    /// the log start over again and again, so it stays bounded.
    #[test]
    fn the_log_starts_over_under_a_stream_of_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let writer = connect(&path).expect("writer");
        writer
            .execute_batch("CREATE TABLE t (x BLOB)")
            .expect("table");
        watch_log(&writer);
        let blob = vec![7_u8; 8000];
        let commit = || {
            writer
                .execute("INSERT INTO t (x) VALUES (?1)", [&blob])
                .expect("insert");
        };
        commit();
        let noted = take_log_pages();
        assert!(noted > 0, "the hook noted {noted} pages");
        assert_eq!(take_log_pages(), 0, "taking clears the note");

        // Alone, nothing copies the log: it only grows.
        for _ in 0..3 * CHECKPOINT_PAGES {
            commit();
        }
        let grown = take_log_pages();
        assert!(grown > CHECKPOINT_PAGES, "log at {grown} pages");

        let checkpointer = Checkpointer::start(path.clone()).expect("start");
        let (mut restarts, mut last, mut most, mut written) = (0, grown, 0, 0);
        for _ in 0..4 * RESTART_PAGES {
            commit();
            let pages = after_writes(&writer, &checkpointer);
            if pages < last {
                restarts += 1;
            } else {
                written += pages - last;
            }
            last = pages;
            most = most.max(pages);
        }
        assert!(restarts >= 2, "the log started over {restarts} times");
        assert!(
            most < written / 2,
            "the log reached {most} pages of the {written} written"
        );
        let reader = connect(&path).expect("reader");
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(
            rows,
            1 + 3 * i64::from(CHECKPOINT_PAGES) + 4 * i64::from(RESTART_PAGES)
        );
    }

    /// A checkpoint thread that cannot open the database ends, and says so
    /// to whoever asks, so the writer checkpoints itself instead.
    #[test]
    fn a_thread_that_cannot_open_the_database_says_it_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpointer =
            Checkpointer::start(dir.path().join("missing/db.sqlite")).expect("start");
        let deadline = Instant::now() + Duration::from_secs(30);
        while checkpointer.request() {
            assert!(Instant::now() < deadline, "the thread never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Dropped, the checkpointer has closed its connection: once the
    /// writer closes too, SQLite removes the log, as `restore` expects of
    /// a cleanly stopped server.
    #[test]
    fn dropping_it_closes_its_connection_so_the_log_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        let writer = connect(&path).expect("writer");
        writer
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .expect("write");
        let checkpointer = Checkpointer::start(path.clone()).expect("start");
        assert!(checkpointer.request(), "the checkpoint thread ended");
        let wal = dir.path().join("db.sqlite-wal");
        assert!(wal.exists(), "a database in WAL mode has a log while open");
        drop(checkpointer);
        drop(writer);
        assert!(!wal.exists(), "the log outlived every connection");
    }
}
