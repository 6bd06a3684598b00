//! `~/.spec-kitty/credentials` (contract section 4).
//!
//! Three states are kept apart everywhere: absent (log in), unreadable
//! (permissions: say which file and how to fix it) and invalid (corrupt:
//! say so and keep the file). None of them is ever read as another.
//! Writers hold the lock on `credentials.lock` (an advisory `flock`, as the
//! Python client's file lock does) and replace the file atomically; keys
//! this client does not know are kept.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spec_kitty_protocol::timestamp;
use time::OffsetDateTime;
use toml_edit::{DocumentMut, Item, value};

use crate::home::paths::{self, Home};

/// A token counts as expired this long before its stated expiry.
pub const EXPIRY_MARGIN: time::Duration = time::Duration::seconds(30);

/// How long a writer waits for another process holding the lock. Longer
/// than any HTTP timeout, so a refresh in another process always finishes
/// (or fails) before we give up waiting for it.
pub const LOCK_WAIT: Duration = Duration::from_secs(20);

/// Why the credentials could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}. Fix its permissions with: chmod 600 {path}", path = paths::display(path))]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({reason}). The file was left as it is; run `spec-kitty auth login --force` to replace it", path = paths::display(path))]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}", path = paths::display(path))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}", path = paths::display(path))]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another spec-kitty process has held {path} for {secs} s; try again, or check for a hung process", path = paths::display(path), secs = LOCK_WAIT.as_secs())]
    LockTimeout { path: PathBuf },
    #[error("cannot lock {path}: {source}", path = paths::display(path))]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The stored session.
#[derive(Clone)]
pub struct Credentials {
    pub access: String,
    pub refresh: String,
    pub access_expires_at: Option<OffsetDateTime>,
    pub refresh_expires_at: Option<OffsetDateTime>,
    pub username: String,
    pub team_slug: Option<String>,
    pub server_url: String,
    /// The whole document, so unknown tables and keys survive a rewrite.
    doc: DocumentMut,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("team_slug", &self.team_slug)
            .field("server_url", &self.server_url)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// What is on disk. Read once per command and moved, never stored in
/// bulk, so the size difference of the variants costs nothing.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Stored {
    Absent,
    Present(Credentials),
}

impl Credentials {
    /// A new session as a log-in returns it.
    pub fn new(
        server_url: &str,
        username: &str,
        team_slug: Option<String>,
        access: String,
        refresh: String,
        access_lifetime: u64,
        refresh_lifetime: u64,
    ) -> Credentials {
        let now = OffsetDateTime::now_utc();
        Credentials {
            access,
            refresh,
            access_expires_at: Some(now + time::Duration::seconds(access_lifetime as i64)),
            refresh_expires_at: Some(now + time::Duration::seconds(refresh_lifetime as i64)),
            username: username.to_string(),
            team_slug,
            server_url: server_url.to_string(),
            doc: DocumentMut::new(),
        }
    }

    /// Keeps the unknown keys of an earlier file when replacing it.
    pub fn keep_extras_from(&mut self, previous: &Credentials) {
        self.doc = previous.doc.clone();
    }

    /// Whether the access token is past its expiry (minus the margin) at `now`.
    /// A missing expiry counts as expired: refreshing is cheap, a wrong
    /// "valid" is not.
    pub fn access_expired(&self, now: OffsetDateTime) -> bool {
        self.access_expires_at
            .is_none_or(|at| now + EXPIRY_MARGIN >= at)
    }

    /// Whether the refresh token is past its expiry. A missing expiry is
    /// left for the server to judge.
    pub fn refresh_expired(&self, now: OffsetDateTime) -> bool {
        self.refresh_expires_at
            .is_some_and(|at| now + EXPIRY_MARGIN >= at)
    }

