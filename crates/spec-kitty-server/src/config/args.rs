//! The settings as given: the flags of `serve` (and their environment
//! variables), which are also the keys of the TOML file, and how one layer
//! of them goes over another.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, LogFormat};

/// Where `serve` listens when nothing says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8000,
));

/// Reads `--listen`: `IP:PORT`, or the short forms people type first, a
/// bare `PORT` and `localhost:PORT`, both meaning this machine only (never
/// every interface by surprise). Anything else is answered with examples.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    if let Ok(port) = text.parse::<u16>() {
        return Ok(loopback(port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text
        .strip_prefix("localhost:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        return Ok(loopback(port));
    }
    Err(format!(
        "'{text}' is not an address to listen on: use IP:PORT, like 127.0.0.1:8000 (this machine only) or 0.0.0.0:8443 (every interface), or a bare port like 8001"
    ))
}

/// The settings of `spec-kitty-server serve`: its flags (and their
/// environment variables) and, with the same names, the keys of the TOML
/// file. Unknown keys in the file are errors, so a typo never goes unseen.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// File only: the flag is the global `--data-dir` ([`StorageArgs`](super::StorageArgs)).
    #[arg(skip)]
    pub data_dir: Option<PathBuf>,
    /// File only: the flag is the global `--database` ([`StorageArgs`](super::StorageArgs)).
    #[arg(skip)]
    pub database: Option<String>,
    /// Address to listen on: IP:PORT, localhost:PORT, or a bare PORT (this
    /// machine only) [default: 127.0.0.1:8000]
    #[arg(long, env = "SPEC_KITTY_SERVER_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of
    /// their own (keep it off the public network) [default: off]
    #[arg(long, env = "SPEC_KITTY_SERVER_METRICS_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); serve https when given with --tls-key
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Serve https with a certificate from a private CA made in
    /// DATA_DIR/tls/ on first start; clients trust DATA_DIR/tls/ca.pem
    /// (SSL_CERT_FILE). The log at start names the file and its fingerprint
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_TLS_SELF_SIGNED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub tls_self_signed: Option<bool>,
    /// Another name (host name or IP) the self-signed certificate is valid
    /// for, beyond localhost, the loopback addresses, this machine's host
    /// name and the listen address; repeat it, or separate with commas
    #[arg(
        long = "tls-name",
        env = "SPEC_KITTY_SERVER_TLS_NAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub tls_names: Option<Vec<String>>,
    /// Access-token lifetime in seconds [default: 900]
    #[arg(long, env = "SPEC_KITTY_SERVER_ACCESS_LIFETIME", value_name = "SECS")]
    pub access_lifetime: Option<u64>,
    /// Refresh-token lifetime in seconds [default: 604800]
    #[arg(long, env = "SPEC_KITTY_SERVER_REFRESH_LIFETIME", value_name = "SECS")]
    pub refresh_lifetime: Option<u64>,
    /// Seconds after a refresh during which the refresh token it retired
    /// still works once more (the answer may have been lost); after that,
    /// presenting it revokes its session [default: 30]
    #[arg(long, env = "SPEC_KITTY_SERVER_REFRESH_GRACE", value_name = "SECS")]
    pub refresh_grace: Option<u64>,
    /// Largest request body accepted, as sent (compressed) [default: 16 MiB]
    #[arg(long, env = "SPEC_KITTY_SERVER_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest batch body after decompression [default: 64 MiB]
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_MAX_DECOMPRESSED_BYTES",
        value_name = "BYTES"
    )]
    pub max_decompressed_bytes: Option<usize>,
    /// Request-body bytes held in memory at once, over all requests; a
    /// batch that does not fit is answered 503 with Retry-After
    /// [default: 128 MiB]
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_MAX_INFLIGHT_BODY_BYTES",
        value_name = "BYTES"
    )]
    pub max_inflight_body_bytes: Option<usize>,
    /// Failed log-ins per username (or 4x per address) before 429 [default: 5]
    #[arg(long, env = "SPEC_KITTY_SERVER_LOGIN_MAX_FAILURES", value_name = "N")]
    pub login_max_failures: Option<u32>,
    /// Password checks (argon2, about 19 MiB each) run at once; more wait
    /// [default: the number of CPUs]
    #[arg(long, env = "SPEC_KITTY_SERVER_LOGIN_MAX_CONCURRENT", value_name = "N")]
    pub login_max_concurrent: Option<u32>,
    /// Window in seconds over which failed log-ins are counted [default: 900]
    #[arg(long, env = "SPEC_KITTY_SERVER_LOGIN_WINDOW", value_name = "SECS")]
    pub login_window: Option<u64>,
    /// Seconds a client has to send a request's head (request line and
    /// headers), counted from the connection's first byte (or its opening);
    /// also bounds the TLS handshake [default: 10]
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_HEADER_READ_TIMEOUT",
        value_name = "SECS"
    )]
    pub header_read_timeout: Option<u64>,
    /// Seconds a kept-alive connection may wait for its next request
    /// [default: 60]
    #[arg(long, env = "SPEC_KITTY_SERVER_IDLE_TIMEOUT", value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Seconds a request body (or a response the client does not read) may
    /// stall; a body must also average 1 KiB/s once this much time has
    /// passed [default: 30]
    #[arg(long, env = "SPEC_KITTY_SERVER_BODY_TIMEOUT", value_name = "SECS")]
    pub body_timeout: Option<u64>,
    /// Open connections at most; more are closed on arrival [default: 768]
    #[arg(long, env = "SPEC_KITTY_SERVER_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Signing key file (128 hex characters) shared by every instance; by
    /// default the key lives in the data directory (SQLite) or in the
    /// database (PostgreSQL)
    #[arg(long, env = "SPEC_KITTY_SERVER_SIGNING_KEY_FILE", value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// PostgreSQL: connections per instance [default: 10]
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_DATABASE_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub database_max_connections: Option<u32>,
    /// PostgreSQL: how long start-up retries an unreachable database before
    /// giving up [default: 30]
    #[arg(
        long,
        env = "SPEC_KITTY_SERVER_DATABASE_CONNECT_TIMEOUT",
        value_name = "SECS"
    )]
    pub database_connect_timeout: Option<u64>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "SPEC_KITTY_SERVER_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Optional TOML file with any of the settings above (flags and
    /// environment win over it)
    #[arg(long, env = "SPEC_KITTY_SERVER_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Layers `$upper` over `$lower`, field by field: the first that is set
/// wins. The field list is the only place the settings are named twice.
macro_rules! layer {
    ($upper:expr, $lower:expr; $($field:ident),+ $(,)?) => {
        ServeArgs { $($field: $upper.$field.or($lower.$field)),+ }
    };
}

impl ServeArgs {
    /// These settings over `lower`: each one set here wins.
    pub fn over(self, lower: ServeArgs) -> ServeArgs {
        layer!(self, lower;
            data_dir, database, listen, metrics_listen, tls_cert, tls_key, tls_self_signed, tls_names,
            access_lifetime,
            refresh_lifetime, refresh_grace, max_body_bytes, max_decompressed_bytes, max_inflight_body_bytes,
            login_max_failures, login_max_concurrent, login_window, header_read_timeout, idle_timeout,
            body_timeout, max_connections, signing_key_file,
            database_max_connections, database_connect_timeout, log_format, config,
        )
    }

    /// The settings of the TOML file `--config` names, or none.
    pub(super) fn from_file(path: Option<&Path>) -> Result<ServeArgs, ConfigError> {
        let Some(path) = path else {
            return Ok(ServeArgs::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }
}
