//! `sync status --check`: probe the server with the user's real token and
//! say exactly what is wrong (contract section 5).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::auth::{self, AuthError};
use crate::credentials::CredentialsError;
use crate::http::{Body, Http, HttpError};
use crate::paths::Home;

/// The batch endpoint, relative to the server URL.
pub const BATCH_PATH: &str = "/api/v1/events/batch/";

/// Every way a check can end. Each has its own exit code and JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Connected,
    NotAuthenticated,
    SessionExpired,
    AuthenticationFailed,
    PermissionDenied,
    Unreachable,
    CertificateUntrusted,
    UnexpectedStatus,
    CredentialsUnreadable,
    CredentialsInvalid,
    /// Another process held the credentials lock past the deadline.
    CredentialsBusy,
}

impl Outcome {
    /// The process exit code; 0 only for `connected`. Stable: scripts rely
    /// on them, and `sync status --help` lists them.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Connected => 0,
            Outcome::NotAuthenticated => 3,
            Outcome::SessionExpired => 4,
            Outcome::AuthenticationFailed => 5,
            Outcome::PermissionDenied => 6,
            Outcome::Unreachable => 7,
            Outcome::CertificateUntrusted => 8,
            Outcome::UnexpectedStatus => 9,
            Outcome::CredentialsUnreadable => 10,
            Outcome::CredentialsInvalid => 11,
            Outcome::CredentialsBusy => 12,
        }
    }

    pub fn headline(self) -> &'static str {
        match self {
            Outcome::Connected => "Connected",
            Outcome::NotAuthenticated => "Not authenticated",
            Outcome::SessionExpired => "Session expired",
            Outcome::AuthenticationFailed => "Authentication failed",
            Outcome::PermissionDenied => "Permission denied",
            Outcome::Unreachable => "Server unreachable",
            Outcome::CertificateUntrusted => "Certificate not trusted",
            Outcome::UnexpectedStatus => "Unexpected response",
            Outcome::CredentialsUnreadable => "Credentials unreadable",
            Outcome::CredentialsInvalid => "Credentials invalid",
            Outcome::CredentialsBusy => "Credentials busy",
        }
    }

    /// The next step of the contract's table.
    pub fn next_step(self, http_status: Option<u16>) -> String {
        match self {
            Outcome::Connected => "Server reachable, authentication valid.".into(),
            Outcome::NotAuthenticated => "Run `spec-kitty auth login` to connect.".into(),
            Outcome::SessionExpired => "Run `spec-kitty auth login` to re-authenticate.".into(),
            Outcome::AuthenticationFailed => "Run `spec-kitty auth login`.".into(),
            Outcome::PermissionDenied => "Check team membership for this project.".into(),
            Outcome::Unreachable => "Events will be queued for later sync.".into(),
            Outcome::CertificateUntrusted => {
                "If the server uses a private CA, point SSL_CERT_FILE at its PEM file.".into()
            }
            Outcome::UnexpectedStatus => match http_status {
                Some(code) => format!("Server returned HTTP {code}."),
                None => "The server's answer could not be understood.".into(),
            },
            Outcome::CredentialsUnreadable => {
                "Fix the file's permissions (chmod 600), then retry.".into()
            }
            Outcome::CredentialsInvalid => {
                "The file was kept; run `spec-kitty auth login --force` to replace it.".into()
            }
            Outcome::CredentialsBusy => {
                "Another spec-kitty process holds ~/.spec-kitty/credentials.lock; retry in a moment.".into()
            }
        }
    }

    /// The exit codes, for `--help`.
    pub const ALL: [Outcome; 11] = [
        Outcome::Connected,
        Outcome::NotAuthenticated,
        Outcome::SessionExpired,
        Outcome::AuthenticationFailed,
        Outcome::PermissionDenied,
        Outcome::Unreachable,
        Outcome::CertificateUntrusted,
        Outcome::UnexpectedStatus,
        Outcome::CredentialsUnreadable,
        Outcome::CredentialsInvalid,
        Outcome::CredentialsBusy,
    ];
}

/// What a check found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub headline: &'static str,
    pub next_step: String,
    pub http_status: Option<u16>,
    pub server: Option<String>,
    pub user: Option<String>,
    pub team: Option<String>,
    pub latency_ms: Option<u64>,
    /// Whether the access token was refreshed during the check.
    pub refreshed: bool,
    /// The underlying reason, in words (server message, network error).
    pub detail: Option<String>,
}

