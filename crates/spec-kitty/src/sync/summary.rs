//! What a drain reports: its summary, the events that did not get
//! through, and the stop that ended it early, worded for the user.

use std::collections::HashMap;

use serde::Serialize;

use super::MAX_PARKED_PER_RUN;
use crate::net::http::{HttpError, Reply};
use crate::outcome::Outcome;
use crate::session::AuthError;

/// What kind of trouble a failure is, and so what the user should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The server refused the event itself: run `sync diagnose`.
    Schema,
    /// Log in again, or fix team membership.
    Auth,
    /// The server or the network failed: retry later.
    Server,
    /// Anything else: see `--report`.
    Unknown,
}

impl Category {
    pub fn advice(self) -> &'static str {
        match self {
            Category::Schema => "schema mismatch: run `spec-kitty sync diagnose`",
            Category::Auth => "authentication: run `spec-kitty auth login`",
            Category::Server => "server: retry later",
            Category::Unknown => "unknown: see the --report file",
        }
    }
}

/// One event that did not get through.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub event_id: String,
    pub event_type: String,
    pub category: Category,
    pub reason: String,
    /// Whether the event was set aside (parked) rather than kept for retry.
    pub parked: bool,
    pub retry_count: i64,
}

/// Why a drain ended before the queue did.
#[derive(Debug, Clone, Serialize)]
pub struct Stop {
    pub category: Category,
    pub outcome: Outcome,
    pub message: String,
}

/// The result of a drain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub synced: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub remaining: i64,
    pub failures: Vec<Failure>,
    pub stopped: Option<Stop>,
    /// The user interrupted the drain (Ctrl-C): it stopped after the
    /// batches in flight, whose results are written.
    pub interrupted: bool,
}

impl Summary {
    /// Failure counts per category, the stop included.
    pub fn categories(&self) -> HashMap<Category, u64> {
        let mut counts = HashMap::new();
        for failure in &self.failures {
            *counts.entry(failure.category).or_default() += 1;
        }
        if let Some(stop) = &self.stopped {
            counts.entry(stop.category).or_default();
        }
        counts
    }
}

/// Whose trouble an outcome is: the user's session, or the server's.
fn category_of(outcome: Outcome) -> Category {
    match outcome {
        Outcome::NotAuthenticated
        | Outcome::SessionExpired
        | Outcome::AuthenticationFailed
        | Outcome::PermissionDenied
        | Outcome::CredentialsUnreadable
        | Outcome::CredentialsInvalid
        | Outcome::CredentialsBusy => Category::Auth,
        Outcome::Connected
        | Outcome::Unreachable
        | Outcome::CertificateUntrusted
        | Outcome::UnexpectedStatus
        | Outcome::Throttled => Category::Server,
    }
}

pub(super) fn stop_for_auth(e: AuthError) -> Stop {
    let outcome = Outcome::from(&e);
    Stop {
        category: category_of(outcome),
        outcome,
        message: format!("{e} Events kept for later sync."),
    }
}

pub(super) fn stop_for_network(e: HttpError) -> Stop {
    Stop {
        category: Category::Server,
        outcome: Outcome::from(&e),
        message: format!("Server unreachable ({e}); events kept for later sync."),
    }
}

pub(super) fn stop_for_too_many_parked(reply: &Reply) -> Stop {
    Stop {
        category: Category::Server,
        outcome: Outcome::UnexpectedStatus,
        message: format!(
            "The server refused {MAX_PARKED_PER_RUN} events one by one (HTTP {}: {}); stopping in case the server, not the events, is at fault. Events kept for later sync.",
            reply.status,
            reply.error_text()
        ),
    }
}

/// The stop for a whole-batch answer other than success, 400 or 413.
pub(super) fn stop_for_status(reply: &Reply) -> Stop {
    match reply.status {
        401 => Stop {
            category: Category::Auth,
            outcome: Outcome::AuthenticationFailed,
            message: "Authentication failed: the server refused the token after a refresh. Run `spec-kitty auth login`; events kept for later sync.".into(),
        },
        403 => Stop {
            category: Category::Auth,
            outcome: Outcome::PermissionDenied,
            message: format!(
                "Permission denied: {}. Check team membership for this project; events kept for later sync.",
                reply.error_text()
            ),
        },
        status => Stop {
            category: Category::Server,
            outcome: Outcome::UnexpectedStatus,
            message: format!(
                "Server error (HTTP {status}: {}); events kept for later sync.",
                reply.error_text()
            ),
        },
    }
}

pub(super) fn stop_for_compression(e: &std::io::Error) -> Stop {
    Stop {
        category: Category::Unknown,
        outcome: Outcome::UnexpectedStatus,
        message: format!("cannot compress a batch: {e}"),
    }
}
