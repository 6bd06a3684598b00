//! Drain benchmark: fill the offline queue, then `spec-kitty sync now` to
//! the real server on 127.0.0.1.
//!
//! `cargo bench -p spec-kitty --bench drain`
//!
//! 1. Fill: 100,000 valid `WPStatusChanged` events through the library
//!    (`Queue::enqueue_all`, 1000 per call, one transaction each), and
//!    5,000 through the per-event `Queue::enqueue` (one transaction each),
//!    into separate queues; events per second for each.
//! 2. Drain: a server (`BackgroundServer`, temp SQLite), a log-in through
//!    the `spec-kitty` binary built with this bench (release), then one
//!    `spec-kitty sync now` of a queue of 10,000 events and one of
//!    100,000: wall time, CPU of client and server, and the child's peak
//!    RSS (its VmHWM, sampled). The server must hold every event
//!    afterwards.
//!
//! Goals (issue 13): 100,000 events drained in under 1.0 s and 64 MiB;
//! 10,000 in under 0.1 s. The limit beside them is the server's raw insert
//! rate for the same kind of events (`cargo bench -p spec-kitty-server
//! --bench ingest`).
//!
//! Run without `--bench` (as `cargo test --benches` does) it is a quick
//! smoke run over 5,000 and 500 events.

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use serde_json::{Value, json};
use spec_kitty::home::paths::Home;
use spec_kitty::queue::Queue;
use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::{BackgroundServer, admin};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const BIN: &str = env!("CARGO_BIN_EXE_spec-kitty");
const CHUNK: usize = 1000;
const SINGLE: usize = 5000;
const PASSWORD: &str = "bench-password-123";
const LANES: [&str; 4] = ["planned", "doing", "for_review", "done"];

fn event(project: &str, base: time::OffsetDateTime, i: usize) -> Value {
    let wp = format!("WP{:02}", i % 100);
    json!({
        "event_id": ulid::Ulid::new().to_string(),
        "event_type": "WPStatusChanged",
        "aggregate_id": format!("039-cli-2x-readiness/{wp}"),
        "aggregate_type": "WorkPackage",
        "payload": {"feature_slug": "039-cli-2x-readiness", "wp_id": wp,
            "from_lane": LANES[i % 4], "to_lane": LANES[(i + 1) % 4], "actor": "alice",
            "force": false, "reason": null, "execution_mode": "worktree",
            "review_ref": null, "evidence": null},
        "timestamp": spec_kitty_protocol::timestamp::format(base + time::Duration::microseconds(i as i64)),
        "node_id": "3f2a9c1b7d4e",
        "lamport_clock": i + 1,
        "causation_id": null,
        "correlation_id": ulid::Ulid::new().to_string(),
        "project_uuid": project,
        "project_slug": "bench-project",
        "schema_version": "1.0.0",
        "data_tier": 0,
        "git_branch": "main",
        "head_commit_sha": null,
        "repo_slug": null
    })
}

/// CPU seconds (user + system) and peak RSS (KiB) from getrusage.
fn usage(who: nix::sys::resource::UsageWho) -> BoxResult<(f64, i64)> {
    let usage = nix::sys::resource::getrusage(who)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok((
        secs(usage.user_time()) + secs(usage.system_time()),
        usage.max_rss(),
    ))
}

