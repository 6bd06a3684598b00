//! The token manager: a valid access token, refreshed when needed.
//!
//! Refresh is single-flight across processes. Under the credentials lock a
//! process re-reads the file; if another process refreshed meanwhile, it
//! uses that token. Otherwise it refreshes and writes. A refused refresh
//! (401) ends the session; a timeout, connection error, 429 or 5xx leaves
//! the file untouched and is reported as the server problem it is.

pub mod credentials;
pub mod env_token;

use std::time::Duration;

use spec_kitty_protocol::{RefreshRequest, TokenResponse, paths};
use time::OffsetDateTime;

use self::credentials::{Credentials, CredentialsError, CredentialsLock, Stored};
use crate::home::paths::Home;
use crate::net::http::{Body, Http, HttpError};
#[cfg(doc)]
use crate::session::credentials::LOCK_WAIT;

/// Why no usable access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Not authenticated. Run `spec-kitty auth login` to connect.")]
    NotAuthenticated,
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("Session expired ({reason}). Run `spec-kitty auth login` to re-authenticate.")]
    SessionExpired {
        reason: String,
        /// The status of the refused refresh; `None` when no request was
        /// made (the refresh token had expired by the file's own dates).
        http_status: Option<u16>,
    },
    /// The headline is the outcome's ("Server unreachable", "Certificate
    /// not trusted"), as `sync status --check` would say it: that the
    /// request was a refresh is the detail, not the news.
    #[error("{headline}: could not refresh the session ({cause}). Your credentials were kept; try again later.", headline = crate::outcome::Outcome::from(.0).headline(), cause = .0)]
    Network(HttpError),
    /// The server rotated the session but the new tokens could not be
    /// written: they are not used (a session only this process knows would
    /// be lost at exit). The server honours the old refresh token once
    /// more for a short grace window, so fixing the cause and retrying
    /// soon keeps the session.
    #[error(
        "The session was refreshed, but the new credentials could NOT be saved: {0}. They were not used. Fix the cause (disk space, permissions) and run the command again within 30 seconds to keep this session; after that, run `spec-kitty auth login`."
    )]
    NotSaved(CredentialsError),
    #[error(
        "Could not refresh the session: the server answered HTTP {status} ({detail}). Your credentials were kept; try again later."
    )]
    ServerStatus { status: u16, detail: String },
    #[error(transparent)]
    EnvToken(#[from] env_token::EnvTokenError),
    /// The server refused the token of `SPEC_KITTY_TOKEN`: it cannot be
    /// refreshed, so it stays refused.
    #[error(
        "The server refused the token in {var} (revoked, expired or mistyped). Create a new token, or unset {var} to use `spec-kitty auth login`.",
        var = env_token::TOKEN_VAR
    )]
    EnvTokenRefused,
}

/// Where the bearer of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `~/.spec-kitty/credentials`, from `spec-kitty auth login`.
    CredentialsFile,
    /// `SPEC_KITTY_TOKEN`.
    Environment,
}

impl TokenSource {
    /// How `auth status` and `sync status --check` name it.
    pub fn describe(self) -> &'static str {
        match self {
            TokenSource::CredentialsFile => "credentials file",
            TokenSource::Environment => env_token::TOKEN_VAR,
        }
    }
}

/// An access token ready to use, with the session it belongs to.
#[derive(Debug)]
pub struct Session {
    pub access: String,
    pub credentials: Credentials,
    /// Whether this process refreshed the token.
    pub refreshed: bool,
    pub source: TokenSource,
}

impl Session {
    /// A session on the token of `SPEC_KITTY_TOKEN`: no user or team is
    /// known on this side (the server knows them from the token).
    fn from_env(env: env_token::EnvToken) -> Session {
        Session {
            credentials: Credentials::new(
                &env.server_url,
                "",
                None,
                String::new(),
                String::new(),
                0,
                0,
            ),
            access: env.token,
            refreshed: false,
            source: TokenSource::Environment,
        }
    }
}

/// Reads the stored session, mapping "absent" to [`AuthError::NotAuthenticated`].
pub fn stored(home: &Home) -> Result<Credentials, AuthError> {
    match credentials::load(home)? {
        Stored::Absent => Err(AuthError::NotAuthenticated),
        Stored::Present(creds) => Ok(creds),
    }
}

