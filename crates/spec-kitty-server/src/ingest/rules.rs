//! The ingest rules, written once for every backend.
//!
//! Who may write a batch, which team a project belongs to and when a batch
//! is refused are decided here; each store backend only provides the
//! lookups and inserts of [`IngestTx`], run inside its own transaction.
//! The backend opens the transaction, calls [`apply`], and commits only
//! when the answer is [`IngestOutcome::Stored`]; on a refusal it drops the
//! transaction, so nothing of a refused batch (not even a project) stays.

use std::collections::HashMap;
use std::future::Future;

use crate::store::{IncomingEvent, IngestOutcome, Sender};

/// Where one event goes: its project and the team that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub project_id: i64,
    pub team_id: i64,
}

/// The lookups and writes the rules need, inside one open transaction.
///
/// The methods are `async` so PostgreSQL can implement them directly; the
/// SQLite backend implements them synchronously (its futures are ready at
/// once) and drives [`apply`] on its writer thread.
pub trait IngestTx {
    /// The backend's error (a retryable failure stays distinguishable).
    type Error;

    /// The id of team `slug` if user `user_id` is a member of it.
    fn member_team_id(
        &mut self,
        slug: &str,
        user_id: i64,
    ) -> impl Future<Output = Result<Option<i64>, Self::Error>>;

    /// Registers the project to `team_id` on first sight (an existing
    /// project keeps its team) and returns `(project id, owner team id)`.
    fn place_project(
        &mut self,
        uuid: &str,
        slug: Option<&str>,
        team_id: i64,
        now: i64,
    ) -> impl Future<Output = Result<(i64, i64), Self::Error>>;

    /// Stores the events (`placed[i]` for `events[i]`) unless an event with
    /// the same id exists; one flag per event, `true` if newly stored. A
    /// repeat of an id inside the batch counts as already stored.
    fn insert_events(
        &mut self,
        sender: &Sender,
        events: &[IncomingEvent],
        placed: &[Placement],
        now: i64,
    ) -> impl Future<Output = Result<Vec<bool>, Self::Error>>;
}

/// The permission message of contract section 2.
pub fn insufficient(team: &str, project: &str) -> String {
    format!("Insufficient permissions for team '{team}' on project '{project}'")
}

/// The refusal for a sender who belongs to no team.
pub fn no_team(username: &str) -> String {
    format!(
        "User '{username}' belongs to no team; ask your server administrator to add them to one"
    )
}

/// The refusal for a sender no longer in the team their token names.
pub fn not_member(team: &str, username: &str) -> String {
    format!("Insufficient permissions for team '{team}': user '{username}' is not a member")
}

/// Applies the ingest rules to a batch inside the backend's transaction:
///
/// 1. the sender must have a team of their own and still be its member;
/// 2. every event is written for its own team (or the sender's), of which
///    the sender must be a member;
/// 3. a project is registered to the team of its first event, and events
///    for it under any other team are refused;
/// 4. the events are stored, duplicates found by their id.
///
/// The first refusal, in event order, answers for the whole batch.
pub async fn apply<T: IngestTx>(
    tx: &mut T,
    sender: &Sender,
    events: &[IncomingEvent],
    now: i64,
) -> Result<IngestOutcome, T::Error> {
    let Some(own_team) = sender.team.as_deref() else {
        return Ok(IngestOutcome::Forbidden(no_team(&sender.username)));
    };
    let mut teams = Memberships::default();
    if teams.lookup(tx, own_team, sender.user_id).await?.is_none() {
        return Ok(IngestOutcome::Forbidden(not_member(
            own_team,
            &sender.username,
        )));
    }
    let placed = match place_events(tx, &mut teams, sender, own_team, events, now).await? {
        Ok(placed) => placed,
        Err(refusal) => return Ok(IngestOutcome::Forbidden(refusal)),
    };
    let stored = tx.insert_events(sender, events, &placed, now).await?;
    // A later projection step (the board) belongs here, in the same
    // transaction: one more `IngestTx` method called with the events and
    // `stored`, before the backend commits.
    Ok(IngestOutcome::Stored(stored))
}

/// Places every event in its project, or answers the first refusal.
async fn place_events<T: IngestTx>(
    tx: &mut T,
    teams: &mut Memberships,
    sender: &Sender,
    own_team: &str,
    events: &[IncomingEvent],
    now: i64,
) -> Result<Result<Vec<Placement>, String>, T::Error> {
    let mut projects: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut placed = Vec::with_capacity(events.len());
    for event in events {
        let team_slug = event.team.as_deref().unwrap_or(own_team);
        let project_name = event.project_slug.as_deref().unwrap_or(&event.project_uuid);
        let Some(team_id) = teams.lookup(tx, team_slug, sender.user_id).await? else {
            return Ok(Err(insufficient(team_slug, project_name)));
        };
        let (project_id, owner) = match projects.get(event.project_uuid.as_str()) {
            Some(found) => *found,
            None => {
                let found = tx
                    .place_project(
                        &event.project_uuid,
                        event.project_slug.as_deref(),
                        team_id,
                        now,
                    )
                    .await?;
                projects.insert(event.project_uuid.as_str(), found);
                found
            }
        };
        if owner != team_id {
            return Ok(Err(insufficient(team_slug, project_name)));
        }
        placed.push(Placement {
            project_id,
            team_id,
        });
    }
    Ok(Ok(placed))
}

/// The sender's memberships, each looked up once per batch.
#[derive(Default)]
struct Memberships(HashMap<String, Option<i64>>);

impl Memberships {
    async fn lookup<T: IngestTx>(
        &mut self,
        tx: &mut T,
        slug: &str,
        user_id: i64,
    ) -> Result<Option<i64>, T::Error> {
        if let Some(known) = self.0.get(slug) {
            return Ok(*known);
        }
        let found = tx.member_team_id(slug, user_id).await?;
        self.0.insert(slug.to_string(), found);
        Ok(found)
    }
}
