//! `sync now`: drain the queue to the server in gzip batches.
//!
//! Rules, each learned from a bug of the original: an event is deleted only
//! after the server said `success` or `duplicate` for it; a whole-batch
//! failure (401, 403, 5xx, timeout) changes no event's retry count; `413`
//! splits the batch; a whole-batch `400` is bisected until the poisoned
//! events are found and parked, so one bad event never blocks the rest; a
//! `403` for a batch holding events of another team is narrowed down the
//! same way (see [`Drain::split_refused`]); a response without results
//! leaves its events queued and never loops (the drain walks the queue with
//! a cursor, so no batch is sent twice in a run).
//!
//! Several batches are on the wire at once (see [`Drain::run`]), bounded
//! in number and bytes; their answers are applied in queue order, and a
//! 401 on any of them costs one refresh and a resend of just the batches
//! the server refused. A `kill -9` at any moment leaves every unanswered
//! event queued; the server is idempotent on `event_id`, so a batch it
//! stored but whose answer was lost comes back as `duplicate`.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ScopedJoinHandle;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use spec_kitty_protocol::{BatchResponse, EventStatus, MAX_BATCH_EVENTS};

use crate::home::paths::Home;
use crate::net::http::{Body, Http, HttpError, Reply};
use crate::outcome::Outcome;
use crate::queue::{Cursor, Outcomes, Queue, QueueError, Queued};
use crate::session as auth;
use crate::session::credentials::LOCK_WAIT;
use spec_kitty_protocol::paths::BATCH;

mod acks;
mod summary;

use acks::Acks;

pub use summary::{Category, Failure, Stop, Summary};
use summary::{
    stop_for_auth, stop_for_compression, stop_for_network, stop_for_status,
    stop_for_too_many_parked,
};

/// At most this many events are parked (set aside after a `400`, `403` or
/// `413` of their own) in one run; past it the drain stops instead.
pub const MAX_PARKED_PER_RUN: usize = 25;

/// The most JSON bytes one batch carries before compression.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// At most this many batches are on the wire at once. One keeps the
/// server idle while the client reads the answer and prepares the next;
/// two or three keep it decoding one batch while it stores another. The
/// agent keeps up to three idle connections per host, so the window
/// reuses its connections.
pub const MAX_IN_FLIGHT: usize = 3;

/// At most this many bytes of event JSON are held by the batches on the
/// wire, whatever their number (their gzip bodies are a fraction of it),
/// so a window of large events stays a few MiB.
pub const MAX_IN_FLIGHT_BYTES: usize = 4 * MAX_BATCH_BYTES;

/// A local failure that prevents draining at all.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The team `event` names when it is not the user's own team, as the server
/// reads it: an absent, empty or `local` `team_slug` means the sender's own
/// team. `None` also when the user's team is unknown (not logged in, or
/// credentials without a team): nothing can be told then, and the server
/// decides.
pub fn foreign_team<'e>(event: &'e Value, own_team: Option<&str>) -> Option<&'e str> {
    let own = own_team?;
    event
        .get("team_slug")
        .and_then(Value::as_str)
        .filter(|team| !team.is_empty() && *team != "local" && *team != own)
}

/// Why an event for another team is refused before it is queued.
pub fn foreign_team_reason(team: &str, own_team: &str) -> String {
    format!(
        "team_slug '{team}' is not your team ('{own_team}'): the server refuses events for a team you are not in"
    )
}

/// A batch on the wire: its events (deleted only once its answer is
/// read), the JSON bytes it holds against [`MAX_IN_FLIGHT_BYTES`], the
/// access token it went with, and the thread sending it, which hands the
/// body back with the answer so a refused batch can be sent again.
struct InFlight<'s> {
    events: Vec<Queued>,
    json_bytes: usize,
    token: String,
    sending: ScopedJoinHandle<'s, (Vec<u8>, Result<Reply, HttpError>)>,
}

/// The body and answer of a batch on the wire, once its thread is done; a
/// thread that failed reads as a failed request, so its events stay queued.
fn landed(
    sending: ScopedJoinHandle<'_, (Vec<u8>, Result<Reply, HttpError>)>,
    url: &str,
) -> (Vec<u8>, Result<Reply, HttpError>) {
    sending.join().unwrap_or_else(|_| {
        (
            Vec::new(),
            Err(HttpError::Other {
                url: url.to_string(),
                detail: "the upload thread failed".into(),
            }),
        )
    })
}

fn compress(batch: &[Queued]) -> std::io::Result<Vec<u8>> {
    let refs: Vec<&Queued> = batch.iter().collect();
    gzip_batch(&refs)
}