/// A valid access token: `SPEC_KITTY_TOKEN` when set (the credentials file
/// is then not touched), else the stored one, or a refreshed one.
pub fn access_token(
    home: &Home,
    http: &Http,
    timeout: Duration,
    lock_wait: Duration,
) -> Result<Session, AuthError> {
    if let Some(env) = env_token::from_env(home)? {
        return Ok(Session::from_env(env));
    }
    let creds = stored(home)?;
    if !creds.access_expired(OffsetDateTime::now_utc()) {
        return Ok(Session {
            access: creds.access.clone(),
            credentials: creds,
            refreshed: false,
            source: TokenSource::CredentialsFile,
        });
    }
    refresh(home, http, &creds.access, timeout, lock_wait)
}

/// Refreshes because `stale` (the token we hold) expired or was refused,
/// unless another process already replaced it.
///
/// `lock_wait` bounds the wait for another process's refresh: normally
/// [`LOCK_WAIT`] (longer than any HTTP timeout, so we never give up while
/// another process is mid-refresh), or what is left of a check's deadline.
pub fn refresh(
    home: &Home,
    http: &Http,
    stale: &str,
    timeout: Duration,
    lock_wait: Duration,
) -> Result<Session, AuthError> {
    // A token from the environment has no refresh: refused is final, and
    // the credentials file (and its lock) belong to someone else.
    if env_token::is_set() {
        return Err(AuthError::EnvTokenRefused);
    }
    let lock = CredentialsLock::acquire(home, lock_wait)?;
    let mut creds = stored(home)?;
    let now = OffsetDateTime::now_utc();
    if creds.access != stale && !creds.access_expired(now) {
        return Ok(Session {
            access: creds.access.clone(),
            credentials: creds,
            refreshed: false,
            source: TokenSource::CredentialsFile,
        });
    }
    if creds.refresh_expired(now) {
        return Err(AuthError::SessionExpired {
            reason: "the refresh token has expired".into(),
            http_status: None,
        });
    }
    let url = format!("{}{}", creds.server_url, paths::REFRESH);
    let body = serde_json::to_vec(&RefreshRequest {
        refresh: creds.refresh.clone(),
    })
    .unwrap_or_default();
    let reply = http
        .post_within(&url, None, Body::Json(&body), timeout)
        .map_err(AuthError::Network)?;
    match reply.status {
        200 => {
            let tokens: TokenResponse =
                serde_json::from_slice(&reply.body).map_err(|e| AuthError::ServerStatus {
                    status: 200,
                    detail: format!("unreadable token response: {e}"),
                })?;
            creds.apply_refresh(
                tokens.access,
                tokens.refresh,
                tokens.access_lifetime,
                tokens.refresh_lifetime,
                tokens.team_slug,
            );
            // Saved before used: tokens that exist only in this process
            // would be lost at exit, with the server's copy already rotated.
            credentials::save(home, &creds, &lock).map_err(AuthError::NotSaved)?;
            Ok(Session {
                access: creds.access.clone(),
                credentials: creds,
                refreshed: true,
                source: TokenSource::CredentialsFile,
            })
        }
        401 => Err(AuthError::SessionExpired {
            reason: "the server refused the refresh token".into(),
            http_status: Some(401),
        }),
        status => Err(AuthError::ServerStatus {
            status,
            detail: reply.error_text(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_credentials_that_cannot_be_saved_are_reported_as_such() {
        let error = AuthError::NotSaved(CredentialsError::Write {
            path: "/home/alice/.spec-kitty/credentials".into(),
            source: std::io::Error::other("No space left on device"),
        });
        let text = error.to_string();
        assert!(text.contains("could NOT be saved"), "{text}");
        assert!(text.contains("No space left on device"), "{text}");
        assert!(text.contains("not used"), "{text}");
        assert!(text.contains("auth login"), "{text}");
        assert_eq!(
            crate::outcome::Outcome::from(&error),
            crate::outcome::Outcome::CredentialsUnreadable
        );
    }
}