    /// Stores a refreshed pair; `refresh` is `None` when the server did not
    /// rotate it.
    pub fn apply_refresh(
        &mut self,
        access: String,
        refresh: Option<String>,
        access_lifetime: u64,
        refresh_lifetime: u64,
        team_slug: Option<String>,
    ) {
        let now = OffsetDateTime::now_utc();
        self.access = access;
        self.access_expires_at = Some(now + time::Duration::seconds(access_lifetime as i64));
        if let Some(refresh) = refresh {
            self.refresh = refresh;
            self.refresh_expires_at = Some(now + time::Duration::seconds(refresh_lifetime as i64));
        }
        if team_slug.is_some() {
            self.team_slug = team_slug;
        }
    }

    fn to_toml(&self) -> String {
        let mut doc = self.doc.clone();
        for table in ["tokens", "user", "server"] {
            if !doc.contains_table(table) {
                doc[table] = toml_edit::table();
            }
        }
        doc["tokens"]["access"] = value(self.access.as_str());
        doc["tokens"]["refresh"] = value(self.refresh.as_str());
        match self.access_expires_at {
            Some(at) => doc["tokens"]["access_expires_at"] = value(timestamp::format(at)),
            None => doc["tokens"]["access_expires_at"] = Item::None,
        }
        match self.refresh_expires_at {
            Some(at) => doc["tokens"]["refresh_expires_at"] = value(timestamp::format(at)),
            None => doc["tokens"]["refresh_expires_at"] = Item::None,
        }
        doc["user"]["username"] = value(self.username.as_str());
        match &self.team_slug {
            Some(team) => doc["user"]["team_slug"] = value(team.as_str()),
            None => doc["user"]["team_slug"] = Item::None,
        }
        doc["server"]["url"] = value(self.server_url.as_str());
        doc.to_string()
    }

    fn parse(text: &str, path: &Path) -> Result<Credentials, CredentialsError> {
        let invalid = |reason: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| invalid(format!("not valid TOML: {}", e.message().trim())))?;
        let text_at = |table: &str, key: &str| -> Result<Option<String>, CredentialsError> {
            match doc.get(table).and_then(|t| t.get(key)) {
                None => Ok(None),
                Some(item) => item
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| invalid(format!("{table}.{key} is not a string"))),
            }
        };
        let required = |table: &str, key: &str| -> Result<String, CredentialsError> {
            text_at(table, key)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| invalid(format!("{table}.{key} is missing")))
        };
        let time_at = |key: &str| -> Result<Option<OffsetDateTime>, CredentialsError> {
            text_at("tokens", key)?
                .map(|t| {
                    timestamp::parse(&t)
                        .map_err(|_| invalid(format!("tokens.{key} is not a timestamp: '{t}'")))
                })
                .transpose()
        };
        Ok(Credentials {
            access: required("tokens", "access")?,
            refresh: required("tokens", "refresh")?,
            access_expires_at: time_at("access_expires_at")?,
            refresh_expires_at: time_at("refresh_expires_at")?,
            username: required("user", "username")?,
            team_slug: text_at("user", "team_slug")?.filter(|t| !t.is_empty()),
            server_url: required("server", "url")?.trim_end_matches('/').to_string(),
            doc,
        })
    }
}

/// Reads the credentials file without taking the lock (readers never
/// need it: writers replace the file atomically).
pub fn load(home: &Home) -> Result<Stored, CredentialsError> {
    let path = home.credentials();
    match std::fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| CredentialsError::Invalid {
                path: path.clone(),
                reason: "not UTF-8 text".into(),
            })?;
            Credentials::parse(&text, &path).map(Stored::Present)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::Absent),
        Err(source) => Err(CredentialsError::Unreadable { path, source }),
    }
}

/// Replaces the credentials file atomically with mode 0600. Call with the
/// lock held.
pub fn save(
    home: &Home,
    credentials: &Credentials,
    _lock: &CredentialsLock,
) -> Result<(), CredentialsError> {
    let path = home.credentials();
    let write = |source| CredentialsError::Write {
        path: path.clone(),
        source,
    };
    home.ensure()
        .map_err(|e| write(std::io::Error::other(e.to_string())))?;
    crate::home::atomic::write(&path, credentials.to_toml().as_bytes(), 0o600).map_err(write)
}

