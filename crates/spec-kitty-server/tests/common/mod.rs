//! Helpers shared by the server's black-box tests: a real server on
//! 127.0.0.1:0 with a temp data dir, a blocking HTTP client, event builders
//! and small request helpers. Every test binary uses only some of them.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use spec_kitty_server::config::ServerConfig;
use spec_kitty_server::{BackgroundServer, admin};
use tempfile::TempDir;

/// The password every test user gets.
pub const PASSWORD: &str = "correct-horse-battery";

use crate::pg_support;

/// Set to `postgres` (with `SPEC_KITTY_TEST_DATABASE_URL`) to run the suite
/// on PostgreSQL; `scripts/test` does, after the SQLite run.
pub const BACKEND_ENV: &str = "SPEC_KITTY_TEST_BACKEND";

/// A fresh PostgreSQL database when the suite runs on PostgreSQL.
fn postgres_backend() -> Option<pg_support::TempDb> {
    if std::env::var(BACKEND_ENV).ok().as_deref() != Some("postgres") {
        return None;
    }
    Some(
        pg_support::TempDb::create()
            .unwrap_or_else(|| panic!("{BACKEND_ENV}=postgres needs {}", pg_support::ENV)),
    )
}

/// A running server and the directory it keeps its data in. Field order
/// matters: the server stops before its database and directory go.
pub struct TestServer {
    pub server: BackgroundServer,
    _db: Option<pg_support::TempDb>,
    pub dir: TempDir,
    pub agent: ureq::Agent,
}

impl TestServer {
    /// A server with the default configuration.
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// A server whose configuration `tweak` may change (limits, say).
    pub fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp data dir");
        let mut config = ServerConfig::for_data_dir(dir.path());
        let db = postgres_backend();
        if let Some(db) = &db {
            config.storage.database_url = db.url.clone();
            // The key in a file given to the server, as a team would give it
            // to every instance, so tests can still read it to mint tokens.
            let key: String = (0..4)
                .map(|_| uuid::Uuid::new_v4().simple().to_string())
                .collect();
            let path = dir.path().join("signing-key");
            std::fs::write(&path, key).expect("key file");
            config.signing_key_file = Some(path);
        }
        tweak(&mut config);
        let server = BackgroundServer::start(&config).expect("server starts");
        TestServer {
            server,
            _db: db,
            dir,
            agent: agent(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
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

    /// Adds `username` to the existing `team`, logs in, and returns the
    /// access and refresh tokens.
    pub fn user_with_tokens(&self, username: &str, team: &str) -> (String, String) {
        self.add_user(username, team);
        login_ok(&self.agent, &self.server.url, username, PASSWORD)
    }

    pub fn event_count(&self) -> i64 {
        self.server
            .block_on(self.server.store.event_count())
            .expect("event count")
    }

    pub fn login(&self, username: &str, password: &str) -> Reply {
        login(&self.agent, &self.server.url, username, password)
    }

    pub fn post_batch(&self, token: &str, events: &[Value]) -> Reply {
        post_batch(&self.agent, &self.server.url, token, events)
    }

    pub fn post_raw(&self, token: Option<&str>, body: &[u8], gzipped: bool) -> Reply {
        post_raw(&self.agent, &self.server.url, token, body, gzipped)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        get(&self.agent, &self.url(path), token)
    }
}

/// A blocking client that hands back 4xx and 5xx answers instead of errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// An answer: status, the headers tests look at, and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// The `status` of each entry of `results`, in order.
    pub fn statuses(&self) -> Vec<String> {
        self.json()["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results list: {}", self.text))
            .iter()
            .map(|r| r["status"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

pub fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response
        .body_mut()
        .read_to_string()
        .expect("response body reads");
    Reply {
        status,
        retry_after,
        text,
    }
}

pub fn login(agent: &ureq::Agent, base: &str, username: &str, password: &str) -> Reply {
    let body = json!({"username": username, "password": password}).to_string();
    reply(
        agent
            .post(format!("{base}/api/v1/token/"))
            .header("Content-Type", "application/json")
            .send(body.as_bytes()),
    )
}

/// Logs in and returns (access, refresh); the log-in must succeed.
pub fn login_ok(
    agent: &ureq::Agent,
    base: &str,
    username: &str,
    password: &str,
) -> (String, String) {
    let reply = login(agent, base, username, password);
    assert_eq!(reply.status, 200, "log-in of {username}: {}", reply.text);
    let body = reply.json();
    let access = body["access"].as_str().expect("access token").to_string();
    let refresh = body["refresh"].as_str().expect("refresh token").to_string();
    (access, refresh)
}

pub fn refresh(agent: &ureq::Agent, base: &str, refresh: &str) -> Reply {
    let body = json!({"refresh": refresh}).to_string();
    reply(
        agent
            .post(format!("{base}/api/v1/token/refresh/"))
            .header("Content-Type", "application/json")
            .send(body.as_bytes()),
    )
}

pub fn get(agent: &ureq::Agent, url: &str, token: Option<&str>) -> Reply {
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    reply(request.call())
}

/// Posts `body` to the batch endpoint, declaring it gzip if `gzipped`.
pub fn post_raw(
    agent: &ureq::Agent,
    base: &str,
    token: Option<&str>,
    body: &[u8],
    gzipped: bool,
) -> Reply {
    let mut request = agent
        .post(format!("{base}/api/v1/events/batch/"))
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if gzipped {
        request = request.header("Content-Encoding", "gzip");
    }
    reply(request.send(body))
}

/// Posts the events as one gzip-compressed batch, as the client does.
pub fn post_batch(agent: &ureq::Agent, base: &str, token: &str, events: &[Value]) -> Reply {
    post_raw(agent, base, Some(token), &gzip(&batch_body(events)), true)
}

/// `{"events": [...]}` as bytes.
pub fn batch_body(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "events": events })).expect("batch serializes")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip write");
    encoder.finish().expect("gzip finish")
}

