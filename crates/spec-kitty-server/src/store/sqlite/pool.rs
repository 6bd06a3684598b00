//! The store's connections: one writer behind a mutex, and a bounded pool
//! of reader handles, idle ones closed after [`READER_IDLE`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::checkpoint::{Checkpointer, after_writes, watch_log};
use super::connection::{connect, prepare_private_file};
use super::migrate;
use crate::store::{PoolUse, StoreError, StoreResult};

/// Reader handles open at most: reads beyond wait for one to come back.
/// SQLite in WAL mode reads in parallel, but two cores gain nothing from
/// more than a few.
pub const MAX_READERS: usize = 8;

/// An idle reader handle unused this long is closed.
pub const READER_IDLE: Duration = Duration::from_secs(60);

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Copies the log into the database file when the writer's commits
    /// have made it long, on a thread of its own.
    checkpointer: Checkpointer,
    /// Idle reader handles and when each was last used.
    readers: Mutex<Vec<(Connection, Instant)>>,
    /// One permit per reader handle that may be open.
    reader_slots: Arc<tokio::sync::Semaphore>,
}

impl Inner {
    fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Task("writer connection poisoned".into()))?;
        let result = f(&mut conn);
        // Every commit of the writer happens inside `f`, on this thread.
        after_writes(&conn, &self.checkpointer);
        result
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = {
            let mut pool = self
                .readers
                .lock()
                .map_err(|_| StoreError::Task("reader pool poisoned".into()))?;
            // Handles idle too long are closed (dropped) here.
            pool.retain(|(_, used)| used.elapsed() < READER_IDLE);
            pool.pop()
        };
        let conn = match pooled {
            Some((conn, _)) => conn,
            None => connect(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            pool.push((conn, Instant::now()));
        }
        result
    }
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn open(path: PathBuf) -> StoreResult<SqliteStore> {
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(path))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The blocking body of [`SqliteStore::open`], for tools without a runtime.
    pub fn open_blocking(path: PathBuf) -> StoreResult<SqliteStore> {
        prepare_private_file(&path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut writer = connect(&path)?;
        migrate(&mut writer)?;
        watch_log(&writer);
        let checkpointer = Checkpointer::start(path.clone()).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: format!("cannot start the checkpoint thread: {e}"),
        })?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                checkpointer,
                readers: Mutex::new(Vec::new()),
                reader_slots: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            }),
        })
    }

    /// How the reader handles are used right now.
    pub(super) fn reader_use(&self) -> PoolUse {
        // A reader holds its permit from before its handle is taken until
        // after it is back, so the permits out are the handles in use.
        let in_use = MAX_READERS.saturating_sub(self.inner.reader_slots.available_permits());
        let idle = self.inner.readers.lock().map_or(0, |pool| pool.len());
        PoolUse {
            in_use,
            idle,
            max: MAX_READERS,
        }
    }

    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.with_writer(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        // A permit per open handle: the handle count never passes the
        // permits, since a reader holds one until its handle is back.
        let slot = Arc::clone(&inner.reader_slots)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let result = inner.with_reader(f);
            drop(slot);
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A burst of reads never holds more than [`MAX_READERS`] handles, and
    /// the handles come back to the pool afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_share_a_bounded_pool_of_handles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("db.sqlite"))
            .await
            .expect("open");
        let busy = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let reads = (0..4 * MAX_READERS).map(|_| {
            let (store, busy, peak) = (store.clone(), Arc::clone(&busy), Arc::clone(&peak));
            tokio::spawn(async move {
                store
                    .read(move |conn| {
                        let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        // Hold the handle long enough for the others to pile up.
                        std::thread::sleep(Duration::from_millis(20));
                        let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0))?;
                        busy.fetch_sub(1, Ordering::SeqCst);
                        Ok(one)
                    })
                    .await
            })
        });
        for read in reads.collect::<Vec<_>>() {
            assert_eq!(read.await.expect("task").expect("read"), 1);
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= MAX_READERS, "{peak} handles in use at once");
        let idle = store.inner.readers.lock().expect("pool").len();
        assert!(
            (1..=MAX_READERS).contains(&idle),
            "{idle} idle handles kept"
        );
    }
}
