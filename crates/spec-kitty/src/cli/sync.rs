//! `spec-kitty sync server|status`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use time::OffsetDateTime;

use super::output::{CliError, CliResult, print_json, validity};
use super::python_queue::Pending;
use crate::home::config::{self, Config};
use crate::home::paths::{self, Home};
use crate::net::probe;
use crate::outcome::{self, Outcome};
use crate::queue::{Queue, Stats};
use crate::session::credentials::{self, CredentialsError, Stored};
use crate::session::env_token::{self, EnvToken};

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Show the sync server URL, or set it ([sync] server_url in ~/.spec-kitty/config.toml)
    #[command(
        after_help = "Examples:\n  spec-kitty sync server                              show it\n  spec-kitty sync server https://sync.example.com\n  spec-kitty sync server http://127.0.0.1:8000        http only to this machine"
    )]
    Server {
        /// The server's root URL: https, or http to this machine only; a
        /// trailing /api/v1 is dropped, other paths and user:password@ are refused
        url: Option<String>,
    },
    /// Show sync state from local files; with --check, probe the server too
    #[command(after_help = format!("{}\n\nExamples:\n  spec-kitty sync status\n  spec-kitty sync status --check\n  spec-kitty sync status --check --json --timeout 2", outcome::check_help()))]
    Status {
        /// Probe the server with your real token (refreshing it if needed)
        #[arg(long)]
        check: bool,
        /// Print JSON on stdout and nothing else
        #[arg(long)]
        json: bool,
        /// Bound on the whole check, in seconds (only with --check: the
        /// local status makes no request to bound)
        #[arg(long, default_value = "5", value_name = "SECS", requires = "check")]
        timeout: f64,
    },
    /// Upload queued events now, in gzip batches
    #[command(after_help = format!("{}\n\nCtrl-C stops after the batch in flight (exit 130) and says what is still queued.\n\nExamples:\n  spec-kitty sync now\n  spec-kitty sync now --json | jq .failures\n  spec-kitty sync now --retry-parked --report sync-report.json", outcome::sync_now_help()))]
    Now {
        /// Write every failure to this JSON file
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Print one JSON object on stdout and nothing else
        #[arg(long)]
        json: bool,
        /// Exit 0 even when events failed
        #[arg(long)]
        no_strict: bool,
        /// Put parked events back in line first (after fixing what made
        /// the server refuse them)
        #[arg(long)]
        retry_parked: bool,
    },
    /// Check every queued event against the contract, field by field
    #[command(
        after_help = "Examples:\n  spec-kitty sync diagnose\n  spec-kitty sync diagnose --json"
    )]
    Diagnose {
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Queue events from a JSON Lines file (- for stdin), or move the Python client's queue here
    #[command(
        after_help = "Examples:\n  spec-kitty sync import events.jsonl\n  cat events.jsonl | spec-kitty sync import -\n  spec-kitty sync import --python-queue"
    )]
    Import {
        /// JSON Lines file, one event per line; - reads standard input
        #[arg(
            required_unless_present = "python_queue",
            conflicts_with = "python_queue"
        )]
        file: Option<PathBuf>,
        /// Move the events waiting in the Python client's queues here:
        /// ~/.spec-kitty/queue.db (logged out) and every
        /// ~/.spec-kitty/queues/queue-*.db (one per log-in)
        #[arg(long)]
        python_queue: bool,
    },
    /// Drop queued events for good
    #[command(
        after_help = "Ids that are not queued are named first, and then nothing is discarded.\n\nExamples:\n  spec-kitty sync discard 01HV5Z3K8Y6Q2W9E4R7T1N0M3P\n  spec-kitty sync discard --all-rejected --yes"
    )]
    Discard {
        /// Event ids to drop
        #[arg(
            required_unless_present = "all_rejected",
            conflicts_with = "all_rejected"
        )]
        event_ids: Vec<String>,
        /// Drop every event the server rejected or that was parked
        #[arg(long)]
        all_rejected: bool,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(home: &Home, command: SyncCommand) -> CliResult {
    match command {
        SyncCommand::Server { url } => server(home, url),
        SyncCommand::Status {
            check,
            json,
            timeout,
        } => {
            if check {
                if !(timeout.is_finite() && timeout > 0.0) {
                    return Err(CliError::new(
                        2,
                        "--timeout must be a positive number of seconds",
                    ));
                }
                status_check(home, json, Duration::from_secs_f64(timeout))
            } else {
                status_local(home, json)
            }
        }
        SyncCommand::Now {
            report,
            json,
            no_strict,
            retry_parked,
        } => super::sync_now::run(home, report, json, !no_strict, retry_parked),
        SyncCommand::Diagnose { json } => super::queue_tools::diagnose(home, json),
        SyncCommand::Import { file, python_queue } => match file {
            Some(file) if !python_queue => super::queue_tools::import_file(home, &file),
            _ => super::python_queue::import(home),
        },
        SyncCommand::Discard {
            event_ids,
            all_rejected,
            yes,
        } => super::queue_tools::discard(home, event_ids, all_rejected, yes),
    }
}

