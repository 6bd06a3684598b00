//! `sync status --check`: probe the server with the user's real token and
//! say exactly what is wrong (contract section 5).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::home::config;
use crate::home::paths::Home;
use crate::net::http::{Body, Http};
pub use crate::outcome::Outcome;
use crate::session::{self as auth, AuthError, TokenSource, env_token};
use spec_kitty_protocol::paths::BATCH;

/// What a check found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub headline: &'static str,
    pub next_step: String,
    pub http_status: Option<u16>,
    pub server: Option<String>,
    /// Where the token came from: `credentials file` or `SPEC_KITTY_TOKEN`
    /// (the token itself is never shown).
    pub token_source: Option<&'static str>,
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
            token_source: None,
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

/// The outcome of a token-manager failure, with its HTTP status.
fn auth_outcome(e: &AuthError) -> (Outcome, Option<u16>) {
    (e.into(), Outcome::http_status_of(e))
}

/// Whether config.toml names no server (an unreadable file names none).
fn no_server_configured(home: &Home) -> bool {
    config::Config::load(home).map_or(true, |c| c.server_url().is_none())
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

    if env_token::is_set() {
        check_env_token(home, &http, &mut report, &remaining);
        return report;
    }
    let creds = match auth::stored(home) {
        Ok(creds) => creds,
        Err(e) => {
            let (outcome, status) = auth_outcome(&e);
            // "Not authenticated" needs no detail beyond its headline.
            let detail = (outcome != Outcome::NotAuthenticated).then(|| e.to_string());
            report.set_outcome(outcome, status, detail);
            // Logging in needs a server: with none configured, that is the
            // first step to name, or `auth login` fails for want of one.
            if outcome == Outcome::NotAuthenticated && no_server_configured(home) {
                report.next_step = format!(
                    "No sync server is configured: set one with `spec-kitty sync server {}`, then run `spec-kitty auth login`.",
                    config::EXAMPLE_URL
                );
            }
            return report;
        }
    };
    report.server = Some(creds.server_url.clone());
    report.token_source = Some(TokenSource::CredentialsFile.describe());
    report.user = Some(creds.username.clone());
    report.team = creds.team_slug.clone();

    let session = match auth::access_token(home, &http, remaining(), remaining()) {
        Ok(session) => session,
        Err(e) => {
            let (outcome, status) = auth_outcome(&e);
            report.set_outcome(outcome, status, Some(e.to_string()));
            return report;
        }
    };
    report.refreshed = session.refreshed;
    probe_batch(home, &http, session, &mut report, &remaining);
    report
}

/// The check with `SPEC_KITTY_TOKEN`: the credentials file is not read.
fn check_env_token(
    home: &Home,
    http: &Http,
    report: &mut Report,
    remaining: &dyn Fn() -> Duration,
) {
    report.token_source = Some(TokenSource::Environment.describe());
    let session = match auth::access_token(home, http, remaining(), remaining()) {
        Ok(session) => session,
        Err(e) => {
            let (outcome, status) = auth_outcome(&e);
            report.set_outcome(outcome, status, None);
            report.next_step = e.to_string();
            return;
        }
    };
    report.server = Some(session.credentials.server_url.clone());
    probe_batch(home, http, session, report, remaining);
    if report.outcome == Outcome::AuthenticationFailed {
        report.next_step = AuthError::EnvTokenRefused.to_string();
        report.detail = None;
    }
}

/// Posts an empty batch with the session's token (refreshing once on a
/// 401) and records what the answer means in `report`.
fn probe_batch(
    home: &Home,
    http: &Http,
    mut session: auth::Session,
    report: &mut Report,
    remaining: &dyn Fn() -> Duration,
) {
    let url = format!("{}{BATCH}", session.credentials.server_url);
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
                report.set_outcome((&e).into(), None, Some(e.to_string()));
                return;
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
                match auth::refresh(home, http, &session.access, remaining(), remaining()) {
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
            // A server (or a proxy in front of it) that rate-limits: the
            // same outcome as a throttled log-in, not "unexpected".
            429 => report.set_outcome(Outcome::Throttled, status, Some(reply.error_text())),
            _ => report.set_outcome(Outcome::UnexpectedStatus, status, Some(reply.error_text())),
        }
        if let Some(team) = &session.credentials.team_slug {
            report.team = Some(team.clone());
        }
        return;
    }
}
