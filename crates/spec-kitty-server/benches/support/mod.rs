//! What the benchmarks share: the ingest benchmarks' events, their gzip
//! batches and the figures' constants, so the SQLite and PostgreSQL runs
//! measure the very same load; the concurrent senders; the store's input
//! for a checked event; percentiles.

#![allow(dead_code)]

use std::error::Error;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use spec_kitty_protocol::fast::CheckedEvent;
use spec_kitty_server::BackgroundServer;
use spec_kitty_server::store::{IncomingEvent, Sender};

pub type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

pub const BATCH: usize = 1000;
pub const PROJECTS: usize = 5;
pub const SENDERS: usize = 4;
/// Batches one sender keeps on the wire at once: `sync now`'s window
/// (`MAX_IN_FLIGHT` in the client's `sync` module).
pub const WINDOW: usize = 3;
pub const PASSWORD: &str = "bench-password-123";
pub const LANES: [&str; 4] = ["planned", "doing", "for_review", "done"];

pub struct Prepared {
    pub event_id: String,
    pub aggregate_id: String,
    pub project: usize,
    pub node_id: String,
    pub lamport: i64,
    pub timestamp: String,
    pub lane: &'static str,
    pub body: String,
}

pub fn build_events(count: usize) -> BoxResult<Vec<Prepared>> {
    let projects: Vec<(String, String)> = (0..PROJECTS)
        .map(|i| {
            (
                uuid::Uuid::new_v4().to_string(),
                format!("project-{}", i + 1),
            )
        })
        .collect();
    let nodes: Vec<String> = (0..SENDERS)
        .map(|i| format!("3f2a9c1b7d{:02x}", i))
        .collect();
    let start = time::macros::datetime!(2026-02-12 10:00:00 UTC);
    let format = time::format_description::well_known::Rfc3339;
    let mut events = Vec::with_capacity(count);
    for i in 0..count {
        let (project_uuid, project_slug) = &projects[i % PROJECTS];
        let feature = format!("{:03}-feature-{}", 30 + (i / 997) % 40, (i / 997) % 40);
        let wp = format!("WP{:02}", 1 + (i / 4) % 24);
        let to = LANES[i % 4];
        let from = if i % 4 == 0 {
            Value::Null
        } else {
            json!(LANES[(i % 4) - 1])
        };
        let node_id = nodes[i % SENDERS].clone();
        let timestamp = (start + Duration::from_millis(i as u64 * 250)).format(&format)?;
        let event_id = ulid::Ulid::new().to_string();
        let aggregate_id = format!("{feature}/{wp}");
        let event = json!({
            "event_id": event_id,
            "event_type": "WPStatusChanged",
            "aggregate_id": aggregate_id,
            "aggregate_type": "WorkPackage",
            "payload": {
                "feature_slug": feature,
                "wp_id": wp,
                "from_lane": from,
                "to_lane": to,
                "actor": format!("user-{}", i % SENDERS),
                "force": false,
                "reason": null,
                "execution_mode": "worktree",
                "review_ref": null,
                "evidence": null
            },
            "timestamp": timestamp,
            "node_id": node_id,
            "lamport_clock": i,
            "causation_id": null,
            "correlation_id": ulid::Ulid::new().to_string(),
            "project_uuid": project_uuid,
            "project_slug": project_slug,
            "schema_version": "1.0.0",
            "data_tier": 0,
            "git_branch": "main",
            "head_commit_sha": null,
            "repo_slug": null
        });
        events.push(Prepared {
            event_id,
            aggregate_id,
            project: i % PROJECTS,
            node_id,
            lamport: i as i64,
            timestamp,
            lane: to,
            body: event.to_string(),
        });
    }
    Ok(events)
}

/// `{"events": [...]}` of the given events, gzip-compressed.
pub fn gzip_batch(events: &[Prepared]) -> BoxResult<Vec<u8>> {
    let mut json = Vec::with_capacity(events.len() * 600);
    json.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(event.body.as_bytes());
    }
    json.extend_from_slice(b"]}");
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(&json)?;
    Ok(encoder.finish()?)
}

/// An HTTP client that reads error answers instead of failing on them.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

