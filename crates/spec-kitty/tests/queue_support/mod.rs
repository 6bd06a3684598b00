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

use crate::support;
#[allow(unused_imports)]
pub use support::*;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flate2::read::GzDecoder;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use spec_kitty_server::config::ServerConfig;

use tempfile::TempDir;
use time::OffsetDateTime;

pub const USER: &str = "alice";
pub const TEAM: &str = "acme";
pub const PASSWORD: &str = "password123";

/// A hang guard for every command: far longer than any run may take, so
/// it only turns a hang into a failure (not a timing assertion).
pub const HANG_GUARD: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------
// The real server
// ---------------------------------------------------------------------------

/// A real server with team `acme` and user `alice`.
pub struct Server(TestServer);

impl Server {
    pub fn start() -> Server {
        Server::start_with(|_| {})
    }

    /// A server whose configuration `tweak` may change (limits, ...).
    pub fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Server {
        let server = TestServer::start_with(tweak);
        server.add_team(TEAM);
        server.add_user_with_password(USER, PASSWORD, TEAM);
        Server(server)
    }

    pub fn url(&self) -> &str {
        self.0.url()
    }

    /// How many events the server has stored.
    pub fn event_count(&self) -> i64 {
        self.0.event_count()
    }

    /// Takes alice out of her team: her next batch is answered 403.
    pub fn remove_alice(&self) {
        self.0.remove_member(TEAM, USER);
    }

    /// Stops the server: connections are refused from now on.
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// How many refreshes the server performed (see
    /// [`TestServer::refreshes`]).
    pub fn refreshes(&self) -> i64 {
        self.0.refreshes()
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

/// A temp `HOME` for the `spec-kitty` binary (commands under
/// [`HANG_GUARD`]), and what the queue tests do with it.
pub struct Home {
    pub machine: Machine,
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}

impl std::ops::Deref for Home {
    type Target = Machine;

    fn deref(&self) -> &Machine {
        &self.machine
    }
}

impl Home {
    pub fn new() -> Home {
        Home::in_dir(tempfile::tempdir().expect("temp HOME"))
    }

    /// The queue tests' view of a `HOME` already in use (another test
    /// helper's).
    pub fn in_dir(home: TempDir) -> Home {
        Home {
            machine: Machine {
                home,
                hang_guard: HANG_GUARD,
            },
        }
    }

    /// Logs in to `url` as alice through the binary.
    pub fn login(&self, url: &str) {
        let out = self.try_login(url, USER, PASSWORD);
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

    pub fn queue_path(&self) -> PathBuf {
        self.dir().join("events.db")
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

    /// `spec-kitty sync import -` with `text` on stdin.
    pub fn import_stdin(&self, text: String) -> Output {
        self.cmd()
            .args(["sync", "import", "-"])
            .write_stdin(text)
            .output()
            .expect("runs")
    }

    /// `spec-kitty sync import -` with `events` as JSON lines on stdin.
    pub fn import_stdin_events(&self, events: &[Value]) -> Output {
        self.import_stdin(events.iter().map(|e| format!("{e}\n")).collect())
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

/// Asserts that `rows` starts with the event `event_id` parked for its
/// size (the server's 413).
#[track_caller]
pub fn assert_parked_as_too_large(rows: &[Row], event_id: &str) {
    assert_eq!(rows[0].event_id, event_id);
    assert_eq!(rows[0].state, "parked");
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("413")),
        "{rows:?}"
    );
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

/// A batch endpoint on the shared [`FakeServer`], only for answers a real
/// server cannot be made to give. It decodes the (gzip) body and hands the
/// event ids to `answer`.
pub struct FakeBatch {
    pub url: String,
    batches: Arc<Mutex<Vec<Batch>>>,
    _server: FakeServer,
}

impl FakeBatch {
    pub fn start(answer: impl Fn(&[String]) -> (u16, String) + Send + 'static) -> FakeBatch {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&batches);
        let server = FakeServer::start(move |request| {
            let ids = event_ids(request);
            log.lock().expect("batch log").push(ids.clone());
            let (status, text) = answer(&ids);
            Canned::new(status, text)
        });
        FakeBatch {
            url: server.url.clone(),
            batches,
            _server: server,
        }
    }

    /// The batches received so far, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().expect("batch log").clone()
    }
}

/// The event ids of a batch request, its body gunzipped if need be.
fn event_ids(request: &Recorded) -> Batch {
    let mut body = request.body.clone();
    if request
        .header("content-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
    {
        let mut plain = Vec::new();
        if GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .is_err()
        {
            return Vec::new();
        }
        body = plain;
    }
    serde_json::from_slice::<Value>(&body)
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
        .collect()
}

/// A 200 answer with one `success` result per id.
pub fn all_success(ids: &[String]) -> String {
    let results: Vec<Value> = ids
        .iter()
        .map(|id| json!({"event_id": id, "status": "success"}))
        .collect();
    json!({ "results": results }).to_string()
}
