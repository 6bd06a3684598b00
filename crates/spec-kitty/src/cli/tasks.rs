//! `spec-kitty agent tasks move-task|list-tasks`.

use std::path::Path;

use clap::Subcommand;

use super::output::{CliError, CliResult, print_json};
use crate::home::paths::{self, Home};
use crate::tasks::{self, MoveRequest, TaskError};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Work-package commands
    #[command(subcommand)]
    Tasks(TasksCommand),
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Move a work package to another lane and queue the event (works offline)
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
    /// List work packages with lane, title, assignee and last change
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
    }
}

/// `move-task`: the move, or "already there" (not an error).
fn move_task(home: &Home, cwd: &Path, request: &MoveRequest, json: bool) -> CliResult {
    match tasks::move_task(home, cwd, request) {
        Ok(moved) => {
            if json {
                print_json(&moved)?;
            } else {
                let from = moved.from_lane.as_deref().unwrap_or("(none)");
                println!(
                    "Moved {} from {from} to {} (sync lane {}); event queued. Run `spec-kitty sync now` to upload.",
                    moved.wp_id, moved.to_lane, moved.sync_lane
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
