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

use crate::board::hub::Advance;
use crate::board::projection::{Projected, Reduced};
use crate::store::{IncomingEvent, IngestOutcome, Sender};

/// Where one event goes: its project, the team that owns it, and its
/// number in the project's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub project_id: i64,
    pub team_id: i64,
    /// Numbers follow commits: [`IngestTx::place_project`] locks the
    /// project until this transaction ends, so a batch holding smaller
    /// numbers always commits before one holding larger numbers.
    pub seq: i64,
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

    /// Finds the project `uuid` of team `team_id`, registering it on first
    /// sight (each team has its own project per uuid: contract section 2),
    /// locks it until the transaction ends, and returns `(project id, last
    /// sequence number)`.
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

    /// Applies the board changes of the newly stored events (the
    /// projection's conditional upserts), in this transaction.
    fn apply_projection(
        &mut self,
        reduced: &Reduced,
    ) -> impl Future<Output = Result<(), Self::Error>>;

    /// Records where each project's sequence now stands and when it last
    /// got an event (and, on PostgreSQL, tells the other instances).
    fn advance_projects(
        &mut self,
        advances: &[Advance],
        stamp: &str,
    ) -> impl Future<Output = Result<(), Self::Error>>;
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
/// 3. a project is keyed by its team and uuid: another team sending the
///    same uuid gets a project of its own, never access to this one;
/// 4. the events are stored, duplicates found by their id, numbered in
///    their project's sequence;
/// 5. the board is updated from the newly stored events, in the same
///    transaction, and the projects that got something new move on.
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
    tx.apply_projection(&project(events, &placed, &stored))
        .await?;
    let advances = advances(&placed, &stored);
    if !advances.is_empty() {
        tx.advance_projects(&advances, &spec_kitty_protocol::timestamp::now())
            .await?;
    }
    Ok(IngestOutcome::Stored {
        flags: stored,
        advances,
    })
}

/// What the newly stored events change on the board.
fn project(events: &[IncomingEvent], placed: &[Placement], stored: &[bool]) -> Reduced {
    let mut reduced = Reduced::default();
    for ((event, place), new) in events.iter().zip(placed).zip(stored) {
        if let (true, Some(fact)) = (*new, &event.fact) {
            reduced.add(Projected {
                project_id: place.project_id,
                seq: place.seq,
                key: event.winner_key(),
                timestamp: &event.timestamp,
                fact,
            });
        }
    }
    reduced
}

/// Where each project that stored something new now stands: a batch of
/// duplicates moves no cursor and wakes no watcher.
fn advances(placed: &[Placement], stored: &[bool]) -> Vec<Advance> {
    let mut last: HashMap<i64, (i64, bool)> = HashMap::new();
    for (place, new) in placed.iter().zip(stored) {
        let entry = last.entry(place.project_id).or_insert((place.seq, false));
        entry.0 = entry.0.max(place.seq);
        entry.1 |= *new;
    }
    let mut advances: Vec<Advance> = last
        .into_iter()
        .filter(|(_, (_, fresh))| *fresh)
        .map(|(project_id, (seq, _))| Advance { project_id, seq })
        .collect();
    advances.sort_by_key(|a| a.project_id);
    advances
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
    // (team id, uuid) -> (project id, last number given out)
    let mut projects: HashMap<(i64, &str), (i64, i64)> = HashMap::new();
    let mut placed = Vec::with_capacity(events.len());
    for event in events {
        let team_slug = event.team.as_deref().unwrap_or(own_team);
        let project_name = event.project_slug.as_deref().unwrap_or(&event.project_uuid);
        let Some(team_id) = teams.lookup(tx, team_slug, sender.user_id).await? else {
            return Ok(Err(insufficient(team_slug, project_name)));
        };
        let key = (team_id, event.project_uuid.as_str());
        let (project_id, seq) = match projects.get_mut(&key) {
            Some(found) => found,
            None => {
                let found = tx
                    .place_project(
                        &event.project_uuid,
                        event.project_slug.as_deref(),
                        team_id,
                        now,
                    )
                    .await?;
                projects.entry(key).or_insert(found)
            }
        };
        *seq += 1;
        placed.push(Placement {
            project_id: *project_id,
            team_id,
            seq: *seq,
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
