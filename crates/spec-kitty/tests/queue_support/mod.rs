//! Helpers for the black-box tests of the offline queue commands
//! (`spec-kitty sync now|status|diagnose|import|discard`).
//!
//! Every test runs the real `spec-kitty` binary with `HOME` pointed at a
//! temp dir, against the real server started in-process on 127.0.0.1:0
//! with a temp SQLite database. Events the client itself refuses to queue
//! (an unknown lane, a missing field, a body that is not JSON) are put in
//! the queue by hand, straight into `~/.spec-kitty/events.db`, as a broken
//! or older client would have left them. [`FakeBatch`] stands in for the
//! server only where a real one cannot be made to answer that way (a
//! whole-batch 400, a 200 with missing results); each test says so.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use flate2::read::GzDecoder;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::{BackgroundServer, admin};
use tempfile::TempDir;
use time::OffsetDateTime;

/// The client binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spec-kitty");

pub const USER: &str = "alice";
pub const TEAM: &str = "acme";
pub const PASSWORD: &str = "password123";

/// A hang guard for every command: far longer than any run may take, so
/// it only turns a hang into a failure (not a timing assertion).
pub const HANG_GUARD: Duration = Duration::from_secs(300);

/// Environment that would change how the client connects.
const NETWORK_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

// ---------------------------------------------------------------------------
// The real server
// ---------------------------------------------------------------------------

/// A real server with team `acme` and user `alice`. Field order matters:
/// the server stops before its directory is removed.
pub struct Server {
    pub server: BackgroundServer,
    pub dir: TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(|_| {})
    }

    /// A server whose configuration `tweak` may change (limits, ...).
    pub fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Server {
        let dir = tempfile::tempdir().expect("temp data dir");
        let mut config = ServerConfig::for_data_dir(&dir.path().join("data"));
        tweak(&mut config);
        let server = BackgroundServer::start(&config).expect("server starts");
        server
            .block_on(admin::add_team(&server.store, TEAM))
            .expect("team added");
        server
            .block_on(admin::add_user(&server.store, USER, PASSWORD, TEAM))
            .expect("user added");
        Server { server, dir }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// How many events the server has stored.
    pub fn event_count(&self) -> i64 {
        self.server
            .block_on(self.server.store.event_count())
            .expect("event count")
    }

    /// Takes alice out of her team: her next batch is answered 403.
    pub fn remove_alice(&self) {
        self.server
            .block_on(self.server.store.remove_member(TEAM, USER))
            .expect("member removed");
    }

    /// Stops the server: connections are refused from now on.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

// ---------------------------------------------------------------------------
// The user's machine
// ---------------------------------------------------------------------------

/// A row of the client's queue, read straight from `events.db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub event_id: String,
    pub event_type: String,
    pub state: String,
    pub retry_count: i64,
    pub last_error: Option<String>,
}

/// A temp `HOME` for the `spec-kitty` binary.
pub struct Home {
    pub home: TempDir,
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}

impl Home {
    pub fn new() -> Home {
        Home {
            home: tempfile::tempdir().expect("temp HOME"),
        }
    }

