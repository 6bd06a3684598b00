//! `-q`, `-v` and `-vv`, decided once per process.
//!
//! `-q` drops progress and informational lines (results and errors are
//! always printed; errors always to stderr). `-v` says what the command
//! does: which server, which files. `-vv` adds one line per HTTP request on
//! stderr: method, URL, status and time. Never a header or a body, so no
//! token or password can reach the trace.

use std::sync::atomic::{AtomicI8, Ordering};
use std::time::Duration;

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Quiet,
    Normal,
    Verbose,
    Trace,
}

static LEVEL: AtomicI8 = AtomicI8::new(0);

/// Records the level from the flags: `quiet` wins over nothing, and the
/// parser refuses `-q` together with `-v`.
pub fn set(quiet: bool, verbose: u8) {
    let value = match (quiet, verbose) {
        (true, _) => -1,
        (false, 0) => 0,
        (false, 1) => 1,
        (false, _) => 2,
    };
    LEVEL.store(value, Ordering::Relaxed);
}

pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        i8::MIN..=-1 => Level::Quiet,
        0 => Level::Normal,
        1 => Level::Verbose,
        _ => Level::Trace,
    }
}

/// Whether progress and informational lines are wanted (not `-q`).
pub fn informational() -> bool {
    level() > Level::Quiet
}

/// A `-v` line on stderr: what the command does.
pub fn verbose(message: impl std::fmt::Display) {
    if level() >= Level::Verbose {
        eprintln!("spec-kitty: {message}");
    }
}

/// A `-vv` line on stderr for one HTTP exchange. `url` must carry no
/// secret (the client's URLs are the server root plus a contract path;
/// a server URL with credentials in it is refused when configured).
pub fn http(method: &str, url: &str, outcome: Result<u16, &str>, elapsed: Duration) {
    if level() < Level::Trace {
        return;
    }
    let ms = elapsed.as_secs_f64() * 1000.0;
    match outcome {
        Ok(status) => eprintln!("http: {method} {url} -> {status} ({ms:.0} ms)"),
        Err(reason) => eprintln!("http: {method} {url} -> failed: {reason} ({ms:.0} ms)"),
    }
}
