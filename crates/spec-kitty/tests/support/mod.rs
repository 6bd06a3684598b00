//! The one support module of the client's black-box tests: the binary,
//! the scrubbed command, output helpers and a hand-written HTTP responder.
//! `common`, `queue_support` and `tasks_support` add what their tests need
//! (a real server, a temp project, the queue file) on top of this.
//!
//! A test file includes it through one of those modules, which re-export
//! it; a new kind of test can include it alone with
//! `#[path = "support/mod.rs"] mod support;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
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

/// The client binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spec-kitty");

/// Environment that would change how the client connects; removed from
/// every child unless a test sets it on purpose.
pub const NETWORK_ENV: &[&str] = &[
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

/// `spec-kitty` with `HOME` at `home`, no proxy or CA settings, and a hang
/// guard (which only turns a hang into a failure: not a timing assert).
pub fn cmd(home: &Path, hang_guard: Duration) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("spec-kitty").expect("binary built");
    cmd.env("HOME", home);
    for var in NETWORK_ENV {
        cmd.env_remove(var);
    }
    cmd.timeout(hang_guard);
    cmd
}

/// The same as a plain `std::process::Command`, to spawn several or kill one.
pub fn std_cmd(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.env("HOME", home);
    for var in NETWORK_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// The arguments of a password log-in through the binary, the password
/// to be written to stdin.
pub fn login_args<'a>(server_url: &'a str, username: &'a str) -> [&'a str; 7] {
    [
        "auth",
        "login",
        "--server",
        server_url,
        "--username",
        username,
        "--password-stdin",
    ]
}

/// Runs [`login_args`] and then `extra` on `cmd`, with `password` on stdin.
pub fn password_login(
    cmd: &mut assert_cmd::Command,
    server_url: &str,
    username: &str,
    password: &str,
    extra: &[&str],
) -> Output {
    cmd.args(login_args(server_url, username))
        .args(extra)
        .write_stdin(format!("{password}\n"))
        .output()
        .expect("spec-kitty runs")
}

// ---------------------------------------------------------------------------
// The user's machine
// ---------------------------------------------------------------------------

/// A user's machine: a temp `HOME` for the `spec-kitty` binary and the hang
/// guard its commands run under. `common::Client` and `queue_support::Home`
/// are this and what their tests add (they deref to it).
pub struct Machine {
    pub home: TempDir,
    pub hang_guard: Duration,
}

impl Machine {
    pub fn new(hang_guard: Duration) -> Machine {
        Machine {
            home: tempfile::tempdir().expect("temp HOME"),
            hang_guard,
        }
    }

    /// `spec-kitty` with this `HOME`, no proxy or CA settings, a hang guard.
    pub fn cmd(&self) -> assert_cmd::Command {
        cmd(self.home.path(), self.hang_guard)
    }

    /// The same as a plain `std::process::Command`, to spawn several or
    /// kill one.
    pub fn std_cmd(&self) -> std::process::Command {
        std_cmd(self.home.path())
    }

    /// Runs `spec-kitty ARGS` with empty stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spec-kitty runs")
    }

    /// `auth login` through the binary, password on stdin.
    pub fn try_login(&self, server_url: &str, username: &str, password: &str) -> Output {
        password_login(&mut self.cmd(), server_url, username, password, &[])
    }

    /// `$HOME/.spec-kitty`.
    pub fn dir(&self) -> PathBuf {
        self.home.path().join(".spec-kitty")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.dir().join("credentials")
    }
}

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

    pub fn url(&self) -> &str {
        &self.server.url
    }

    pub fn add_team(&self, slug: &str) {
        self.server
            .block_on(admin::add_team(&self.server.store, slug))
            .expect("team added");
    }

    pub fn add_user_with_password(&self, username: &str, password: &str, team: &str) {
        self.server
            .block_on(admin::add_user(
                &self.server.store,
                username,
                password,
                team,
            ))
            .expect("user added");
    }

    /// How many events the server has stored.
    pub fn event_count(&self) -> i64 {
        self.server
            .block_on(self.server.store.event_count())
            .expect("event count")
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
// A hand-written HTTP responder
// ---------------------------------------------------------------------------

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
