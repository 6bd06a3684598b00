//! Every way talking to the server can end, in one place: the exit code,
//! the headline, the next step and the `--help` texts that list them.
//!
//! `sync status --check`, `sync now`, `auth token` and `auth login` all
//! meet the same failures (no session, an expired one, an unreadable
//! credentials file, an unreachable server...). Each maps them here, so a
//! script sees the same exit code for the same situation whichever command
//! it ran, and the help texts cannot list a code the program does not use.

use serde::Serialize;

use crate::net::http::HttpError;
use crate::session::AuthError;
use crate::session::credentials::CredentialsError;

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
    /// HTTP 429: the server asks to wait (too many failed log-ins).
    Throttled,
}

impl Outcome {
    /// Every outcome, in exit-code order.
    pub const ALL: [Outcome; 12] = [
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
        Outcome::Throttled,
    ];

    /// The process exit code; 0 only for `connected`. Stable: scripts rely
    /// on them, and `--help` lists them.
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
            Outcome::Throttled => 13,
        }
    }

    /// The JSON value (`--json` prints it), as serde writes it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::NotAuthenticated => "not_authenticated",
            Outcome::SessionExpired => "session_expired",
            Outcome::AuthenticationFailed => "authentication_failed",
            Outcome::PermissionDenied => "permission_denied",
            Outcome::Unreachable => "unreachable",
            Outcome::CertificateUntrusted => "certificate_untrusted",
            Outcome::UnexpectedStatus => "unexpected_status",
            Outcome::CredentialsUnreadable => "credentials_unreadable",
            Outcome::CredentialsInvalid => "credentials_invalid",
            Outcome::CredentialsBusy => "credentials_busy",
            Outcome::Throttled => "throttled",
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
            Outcome::Throttled => "Too many attempts",
        }
    }

    /// What the outcome means, for the `--help` table.
    fn meaning(self) -> &'static str {
        match self {
            Outcome::Connected => "server reachable, authentication valid",
            Outcome::NotAuthenticated => "no credentials stored",
            Outcome::SessionExpired => "access expired and the refresh was refused",
            Outcome::AuthenticationFailed => "the server refused the token after a refresh",
            Outcome::PermissionDenied => "HTTP 403: not (or no longer) a team member",
            Outcome::Unreachable => "timeout or connection refused",
            Outcome::CertificateUntrusted => "the server's TLS certificate is not trusted",
            Outcome::UnexpectedStatus => "any other HTTP status",
            Outcome::CredentialsUnreadable => "~/.spec-kitty/credentials cannot be read",
            Outcome::CredentialsInvalid => "~/.spec-kitty/credentials is corrupt",
            Outcome::CredentialsBusy => "another process held credentials.lock past the deadline",
            Outcome::Throttled => "HTTP 429: too many failed log-ins; the server asks to wait",
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
            Outcome::Throttled => "Wait as long as the server asks, then retry.".into(),
        }
    }

    /// The HTTP status behind an outcome of the token manager, if any.
    pub fn http_status_of(e: &AuthError) -> Option<u16> {
        match e {
            AuthError::SessionExpired { http_status, .. } => *http_status,
            AuthError::ServerStatus { status, .. } => Some(*status),
            AuthError::EnvTokenRefused => Some(401),
            _ => None,
        }
    }
}

impl From<&HttpError> for Outcome {
    /// A request that got no HTTP answer at all.
    fn from(e: &HttpError) -> Outcome {
        match e {
            HttpError::Certificate { .. } => Outcome::CertificateUntrusted,
            HttpError::Timeout { .. } | HttpError::Unreachable { .. } | HttpError::Other { .. } => {
                Outcome::Unreachable
            }
        }
    }
}

impl From<&CredentialsError> for Outcome {
    fn from(e: &CredentialsError) -> Outcome {
        match e {
            CredentialsError::Invalid { .. } => Outcome::CredentialsInvalid,
            CredentialsError::LockTimeout { .. } => Outcome::CredentialsBusy,
            CredentialsError::Unreadable { .. }
            | CredentialsError::Write { .. }
            | CredentialsError::Remove { .. }
            | CredentialsError::Lock { .. } => Outcome::CredentialsUnreadable,
        }
    }
}

impl From<&AuthError> for Outcome {
    fn from(e: &AuthError) -> Outcome {
        match e {
            AuthError::NotAuthenticated => Outcome::NotAuthenticated,
            AuthError::Credentials(e) | AuthError::NotSaved(e) => e.into(),
            AuthError::SessionExpired { .. } => Outcome::SessionExpired,
            AuthError::Network(e) => e.into(),
            AuthError::ServerStatus { .. } => Outcome::UnexpectedStatus,
            AuthError::EnvToken(_) => Outcome::NotAuthenticated,
            AuthError::EnvTokenRefused => Outcome::AuthenticationFailed,
        }
    }
}

