//! `~/.spec-kitty/config.toml`: the sync server URL and queue settings.
//!
//! Edited with `toml_edit`, so the user's comments, key order and other keys
//! survive every write.

use std::path::PathBuf;

use toml_edit::{DocumentMut, Item, value};

use crate::home::paths::{self, Home};

/// The queue size past which `sync` warns, when config.toml says nothing.
pub const DEFAULT_MAX_QUEUE_SIZE: u64 = 100_000;

/// An example shown whenever a URL is refused or missing.
pub const EXAMPLE_URL: &str = "https://sync.example.com";

/// Why the configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}; check its permissions (chmod 600 {path})", path = paths::display(path))]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {reason}; fix or remove the file", path = paths::display(path))]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}", path = paths::display(path))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(
        "unknown config key '{key}'.{} Known keys: {}",
        crate::tasks::suggest::did_you_mean(suggest_key(key)),
        KEYS.join(", ")
    )]
    UnknownKey { key: String },
    #[error("'{value}' is not a valid value for {key}: {reason}")]
    BadValue {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// The keys `spec-kitty config` knows, as `table.key`.
pub const KEYS: &[&str] = &[SERVER_URL_KEY, MAX_QUEUE_SIZE_KEY];
const SERVER_URL_KEY: &str = "sync.server_url";
const MAX_QUEUE_SIZE_KEY: &str = "sync.max_queue_size";

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    File,
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// One setting as `config list` and `config get` show it: `None` when it
/// is unset and has no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub value: Option<String>,
    pub source: Source,
}

/// The known key an unknown one was probably meant as: a near spelling,
/// or the same key without its table (`server_url`).
fn suggest_key(key: &str) -> Option<&'static str> {
    let key = key.trim();
    KEYS.iter()
        .copied()
        .find(|k| {
            k.eq_ignore_ascii_case(key)
                || k.split_once('.')
                    .is_some_and(|(_, name)| name.eq_ignore_ascii_case(key))
        })
        .or_else(|| crate::tasks::suggest::closest(key, KEYS.iter().copied()))
        .or_else(|| {
            // A key cut short: `sync.max_queue` for `sync.max_queue_size`.
            let mut started = KEYS
                .iter()
                .copied()
                .filter(|k| key.len() >= 6 && k.starts_with(key));
            match (started.next(), started.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        })
}

/// The known key `key` names, or [`ConfigError::UnknownKey`].
fn known_key(key: &str) -> Result<&'static str, ConfigError> {
    KEYS.iter()
        .copied()
        .find(|k| *k == key)
        .ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_string(),
        })
}

/// A server URL that spec-kitty will not send tokens to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{url}' is not a usable sync server URL: {reason}. Example: {EXAMPLE_URL} (http is allowed only for this machine, like http://127.0.0.1:8000)"
)]
pub struct UrlError {
    pub url: String,
    pub reason: String,
}

/// Checks a server URL and returns its canonical form (no trailing slash).
/// Tokens travel to this URL, so plain http is refused unless the host is
/// this machine.
pub fn normalize_server_url(input: &str) -> Result<String, UrlError> {
    let fail = |reason: &str| UrlError {
        url: without_password(input),
        reason: reason.to_string(),
    };
    let trimmed = input.trim();
    let uri: ureq::http::Uri = trimmed
        .parse()
        .map_err(|_| fail("it does not parse as a URL"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| fail("it has no scheme (https://)"))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| fail("it has no host"))?;
    if uri.query().is_some() {
        return Err(fail("it must not have a query string"));
    }
    // A user and password in the URL would be stored in config.toml in
    // plain text and sent nowhere useful: the server wants a log-in.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(fail(
            "it must not contain a user name or password (they would be stored in plain text); give the bare URL and log in with `spec-kitty auth login`",
        ));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(fail(
                "plain http would send your tokens unencrypted; use https",
            ));
        }
        _ => return Err(fail("the scheme must be https")),
    }
    // The client adds `/api/v1/...` itself: the API's own URL, copied from
    // a browser or a curl line, is the server's root plus that path, so it
    // is taken back to the root. Any other path would make every call 404.
    let path = uri.path().trim_end_matches('/');
    let root = match path {
        "" => trimmed.trim_end_matches('/'),
        "/api/v1" => trimmed
            .trim_end_matches('/')
            .strip_suffix("/api/v1")
            .unwrap_or(trimmed),
        other => {
            return Err(fail(&format!(
                "it must be the server's root, without a path ({other}): the client adds /api/v1 itself"
            )));
        }
    };
    Ok(root.to_string())
}

/// `input` with any `user:password@` replaced by `***@`, so an error
/// message never repeats a password typed into a URL.
fn without_password(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return input.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => input.to_string(),
    }
}

/// Whether a URL host names this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The parsed config file (empty when the file does not exist).
pub struct Config {
    path: PathBuf,
    doc: DocumentMut,
}

