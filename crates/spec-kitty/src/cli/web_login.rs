//! `spec-kitty auth login --web`: log in from a browser with a device code
//! (RFC 8628). The code and the URL are printed (stderr, so stdout stays
//! for results), a browser is opened when there is one (`BROWSER` first;
//! failing to open one is never an error), and the server is polled at the
//! interval it gives, slower after each `slow_down`. Nothing is written
//! until the server hands out tokens; they are then saved exactly as a
//! password log-in saves them (atomically, under the lock), so Ctrl-C at
//! any point leaves either no session or a whole one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use spec_kitty_protocol::TokenResponse;
use spec_kitty_protocol::paths::{DEVICE_CODE, DEVICE_TOKEN};

use super::output::CliError;
use crate::net::http::{Body, Http};
use crate::outcome::Outcome;

/// Each request of the flow gets this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The polling interval when the server names none (RFC 8628: 5 s).
const DEFAULT_INTERVAL: u64 = 5;

/// The most a `slow_down` may stretch the interval to.
const MAX_INTERVAL: u64 = 60;

#[derive(Deserialize)]
struct DeviceCode {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    interval: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

fn network(e: crate::net::http::HttpError) -> CliError {
    let outcome = Outcome::from(&e);
    CliError::new(
        outcome.exit_code(),
        format!("{}: browser log-in failed: {e}", outcome.headline()),
    )
}

fn unexpected(text: String) -> CliError {
    CliError::new(Outcome::UnexpectedStatus.exit_code(), text)
}

/// Runs the flow against `server_url`; the tokens once approved.
pub fn device_login(server_url: &str) -> Result<TokenResponse, CliError> {
    let http = Http::new(REQUEST_TIMEOUT);
    let code = request_code(&http, server_url)?;
    show_code(&code);
    poll_for_tokens(&http, server_url, &code)
}

/// Asks the server for a device code, naming this client and machine so
/// the approval page can tell the user what asks for access.
fn request_code(http: &Http, server_url: &str) -> Result<DeviceCode, CliError> {
    let client_name = format!("spec-kitty {} on {}", env!("CARGO_PKG_VERSION"), hostname());
    let body = json!({"client_name": client_name}).to_string();
    let reply = http
        .post(
            &format!("{server_url}{DEVICE_CODE}"),
            None,
            Body::Json(body.as_bytes()),
        )
        .map_err(network)?;
    match reply.status {
        200 => {}
        404 | 405 => {
            return Err(unexpected(format!(
                "{server_url} does not offer browser log-in (HTTP {}); log in with a password: spec-kitty auth login",
                reply.status
            )));
        }
        status => {
            return Err(unexpected(format!(
                "browser log-in failed: the server answered HTTP {status}: {}",
                reply.error_text()
            )));
        }
    }
    serde_json::from_slice(&reply.body).map_err(|e| {
        unexpected(format!(
            "the server's device code answer is unreadable: {e}"
        ))
    })
}

/// Tells the user where to approve, opening the browser there when one can
/// be opened.
fn show_code(code: &DeviceCode) {
    let open_url = code
        .verification_uri_complete
        .clone()
        .unwrap_or_else(|| code.verification_uri.clone());
    eprintln!(
        "To log in, open {} and enter the code {}",
        code.verification_uri, code.user_code
    );
    if open_browser(&open_url) {
        eprintln!("(A browser was opened at {open_url}.)");
    }
    eprintln!(
        "Waiting for approval in the browser... (Ctrl-C to stop; nothing is saved until then)"
    );
}

/// Polls at the server's pace until the code is approved, denied or
/// expired; `slow_down` stretches the interval, as the device flow asks.
fn poll_for_tokens(
    http: &Http,
    server_url: &str,
    code: &DeviceCode,
) -> Result<TokenResponse, CliError> {
    let deadline = Instant::now() + Duration::from_secs(code.expires_in.unwrap_or(600).min(3600));
    let mut interval = code
        .interval
        .unwrap_or(DEFAULT_INTERVAL)
        .clamp(1, MAX_INTERVAL);
    let poll_body = json!({"device_code": code.device_code}).to_string();
    loop {
        std::thread::sleep(Duration::from_secs(interval));
        if Instant::now() >= deadline {
            return Err(expired());
        }
        let reply = http
            .post(
                &format!("{server_url}{DEVICE_TOKEN}"),
                None,
                Body::Json(poll_body.as_bytes()),
            )
            .map_err(network)?;
        if reply.status == 200 {
            return serde_json::from_slice(&reply.body).map_err(|e| {
                unexpected(format!(
                    "the server's log-in answer is not a token response: {e}"
                ))
            });
        }
        let error = serde_json::from_slice::<OAuthError>(&reply.body)
            .map(|e| e.error)
            .unwrap_or_default();
        match (reply.status, error.as_str()) {
            (400, "authorization_pending") => {}
            (400, "slow_down") => interval = (interval + 5).min(MAX_INTERVAL),
            (400, "access_denied") => {
                return Err(CliError::new(
                    Outcome::AuthenticationFailed.exit_code(),
                    "the log-in was denied in the browser; nothing was saved",
                ));
            }
            (400, "expired_token") => return Err(expired()),
            (status, _) => {
                return Err(unexpected(format!(
                    "browser log-in failed: the server answered HTTP {status}: {}",
                    reply.error_text()
                )));
            }
        }
    }
}

fn expired() -> CliError {
    CliError::new(
        Outcome::SessionExpired.exit_code(),
        "the code expired before it was approved; run `spec-kitty auth login --web` again",
    )
}

/// This machine's name, for the page that asks the user to approve.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().take(60).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".into())
}

/// Opens `url` in a browser, if there is one: the first command of
/// `BROWSER` (a `:`-separated list; `%s` stands for the URL, else the URL
/// is the last argument), or the desktop's opener when a display is
/// there. Never waits for it and never fails: the URL is printed anyway.
fn open_browser(url: &str) -> bool {
    let command = match std::env::var("BROWSER") {
        Ok(list) if !list.trim().is_empty() => list
            .split(':')
            .map(str::trim)
            .find(|c| !c.is_empty())
            .map(str::to_string),
        _ => desktop_opener().map(str::to_string),
    };
    let Some(command) = command else {
        return false;
    };
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let mut args: Vec<String> = words.map(str::to_string).collect();
    if args.iter().any(|a| a.contains("%s")) {
        for arg in &mut args {
            *arg = arg.replace("%s", url);
        }
    } else {
        args.push(url.to_string());
    }
    let spawned = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            // Reaped in the background, so no zombie outlives a long wait.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

/// `open` on macOS; `xdg-open` where a graphical session runs.
fn desktop_opener() -> Option<&'static str> {
    if cfg!(target_os = "macos") {
        return Some("open");
    }
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    display.then_some("xdg-open")
}

/// The username in an access token's claims (`sub`), read without
/// verifying it: the token came straight from the server over the
/// connection the user chose, and the name is only for display and the
/// credentials file.
pub fn username_of(access: &str) -> Option<String> {
    let payload = access.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_string)
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        })
    };
    let digits = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in digits {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_username_comes_from_the_token_claims() {
        // {"sub":"alice","x":1} in base64url, in a token's middle part.
        let token = "e30.eyJzdWIiOiJhbGljZSIsIngiOjF9.sig";
        assert_eq!(username_of(token).as_deref(), Some("alice"));
        assert_eq!(username_of("not-a-jwt"), None);
        assert_eq!(username_of("a.!!!.c"), None);
    }
}