pub fn new_project() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A valid `WPStatusChanged` event for `project_uuid` with a fresh ULID.
pub fn event(project_uuid: &str) -> Value {
    event_with_lane(project_uuid, "doing")
}

/// Like [`event`], moving the work package to `to_lane` (valid or not):
/// the protocol's fixture (`039-cli-2x-readiness/WP03`, Lamport clock 3,
/// from `planned`, by `alice`).
pub fn event_with_lane(project_uuid: &str, to_lane: &str) -> Value {
    let at = spec_kitty_protocol::timestamp::parse("2026-02-12T10:15:00.123456+00:00")
        .expect("fixture timestamp");
    spec_kitty_protocol::fixtures::status_event_json(
        project_uuid,
        "my-project",
        3,
        ("planned", to_lane),
        at,
    )
}

/// `n` valid events for one project.
pub fn events(project_uuid: &str, n: usize) -> Vec<Value> {
    (0..n).map(|_| event(project_uuid)).collect()
}

/// The server's signing key (64 bytes, stored as 128 hex characters).
pub fn signing_key(data_dir: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(data_dir.join("signing-key")).expect("signing key reads");
    let text = text.trim();
    assert_eq!(text.len(), 128, "signing key is 128 hex characters");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit pair"))
        .collect()
}

/// Unpadded base64url, for hand-made JWTs.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = chunk.len() + 1;
        for i in 0..sextets {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

// --- The team board (contract section 8): event builders, reads, and a
// --- minimal server-sent-events client. Appended for board_*.rs.

/// A board event of `event_type` with `payload`, from `node_id` at
/// `lamport_clock`, for `project_uuid`, with a fresh ULID.
pub fn board_event(
    project_uuid: &str,
    event_type: &str,
    payload: Value,
    lamport_clock: i64,
    node_id: &str,
) -> Value {
    let aggregate = match (
        payload.get("feature_slug").and_then(Value::as_str),
        payload.get("wp_id").and_then(Value::as_str),
    ) {
        (Some(feature), Some(wp)) => format!("{feature}/{wp}"),
        (None, Some(wp)) => wp.to_string(),
        (Some(feature), None) => feature.to_string(),
        (None, None) => "aggregate".to_string(),
    };
    json!({
        "event_id": ulid::Ulid::new().to_string(),
        "event_type": event_type,
        "aggregate_id": aggregate,
        "payload": payload,
        "timestamp": "2026-03-01T09:00:00+00:00",
        "node_id": node_id,
        "lamport_clock": lamport_clock,
        "correlation_id": ulid::Ulid::new().to_string(),
        "project_uuid": project_uuid,
        "project_slug": "board-project",
    })
}

/// A `WPStatusChanged` moving `feature/wp` to `to_lane`, by `actor`.
pub fn wp_status(
    project_uuid: &str,
    feature: Option<&str>,
    wp_id: &str,
    to_lane: &str,
    lamport_clock: i64,
    node_id: &str,
) -> Value {
    board_event(
        project_uuid,
        "WPStatusChanged",
        json!({
            "feature_slug": feature,
            "wp_id": wp_id,
            "from_lane": "planned",
            "to_lane": to_lane,
            "actor": format!("actor-{node_id}-{lamport_clock}"),
            "force": false,
            "reason": null,
        }),
        lamport_clock,
        node_id,
    )
}

/// A `WPCreated` for `feature/wp` with a title and dependencies.
pub fn wp_created(
    project_uuid: &str,
    feature: Option<&str>,
    wp_id: &str,
    title: &str,
    dependencies: &[&str],
    lamport_clock: i64,
    node_id: &str,
) -> Value {
    board_event(
        project_uuid,
        "WPCreated",
        json!({
            "wp_id": wp_id,
            "title": title,
            "feature_slug": feature,
            "dependencies": dependencies,
        }),
        lamport_clock,
        node_id,
    )
}

/// A `FeatureCreated` for `feature` (a slug starting with three digits).
pub fn feature_created(project_uuid: &str, feature: &str, lamport_clock: i64) -> Value {
    board_event(
        project_uuid,
        "FeatureCreated",
        json!({
            "feature_slug": feature,
            "feature_number": &feature[..3],
            "target_branch": "main",
            "wp_count": 0,
        }),
        lamport_clock,
        "feature-node",
    )
}

impl TestServer {
    /// Posts a batch that must be answered 200 with every event `success`.
    pub fn post_ok(&self, token: &str, events: &[Value]) {
        let reply = self.post_batch(token, events);
        assert_eq!(reply.status, 200, "batch answered: {}", reply.text);
        let statuses = reply.statuses();
        assert!(
            statuses.iter().all(|s| s == "success"),
            "every event stored: {}",
            reply.text
        );
    }

    /// `GET /api/v1/projects/{uuid}/board/`, which must answer 200.
    pub fn board(&self, token: &str, project_uuid: &str) -> Value {
        let reply = self.get(
            &format!("/api/v1/projects/{project_uuid}/board/"),
            Some(token),
        );
        assert_eq!(reply.status, 200, "board of {project_uuid}: {}", reply.text);
        reply.json()
    }

    /// `host:port` of the server, for raw connections.
    pub fn addr(&self) -> String {
        host_port(&self.server.url)
    }
}

/// `host:port` of a `http://host:port` base URL.
pub fn host_port(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// One server-sent message (comment lines are counted, not kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseMessage {
    /// The `data` as JSON (panics with the data if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("message data is not JSON ({e}): {self:?}"))
    }
}

