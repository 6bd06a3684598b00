//! Lanes (contract section 3): the seven canonical lanes a work package moves
//! through, and the four lanes the sync contract carries.
//!
//! Collapsing is a total function on known lanes and an error on anything
//! else: the Python original silently mapped unknown lanes to `planned`,
//! which made typos invisible. Here an unknown lane is always an error.

use std::fmt;
use std::str::FromStr;

/// A lane name that is not part of the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lane '{0}' (valid lanes: {valid})", valid = Lane::VALID_NAMES.join(", "))]
pub struct UnknownLane(pub String);

/// The canonical lanes of the work-package model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Planned,
    Claimed,
    InProgress,
    ForReview,
    Done,
    Blocked,
    Canceled,
}

impl Lane {
    /// Every canonical lane, in workflow order.
    pub const ALL: [Lane; 7] = [
        Lane::Planned,
        Lane::Claimed,
        Lane::InProgress,
        Lane::ForReview,
        Lane::Done,
        Lane::Blocked,
        Lane::Canceled,
    ];

    /// The names a user may type, including the `doing` alias.
    pub const VALID_NAMES: [&'static str; 8] = [
        "planned",
        "claimed",
        "in_progress",
        "doing",
        "for_review",
        "done",
        "blocked",
        "canceled",
    ];

    /// The canonical spelling of this lane.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Planned => "planned",
            Lane::Claimed => "claimed",
            Lane::InProgress => "in_progress",
            Lane::ForReview => "for_review",
            Lane::Done => "done",
            Lane::Blocked => "blocked",
            Lane::Canceled => "canceled",
        }
    }

    /// Parses a canonical lane name or the `doing` alias (case-insensitive,
    /// surrounding whitespace ignored).
    pub fn parse(name: &str) -> Result<Lane, UnknownLane> {
        let lowered = name.trim().to_ascii_lowercase();
        let lane = match lowered.as_str() {
            "planned" => Lane::Planned,
            "claimed" => Lane::Claimed,
            "in_progress" | "doing" => Lane::InProgress,
            "for_review" => Lane::ForReview,
            "done" => Lane::Done,
            "blocked" => Lane::Blocked,
            "canceled" => Lane::Canceled,
            _ => return Err(UnknownLane(name.to_string())),
        };
        Ok(lane)
    }

    /// The 7-to-4 collapse of contract section 3.
    pub fn to_sync(self) -> SyncLane {
        match self {
            Lane::Planned => SyncLane::Planned,
            Lane::Claimed | Lane::InProgress | Lane::Blocked => SyncLane::Doing,
            Lane::ForReview => SyncLane::ForReview,
            Lane::Done | Lane::Canceled => SyncLane::Done,
        }
    }

    /// Whether this lane is terminal: leaving it is a backwards move.
    pub fn is_terminal(self) -> bool {
        matches!(self, Lane::Done | Lane::Canceled)
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lane {
    type Err = UnknownLane;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lane::parse(s)
    }
}

/// The four lanes of the sync contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncLane {
    Planned,
    Doing,
    ForReview,
    Done,
}

impl SyncLane {
    /// The four values, in workflow order.
    pub const ALL: [SyncLane; 4] = [
        SyncLane::Planned,
        SyncLane::Doing,
        SyncLane::ForReview,
        SyncLane::Done,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncLane::Planned => "planned",
            SyncLane::Doing => "doing",
            SyncLane::ForReview => "for_review",
            SyncLane::Done => "done",
        }
    }

    /// What a server accepts on the wire: the four sync values, the
    /// canonical lanes (which it collapses), and the Python 2.x client's
    /// `approved` (shown as `for_review`). Anything else is an error.
    pub fn from_wire(value: &str) -> Result<SyncLane, UnknownLane> {
        match value {
            "planned" => Ok(SyncLane::Planned),
            "doing" => Ok(SyncLane::Doing),
            "for_review" | "approved" => Ok(SyncLane::ForReview),
            "done" => Ok(SyncLane::Done),
            other => Lane::parse_exact(other)
                .map(Lane::to_sync)
                .ok_or_else(|| UnknownLane(other.to_string())),
        }
    }
}

impl Lane {
    /// Exact (case-sensitive) canonical name, as the wire carries it.
    fn parse_exact(value: &str) -> Option<Lane> {
        Lane::ALL.into_iter().find(|lane| lane.as_str() == value)
    }
}

impl fmt::Display for SyncLane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_matches_the_contract_table() {
        let table = [
            ("planned", "planned"),
            ("claimed", "doing"),
            ("in_progress", "doing"),
            ("for_review", "for_review"),
            ("done", "done"),
            ("blocked", "doing"),
            ("canceled", "done"),
        ];
        for (canonical, sync) in table {
            let lane = Lane::parse(canonical).expect("canonical lane parses");
            assert_eq!(lane.as_str(), canonical);
            assert_eq!(lane.to_sync().as_str(), sync, "collapse of {canonical}");
        }
    }

    #[test]
    fn doing_is_an_alias_of_in_progress() {
        assert_eq!(Lane::parse("doing"), Ok(Lane::InProgress));
        assert_eq!(Lane::parse(" Doing "), Ok(Lane::InProgress));
    }

    #[test]
    fn unknown_lane_is_an_error_never_a_default() {
        let err = Lane::parse("doingg").expect_err("typo must not parse");
        assert_eq!(err, UnknownLane("doingg".into()));
        let text = err.to_string();
        assert!(text.contains("'doingg'"), "{text}");
        assert!(text.contains("for_review"), "lists valid lanes: {text}");
        assert!(Lane::parse("").is_err());
        assert!(
            Lane::parse("approved").is_err(),
            "approved is not canonical"
        );
    }

    #[test]
    fn server_accepts_sync_canonical_and_approved() {
        for lane in SyncLane::ALL {
            assert_eq!(SyncLane::from_wire(lane.as_str()), Ok(lane));
        }
        assert_eq!(SyncLane::from_wire("in_progress"), Ok(SyncLane::Doing));
        assert_eq!(SyncLane::from_wire("canceled"), Ok(SyncLane::Done));
        assert_eq!(SyncLane::from_wire("approved"), Ok(SyncLane::ForReview));
        assert!(SyncLane::from_wire("doingg").is_err());
        assert!(
            SyncLane::from_wire("Done").is_err(),
            "wire values are exact"
        );
    }

    #[test]
    fn terminal_lanes() {
        assert!(Lane::Done.is_terminal());
        assert!(Lane::Canceled.is_terminal());
        assert!(!Lane::ForReview.is_terminal());
    }
}
