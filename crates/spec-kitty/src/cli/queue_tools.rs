//! `sync import`, `sync discard` and `sync diagnose`: getting events into
//! and out of the queue by hand, and explaining the ones that fail.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use serde_json::{Value, json};
use spec_kitty_protocol::validate_event;

use super::output::{CliError, CliResult, print_json};
use crate::home::paths::{self, Home};
use crate::queue::{Queue, State};
use crate::session;
use crate::sync::{foreign_team, foreign_team_reason};

fn open(home: &Home) -> Result<Queue, CliError> {
    Queue::open(home).map_err(CliError::from)
}

/// Warns on stderr when the queue holds more than `max_queue_size` events
/// (`[sync]` in config.toml). Nothing is ever dropped.
pub(super) fn warn_if_over_limit(home: &Home, queue: &Queue) {
    let max = crate::home::config::Config::load(home)
        .map(|c| c.max_queue_size())
        .unwrap_or(crate::home::config::DEFAULT_MAX_QUEUE_SIZE);
    if let Ok(depth) = queue.len()
        && depth as u64 > max
    {
        eprintln!(
            "WARNING: the queue holds {depth} events, more than max_queue_size ({max}); nothing is dropped, but run `spec-kitty sync now` soon"
        );
    }
}

/// The logged-in user's team, if known. Unreadable credentials count as
/// unknown: the team check is then left to the server, as before it existed.
/// So does a token in `SPEC_KITTY_TOKEN`: the credentials file is then not
/// read at all.
fn own_team(home: &Home) -> Option<String> {
    if session::env_token::is_set() {
        return None;
    }
    session::stored(home).ok().and_then(|c| c.team_slug)
}

/// Why `event` cannot be queued, if it cannot: the server's validator, then
/// the team (an event for a team the user is not in would be refused by
/// the server, and once blocked every batch it was in).
fn import_refusal(event: &Value, own_team: Option<&str>) -> Option<String> {
    let errors = validate_event(event);
    if !errors.is_empty() {
        return Some(spec_kitty_protocol::describe_errors(&errors));
    }
    let team = foreign_team(event, own_team)?;
    Some(foreign_team_reason(team, own_team.unwrap_or_default()))
}

/// `sync import FILE|-`: JSON Lines, each line one event.
pub fn import_file(home: &Home, file: &Path) -> CliResult {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let opened = std::fs::File::open(file)
            .map_err(|e| CliError::general(format!("cannot read {}: {e}", paths::display(file))))?;
        Box::new(std::io::BufReader::new(opened))
    };
    let own_team = own_team(home);
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line =
            line.map_err(|e| CliError::general(format!("cannot read line {number}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(event) => match import_refusal(&event, own_team.as_deref()) {
                None => valid.push(event),
                Some(reason) => invalid.push((number, reason)),
            },
            Err(e) => invalid.push((number, format!("not JSON: {e}"))),
        }
    }
    let mut queue = open(home)?;
    let added = queue.enqueue_all(&valid).map_err(CliError::from)?;
    warn_if_over_limit(home, &queue);
    println!(
        "Queued {added} event(s){}.",
        if added < valid.len() {
            format!(" ({} were already queued)", valid.len() - added)
        } else {
            String::new()
        }
    );
    for (number, reason) in &invalid {
        eprintln!("line {number}: {reason}");
    }
    if invalid.is_empty() {
        Ok(0)
    } else {
        Err(CliError::general(format!(
            "{} line(s) were not queued (see above); fix them and import those lines again",
            invalid.len()
        )))
    }
}

