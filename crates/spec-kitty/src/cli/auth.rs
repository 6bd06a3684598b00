//! `spec-kitty auth login|logout|status|token`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use spec_kitty_protocol::{LoginRequest, TokenResponse};
use time::OffsetDateTime;

use super::output::{CliError, CliResult};
use crate::home::config::{self, Config};
use crate::home::paths::{self, Home};
use crate::net::http::{Body, Http};
use crate::outcome::{self, Outcome};
use crate::session as auth;
use crate::session::credentials::{
    self, Credentials, CredentialsError, CredentialsLock, LOCK_WAIT, Stored,
};
use crate::session::env_token;
use spec_kitty_protocol::paths::LOGIN;

mod status;

use status::status;

/// Log-in and refresh requests get this long.
const AUTH_TIMEOUT: Duration = Duration::from_secs(15);

/// Telling the server about a log-out gets this long: the local session is
/// gone either way, so a slow or absent server must not hold the user up.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Log in to the sync server and store the session in ~/.spec-kitty/credentials
    #[command(after_help = outcome::login_help())]
    Login {
        /// Username (asked for on the terminal when missing)
        #[arg(long)]
        username: Option<String>,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        /// Server URL (default: [sync] server_url from ~/.spec-kitty/config.toml)
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Log in again even when a session exists (a corrupt credentials
        /// file is kept as credentials.corrupt-YYYYMMDDTHHMMSSZ, in UTC)
        #[arg(long)]
        force: bool,
        /// Log in from a browser with a one-time code instead of a password
        /// (opens BROWSER, or the desktop's browser, when there is one)
        #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
        web: bool,
    },
    /// Remove the stored session and ask the server to revoke its refresh token
    #[command(
        after_help = "The local session is removed even when the server cannot be reached\n(offline, or a server without the revoke endpoint); the output then says so.\n\nExample:\n  spec-kitty auth logout"
    )]
    Logout,
    /// Show the stored session, without network; exit 0 only when it is usable
    #[command(after_help = format!("{}\n\nExamples:\n  spec-kitty auth status\n  spec-kitty auth status --json", outcome::auth_status_help()))]
    Status {
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Print a valid access token (refreshed if needed) and nothing else
    #[command(
        after_help = "Example:\n  curl -H \"Authorization: Bearer $(spec-kitty auth token)\" https://sync.example.com/api/v1/projects/"
    )]
    Token,
}

pub fn run(home: &Home, command: AuthCommand) -> CliResult {
    // With a token in the environment the credentials file belongs to
    // someone else: logging in or out would write or delete it.
    if env_token::is_set() && matches!(command, AuthCommand::Login { .. } | AuthCommand::Logout) {
        return Err(CliError::general(format!(
            "{} is set, so the credentials file is not used; unset it to log in or out",
            env_token::TOKEN_VAR
        )));
    }
    match command {
        AuthCommand::Login {
            username,
            password_stdin,
            server,
            force,
            web,
        } => login(home, username, password_stdin, server, force, web),
        AuthCommand::Logout => logout(home),
        AuthCommand::Status { json } => status(home, json),
        AuthCommand::Token => token(home),
    }
}

fn read_line(prompt: Option<&str>) -> Result<String, CliError> {
    read_line_from(&mut std::io::stdin().lock(), &mut std::io::stderr(), prompt)
}

