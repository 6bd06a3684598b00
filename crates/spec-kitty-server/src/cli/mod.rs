//! The `spec-kitty-server` command line: `serve` and the admin commands.
//! Each admin command goes through [`crate::admin`]; this layer only parses,
//! prints and turns errors into messages and exit codes.

mod admin;
mod backup;
mod board;
mod serve;
mod tokens;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, ServeArgs, StorageArgs};

/// The self-hostable spec-kitty team sync server.
#[derive(Parser)]
#[command(
    name = "spec-kitty-server",
    version = env!("SPEC_KITTY_LONG_VERSION"),
    about,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    /// When to colour log lines: auto (a terminal, and NO_COLOR unset), always, never
    #[arg(long, value_enum, global = true, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    color: ColorWhen,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the sync API (SQLite in the data directory by default)
    #[command(
        after_help = "Examples:\n  spec-kitty-server serve\n  spec-kitty-server serve --listen 0.0.0.0:8443 --tls-cert fullchain.pem --tls-key privkey.pem\n  spec-kitty-server serve --database postgres://spec_kitty@db.internal/spec_kitty"
    )]
    Serve(Box<ServeArgs>),
    /// Manage teams
    #[command(subcommand)]
    Team(TeamCommand),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Personal access tokens for CI jobs and agents (SPEC_KITTY_TOKEN)
    #[command(subcommand)]
    Token(TokenCommand),
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
    /// Print a shell completion script to standard output
    #[command(
        after_help = "Examples:\n  spec-kitty-server completions bash > ~/.local/share/bash-completion/completions/spec-kitty-server\n  spec-kitty-server completions zsh > ~/.zfunc/_spec-kitty-server\n  spec-kitty-server completions fish > ~/.config/fish/completions/spec-kitty-server.fish\n  spec-kitty-server completions powershell >> $PROFILE"
    )]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
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
pub enum TokenCommand {
    /// Make a token for a user; it is printed once (only a hash is kept)
    #[command(
        after_help = "Examples:\n  spec-kitty-server token create alice --name ci --expires 90\n  TOKEN=$(spec-kitty-server token create alice --name agent)"
    )]
    Create {
        /// The user the token acts as (case-insensitive)
        user: String,
        /// What the token is for, shown in `token list`
        #[arg(long)]
        name: String,
        /// Days until the token expires (1 to 3650); without it, until revoked
        #[arg(long, value_name = "DAYS")]
        expires: Option<u32>,
    },
    /// List tokens (all, or one user's): name, created, last used, expiry
    #[command(
        after_help = "Examples:\n  spec-kitty-server token list\n  spec-kitty-server token list alice --json"
    )]
    List {
        /// Only this user's tokens
        user: Option<String>,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id: it is refused at once, on every instance
    #[command(after_help = "Example:\n  spec-kitty-server token revoke 3")]
    Revoke {
        /// The id `token list` shows
        id: i64,
    },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team (and the database, on first use)
    #[command(after_help = "Example:\n  spec-kitty-server team add acme")]
    Add {
        /// Lower-case letters, digits and dashes, like `acme` or `team-2`
        slug: String,
    },
    /// List teams with their members and project counts
    #[command(
        after_help = "Examples:\n  spec-kitty-server team list\n  spec-kitty-server team list --json"
    )]
    List {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Add an existing user to a team
    #[command(after_help = "Example:\n  spec-kitty-server team add-member acme bob")]
    AddMember {
        /// The team
        slug: String,
        /// The user (case-insensitive)
        user: String,
    },
    /// Remove a user from a team (their next sync for it is refused with 403)
    #[command(after_help = "Example:\n  spec-kitty-server team remove-member acme bob")]
    RemoveMember {
        /// The team
        slug: String,
        /// The user (case-insensitive)
        user: String,
    },
    /// Delete a team that has no projects, with its memberships
    #[command(after_help = "Example:\n  spec-kitty-server team remove typo-team")]
    Remove {
        /// The team
        slug: String,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user in a team; the password is asked for on the terminal
    #[command(
        after_help = "Examples:\n  spec-kitty-server user add alice --team acme\n  printf '%s\\n' \"$PASSWORD\" | spec-kitty-server user add alice --team acme --password-stdin"
    )]
    Add {
        /// 1 to 150 characters without spaces; case-insensitive (stored in lower case)
        username: String,
        /// The user's team (create it first with `team add`)
        #[arg(long)]
        team: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password; the user's sessions end
    #[command(
        after_help = "Examples:\n  spec-kitty-server user passwd alice\n  printf '%s\\n' \"$PASSWORD\" | spec-kitty-server user passwd alice --password-stdin"
    )]
    Passwd {
        /// The user (case-insensitive)
        username: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: their log-ins and tokens are refused from now on
    #[command(after_help = "Example:\n  spec-kitty-server user disable alice")]
    Disable {
        /// The user (case-insensitive)
        username: String,
    },
    /// Let a disabled user log in again (their old sessions stay ended)
    #[command(after_help = "Example:\n  spec-kitty-server user enable alice")]
    Enable {
        /// The user (case-insensitive)
        username: String,
    },
    /// Clear the failed log-ins that lock a user out
    #[command(after_help = "Example:\n  spec-kitty-server user unlock alice")]
    Unlock {
        /// The user (case-insensitive)
        username: String,
    },
    /// Delete a user, their memberships and sessions; their events stay
    #[command(after_help = "Example:\n  spec-kitty-server user remove alice")]
    Remove {
        /// The user (case-insensitive)
        username: String,
    },
    /// List users with their state and teams
    #[command(
        after_help = "Examples:\n  spec-kitty-server user list\n  spec-kitty-server user list --json"
    )]
    List {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
}

/// `--color`: when log lines get ANSI colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// Only on a terminal, and only when `NO_COLOR` is unset or empty
    Auto,
    /// Always, even into a pipe or file
    Always,
    /// Never
    Never,
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
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(
            shell,
            &mut command,
            "spec-kitty-server",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
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
        Command::Completions { .. } => Ok(()),
        Command::Serve(args) => runtime.block_on(serve::serve(
            *args,
            cli.storage,
            serve::colour_logs(cli.color),
        )),
        Command::Team(command) => {
            serve::init_logging(LogFormat::Text, "warn", serve::colour_logs(cli.color));
            runtime.block_on(admin::team(command, &cli.storage))
        }
        Command::Token(command) => {
            serve::init_logging(LogFormat::Text, "warn", serve::colour_logs(cli.color));
            runtime.block_on(tokens::token(command, &cli.storage))
        }
        Command::Board(command) => {
            serve::init_logging(LogFormat::Text, "warn", serve::colour_logs(cli.color));
            runtime.block_on(board::board(command, &cli.storage))
        }
        Command::Backup { file } => {
            serve::init_logging(LogFormat::Text, "warn", serve::colour_logs(cli.color));
            backup::backup(&file, &cli.storage)
        }
        Command::Restore { file, force } => {
            serve::init_logging(LogFormat::Text, "warn", serve::colour_logs(cli.color));
            backup::restore(&file, &cli.storage, force)
        }
        Command::User(command) => {
            serve::init_logging(LogFormat::Text, "warn", serve::colour_logs(cli.color));
            let password = match &command {
                UserCommand::Add { password_stdin, .. }
                | UserCommand::Passwd { password_stdin, .. } => {
                    admin::read_password(*password_stdin)
                }
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
