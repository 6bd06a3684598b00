//! The clap command tree and its dispatch. Library errors become messages
//! here, at the edge; stdout carries results, stderr diagnostics.

mod auth;
mod board;
pub mod colour;
mod config;
mod output;
mod python_queue;
mod queue_tools;
mod sync;
mod sync_now;
mod tasks;
mod web_login;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use output::{CliError, CliResult};

use crate::home::paths::Home;

/// Examples shown under `spec-kitty --help` (and with no arguments).
const EXAMPLES: &str = "Examples:
  spec-kitty sync server https://sync.example.com
  spec-kitty auth login --username alice
  spec-kitty sync status --check
  spec-kitty agent tasks move-task WP03 --to doing
  spec-kitty sync now
  spec-kitty board
  spec-kitty config list
  spec-kitty config set sync.max_queue_size 50000
  spec-kitty -v sync now            # say which server and files
  spec-kitty -vv sync status --check   # plus an HTTP trace on stderr (no tokens)
  spec-kitty -q sync now            # results and errors only
  spec-kitty completions bash > ~/.local/share/bash-completion/completions/spec-kitty";

/// spec-kitty: spec-driven development with authenticated team sync.
#[derive(Parser)]
#[command(
    name = "spec-kitty",
    version = env!("SPEC_KITTY_LONG_VERSION"),
    about,
    propagate_version = true,
    after_help = EXAMPLES
)]
struct Cli {
    /// When to colour output: auto (a terminal, and NO_COLOR unset), always, never
    #[arg(long, value_enum, global = true, value_name = "WHEN", default_value_t = colour::When::Auto)]
    color: colour::When,
    /// Say what is done: which server, which files (-vv adds an HTTP trace on stderr: method, URL, status, time; never a token)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Print only results and errors: no progress or informational lines
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Show or change the settings in ~/.spec-kitty/config.toml
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Show the team board of this project: every work package by lane, from the server
    #[command(after_help = crate::outcome::board_help())]
    Board(board::BoardArgs),
    /// Print a shell completion script to standard output
    #[command(
        after_help = "Examples:\n  spec-kitty completions bash > ~/.local/share/bash-completion/completions/spec-kitty\n  spec-kitty completions zsh > ~/.zfunc/_spec-kitty\n  spec-kitty completions fish > ~/.config/fish/completions/spec-kitty.fish\n  spec-kitty completions powershell >> $PROFILE"
    )]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs the CLI and returns the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    colour::set(cli.color);
    crate::verbosity::set(cli.quiet, cli.verbose);
    let command = match cli.command {
        Some(Command::Completions { shell }) => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "spec-kitty", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(command) => command,
        // No arguments: help on stdout and success, as gh and cargo do;
        // asking what a tool does is not an error.
        None => {
            let _ = Cli::command().print_help();
            return ExitCode::SUCCESS;
        }
    };
    let result = Home::from_env()
        .map_err(CliError::from)
        .inspect(announce)
        .and_then(|home| match command {
            Command::Auth(command) => auth::run(&home, command),
            Command::Sync(command) => sync::run(&home, command),
            Command::Agent(command) => tasks::run(&home, command),
            Command::Board(args) => board::run(&home, args),
            Command::Config(command) => config::run(&home, command),
            Command::Completions { .. } => Ok(0),
        });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// The `-v` lines every command starts with: the files it reads and the
/// server it talks to.
fn announce(home: &Home) {
    use crate::home::paths::display;
    use crate::verbosity;
    if verbosity::level() < verbosity::Level::Verbose {
        return;
    }
    verbosity::verbose(format_args!("config: {}", display(&home.config())));
    verbosity::verbose(format_args!(
        "credentials: {}",
        display(&home.credentials())
    ));
    verbosity::verbose(format_args!("queue: {}", display(&home.queue())));
    let server = crate::home::config::Config::load(home)
        .ok()
        .and_then(|c| c.server_url());
    verbosity::verbose(format_args!(
        "server: {}",
        server.as_deref().unwrap_or("(none configured)")
    ));
}
