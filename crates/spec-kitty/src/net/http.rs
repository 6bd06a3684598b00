//! The one HTTP client of the crate: ureq over rustls (ring), the system
//! roots plus `SSL_CERT_FILE`, a `User-Agent`, connect and total timeouts,
//! proxies from the environment (never for this machine), no redirects
//! (a redirect would carry a token to another host).

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

use crate::net::tls::{self, TlsConnector};

/// The longest any connect may take, whatever the total budget.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bodies larger than this are not read (no answer of the contract is).
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// A request that got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("no answer from {url} within {secs:.1} s", secs = elapsed.as_secs_f64())]
    Timeout { url: String, elapsed: Duration },
    #[error("cannot connect to {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error(
        "the certificate of {url} is not trusted: {detail}. If the server uses a private CA or a self-signed certificate, point SSL_CERT_FILE at that PEM file (for `spec-kitty-server serve --tls-self-signed`: DATA_DIR/tls/ca.pem on the server)"
    )]
    Certificate { url: String, detail: String },
    #[error("request to {url} failed: {detail}")]
    Other { url: String, detail: String },
}

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub retry_after: Option<u64>,
}

impl Reply {
    /// The `error` (and `details`) of a JSON error body, or the start of the
    /// body as text.
    pub fn error_text(&self) -> String {
        if let Ok(body) = serde_json::from_slice::<spec_kitty_protocol::ErrorBody>(&self.body) {
            return match body.details {
                Some(details) => format!("{} ({details})", body.error),
                None => body.error,
            };
        }
        let text = String::from_utf8_lossy(&self.body);
        text.chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string()
    }
}

/// A body to send.
pub enum Body<'a> {
    Json(&'a [u8]),
    /// Already gzip-compressed JSON.
    GzipJson(&'a [u8]),
}

/// Which agent a URL needs: TLS or not, proxy or not.
#[derive(Clone, Copy, PartialEq, Eq)]
struct AgentKind {
    https: bool,
    loopback: bool,
}

/// The client. Cheap to build: an agent (and, for https, the TLS roots) is
/// made on first use and then reused, so a drain keeps one connection.
pub struct Http {
    timeout: Duration,
    agents: Mutex<Vec<(AgentKind, ureq::Agent)>>,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        Http {
            timeout,
            agents: Mutex::new(Vec::new()),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn agent(&self, url: &str) -> Result<ureq::Agent, HttpError> {
        let uri: ureq::http::Uri = url.parse().map_err(|_| HttpError::Other {
            url: url.to_string(),
            detail: "not a valid URL".into(),
        })?;
        let kind = AgentKind {
            https: uri.scheme_str() == Some("https"),
            loopback: uri
                .host()
                .is_some_and(crate::home::config::is_loopback_host),
        };
        let mut agents = self
            .agents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, agent)) = agents.iter().find(|(k, _)| *k == kind) {
            return Ok(agent.clone());
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("spec-kitty/", env!("CARGO_PKG_VERSION")))
            .proxy(if kind.loopback {
                None
            } else {
                ureq::Proxy::try_from_env()
            });
        let agent = if kind.https {
            let tls = tls::client_config().map_err(|e| HttpError::Other {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
            // ureq's own TLS connector cannot take a verifier: the chain is
            // its default one (proxy, TCP) with ours for TLS.
            let connector =
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(TlsConnector::new(tls));
            ureq::Agent::with_parts(config.build(), connector, DefaultResolver::default())
        } else {
            config.build().new_agent()
        };
        agents.push((kind, agent.clone()));
        Ok(agent)
    }

    /// POSTs a body, with a bearer token when given.
    pub fn post(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: Body<'_>,
    ) -> Result<Reply, HttpError> {
        self.post_within(url, bearer, body, self.timeout)
    }

    /// POSTs with an explicit total timeout (for checks with a deadline).
    pub fn post_within(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: Body<'_>,
        timeout: Duration,
    ) -> Result<Reply, HttpError> {
        let started = Instant::now();
        let agent = self.agent(url)?;
        let mut request = agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(CONNECT_TIMEOUT)))
            .build()
            .header("Content-Type", "application/json");
        if let Some(token) = bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let (bytes, gzip) = match body {
            Body::Json(bytes) => (bytes, false),
            Body::GzipJson(bytes) => (bytes, true),
        };
        if gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        let result = request
            .send(bytes)
            .map_err(|e| classify(url, e, started.elapsed()))
            .and_then(|response| read_reply(url, response, started));
        trace("POST", url, &result, started);
        result
    }

    /// GETs `url` with a bearer token: the same agent, TLS roots, timeouts
    /// and no-redirect rule as every POST (a redirect would carry the
    /// token to another host).
    pub fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, HttpError> {
        let started = Instant::now();
        let agent = self.agent(url)?;
        let mut request = agent
            .get(url)
            .config()
            .timeout_global(Some(self.timeout))
            .timeout_connect(Some(self.timeout.min(CONNECT_TIMEOUT)))
            .build()
            .header("Accept", "application/json");
        if let Some(token) = bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let result = request
            .call()
            .map_err(|e| classify(url, e, started.elapsed()))
            .and_then(|response| read_reply(url, response, started));
        trace("GET", url, &result, started);
        result
    }
}