fn server(home: &Home, url: Option<String>) -> CliResult {
    let mut config = Config::load(home).map_err(CliError::from)?;
    match url {
        None => match config.server_url() {
            Some(url) => {
                println!("{url}");
                Ok(0)
            }
            None => Err(CliError::general(format!(
                "no sync server is configured. Set one with: spec-kitty sync server {}",
                config::EXAMPLE_URL
            ))),
        },
        Some(url) => {
            let stored = config
                .set_server_url(&url)
                .map_err(|e| CliError::new(2, e.to_string()))?;
            config.save(home).map_err(CliError::from)?;
            println!("Sync server set to {stored}");
            if let Ok(Stored::Present(creds)) = credentials::load(home)
                && creds.server_url != stored
            {
                eprintln!(
                    "note: you are logged in to {}; run `spec-kitty auth login --force` to log in to {stored}",
                    creds.server_url
                );
            }
            Ok(0)
        }
    }
}

fn status_local(home: &Home, as_json: bool) -> CliResult {
    let now = OffsetDateTime::now_utc();
    let (server_url, max_queue, config_error) = match Config::load(home) {
        Ok(config) => (config.server_url(), config.max_queue_size(), None),
        Err(e) => (None, config::DEFAULT_MAX_QUEUE_SIZE, Some(e.to_string())),
    };
    // With SPEC_KITTY_TOKEN set the credentials file is not read: the
    // status shows the token's source instead, as `auth status` does.
    let auth = if env_token::is_set() {
        LocalAuth::Env(env_token::from_env(home).map_err(|e| e.to_string()))
    } else {
        LocalAuth::File(Box::new(credentials::load(home)))
    };
    let server_url = match &auth {
        LocalAuth::Env(Ok(Some(env))) => Some(env.server_url.clone()),
        _ => server_url,
    };
    let queue: Result<Stats, String> = match Queue::open_existing(home) {
        Ok(Some(queue)) => queue.stats().map_err(|e| e.to_string()),
        Ok(None) => Ok(Stats::default()),
        Err(e) => Err(e.to_string()),
    };
    let python = Pending::read(home);
    if as_json {
        let auth = match &auth {
            LocalAuth::File(creds) => auth_json(creds, now),
            LocalAuth::Env(env) => env_auth_json(env),
        };
        print_json(&json!({
            "server_url": server_url,
            "config_path": home.config(),
            "config_error": config_error,
            "credentials_path": home.credentials(),
            "auth": auth,
            "queue_path": home.queue(),
            "queue": match &queue {
                Ok(stats) => json!(stats),
                Err(e) => json!({"error": e}),
            },
            "max_queue_size": max_queue,
            "python_queue": python.to_json(),
        }))?;
        return Ok(0);
    }
    match (&server_url, &config_error) {
        (_, Some(e)) => println!("Sync server:  unknown ({e})"),
        (Some(url), None) => println!("Sync server:  {url}"),
        (None, None) => println!(
            "Sync server:  not configured (set one with `spec-kitty sync server {}`)",
            config::EXAMPLE_URL
        ),
    }
    println!("Config:       {}", paths::display(&home.config()));
    match &auth {
        LocalAuth::File(creds) => print_auth(creds, server_url.as_deref(), now),
        LocalAuth::Env(env) => print_env_auth(env),
    }
    print_queue(&queue, max_queue, home);
    python.print();
    println!("Run `spec-kitty sync status --check` to test the connection.");
    Ok(0)
}

