//! `team` and `user`: the admin commands, each through [`crate::admin`].

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use super::{Failure, TeamCommand, UserCommand};
use crate::admin::{self, AdminError, MIN_PASSWORD_LEN};
use crate::config::StorageArgs;
use crate::store::{self, Store};

/// Whether an admin command may create the database it is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Open {
    /// Only `team add`, the first step of a new server, creates one.
    MayCreate,
    /// Everything else refuses a missing SQLite file: a mistyped
    /// `--data-dir` must not leave an empty database behind and report
    /// "no teams yet" as if it were the real one.
    MustExist,
}

pub(super) async fn open_store(
    storage: &StorageArgs,
    open: Open,
) -> Result<Arc<dyn Store>, Failure> {
    let resolved = storage.resolve();
    let is_postgres = resolved.database_url.starts_with("postgres://")
        || resolved.database_url.starts_with("postgresql://");
    if open == Open::MustExist && !is_postgres {
        let path = store::sqlite::path_from_url(&resolved.database_url)?;
        if !path.exists() {
            return Err(Failure(format!(
                "no database at {}: check --data-dir or --database (the server creates it on first start; `spec-kitty-server team add SLUG` does too)",
                path.display()
            )));
        }
    }
    Ok(store::open(&resolved.database_url).await?)
}

pub(super) fn read_password(from_stdin: bool) -> Result<String, Failure> {
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
    ask_new_password(
        |prompt| rpassword::prompt_password(prompt),
        super::serve::print_error,
    )
}

/// How many times the prompt asks before giving up.
const PROMPT_ATTEMPTS: usize = 3;

/// Asks for a new password twice, saying the minimum length up front, and
/// asks again (up to [`PROMPT_ATTEMPTS`] times) when it is too short or
/// the two differ, as `passwd` does, instead of making the admin start over.
fn ask_new_password(
    mut ask: impl FnMut(&str) -> std::io::Result<String>,
    mut say: impl FnMut(&str),
) -> Result<String, Failure> {
    let first_prompt = format!("New password (at least {MIN_PASSWORD_LEN} characters): ");
    for attempt in 1..=PROMPT_ATTEMPTS {
        let first = ask(&first_prompt)?;
        let problem = if let Err(e) = admin::check_password(&first) {
            e.to_string()
        } else if ask("Password (again): ")? != first {
            "the two passwords differ".to_string()
        } else {
            return Ok(first);
        };
        if attempt < PROMPT_ATTEMPTS {
            say(&format!("{problem}; try again."));
        } else {
            return Err(Failure(format!(
                "{problem}; nothing was changed after {PROMPT_ATTEMPTS} attempts"
            )));
        }
    }
    Err(Failure("no password given".into()))
}

/// Prints rows under a header, each column as wide as its widest cell, so
/// the list reads in a terminal and still splits on whitespace in scripts
/// (which should prefer `--json`).
pub(super) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{out}");
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub(super) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn joined_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

