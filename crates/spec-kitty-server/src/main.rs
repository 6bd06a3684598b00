//! The `spec-kitty-server` command: `serve` and the admin commands.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use spec_kitty_server::admin::{self, AdminError};
use spec_kitty_server::config::{LogFormat, ServeArgs, ServerConfig, StorageArgs};
use spec_kitty_server::store::{self, Store};

/// The self-hostable spec-kitty team sync server.
#[derive(Parser)]
#[command(name = "spec-kitty-server", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the sync API (SQLite in the data directory by default)
    Serve(ServeArgs),
    /// Manage teams
    #[command(subcommand)]
    Team(TeamCommand),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// The team board's projection
    #[command(subcommand)]
    Board(BoardCommand),
}

#[derive(Subcommand)]
enum BoardCommand {
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
enum TeamCommand {
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
enum UserCommand {
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
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args, cli.storage)),
        Command::Team(command) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(team(command, &cli.storage))
        }
        Command::Board(command) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(board(command, &cli.storage))
        }
        Command::User(command) => {
            init_logging(LogFormat::Text, "warn");
            let password = match &command {
                UserCommand::Add { password_stdin, .. } => read_password(*password_stdin),
                _ => Ok(String::new()),
            };
            match password {
                Ok(password) => runtime.block_on(user(command, &cli.storage, password)),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn open_store(storage: &StorageArgs) -> Result<Arc<dyn Store>, Failure> {
    let resolved = storage.resolve();
    Ok(store::open(&resolved.database_url).await?)
}

async fn serve(args: ServeArgs, storage: StorageArgs) -> Result<(), Failure> {
    let config = ServerConfig::resolve(&args, &storage)?;
    init_logging(config.log_format, "info");
    let server = spec_kitty_server::start(&config).await?;
    tracing::info!(
        url = %server.url(),
        database = %store::postgres::redact(&config.storage.database_url),
        data_dir = %config.storage.data_dir.display(),
        backend = server.store.backend(),
        "spec-kitty-server listening"
    );
    if server
        .store
        .list_users()
        .await
        .map(|u| u.is_empty())
        .unwrap_or(false)
    {
        tracing::info!(
            "no users yet: add one with `spec-kitty-server team add acme` then `spec-kitty-server user add alice --team acme` (same --data-dir)"
        );
    }
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        handle.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn read_password(from_stdin: bool) -> Result<String, Failure> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure(format!("cannot read the password from standard input: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            return Err(Failure("standard input held no password".into()));
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure(
            "no terminal to ask for the password: pipe it in with --password-stdin".into(),
        ));
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        return Err(Failure(
            "the two passwords differ; nothing was changed".into(),
        ));
    }
    Ok(first)
}

async fn team(command: TeamCommand, storage: &StorageArgs) -> Result<(), Failure> {
    let store = open_store(storage).await?;
    match command {
        TeamCommand::Add { slug } => {
            admin::add_team(&store, &slug).await?;
            println!("Created team '{slug}'.");
        }
        TeamCommand::List => {
            let teams = store.list_teams().await?;
            if teams.is_empty() {
                println!("No teams yet. Create one with: spec-kitty-server team add SLUG");
            }
            for team in teams {
                let members = if team.members.is_empty() {
                    "(no members)".to_string()
                } else {
                    team.members.join(", ")
                };
                println!("{}\t{} project(s)\t{members}", team.slug, team.projects);
            }
        }
        TeamCommand::AddMember { slug, user } => {
            store.add_member(&slug, &user).await?;
            println!("Added '{user}' to team '{slug}'.");
        }
        TeamCommand::RemoveMember { slug, user } => {
            store.remove_member(&slug, &user).await?;
            println!("Removed '{user}' from team '{slug}'.");
        }
    }
    Ok(())
}

async fn board(command: BoardCommand, storage: &StorageArgs) -> Result<(), Failure> {
    let store = open_store(storage).await?;
    let BoardCommand::Rebuild { project, check } = command;
    let report = store.rebuild_board(project.as_deref(), check).await?;
    if let Some(uuid) = &project
        && report.projects == 0
    {
        return Err(Failure(format!("no project {uuid} on this server")));
    }
    for line in &report.differences {
        println!("{line}");
    }
    let verb = if check { "Checked" } else { "Rebuilt" };
    println!(
        "{verb} {} project(s): {} event(s), {} work package(s), {} difference(s){}.",
        report.projects,
        report.events,
        report.cards,
        report.differences.len(),
        if check || report.differences.is_empty() {
            ""
        } else {
            ", now fixed"
        }
    );
    if check && !report.differences.is_empty() {
        return Err(Failure(format!(
            "{} difference(s) between the stored board and the events; `spec-kitty-server board rebuild` fixes them",
            report.differences.len()
        )));
    }
    Ok(())
}

async fn user(
    command: UserCommand,
    storage: &StorageArgs,
    password: String,
) -> Result<(), Failure> {
    let store = open_store(storage).await?;
    match command {
        UserCommand::Add { username, team, .. } => {
            admin::add_user(&store, &username, &password, &team)
                .await
                .map_err(|e| match e {
                    AdminError::Store(store::StoreError::NotFound(_)) => Failure(format!(
                        "no team '{team}': create it first with `spec-kitty-server team add {team}`"
                    )),
                    other => Failure(other.to_string()),
                })?;
            println!("Created user '{username}' in team '{team}'.");
        }
        UserCommand::Disable { username } => {
            store.disable_user(&username).await?;
            println!("Disabled '{username}': their log-ins and tokens are refused from now on.");
        }
        UserCommand::List => {
            let users = store.list_users().await?;
            if users.is_empty() {
                println!("No users yet. Add one with: spec-kitty-server user add USER --team SLUG");
            }
            for user in users {
                let state = if user.disabled { "disabled" } else { "active" };
                println!(
                    "{}\t{state}\tteam: {}\tmember of: {}",
                    user.username,
                    user.team.as_deref().unwrap_or("-"),
                    if user.member_of.is_empty() {
                        "-".to_string()
                    } else {
                        user.member_of.join(", ")
                    }
                );
            }
        }
    }
    Ok(())
}
