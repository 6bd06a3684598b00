//! The team board's figures (contract section 8), printed, never asserted.
//!
//! `cargo bench -p spec-kitty-server --bench board`
//!
//! 1. The projection's cost in ingest: the same 100,000 `WPStatusChanged`
//!    events (5 projects, 200 work packages each) stored through the
//!    store in 1000-event batches, once with the board projection and once
//!    without it (the events' board facts removed), on fresh databases, in
//!    alternating rounds.
//! 2. `GET /api/v1/projects/{uuid}/board/` for a project of 1,000 work
//!    packages, over one keep-alive connection on 127.0.0.1 (the round
//!    trip bounds the server's time from above).
//! 3. Stream fan-out: 500 watchers on one project's stream; a batch moves
//!    one work package; from the batch's `200` to each watcher's receipt.
//!    On one SQLite instance, then (when `SPEC_KITTY_TEST_DATABASE_URL`
//!    names a PostgreSQL server) across two instances on one database:
//!    batches to the first, watchers on the second, so every change
//!    travels through `NOTIFY`.
//!
//! Run without `--bench` (as `cargo test --benches` does) it is a quick
//! smoke run with small counts.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spec_kitty_protocol::fast::check_event;
use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::store::IncomingEvent;
use spec_kitty_server::{BackgroundServer, admin};

#[path = "../tests/pg_support/mod.rs"]
mod pg_support;
mod support;

use support::{BoxResult, LANES, PASSWORD, percentile};

struct Sizes {
    ingest_events: usize,
    rounds: usize,
    board_wps: usize,
    board_gets: usize,
    watchers: usize,
    fanout_rounds: usize,
}

fn ulid() -> String {
    ulid::Ulid::new().to_string()
}

fn status_event(project: &str, feature: &str, wp: usize, lane: &str, lamport: u64) -> Value {
    json!({
        "event_id": ulid(),
        "event_type": "WPStatusChanged",
        "aggregate_id": format!("{feature}/WP{wp:02}"),
        "aggregate_type": "WorkPackage",
        "payload": {"feature_slug": feature, "wp_id": format!("WP{wp:02}"), "from_lane": "planned",
            "to_lane": lane, "actor": "bench", "force": false, "reason": null,
            "execution_mode": "worktree", "review_ref": null, "evidence": null},
        "timestamp": spec_kitty_protocol::timestamp::now(),
        "node_id": "3f2a9c1b7d4e",
        "lamport_clock": lamport,
        "causation_id": null,
        "correlation_id": ulid(),
        "project_uuid": project,
        "project_slug": "bench",
        "schema_version": "1.0.0",
        "data_tier": 0,
        "git_branch": "main",
        "head_commit_sha": null,
        "repo_slug": null
    })
}

fn created_event(project: &str, feature: &str, wp: usize, lamport: u64) -> Value {
    json!({
        "event_id": ulid(),
        "event_type": "WPCreated",
        "aggregate_id": format!("{feature}/WP{wp:02}"),
        "payload": {"feature_slug": feature, "wp_id": format!("WP{wp:02}"),
            "title": format!("Work package number {wp} of the benchmark"), "dependencies": []},
        "timestamp": spec_kitty_protocol::timestamp::now(),
        "node_id": "3f2a9c1b7d4e",
        "lamport_clock": lamport,
        "project_uuid": project,
        "project_slug": "bench"
    })
}