/// Removes the credentials file. `Ok(false)` when there was none.
pub fn remove(home: &Home, _lock: &CredentialsLock) -> Result<bool, CredentialsError> {
    let path = home.credentials();
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CredentialsError::Remove { path, source }),
    }
}

/// The exclusive lock on `credentials.lock`, released on drop.
pub struct CredentialsLock {
    _file: File,
}

impl CredentialsLock {
    /// Waits up to `wait` for the lock.
    pub fn acquire(home: &Home, wait: Duration) -> Result<CredentialsLock, CredentialsError> {
        let path = home.credentials_lock();
        let lock_error = |source| CredentialsError::Lock {
            path: path.clone(),
            source,
        };
        home.ensure()
            .map_err(|e| lock_error(std::io::Error::other(e.to_string())))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(lock_error)?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(CredentialsLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return Err(CredentialsError::LockTimeout { path });
                    }
                    std::thread::sleep(Duration::from_millis(15));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().join(".spec-kitty"));
        (dir, home)
    }

    #[test]
    fn absent_is_absent() {
        let (_dir, home) = home();
        assert!(matches!(load(&home), Ok(Stored::Absent)));
    }

    #[test]
    fn python_file_with_naive_times_and_extra_tables_round_trips() {
        let (_dir, home) = home();
        home.ensure().expect("dir");
        let text = "[tokens]\naccess = \"a1\"\nrefresh = \"r1\"\naccess_expires_at = \"2026-02-12T10:15:00.123456\"\nrefresh_expires_at = \"2026-02-19T10:00:00Z\"\n\n[user]\nusername = \"alice\"\n\n[server]\nurl = \"https://sync.example.com/\"\n\n[python_only]\nkeep = \"me\"\n";
        std::fs::write(home.credentials(), text).expect("write");
        let Ok(Stored::Present(mut creds)) = load(&home) else {
            panic!("should load");
        };
        assert_eq!(creds.server_url, "https://sync.example.com");
        assert_eq!(creds.team_slug, None);
        assert_eq!(
            creds.access_expires_at.map(|t| t.microsecond()),
            Some(123_456)
        );
        creds.apply_refresh("a2".into(), Some("r2".into()), 900, 3600, None);
        let lock = CredentialsLock::acquire(&home, LOCK_WAIT).expect("lock");
        save(&home, &creds, &lock).expect("save");
        let written = std::fs::read_to_string(home.credentials()).expect("read");
        assert!(
            written.contains("[python_only]") && written.contains("keep = \"me\""),
            "{written}"
        );
        assert!(written.contains("access = \"a2\""));
        let mode = std::fs::metadata(home.credentials())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_file_is_invalid_and_kept() {
        let (_dir, home) = home();
        home.ensure().expect("dir");
        std::fs::write(home.credentials(), "[tokens\naccess = ").expect("write");
        assert!(matches!(load(&home), Err(CredentialsError::Invalid { .. })));
        assert!(home.credentials().exists());
        std::fs::write(home.credentials(), "[tokens]\naccess = \"a\"\n").expect("write");
        let err = load(&home).expect_err("missing keys");
        assert!(
            err.to_string().contains("tokens.refresh is missing"),
            "{err}"
        );
    }

    #[test]
    fn expiry_margin() {
        let now = OffsetDateTime::now_utc();
        let mut creds = Credentials::new("https://x", "a", None, "a".into(), "r".into(), 900, 3600);
        assert!(!creds.access_expired(now));
        creds.access_expires_at = Some(now + time::Duration::seconds(20));
        assert!(creds.access_expired(now), "inside the 30 s margin");
        creds.access_expires_at = None;
        assert!(creds.access_expired(now));
        assert!(!creds.refresh_expired(now));
    }
}
