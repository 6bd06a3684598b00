//! The load and abuse benchmark: the release server binary as a child
//! process on 127.0.0.1 (so its peak memory is its own, read from
//! `/proc/PID/status`), driven over loopback only, every phase bounded in
//! time. It prints:
//!
//! - probes/s and latency percentiles with 200 keep-alive connections, each
//!   sending what `sync status --check` sends (an empty batch with a token);
//! - events/s with 50 senders posting gzip batches;
//! - the server's peak memory through an unauthenticated-body flood (large
//!   batch bodies without a token) and a log-in flood (parallel wrong
//!   log-ins);
//! - how long 600 idle connections stay open, silent ones and kept-alive
//!   ones, under short timeouts set for this run.
//!
//! The client is a few lines of HTTP/1.1 over `TcpStream`, one thread per
//! connection: lighter than a full client, so more of the two cores are
//! left to the server. `cargo bench` runs the full sizes; `cargo test
//! --benches` (no `--bench` argument) a quick pass that only checks the
//! phases run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use support::{BoxResult, PASSWORD, percentile};

const BIN: &str = env!("CARGO_BIN_EXE_spec-kitty-server");

/// The timeouts this run gives the server, short so the idle phase ends
/// in seconds (the defaults are 10 s and 60 s).
const HEADER_READ_TIMEOUT: u64 = 2;
const IDLE_TIMEOUT: u64 = 3;

/// The largest body the server takes by default (16 MiB): what the body
/// flood declares and sends.
const FLOOD_BODY: usize = 16 * 1024 * 1024;

struct Sizes {
    probe_connections: usize,
    probe_seconds: f64,
    senders: usize,
    batches_per_sender: usize,
    batch_events: usize,
    event_seconds: f64,
    login_connections: usize,
    login_seconds: f64,
    body_connections: usize,
    body_seconds: f64,
    idle_connections: usize,
}

/// The server under test; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin(dir: &Path, args: &[&str], stdin: Option<&str>) -> BoxResult<()> {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("SPEC_KITTY_SERVER_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        writeln!(pipe, "{text}")?;
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("spec-kitty-server {args:?} failed: {status}").into());
    }
    Ok(())
}

