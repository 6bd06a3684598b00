//! Ingest throughput of the real server, next to a raw SQLite baseline.
//!
//! `cargo bench -p spec-kitty-server --bench ingest`
//!
//! 1. Builds 100,000 valid `WPStatusChanged` events (distinct ULIDs, a few
//!    projects) and pre-compresses them into 1000-event gzip batches.
//! 2. Raw baseline: the same rows inserted straight into a fresh database
//!    with the server's own schema and `INSERT_EVENT_SQL`, 1000 per
//!    transaction; once with SQLite's automatic checkpoint (the limit the
//!    figures are given against), once checkpointed off the inserting
//!    thread as the server does.
//! 3. The server over HTTP on 127.0.0.1: every batch from one sender, then
//!    on a fresh server and database one sender keeping three batches in
//!    flight (as `sync now` does), then four concurrent senders with
//!    25,000 events each.
//!
//! Steps 2 and 3 take turns for three rounds and the figures are the
//! medians. Run without `--bench` (as `cargo test --benches` does) it is a
//! quick smoke run over 4,000 events, one round.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use rusqlite::{TransactionBehavior, params};
use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::store::sqlite::{self, INSERT_EVENT_SQL};
use spec_kitty_server::{BackgroundServer, admin};

/// One event, as JSON and as the row the server would store.
mod support;

use support::{
    BATCH, BoxResult, PASSWORD, Prepared, SENDERS, WINDOW, agent, incoming_event, ingest_load,
    login, process_cpu_seconds, send_all, send_concurrently, send_windowed,
};

/// The same rows straight into SQLite, 1000 per transaction; with
/// `off_path`, checkpointed as the server does (on a thread of its own),
/// else by SQLite's automatic checkpoint inside the commits.
fn raw_baseline(dir: &Path, events: &[Prepared], off_path: bool) -> BoxResult<f64> {
    use spec_kitty_server::store::sqlite::checkpoint;

    let path = dir.join("raw.db");
    let mut conn = sqlite::connect(&path)?;
    sqlite::migrate(&mut conn)?;
    let checkpointer = if off_path {
        checkpoint::watch_log(&conn);
        Some(checkpoint::Checkpointer::start(path.clone())?)
    } else {
        None
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let started = Instant::now();
    let mut seq = 0_i64;
    for chunk in events.chunks(BATCH) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT_SQL)?;
            for e in chunk {
                seq += 1;
                let (feature_key, wp_id) = e.aggregate_id.split_once('/').unwrap_or(("", ""));
                insert.execute(params![
                    e.event_id,
                    "WPStatusChanged",
                    e.aggregate_id,
                    e.project as i64 + 1,
                    1_i64,
                    1_i64,
                    e.node_id,
                    e.lamport,
                    e.timestamp,
                    e.lane,
                    e.body,
                    now,
                    seq,
                    wp_id,
                    feature_key,
                ])?;
            }
        }
        tx.commit()?;
        if let Some(checkpointer) = &checkpointer {
            checkpoint::after_writes(&conn, checkpointer);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    if stored != events.len() as i64 {
        return Err(format!("raw baseline stored {stored} of {} rows", events.len()).into());
    }
    Ok(events.len() as f64 / elapsed)
}

/// A fresh server with team `acme` and `users` users; returns their tokens.
fn fresh_server(dir: &Path, users: usize) -> BoxResult<(BackgroundServer, Vec<String>)> {
    let server = BackgroundServer::start(&ServerConfig::for_data_dir(dir))?;
    server.block_on(admin::add_team(&server.store, "acme"))?;
    let client = agent();
    let mut tokens = Vec::with_capacity(users);
    for i in 0..users {
        let username = format!("user-{i}");
        server.block_on(admin::add_user(&server.store, &username, PASSWORD, "acme"))?;
        tokens.push(login(&client, &server.url, &username)?);
    }
    Ok((server, tokens))
}

fn check_stored(server: &BackgroundServer, expected: usize) -> BoxResult<()> {
    let stored = server.block_on(server.store.event_count())?;
    if stored != expected as i64 {
        return Err(format!("the server stored {stored} of {expected} events").into());
    }
    Ok(())
}

/// An HTTP run's rate and the CPU seconds the process (senders and
/// server) used meanwhile: CPU over wall time above 1 means the server's
/// stages overlapped.
struct Run {
    rate: f64,
    cpu: f64,
    wall: f64,
}