fn status_check(home: &Home, as_json: bool, timeout: Duration) -> CliResult {
    let report = probe::check(home, timeout);
    let code = report.outcome.exit_code();
    let python = Pending::read(home);
    if as_json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| CliError::general(format!("cannot render JSON: {e}")))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("python_queue".into(), python.to_json());
        }
        print_json(&value)?;
        return Ok(code);
    }
    println!("{}: {}", report.headline, report.next_step);
    if let Some(server) = &report.server {
        println!("  Server:  {server}");
    }
    if let Some(source) = report.token_source {
        println!("  Token:   from {source}");
    }
    if let Some(user) = &report.user {
        let team = report
            .team
            .as_deref()
            .map(|t| format!(" (team {t})"))
            .unwrap_or_default();
        println!("  User:    {user}{team}");
    }
    if let Some(ms) = report.latency_ms
        && report.outcome != Outcome::Unreachable
    {
        println!("  Latency: {ms} ms");
    }
    if report.refreshed {
        println!("  The access token was refreshed.");
    }
    if let Some(detail) = &report.detail
        && report.outcome != Outcome::Connected
    {
        println!("  Detail:  {detail}");
    }
    if let Some(line) = python.check_line() {
        println!("{line}");
    }
    Ok(code)
}

/// Where `sync status` takes the session from.
enum LocalAuth {
    /// The credentials file (`auth login`).
    File(Box<Result<Stored, CredentialsError>>),
    /// `SPEC_KITTY_TOKEN`, with its server (the file is not read).
    Env(Result<Option<EnvToken>, String>),
}

/// The `auth` object of `sync status --json` with `SPEC_KITTY_TOKEN`: its
/// source and server, never the token.
fn env_auth_json(env: &Result<Option<EnvToken>, String>) -> serde_json::Value {
    match env {
        Ok(Some(env)) => json!({
            "state": "token",
            "token_source": env_token::TOKEN_VAR,
            "server": env.server_url,
            "server_source": env.server_source,
        }),
        Ok(None) => json!({"state": "not_authenticated"}),
        Err(e) => json!({
            "state": "token_unusable",
            "token_source": env_token::TOKEN_VAR,
            "error": e,
        }),
    }
}

/// The `Auth:` lines of `sync status` with `SPEC_KITTY_TOKEN`.
fn print_env_auth(env: &Result<Option<EnvToken>, String>) {
    match env {
        Ok(Some(env)) => {
            println!(
                "Auth:         the token in {} (server from {})",
                env_token::TOKEN_VAR,
                env.server_source
            );
            println!(
                "  Credentials: not used while {} is set",
                env_token::TOKEN_VAR
            );
        }
        Ok(None) => println!("Auth:         not logged in (run `spec-kitty auth login`)"),
        Err(e) => println!("Auth:         {e}"),
    }
}

/// The `auth` object of `sync status --json`.
fn auth_json(creds: &Result<Stored, CredentialsError>, now: OffsetDateTime) -> serde_json::Value {
    match &creds {
        Ok(Stored::Absent) => json!({"state": "not_authenticated"}),
        Ok(Stored::Present(c)) => json!({
            "state": if c.refresh_expired(now) { "session_expired" } else { "logged_in" },
            "user": c.username,
            "team": c.team_slug,
            "server": c.server_url,
            "access_token_valid": !c.access_expired(now),
            "access_expires_at": c.access_expires_at.map(spec_kitty_protocol::timestamp::format),
            "refresh_token_valid": !c.refresh_expired(now),
            "refresh_expires_at": c.refresh_expires_at.map(spec_kitty_protocol::timestamp::format),
        }),
        Err(e @ CredentialsError::Invalid { .. }) => {
            json!({"state": "credentials_invalid", "error": e.to_string()})
        }
        Err(e) => json!({"state": "credentials_unreadable", "error": e.to_string()}),
    }
}