    /// `spec-kitty` with this `HOME`, no proxy or CA settings, a hang guard.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("spec-kitty").expect("binary built");
        cmd.env("HOME", self.home.path());
        for var in NETWORK_ENV {
            cmd.env_remove(var);
        }
        cmd.timeout(HANG_GUARD);
        cmd
    }

    /// The same as a plain `std::process::Command`, to spawn and kill.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.env("HOME", self.home.path());
        for var in NETWORK_ENV {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Runs `spec-kitty ARGS` with empty stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spec-kitty runs")
    }

    /// Logs in to `url` as alice through the binary.
    pub fn login(&self, url: &str) {
        let out = self
            .cmd()
            .args([
                "auth",
                "login",
                "--server",
                url,
                "--username",
                USER,
                "--password-stdin",
            ])
            .write_stdin(format!("{PASSWORD}\n"))
            .output()
            .expect("spec-kitty runs");
        assert_eq!(code(&out), 0, "log-in failed: {}", describe(&out));
    }

    /// Writes credentials for a [`FakeBatch`] server by hand (as another
    /// client would have): an access token valid for an hour.
    pub fn fake_login(&self, url: &str) {
        let now = OffsetDateTime::now_utc();
        let text = format!(
            "[tokens]\naccess = \"fake-access\"\nrefresh = \"fake-refresh\"\naccess_expires_at = \"{}\"\nrefresh_expires_at = \"{}\"\n\n[user]\nusername = \"{USER}\"\nteam_slug = \"{TEAM}\"\n\n[server]\nurl = \"{url}\"\n",
            stamp(now + time::Duration::hours(1)),
            stamp(now + time::Duration::days(7)),
        );
        std::fs::create_dir_all(self.dir()).expect("create ~/.spec-kitty");
        std::fs::write(self.dir().join("credentials"), text).expect("write credentials");
    }

    /// `$HOME/.spec-kitty`.
    pub fn dir(&self) -> PathBuf {
        self.home.path().join(".spec-kitty")
    }

    pub fn queue_path(&self) -> PathBuf {
        self.dir().join("events.db")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.dir().join("credentials")
    }

    /// A scratch file path in this `HOME` (outside `.spec-kitty`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Queues events through `spec-kitty sync import FILE` and insists it
    /// worked.
    pub fn import(&self, events: &[Value]) {
        let path = self.file(&format!("import-{}.jsonl", ulid::Ulid::new()));
        write_jsonl(&path, events);
        let out = self.run(&["sync", "import", path.to_str().expect("utf-8 path")]);
        assert_eq!(code(&out), 0, "import failed: {}", describe(&out));
        std::fs::remove_file(&path).expect("remove import file");
    }

    /// Makes sure the queue exists (created by the binary itself, so the
    /// schema is the client's), for tests that then add rows by hand.
    pub fn create_queue(&self) {
        self.import(&[]);
        assert!(self.queue_path().exists(), "sync import created events.db");
    }

    /// A connection to the client's queue, as another process would open it.
    pub fn queue_db(&self) -> Connection {
        let conn = Connection::open(self.queue_path()).expect("open events.db");
        conn.busy_timeout(Duration::from_secs(30))
            .expect("busy timeout");
        conn
    }

    /// Puts a hand-broken event in the queue: `body` is stored as it is.
    pub fn insert_raw(&self, event_id: &str, event_type: &str, body: &str) {
        let ts = micros(OffsetDateTime::now_utc());
        self.queue_db()
            .execute(
                "INSERT INTO events (event_id, event_type, ts_micros, body, queued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![event_id, event_type, ts, body, ts],
            )
            .expect("insert a hand-made row");
    }

    /// Every queued row, in replay order.
    pub fn rows(&self) -> Vec<Row> {
        if !self.queue_path().exists() {
            return Vec::new();
        }
        let conn = self.queue_db();
        let mut stmt = conn
            .prepare(
                "SELECT event_id, event_type, state, retry_count, last_error
                 FROM events ORDER BY ts_micros, id",
            )
            .expect("prepare");
        stmt.query_map([], |r| {
            Ok(Row {
                event_id: r.get(0)?,
                event_type: r.get(1)?,
                state: r.get(2)?,
                retry_count: r.get(3)?,
                last_error: r.get(4)?,
            })
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
    }

    /// How many events are queued.
    pub fn depth(&self) -> i64 {
        if !self.queue_path().exists() {
            return 0;
        }
        self.queue_db()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("count")
    }

    pub fn row(&self, event_id: &str) -> Option<Row> {
        self.rows().into_iter().find(|r| r.event_id == event_id)
    }

    /// Replaces the stored access token with garbage but keeps its expiry
    /// in the future: the client has no reason to refresh before the
    /// server refuses it.
    pub fn spoil_access_token(&self) {
        let text = std::fs::read_to_string(self.credentials_path()).expect("read credentials");
        let mut doc = text
            .parse::<toml_edit::DocumentMut>()
            .expect("credentials are TOML");
        let expiry = doc["tokens"]["access_expires_at"]
            .as_str()
            .expect("access_expires_at")
            .to_string();
        let expiry = spec_kitty_protocol::timestamp::parse(&expiry).expect("a timestamp");
        assert!(
            expiry > OffsetDateTime::now_utc() + time::Duration::minutes(5),
            "the stored access token must still look valid"
        );
        doc["tokens"]["access"] = toml_edit::value("garbage-not-a-jwt");
        std::fs::write(self.credentials_path(), doc.to_string()).expect("write credentials");
    }

    pub fn access_token(&self) -> String {
        let text = std::fs::read_to_string(self.credentials_path()).expect("read credentials");
        let doc = text
            .parse::<toml_edit::DocumentMut>()
            .expect("credentials are TOML");
        doc["tokens"]["access"]
            .as_str()
            .expect("tokens.access")
            .to_string()
    }
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// One project per test run is enough; a fresh one keeps runs apart.
pub fn project() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A contract timestamp.
pub fn stamp(at: OffsetDateTime) -> String {
    spec_kitty_protocol::timestamp::format(at)
}

pub fn micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1000) as i64
}

