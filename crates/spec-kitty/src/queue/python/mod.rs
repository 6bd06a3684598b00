//! Moving the events waiting in the Python client's queues into ours, so a
//! user can switch clients without losing or duplicating any.
//!
//! The Python client 2.1.3 keeps its queue in `~/.spec-kitty/queue.db`
//! while logged out, and in `~/.spec-kitty/queues/queue-<h>.db`, one file
//! per log-in scope, while logged in (see [`scope`]). Any of them may hold
//! events, so every one is read.
//!
//! Events are first committed to our queue, then deleted from the Python
//! file, a chunk at a time. A crash between the two leaves an event in
//! both; running the import again finds it already queued (the event id is
//! unique) and only deletes it from the Python file, and the server's
//! duplicate detection would absorb a double send anyway. A file that
//! cannot be read is reported and skipped; the others are still imported.

use std::path::PathBuf;
use std::time::Duration;

use crate::home::Home;
use crate::queue::{Queue, QueueError};

mod check;
mod db;
pub mod scope;

pub use check::Refused;
use db::PythonDb;
pub use db::PythonFileError;
pub use scope::Scope;

/// How long the import waits for a Python process that holds a file's
/// lock: it only holds it for one statement, so longer means stuck.
const IMPORT_BUSY: Duration = Duration::from_secs(3);

/// How long `sync status` waits for a lock: it must stay quick, and a busy
/// file is reported as such.
const STATUS_BUSY: Duration = Duration::from_millis(250);

/// Rows read, queued and removed at a time: memory stays bounded on a full
/// Python queue (100 000 events by default), and a kill loses none of a
/// chunk's events, only the removal of its rows.
const CHUNK: usize = 500;

/// The command that imports the Python client's queues, for messages.
pub const IMPORT_COMMAND: &str = "spec-kitty sync import --python-queue";

/// One Python queue file and the log-in it belongs to, when known.
#[derive(Debug, Clone)]
pub struct PythonFile {
    pub path: PathBuf,
    /// `None` for `queue.db`, the logged-out queue.
    pub scoped: Option<ScopedFile>,
}

/// What is known of a scoped file's log-in.
#[derive(Debug, Clone)]
pub struct ScopedFile {
    /// The scope whose hash names the file, if one we know of does (the
    /// current credentials or the Python client's `active_queue_scope`).
    pub scope: Option<Scope>,
    /// Whether it is the scope of the current credentials.
    pub current: bool,
}

/// The Python queue files that exist, the logged-out one first, then the
/// scoped ones by name. The second value is the error of listing
/// `queues/`, when it exists but cannot be read.
pub fn files(home: &Home) -> (Vec<PythonFile>, Option<PythonFileError>) {
    let mut found = Vec::new();
    let legacy = home.python_queue();
    if legacy.exists() {
        found.push(PythonFile {
            path: legacy,
            scoped: None,
        });
    }
    let dir = home.python_queues_dir();
    let names = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with("queue-") && name.ends_with(".db"))
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            let error = PythonFileError::Directory {
                path: dir,
                reason: e.to_string(),
            };
            return (found, Some(error));
        }
    };
    let current = scope::current(home);
    let last_used = scope::last_used(home);
    let mut names = names;
    names.sort();
    for name in names {
        let is = |scope: &Option<Scope>| scope.as_ref().is_some_and(|s| s.file_name() == name);
        let scoped = ScopedFile {
            current: is(&current),
            scope: [&current, &last_used]
                .into_iter()
                .find(|s| is(s))
                .cloned()
                .flatten(),
        };
        found.push(PythonFile {
            path: dir.join(&name),
            scoped: Some(scoped),
        });
    }
    (found, None)
}

/// What the import did with one file.
#[derive(Debug, Default)]
pub struct FileCounts {
    /// Rows read.
    pub found: usize,
    /// Events new to our queue.
    pub imported: usize,
    /// Events our queue held already (an earlier, interrupted import).
    pub already_queued: usize,
    /// Rows left in the file, with the reason.
    pub refused: Vec<Refused>,
}

/// One file's import: its counts so far, and why it stopped, if it did.
#[derive(Debug)]
pub struct FileImport {
    pub file: PythonFile,
    pub counts: FileCounts,
    pub error: Option<PythonFileError>,
}

/// The whole import.
#[derive(Debug, Default)]
pub struct Imported {
    pub files: Vec<FileImport>,
    /// `queues/` exists but could not be listed.
    pub listing_error: Option<PythonFileError>,
}

impl Imported {
    /// Whether some file (or `queues/`) could not be read or changed.
    pub fn any_failed(&self) -> bool {
        self.listing_error.is_some() || self.files.iter().any(|f| f.error.is_some())
    }
}

/// Imports every Python queue file into `queue`. `own_team` is the
/// logged-in user's team, if known: events naming another team are
/// refused. Fails only when our own queue fails (nothing is removed from a
/// Python file before our queue has committed its events).
pub fn import(
    home: &Home,
    queue: &mut Queue,
    own_team: Option<&str>,
) -> Result<Imported, QueueError> {
    let (files, listing_error) = files(home);
    let mut imported = Imported {
        files: Vec::new(),
        listing_error,
    };
    for file in files {
        let mut counts = FileCounts::default();
        let error = import_file(&file, queue, own_team, &mut counts)?.err();
        imported.files.push(FileImport {
            file,
            counts,
            error,
        });
    }
    Ok(imported)
}

/// Imports one file, chunk by chunk, into `counts`. The outer error is our
/// queue's (fatal); the inner one the Python file's (reported, and the
/// import goes on with the next file).
fn import_file(
    file: &PythonFile,
    queue: &mut Queue,
    own_team: Option<&str>,
    counts: &mut FileCounts,
) -> Result<Result<(), PythonFileError>, QueueError> {
    let mut db = match PythonDb::open(&file.path, true, IMPORT_BUSY) {
        Ok(Some(db)) => db,
        Ok(None) => return Ok(Ok(())),
        Err(e) => return Ok(Err(e)),
    };
    let mut after = i64::MIN;
    loop {
        let rows = match db.chunk(after, CHUNK) {
            Ok(rows) if rows.is_empty() => return Ok(Ok(())),
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e)),
        };
        after = rows.last().map_or(after, |r| r.rowid);
        counts.found += rows.len();
        let mut ids = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            match check::judge(row, own_team) {
                Ok((id, event)) => {
                    ids.push(id);
                    events.push(event);
                }
                Err(refused) => counts.refused.push(refused),
            }
        }
        let added = queue.enqueue_all(&events)?;
        counts.imported += added;
        counts.already_queued += events.len() - added;
        if let Err(e) = db.remove(&ids) {
            return Ok(Err(e));
        }
    }
}

/// Events waiting in one Python queue file, for `sync status`.
#[derive(Debug)]
pub struct Waiting {
    pub file: PythonFile,
    pub events: Result<i64, PythonFileError>,
}

/// Counts the events in every Python queue file: opened read-only, one
/// `count(*)` each, so `sync status` changes nothing and stays fast.
pub fn waiting(home: &Home) -> (Vec<Waiting>, Option<PythonFileError>) {
    let (files, listing_error) = files(home);
    let waiting = files
        .into_iter()
        .map(|file| {
            let events = PythonDb::open(&file.path, false, STATUS_BUSY)
                .and_then(|db| db.map_or(Ok(0), |db| db.count()));
            Waiting { file, events }
        })
        .collect();
    (waiting, listing_error)
}
