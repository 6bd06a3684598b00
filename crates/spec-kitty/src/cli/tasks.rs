//! `spec-kitty agent tasks move-task|list-tasks|publish`.

use std::path::Path;

use clap::Subcommand;

use super::output::{CliError, CliResult, print_json};
use crate::home::paths::{self, Home};
use crate::tasks::{self, MoveRequest, TaskError, publish};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Work-package commands
    #[command(subcommand)]
    Tasks(TasksCommand),
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Move a work package to another lane and queue the event (works offline)
    #[command(
        after_help = "Exit codes: 0 moved (or already there), 1 the file cannot be changed, 2 bad usage (an unknown lane, work package or feature; --force without --reason).\n\nExamples:\n  spec-kitty agent tasks move-task WP03 --to doing\n  spec-kitty agent tasks move-task WP03 --to for_review --note \"ready for review\"\n  spec-kitty agent tasks move-task WP03 --to planned --force --reason \"reopened: bug found\""
    )]
    MoveTask {
        /// Work package id, like WP03
        wp: String,
        /// Target lane: planned, claimed, in_progress (or doing), for_review, done, blocked, canceled
        #[arg(long, value_name = "LANE")]
        to: String,
        /// Feature folder (NNN-slug, NNN or slug) when the project has several
        #[arg(long)]
        feature: Option<String>,
        /// Who moves it (default: the logged-in user, else $USER)
        #[arg(long)]
        agent: Option<String>,
        /// Text for the history entry and Activity Log line
        #[arg(long)]
        note: Option<String>,
        /// Allow moving a done work package back (needs --reason)
        #[arg(long, requires = "reason")]
        force: bool,
        /// Why the move is forced
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Tell the team board about features and work packages (queues events; works offline)
    ///
    /// Queues a FeatureCreated per feature, a WPCreated per work package
    /// (title and dependencies from its front matter) and, for a work
    /// package past `planned` whose lane this machine never sent, one first
    /// lane change from `planned`. Running it again re-sends titles and
    /// dependencies, never a second first lane change. `move-task` does
    /// this by itself, once, for a feature not published yet.
    #[command(
        after_help = "Examples:\n  spec-kitty agent tasks publish                  every feature of the project\n  spec-kitty agent tasks publish --feature 039    one feature (NNN-slug, NNN or slug)\n  spec-kitty agent tasks publish && spec-kitty sync now\n\nExit codes: 0 queued, 1 a work-package file is wrong (nothing is queued; the message names it), 2 bad arguments."
    )]
    Publish {
        /// Only this feature folder (NNN-slug, NNN or slug); default: every feature
        #[arg(long)]
        feature: Option<String>,
        /// Print JSON on stdout: the project, the features and what was queued
        #[arg(long)]
        json: bool,
    },
    /// List work packages with lane, title, assignee and last change
    #[command(
        after_help = "Examples:\n  spec-kitty agent tasks list-tasks\n  spec-kitty agent tasks list-tasks --lane doing\n  spec-kitty agent tasks list-tasks --feature 039 --json"
    )]
    ListTasks {
        /// Feature folder (NNN-slug, NNN or slug) when the project has several
        #[arg(long)]
        feature: Option<String>,
        /// Only work packages in this lane
        #[arg(long)]
        lane: Option<String>,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

pub fn run(home: &Home, command: AgentCommand) -> CliResult {
    let AgentCommand::Tasks(command) = command;
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::general(format!("cannot read the current directory: {e}")))?;
    match command {
        TasksCommand::MoveTask {
            wp,
            to,
            feature,
            agent,
            note,
            force,
            reason,
            json,
        } => {
            let request = MoveRequest {
                wp,
                to,
                feature,
                agent,
                note,
                force,
                reason,
            };
            move_task(home, &cwd, &request, json)
        }
        TasksCommand::ListTasks {
            feature,
            lane,
            json,
        } => list_tasks(&cwd, feature.as_deref(), lane.as_deref(), json),
        TasksCommand::Publish { feature, json } => publish(home, &cwd, feature.as_deref(), json),
    }
}