pub fn login(agent: &ureq::Agent, base: &str, username: &str) -> BoxResult<String> {
    let body = json!({"username": username, "password": PASSWORD}).to_string();
    let mut response = agent
        .post(format!("{base}/api/v1/token/"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())?;
    let text = response.body_mut().read_to_string()?;
    if response.status() != 200 {
        return Err(format!("log-in answered {}: {text}", response.status()).into());
    }
    let value: Value = serde_json::from_str(&text)?;
    value["access"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "log-in answer without an access token".into())
}

/// Posts the batches in order; returns how many events came back `success`.
pub fn send_all(
    agent: &ureq::Agent,
    base: &str,
    token: &str,
    batches: &[Vec<u8>],
) -> BoxResult<usize> {
    let url = format!("{base}/api/v1/events/batch/");
    let mut successes = 0;
    for batch in batches {
        let mut response = agent
            .post(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .send(batch.as_slice())?;
        let text = response.body_mut().read_to_string()?;
        if response.status() != 200 {
            return Err(format!("batch answered {}: {text}", response.status()).into());
        }
        // Counting is cheap next to the request; a substring count avoids
        // timing a second JSON parse.
        successes += text.matches("\"status\":\"success\"").count();
    }
    Ok(successes)
}

/// Runs `threads` sender threads, each with its own agent, started
/// together; `send(i, agent)` is thread `i`'s work and answers how many
/// events came back `success`. Returns their sum and the seconds from the
/// start to the last answer.
fn race<F>(threads: usize, send: F) -> BoxResult<(usize, f64)>
where
    F: Fn(usize, &ureq::Agent) -> BoxResult<usize> + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| -> BoxResult<(usize, f64)> {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, send) = (&barrier, &send);
                scope.spawn(move || -> BoxResult<usize> {
                    let client = agent();
                    barrier.wait();
                    send(i, &client)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut successes = 0;
        for handle in handles {
            successes += handle.join().map_err(|_| "a sender thread panicked")??;
        }
        Ok((successes, started.elapsed().as_secs_f64()))
    })
}

/// Sends the batches from one sender keeping up to `window` of them on the
/// wire at once, each slot on a thread and connection of its own (as
/// `sync now` does with its window); returns how many events came back
/// `success` and the seconds from the start to the last answer.
pub fn send_windowed(
    base: &str,
    token: &str,
    batches: &[Vec<u8>],
    window: usize,
) -> BoxResult<(usize, f64)> {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let next = AtomicUsize::new(0);
    race(window, |_, client| {
        let mut successes = 0;
        while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
            successes += send_all(client, base, token, std::slice::from_ref(batch))?;
        }
        Ok(successes)
    })
}

/// Sends the batches split evenly over `senders` (base URL, access token),
/// one thread each, all started at once; returns how many events came back
/// `success` and the seconds from the start to the last answer.
pub fn send_concurrently(
    senders: &[(String, String)],
    batches: &[Vec<u8>],
) -> BoxResult<(usize, f64)> {
    let count = senders.len();
    let per_sender = batches.len() / count;
    if per_sender * count != batches.len() {
        return Err("the batches do not split evenly over the senders".into());
    }
    race(count, |i, client| {
        let (base, token) = &senders[i];
        send_all(
            client,
            base,
            token,
            &batches[i * per_sender..(i + 1) * per_sender],
        )
    })
}

/// The events of an ingest run and their gzip batches, after printing the
/// line that describes them: `bench` names the benchmark, `at` says where
/// it stores (after a comma, or empty).
pub fn ingest_load(
    bench: &str,
    count: usize,
    full: bool,
    at: &str,
) -> BoxResult<(Vec<Prepared>, Vec<Vec<u8>>)> {
    let events = build_events(count)?;
    let json_bytes: usize = events.iter().map(|e| e.body.len()).sum();
    let batches = events
        .chunks(BATCH)
        .map(gzip_batch)
        .collect::<BoxResult<Vec<_>>>()?;
    let gzip_bytes: usize = batches.iter().map(Vec::len).sum();
    println!(
        "{bench}: {count} WPStatusChanged events, {} bytes of JSON each on average, {} gzip batches of {BATCH} ({} KiB each on average){at}{}",
        json_bytes / count,
        batches.len(),
        gzip_bytes / batches.len() / 1024,
        if full {
            ""
        } else {
            " [smoke run: pass --bench for the full run]"
        }
    );
    Ok((events, batches))
}

/// What the store is given for a checked event, as the batch route makes
/// it: owned fields, no team named, and the body kept as sent.
pub fn incoming_event(c: CheckedEvent<'_>, body: String) -> IncomingEvent {
    IncomingEvent {
        event_id: c.event_id.into_owned(),
        event_type: c.event_type.into_owned(),
        aggregate_id: c.aggregate_id.into_owned(),
        project_uuid: c.project_uuid.into_owned(),
        project_slug: c.project_slug.map(|s| s.into_owned()),
        team: None,
        node_id: c.node_id.into_owned(),
        lamport: c.lamport_clock as i64,
        timestamp: c.timestamp.into_owned(),
        lane: c.lane.map(|l| l.as_str()),
        body,
        fact: c.fact,
    }
}

/// CPU seconds this process (every thread: senders and server) has used,
/// from `/proc/self/stat` (user and system time, in the kernel's 100 Hz
/// `USER_HZ` ticks); 0 where it cannot be read.
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

/// The value at quantile `p` (0 to 1) of `sorted`; 0 when it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The store's sender for the existing user `username`, in their own team.
pub fn sender(server: &BackgroundServer, username: &str) -> BoxResult<Sender> {
    let user = server
        .block_on(server.store.find_user(username))?
        .ok_or_else(|| format!("bench user {username} missing"))?;
    Ok(Sender {
        user_id: user.id,
        username: user.username,
        team: user.team,
    })
}
