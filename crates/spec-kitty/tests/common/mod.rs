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

use crate::support;
#[allow(unused_imports)]
pub use support::*;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use toml_edit::DocumentMut;

/// The password every test user gets.
pub const PASSWORD: &str = "correct-horse-battery";

/// A timestamp well in the past: an expired token.
pub const PAST: &str = "2020-01-01T00:00:00+00:00";

/// A hang guard for every spawned command: far longer than any check may
/// take, so it only turns a hang into a failure (it is not a timing assert).
pub const HANG_GUARD: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// The real server
// ---------------------------------------------------------------------------

impl TestServer {
    /// A server with team `acme` and user `alice` in it.
    pub fn with_alice() -> TestServer {
        let server = TestServer::start();
        server.add_team("acme");
        server.add_user("alice", "acme");
        server
    }

    /// A server with team `acme` and user `alice`, speaking https with
    /// `tls`.
    pub fn with_alice_over(tls: spec_kitty_server::config::Tls) -> TestServer {
        let server = TestServer::start_with(|config| config.tls = Some(tls));
        server.add_team("acme");
        server.add_user("alice", "acme");
        server
    }

    /// Adds `username` to `team` with the password every test user gets.
    pub fn add_user(&self, username: &str, team: &str) {
        self.add_user_with_password(username, PASSWORD, team);
    }
}

// ---------------------------------------------------------------------------
// The client: a temp HOME and the binary
// ---------------------------------------------------------------------------

/// A user's machine: a temp `HOME` for the `spec-kitty` binary (commands
/// under [`HANG_GUARD`]), and what the tests of sessions do with it.
pub struct Client {
    pub machine: Machine,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl std::ops::Deref for Client {
    type Target = Machine;

    fn deref(&self) -> &Machine {
        &self.machine
    }
}

impl Client {
    pub fn new() -> Client {
        Client {
            machine: Machine::new(HANG_GUARD),
        }
    }

    /// `spec-kitty sync status --check --json [extra]`: the exit code and
    /// the one JSON object on stdout.
    pub fn check_json(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["sync", "status", "--check", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        (code(&out), one_json_object(&out))
    }

    /// `auth login` as alice with `SSL_CERT_FILE` set to `cert_file` (or
    /// not set).
    pub fn login_trusting(&self, server_url: &str, cert_file: Option<&Path>) -> Output {
        let mut cmd = self.cmd();
        if let Some(file) = cert_file {
            cmd.env("SSL_CERT_FILE", file);
        }
        password_login(&mut cmd, server_url, "alice", PASSWORD, &[])
    }

    /// `sync status --check --json` with `SSL_CERT_FILE` set to
    /// `cert_file`, which must succeed and say connected.
    #[track_caller]
    pub fn assert_connected_trusting(&self, cert_file: &Path) {
        let out = self
            .cmd()
            .env("SSL_CERT_FILE", cert_file)
            .args(["sync", "status", "--check", "--json"])
            .output()
            .expect("runs");
        assert_eq!(code(&out), 0, "{}", describe(&out));
        assert_eq!(one_json_object(&out)["outcome"], "connected");
    }

    /// Logs in and insists it worked.
    pub fn login(&self, server_url: &str, username: &str) {
        let out = self.try_login(server_url, username, PASSWORD);
        assert_eq!(code(&out), 0, "log-in failed: {}", describe(&out));
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
// The server's web pages
// ---------------------------------------------------------------------------

/// An HTTP agent that hands back redirects instead of following them.
pub fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

/// Logs alice in on the page `base/login`, with `more_form` (like
/// `&next=/device`) added to the form; the session cookie pair.
pub fn page_cookie(base: &str, more_form: &str) -> String {
    let response = no_redirects()
        .post(format!("{base}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", base)
        .send(format!("username=alice&password={PASSWORD}{more_form}").as_bytes())
        .expect("log-in answered");
    assert!(response.status().is_redirection());
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sk_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string()
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
