//! Valid events for tests and benchmarks (feature `test-util`), so the
//! client's and the server's tests build them one way.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::event::{Envelope, Event, WpStatusChanged};
use crate::timestamp;

/// The feature every fixture event belongs to.
pub const FEATURE: &str = "039-cli-2x-readiness";
/// The node id of every fixture event.
pub const NODE_ID: &str = "3f2a9c1b7d4e";

/// A valid `WPStatusChanged` event (contract section 3) of work package
/// `WP{seq % 100}` with a fresh ULID, Lamport clock `lamport`, made at `at`
/// on branch `main` by `alice` in worktree mode.
pub fn status_event(
    project_uuid: &str,
    project_slug: &str,
    lamport: u64,
    (from_lane, to_lane): (&str, &str),
    at: OffsetDateTime,
) -> Event {
    WpStatusChanged {
        feature_slug: FEATURE.to_string(),
        wp_id: format!("WP{:02}", lamport % 100),
        from_lane: Some(from_lane.to_string()),
        to_lane: to_lane.to_string(),
        actor: "alice".to_string(),
        force: false,
        reason: None,
        execution_mode: Some("worktree".to_string()),
        review_ref: None,
        evidence: None,
        extra: Map::new(),
    }
    .into_event(Envelope {
        event_id: ulid::Ulid::new().to_string(),
        timestamp: timestamp::format(at),
        node_id: NODE_ID.to_string(),
        lamport_clock: lamport,
        correlation_id: Some(ulid::Ulid::new().to_string()),
        project_uuid: project_uuid.to_string(),
        project_slug: Some(project_slug.to_string()),
        team_slug: None,
        git_branch: Some("main".to_string()),
        head_commit_sha: None,
    })
}

/// [`status_event`] as JSON, for tests that then break a field on purpose.
pub fn status_event_json(
    project_uuid: &str,
    project_slug: &str,
    lamport: u64,
    lanes: (&str, &str),
    at: OffsetDateTime,
) -> Value {
    serde_json::to_value(status_event(project_uuid, project_slug, lamport, lanes, at))
        .expect("an Event always serializes")
}