impl Run {
    fn new(events: usize, wall: f64, cpu_before: f64) -> Run {
        Run {
            rate: events as f64 / wall,
            cpu: process_cpu_seconds() - cpu_before,
            wall,
        }
    }
}

fn one_sender(dir: &Path, batches: &[Vec<u8>], events: usize) -> BoxResult<Run> {
    let (server, tokens) = fresh_server(dir, 1)?;
    let token = tokens.first().ok_or("no token")?;
    let client = agent();
    let cpu = process_cpu_seconds();
    let started = Instant::now();
    let successes = send_all(&client, &server.url, token, batches)?;
    let run = Run::new(events, started.elapsed().as_secs_f64(), cpu);
    if successes != events {
        return Err(format!("{successes} of {events} events answered success").into());
    }
    check_stored(&server, events)?;
    Ok(run)
}

/// One sender keeping [`WINDOW`] batches in flight, as `sync now` does.
fn one_sender_windowed(dir: &Path, batches: &[Vec<u8>], events: usize) -> BoxResult<Run> {
    let (server, tokens) = fresh_server(dir, 1)?;
    let token = tokens.first().ok_or("no token")?;
    let cpu = process_cpu_seconds();
    let (successes, elapsed) = send_windowed(&server.url, token, batches, WINDOW)?;
    let run = Run::new(events, elapsed, cpu);
    if successes != events {
        return Err(format!("{successes} of {events} events answered success").into());
    }
    check_stored(&server, events)?;
    // The log file keeps the largest size it reached (SQLite starts it over
    // in place): bounded if the checkpoint thread kept up.
    let log = std::fs::metadata(dir.join("spec-kitty.db-wal")).map_or(0, |m| m.len());
    let db = std::fs::metadata(dir.join("spec-kitty.db")).map_or(0, |m| m.len());
    println!(
        "1 sender, {WINDOW} in flight: database {:.1} MiB, its log at most {:.1} MiB",
        db as f64 / 1048576.0,
        log as f64 / 1048576.0
    );
    Ok(run)
}

fn concurrent_senders(dir: &Path, batches: &[Vec<u8>], events: usize) -> BoxResult<Run> {
    let (server, tokens) = fresh_server(dir, SENDERS)?;
    let senders: Vec<(String, String)> = tokens
        .into_iter()
        .map(|token| (server.url.clone(), token))
        .collect();
    let cpu = process_cpu_seconds();
    let (successes, elapsed) = send_concurrently(&senders, batches)?;
    let run = Run::new(events, elapsed, cpu);
    if successes != events {
        return Err(format!("{successes} of {events} events answered success").into());
    }
    check_stored(&server, events)?;
    Ok(run)
}

/// Where one batch's time goes, stage by stage, on one thread and without
/// HTTP: the same work the batch route does (the validator's fast path,
/// the body kept as sent), timed per stage.
fn breakdown(
    dir: &Path,
    batches: &[Vec<u8>],
    events: usize,
) -> BoxResult<Vec<(&'static str, f64)>> {
    use std::io::Read;

    use serde_json::value::RawValue;
    use spec_kitty_protocol::fast::check_event;
    use spec_kitty_server::store::IncomingEvent;

    /// The batch as the route parses it: raw event texts, stored as sent.
    #[derive(serde::Deserialize)]
    struct RawBatch<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }

    let (server, _) = fresh_server(dir, 1)?;
    let sender = support::sender(&server, "user-0")?;
    let mut totals = [0.0_f64; 5];
    for raw in batches {
        let t = Instant::now();
        let mut json = Vec::with_capacity(raw.len() * 20);
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut json)?;
        totals[0] += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let batch: RawBatch<'_> = serde_json::from_slice(&json)?;
        totals[1] += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let checked: Vec<_> = batch
            .events
            .iter()
            .map(|raw| (check_event(raw.get()), raw.get()))
            .collect();
        totals[2] += t.elapsed().as_secs_f64();
        let invalid = checked.iter().filter(|(c, _)| c.is_none()).count();
        if invalid > 0 {
            return Err(format!("{invalid} bench events missed the fast path").into());
        }

        let t = Instant::now();
        let incoming: Vec<IncomingEvent> = checked
            .into_iter()
            .filter_map(|(c, body)| c.map(|c| incoming_event(c, body.to_string())))
            .collect();
        totals[3] += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        server.block_on(server.store.ingest(&sender, incoming, now))?;
        totals[4] += t.elapsed().as_secs_f64();
    }
    check_stored(&server, events)?;
    let names = [
        "gunzip",
        "parse batch into raw events",
        "check_event (fast validator)",
        "owned fields + raw body",
        "store.ingest (one write tx)",
    ];
    Ok(names
        .into_iter()
        .zip(totals)
        .map(|(name, secs)| (name, secs * 1000.0 / batches.len() as f64))
        .collect())
}

