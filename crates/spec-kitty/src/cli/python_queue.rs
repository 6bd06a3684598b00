//! The Python client's queues on screen: `sync import --python-queue`, and
//! the lines `sync status` (with or without `--check`) gives them, so that
//! a user who switched clients sees the events still waiting there.

use serde_json::{Value, json};

use super::output::{CliError, CliResult};
use crate::home::paths::{self, Home};
use crate::queue::Queue;
use crate::queue::python::{
    self, FileImport, IMPORT_COMMAND, Imported, PythonFile, PythonFileError, Waiting,
};
use crate::session::credentials::{self, Stored};

/// Refusals printed per file; a file full of bad rows should not bury the
/// summary. The count of the rest is given.
const REFUSALS_SHOWN: usize = 50;

/// "(your current log-in: alice on https://..., team acme)".
fn label(file: &PythonFile) -> String {
    match &file.scoped {
        None => "logged-out queue".into(),
        Some(scoped) => match (&scoped.scope, scoped.current) {
            (Some(scope), true) => format!("your current log-in: {}", scope.describe()),
            (Some(scope), false) => {
                format!("the Python client's last log-in: {}", scope.describe())
            }
            (None, _) => "another log-in".into(),
        },
    }
}

/// The logged-in user's team, against which imported events are checked.
fn own_team(home: &Home) -> Option<String> {
    // With SPEC_KITTY_TOKEN set, the credentials file is not read.
    if crate::session::env_token::is_set() {
        return None;
    }
    match credentials::load(home) {
        Ok(Stored::Present(creds)) => creds.team_slug,
        Ok(Stored::Absent) => None,
        Err(e) => {
            eprintln!("note: {e}; the events' teams are not checked");
            None
        }
    }
}

/// `sync import --python-queue`.
pub fn import(home: &Home) -> CliResult {
    let own_team = own_team(home);
    let mut queue = Queue::open(home).map_err(CliError::from)?;
    let imported = python::import(home, &mut queue, own_team.as_deref()).map_err(CliError::from)?;
    super::queue_tools::warn_if_over_limit(home, &queue);
    if imported.files.is_empty() && imported.listing_error.is_none() {
        println!(
            "No Python client queue found ({} or {}/queue-*.db); nothing to import.",
            paths::display(&home.python_queue()),
            paths::display(&home.python_queues_dir())
        );
        return Ok(0);
    }
    for file in &imported.files {
        print_file(file);
    }
    if let Some(e) = &imported.listing_error {
        eprintln!("error: {e}");
    }
    println!("{}", summary(&imported));
    let refused: usize = imported.files.iter().map(|f| f.counts.refused.len()).sum();
    if imported.any_failed() {
        let failed = imported.files.iter().filter(|f| f.error.is_some()).count()
            + usize::from(imported.listing_error.is_some());
        eprintln!(
            "{failed} Python queue file(s) could not be read or changed (see above); the others were imported."
        );
        return Ok(1);
    }
    Ok(if refused > 0 { 1 } else { 0 })
}

/// One file's line on stdout, its refusals and error on stderr.
fn print_file(file: &FileImport) {
    let path = paths::display(&file.file.path);
    let c = &file.counts;
    if let (Some(e), 0) = (&file.error, c.found) {
        println!("{path} ({}): not read", label(&file.file));
        eprintln!("error: {e}");
        return;
    }
    println!(
        "{path} ({}): {} found, {} imported, {} already queued here, {} refused",
        label(&file.file),
        c.found,
        c.imported,
        c.already_queued,
        c.refused.len()
    );
    for refused in c.refused.iter().take(REFUSALS_SHOWN) {
        eprintln!(
            "  refused {} (left in {path}): {}",
            refused.event_id, refused.reason
        );
    }
    if c.refused.len() > REFUSALS_SHOWN {
        eprintln!(
            "  ... and {} more refused in {path}",
            c.refused.len() - REFUSALS_SHOWN
        );
    }
    if let Some(e) = &file.error {
        eprintln!("error: {e}");
    }
}