/// A valid `WPStatusChanged` event (contract section 3) with a fresh ULID,
/// made `age` before now (the shared fixture of the protocol crate).
pub fn status_event(project: &str, seq: u64, to_lane: &str, age: time::Duration) -> Value {
    let at = OffsetDateTime::now_utc() - age + time::Duration::microseconds(seq as i64);
    spec_kitty_protocol::fixtures::status_event_json(
        project,
        "my-project",
        seq,
        ("planned", to_lane),
        at,
    )
}

/// `n` valid events, oldest first, made a minute ago.
pub fn events(project: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| status_event(project, i as u64, "doing", time::Duration::minutes(1)))
        .collect()
}

/// A valid event of another type (checked only against the envelope).
pub fn other_event(project: &str, event_type: &str, seq: u64) -> Value {
    let mut event = status_event(project, seq, "doing", time::Duration::minutes(1));
    event["event_type"] = json!(event_type);
    event["payload"] = json!({"title": "Something"});
    event
}

pub fn id_of(event: &Value) -> String {
    event["event_id"]
        .as_str()
        .expect("event_id is a string")
        .to_string()
}

pub fn write_jsonl(path: &Path, events: &[Value]) {
    let mut text = String::new();
    for event in events {
        text.push_str(&event.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write JSONL");
}

/// A pseudo-random number in `0..n`, from the OS's randomness (via uuid).
pub fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed by a signal")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything about a run, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// Stdout must be exactly one JSON object and nothing else.
pub fn one_json_object(out: &Output) -> Value {
    let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not exactly one JSON document ({e}):\n{}",
            describe(out)
        )
    });
    assert!(value.is_object(), "not a JSON object: {}", describe(out));
    value
}

// ---------------------------------------------------------------------------
// Peak memory of child processes
// ---------------------------------------------------------------------------

/// Resets this process's own peak-RSS mark to its current RSS (Linux
/// `clear_refs` 5). A child started with posix_spawn/vfork records the
/// spawning process's high-water mark at exec, so without this
/// [`children_peak_rss`] would report this test process's peak.
pub fn reset_own_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The largest peak RSS, in bytes, of any child this process has waited
/// for (`getrusage(RUSAGE_CHILDREN).ru_maxrss`, KiB on Linux). An upper
/// bound for each child: it also covers this process's RSS at the moment
/// each child was started (see [`reset_own_peak_rss`]).
pub fn children_peak_rss() -> u64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    u64::try_from(usage.max_rss()).unwrap_or(0) * 1024
}

// ---------------------------------------------------------------------------
// A fake batch endpoint
// ---------------------------------------------------------------------------

/// One batch as [`FakeBatch`] received it: the event ids, in order.
pub type Batch = Vec<String>;

/// A hand-written HTTP/1.1 batch endpoint, only for answers a real server
/// cannot be made to give. It decodes the (gzip) body, hands the event ids
/// to `answer`, and closes each connection after one answer.
pub struct FakeBatch {
    pub url: String,
    batches: Arc<Mutex<Vec<Batch>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeBatch {
    pub fn start(answer: impl Fn(&[String]) -> (u16, String) + Send + 'static) -> FakeBatch {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (flag, log) = (Arc::clone(&stop), Arc::clone(&batches));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve_one(stream, &answer, &log);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeBatch {
            url,
            batches,
            stop,
            thread: Some(thread),
        }
    }

    /// The batches received so far, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().expect("batch log").clone()
    }
}

impl Drop for FakeBatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A 200 answer with one `success` result per id.
pub fn all_success(ids: &[String]) -> String {
    let results: Vec<Value> = ids
        .iter()
        .map(|id| json!({"event_id": id, "status": "success"}))
        .collect();
    json!({ "results": results }).to_string()
}

fn serve_one(
    stream: TcpStream,
    answer: &impl Fn(&[String]) -> (u16, String),
    log: &Mutex<Vec<Batch>>,
) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        for _ in 0..1_000_000 {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    if find("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip")) {
        let mut plain = Vec::new();
        GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .ok()?;
        body = plain;
    }
    let ids: Vec<String> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("events").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            e.get("event_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    log.lock().expect("batch log").push(ids.clone());
    let (status, text) = answer(&ids);
    let mut stream = stream;
    let reply = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        if status == 200 { "OK" } else { "Status" },
        text.len()
    );
    stream.write_all(reply.as_bytes()).ok()?;
    stream.flush().ok()
}