/// Compresses `{"events": [...]}` built from the stored JSON texts.
fn gzip_batch(events: &[&Queued]) -> std::io::Result<Vec<u8>> {
    let raw: usize = events.iter().map(|e| e.body.len() + 1).sum();
    let mut encoder = GzEncoder::new(Vec::with_capacity(raw / 4 + 64), Compression::fast());
    encoder.write_all(br#"{"events":["#)?;
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            encoder.write_all(b",")?;
        }
        encoder.write_all(event.body.as_bytes())?;
    }
    encoder.write_all(b"]}")?;
    encoder.finish()
}

/// One drain run.
pub struct Drain<'a> {
    home: &'a Home,
    queue: &'a mut Queue,
    http: &'a Http,
    url: String,
    access: String,
    /// The user's team, to tell a `403` for the user from one for an event
    /// naming another team.
    team: Option<String>,
    refreshed: bool,
    /// Events parked in this run.
    parked: usize,
    /// Set (by a signal handler) to stop after the batch in flight.
    interrupt: Option<Arc<AtomicBool>>,
    /// Delivered events, deleted in groups (see [`acks`]).
    acks: Acks,
    pub summary: Summary,
}

impl<'a> Drain<'a> {
    /// Prepares a drain: reads the session (refreshing if needed). Returns
    /// the stop when there is no usable session; nothing is touched then.
    pub fn start(home: &'a Home, queue: &'a mut Queue, http: &'a Http) -> Result<Drain<'a>, Stop> {
        let session =
            auth::access_token(home, http, http.timeout(), LOCK_WAIT).map_err(stop_for_auth)?;
        Ok(Drain {
            home,
            queue,
            http,
            url: format!("{}{BATCH}", session.credentials.server_url),
            access: session.access,
            team: session.credentials.team_slug,
            refreshed: session.refreshed,
            parked: 0,
            interrupt: None,
            acks: Acks::default(),
            summary: Summary::default(),
        })
    }

    /// Stops the drain after the batches in flight once `flag` is set, so an
    /// interrupted run still records what the server answered and can say
    /// what was uploaded and what is left.
    pub fn interrupt_on(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Sends everything queued; `progress` is called with the number of
    /// events handled so far.
    ///
    /// Up to [`MAX_IN_FLIGHT`] batches (and [`MAX_IN_FLIGHT_BYTES`] of
    /// their JSON) are on the wire at once, each on a thread of its own
    /// over the agent's pooled connections, so the server decodes one
    /// batch while it stores another and the client reads, compresses and
    /// records in the meantime. Answers are taken strictly in queue order:
    /// the oldest batch's results are written (or it is split, bisected,
    /// resent after a refresh) before the next one's are looked at, and
    /// nothing is deleted before the server answered for it. The cursor
    /// moves when a batch is sent, so no batch is sent twice in a run
    /// except as the resend of one the server refused as a whole.
    pub fn run(mut self, mut progress: impl FnMut(u64)) -> Result<Summary, DrainError> {
        let http = self.http;
        let url = self.url.clone();
        let run = std::thread::scope(|scope| -> Result<(), DrainError> {
            let mut window: VecDeque<InFlight<'_>> = VecDeque::new();
            let mut window_bytes = 0usize;
            let mut cursor: Option<Cursor> = None;
            let mut exhausted = false;
            let mut handled = 0u64;
            loop {
                while !exhausted
                    && self.summary.stopped.is_none()
                    && !self.interrupted()
                    && window.len() < MAX_IN_FLIGHT
                    && (window.is_empty() || window_bytes + MAX_BATCH_BYTES <= MAX_IN_FLIGHT_BYTES)
                {
                    let events =
                        self.queue
                            .next_batch(cursor, MAX_BATCH_EVENTS, MAX_BATCH_BYTES)?;
                    let Some(last) = events.last() else {
                        exhausted = true;
                        break;
                    };
                    cursor = Some((last.ts_micros, last.id));
                    let body = match compress(&events) {
                        Ok(body) => body,
                        Err(e) => {
                            self.summary.stopped = Some(stop_for_compression(&e));
                            break;
                        }
                    };
                    let json_bytes = events.iter().map(|e| e.body.len() + 1).sum::<usize>();
                    let token = self.access.clone();
                    let (url, bearer) = (url.as_str(), token.clone());
                    let sending = scope.spawn(move || {
                        let reply = http.post(url, Some(&bearer), Body::GzipJson(&body));
                        (body, reply)
                    });
                    window_bytes += json_bytes;
                    window.push_back(InFlight {
                        events,
                        json_bytes,
                        token,
                        sending,
                    });
                }
                let Some(flight) = window.pop_front() else {
                    break;
                };
                window_bytes -= flight.json_bytes;
                let (body, reply) = landed(flight.sending, &url);
                let refs: Vec<&Queued> = flight.events.iter().collect();
                if self.summary.stopped.is_some() {
                    // The drain has stopped on an earlier batch; this one
                    // was already on the wire. What the server stored is
                    // recorded (so it is not sent again), anything else
                    // is left as it is: no split, no park, no retry count.
                    if let Ok(reply) = &reply
                        && (200..300).contains(&reply.status)
                    {
                        self.apply_results(&refs, &reply.body)?;
                    }
                } else {
                    self.answer(&refs, &body, &flight.token, reply)?;
                }
                handled += flight.events.len() as u64;
                progress(handled);
                if self.interrupted() {
                    self.summary.interrupted = true;
                }
            }
            Ok(())
        });
        // Whatever ended the run, what the server took is deleted now.
        let flushed = self.acks.flush(self.queue);
        run?;
        flushed?;
        self.summary.remaining = self.queue.len()?;
        self.summary.failed = self.summary.failures.len() as u64;
        Ok(self.summary)
    }

    fn fail(&mut self, event: &Queued, category: Category, reason: String, parked: bool) {
        self.summary.failures.push(Failure {
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            category,
            reason,
            parked,
            retry_count: event.retry_count + 1,
        });
    }

    /// Sends one batch (or part of one) and applies the answer. Whole-batch
    /// trouble sets `summary.stopped`.
    fn send(&mut self, events: &[&Queued]) -> Result<(), DrainError> {
        if events.is_empty() || self.summary.stopped.is_some() {
            return Ok(());
        }
        let body = match gzip_batch(events) {
            Ok(body) => body,
            Err(e) => {
                self.summary.stopped = Some(stop_for_compression(&e));
                return Ok(());
            }
        };
        let token = self.access.clone();
        let reply = self
            .http
            .post(&self.url, Some(&token), Body::GzipJson(&body));
        self.answer(events, &body, &token, reply)
    }

    /// On a first 401, refreshes the token and sends `body` again. `None`
    /// when the refresh failed (the drain then stops).
    ///
    /// A 401 for a batch sent with a token that has since been replaced
    /// (several batches were on the wire when the first 401 came back) is
    /// answered by sending that batch again with the new token: one
    /// refresh per run, and only the refused batches are sent again.
    fn after_refresh(
        &mut self,
        body: &[u8],
        sent_with: &str,
        reply: Result<Reply, HttpError>,
    ) -> Option<Result<Reply, HttpError>> {
        if !matches!(&reply, Ok(r) if r.status == 401) {
            return Some(reply);
        }
        if sent_with != self.access {
            let token = self.access.clone();
            return Some(
                self.http
                    .post(&self.url, Some(&token), Body::GzipJson(body)),
            );
        }
        if self.refreshed {
            return Some(reply);
        }
        self.refreshed = true;
        match auth::refresh(
            self.home,
            self.http,
            &self.access,
            self.http.timeout(),
            LOCK_WAIT,
        ) {
            Ok(session) => {
                self.access = session.access;
                Some(
                    self.http
                        .post(&self.url, Some(&self.access), Body::GzipJson(body)),
                )
            }
            Err(e) => {
                self.summary.stopped = Some(stop_for_auth(e));
                None
            }
        }
    }

    /// Applies the server's answer to a batch: refresh once on 401 and
    /// resend, bisect a 400, split a 413, narrow down a 403 caused by
    /// another team's events, stop on whole-batch trouble.
    fn answer(
        &mut self,
        events: &[&Queued],
        body: &[u8],
        sent_with: &str,
        reply: Result<Reply, HttpError>,
    ) -> Result<(), DrainError> {
        let Some(reply) = self.after_refresh(body, sent_with, reply) else {
            return Ok(());
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                self.summary.stopped = Some(stop_for_network(e));
                return Ok(());
            }
        };
        match reply.status {
            200..=299 => self.apply_results(events, &reply.body),
            400 | 413 if events.len() > 1 => {
                // Bisect: the halves either go through or narrow the poison down.
                let (left, right) = events.split_at(events.len() / 2);
                self.send(left)?;
                self.send(right)
            }
            400 | 413 if self.parked >= MAX_PARKED_PER_RUN => {
                // So many single events refused as bad requests is more
                // likely a server or proxy problem than poisoned events:
                // stop before parking the whole queue.
                self.summary.stopped = Some(stop_for_too_many_parked(&reply));
                Ok(())
            }
            400 | 413 => self.park(events[0], &reply),
            403 if events.len() > 1 && events.iter().any(|e| self.names_other_team(e)) => {
                self.split_refused(events)
            }
            403 if events.len() == 1 && self.names_other_team(events[0]) => {
                if self.parked >= MAX_PARKED_PER_RUN {
                    self.summary.stopped = Some(stop_for_too_many_parked(&reply));
                    Ok(())
                } else {
                    self.park(events[0], &reply)
                }
            }
            _ => {
                self.summary.stopped = Some(stop_for_status(&reply));
                Ok(())
            }
        }
    }

    /// Whether a queued event names a team other than the user's.
    fn names_other_team(&self, event: &Queued) -> bool {
        serde_json::from_str::<Value>(&event.body)
            .is_ok_and(|body| foreign_team(&body, self.team.as_deref()).is_some())
    }

    /// Narrows down a `403` for a batch holding events of another team.
    ///
    /// The user's own events go first, on their own: if they are refused
    /// too, the user as a whole was (removed from the team, say) and the
    /// drain stops with nothing parked. Otherwise the other teams' events
    /// are bisected until the refused ones stand alone and are parked.
    /// Only events of different teams change order, and those land in
    /// different projects, so no project sees its events reordered.
    fn split_refused(&mut self, events: &[&Queued]) -> Result<(), DrainError> {
        let (other, own): (Vec<&Queued>, Vec<&Queued>) =
            events.iter().partition(|e| self.names_other_team(e));
        if own.is_empty() {
            let (left, right) = other.split_at(other.len() / 2);
            self.send(left)?;
            self.send(right)
        } else {
            self.send(&own)?;
            self.send(&other)
        }
    }

    /// Sets aside one event the server refused on its own.
    fn park(&mut self, event: &Queued, reply: &Reply) -> Result<(), DrainError> {
        self.parked += 1;
        let reason = if reply.status == 413 {
            "too large for the server (HTTP 413)".to_string()
        } else {
            format!(
                "the server refused it (HTTP {}): {}",
                reply.status,
                reply.error_text()
            )
        };
        self.queue.apply(&Outcomes {
            parked: vec![(event.id, reason.clone())],
            ..Outcomes::default()
        })?;
        self.fail(event, Category::Schema, reason, true);
        Ok(())
    }

    fn apply_results(&mut self, events: &[&Queued], body: &[u8]) -> Result<(), DrainError> {
        if let Some(mut outcomes) = self.outcomes_of(events, body) {
            let delivered = std::mem::take(&mut outcomes.delivered);
            if !outcomes.rejected.is_empty() || !outcomes.parked.is_empty() {
                self.queue.apply(&outcomes)?;
            }
            self.acks.add(&delivered, self.queue)?;
        }
        Ok(())
    }

    /// Reads the per-event results of a `200` and counts them; the queue
    /// changes are returned, to be applied by the caller. `None` when the
    /// answer could not be read (the drain then stops).
    fn outcomes_of(&mut self, events: &[&Queued], body: &[u8]) -> Option<Outcomes> {
        let response: BatchResponse = match serde_json::from_slice(body) {
            Ok(response) => response,
            Err(e) => {
                self.summary.stopped.get_or_insert(Stop {
                    category: Category::Server,
                    outcome: Outcome::UnexpectedStatus,
                    message: format!(
                        "The server's answer could not be read ({e}); events kept for later sync."
                    ),
                });
                return None;
            }
        };
        // The server answers in the order it was sent, so the results are
        // matched by position when they line up; only an answer that does
        // not (another server, a missing result) is matched by id.
        let in_order = response.results.len() == events.len()
            && response
                .results
                .iter()
                .zip(events)
                .all(|(result, event)| result.event_id == event.event_id);
        let by_id: HashMap<&str, _> = if in_order {
            HashMap::new()
        } else {
            response
                .results
                .iter()
                .map(|r| (r.event_id.as_str(), r))
                .collect()
        };
        let mut outcomes = Outcomes::default();
        let mut missing = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let result = if in_order {
                response.results.get(i)
            } else {
                by_id.get(event.event_id.as_str()).copied()
            };
            match result {
                Some(result) => match result.status {
                    EventStatus::Success => {
                        outcomes.delivered.push(event.id);
                        self.summary.synced += 1;
                    }
                    EventStatus::Duplicate => {
                        outcomes.delivered.push(event.id);
                        self.summary.duplicates += 1;
                    }
                    EventStatus::Rejected => {
                        let reason = result
                            .error
                            .clone()
                            .unwrap_or_else(|| "rejected without a reason".into());
                        outcomes.rejected.push((event.id, reason.clone()));
                        self.fail(event, Category::Schema, reason, false);
                    }
                },
                None => missing.push(*event),
            }
        }
        let answered_none = missing.len() == events.len();
        for event in missing {
            self.summary.failures.push(Failure {
                event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                category: Category::Server,
                reason: "the server's answer had no result for this event; kept for later sync"
                    .into(),
                parked: false,
                retry_count: event.retry_count,
            });
        }
        if answered_none {
            // The first stop of a run is the one reported.
            self.summary.stopped.get_or_insert(Stop {
                category: Category::Server,
                outcome: Outcome::UnexpectedStatus,
                message: "The server answered without results; events kept for later sync.".into(),
            });
        }
        Some(outcomes)
    }
}