/// A streaming GET over a plain TCP connection, read line by line. Every
/// read has a timeout, so a test that waits for a message that never comes
/// fails instead of hanging.
pub struct SseClient {
    reader: std::io::BufReader<std::net::TcpStream>,
    chunked: bool,
    /// Decoded body bytes not yet returned as lines.
    pending: Vec<u8>,
    /// Comment lines (`:...`) seen so far.
    pub comments: usize,
}

/// The status line's code, the headers (lower-case names) and the client.
pub struct SseOpen {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub client: SseClient,
}

impl SseOpen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The client of a 200 answer with an event-stream content type.
    pub fn expect_stream(self) -> SseClient {
        assert_eq!(self.status, 200, "stream answered {}", self.status);
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
        self.client
    }

    /// The body of a non-streaming answer (an error), as JSON.
    pub fn error_body(mut self) -> Value {
        let length = self
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        while length.is_some_and(|n| self.client.pending.len() < n) || length.is_none() {
            if !self.client.fill() {
                break;
            }
        }
        let mut bytes = std::mem::take(&mut self.client.pending);
        if let Some(n) = length {
            bytes.truncate(n);
        }
        let text = String::from_utf8_lossy(&bytes).to_string();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body not JSON ({e}): {text}"))
    }
}

/// The per-read timeout of [`SseClient`]: a hang guard, not a timing check
/// (the server sends a keep-alive comment every 10 s).
pub const SSE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(40);

