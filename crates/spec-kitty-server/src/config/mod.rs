//! Server configuration: flags, then `SPEC_KITTY_SERVER_*` environment
//! variables (clap reads both), then an optional TOML file, then defaults.
//!
//! One settings type, [`ServeArgs`], is both the clap flag set and the
//! serde shape of the TOML file, every field optional; [`ServeArgs::over`]
//! layers one over another, and [`ServerConfig::resolve`] fills what is
//! still unset from the defaults, each written once ([`DEFAULT_LISTEN`],
//! [`Limits::default`], [`PoolSettings::default`] and the protocol's token
//! lifetimes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::store::postgres::PoolSettings;

mod args;

pub use args::{DEFAULT_LISTEN, ServeArgs, parse_listen};

/// Where the server keeps its data when nothing says otherwise.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("spec-kitty-server");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/spec-kitty-server"),
        None => PathBuf::from("spec-kitty-server-data"),
    }
}

/// The database and data directory, shared by `serve` and the admin commands.
#[derive(Debug, Clone, Default, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database and the signing key
    /// [default: $XDG_DATA_HOME/spec-kitty-server or ~/.local/share/spec-kitty-server]
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_DATA_DIR",
        value_name = "DIR",
        global = true
    )]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH [default: sqlite://DATA_DIR/spec-kitty.db]
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_DATABASE_URL",
        value_name = "URL",
        global = true
    )]
    pub database: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Where data lives, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: String,
}

impl StorageArgs {
    pub fn resolve(&self) -> Storage {
        let data_dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        let database_url = self
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("spec-kitty.db").display()));
        Storage {
            data_dir,
            database_url,
        }
    }
}

/// Limits on requests and log-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_inflight_body_bytes: usize,
    pub login_max_failures: u32,
    pub login_max_concurrent: u32,
    pub login_window: u64,
    /// Seconds a just-retired refresh token is still honoured.
    pub refresh_grace: u64,
    /// Seconds a device-flow client must wait between polls (RFC 8628
    /// `interval`); not a flag: tests shorten it.
    pub device_poll_interval: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_inflight_body_bytes: 128 * 1024 * 1024,
            login_max_failures: 5,
            login_max_concurrent: std::thread::available_parallelism()
                .map_or(2, |n| u32::try_from(n.get()).unwrap_or(2)),
            login_window: 900,
            refresh_grace: 30,
            device_poll_interval: 5,
        }
    }
}

/// What one connection may cost: how long it may take to send a request,
/// sit idle or stall, and how many connections may be open at once. They
/// bound the file descriptors and memory a client that never finishes
/// (slowloris, idle floods) can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            // Below the common 1,024 open-file limit, leaving room for the
            // database, the log and the listener.
            max_connections: 768,
        }
    }
}

/// Where the https certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// A certificate chain and key the operator provides (PEM files).
    Files { cert: PathBuf, key: PathBuf },
    /// A private CA in the data directory, and a server certificate issued
    /// from it at start for localhost, this machine and `names`
    /// ([`crate::http::self_signed`]).
    SelfSigned { names: Vec<String> },
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where `/metrics` is served, if anywhere: never on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub storage: Storage,
    pub tls: Option<Tls>,
    pub access_lifetime: u64,
    pub refresh_lifetime: u64,
    pub limits: Limits,
    pub connections: ConnectionLimits,
    pub log_format: LogFormat,
    pub signing_key_file: Option<PathBuf>,
    pub pool: PoolSettings,
}

