//! `spec-kitty sync now`: drain the queue and summarize.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::json;

use super::output::{CliError, CliResult, print_json};
use crate::home::paths::{self, Home};
use crate::net::http::Http;
use crate::queue::Queue;
use crate::sync::{Category, Drain, Summary};

/// One batch gets this long on the network.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The exit code of a drain stopped by Ctrl-C: 128 + SIGINT.
const INTERRUPTED: u8 = 130;

/// Queues longer than this get a progress bar on a terminal.
const PROGRESS_THRESHOLD: i64 = 2000;

pub fn run(
    home: &Home,
    report: Option<PathBuf>,
    as_json: bool,
    strict: bool,
    retry_parked: bool,
) -> CliResult {
    let mut queue = Queue::open(home).map_err(CliError::from)?;
    if retry_parked {
        let back = queue.unpark(None).map_err(CliError::from)?;
        if back > 0 && !as_json && crate::verbosity::informational() {
            eprintln!("{back} parked event(s) put back in line.");
        }
    }
    let total = queue.len().map_err(CliError::from)?;
    let sendable = queue.has_sendable().map_err(CliError::from)?;
    if !sendable {
        print_nothing_to_send(total, as_json)?;
        return Ok(0);
    }
    let http = Http::new(BATCH_TIMEOUT);
    let summary = match Drain::start(home, &mut queue, &http) {
        Ok(drain) => {
            let bar = progress_bar(total, as_json);
            let summary = drain
                .interrupt_on(interrupt_on_ctrl_c())
                .run(|done| {
                    if let Some(bar) = &bar {
                        bar.set_position(done);
                    }
                })
                .map_err(CliError::from)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            summary
        }
        Err(stop) => Summary {
            remaining: total,
            stopped: Some(stop),
            ..Summary::default()
        },
    };
    if let Some(path) = &report {
        write_report(path, &summary)?;
    }
    if as_json {
        print_json(&json_summary(&summary))?;
    } else {
        print_human(&summary, report.as_deref());
    }
    Ok(exit_code(&summary, strict))
}

/// Says why nothing is sent: an empty queue, or one holding only parked
/// events (with the commands that deal with them).
fn print_nothing_to_send(total: i64, as_json: bool) -> Result<(), CliError> {
    if as_json {
        print_json(&json_summary(&Summary {
            remaining: total,
            ..Summary::default()
        }))?;
    } else if total == 0 {
        println!("Nothing to sync: the queue is empty.");
    } else {
        println!(
            "Nothing to send: {total} parked event(s) wait in the queue. See `spec-kitty sync diagnose`; retry them with `spec-kitty sync now --retry-parked` or drop them with `spec-kitty sync discard`."
        );
    }
    Ok(())
}

/// A progress bar for a long drain on a terminal; none for JSON, quiet
/// runs, pipes or a queue short enough to drain at a glance.
fn progress_bar(total: i64, as_json: bool) -> Option<indicatif::ProgressBar> {
    (!as_json
        && total > PROGRESS_THRESHOLD
        && crate::verbosity::informational()
        && std::io::stderr().is_terminal())
    .then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} events ({rate}, {eta} left)",
        ) {
            bar.set_style(style.with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}/s", thousands(state.per_sec().round() as u64));
                },
            ));
        }
        bar
    })
}

/// The flag the drain checks between batches. The first Ctrl-C stops after
/// the batch in flight; a second one, while that batch is still on the
/// wire, ends the process at once (the queue is consistent either way).
fn interrupt_on_ctrl_c() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        Arc::clone(&interrupt),
    );
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupt));
    interrupt
}

/// The exit code of a drain: [`INTERRUPTED`] after Ctrl-C; otherwise, with
/// `--strict`, the stop's code or 1 for failed events, else 0.
fn exit_code(summary: &Summary, strict: bool) -> u8 {
    if summary.interrupted {
        // 128 + SIGINT, as a shell reports a command ended by Ctrl-C.
        return INTERRUPTED;
    }
    let code = match &summary.stopped {
        Some(stop) => stop.outcome.exit_code(),
        None if summary.failed > 0 => 1,
        None => 0,
    };
    if strict { code } else { 0 }
}

/// A whole number with thousands separators: `38,587`. A rate to four
/// decimals (`38586.8242/s`) claims a precision no one reads.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn category_counts(summary: &Summary) -> HashMap<&'static str, u64> {
    let mut counts: HashMap<&'static str, u64> =
        [("schema", 0), ("auth", 0), ("server", 0), ("unknown", 0)]
            .into_iter()
            .collect();
    for (category, n) in summary.categories() {
        let key = match category {
            Category::Schema => "schema",
            Category::Auth => "auth",
            Category::Server => "server",
            Category::Unknown => "unknown",
        };
        *counts.entry(key).or_default() += n;
    }
    counts
}

/// `sync now --json`: the counts and every failed event, as the text
/// output lists them (and the report file holds them).
fn json_summary(summary: &Summary) -> serde_json::Value {
    json!({
        "synced": summary.synced,
        "duplicates": summary.duplicates,
        "failed": summary.failed,
        "remaining": summary.remaining,
        "categories": category_counts(summary),
        "stopped": summary.stopped,
        "interrupted": summary.interrupted,
        "failures": summary.failures,
    })
}

fn write_report(path: &std::path::Path, summary: &Summary) -> Result<(), CliError> {
    let report = json!({
        "synced": summary.synced,
        "duplicates": summary.duplicates,
        "failed": summary.failed,
        "remaining": summary.remaining,
        "stopped": summary.stopped,
        "failures": summary.failures,
    });
    let text = serde_json::to_vec_pretty(&report).map_err(|e| CliError::general(e.to_string()))?;
    crate::home::atomic::write(path, &text, 0o644).map_err(|e| {
        CliError::general(format!(
            "cannot write the report {}: {e}",
            paths::display(path)
        ))
    })
}

fn print_human(summary: &Summary, report: Option<&std::path::Path>) {
    println!(
        "Synced: {}, Duplicates: {}, Failed: {}",
        summary.synced, summary.duplicates, summary.failed
    );
    let mut by_category: Vec<(Category, u64)> = summary.categories().into_iter().collect();
    by_category.sort_by_key(|(c, _)| *c as u8);
    for (category, count) in by_category {
        if count > 0 {
            println!("  {count} failed ({})", category.advice());
        }
    }
    for failure in summary.failures.iter().take(5) {
        let parked = if failure.parked { " [parked]" } else { "" };
        println!("  - {}{parked}: {}", failure.event_id, failure.reason);
    }
    if summary.failures.len() > 5 {
        println!("  ... and {} more", summary.failures.len() - 5);
    }
    if let Some(stop) = &summary.stopped {
        eprintln!("Stopped: {}", stop.message);
    }
    if summary.remaining > 0 {
        println!("Remaining in queue: {}", summary.remaining);
    }
    if summary.interrupted {
        eprintln!(
            "Interrupted: {} event(s) uploaded in this run ({} new, {} already on the server); {} still queued. Run `spec-kitty sync now` to upload the rest.",
            summary.synced + summary.duplicates,
            summary.synced,
            summary.duplicates,
            summary.remaining
        );
    }
    if let Some(path) = report {
        println!("Report written to {}", paths::display(path));
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn rates_are_whole_numbers_with_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(38_587), "38,587");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
