//! The Python client 2.1.3's offline queue, for the import tests: written
//! by the real client where it can be installed, by a fixture with its
//! exact schema where it cannot.
//!
//! The real client lives in a virtual environment under the target
//! directory (`target/python-client-venv`), made once with `python3 -m
//! venv` and `pip install spec-kitty-cli==2.1.3 'typer<0.26'` and reused by
//! later runs. When that fails (no Python, no network), or with
//! `SPEC_KITTY_TEST_PYTHON_CLIENT=0`, the tests say so on stderr and use
//! the fixture.
//!
//! [`home`] uses `crate::queue_support`: a test file that includes this
//! module includes that one too.
#![allow(dead_code)]

pub mod home;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rusqlite::{Connection, params};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The Python client's `queue` schema and the body-upload table it adds
/// to the same file, copied from `specify_cli/sync/queue.py` (2.1.3:
/// `OfflineQueue._init_db` and `_BODY_QUEUE_SCHEMA`).
pub const PYTHON_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT UNIQUE NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    retry_count INTEGER DEFAULT 0,
    coalesce_key TEXT
);
CREATE INDEX IF NOT EXISTS idx_timestamp ON queue(timestamp);
CREATE INDEX IF NOT EXISTS idx_retry ON queue(retry_count);
CREATE INDEX IF NOT EXISTS idx_coalesce_key ON queue(coalesce_key);
CREATE TABLE IF NOT EXISTS body_upload_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_uuid TEXT NOT NULL,
    feature_slug TEXT NOT NULL,
    target_branch TEXT NOT NULL,
    mission_key TEXT NOT NULL,
    manifest_version TEXT NOT NULL,
    artifact_path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    hash_algorithm TEXT NOT NULL DEFAULT 'sha256',
    content_body TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    retry_count INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0.0,
    created_at REAL NOT NULL,
    last_error TEXT,
    UNIQUE(project_uuid, feature_slug, target_branch, mission_key, manifest_version, artifact_path, content_hash)
);
CREATE INDEX IF NOT EXISTS idx_body_queue_next_attempt ON body_upload_queue(next_attempt_at);
CREATE INDEX IF NOT EXISTS idx_body_queue_namespace ON body_upload_queue(project_uuid, feature_slug, target_branch);
";

/// The queue of files from before the `coalesce_key` migration (what a
/// Python client older than 2.1 left behind): the `queue` table of
/// [`PYTHON_SCHEMA`] without `coalesce_key` and its index, and no
/// body-upload table.
pub fn python_schema_before_coalesce() -> String {
    let (queue, _) = PYTHON_SCHEMA
        .split_once("CREATE TABLE IF NOT EXISTS body_upload_queue")
        .expect("the body-upload table follows the queue");
    let older = queue.replace(",\n    coalesce_key TEXT\n", "\n").replace(
        "CREATE INDEX IF NOT EXISTS idx_coalesce_key ON queue(coalesce_key);\n",
        "",
    );
    assert!(!older.contains("coalesce"), "{older}");
    older
}

/// `scope_db_path(build_queue_scope(url, user, team)).name`, written out
/// here on its own (from `queue.py`), not taken from the client under test.
pub fn scoped_file_name(url: &str, user: &str, team: Option<&str>) -> String {
    let part = |s: &str| s.trim().to_lowercase();
    let team = team.filter(|t| !t.is_empty()).unwrap_or("no-team");
    let scope = format!(
        "{}|{}|{}",
        part(url).trim_end_matches('/'),
        part(user),
        part(team)
    );
    let digest = Sha256::digest(scope.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("queue-{}.db", &hex[..16])
}

/// Opens (creating it, as `OfflineQueue` does) a Python queue file with the
/// fixture schema.
pub fn fixture_db(path: &Path, schema: &str) -> Connection {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create the directory");
    let conn = Connection::open(path).expect("open a Python queue file");
    conn.execute_batch(schema).expect("the Python schema");
    conn
}

/// A row as `OfflineQueue.queue_event` writes it: the event JSON in `data`,
/// the time it was queued in epoch seconds.
pub fn fixture_insert(conn: &Connection, event_id: &str, event_type: &str, data: &str) {
    conn.execute(
        "INSERT OR REPLACE INTO queue (event_id, event_type, data, timestamp, coalesce_key)
         VALUES (?1, ?2, ?3, ?4, NULL)",
        params![
            event_id,
            event_type,
            data,
            time::OffsetDateTime::now_utc().unix_timestamp()
        ],
    )
    .or_else(|_| {
        // A file from before the coalesce_key migration.
        conn.execute(
            "INSERT OR REPLACE INTO queue (event_id, event_type, data, timestamp)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                event_id,
                event_type,
                data,
                time::OffsetDateTime::now_utc().unix_timestamp()
            ],
        )
    })
    .expect("a Python queue row");
}

/// The event ids in a Python queue file, in its own replay order.
/// Opened read-write, as the Python client opens it: a write killed midway
/// leaves a hot journal that only a writer rolls back.
pub fn ids_in(path: &Path) -> Vec<String> {
    strings(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        "SELECT event_id FROM queue ORDER BY timestamp, id",
    )
}

/// The schema of a file as SQLite keeps it, to show it was not changed.
pub fn schema_of(path: &Path) -> Vec<String> {
    strings(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY name",
    )
}

/// The one text column `sql` selects from the Python queue file at `path`.
fn strings(path: &Path, flags: rusqlite::OpenFlags, sql: &str) -> Vec<String> {
    let conn = Connection::open_with_flags(path, flags).expect("open a Python queue file");
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows")
}