/// Sends `GET path` with the given extra headers and reads the answer's
/// head.
pub fn sse_open(addr: &str, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> SseOpen {
    use std::io::BufRead;
    let stream = std::net::TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(SSE_READ_TIMEOUT))
        .expect("read timeout");
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n"
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    (&stream)
        .write_all(request.as_bytes())
        .expect("request written");
    let mut reader = std::io::BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("status line of the stream's answer");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    SseOpen {
        status,
        headers,
        client: SseClient {
            reader,
            chunked,
            pending: Vec::new(),
            comments: 0,
        },
    }
}

/// Opens a stream that must answer 200 `text/event-stream`.
pub fn sse_connect(addr: &str, path: &str, token: &str, headers: &[(&str, &str)]) -> SseClient {
    sse_open(addr, path, Some(token), headers).expect_stream()
}

impl SseClient {
    /// Reads more body bytes into `pending`; `false` at the end of the body.
    fn fill(&mut self) -> bool {
        use std::io::{BufRead, Read};
        if !self.chunked {
            let mut buf = [0u8; 8192];
            let n = self.reader.read(&mut buf).expect("stream body read");
            self.pending.extend_from_slice(&buf[..n]);
            return n > 0;
        }
        let mut size_line = String::new();
        let n = self
            .reader
            .read_line(&mut size_line)
            .expect("chunk size read");
        if n == 0 {
            return false;
        }
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        if size == 0 {
            return false;
        }
        let mut chunk = vec![0u8; size + 2];
        self.reader.read_exact(&mut chunk).expect("chunk body read");
        chunk.truncate(size);
        self.pending.extend_from_slice(&chunk);
        true
    }

    /// The next line of the body without its line ending; `None` at the end.
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some(String::from_utf8(line).expect("stream lines are UTF-8"));
            }
            if !self.fill() {
                if self.pending.is_empty() {
                    return None;
                }
                let rest = std::mem::take(&mut self.pending);
                return Some(String::from_utf8(rest).expect("stream lines are UTF-8"));
            }
        }
    }

    /// The next message (comments are counted and skipped); `None` when
    /// the server ends the stream.
    pub fn message(&mut self) -> Option<SseMessage> {
        let mut message = SseMessage::default();
        let mut has_field = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if has_field {
                    return Some(message);
                }
                continue;
            }
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            has_field = true;
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            match field {
                "id" => message.id = Some(value.to_string()),
                "event" => message.event = Some(value.to_string()),
                "data" => {
                    if !message.data.is_empty() {
                        message.data.push('\n');
                    }
                    message.data.push_str(value);
                }
                _ => {}
            }
        }
    }

    /// The next message, which must come.
    pub fn expect_message(&mut self) -> SseMessage {
        self.message().expect("the stream goes on")
    }

    /// The next `n` messages.
    pub fn messages(&mut self, n: usize) -> Vec<SseMessage> {
        (0..n).map(|_| self.expect_message()).collect()
    }
}