/// The `Auth:` lines of `sync status`.
fn print_auth(
    creds: &Result<Stored, CredentialsError>,
    server_url: Option<&str>,
    now: OffsetDateTime,
) {
    match &creds {
        Ok(Stored::Absent) => println!("Auth:         not logged in (run `spec-kitty auth login`)"),
        Ok(Stored::Present(c)) => {
            let team = c
                .team_slug
                .as_deref()
                .map(|t| format!(", team {t}"))
                .unwrap_or_default();
            println!("Auth:         {} on {}{team}", c.username, c.server_url);
            println!("  Access:     {}", validity(c.access_expires_at, now));
            println!("  Refresh:    {}", validity(c.refresh_expires_at, now));
            if c.refresh_expired(now) {
                println!("  Session expired: run `spec-kitty auth login` to re-authenticate.");
            }
            if let Some(url) = &server_url
                && url != &c.server_url
            {
                println!(
                    "  Note: sync uses {} (the server that issued your tokens), not {url}",
                    c.server_url
                );
            }
        }
        Err(e) => println!("Auth:         {e}"),
    }
}

fn print_queue(queue: &Result<Stats, String>, max_queue: u64, home: &Home) {
    let stats = match queue {
        Ok(stats) => stats,
        Err(e) => {
            println!("Queue:        {e}");
            return;
        }
    };
    println!(
        "Queue:        {} event(s) in {}",
        stats.depth,
        paths::display(&home.queue())
    );
    if stats.depth as u64 > max_queue {
        println!(
            "  WARNING: the queue holds more than max_queue_size ({max_queue}) events; nothing is dropped, but run `spec-kitty sync now` soon"
        );
    }
    if let Some(age) = stats.oldest_event_age_secs {
        println!(
            "  Oldest:     {} old",
            super::output::human_duration(Duration::from_secs(age.max(0) as u64))
        );
    }
    if stats.depth > 0 {
        println!(
            "  Retries:    0: {}, 1-3: {}, 4+: {}",
            stats.retries.none, stats.retries.few, stats.retries.many
        );
        let top: Vec<String> = stats
            .top_event_types
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!("  Top types:  {}", top.join(", "));
    }
    if stats.rejected > 0 {
        println!(
            "  Rejected:   {} (run `spec-kitty sync diagnose`)",
            stats.rejected
        );
    }
    if !stats.parked.is_empty() {
        println!(
            "  Parked:     {} (see `spec-kitty sync diagnose`; retry with `spec-kitty sync now --retry-parked`)",
            stats.parked.len()
        );
        for parked in &stats.parked {
            println!(
                "    {} ({}): {}",
                parked.event_id,
                parked.event_type,
                parked.reason.as_deref().unwrap_or("no reason recorded")
            );
        }
    }
    match &stats.last_sync_at {
        Some(at) => println!("  Last sync:  {}", when(at)),
        None => println!("  Last sync:  never"),
    }
}

/// "3h ago (2026-11-29 09:14:02 UTC)": the age first, then the moment to
/// the second; a stamp that does not parse is shown as stored.
fn when(stamp: &str) -> String {
    let Ok(at) = spec_kitty_protocol::timestamp::parse(stamp) else {
        return stamp.to_string();
    };
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    match at.to_offset(time::UtcOffset::UTC).format(format) {
        Ok(moment) => format!(
            "{} ({moment})",
            spec_kitty_protocol::timestamp::ago(stamp, now)
        ),
        Err(_) => stamp.to_string(),
    }
}
