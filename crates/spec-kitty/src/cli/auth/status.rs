//! `spec-kitty auth status`: what session the commands would use, in words
//! or JSON, without network.

use serde_json::json;
use time::OffsetDateTime;

use crate::cli::output::{CliError, CliResult, print_json, validity};
use crate::home::paths::{self, Home};
use crate::outcome::Outcome;
use crate::session::credentials::{self, Credentials, Stored};
use crate::session::env_token::{self, EnvToken};

/// `auth status` with `SPEC_KITTY_TOKEN` set: where the token and the
/// server come from, without network and without the token.
fn status_env(home: &Home, as_json: bool) -> CliResult {
    let env = match env_token::from_env(home) {
        Ok(Some(env)) => env,
        Ok(None) => return Ok(0),
        Err(e) => {
            let code = Outcome::NotAuthenticated.exit_code();
            if as_json {
                print_json(&json!({
                    "logged_in": false,
                    "outcome": Outcome::NotAuthenticated,
                    "token_source": env_token::TOKEN_VAR,
                    "error": e.to_string(),
                }))?;
            } else {
                println!("Not usable: {e}.");
            }
            return Ok(code);
        }
    };
    let EnvToken {
        server_url,
        server_source,
        ..
    } = env;
    if as_json {
        print_json(&json!({
            "logged_in": true,
            "outcome": "logged_in",
            "token_source": env_token::TOKEN_VAR,
            "server": server_url,
            "server_source": server_source,
        }))?;
    } else {
        println!(
            "Using the token in {} for {server_url}.",
            env_token::TOKEN_VAR
        );
        println!("  Server from:  {server_source}");
        println!(
            "  Credentials:  not used while {} is set",
            env_token::TOKEN_VAR
        );
    }
    Ok(0)
}

/// `auth status`: the stored session (or the token in the environment),
/// read without network.
pub(super) fn status(home: &Home, as_json: bool) -> CliResult {
    if env_token::is_set() {
        return status_env(home, as_json);
    }
    let path = home.credentials();
    let now = OffsetDateTime::now_utc();
    let creds = match credentials::load(home) {
        Ok(Stored::Present(creds)) => creds,
        Ok(Stored::Absent) => {
            let code = Outcome::NotAuthenticated.exit_code();
            if as_json {
                print_json(&json!({
                    "logged_in": false,
                    "outcome": Outcome::NotAuthenticated,
                    "credentials_path": path,
                }))?;
            } else {
                println!("Not logged in. Run `spec-kitty auth login` to connect.");
            }
            return Ok(code);
        }
        Err(e) => {
            let failure = CliError::from(e);
            if as_json {
                let outcome = if failure.code == Outcome::CredentialsInvalid.exit_code() {
                    Outcome::CredentialsInvalid
                } else {
                    Outcome::CredentialsUnreadable
                };
                print_json(&json!({
                    "logged_in": false,
                    "outcome": outcome,
                    "credentials_path": path,
                    "error": failure.message,
                }))?;
                return Ok(failure.code);
            }
            return Err(failure);
        }
    };
    let usable = !creds.refresh_expired(now);
    let outcome = if usable {
        Outcome::Connected
    } else {
        Outcome::SessionExpired
    };
    if as_json {
        status_json(&creds, &path, now, usable)?;
    } else {
        status_text(&creds, &path, now, usable);
    }
    Ok(outcome.exit_code())
}

/// `auth status --json` for a stored session.
fn status_json(
    creds: &Credentials,
    path: &std::path::Path,
    now: OffsetDateTime,
    usable: bool,
) -> Result<(), CliError> {
    let token = |at: Option<OffsetDateTime>, expired: bool| {
        json!({
            "valid": !expired,
            "expires_at": at.map(spec_kitty_protocol::timestamp::format),
            "expires_in_secs": at.map(|at| (at - now).whole_seconds()),
        })
    };
    print_json(&json!({
        "logged_in": usable,
        "outcome": if usable { "logged_in" } else { "session_expired" },
        "user": creds.username,
        "team": creds.team_slug,
        "server": creds.server_url,
        "token_source": "credentials file",
        "credentials_path": path,
        "access_token": token(creds.access_expires_at, creds.access_expired(now)),
        "refresh_token": token(creds.refresh_expires_at, creds.refresh_expired(now)),
    }))?;
    Ok(())
}

/// `auth status` for a stored session, in words. The verdict comes first,
/// on one line: an expired session must not open with "Logged in".
fn status_text(creds: &Credentials, path: &std::path::Path, now: OffsetDateTime, usable: bool) {
    let team = creds
        .team_slug
        .as_deref()
        .map(|t| format!(" (team {t})"))
        .unwrap_or_default();
    if usable {
        println!(
            "Logged in to {} as {}{team}.",
            creds.server_url, creds.username
        );
    } else {
        println!(
            "Session expired: run `spec-kitty auth login` to log in to {} as {}{team} again.",
            creds.server_url, creds.username
        );
    }
    let access_note = if creds.access_expired(now) && usable {
        " (refreshed automatically on next use)"
    } else {
        ""
    };
    println!(
        "  Access token:  {}{access_note}",
        validity(creds.access_expires_at, now)
    );
    let refresh_note = match creds.refresh_expires_at {
        Some(at) if !usable && at > now => format!(
            " (counted as expired: a token within {} s of its expiry could run out on the way to the server)",
            credentials::EXPIRY_MARGIN.whole_seconds()
        ),
        _ => String::new(),
    };
    println!(
        "  Refresh token: {}{refresh_note}",
        validity(creds.refresh_expires_at, now)
    );
    println!("  Credentials:   {}", paths::display(path));
}