/// `sync status --help`: every outcome, its code and what it means.
pub fn check_help() -> String {
    let mut text =
        String::from("Exit codes of --check (one per outcome; --json prints the outcome name):");
    for outcome in Outcome::ALL {
        text.push_str(&format!(
            "\n{:>3}  {:<22}  {}",
            outcome.exit_code(),
            outcome.name(),
            outcome.meaning()
        ));
    }
    text
}

/// "0 usable session, 3 not logged in": the codes of `list`, in the words
/// of the command that uses them.
fn code_list(list: &[(Outcome, &str)]) -> String {
    list.iter()
        .map(|(outcome, words)| format!("{} {words}", outcome.exit_code()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `auth status --help`.
pub fn auth_status_help() -> String {
    format!(
        "Exit codes: {}",
        code_list(&[
            (Outcome::Connected, "usable session"),
            (Outcome::NotAuthenticated, "not logged in"),
            (Outcome::SessionExpired, "session expired"),
            (Outcome::CredentialsUnreadable, "credentials unreadable"),
            (Outcome::CredentialsInvalid, "credentials invalid"),
        ])
    )
}

/// `auth login --help`.
pub fn login_help() -> String {
    format!(
        "Exit codes: 0 logged in (or already), {}, 1 other failures, 2 bad usage.\n\n\
         Examples:\n  \
         spec-kitty auth login --username alice\n  \
         spec-kitty auth login --server https://sync.example.com --username alice\n  \
         printf '%s\\n' \"$PASSWORD\" | spec-kitty auth login --username alice --password-stdin",
        code_list(&[
            (Outcome::AuthenticationFailed, "wrong username or password"),
            (Outcome::Unreachable, "unreachable"),
            (Outcome::CertificateUntrusted, "certificate"),
            (Outcome::UnexpectedStatus, "other HTTP status"),
            (Outcome::CredentialsUnreadable, "credentials unreadable"),
            (
                Outcome::CredentialsInvalid,
                "credentials invalid (use --force)"
            ),
            (Outcome::Throttled, "too many failed log-ins"),
        ])
    )
}

/// How a request made with the user's session can fail, in the words of
/// `sync now --help` and `board --help`.
const SERVER_OUTCOMES: [(Outcome, &str); 6] = [
    (Outcome::NotAuthenticated, "not logged in"),
    (Outcome::SessionExpired, "session expired"),
    (Outcome::AuthenticationFailed, "authentication failed"),
    (Outcome::PermissionDenied, "permission denied"),
    (Outcome::Unreachable, "unreachable"),
    (Outcome::CertificateUntrusted, "certificate"),
];

/// `sync now --help`.
pub fn sync_now_help() -> String {
    format!(
        "Exits non-zero when any event failed or the drain stopped early ({}, 1 some events failed), unless --no-strict.",
        code_list(
            &[
                SERVER_OUTCOMES.as_slice(),
                &[(Outcome::UnexpectedStatus, "server error")]
            ]
            .concat()
        )
    )
}

/// `board --help`: the exit codes, as for `sync status --check`, and
/// examples.
pub fn board_help() -> String {
    format!(
        "Exit codes: 0 board shown, {}, 1 the project is not on the server for your team (or was never published), 2 bad arguments.\n\n\
         Examples:\n  \
         spec-kitty board                 the board of the project you are in\n  \
         spec-kitty board --json | jq .counts\n  \
         spec-kitty board --project 550e8400-e29b-41d4-a716-446655440000\n\n\
         Colour is used only when stdout is a terminal and NO_COLOR is not set.",
        code_list(
            &[
                SERVER_OUTCOMES.as_slice(),
                &[(Outcome::UnexpectedStatus, "other HTTP status")]
            ]
            .concat()
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_json_values() {
        for outcome in Outcome::ALL {
            let json = serde_json::to_value(outcome).expect("serializes");
            assert_eq!(json, outcome.name());
        }
    }

    #[test]
    fn server_outcomes_are_listed_alike_in_each_help() {
        let listed = "3 not logged in, 4 session expired, 5 authentication failed, 6 permission denied, 7 unreachable, 8 certificate, 9";
        assert!(
            sync_now_help().contains(&format!("{listed} server error, 1 some")),
            "{}",
            sync_now_help()
        );
        assert!(
            board_help().contains(&format!("{listed} other HTTP status, 1 the project")),
            "{}",
            board_help()
        );
    }

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u8> = Outcome::ALL.iter().map(|o| o.exit_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Outcome::ALL.len());
    }
}
