//! Helpers shared by the client's black-box tests.
//!
//! Every test runs the real `spec-kitty` binary with `HOME` pointed at a
//! temp dir, against the real server started in-process on 127.0.0.1:0
//! with a temp SQLite database. Failures are produced for real (stopped
//! server, silent listener, removed member, rotated refresh token, ...).
//! [`FakeServer`] exists only for answers a real server cannot be made to
//! give (a 500, an old server's 400, a 401 after a successful refresh) and
//! for recording exactly what the client sent; each use says why.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::{BackgroundServer, admin};
use tempfile::TempDir;
use toml_edit::DocumentMut;

/// The client binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spec-kitty");

/// The password every test user gets.
pub const PASSWORD: &str = "correct-horse-battery";

/// A timestamp well in the past: an expired token.
pub const PAST: &str = "2020-01-01T00:00:00+00:00";

/// Environment that would change how the client connects; removed unless a
/// test sets it on purpose.
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

/// A hang guard for every spawned command: far longer than any check may
/// take, so it only turns a hang into a failure (it is not a timing assert).
pub const HANG_GUARD: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// The real server
// ---------------------------------------------------------------------------

/// A real server and its data directory. Field order matters: the server
/// stops before the directory is removed.
pub struct TestServer {
    pub server: BackgroundServer,
    pub dir: TempDir,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// A server whose configuration `tweak` may change (limits, TLS, ...).
    pub fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp data dir");
        let mut config = ServerConfig::for_data_dir(&dir.path().join("data"));
        tweak(&mut config);
        let server = BackgroundServer::start(&config).expect("server starts");
        TestServer { server, dir }
    }

    /// A server with team `acme` and user `alice` in it.
    pub fn with_alice() -> TestServer {
        let server = TestServer::start();
        server.add_team("acme");
        server.add_user("alice", "acme");
        server
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    pub fn add_team(&self, slug: &str) {
        self.server
            .block_on(admin::add_team(&self.server.store, slug))
            .expect("team added");
    }

    pub fn add_user(&self, username: &str, team: &str) {
        self.server
            .block_on(admin::add_user(
                &self.server.store,
                username,
                PASSWORD,
                team,
            ))
            .expect("user added");
    }

    pub fn remove_member(&self, team: &str, username: &str) {
        self.server
            .block_on(self.server.store.remove_member(team, username))
            .expect("member removed");
    }

    pub fn disable_user(&self, username: &str) {
        self.server
            .block_on(self.server.store.disable_user(username))
            .expect("user disabled");
    }

    /// Stops the server: connections are refused from now on.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// How many refreshes the server has performed: it rotates refresh
    /// tokens and marks each one it retires with `used_at`, so this counts
    /// successful refreshes as the server itself recorded them. Read-only.
    pub fn refreshes(&self) -> i64 {
        let db = self.dir.path().join("data").join("spec-kitty.db");
        let conn = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open the server database read-only");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.query_row(
            "SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count refreshes")
    }
}

// ---------------------------------------------------------------------------
// The client: a temp HOME and the binary
// ---------------------------------------------------------------------------

/// A user's machine: a temp `HOME` for the `spec-kitty` binary.
pub struct Client {
    pub home: TempDir,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client {
            home: tempfile::tempdir().expect("temp HOME"),
        }
    }

    /// `spec-kitty` with this `HOME` and no proxy or CA settings.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("spec-kitty").expect("binary built");
        cmd.env("HOME", self.home.path());
        for var in NETWORK_ENV {
            cmd.env_remove(var);
        }
        cmd.timeout(HANG_GUARD);
        cmd
    }

    /// The same, as a plain `std::process::Command` (to spawn several).
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

    /// `spec-kitty sync status --check --json [extra]`: the exit code and
    /// the one JSON object on stdout.
    pub fn check_json(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["sync", "status", "--check", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        (code(&out), one_json_object(&out))
    }

    /// `auth login` through the binary, password on stdin.
    pub fn try_login(&self, server_url: &str, username: &str, password: &str) -> Output {
        self.cmd()
            .args([
                "auth",
                "login",
                "--server",
                server_url,
                "--username",
                username,
                "--password-stdin",
            ])
            .write_stdin(format!("{password}\n"))
            .output()
            .expect("spec-kitty runs")
    }

    /// Logs in and insists it worked.
    pub fn login(&self, server_url: &str, username: &str) {
        let out = self.try_login(server_url, username, PASSWORD);
        assert_eq!(code(&out), 0, "log-in failed: {}", describe(&out));
    }

    /// `$HOME/.spec-kitty`.
    pub fn dir(&self) -> PathBuf {
        self.home.path().join(".spec-kitty")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.dir().join("credentials")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.toml")
    }

    pub fn credentials_bytes(&self) -> Vec<u8> {
        std::fs::read(self.credentials_path()).expect("read credentials")
    }

    pub fn credentials_text(&self) -> String {
        std::fs::read_to_string(self.credentials_path()).expect("read credentials")
    }

    pub fn credentials(&self) -> DocumentMut {
        self.credentials_text()
            .parse::<DocumentMut>()
            .expect("credentials are TOML")
    }

    /// A string value of the credentials file, like `("tokens", "access")`.
    pub fn stored(&self, table: &str, key: &str) -> String {
        self.credentials()[table][key]
            .as_str()
            .unwrap_or_else(|| panic!("{table}.{key} is a string"))
            .to_string()
    }

    /// Writes the credentials file by hand (directory 0700, file 0600), as
    /// another client would.
    pub fn write_credentials(&self, text: &str) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir())
            .expect("create ~/.spec-kitty");
        let path = self.credentials_path();
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("create credentials");
        file.write_all(text.as_bytes()).expect("write credentials");
    }

    /// Edits the credentials file in place, keeping everything else.
    pub fn edit_credentials(&self, edit: impl FnOnce(&mut DocumentMut)) {
        let mut doc = self.credentials();
        edit(&mut doc);
        self.write_credentials(&doc.to_string());
    }

    /// Makes the stored access token expired: the client decides expiry
    /// from the file, so the refresh token stays good on the server.
    pub fn expire_access(&self) {
        self.edit_credentials(|doc| doc["tokens"]["access_expires_at"] = toml_edit::value(PAST));
    }

    /// The mode bits of a file or directory.
    pub fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }
}

