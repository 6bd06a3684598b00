//! Benchmark: the whole `spec-kitty sync status --check` process (start,
//! read credentials, probe the server, print, exit) against a local server.
//!
//!     cargo bench -p spec-kitty --bench status_check
//!
//! Starts the real server in-process on 127.0.0.1:0, logs `alice` in, then
//! runs the release binary `RUNS` times and prints the median and p90 wall
//! time of the whole process and the peak RSS of the largest run. Goal from
//! issue 3: median under 15 ms, peak under 12 MiB (the Python client takes
//! about 0.76 s and 70 MiB on the same machine class).
//!
//! Peak RSS: a child started with posix_spawn/vfork (or fork) inherits
//! the spawning process's high-water mark at exec, so
//! `getrusage(RUSAGE_CHILDREN)` taken here, in a process holding the
//! server, would report this process's size (about 30 MiB), not the
//! check's. So the checks are run by a small runner: this same benchmark
//! executable started again in runner mode (`STATUS_CHECK_RUNNER` set),
//! which touches little memory, spawns the checks, times them, and reports
//! `getrusage(RUSAGE_CHILDREN)`: the larger of the checks' peak and the
//! runner's own size at spawn, which it reports as well (its VmHWM).
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a few
//! runs only, as a smoke test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use spec_kitty::home::paths::Home;
use spec_kitty::net::http::{Body, Http};
use spec_kitty::session::credentials::{self, Credentials, CredentialsLock, LOCK_WAIT};
use spec_kitty_protocol::{LoginRequest, TokenResponse};
use spec_kitty_server::{BackgroundServer, ServerConfig, admin};

const BIN: &str = env!("CARGO_BIN_EXE_spec-kitty");
const PASSWORD: &str = "correct-horse-battery";
const RUNS: usize = 100;
const WARMUP: usize = 5;
const RUNNER_ENV: &str = "STATUS_CHECK_RUNNER";

fn main() {
    if let Ok(spec) = std::env::var(RUNNER_ENV) {
        runner(&spec);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let (warmup, runs) = if full { (WARMUP, RUNS) } else { (1, 3) };

    let data = tempfile::tempdir().expect("temp data dir");
    let server =
        BackgroundServer::start(&ServerConfig::for_data_dir(data.path())).expect("server starts");
    server
        .block_on(admin::add_team(&server.store, "acme"))
        .expect("team");
    server
        .block_on(admin::add_user(&server.store, "alice", PASSWORD, "acme"))
        .expect("user");

    let home_dir = tempfile::tempdir().expect("temp HOME");
    log_in(&home_dir, &server.url);

    // The runner inherits HOME, so every check uses this session.
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(RUNNER_ENV, format!("{warmup},{runs}"))
        .env("HOME", home_dir.path())
        .env_remove("SSL_CERT_FILE")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("runner runs");
    assert!(out.status.success(), "runner failed: {}", out.status);
    let report = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> &str {
        report
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("runner reported no {name}: {report}"))
            .trim()
    };
    let mut times: Vec<f64> = field("times_ms:")
        .split(',')
        .map(|t| t.parse::<f64>().expect("a time"))
        .collect();
    times.sort_by(f64::total_cmp);
    let children_kib: i64 = field("children_maxrss_kib:").parse().expect("KiB");
    let runner_kib: i64 = field("runner_maxrss_kib:").parse().expect("KiB");

    let median = if runs % 2 == 0 {
        (times[runs / 2 - 1] + times[runs / 2]) / 2.0
    } else {
        times[runs / 2]
    };
    let p90 = times[(runs * 9).div_ceil(10) - 1];
    let mib = |kib: i64| kib as f64 / 1024.0;
    println!("spec-kitty sync status --check against {}", server.url);
    println!("  binary:   {BIN}");
    println!("  runs:     {runs} (after {warmup} warm-up), whole process each");
    println!("  median:   {median:.2} ms   (goal < 15 ms)");
    println!("  p90:      {p90:.2} ms");
    println!("  min/max:  {:.2} / {:.2} ms", times[0], times[runs - 1]);
    println!(
        "  peak RSS: {:.2} MiB, largest run (goal < 12 MiB); the runner itself: {:.2} MiB",
        mib(children_kib),
        mib(runner_kib)
    );
    if children_kib <= runner_kib {
        println!("            (the checks' peak is at most the runner's size)");
    }
}

/// Runner mode: spawn the checks, time each whole process, and report.
fn runner(spec: &str) {
    let (warmup, runs) = spec
        .split_once(',')
        .and_then(|(w, r)| Some((w.parse::<usize>().ok()?, r.parse::<usize>().ok()?)))
        .expect("STATUS_CHECK_RUNNER=<warmup>,<runs>");
    let run = || {
        let started = Instant::now();
        let status = Command::new(BIN)
            .args(["sync", "status", "--check"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spec-kitty runs");
        let elapsed = started.elapsed();
        assert!(status.success(), "the check must connect: {status}");
        elapsed.as_secs_f64() * 1000.0
    };
    for _ in 0..warmup {
        run();
    }
    let times: Vec<String> = (0..runs).map(|_| format!("{:.4}", run())).collect();
    let children = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage children");
    // Our own size from VmHWM: getrusage(RUSAGE_SELF) would again include
    // the high-water mark inherited from the process that started us.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let own_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .unwrap_or(-1);
    println!("times_ms: {}", times.join(","));
    println!("children_maxrss_kib: {}", children.max_rss());
    println!("runner_maxrss_kib: {own_kib}");
}

/// Logs in with the client library and stores the session the way
/// `auth login` does.
fn log_in(home_dir: &tempfile::TempDir, server_url: &str) {
    let home = Home::at(home_dir.path().join(".spec-kitty"));
    let body = serde_json::to_vec(&LoginRequest {
        username: "alice".into(),
        password: PASSWORD.into(),
    })
    .expect("login body");
    let reply = Http::new(Duration::from_secs(10))
        .post(
            &format!("{server_url}/api/v1/token/"),
            None,
            Body::Json(&body),
        )
        .expect("log-in request");
    assert_eq!(reply.status, 200, "log-in refused");
    let tokens: TokenResponse = serde_json::from_slice(&reply.body).expect("token response");
    let creds = Credentials::new(
        server_url,
        "alice",
        tokens.team_slug,
        tokens.access,
        tokens.refresh.expect("refresh token"),
        tokens.access_lifetime,
        tokens.refresh_lifetime,
    );
    let lock = CredentialsLock::acquire(&home, LOCK_WAIT).expect("lock");
    credentials::save(&home, &creds, &lock).expect("save credentials");
}
