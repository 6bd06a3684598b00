//! The ingest rules, written once for every backend.
//!
//! Who may write a batch, which team a project belongs to and when a batch
//! is refused are decided here; each store backend only provides the
//! lookups and inserts of [`IngestTx`], run inside its own transaction.
//! The backend opens the transaction, calls [`apply`], and commits only
//! when the answer is [`IngestOutcome::Stored`]; on a refusal it drops the
//! transaction, so nothing of a refused batch (not even a project) stays.

use std::future::Future;

use spec_kitty_protocol::board::Fact;

use foldhash::{HashMap, HashMapExt};

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
///
/// Only the newest status and the newest creation of each card in the
/// batch can change it, so those are picked first, on borrowed keys, and
/// only they are copied into the [`Reduced`] (a batch often moves one
/// work package many times: copying every event's strings and
/// normalizing every timestamp was most of the projection's cost).
fn project(events: &[IncomingEvent], placed: &[Placement], stored: &[bool]) -> Reduced {
    type Slot<'e> = (bool, i64, &'e str, &'e str);
    let mut newest: HashMap<Slot<'_>, usize> = HashMap::new();
    let mut chosen = Vec::new();
    let rank = |i: usize| {
        let e: &IncomingEvent = &events[i];
        (e.lamport, e.node_id.as_str(), e.event_id.as_str())
    };
    for (i, ((event, place), new)) in events.iter().zip(placed).zip(stored).enumerate() {
        let (true, Some(fact)) = (*new, &event.fact) else {
            continue;
        };
        let (status, wp_id) = match fact {
            Fact::Status { wp_id, .. } => (true, wp_id),
            Fact::Created { wp_id, .. } => (false, wp_id),
            Fact::Feature { .. } => {
                chosen.push(i);
                continue;
            }
        };
        let slot = (
            status,
            place.project_id,
            fact.feature_slug().unwrap_or_default(),
            wp_id.as_str(),
        );
        newest
            .entry(slot)
            .and_modify(|best| {
                // As `WinnerKey` orders them; the first of equals stays.
                if rank(i) > rank(*best) {
                    *best = i;
                }
            })
            .or_insert(i);
    }
    chosen.extend(newest.into_values());
    chosen.sort_unstable();
    let mut reduced = Reduced::default();
    for i in chosen {
        if let Some(fact) = &events[i].fact {
            reduced.add(Projected {
                project_id: placed[i].project_id,
                seq: placed[i].seq,
                key: events[i].winner_key(),
                timestamp: &events[i].timestamp,
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

#[cfg(test)]
mod tests {
    use spec_kitty_protocol::SyncLane;

    use super::*;

    fn status(
        i: i64,
        project: i64,
        wp: &str,
        lamport: i64,
        node: &str,
    ) -> (IncomingEvent, Placement) {
        let lane = [SyncLane::Planned, SyncLane::Doing, SyncLane::ForReview][i as usize % 3];
        let event = IncomingEvent {
            event_id: format!("01J{i:023}"),
            event_type: "WPStatusChanged".into(),
            aggregate_id: format!("001-x/{wp}"),
            project_uuid: String::new(),
            project_slug: None,
            team: None,
            node_id: node.into(),
            lamport,
            timestamp: format!("2026-01-01T00:00:{:02}.5Z", i % 60),
            lane: Some(lane.as_str()),
            body: String::new(),
            fact: Some(Fact::Status {
                feature_slug: (i % 2 == 0).then(|| "001-x".to_string()),
                wp_id: wp.into(),
                raw_lane: lane.as_str().into(),
                lane,
                actor: Some(format!("actor{i}")),
            }),
        };
        let place = Placement {
            project_id: project,
            team_id: 1,
            seq: i + 1,
        };
        (event, place)
    }

    /// Every event through `Reduced::add`, as before the pre-pass.
    fn reduce_all(events: &[IncomingEvent], placed: &[Placement], stored: &[bool]) -> Reduced {
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

    #[test]
    fn picking_each_cards_newest_first_changes_nothing() {
        // Out-of-order clocks, ties broken by node and by event id, two
        // projects, cards with and without a feature, and events that were
        // duplicates (not stored) and must not count.
        let lamports = [5, 3, 9, 9, 1, 9, 7, 2, 9, 4, 6, 8];
        let nodes = ["b", "a", "a", "b", "c", "b", "a", "z", "a", "b", "c", "a"];
        let (mut events, mut placed) = (Vec::new(), Vec::new());
        for (i, (lamport, node)) in lamports.iter().zip(nodes).enumerate() {
            let wp = ["WP01", "WP02", "WP03"][i % 3];
            let (event, place) = status(i as i64, 1 + (i as i64 / 6), wp, *lamport, node);
            events.push(event);
            placed.push(place);
        }
        let stored: Vec<bool> = (0..events.len()).map(|i| i % 5 != 4).collect();
        let picked = project(&events, &placed, &stored);
        let all = reduce_all(&events, &placed, &stored);
        assert_eq!(picked.features, all.features);
        assert_eq!(
            format!("{:?}", picked.statuses),
            format!("{:?}", all.statuses)
        );
        assert!(!picked.statuses.is_empty());
    }
}