/// A credentials file in the contract's format (section 4).
pub fn credentials_toml(
    server_url: &str,
    access: &str,
    refresh: &str,
    access_expires_at: &str,
    refresh_expires_at: &str,
) -> String {
    format!(
        "[tokens]\naccess = \"{access}\"\nrefresh = \"{refresh}\"\naccess_expires_at = \"{access_expires_at}\"\nrefresh_expires_at = \"{refresh_expires_at}\"\n\n[user]\nusername = \"alice\"\nteam_slug = \"acme\"\n\n[server]\nurl = \"{server_url}\"\n"
    )
}

/// `now + secs`, formatted as the contract writes timestamps.
pub fn from_now(secs: i64) -> String {
    spec_kitty_protocol::timestamp::format(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(secs),
    )
}

/// Parses a contract timestamp.
pub fn parse_time(text: &str) -> time::OffsetDateTime {
    spec_kitty_protocol::timestamp::parse(text).expect("a contract timestamp")
}

// ---------------------------------------------------------------------------
// Output helpers
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

/// Stdout must be exactly one JSON object and nothing else (whitespace
/// aside): `from_slice` fails on any trailing text.
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
// Unreadable files and root
// ---------------------------------------------------------------------------

/// Whether file modes bind this process: root (CI runs tests as root)
/// reads a mode-000 file anyway. Probed, not guessed from the uid.
pub fn modes_bind() -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "x").expect("write probe");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    std::fs::read(&probe).is_err()
}

/// Makes the client's credentials unreadable, in a way that binds even for
/// root: mode 000 when modes bind; otherwise `credentials` becomes a
/// directory, whose read fails with an error that is not "not found".
/// Returns how it was done, for messages.
pub fn make_credentials_unreadable(client: &Client) -> &'static str {
    let path = client.credentials_path();
    if modes_bind() {
        if !path.exists() {
            client.write_credentials("[tokens]\n");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
        "mode 000"
    } else {
        let _ = std::fs::remove_file(&path);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .expect("credentials as a directory");
        "a directory (running as root, which ignores file modes)"
    }
}

// ---------------------------------------------------------------------------
// Network stand-ins
// ---------------------------------------------------------------------------

/// A listener that accepts connections and never answers: a hung server.
pub struct SilentServer {
    pub url: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentServer {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request as a [`FakeServer`] received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// A canned answer.
pub struct Canned {
    pub status: u16,
    pub body: String,
}

impl Canned {
    pub fn new(status: u16, body: impl Into<String>) -> Canned {
        Canned {
            status,
            body: body.into(),
        }
    }
}

/// A hand-written HTTP/1.1 responder. Only for what a real server cannot
/// be made to do, or to record exactly what the client sent; every test
/// that uses it says which.
pub struct FakeServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(answer: impl Fn(&Recorded) -> Canned + Send + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (flag, log) = (Arc::clone(&stop), Arc::clone(&requests));
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
        FakeServer {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("request log").clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// Reads one request (Content-Length or chunked body), records it, answers
/// it, and closes the connection. Recorded before answering, so a client
/// that has its answer can rely on the log holding its request.
fn serve_one(
    stream: TcpStream,
    answer: &impl Fn(&Recorded) -> Canned,
    log: &Mutex<Vec<Recorded>>,
) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
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
    let request = Recorded {
        method,
        path,
        headers,
        body,
    };
    let canned = answer(&request);
    log.lock().ok()?.push(request);
    let mut stream = stream;
    let response = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        canned.status,
        reason(canned.status),
        canned.body.len(),
        canned.body
    );
    stream.write_all(response.as_bytes()).ok()?;
    stream.flush().ok()
}