/// `move-task`: the move, or "already there" (not an error).
fn move_task(home: &Home, cwd: &Path, request: &MoveRequest, json: bool) -> CliResult {
    match tasks::move_task(home, cwd, request) {
        Ok(moved) => {
            if let Some(warning) = &moved.published.warning {
                eprintln!("warning: {warning}");
            }
            if json {
                print_json(&moved)?;
            } else {
                if let Some(counts) = &moved.published.queued {
                    println!(
                        "Published {} to the team board first: {}.",
                        moved.feature,
                        counts_text(counts)
                    );
                }
                let from = moved.from_lane.as_deref().unwrap_or("(none)");
                println!(
                    "Moved {} from {from} to {}{}; event queued. Run `spec-kitty sync now` to upload.",
                    moved.wp_id,
                    moved.to_lane,
                    board_note(&moved.to_lane, &moved.sync_lane)
                );
            }
            Ok(0)
        }
        Err(TaskError::AlreadyThere { wp_id, lane }) => {
            if json {
                print_json(
                    &serde_json::json!({"wp_id": wp_id, "to_lane": lane, "unchanged": true}),
                )?;
            } else {
                println!("{wp_id} is already in {lane}; nothing changed.");
            }
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

/// Where the team board shows a lane, when that is another lane: `doing`
/// is only another name of `in_progress`, so one name is enough; `claimed`
/// and `blocked` do show as `doing`, and `canceled` as `done`.
fn board_note(lane: &str, sync_lane: &str) -> String {
    let same = spec_kitty_protocol::Lane::parse(lane).ok()
        == spec_kitty_protocol::Lane::parse(sync_lane).ok();
    if same {
        String::new()
    } else {
        format!(" (the team board shows {lane} as {sync_lane})")
    }
}

/// "1 feature, 6 work packages, 3 first lane changes".
fn counts_text(counts: &publish::Counts) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}, {}, {}",
        plural(counts.features, "feature", "features"),
        plural(counts.work_packages, "work package", "work packages"),
        plural(
            counts.first_lane_changes,
            "first lane change",
            "first lane changes"
        )
    )
}

/// `publish`: what was queued, or JSON.
fn publish(home: &Home, cwd: &Path, feature: Option<&str>, json: bool) -> CliResult {
    let published = publish::publish(home, cwd, feature)?;
    if json {
        print_json(&published)?;
    } else {
        println!(
            "Queued {}. Run spec-kitty sync now to upload.",
            counts_text(&published.queued)
        );
    }
    Ok(0)
}

/// `list-tasks`: a table, or JSON.
fn list_tasks(cwd: &Path, feature: Option<&str>, lane: Option<&str>, json: bool) -> CliResult {
    let (feature, listed) = tasks::list_tasks(cwd, feature, lane).map_err(CliError::from)?;
    if json {
        print_json(&serde_json::json!({"feature": feature, "work_packages": listed}))?;
        return Ok(0);
    }
    if listed.is_empty() {
        println!("No work packages in {feature}.");
        return Ok(0);
    }
    println!("{feature}");
    println!(
        "{:<6} {:<12} {:<44} {:<12} LAST CHANGE",
        "WP", "LANE", "TITLE", "ASSIGNEE"
    );
    for wp in listed {
        if let Some(error) = &wp.error {
            println!(
                "{:<6} (unreadable: {error}) {}",
                wp.wp_id,
                paths::display(&wp.file)
            );
            continue;
        }
        let title: String = wp.title.as_deref().unwrap_or("").chars().take(44).collect();
        println!(
            "{:<6} {:<12} {:<44} {:<12} {}",
            wp.wp_id,
            wp.lane.as_deref().unwrap_or("-"),
            title,
            wp.assignee.as_deref().unwrap_or("-"),
            wp.last_change.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}
