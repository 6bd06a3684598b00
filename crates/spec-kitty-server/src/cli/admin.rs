//! `team` and `user`: the admin commands, each through [`crate::admin`].

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use super::{Failure, TeamCommand, UserCommand};
use crate::admin::{self, AdminError};
use crate::config::StorageArgs;
use crate::store::{self, Store};

pub(super) async fn open_store(storage: &StorageArgs) -> Result<Arc<dyn Store>, Failure> {
    let resolved = storage.resolve();
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
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        return Err(Failure(
            "the two passwords differ; nothing was changed".into(),
        ));
    }
    Ok(first)
}

pub(super) async fn team(command: TeamCommand, storage: &StorageArgs) -> Result<(), Failure> {
    let store = open_store(storage).await?;
    match command {
        TeamCommand::Add { slug } => {
            admin::add_team(&store, &slug).await?;
            println!("Created team '{slug}'.");
        }
        TeamCommand::List => {
            let teams = admin::list_teams(&store).await?;
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
            admin::add_member(&store, &slug, &user).await?;
            println!("Added '{user}' to team '{slug}'.");
        }
        TeamCommand::RemoveMember { slug, user } => {
            admin::remove_member(&store, &slug, &user).await?;
            println!("Removed '{user}' from team '{slug}'.");
        }
    }
    Ok(())
}

pub(super) async fn user(
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
            admin::disable_user(&store, &username).await?;
            println!("Disabled '{username}': their log-ins and tokens are refused from now on.");
        }
        UserCommand::List => {
            let users = admin::list_users(&store).await?;
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