/// The `-vv` line of one exchange: method, URL, status and time; never a
/// header or a body.
fn trace(method: &str, url: &str, result: &Result<Reply, HttpError>, started: Instant) {
    let failure;
    let outcome = match result {
        Ok(reply) => Ok(reply.status),
        Err(e) => {
            failure = e.to_string();
            Err(failure.as_str())
        }
    };
    crate::verbosity::http(method, url, outcome, started.elapsed());
}

/// The status, `Retry-After` and (bounded) body of an answer.
fn read_reply(
    url: &str,
    response: ureq::http::Response<ureq::Body>,
    started: Instant,
) -> Result<Reply, HttpError> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut body)
        .map_err(|e| classify_io(url, e, started.elapsed()))?;
    Ok(Reply {
        status,
        body,
        retry_after,
    })
}

fn classify_io(url: &str, e: std::io::Error, elapsed: Duration) -> HttpError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => HttpError::Timeout {
            url: url.to_string(),
            elapsed,
        },
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::NotConnected
        | ErrorKind::AddrNotAvailable
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable => HttpError::Unreachable {
            url: url.to_string(),
            detail: e.to_string(),
        },
        _ => {
            if let Some(inner) = e.get_ref()
                && let Some(tls) = inner.downcast_ref::<rustls::Error>()
            {
                return tls_error(url, tls);
            }
            HttpError::Other {
                url: url.to_string(),
                detail: e.to_string(),
            }
        }
    }
}

fn tls_error(url: &str, e: &rustls::Error) -> HttpError {
    match e {
        rustls::Error::InvalidCertificate(_) => HttpError::Certificate {
            url: url.to_string(),
            detail: e.to_string(),
        },
        other => HttpError::Other {
            url: url.to_string(),
            detail: format!("TLS error: {other}"),
        },
    }
}

fn classify(url: &str, e: ureq::Error, elapsed: Duration) -> HttpError {
    match e {
        ureq::Error::Timeout(_) => HttpError::Timeout {
            url: url.to_string(),
            elapsed,
        },
        ureq::Error::Io(io) => classify_io(url, io, elapsed),
        ureq::Error::ConnectionFailed => HttpError::Unreachable {
            url: url.to_string(),
            detail: "connection failed".into(),
        },
        ureq::Error::HostNotFound => HttpError::Unreachable {
            url: url.to_string(),
            detail: "host not found".into(),
        },
        ureq::Error::Rustls(tls) => tls_error(url, &tls),
        other => HttpError::Other {
            url: url.to_string(),
            detail: other.to_string(),
        },
    }
}
