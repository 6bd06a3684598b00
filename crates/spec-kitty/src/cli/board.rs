//! `spec-kitty board`: the team board of a project, from the server.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use time::OffsetDateTime;

use super::output::{CliError, CliResult};
use crate::board_view::{self, Style};
use crate::home::paths::{self, Home};
use crate::net::board::{self, BoardError};
use crate::net::http::Http;
use crate::outcome::Outcome;
use crate::tasks::identity;
use crate::tasks::project::Project;

/// How long one request to the server may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// What to run when the server has nothing for the project.
const PUBLISH_HINT: &str =
    "Run `spec-kitty agent tasks publish`, then `spec-kitty sync now`, and try again.";

#[derive(Args)]
pub struct BoardArgs {
    /// The project's UUID (default: project.uuid in .kittify/config.yaml of
    /// the project around the current directory)
    #[arg(long, value_name = "UUID")]
    project: Option<String>,
    /// Print the board document exactly as the server sent it, and nothing else
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, args: BoardArgs) -> CliResult {
    let uuid = match args.project {
        Some(given) => checked_uuid(&given)?,
        None => current_project_uuid()?,
    };
    let http = Http::new(TIMEOUT);
    let fetched = board::fetch(home, &http, &uuid).map_err(board_error)?;
    if args.json {
        println!("{}", fetched.document.trim_end());
        return Ok(0);
    }
    let style = Style {
        color: use_colour(),
        width: terminal_width(),
    };
    print!(
        "{}",
        board_view::render(&fetched.board, style, OffsetDateTime::now_utc())
    );
    Ok(0)
}

/// A `--project` value: a hyphenated UUID, as the server keys projects.
fn checked_uuid(given: &str) -> Result<String, CliError> {
    let trimmed = given.trim();
    if spec_kitty_protocol::validate::is_uuid(trimmed) {
        return Ok(trimmed.to_ascii_lowercase());
    }
    Err(CliError::new(
        2,
        format!(
            "--project must be a project UUID like 550e8400-e29b-41d4-a716-446655440000, not '{given}'"
        ),
    ))
}

/// The uuid of the project around the current directory, read without
/// creating one: a project that has none was never published.
fn current_project_uuid() -> Result<String, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::general(format!("cannot read the current directory: {e}")))?;
    project_uuid(&cwd)
}

fn project_uuid(cwd: &Path) -> Result<String, CliError> {
    let project = Project::find(cwd)
        .map_err(|e| CliError::general(format!("{e}. Or name a project with --project UUID.")))?;
    match identity::existing_uuid(&project) {
        Ok(Some(uuid)) => Ok(uuid),
        Ok(None) => Err(CliError::general(format!(
            "this project was never published or synced: {} has no project.uuid. {PUBLISH_HINT}",
            paths::display(&project.config_path())
        ))),
        Err(e) => Err(CliError::general(e.to_string())),
    }
}

/// The message and exit code of a failed fetch: the codes of `sync status
/// --check`, and 1 for a project the server does not have for this team.
fn board_error(e: BoardError) -> CliError {
    let Some(outcome) = e.outcome() else {
        return CliError::general(format!("{e}. {PUBLISH_HINT}"));
    };
    let message = match (&e, outcome) {
        // The token manager's messages already say what to run.
        (BoardError::Auth(_), _) => e.to_string(),
        (_, Outcome::AuthenticationFailed | Outcome::PermissionDenied) => {
            format!("{}: {e}. {}", outcome.headline(), outcome.next_step(None))
        }
        _ => format!("{}: {e}", outcome.headline()),
    };
    CliError::new(outcome.exit_code(), message)
}

/// Colour as `--color` and `NO_COLOR` say ([`super::colour`]).
fn use_colour() -> bool {
    super::colour::stdout()
}

/// `COLUMNS` when the shell exports it, else a common terminal width.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w >= 20)
        .unwrap_or(100)
}