/// Reads one line after `prompt`. At end of input (Ctrl-D at a prompt)
/// the cursor still sits after the prompt, so a newline goes out first and
/// the error that follows starts a line of its own.
fn read_line_from(
    input: &mut impl BufRead,
    prompts: &mut impl Write,
    prompt: Option<&str>,
) -> Result<String, CliError> {
    if let Some(prompt) = prompt {
        let _ = write!(prompts, "{prompt}");
        let _ = prompts.flush();
    }
    let mut line = String::new();
    let read = input
        .read_line(&mut line)
        .map_err(|e| CliError::general(format!("cannot read standard input: {e}")))?;
    if read == 0 && prompt.is_some() {
        let _ = writeln!(prompts);
        return Err(CliError::general("no input (end of file at the prompt)"));
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The server to log in to: `--server`, else the configured one.
fn login_server(config: &Config, server: Option<&str>) -> Result<String, CliError> {
    match server {
        Some(url) => config::normalize_server_url(url).map_err(|e| CliError::general(e.to_string())),
        None => config.server_url().ok_or_else(|| {
            CliError::general(format!(
                "no sync server is configured. Set one with `spec-kitty sync server {}`, or pass --server URL",
                config::EXAMPLE_URL
            ))
        }),
    }
}

/// What to do about the session already stored.
enum Existing {
    /// A usable session, and no --force: nothing to do.
    Keep,
    /// Log in; the previous session's extra fields are carried over.
    Replace(Option<Box<Credentials>>),
}

fn existing_session(
    home: &Home,
    username: Option<&str>,
    force: bool,
) -> Result<Existing, CliError> {
    match credentials::load(home) {
        Ok(Stored::Absent) => Ok(Existing::Replace(None)),
        Ok(Stored::Present(creds)) => {
            let usable = !creds.refresh_expired(OffsetDateTime::now_utc());
            if usable && !force {
                if let Some(wanted) = username
                    && wanted != creds.username
                {
                    return Err(CliError::general(format!(
                        "already logged in as {} on {}; pass --force to log in as {wanted}",
                        creds.username, creds.server_url
                    )));
                }
                println!(
                    "Already logged in as {} on {}. Use --force to log in again.",
                    creds.username, creds.server_url
                );
                return Ok(Existing::Keep);
            }
            Ok(Existing::Replace(Some(Box::new(creds))))
        }
        Err(CredentialsError::Invalid { path, reason }) => {
            if !force {
                return Err(CredentialsError::Invalid { path, reason }.into());
            }
            Ok(Existing::Replace(None))
        }
        Err(e) => Err(e.into()),
    }
}

/// The username and password: from the flags, stdin or the terminal.
fn ask_user(username: Option<String>, password_stdin: bool) -> Result<(String, String), CliError> {
    let interactive = std::io::stdin().is_terminal();
    let username = match username {
        Some(name) => name,
        None if interactive && !password_stdin => read_line(Some("Username: "))?,
        None => {
            return Err(CliError::general(
                "no terminal to ask for a username: pass --username USER",
            ));
        }
    };
    if username.trim().is_empty() {
        return Err(CliError::general("the username is empty"));
    }
    let password = if password_stdin {
        read_line(None)?
    } else if interactive {
        rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::general(format!("cannot read the password: {e}")))?
    } else {
        return Err(CliError::general(
            "no terminal to ask for a password: pipe it in with --password-stdin",
        ));
    };
    if password.is_empty() {
        return Err(CliError::general("the password is empty"));
    }
    Ok((username, password))
}

/// Sends the log-in request; the tokens, or why there are none.
fn request_tokens(
    server_url: &str,
    username: &str,
    password: String,
) -> Result<TokenResponse, CliError> {
    let http = Http::new(AUTH_TIMEOUT);
    let body = serde_json::to_vec(&LoginRequest {
        username: username.to_string(),
        password,
    })
    .map_err(|e| CliError::general(format!("cannot encode the log-in request: {e}")))?;
    let url = format!("{server_url}{LOGIN}");
    let reply = http.post(&url, None, Body::Json(&body)).map_err(|e| {
        let outcome = Outcome::from(&e);
        CliError::new(
            outcome.exit_code(),
            format!("{}: log-in failed: {e}", outcome.headline()),
        )
    })?;
    let tokens = match reply.status {
        200 => serde_json::from_slice(&reply.body).map_err(|e| {
            CliError::new(
                Outcome::UnexpectedStatus.exit_code(),
                format!("the server's log-in answer is not a token response: {e}"),
            )
        })?,
        401 => {
            return Err(CliError::new(
                Outcome::AuthenticationFailed.exit_code(),
                format!("wrong username or password for {server_url}"),
            ));
        }
        429 => {
            let wait = reply
                .retry_after
                .map_or_else(|| "a while".to_string(), |s| format!("{s} seconds"));
            return Err(CliError::new(
                Outcome::Throttled.exit_code(),
                format!(
                    "too many failed log-in attempts; the server asks to wait {wait} before trying again"
                ),
            ));
        }
        status => {
            return Err(CliError::new(
                Outcome::UnexpectedStatus.exit_code(),
                format!(
                    "log-in failed: the server answered HTTP {status}: {}",
                    reply.error_text()
                ),
            ));
        }
    };

    Ok(tokens)
}

/// The UTC time for a backup's name, readable and safe in a file name
/// (ISO 8601 basic format, no colons): `20261129T111815Z`.
fn backup_stamp() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Writes the new session under the lock, moving a corrupt file aside.
fn store_session(home: &Home, creds: &Credentials) -> Result<(), CliError> {
    let lock = CredentialsLock::acquire(home, LOCK_WAIT).map_err(CliError::from)?;
    if let Err(CredentialsError::Invalid { .. }) = credentials::load(home) {
        let backup = home
            .credentials()
            .with_file_name(format!("credentials.corrupt-{}", backup_stamp()));
        crate::home::atomic::move_aside_private(&home.credentials(), &backup).map_err(|e| {
            CliError::general(format!("cannot move the corrupt credentials aside: {e}"))
        })?;
        eprintln!(
            "Kept the corrupt credentials file as {}",
            paths::display(&backup)
        );
    }
    credentials::save(home, creds, &lock).map_err(CliError::from)?;
    Ok(())
}

fn login(
    home: &Home,
    username: Option<String>,
    password_stdin: bool,
    server: Option<String>,
    force: bool,
    web: bool,
) -> CliResult {
    let mut config = Config::load(home).map_err(CliError::from)?;
    let server_url = login_server(&config, server.as_deref())?;
    let previous = match existing_session(home, username.as_deref(), force)? {
        Existing::Keep => return Ok(0),
        Existing::Replace(previous) => previous,
    };
    let (username, tokens) = if web {
        let tokens = super::web_login::device_login(&server_url)?;
        let username = super::web_login::username_of(&tokens.access).ok_or_else(|| {
            CliError::new(
                Outcome::UnexpectedStatus.exit_code(),
                "the server's access token names no user",
            )
        })?;
        (username, tokens)
    } else {
        let (username, password) = ask_user(username, password_stdin)?;
        let tokens = request_tokens(&server_url, &username, password)?;
        (username, tokens)
    };
    let refresh = tokens.refresh.ok_or_else(|| {
        CliError::new(
            Outcome::UnexpectedStatus.exit_code(),
            "the server's log-in answer has no refresh token",
        )
    })?;
    let mut creds = Credentials::new(
        &server_url,
        &username,
        tokens.team_slug.clone(),
        tokens.access,
        refresh,
        tokens.access_lifetime,
        tokens.refresh_lifetime,
    );
    if let Some(previous) = &previous {
        creds.keep_extras_from(previous);
    }
    store_session(home, &creds)?;
    if config.server_url().is_none() {
        let saved = config
            .set_server_url(&server_url)
            .and_then(|_| config.save(home));
        if let Err(e) = saved {
            eprintln!("warning: logged in, but could not record the server in config.toml: {e}");
        }
    }
    let team = tokens
        .team_slug
        .map(|t| format!(" (team {t})"))
        .unwrap_or_default();
    println!("Logged in to {server_url} as {username}{team}.");
    Ok(0)
}

fn logout(home: &Home) -> CliResult {
    let lock = CredentialsLock::acquire(home, LOCK_WAIT).map_err(CliError::from)?;
    let creds = match credentials::load(home) {
        Ok(Stored::Present(creds)) => Some(creds),
        _ => None,
    };
    let removed = credentials::remove(home, &lock).map_err(CliError::from)?;
    drop(lock);
    if !removed {
        println!("Not logged in; nothing to remove.");
        return Ok(0);
    }
    let Some(creds) = creds else {
        println!(
            "Removed the unusable credentials file {}.",
            paths::display(&home.credentials())
        );
        return Ok(0);
    };
    let who = format!("{} on {}", creds.username, creds.server_url);
    match revoke(&creds) {
        Ok(()) => println!("Logged out ({who}); the server ended the session."),
        Err(reason) => {
            println!("Logged out ({who}) on this machine.");
            eprintln!(
                "warning: the server could not be told ({reason}); its refresh token stays valid there until it expires."
            );
        }
    }
    Ok(0)
}

/// Asks the server to revoke the session's refresh token; the reason it
/// could not, as one line without any token in it.
fn revoke(creds: &Credentials) -> Result<(), String> {
    let url = format!("{}{}", creds.server_url, spec_kitty_protocol::paths::REVOKE);
    let body = serde_json::to_vec(&json!({"refresh": creds.refresh}))
        .map_err(|e| format!("cannot encode the request: {e}"))?;
    let reply = Http::new(REVOKE_TIMEOUT)
        .post(&url, None, Body::Json(&body))
        .map_err(|e| e.to_string())?;
    match reply.status {
        200..=299 => Ok(()),
        404 => Err("this server has no revoke endpoint".into()),
        status => Err(format!("HTTP {status}: {}", reply.error_text())),
    }
}

fn token(home: &Home) -> CliResult {
    let http = Http::new(AUTH_TIMEOUT);
    let session =
        auth::access_token(home, &http, AUTH_TIMEOUT, LOCK_WAIT).map_err(CliError::from)?;
    println!("{}", session.access);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_input_at_a_prompt_ends_the_prompt_line_first() {
        let mut prompts = Vec::new();
        let result = read_line_from(&mut &b""[..], &mut prompts, Some("Username: "));
        let error = result.expect_err("nothing was typed");
        assert_eq!(prompts, b"Username: \n", "the error gets a line of its own");
        assert!(error.message.contains("end of file"), "{}", error.message);

        let mut prompts = Vec::new();
        let name = read_line_from(&mut &b"alice\n"[..], &mut prompts, Some("Username: "));
        assert_eq!(name.ok().as_deref(), Some("alice"));
        assert_eq!(prompts, b"Username: ");
    }
}