/// The middle value (the upper one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn run() -> BoxResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let count = if full { 100_000 } else { 4_000 };

    let (events, batches) = ingest_load("ingest", count, full, "")?;

    // The machine's speed drifts between runs by more than the gaps being
    // measured, so the configurations take turns, round after round, and
    // each figure is the median of its rounds; the ratio that matters is
    // also given round by round (each windowed run against the raw run
    // just before it).
    let rounds = if full { 3 } else { 1 };
    let mut raws = Vec::new();
    let mut raw_offs = Vec::new();
    let (mut ones, mut windoweds, mut fours) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let raw_dir = tempfile::tempdir()?;
        raws.push(raw_baseline(raw_dir.path(), &events, false)?);
        let raw_off_dir = tempfile::tempdir()?;
        raw_offs.push(raw_baseline(raw_off_dir.path(), &events, true)?);
        let one_dir = tempfile::tempdir()?;
        ones.push(one_sender(one_dir.path(), &batches, count)?);
        let window_dir = tempfile::tempdir()?;
        windoweds.push(one_sender_windowed(window_dir.path(), &batches, count)?);
        let four_dir = tempfile::tempdir()?;
        fours.push(concurrent_senders(four_dir.path(), &batches, count)?);
    }
    let per_round: Vec<String> = windoweds
        .iter()
        .zip(&raws)
        .map(|(w, raw)| format!("{:.1}%", w.rate / raw * 100.0))
        .collect();
    let raw = median(raws.clone());
    let raw_off = median(raw_offs);
    let pick = |mut runs: Vec<Run>| -> BoxResult<Run> {
        runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let middle = runs.len() / 2;
        runs.into_iter()
            .nth(middle)
            .ok_or_else(|| "no rounds".into())
    };
    let (one, windowed, four) = (pick(ones)?, pick(windoweds)?, pick(fours)?);

    println!();
    println!(
        "median of {rounds} round(s); raw rates {}",
        raws.iter()
            .map(|r| format!("{r:.0}/s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| path                                  |   events/s | % of raw | CPU s / wall s |");
    println!("|---------------------------------------|-----------:|---------:|---------------:|");
    println!(
        "| {:<37} | {raw:>10.0} | {:>7.1}% | {:>14} |",
        "raw SQLite INSERT, 1000 rows per tx", 100.0, "1 thread"
    );
    println!(
        "| {:<37} | {raw_off:>10.0} | {:>7.1}% | {:>14} |",
        "  the same, checkpoints off its path",
        raw_off / raw * 100.0,
        "2 threads"
    );
    let row = |name: &str, run: &Run| {
        println!(
            "| {name:<37} | {:>10.0} | {:>7.1}% | {:>6.2} / {:>5.2} |",
            run.rate,
            run.rate / raw * 100.0,
            run.cpu,
            run.wall
        );
    };
    row("HTTP ingest, 1 sender", &one);
    row(
        &format!("HTTP ingest, 1 sender, {WINDOW} in flight"),
        &windowed,
    );
    row(&format!("HTTP ingest, {SENDERS} concurrent senders"), &four);
    println!(
        "1 sender, {WINDOW} in flight, against the raw run of the same round: {}",
        per_round.join(", ")
    );

    let stages_dir = tempfile::tempdir()?;
    let stages = breakdown(stages_dir.path(), &batches, count)?;
    let per_batch = |rate: f64| BATCH as f64 / rate * 1000.0;
    println!();
    println!("where a {BATCH}-event batch's time goes (one thread, no HTTP):");
    println!("| stage                                 | ms/batch |");
    println!("|---------------------------------------|---------:|");
    for (name, ms) in &stages {
        println!("| {name:<37} | {ms:>8.2} |");
    }
    let in_process: f64 = stages.iter().map(|(_, ms)| ms).sum();
    println!("| {:<37} | {in_process:>8.2} |", "sum of the stages");
    println!(
        "| {:<37} | {:>8.2} |",
        "raw SQLite INSERT (baseline)",
        per_batch(raw)
    );
    println!(
        "| {:<37} | {:>8.2} |",
        "HTTP ingest, 1 sender (wall clock)",
        per_batch(one.rate)
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
