//! Rendering helpers shared by the commands.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::outcome::Outcome;
use crate::session::AuthError;
use crate::session::credentials::CredentialsError;
use crate::tasks::TaskError;
use crate::tasks::project::ProjectError;

/// A failed command: what to tell the user, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code,
        }
    }

    /// Exit code 1: a failure with no more specific code.
    pub fn general(message: impl Into<String>) -> CliError {
        CliError::new(1, message)
    }
}

impl From<AuthError> for CliError {
    /// The exit code of the matching [`Outcome`], and the error's own words.
    fn from(e: AuthError) -> CliError {
        CliError::new(Outcome::from(&e).exit_code(), e.to_string())
    }
}

impl From<CredentialsError> for CliError {
    fn from(e: CredentialsError) -> CliError {
        CliError::new(Outcome::from(&e).exit_code(), e.to_string())
    }
}

/// Library errors that have no more specific exit code than 1: the
/// message is the error's own (each names the file or server involved).
macro_rules! general_failures {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for CliError {
            fn from(e: $error) -> CliError {
                CliError::general(e.to_string())
            }
        })*
    };
}

general_failures!(
    crate::queue::QueueError,
    crate::home::config::ConfigError,
    crate::home::paths::PathsError,
    crate::sync::DrainError,
);

impl From<TaskError> for CliError {
    /// An argument that names nothing (a lane, work package or feature that
    /// does not exist, or none chosen where several exist) and `--force`
    /// without `--reason` are bad usage (exit 2), alike, so a script can
    /// tell "you asked wrongly" from "it failed" (exit 1).
    fn from(e: TaskError) -> CliError {
        match e {
            TaskError::UnknownLane { .. }
            | TaskError::ForceWithoutReason
            | TaskError::Project(
                ProjectError::UnknownWorkPackage { .. }
                | ProjectError::UnknownFeature { .. }
                | ProjectError::AmbiguousFeature { .. },
            ) => CliError::new(2, e.to_string()),
            other => CliError::general(other.to_string()),
        }
    }
}

pub type CliResult = Result<u8, CliError>;

/// "14m 2s", "6d 23h", "45s".
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins, s) = (
        secs / 86_400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// "valid for 14m 2s" / "expired 3m 1s ago" / "expiry unknown".
pub fn validity(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    match expires_at {
        None => "expiry unknown".into(),
        Some(at) if at > now => {
            let left = (at - now).unsigned_abs();
            format!("valid for {}", human_duration(left))
        }
        Some(at) => {
            let ago = (now - at).unsigned_abs();
            format!("expired {} ago", human_duration(ago))
        }
    }
}

/// Prints one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::general(format!("cannot render JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(842)), "14m 2s");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600 + 60)), "3h 1m");
        assert_eq!(
            human_duration(Duration::from_secs(6 * 86_400 + 23 * 3600)),
            "6d 23h"
        );
    }
}