pub(super) async fn team(command: TeamCommand, storage: &StorageArgs) -> Result<(), Failure> {
    let open = match command {
        TeamCommand::Add { .. } => Open::MayCreate,
        _ => Open::MustExist,
    };
    let store = open_store(storage, open).await?;
    match command {
        TeamCommand::Add { slug } => {
            admin::add_team(&store, &slug).await?;
            println!("Created team '{slug}'.");
        }
        TeamCommand::List { json } => {
            let teams = admin::list_teams(&store).await?;
            if json {
                return print_json(&teams);
            }
            if teams.is_empty() {
                println!("No teams yet. Create one with: spec-kitty-server team add SLUG");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = teams
                .iter()
                .map(|t| {
                    vec![
                        t.slug.clone(),
                        t.projects.to_string(),
                        joined_or_dash(&t.members),
                    ]
                })
                .collect();
            print_table(&["TEAM", "PROJECTS", "MEMBERS"], &rows);
        }
        TeamCommand::AddMember { slug, user } => {
            admin::add_member(&store, &slug, &user).await?;
            println!("Added '{user}' to team '{slug}'.");
        }
        TeamCommand::RemoveMember { slug, user } => {
            admin::remove_member(&store, &slug, &user).await?;
            println!("Removed '{user}' from team '{slug}'.");
        }
        TeamCommand::Remove { slug } => {
            admin::remove_team(&store, &slug).await?;
            println!("Removed team '{slug}' and its memberships.");
        }
    }
    Ok(())
}

pub(super) async fn user(
    command: UserCommand,
    storage: &StorageArgs,
    password: String,
) -> Result<(), Failure> {
    let store = open_store(storage, Open::MustExist).await?;
    match command {
        UserCommand::Add { username, team, .. } => {
            let stored = admin::add_user(&store, &username, &password, &team)
                .await
                .map_err(|e| match e {
                    AdminError::Store(store::StoreError::NotFound(_)) => Failure(format!(
                        "no team '{team}': create it first with `spec-kitty-server team add {team}`"
                    )),
                    other => Failure(other.to_string()),
                })?;
            println!("Created user '{stored}' in team '{team}'.");
        }
        UserCommand::Passwd { username, .. } => {
            admin::set_password(&store, &username, &password).await?;
            println!("Set a new password for '{username}'; their sessions have ended.");
        }
        UserCommand::Disable { username } => {
            admin::disable_user(&store, &username).await?;
            println!("Disabled '{username}': their log-ins and tokens are refused from now on.");
        }
        UserCommand::Enable { username } => {
            admin::enable_user(&store, &username).await?;
            println!("Enabled '{username}': they can log in again.");
        }
        UserCommand::Unlock { username } => {
            admin::unlock_user(&store, &username).await?;
            println!("Cleared the failed log-ins of '{username}': they can try again now.");
        }
        UserCommand::Remove { username } => {
            admin::remove_user(&store, &username).await?;
            println!(
                "Removed user '{username}' with their memberships and sessions; their events stay on the board."
            );
        }
        UserCommand::List { json } => {
            let users = admin::list_users(&store).await?;
            if json {
                return print_json(&users);
            }
            if users.is_empty() {
                println!("No users yet. Add one with: spec-kitty-server user add USER --team SLUG");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.username.clone(),
                        if u.disabled { "disabled" } else { "active" }.to_string(),
                        u.team.clone().unwrap_or_else(|| "-".to_string()),
                        joined_or_dash(&u.member_of),
                    ]
                })
                .collect();
            print_table(&["USER", "STATE", "TEAM", "MEMBER OF"], &rows);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(answers: &[&str]) -> (Result<String, String>, Vec<String>, Vec<String>) {
        let mut answers = answers.iter();
        let mut prompts = Vec::new();
        let mut said = Vec::new();
        let result = ask_new_password(
            |prompt| {
                prompts.push(prompt.to_string());
                Ok(answers.next().map(|a| a.to_string()).unwrap_or_default())
            },
            |line| said.push(line.to_string()),
        )
        .map_err(|Failure(m)| m);
        (result, prompts, said)
    }

    #[test]
    fn the_prompt_states_the_minimum_first_and_asks_again_on_a_mismatch() {
        let (result, prompts, said) = run(&["password1", "password2", "password1", "password1"]);
        assert_eq!(result.as_deref(), Ok("password1"));
        assert!(prompts[0].contains("at least 8 characters"), "{prompts:?}");
        assert_eq!(prompts.len(), 4, "{prompts:?}");
        assert_eq!(said, ["the two passwords differ; try again."]);
    }

    #[test]
    fn a_short_password_is_refused_before_the_second_prompt() {
        let (result, prompts, said) = run(&["short", "longenough", "longenough"]);
        assert_eq!(result.as_deref(), Ok("longenough"));
        assert_eq!(prompts.len(), 3, "no confirmation asked for the short one");
        assert!(said[0].contains("too short"), "{said:?}");
    }

    #[test]
    fn three_failures_give_up_without_change() {
        let (result, _, said) = run(&["a", "b", "c"]);
        let message = result.expect_err("gives up");
        assert!(message.contains("nothing was changed"), "{message}");
        assert_eq!(said.len(), 2);
    }
}