impl ServerConfig {
    /// A configuration for tests and benchmarks: loopback on a free port,
    /// everything under `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: None,
            storage: StorageArgs {
                data_dir: Some(data_dir.to_path_buf()),
                database: None,
            }
            .resolve(),
            tls: None,
            access_lifetime: spec_kitty_protocol::token::DEFAULT_ACCESS_LIFETIME,
            refresh_lifetime: spec_kitty_protocol::token::DEFAULT_REFRESH_LIFETIME,
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            log_format: LogFormat::Text,
            signing_key_file: None,
            pool: PoolSettings::default(),
        }
    }

    /// Merges flags and environment (already in `args` and `storage`) over
    /// the file over the defaults, and checks the result.
    pub fn resolve(args: &ServeArgs, storage: &StorageArgs) -> Result<ServerConfig, ConfigError> {
        let flags = ServeArgs {
            data_dir: storage.data_dir.clone(),
            database: storage.database.clone(),
            ..args.clone()
        };
        let file = ServeArgs::from_file(args.config.as_deref())?;
        let config = ServerConfig::from_settings(flags.over(file))?;
        config.check()?;
        Ok(config)
    }

    /// Fills every setting still unset from its default.
    fn from_settings(s: ServeArgs) -> Result<ServerConfig, ConfigError> {
        let self_signed = s.tls_self_signed.unwrap_or(false);
        if !self_signed && s.tls_names.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(ConfigError::Invalid(
                "--tls-name names the self-signed certificate: add --tls-self-signed, or drop --tls-name".into(),
            ));
        }
        let tls = match (s.tls_cert, s.tls_key) {
            (Some(_), _) | (_, Some(_)) if self_signed => {
                return Err(ConfigError::Invalid(
                    "--tls-self-signed makes its own certificate: drop --tls-cert and --tls-key, or drop --tls-self-signed".into(),
                ));
            }
            (Some(cert), Some(key)) => Some(Tls::Files { cert, key }),
            (None, None) if self_signed => Some(Tls::SelfSigned {
                names: s.tls_names.unwrap_or_default(),
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "TLS needs both a certificate and a key (--tls-cert and --tls-key)".into(),
                ));
            }
        };
        let limits = Limits::default();
        let connections = ConnectionLimits::default();
        let pool = PoolSettings::default();
        Ok(ServerConfig {
            listen: s.listen.unwrap_or(DEFAULT_LISTEN),
            metrics_listen: s.metrics_listen,
            storage: StorageArgs {
                data_dir: s.data_dir,
                database: s.database,
            }
            .resolve(),
            tls,
            access_lifetime: s
                .access_lifetime
                .unwrap_or(spec_kitty_protocol::token::DEFAULT_ACCESS_LIFETIME),
            refresh_lifetime: s
                .refresh_lifetime
                .unwrap_or(spec_kitty_protocol::token::DEFAULT_REFRESH_LIFETIME),
            limits: Limits {
                max_body_bytes: s.max_body_bytes.unwrap_or(limits.max_body_bytes),
                max_decompressed_bytes: s
                    .max_decompressed_bytes
                    .unwrap_or(limits.max_decompressed_bytes),
                max_inflight_body_bytes: s
                    .max_inflight_body_bytes
                    .unwrap_or(limits.max_inflight_body_bytes),
                login_max_failures: s.login_max_failures.unwrap_or(limits.login_max_failures),
                login_max_concurrent: s
                    .login_max_concurrent
                    .unwrap_or(limits.login_max_concurrent),
                login_window: s.login_window.unwrap_or(limits.login_window),
                refresh_grace: s.refresh_grace.unwrap_or(limits.refresh_grace),
                device_poll_interval: limits.device_poll_interval,
            },
            connections: ConnectionLimits {
                header_read_timeout: s
                    .header_read_timeout
                    .map_or(connections.header_read_timeout, Duration::from_secs),
                idle_timeout: s
                    .idle_timeout
                    .map_or(connections.idle_timeout, Duration::from_secs),
                body_timeout: s
                    .body_timeout
                    .map_or(connections.body_timeout, Duration::from_secs),
                max_connections: s.max_connections.unwrap_or(connections.max_connections),
            },
            log_format: s.log_format.unwrap_or_default(),
            signing_key_file: s.signing_key_file,
            pool: PoolSettings {
                max_connections: s.database_max_connections.unwrap_or(pool.max_connections),
                connect_timeout: s
                    .database_connect_timeout
                    .map_or(pool.connect_timeout, Duration::from_secs),
            },
        })
    }

    /// The rules no single setting can check alone.
    fn check(&self) -> Result<(), ConfigError> {
        if self.access_lifetime == 0 || self.refresh_lifetime == 0 {
            return Err(ConfigError::Invalid(
                "token lifetimes must be at least 1 second".into(),
            ));
        }
        if self.refresh_lifetime < self.access_lifetime {
            return Err(ConfigError::Invalid(
                "the refresh lifetime must not be shorter than the access lifetime".into(),
            ));
        }
        if self
            .metrics_listen
            .is_some_and(|m| m == self.listen && m.port() != 0)
        {
            return Err(ConfigError::Invalid(
                "metrics-listen must differ from listen: metrics are never served on the public listener".into(),
            ));
        }
        let c = &self.connections;
        if c.header_read_timeout.is_zero() || c.idle_timeout.is_zero() || c.body_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "header-read, idle and body timeouts must be at least 1 second".into(),
            ));
        }
        if c.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max-connections must be at least 1".into(),
            ));
        }
        if self.limits.max_inflight_body_bytes < self.limits.max_body_bytes {
            return Err(ConfigError::Invalid(
                "max-inflight-body-bytes must be at least max-body-bytes".into(),
            ));
        }
        if self.limits.login_max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "login-max-concurrent must be at least 1".into(),
            ));
        }
        if self.limits.login_max_failures == 0 {
            return Err(ConfigError::Invalid(
                "login-max-failures must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9100\"\nmetrics_listen = \"127.0.0.1:9101\"\naccess_lifetime = 60\nrefresh_lifetime = 120\n",
        )
        .expect("write");
        let args = ServeArgs {
            access_lifetime: Some(30),
            config: Some(file),
            ..ServeArgs::default()
        };
        let storage = StorageArgs {
            data_dir: Some(dir.path().to_path_buf()),
            database: None,
        };
        let config = ServerConfig::resolve(&args, &storage).expect("resolves");
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.metrics_listen.map(|m| m.port()), Some(9101));
        assert_eq!(config.access_lifetime, 30);
        assert_eq!(config.refresh_lifetime, 120);
        assert_eq!(config.limits, Limits::default());
        assert!(config.storage.database_url.ends_with("spec-kitty.db"));
    }

    #[test]
    fn unknown_file_keys_and_half_tls_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "lisen = \"x\"\n").expect("write");
        let args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        let err = ServerConfig::resolve(&args, &StorageArgs::default()).expect_err("typo");
        assert!(err.to_string().contains("lisen"), "{err}");
        let args = ServeArgs {
            tls_cert: Some("c.pem".into()),
            ..ServeArgs::default()
        };
        assert!(ServerConfig::resolve(&args, &StorageArgs::default()).is_err());
    }

    #[test]
    fn the_file_cannot_name_another_file_and_storage_comes_from_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "config = \"other.toml\"\n").expect("write");
        let args = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        let err = ServerConfig::resolve(&args, &StorageArgs::default()).expect_err("no nesting");
        assert!(err.to_string().contains("config"), "{err}");
        std::fs::write(
            &file,
            "database = \"sqlite:///tmp/x.db\"\nlogin_window = 60\n",
        )
        .expect("write");
        let config = ServerConfig::resolve(&args, &StorageArgs::default()).expect("resolves");
        assert_eq!(config.storage.database_url, "sqlite:///tmp/x.db");
        assert_eq!(config.limits.login_window, 60);
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.metrics_listen, None);
    }

    #[test]
    fn metrics_never_share_the_public_address() {
        let args = ServeArgs {
            listen: Some(DEFAULT_LISTEN),
            metrics_listen: Some(DEFAULT_LISTEN),
            ..ServeArgs::default()
        };
        let err = ServerConfig::resolve(&args, &StorageArgs::default()).expect_err("same address");
        assert!(err.to_string().contains("metrics-listen"), "{err}");
    }
}