/// `sync discard EVENT_ID... | --all-rejected [--yes]`.
pub fn discard(home: &Home, ids: Vec<String>, all_rejected: bool, yes: bool) -> CliResult {
    let mut queue = open(home)?;
    let ids = if all_rejected {
        queue.failed_ids().map_err(CliError::from)?
    } else {
        ids
    };
    if ids.is_empty() {
        println!("Nothing to discard.");
        return Ok(0);
    }
    // Name unknown ids before asking: a confirmation for ids that are not
    // there (a typo, or already sent) only to report them afterwards
    // wastes the question. Nothing is discarded then.
    let missing = queue.missing(&ids).map_err(CliError::from)?;
    if !missing.is_empty() {
        return Err(CliError::general(format!(
            "not in the queue: {}; nothing was discarded (see the queued ids with `spec-kitty sync diagnose`)",
            missing.join(", ")
        )));
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::new(
                2,
                format!(
                    "discarding {} event(s) cannot be undone: pass --yes to confirm",
                    ids.len()
                ),
            ));
        }
        eprint!(
            "Discard {} event(s) for good? They will never reach the server. [y/N] ",
            ids.len()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing discarded.");
            return Ok(1);
        }
    }
    let removed = queue.discard(&ids).map_err(CliError::from)?;
    println!("Discarded {removed} event(s).");
    if removed < ids.len() {
        eprintln!(
            "{} of the given ids were not in the queue.",
            ids.len() - removed
        );
        return Ok(1);
    }
    Ok(0)
}

/// What diagnose finds wrong with one queued event: every field the
/// server's validator refuses, and a `team_slug` naming a team other than
/// the user's (which the server answers with a 403).
fn event_errors(body: &str, own_team: Option<&str>) -> Vec<Value> {
    let value = match serde_json::from_str::<Value>(body) {
        Ok(value) => value,
        Err(e) => {
            return vec![json!({"path": "(event)", "expected": "JSON", "found": e.to_string()})];
        }
    };
    let mut errors: Vec<Value> = validate_event(&value)
        .into_iter()
        .map(|e| json!({"path": e.path, "expected": e.expected, "found": e.found}))
        .collect();
    if let Some(team) = foreign_team(&value, own_team) {
        errors.push(json!({
            "path": "team_slug",
            "expected": format!(
                "your team '{}' (or absent, empty, 'local')",
                own_team.unwrap_or_default()
            ),
            "found": team,
        }));
    }
    errors
}

/// `sync diagnose [--json]`: every queued event through the validator the
/// server uses, and the team check `sync import` makes.
pub fn diagnose(home: &Home, as_json: bool) -> CliResult {
    let Some(queue) = Queue::open_existing(home).map_err(CliError::from)? else {
        if as_json {
            print_json(&json!({"total": 0, "invalid": 0, "events": []}))?;
        } else {
            println!("The queue is empty.");
        }
        return Ok(0);
    };
    let own_team = own_team(home);
    let mut total = 0u64;
    let mut findings = Vec::new();
    queue
        .for_each(|event| {
            total += 1;
            let errors = event_errors(&event.body, own_team.as_deref());
            if !errors.is_empty() || event.state != State::Pending {
                findings.push(json!({
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "state": event.state,
                    "retry_count": event.retry_count,
                    "server_error": event.last_error,
                    "valid": errors.is_empty(),
                    "errors": errors,
                }));
            }
        })
        .map_err(CliError::from)?;
    let invalid = findings.iter().filter(|f| f["valid"] == false).count();
    if as_json {
        print_json(&json!({"total": total, "invalid": invalid, "events": findings}))?;
    } else {
        println!("{total} queued event(s), {invalid} invalid.");
        for finding in &findings {
            println!(
                "{} ({}, {}, tried {} time(s))",
                finding["event_id"].as_str().unwrap_or_default(),
                finding["event_type"].as_str().unwrap_or_default(),
                finding["state"].as_str().unwrap_or_default(),
                finding["retry_count"]
            );
            if let Some(errors) = finding["errors"].as_array() {
                for error in errors {
                    println!(
                        "  {}: expected {}, found {}",
                        error["path"].as_str().unwrap_or_default(),
                        error["expected"].as_str().unwrap_or_default(),
                        error["found"].as_str().unwrap_or_default()
                    );
                }
            }
            if let Some(server) = finding["server_error"].as_str() {
                println!("  server said: {server}");
            }
        }
        if !findings.is_empty() {
            println!(
                "Drop an event for good with `spec-kitty sync discard EVENT_ID` (or --all-rejected)."
            );
        }
    }
    Ok(if invalid > 0 { 1 } else { 0 })
}