/// Adds team `acme` and user `alice` (password [`PASSWORD`]) to `server`.
pub fn add_acme_alice(server: &BackgroundServer) {
    server
        .block_on(admin::add_team(&server.store, "acme"))
        .expect("team");
    server
        .block_on(admin::add_user(&server.store, "alice", PASSWORD, "acme"))
        .expect("user");
}

/// Two server instances on one fresh PostgreSQL database, with team `acme`
/// and user `alice` added through the first. Field order matters: the
/// instances stop before their directories and the database go.
pub struct PgPair {
    pub a: BackgroundServer,
    pub b: BackgroundServer,
    _dirs: (TempDir, TempDir),
    _db: pg_support::TempDb,
}

/// A [`PgPair`] whose configurations `tweak` may change; `None` (after
/// saying the test is skipped) when no PostgreSQL server is named.
pub fn pg_pair(tweak: impl Fn(&mut ServerConfig)) -> Option<PgPair> {
    let Some(db) = pg_support::TempDb::create() else {
        eprintln!(
            "skipped: set {} to run the PostgreSQL tests",
            pg_support::ENV
        );
        return None;
    };
    let start = |dir: &TempDir| {
        let mut config = ServerConfig::for_data_dir(dir.path());
        config.storage.database_url = db.url.clone();
        tweak(&mut config);
        BackgroundServer::start(&config).expect("instance starts")
    };
    let (da, dbb) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = start(&da);
    let b = start(&dbb);
    add_acme_alice(&a);
    Some(PgPair {
        a,
        b,
        _dirs: (da, dbb),
        _db: db,
    })
}

/// `spec-kitty-server ARGS... --data-dir DIR`, isolated from the caller's
/// environment.
pub fn cli(dir: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("spec-kitty-server").expect("binary built");
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SPEC_KITTY_SERVER_DATA_DIR")
        .env_remove("SPEC_KITTY_SERVER_DATABASE_URL")
        .env_remove("RUST_LOG");
    cmd
}

/// A blocking client that does not follow redirects (and hands back 4xx
/// and 5xx answers instead of errors).
pub fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

/// A blocking client like [`agent`] whose every request gives up after
/// `timeout`.
pub fn agent_with_timeout(timeout: std::time::Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

impl TestServer {
    /// Logs in through the web form and returns the session cookie pair.
    pub fn session_cookie(&self, username: &str) -> String {
        let response = no_redirects()
            .post(self.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", &self.server.url)
            .send(format!("username={username}&password={PASSWORD}").as_bytes())
            .expect("log-in form answered");
        assert!(
            response.status().is_redirection(),
            "log-in redirects: {}",
            response.status()
        );
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("sk_session="))
            .expect("a session cookie is set");
        cookie.split(';').next().unwrap_or_default().to_string()
    }

    /// Posts `body` as JSON to `path`; the status and the answer as JSON
    /// (`null` when it is not JSON).
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut response = self
            .agent
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("answered");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The server binary (`cmd`) started with its log on a pipe: no colour,
/// no `RUST_LOG` of the caller, stdin and stdout closed.
pub fn spawn_logging(cmd: &mut std::process::Command) -> std::process::Child {
    use std::process::Stdio;
    cmd.env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts")
}

/// Reads the server's log up to and with its "listening" line, and
/// answers what it read.
pub fn read_until_listening(reader: &mut impl std::io::BufRead) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("the server's log reads");
        assert!(n > 0, "the server's log ended before it listened:\n{seen}");
        seen.push_str(&line);
        if line.contains("listening") {
            return seen;
        }
    }
}