impl Config {
    pub fn load(home: &Home) -> Result<Config, ConfigError> {
        let path = home.config();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Unreadable { path, source }),
        };
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| ConfigError::Invalid {
                path: path.clone(),
                reason: e.message().to_string(),
            })?;
        Ok(Config { path, doc })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// `[sync] server_url`, if set.
    pub fn server_url(&self) -> Option<String> {
        self.doc
            .get("sync")
            .and_then(|s| s.get("server_url"))
            .and_then(Item::as_str)
            .map(|s| s.trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
    }

    /// `[sync] max_queue_size`, or the default.
    pub fn max_queue_size(&self) -> u64 {
        self.doc
            .get("sync")
            .and_then(|s| s.get("max_queue_size"))
            .and_then(Item::as_integer)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_QUEUE_SIZE)
    }

    /// Sets `[sync] server_url` after checking it; returns the stored form.
    pub fn set_server_url(&mut self, url: &str) -> Result<String, ConfigError> {
        let url = normalize_server_url(url)?;
        if !self.doc.contains_table("sync") {
            self.doc["sync"] = toml_edit::table();
        }
        self.doc["sync"]["server_url"] = value(url.clone());
        Ok(url)
    }

    /// The value of a known key and where it comes from.
    pub fn get(&self, key: &str) -> Result<Setting, ConfigError> {
        let key = known_key(key)?;
        Ok(match key {
            SERVER_URL_KEY => {
                let value = self.server_url();
                let source = if value.is_some() {
                    Source::File
                } else {
                    Source::Default
                };
                Setting { key, value, source }
            }
            _ => {
                // The file's value counts only when it is one the queue uses.
                let from_file = self
                    .doc
                    .get("sync")
                    .and_then(|s| s.get("max_queue_size"))
                    .and_then(Item::as_integer)
                    .is_some_and(|n| u64::try_from(n).is_ok());
                Setting {
                    key,
                    value: Some(self.max_queue_size().to_string()),
                    source: if from_file {
                        Source::File
                    } else {
                        Source::Default
                    },
                }
            }
        })
    }

    /// Every known key, in a fixed order.
    pub fn list(&self) -> Vec<Setting> {
        KEYS.iter().filter_map(|key| self.get(key).ok()).collect()
    }

    /// Checks and sets a known key; returns the value as stored. Unknown
    /// keys and tables of the file are left as they are.
    pub fn set(&mut self, key: &str, raw: &str) -> Result<String, ConfigError> {
        let key = known_key(key)?;
        match key {
            SERVER_URL_KEY => self.set_server_url(raw),
            _ => {
                let bad = |reason| ConfigError::BadValue {
                    key,
                    value: raw.to_string(),
                    reason,
                };
                let n: i64 = raw
                    .trim()
                    .parse()
                    .map_err(|_| bad("a whole number of events is expected"))?;
                if n <= 0 {
                    return Err(bad("it must be at least 1"));
                }
                if !self.doc.contains_table("sync") {
                    self.doc["sync"] = toml_edit::table();
                }
                self.doc["sync"]["max_queue_size"] = value(n);
                Ok(n.to_string())
            }
        }
    }

    /// Replaces the file atomically.
    pub fn save(&self, home: &Home) -> Result<(), ConfigError> {
        let write = |source| ConfigError::Write {
            path: self.path.clone(),
            source,
        };
        home.ensure()
            .map_err(|e| write(std::io::Error::other(e.to_string())))?;
        crate::home::atomic::write(&self.path, self.doc.to_string().as_bytes(), 0o600)
            .map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            normalize_server_url("https://sync.example.com/")
                .ok()
                .as_deref(),
            Some("https://sync.example.com")
        );
        assert_eq!(
            normalize_server_url("http://127.0.0.1:8000")
                .ok()
                .as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            normalize_server_url("http://localhost:9/api/v1/")
                .ok()
                .as_deref(),
            Some("http://localhost:9")
        );
        assert!(normalize_server_url("http://localhost:9/x/").is_err());
        assert!(normalize_server_url("https://bob:secret@sync.example.com").is_err());
        assert!(normalize_server_url("http://[::1]:8000").is_ok());
        assert!(normalize_server_url("http://sync.example.com").is_err());
        assert!(normalize_server_url("ftp://sync.example.com").is_err());
        assert!(normalize_server_url("sync.example.com").is_err());
        assert!(normalize_server_url("").is_err());
        let err = normalize_server_url("http://10.0.0.5").expect_err("refused");
        assert!(err.to_string().contains(EXAMPLE_URL));
    }

    #[test]
    fn keeps_comments_and_other_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().join(".spec-kitty"));
        home.ensure().expect("dir");
        std::fs::write(
            home.config(),
            "# mine\n[sync]\nmax_queue_size = 5 # small\n[other]\nx = 1\n",
        )
        .expect("write");
        let mut config = Config::load(&home).expect("loads");
        assert_eq!(config.max_queue_size(), 5);
        config.set_server_url("https://a.example/").expect("valid");
        config.save(&home).expect("saves");
        let text = std::fs::read_to_string(home.config()).expect("read");
        assert!(
            text.contains("# mine") && text.contains("# small") && text.contains("[other]"),
            "{text}"
        );
        assert_eq!(
            Config::load(&home).expect("loads").server_url().as_deref(),
            Some("https://a.example")
        );
    }
}