// ---------------------------------------------------------------------------
// The real client
// ---------------------------------------------------------------------------

/// What the driver script does with the real client.
const DRIVER: &str = r#"
import json, sys
from pathlib import Path
from specify_cli.sync.queue import OfflineQueue

command = sys.argv[1]
if command == "emit":
    # Through the client's own emitter, into the queue it picks itself:
    # queue.db logged out, queues/queue-<h>.db logged in.
    from specify_cli.sync.emitter import EventEmitter
    queue = OfflineQueue()
    emitter = EventEmitter(queue=queue)
    ids = []
    for i in range(int(sys.argv[2])):
        event = emitter.emit_wp_status_changed(
            wp_id="WP%02d" % (i % 99 + 1), from_lane="planned", to_lane="in_progress",
            actor="alice", feature_slug="001-python-client")
        if event is None:
            sys.exit("the Python client refused to emit an event")
        ids.append(event["event_id"])
    print(json.dumps({"db": str(queue.db_path), "ids": ids}))
elif command == "ids":
    # Read back as the client itself drains: it can still use the file.
    queue = OfflineQueue(db_path=Path(sys.argv[2]))
    print(json.dumps({"size": queue.size(), "ids": [e["event_id"] for e in queue.drain_queue(100000)]}))
else:
    sys.exit("unknown command " + command)
"#;

/// The installed Python client.
pub struct PythonClient {
    python: PathBuf,
    driver: PathBuf,
}

/// What the real client wrote.
#[derive(Debug)]
pub struct Emitted {
    pub db: PathBuf,
    pub ids: Vec<String>,
}

static CLIENT: OnceLock<Option<PythonClient>> = OnceLock::new();

/// The real Python client 2.1.3, installed on first use; `None` (said on
/// stderr) when it cannot be.
pub fn real() -> Option<&'static PythonClient> {
    CLIENT
        .get_or_init(|| match install() {
            Ok(client) => {
                eprintln!(
                    "using the real Python client 2.1.3 ({})",
                    client.python.display()
                );
                Some(client)
            }
            Err(why) => {
                eprintln!(
                    "the real Python client 2.1.3 is not available ({why}); these tests use the fixture with its schema instead"
                );
                None
            }
        })
        .as_ref()
}

/// `target/`, from the test binary's own path (`target/debug/deps/...`).
fn target_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|e| format!("no test binary path: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| "no target directory above the test binary".to_string())
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn installed(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m, specify_cli.sync.emitter, specify_cli.sync.queue; \
             assert m.version('spec-kitty-cli') == '2.1.3'",
        ])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn install() -> Result<PythonClient, String> {
    if std::env::var("SPEC_KITTY_TEST_PYTHON_CLIENT").as_deref() == Ok("0") {
        return Err("SPEC_KITTY_TEST_PYTHON_CLIENT=0".into());
    }
    let venv = target_dir()?.join("python-client-venv");
    let python = venv.join("bin").join("python");
    if !installed(&python) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            "30",
            "spec-kitty-cli==2.1.3",
            "typer<0.26",
        ]))?;
        if !installed(&python) {
            return Err("spec-kitty-cli 2.1.3 does not import after pip install".into());
        }
    }
    let driver = venv.join("spec_kitty_queue_driver.py");
    std::fs::write(&driver, DRIVER).map_err(|e| format!("cannot write the driver: {e}"))?;
    Ok(PythonClient { python, driver })
}

impl PythonClient {
    fn drive(&self, home: &Path, cwd: &Path, args: &[&str]) -> Value {
        let out = Command::new(&self.python)
            .arg(&self.driver)
            .args(args)
            .env("HOME", home)
            .current_dir(cwd)
            .output()
            .expect("the Python client runs");
        assert!(
            out.status.success(),
            "the Python client failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "the driver printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `spec-kitty auth login` of the Python client as `username`, with
    /// `server_url` in its config and `SSL_CERT_FILE` set to `cert_file`.
    pub fn login(
        &self,
        home: &Path,
        server_url: &str,
        username: &str,
        password: &str,
        cert_file: &Path,
    ) -> std::process::Output {
        let dir = home.join(".spec-kitty");
        std::fs::create_dir_all(&dir).expect("client dir");
        std::fs::write(
            dir.join("config.toml"),
            format!("[sync]\nserver_url = \"{server_url}\"\n"),
        )
        .expect("config written");
        let cli = self.python.with_file_name("spec-kitty");
        Command::new(cli)
            .args(["auth", "login", "--force", "-u", username, "-p", password])
            .env("HOME", home)
            .env("SPEC_KITTY_ENABLE_SAAS_SYNC", "1")
            .env("SSL_CERT_FILE", cert_file)
            .current_dir(home)
            .output()
            .expect("the Python client runs")
    }

    /// Has the client emit `n` events in `project` (a directory with
    /// `.kittify/`), as the user `HOME=home` (logged in or not, as the
    /// credentials there say).
    pub fn emit(&self, home: &Path, project: &Path, n: usize) -> Emitted {
        let json = self.drive(home, project, &["emit", &n.to_string()]);
        Emitted {
            db: PathBuf::from(json["db"].as_str().expect("db path")),
            ids: json["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|id| id.as_str().expect("an id").to_string())
                .collect(),
        }
    }

    /// The event ids the client itself reads from `db`.
    pub fn ids(&self, home: &Path, db: &Path) -> Vec<String> {
        let path = db.to_str().expect("a UTF-8 path");
        let json = self.drive(home, home, &["ids", path]);
        json["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|id| id.as_str().expect("an id").to_string())
            .collect()
    }
}