/// Reads the server's log until the "listening" line and answers the URL
/// in it (`url=http://127.0.0.1:PORT`; the port was chosen by the system).
pub fn read_url(reader: &mut impl std::io::BufRead) -> String {
    let seen = read_until_listening(reader);
    let line = seen.lines().last().unwrap_or_default();
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("url="))
        .unwrap_or_else(|| panic!("no url= in the listening line: {line}"))
        .to_string()
}

/// The ids (`event_id`) of `events`, in order.
pub fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_string())
        .collect()
}

/// A race of `senders` threads against one feed reader: sender `s` calls
/// `send(s, b)` for each batch `b` in `0..batches` (it posts a batch and
/// returns its events), while the reader asks `read(n, query)` for page
/// `n` of the feed (`query` is `?after=CURSOR&limit=LIMIT`, or `?limit=LIMIT`
/// at first) until every sender is done and a page comes back empty. A 404
/// before the first page means the project is not there yet. Returns the
/// ids each sender stored, in order, and the ids the reader saw, in order.
pub fn feed_race(
    senders: usize,
    batches: usize,
    limit: usize,
    send: impl Fn(usize, usize) -> Vec<Value> + Sync,
    read: impl Fn(usize, &str) -> Reply + Send,
) -> (Vec<Vec<String>>, Vec<String>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|s| {
                let (send, done) = (&send, &done);
                scope.spawn(move || {
                    let mut ids = Vec::new();
                    for b in 0..batches {
                        ids.extend(ids_of(&send(s, b)));
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    ids
                })
            })
            .collect();
        let done = &done;
        let reader = scope.spawn(move || {
            let mut cursor: Option<String> = None;
            let mut seen = Vec::new();
            let mut page = 0usize;
            loop {
                // Read the flag before the page: once every sender is done,
                // one more empty page proves the end was reached.
                let finished = done.load(Ordering::SeqCst) == senders;
                let query = match &cursor {
                    Some(c) => format!("?after={c}&limit={limit}"),
                    None => format!("?limit={limit}"),
                };
                let reply = read(page, &query);
                page += 1;
                if reply.status == 404 && cursor.is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue; // the project is not there yet
                }
                assert_eq!(reply.status, 200, "{}", reply.text);
                let body = reply.json();
                let events = body["events"].as_array().expect("events").clone();
                if events.is_empty() {
                    if finished {
                        return seen;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                }
                seen.extend(ids_of(&events));
                cursor = Some(body["next"].as_str().expect("next").to_string());
            }
        });
        let sent: Vec<Vec<String>> = handles
            .into_iter()
            .map(|h| h.join().expect("sender thread"))
            .collect();
        (sent, reader.join().expect("reader thread"))
    })
}

/// Asserts that each sender's ids come in `seen` in the order that sender
/// stored them.
pub fn assert_each_sender_in_order(sent: &[Vec<String>], seen: &[String], message: &str) {
    for ids in sent {
        let positions: Vec<usize> = ids
            .iter()
            .map(|id| seen.iter().position(|s| s == id).expect("seen"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{message}");
    }
}

/// How long a server process may take to stop before a test calls it hung.
/// A guard against a hang, not a performance bound: a clean stop takes
/// well under a second.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(20);

/// A server process of the test's own; killed if the test ends before it
/// has stopped, so a failing run leaves no process behind.
pub struct ChildServer(pub std::process::Child);

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits for the process to end, at most [`HANG_GUARD`].
pub fn wait_for_exit(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < HANG_GUARD {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

/// Sends SIGTERM to our own server process and waits (at most
/// [`HANG_GUARD`]) for it to end; `None` if it is still running.
pub fn stop_with_sigterm(server: &mut ChildServer) -> Option<std::process::ExitStatus> {
    let pid = server.0.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success(), "SIGTERM sent to our own child {pid}");
    wait_for_exit(&mut server.0)
}
