//! The `spec-kitty-server` command line: `serve` and the admin commands.
//! Each admin command goes through [`crate::admin`]; this layer only parses,
//! prints and turns errors into messages and exit codes.

mod admin;
mod backup;
mod board;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, ServeArgs, StorageArgs};

/// The self-hostable spec-kitty team sync server.
#[derive(Parser)]
#[command(name = "spec-kitty-server", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the sync API (SQLite in the data directory by default)
    Serve(Box<ServeArgs>),
    /// Manage teams
    #[command(subcommand)]
    Team(TeamCommand),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// The team board's projection
    #[command(subcommand)]
    Board(BoardCommand),
    /// Write a consistent copy of the SQLite database to FILE (works while
    /// the server runs; for PostgreSQL use pg_dump)
    Backup { file: std::path::PathBuf },
    /// Replace the SQLite database with the backup FILE (stop the server first)
    Restore {
        file: std::path::PathBuf,
        /// Restore even though the database looks in use (a -wal file exists)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum BoardCommand {
    /// Recompute the board from the stored events (works while the server runs)
    #[command(
        after_help = "Examples:\n  spec-kitty-server board rebuild --check\n  spec-kitty-server board rebuild --project 550e8400-e29b-41d4-a716-446655440000"
    )]
    Rebuild {
        /// Only this project (its uuid); every project by default
        #[arg(long, value_name = "UUID")]
        project: Option<String>,
        /// Report differences between the stored board and the events; change nothing
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team
    Add { slug: String },
    /// List teams with their members
    List,
    /// Add an existing user to a team
    AddMember { slug: String, user: String },
    /// Remove a user from a team (their next sync is refused with 403)
    RemoveMember { slug: String, user: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user in a team; the password is asked for on the terminal
    Add {
        username: String,
        /// The user's team (create it first with `team add`)
        #[arg(long)]
        team: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: their log-ins and tokens are refused from now on
    Disable { username: String },
    /// List users
    List,
}

/// An error for the person at the terminal, already phrased for them.
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// Parses the command line, runs the command and answers its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            serve::print_error(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::serve(*args, cli.storage)),
        Command::Team(command) => {
            serve::init_logging(LogFormat::Text, "warn");
            runtime.block_on(admin::team(command, &cli.storage))
        }
        Command::Board(command) => {
            serve::init_logging(LogFormat::Text, "warn");
            runtime.block_on(board::board(command, &cli.storage))
        }
        Command::Backup { file } => {
            serve::init_logging(LogFormat::Text, "warn");
            backup::backup(&file, &cli.storage)
        }
        Command::Restore { file, force } => {
            serve::init_logging(LogFormat::Text, "warn");
            backup::restore(&file, &cli.storage, force)
        }
        Command::User(command) => {
            serve::init_logging(LogFormat::Text, "warn");
            let password = match &command {
                UserCommand::Add { password_stdin, .. } => admin::read_password(*password_stdin),
                _ => Ok(String::new()),
            };
            match password {
                Ok(password) => runtime.block_on(admin::user(command, &cli.storage, password)),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            serve::print_error(&format!("error: {message}"));
            ExitCode::FAILURE
        }
    }
}
