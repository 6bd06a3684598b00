//! `token create|list|revoke`: personal access tokens, through
//! [`crate::admin`].

use super::admin::{Open, open_store, print_json, print_table};
use super::{Failure, TokenCommand};
use crate::admin;
use crate::clock::minute;
use crate::config::StorageArgs;

pub(super) async fn token(command: TokenCommand, storage: &StorageArgs) -> Result<(), Failure> {
    let store = open_store(storage, Open::MustExist).await?;
    match command {
        TokenCommand::Create {
            user,
            name,
            expires,
        } => {
            let created = admin::create_token(&store, &user, &name, expires).await?;
            let until = created.expires_at.map_or_else(
                || "until revoked".to_string(),
                |at| format!("until {}", minute(at)),
            );
            // The note on stderr, the token alone on stdout, so that
            // `TOKEN=$(spec-kitty-server token create ...)` takes just it.
            eprintln!(
                "Created token {} '{}' for '{user}', valid {until}. It is shown only now; store it as a secret (SPEC_KITTY_TOKEN):",
                created.id,
                name.trim()
            );
            println!("{}", created.token);
        }
        TokenCommand::List { user, json } => {
            let tokens = admin::list_tokens(&store, user.as_deref()).await?;
            if json {
                return print_json(&tokens);
            }
            if tokens.is_empty() {
                println!(
                    "No tokens yet. Create one with: spec-kitty-server token create USER --name NAME"
                );
                return Ok(());
            }
            let now = crate::clock::now_secs();
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    let state = match (t.revoked_at, t.expires_at) {
                        (Some(_), _) => "revoked",
                        (None, Some(at)) if at <= now => "expired",
                        _ => "active",
                    };
                    vec![
                        t.id.to_string(),
                        t.username.clone(),
                        t.name.clone(),
                        minute(t.created_at),
                        t.last_used_at.map_or_else(|| "never".into(), minute),
                        t.expires_at.map_or_else(|| "never".into(), minute),
                        state.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "USER",
                    "NAME",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                    "STATE",
                ],
                &rows,
            );
        }
        TokenCommand::Revoke { id } => {
            admin::revoke_token(&store, id).await?;
            println!("Revoked token {id}: it is refused from now on.");
        }
    }
    Ok(())
}