impl Server {
    /// A fresh data directory with team `acme` and user `bench`, and the
    /// server serving it on a free loopback port.
    fn start() -> BoxResult<Server> {
        let dir = tempfile::tempdir()?;
        admin(dir.path(), &["team", "add", "acme"], None)?;
        admin(
            dir.path(),
            &["user", "add", "bench", "--team", "acme", "--password-stdin"],
            Some(PASSWORD),
        )?;
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--color", "never"])
            .args(["--header-read-timeout", &HEADER_READ_TIMEOUT.to_string()])
            .args(["--idle-timeout", &IDLE_TIMEOUT.to_string()])
            // Out of the throttle's way: every wrong log-in of the flood
            // runs a password check, the costly case (the default throttle
            // answers 429 unchecked after 20 failures from one address).
            .args(["--login-max-failures", "1000000"])
            .env_remove("SPEC_KITTY_SERVER_CONFIG")
            .env_remove("SPEC_KITTY_SERVER_DATABASE_URL")
            .env_remove("SPEC_KITTY_SERVER_LISTEN")
            // The start line only: a line per request would measure the
            // log pipe, not the server.
            .env("RUST_LOG", "warn,spec_kitty_server::cli=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel();
        // Reads the log to its end, so the server never blocks on a full
        // pipe; hands over the listening address.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("url=http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.split_whitespace().next().map(str::to_string));
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .ok_or("the server did not log its address")?
            .parse()?;
        Ok(Server {
            child,
            addr,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> BoxResult<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Resets the peak-RSS mark (`VmHWM`) so the next phase's peak is its own;
/// false where the kernel does not allow it (the mark then spans the run).
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// One HTTP/1.1 connection: requests written whole, answers read by
/// `Content-Length` (every answer of this server has one).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> BoxResult<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// What `sync status --check` sends: an empty batch with the token,
    /// which must be answered 200.
    fn probe(&mut self, token: &str) -> BoxResult<()> {
        let status = self.post(
            "/api/v1/events/batch/",
            Some(token),
            "",
            br#"{"events": []}"#,
        )?;
        if status != 200 {
            return Err(format!("probe answered {status}").into());
        }
        Ok(())
    }

    fn post(
        &mut self,
        path: &str,
        token: Option<&str>,
        extra: &str,
        body: &[u8],
    ) -> BoxResult<u16> {
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{auth}{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes())?;
        self.stream.write_all(body)?;
        self.answer()
    }

    /// Reads one answer; returns its status (the body is kept in `buf`).
    fn answer(&mut self) -> BoxResult<u16> {
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err("connection closed before an answer".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no status line")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("an answer without Content-Length")?;
        while self.buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err("connection closed mid-answer".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        self.buf.drain(..head_end);
        Ok(status)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn login(addr: SocketAddr) -> BoxResult<String> {
    let mut conn = Conn::open(addr)?;
    let body = serde_json::json!({"username": "bench", "password": PASSWORD}).to_string();
    let status = conn.post("/api/v1/token/", None, "", body.as_bytes())?;
    let value: serde_json::Value = serde_json::from_slice(&conn.buf)?;
    match value["access"].as_str() {
        Some(token) if status == 200 => Ok(token.to_string()),
        _ => Err(format!("log-in answered {status}").into()),
    }
}

/// Probes (an empty batch with the token, as `sync status --check`) on
/// many keep-alive connections at once.
fn probes(server: &Server, token: &str, sizes: &Sizes) -> BoxResult<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(sizes.probe_seconds);
    let started = Instant::now();
    let results: Vec<BoxResult<Vec<f64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..sizes.probe_connections)
            .map(|_| {
                s.spawn(|| -> BoxResult<Vec<f64>> {
                    let mut conn = Conn::open(server.addr)?;
                    let mut times = Vec::new();
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        conn.probe(token)?;
                        times.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(times)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("probe thread panicked".into()))
            })
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for r in results {
        times.extend(r?);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "probes (`sync status --check`'s empty batch with a token), {} keep-alive connections for {:.1} s: {:.0} probes/s; latency median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        sizes.probe_connections,
        elapsed,
        times.len() as f64 / elapsed,
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
    );
    Ok(())
}

/// Many senders posting gzip batches of fresh events at once.
fn ingest(server: &Server, token: &str, sizes: &Sizes) -> BoxResult<()> {
    let total = sizes.senders * sizes.batches_per_sender * sizes.batch_events;
    let events = support::build_events(total)?;
    let batches: Vec<Vec<u8>> = events
        .chunks(sizes.batch_events)
        .map(support::gzip_batch)
        .collect::<BoxResult<_>>()?;
    drop(events);
    let stored = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(sizes.event_seconds);
    let started = Instant::now();
    let results: Vec<BoxResult<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..sizes.senders)
            .map(|sender| {
                let (batches, stored) = (&batches, &stored);
                s.spawn(move || -> BoxResult<()> {
                    let mut conn = Conn::open(server.addr)?;
                    for batch in batches.iter().skip(sender).step_by(sizes.senders) {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let status = conn.post(
                            "/api/v1/events/batch/",
                            Some(token),
                            "Content-Encoding: gzip\r\n",
                            batch,
                        )?;
                        if status != 200 {
                            return Err(format!("batch answered {status}").into());
                        }
                        let text = String::from_utf8_lossy(&conn.buf);
                        let n = text.matches("\"status\":\"success\"").count();
                        stored.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("sender panicked".into())))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    let stored = stored.load(Ordering::Relaxed);
    println!(
        "ingest, {} senders on their own keep-alive connections, {}-event gzip batches: {stored} events stored in {elapsed:.2} s: {:.0} events/s",
        sizes.senders,
        sizes.batch_events,
        stored as f64 / elapsed,
    );
    Ok(())
}

/// Answers of a flood by status (0: no answer before the phase ended).
#[derive(Default)]
struct Tally(std::collections::BTreeMap<u16, u64>);

impl Tally {
    fn add(&mut self, other: Tally) {
        for (status, n) in other.0 {
            *self.0.entry(status).or_default() += n;
        }
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(status, n)| match status {
                0 => format!("{n} cut off at the phase's end"),
                s => format!("{n}x {s}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs `connections` threads, each repeating `request` on its own
/// connection (a new one after any error) until `seconds` have passed;
/// reads are cut one second after that, so the phase ends in time.
fn flood(
    server: &Server,
    connections: usize,
    seconds: f64,
    request: &(dyn Fn(&mut Conn) -> BoxResult<u16> + Sync),
) -> Tally {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let cutoff = deadline + Duration::from_secs(1);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                s.spawn(|| {
                    let mut tally = Tally::default();
                    let mut conn = None;
                    while Instant::now() < deadline {
                        if conn.is_none() {
                            conn = Conn::open(server.addr).ok();
                        }
                        let Some(c) = conn.as_mut() else {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        };
                        let left = cutoff.saturating_duration_since(Instant::now());
                        let _ = c
                            .stream
                            .set_read_timeout(Some(left.max(Duration::from_millis(1))));
                        match request(c) {
                            Ok(status) => *tally.0.entry(status).or_default() += 1,
                            Err(_) => {
                                *tally.0.entry(0).or_default() += 1;
                                conn = None;
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut total = Tally::default();
    for t in tallies {
        total.add(t);
    }
    total
}

/// Many connections sending wrong log-ins at once: the peak memory the
/// password checks cost (at most `--login-max-concurrent` run at once).
fn login_flood(server: &Server, sizes: &Sizes) -> BoxResult<()> {
    let pid = server.pid();
    let before = status_kib(pid, "VmRSS")?;
    let reset = reset_peak(pid);
    let counter = AtomicU64::new(0);
    let started = Instant::now();
    let tally = flood(
        server,
        sizes.login_connections,
        sizes.login_seconds,
        &|conn: &mut Conn| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let body = format!(r#"{{"username": "guess-{n}", "password": "wrong-{n}"}}"#);
            conn.post("/api/v1/token/", None, "", body.as_bytes())
        },
    );
    let elapsed = started.elapsed().as_secs_f64();
    let peak = status_kib(pid, "VmHWM")?;
    println!(
        "log-in flood, {} connections of wrong log-ins for {elapsed:.1} s ({}): server RSS {:.1} MiB before, peak {:.1} MiB{}",
        sizes.login_connections,
        tally.describe(),
        mib(before),
        mib(peak),
        if reset { "" } else { " (peak since start)" },
    );
    Ok(())
}

/// Many connections posting the largest batch bodies without a token:
/// each body is read and thrown away as it arrives, never held.
fn body_flood(server: &Server, sizes: &Sizes) -> BoxResult<()> {
    let pid = server.pid();
    let before = status_kib(pid, "VmRSS")?;
    let reset = reset_peak(pid);
    let sent = AtomicU64::new(0);
    let chunk = vec![b'x'; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs_f64(sizes.body_seconds);
    let started = Instant::now();
    let tally = flood(
        server,
        sizes.body_connections,
        sizes.body_seconds,
        &|conn: &mut Conn| {
            let head = format!(
                "POST /api/v1/events/batch/ HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {FLOOD_BODY}\r\n\r\n"
            );
            conn.stream.write_all(head.as_bytes())?;
            let mut left = FLOOD_BODY;
            while left > 0 {
                if Instant::now() >= deadline {
                    return Err("the phase ended mid-body".into());
                }
                let n = left.min(chunk.len());
                conn.stream.write_all(&chunk[..n])?;
                sent.fetch_add(n as u64, Ordering::Relaxed);
                left -= n;
            }
            conn.answer()
        },
    );
    let elapsed = started.elapsed().as_secs_f64();
    let peak = status_kib(pid, "VmHWM")?;
    let sent = sent.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    println!(
        "unauthenticated-body flood, {} connections posting {} MiB batch bodies without a token for {elapsed:.1} s ({sent:.0} MiB sent; {}): server RSS {:.1} MiB before, peak {:.1} MiB{}",
        sizes.body_connections,
        FLOOD_BODY / (1024 * 1024),
        tally.describe(),
        mib(before),
        mib(peak),
        if reset { "" } else { " (peak since start)" },
    );
    Ok(())
}

/// Waits until every connection is closed by the server (a read returns
/// end of file or an error); the time from `since` until the last closed.
fn all_closed(conns: Vec<TcpStream>, since: Instant, bound: Duration) -> BoxResult<(f64, usize)> {
    let mut still_open = 0;
    for mut stream in conns {
        let left = (since + bound).saturating_duration_since(Instant::now());
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => still_open += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                still_open += 1
            }
            Err(_) => {}
        }
    }
    Ok((since.elapsed().as_secs_f64(), still_open))
}

/// The warning a closing figure carries when connections outlived it.
fn still_open(open: usize) -> String {
    if open > 0 {
        format!("; {open} STILL OPEN")
    } else {
        String::new()
    }
}

/// How long idle connections are kept: silent ones (never a byte: the
/// header-read timeout) and kept-alive ones after an answered probe (the
/// idle timeout).
fn idle(server: &Server, token: &str, sizes: &Sizes) -> BoxResult<()> {
    let bound = Duration::from_secs(IDLE_TIMEOUT + HEADER_READ_TIMEOUT + 10);
    let mut silent = Vec::with_capacity(sizes.idle_connections);
    for _ in 0..sizes.idle_connections {
        silent.push(TcpStream::connect(server.addr)?);
    }
    let opened = Instant::now();
    let (seconds, open) = all_closed(silent, opened, bound)?;
    println!(
        "{} silent connections (--header-read-timeout {HEADER_READ_TIMEOUT} s): all closed {seconds:.2} s after the last opened{}",
        sizes.idle_connections,
        still_open(open),
    );
    let mut kept = Vec::with_capacity(sizes.idle_connections);
    for _ in 0..sizes.idle_connections {
        let mut conn = Conn::open(server.addr)?;
        conn.probe(token)?;
        kept.push(conn.stream);
    }
    let idle_since = Instant::now();
    let (seconds, open) = all_closed(kept, idle_since, bound)?;
    println!(
        "{} kept-alive connections idle after a probe (--idle-timeout {IDLE_TIMEOUT} s): all closed {seconds:.2} s after the last went idle{}",
        sizes.idle_connections,
        still_open(open),
    );
    Ok(())
}

fn run(sizes: &Sizes) -> BoxResult<()> {
    let server = Server::start()?;
    let token = login(server.addr)?;
    println!(
        "server: the release binary, pid {}, on {}; RSS at start {:.1} MiB",
        server.pid(),
        server.addr,
        mib(status_kib(server.pid(), "VmRSS")?),
    );
    probes(&server, &token, sizes)?;
    ingest(&server, &token, sizes)?;
    // The body flood first: memory the log-in flood's password checks
    // leave with the allocator would hide the body flood's own peak.
    body_flood(&server, sizes)?;
    login_flood(&server, sizes)?;
    idle(&server, &token, sizes)?;
    Ok(())
}

fn main() -> ExitCode {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            probe_connections: 200,
            probe_seconds: 5.0,
            senders: 50,
            batches_per_sender: 8,
            batch_events: 250,
            event_seconds: 8.0,
            login_connections: 200,
            login_seconds: 4.0,
            body_connections: 100,
            body_seconds: 4.0,
            idle_connections: 600,
        }
    } else {
        Sizes {
            probe_connections: 4,
            probe_seconds: 0.2,
            senders: 4,
            batches_per_sender: 1,
            batch_events: 10,
            event_seconds: 2.0,
            login_connections: 4,
            login_seconds: 0.3,
            body_connections: 2,
            body_seconds: 0.3,
            idle_connections: 10,
        }
    };
    match run(&sizes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("abuse bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