/// The peak RSS of a running process's own memory (`VmHWM`, KiB), or None
/// once it has exited.
fn vm_hwm(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn spec_kitty(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("HOME", home);
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run() -> BoxResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let total = if full { 100_000 } else { 5_000 };
    let single = if full { SINGLE } else { 500 };
    let project = uuid::Uuid::new_v4().to_string();
    let base = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let scratch = tempfile::tempdir()?;

    // 1a. Per-event enqueue, one transaction each, in a queue of its own.
    {
        let home = Home::at(scratch.path().join("single/.spec-kitty"));
        let mut queue = Queue::open(&home)?;
        let events: Vec<Value> = (0..single).map(|i| event(&project, base, i)).collect();
        let started = Instant::now();
        for event in &events {
            queue.enqueue(event)?;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "fill, enqueue (1 per transaction): {single} events in {secs:.3} s = {:.0} events/s",
            single as f64 / secs
        );
    }

    // 1b. The queues to drain, filled in chunks (events are built chunk by
    // chunk, outside the timing, so this process stays small): the large
    // one, whose fill is timed, and a small one.
    let small = total / 10;
    let large_home = scratch.path().join("large");
    let small_home = scratch.path().join("small");
    let secs = fill(&large_home, &project, base, 0, total)?;
    println!(
        "fill, enqueue_all ({CHUNK} per transaction): {total} events in {secs:.3} s = {:.0} events/s",
        total as f64 / secs
    );
    fill(&small_home, &project, base, total, small)?;

    // 2. The server and a log-in through the binary, for each queue.
    let server =
        BackgroundServer::start(&ServerConfig::for_data_dir(&scratch.path().join("server")))?;
    server.block_on(admin::add_team(&server.store, "acme"))?;
    server.block_on(admin::add_user(&server.store, "alice", PASSWORD, "acme"))?;
    login(&small_home, &server.url)?;
    login(&large_home, &server.url)?;

    // 3. The small queue, then the large one, each by one `sync now`.
    let (small_secs, _) = drain(&server, &small_home, small, 0)?;
    let (large_secs, rss) = drain(&server, &large_home, total, small)?;
    if full {
        println!(
            "goal (issue 13): {total} events < 1.0 s and < 64 MiB: {}; {small} events < 0.1 s: {}",
            if large_secs < 1.0 && rss < 64.0 {
                "met"
            } else {
                "NOT met"
            },
            if small_secs < 0.1 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// Fills a queue under `home_dir` with events `first..first + count`;
/// returns the seconds spent in `enqueue_all`.
fn fill(
    home_dir: &Path,
    project: &str,
    base: time::OffsetDateTime,
    first: usize,
    count: usize,
) -> BoxResult<f64> {
    let home = Home::at(home_dir.join(".spec-kitty"));
    let mut queue = Queue::open(&home)?;
    let mut spent = std::time::Duration::ZERO;
    for start in (first..first + count).step_by(CHUNK) {
        let chunk: Vec<Value> = (start..(start + CHUNK).min(first + count))
            .map(|i| event(project, base, i))
            .collect();
        let started = Instant::now();
        queue.enqueue_all(&chunk)?;
        spent += started.elapsed();
    }
    if queue.len()? != count as i64 {
        return Err(format!("the queue holds {} events, not {count}", queue.len()?).into());
    }
    Ok(spent.as_secs_f64())
}

/// Logs in to `url` as alice through the binary.
fn login(home_dir: &Path, url: &str) -> BoxResult<()> {
    let mut login = spec_kitty(home_dir)
        .args([
            "auth",
            "login",
            "--server",
            url,
            "--username",
            "alice",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    login
        .stdin
        .take()
        .ok_or("no stdin for the log-in")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    if !login.wait()?.success() {
        return Err("log-in failed".into());
    }
    Ok(())
}

/// One `sync now` of the `total` events queued under `home_dir`, with
/// `before` events already on the server; returns the wall seconds and
/// the child's peak RSS (MiB).
///
/// The child's own peak RSS is its VmHWM, sampled until it exits (a
/// high-water mark, so any sample after the peak holds it).
/// getrusage(RUSAGE_CHILDREN) is printed too, but it is only an upper
/// bound: a child started with vfork/posix_spawn inherits the spawning
/// process's high-water mark at exec (here, this process with the server
/// in it); resetting ours first (clear_refs 5) narrows it to our current
/// RSS.
fn drain(
    server: &BackgroundServer,
    home_dir: &Path,
    total: usize,
    before: usize,
) -> BoxResult<(f64, f64)> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (client_cpu_before, _) = usage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let (server_cpu_before, _) = usage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    let started = Instant::now();
    let mut child = spec_kitty(home_dir)
        .args(["sync", "now", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut hwm = 0;
    // Bounded: one sample every 2 ms for at most ten minutes (a coarser
    // step would add up to the step to a 0.1 s figure).
    for _ in 0..300_000 {
        if child.try_wait()?.is_some() {
            break;
        }
        if let Some(kib) = vm_hwm(pid) {
            hwm = hwm.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let out = child.wait_with_output()?;
    let secs = started.elapsed().as_secs_f64();
    let (client_cpu_after, children_maxrss) = usage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let (server_cpu_after, _) = usage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    if !out.status.success() {
        return Err(format!(
            "sync now failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let summary: Value = serde_json::from_slice(&out.stdout)?;
    let stored = server.block_on(server.store.event_count())?;
    let rss = hwm as f64 / 1024.0;
    println!(
        "drain, sync now: {total} events in {secs:.3} s = {:.0} events/s, peak RSS {rss:.1} MiB (VmHWM; getrusage upper bound {:.1} MiB)",
        total as f64 / secs,
        children_maxrss as f64 / 1024.0
    );
    println!(
        "  CPU during the drain: client {:.3} s, server (this process) {:.3} s",
        client_cpu_after - client_cpu_before,
        server_cpu_after - server_cpu_before
    );
    println!(
        "  server stored {} events; sync now said synced {}, remaining {}",
        stored - before as i64,
        summary["synced"],
        summary["remaining"]
    );
    if stored != (before + total) as i64 || summary["remaining"] != 0 {
        return Err(format!(
            "the server holds {} events, not {total}",
            stored - before as i64
        )
        .into());
    }
    Ok((secs, rss))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drain benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