/// The last line: how many events are new, and what was not.
fn summary(imported: &Imported) -> String {
    let sum = |f: fn(&FileImport) -> usize| imported.files.iter().map(f).sum::<usize>();
    let new = sum(|f| f.counts.imported);
    let already = sum(|f| f.counts.already_queued);
    let refused = sum(|f| f.counts.refused.len());
    let mut line = if new > 0 {
        format!("Imported {new} new event(s) from the Python client's queues")
    } else {
        "Nothing new to import from the Python client's queues".to_string()
    };
    if already > 0 {
        line += &format!("; {already} were already queued here and were removed from them");
    }
    if refused > 0 {
        line += &format!("; {refused} refused, left where they were (see above)");
    }
    line.push('.');
    line
}

/// The events waiting in the Python client's queues, read-only.
pub struct Pending {
    waiting: Vec<Waiting>,
    listing_error: Option<PythonFileError>,
}

impl Pending {
    pub fn read(home: &Home) -> Pending {
        let (waiting, listing_error) = python::waiting(home);
        Pending {
            waiting,
            listing_error,
        }
    }

    fn total(&self) -> i64 {
        self.waiting
            .iter()
            .filter_map(|w| w.events.as_ref().ok())
            .sum()
    }

    fn unreadable(&self) -> usize {
        self.waiting.iter().filter(|w| w.events.is_err()).count()
            + usize::from(self.listing_error.is_some())
    }

    /// The `python_queue` object of `sync status --json` and `--check --json`.
    pub fn to_json(&self) -> Value {
        let files: Vec<Value> = self
            .waiting
            .iter()
            .map(|w| {
                let scoped = w.file.scoped.as_ref();
                json!({
                    "path": w.file.path,
                    "logged_out_queue": scoped.is_none(),
                    "scope": scoped.and_then(|s| s.scope.as_ref()).map(|s| json!({
                        "server": s.server, "user": s.user, "team": s.team,
                    })),
                    "current_login": scoped.is_some_and(|s| s.current),
                    "events": w.events.as_ref().ok(),
                    "error": w.events.as_ref().err().map(ToString::to_string),
                })
            })
            .collect();
        json!({
            "pending": self.total(),
            "files": files,
            "error": self.listing_error.as_ref().map(ToString::to_string),
            "import_command": IMPORT_COMMAND,
        })
    }

    /// The lines of `sync status`: nothing when no Python queue holds an
    /// event and none failed to open.
    pub fn print(&self) {
        if self.total() == 0 && self.unreadable() == 0 {
            return;
        }
        let read = self.waiting.iter().filter(|w| w.events.is_ok()).count();
        let mut head = format!(
            "Python queue: {} event(s) waiting in {read} file(s) of the Python client",
            self.total()
        );
        if self.unreadable() > 0 {
            head += &format!("; {} file(s) could not be read", self.unreadable());
        }
        if self.total() > 0 {
            head += &format!("; import them with `{IMPORT_COMMAND}`");
        }
        println!("{head}");
        for w in &self.waiting {
            let path = paths::display(&w.file.path);
            match &w.events {
                Ok(n) => println!("  {path}: {n} ({})", label(&w.file)),
                Err(e) => println!("  {e}"),
            }
        }
        if let Some(e) = &self.listing_error {
            println!("  {e}");
        }
    }

    /// The one line of `sync status --check`, if there is anything to say.
    pub fn check_line(&self) -> Option<String> {
        let (total, unreadable) = (self.total(), self.unreadable());
        if total == 0 && unreadable == 0 {
            return None;
        }
        let unread = if unreadable > 0 {
            format!(" ({unreadable} file(s) could not be read: see `spec-kitty sync status`)")
        } else {
            String::new()
        };
        Some(format!(
            "Python queue: {total} event(s) waiting in the Python client's queues{unread}; import them with `{IMPORT_COMMAND}`"
        ))
    }
}