fn server(dir: &std::path::Path) -> BoxResult<(BackgroundServer, String)> {
    let server = BackgroundServer::start(&ServerConfig::for_data_dir(dir))?;
    server.block_on(admin::add_team(&server.store, "acme"))?;
    server.block_on(admin::add_user(&server.store, "alice", PASSWORD, "acme"))?;
    let token = login(&server.url)?;
    Ok((server, token))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn post(agent: &ureq::Agent, base: &str, token: &str, events: &[Value]) -> BoxResult<()> {
    let mut reply = agent
        .post(format!("{base}/api/v1/events/batch/"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(json!({ "events": events }))?;
    if reply.status() != 200 {
        return Err(format!(
            "batch answered {}: {}",
            reply.status(),
            reply.body_mut().read_to_string()?
        )
        .into());
    }
    Ok(())
}

fn incoming(events: &[String], with_board: bool) -> BoxResult<Vec<IncomingEvent>> {
    events
        .iter()
        .map(|body| {
            let c = check_event(body).ok_or("bench event missed the fast path")?;
            let mut event = support::incoming_event(c, body.clone());
            if !with_board {
                event.fact = None;
            }
            Ok(event)
        })
        .collect()
}

/// Events per second through `Store::ingest`, with or without the board.
fn store_rate(events: &[String], with_board: bool) -> BoxResult<f64> {
    let dir = tempfile::tempdir()?;
    let (server, _) = server(dir.path())?;
    let sender = support::sender(&server, "alice")?;
    let batches: Vec<Vec<IncomingEvent>> = events
        .chunks(1000)
        .map(|chunk| incoming(chunk, with_board))
        .collect::<BoxResult<_>>()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let started = Instant::now();
    for batch in batches {
        server.block_on(server.store.ingest(&sender, batch, now))?;
    }
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

/// The projection's cost on two loads: every event a different work
/// package (its worst case: one card written per event stored), and the
/// ingest bench's events (a team's day: many moves of fewer packages).
fn projection_cost(sizes: &Sizes) -> BoxResult<()> {
    let projects: Vec<String> = (0..5).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let worst: Vec<String> = (0..sizes.ingest_events)
        .map(|i| {
            let project = &projects[i % projects.len()];
            status_event(
                project,
                "001-bench",
                1 + (i / 5) % 200,
                LANES[i % 4],
                i as u64 + 1,
            )
            .to_string()
        })
        .collect();
    compare(
        sizes,
        "every event a different work package (1,000 cards per batch)",
        &worst,
    )?;
    let day: Vec<String> = support::build_events(sizes.ingest_events)?
        .into_iter()
        .map(|e| e.body)
        .collect();
    compare(
        sizes,
        "the ingest bench's events (24 work packages per feature)",
        &day,
    )
}

fn compare(sizes: &Sizes, label: &str, events: &[String]) -> BoxResult<()> {
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..sizes.rounds {
        without.push(store_rate(events, false)?);
        with.push(store_rate(events, true)?);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (w, wo) = (best(&with), best(&without));
    println!(
        "projection cost, {label}: {} events in 1000-event batches through the store, best of {} rounds: without the board {:.0}/s, with it {:.0}/s ({:.1}% slower)",
        events.len(),
        sizes.rounds,
        wo,
        w,
        (1.0 - w / wo) * 100.0
    );
    Ok(())
}

fn board_reads(sizes: &Sizes) -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    let (server, token) = server(dir.path())?;
    let agent = agent();
    let project = uuid::Uuid::new_v4().to_string();
    let mut events = Vec::new();
    for wp in 1..=sizes.board_wps {
        let feature = format!("{:03}-feature", 1 + wp % 10);
        events.push(created_event(&project, &feature, wp, wp as u64));
        events.push(status_event(
            &project,
            &feature,
            wp,
            LANES[wp % 4],
            (sizes.board_wps + wp) as u64,
        ));
    }
    for chunk in events.chunks(1000) {
        post(&agent, &server.url, &token, chunk)?;
    }
    let url = format!("{}/api/v1/projects/{project}/board/", server.url);
    let mut times = Vec::with_capacity(sizes.board_gets);
    let mut bytes = 0;
    for _ in 0..sizes.board_gets {
        let started = Instant::now();
        let mut reply = agent
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()?;
        let body = reply.body_mut().read_to_string()?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "GET board/ for {} work packages ({} KiB of JSON), {} requests on one connection: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        sizes.board_wps,
        bytes / 1024,
        sizes.board_gets,
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99)
    );
    Ok(())
}

/// A watcher: a raw connection to the stream that reports each `wp`
/// message's arrival time.
fn watcher(
    addr: std::net::SocketAddr,
    path: String,
    token: String,
    ready: mpsc::Sender<()>,
    seen: mpsc::Sender<Instant>,
) -> BoxResult<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err("stream closed during headers".into());
        }
        if line == "\r\n" {
            break;
        }
    }
    ready.send(())?;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.starts_with("event: wp") && seen.send(Instant::now()).is_err() {
            return Ok(());
        }
    }
}