impl Report {
    fn new(outcome: Outcome) -> Report {
        Report {
            outcome,
            headline: outcome.headline(),
            next_step: outcome.next_step(None),
            http_status: None,
            server: None,
            user: None,
            team: None,
            latency_ms: None,
            refreshed: false,
            detail: None,
        }
    }

    fn set_outcome(&mut self, outcome: Outcome, http_status: Option<u16>, detail: Option<String>) {
        self.outcome = outcome;
        self.headline = outcome.headline();
        self.next_step = outcome.next_step(http_status);
        self.http_status = http_status;
        self.detail = detail;
    }
}

fn network_outcome(e: &HttpError) -> Outcome {
    match e {
        HttpError::Certificate { .. } => Outcome::CertificateUntrusted,
        _ => Outcome::Unreachable,
    }
}

fn auth_outcome(e: &AuthError) -> (Outcome, Option<u16>) {
    match e {
        AuthError::NotAuthenticated => (Outcome::NotAuthenticated, None),
        AuthError::Credentials(CredentialsError::Invalid { .. }) => {
            (Outcome::CredentialsInvalid, None)
        }
        AuthError::Credentials(CredentialsError::LockTimeout { .. }) => {
            (Outcome::CredentialsBusy, None)
        }
        AuthError::Credentials(_) => (Outcome::CredentialsUnreadable, None),
        AuthError::SessionExpired { http_status, .. } => (Outcome::SessionExpired, *http_status),
        AuthError::Network(e) => (network_outcome(e), None),
        AuthError::ServerStatus { status, .. } => (Outcome::UnexpectedStatus, Some(*status)),
    }
}

/// Runs the whole check within `timeout`.
pub fn check(home: &Home, timeout: Duration) -> Report {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let http = Http::new(timeout);
    let mut report = Report::new(Outcome::Connected);

    let creds = match auth::stored(home) {
        Ok(creds) => creds,
        Err(e) => {
            let (outcome, status) = auth_outcome(&e);
            // "Not authenticated" needs no detail beyond its headline.
            let detail = (outcome != Outcome::NotAuthenticated).then(|| e.to_string());
            report.set_outcome(outcome, status, detail);
            return report;
        }
    };
    report.server = Some(creds.server_url.clone());
    report.user = Some(creds.username.clone());
    report.team = creds.team_slug.clone();

    let mut session = match auth::access_token(home, &http, remaining(), remaining()) {
        Ok(session) => session,
        Err(e) => {
            let (outcome, status) = auth_outcome(&e);
            report.set_outcome(outcome, status, Some(e.to_string()));
            return report;
        }
    };
    report.refreshed = session.refreshed;
    let url = format!("{}{BATCH_PATH}", session.credentials.server_url);
    let mut retried = false;
    loop {
        let started = Instant::now();
        let reply = http.post_within(
            &url,
            Some(&session.access),
            Body::Json(br#"{"events": []}"#),
            remaining(),
        );
        report.latency_ms = Some(started.elapsed().as_millis() as u64);
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                report.set_outcome(network_outcome(&e), None, Some(e.to_string()));
                return report;
            }
        };
        let status = Some(reply.status);
        match reply.status {
            200..=299 => report.set_outcome(Outcome::Connected, status, None),
            // Older servers refused an empty batch; reaching that check
            // means the token was accepted.
            400 if String::from_utf8_lossy(&reply.body).contains("No events provided") => {
                report.set_outcome(Outcome::Connected, status, None)
            }
            401 if !retried => {
                retried = true;
                match auth::refresh(home, &http, &session.access, remaining(), remaining()) {
                    Ok(fresh) => {
                        report.refreshed |= fresh.refreshed;
                        session = fresh;
                        continue;
                    }
                    Err(e) => {
                        let (outcome, status) = auth_outcome(&e);
                        report.set_outcome(outcome, status, Some(e.to_string()));
                    }
                }
            }
            401 => report.set_outcome(
                Outcome::AuthenticationFailed,
                status,
                Some(reply.error_text()),
            ),
            403 => report.set_outcome(Outcome::PermissionDenied, status, Some(reply.error_text())),
            _ => report.set_outcome(Outcome::UnexpectedStatus, status, Some(reply.error_text())),
        }
        if let Some(team) = &session.credentials.team_slug {
            report.team = Some(team.clone());
        }
        return report;
    }
}
