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

#[path = "../pg_support/mod.rs"]
mod pg_support;

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

fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
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

/// Like [`event`], moving the work package to `to_lane` (valid or not).
pub fn event_with_lane(project_uuid: &str, to_lane: &str) -> Value {
    json!({
        "event_id": ulid::Ulid::new().to_string(),
        "event_type": "WPStatusChanged",
        "aggregate_id": "039-cli-2x-readiness/WP03",
        "aggregate_type": "WorkPackage",
        "payload": {
            "feature_slug": "039-cli-2x-readiness",
            "wp_id": "WP03",
            "from_lane": "planned",
            "to_lane": to_lane,
            "actor": "alice",
            "force": false,
            "reason": null,
            "execution_mode": "worktree",
            "review_ref": null,
            "evidence": null
        },
        "timestamp": "2026-02-12T10:15:00.123456+00:00",
        "node_id": "3f2a9c1b7d4e",
        "lamport_clock": 7,
        "causation_id": null,
        "correlation_id": ulid::Ulid::new().to_string(),
        "project_uuid": project_uuid,
        "project_slug": "my-project",
        "schema_version": "1.0.0",
        "data_tier": 0,
        "git_branch": "main",
        "head_commit_sha": null,
        "repo_slug": null
    })
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