/// Two instances, their data directories and the PostgreSQL database
/// under them, in the order they are dropped.
type PostgresPair = (
    Vec<BackgroundServer>,
    Vec<tempfile::TempDir>,
    pg_support::TempDb,
);

/// Two instances on one fresh PostgreSQL database, or `None` when no
/// PostgreSQL is named (`SPEC_KITTY_TEST_DATABASE_URL`).
fn postgres_pair() -> BoxResult<Option<PostgresPair>> {
    let Some(db) = pg_support::TempDb::create() else {
        return Ok(None);
    };
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir()?;
        let mut config = ServerConfig::for_data_dir(dir.path());
        config.storage.database_url = db.url.clone();
        servers.push(BackgroundServer::start(&config)?);
        dirs.push(dir);
    }
    let first = &servers[0];
    first.block_on(admin::add_team(&first.store, "acme"))?;
    first.block_on(admin::add_user(&first.store, "alice", PASSWORD, "acme"))?;
    Ok(Some((servers, dirs, db)))
}

fn login(base: &str) -> BoxResult<String> {
    support::login(&agent(), base, "alice")
}

fn fan_out_sqlite(sizes: &Sizes) -> BoxResult<()> {
    let dir = tempfile::tempdir()?;
    let (server, token) = server(dir.path())?;
    fan_out(
        sizes,
        "one SQLite instance",
        &server.url,
        server.addr,
        &token,
    )
}

fn fan_out_postgres(sizes: &Sizes) -> BoxResult<()> {
    let Some((servers, _dirs, _db)) = postgres_pair()? else {
        println!(
            "stream fan-out across two PostgreSQL instances: skipped (set {} to run it)",
            pg_support::ENV
        );
        return Ok(());
    };
    let token = login(&servers[0].url)?;
    fan_out(
        sizes,
        "two PostgreSQL instances (batches to one, watchers on the other)",
        &servers[0].url,
        servers[1].addr,
        &token,
    )
}

/// Watchers on `watch_addr`, batches to `ingest_url`.
fn fan_out(
    sizes: &Sizes,
    label: &str,
    ingest_url: &str,
    watch_addr: std::net::SocketAddr,
    token: &str,
) -> BoxResult<()> {
    let agent = agent();
    let project = uuid::Uuid::new_v4().to_string();
    post(
        &agent,
        ingest_url,
        token,
        &[status_event(&project, "001-x", 1, "planned", 1)],
    )?;
    let path = format!("/api/v1/projects/{project}/stream/");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    for _ in 0..sizes.watchers {
        let (path, token, ready, seen) = (
            path.clone(),
            token.to_string(),
            ready_tx.clone(),
            seen_tx.clone(),
        );
        let addr = watch_addr;
        std::thread::spawn(move || {
            if let Err(e) = watcher(addr, path, token, ready, seen) {
                eprintln!("watcher: {e}");
            }
        });
    }
    drop(seen_tx);
    for _ in 0..sizes.watchers {
        ready_rx.recv_timeout(Duration::from_secs(60))?;
    }
    let mut latencies = Vec::new();
    for round in 0..sizes.fanout_rounds {
        let event = status_event(
            &project,
            "001-x",
            1,
            LANES[(round + 1) % 4],
            round as u64 + 2,
        );
        post(&agent, ingest_url, token, &[event])?;
        let answered = Instant::now();
        for _ in 0..sizes.watchers {
            let at = seen_rx.recv_timeout(Duration::from_secs(60))?;
            latencies.push(at.saturating_duration_since(answered).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "stream fan-out on {label}: {} watchers of one project, {} changes, from the batch's 200 to each watcher's receipt: median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sizes.watchers,
        sizes.fanout_rounds,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}

fn main() -> ExitCode {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            ingest_events: 100_000,
            rounds: 3,
            board_wps: 1000,
            board_gets: 300,
            watchers: 500,
            fanout_rounds: 10,
        }
    } else {
        Sizes {
            ingest_events: 2000,
            rounds: 1,
            board_wps: 50,
            board_gets: 10,
            watchers: 5,
            fanout_rounds: 2,
        }
    };
    let run = || -> BoxResult<()> {
        projection_cost(&sizes)?;
        board_reads(&sizes)?;
        fan_out_sqlite(&sizes)?;
        fan_out_postgres(&sizes)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("board bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
