//! The clap command tree and its dispatch. Library errors become messages
//! here, at the edge; stdout carries results, stderr diagnostics.

mod auth;
mod board;
mod output;
mod python_queue;
mod queue_tools;
mod sync;
mod sync_now;
mod tasks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::{CliError, CliResult};

use crate::home::paths::Home;

/// spec-kitty: spec-driven development with authenticated team sync.
#[derive(Parser)]
#[command(name = "spec-kitty", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Log in to a sync server, log out, and inspect the session
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Configure the sync server, check the connection, and upload queued events
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Commands for agents and people working on work packages
    #[command(subcommand)]
    Agent(tasks::AgentCommand),
    /// Show the team board of this project: every work package by lane, from the server
    #[command(after_help = crate::outcome::board_help())]
    Board(board::BoardArgs),
}

/// Runs the CLI and returns the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = Home::from_env()
        .map_err(CliError::from)
        .and_then(|home| match cli.command {
            Command::Auth(command) => auth::run(&home, command),
            Command::Sync(command) => sync::run(&home, command),
            Command::Agent(command) => tasks::run(&home, command),
            Command::Board(args) => board::run(&home, args),
        });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
