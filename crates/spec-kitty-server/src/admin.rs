//! Administration: teams, users and memberships. The CLI subcommands and
//! tests call these, so the rules (valid names, hashing off the executor)
//! live in one place.

use std::sync::Arc;

use crate::auth::passwords::{self, PasswordError};
use crate::store::{Store, StoreError, TeamSummary, UserSummary, fold_username};

/// Why an admin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("{0}")]
    Invalid(String),
}

/// The shortest password `user add` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Team slugs: lower-case letters, digits and dashes, as in URLs.
pub fn check_slug(slug: &str) -> Result<(), AdminError> {
    let ok = !slug.is_empty()
        && slug.len() <= 64
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && slug != "local";
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "'{slug}' is not a valid team slug: use lower-case letters, digits and dashes (like 'acme' or 'team-2'); 'local' is reserved"
        )))
    }
}

/// Usernames: 1 to 150 characters, no whitespace or control characters.
pub fn check_username(username: &str) -> Result<(), AdminError> {
    let ok = !username.is_empty()
        && username.chars().count() <= 150
        && !username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "'{username}' is not a valid username: use 1 to 150 characters without spaces"
        )))
    }
}

pub async fn add_team(store: &Arc<dyn Store>, slug: &str) -> Result<(), AdminError> {
    check_slug(slug)?;
    Ok(store.create_team(slug).await?)
}

/// Refuses a password shorter than [`MIN_PASSWORD_LEN`] characters.
pub fn check_password(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::Invalid(format!(
            "the password is too short: use at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// Hashes with argon2id on a blocking thread: it takes long enough to
/// stall the executor.
async fn hash_password(password: &str) -> Result<String, AdminError> {
    check_password(password)?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?
        .map_err(AdminError::from)
}

/// Adds a user to an existing team. Usernames are case-insensitive: the
/// user is stored under [`fold_username`] of the name given, which this
/// returns.
pub async fn add_user(
    store: &Arc<dyn Store>,
    username: &str,
    password: &str,
    team: &str,
) -> Result<String, AdminError> {
    check_username(username)?;
    let hash = hash_password(password).await?;
    store.create_user(username, &hash, team).await?;
    Ok(fold_username(username))
}

/// Sets a new password and ends the user's sessions.
pub async fn set_password(
    store: &Arc<dyn Store>,
    username: &str,
    password: &str,
) -> Result<(), AdminError> {
    let hash = hash_password(password).await?;
    Ok(store.set_password(username, &hash).await?)
}

/// Lets a disabled user log in again.
pub async fn enable_user(store: &Arc<dyn Store>, username: &str) -> Result<(), AdminError> {
    Ok(store.enable_user(username).await?)
}

/// Deletes a user; their uploaded events stay on the board.
pub async fn remove_user(store: &Arc<dyn Store>, username: &str) -> Result<(), AdminError> {
    Ok(store.remove_user(username).await?)
}

/// Deletes a team that has no projects.
pub async fn remove_team(store: &Arc<dyn Store>, slug: &str) -> Result<(), AdminError> {
    Ok(store.remove_team(slug).await?)
}

/// Clears the failed log-ins counted against a username, ending its
/// lock-out at once instead of when the window passes: the user's count
/// from every address and from any; the per-address count is left alone,
/// as it protects against guessing across many names.
pub async fn unlock_user(store: &Arc<dyn Store>, username: &str) -> Result<(), AdminError> {
    if store.find_user(username).await?.is_none() {
        return Err(AdminError::Store(StoreError::NotFound(format!(
            "no user '{username}'"
        ))));
    }
    Ok(store.clear_user_login_failures(username).await?)
}

/// Teams with their members and project counts, for `team list`.
pub async fn list_teams(store: &Arc<dyn Store>) -> Result<Vec<TeamSummary>, AdminError> {
    Ok(store.list_teams().await?)
}

/// Adds an existing user to a team; a user without a team of their own
/// gets this one.
pub async fn add_member(store: &Arc<dyn Store>, team: &str, user: &str) -> Result<(), AdminError> {
    Ok(store.add_member(team, user).await?)
}

/// Removes a user from a team; their next sync for it is refused.
pub async fn remove_member(
    store: &Arc<dyn Store>,
    team: &str,
    user: &str,
) -> Result<(), AdminError> {
    Ok(store.remove_member(team, user).await?)
}

/// Disables a user and revokes their sessions at once.
pub async fn disable_user(store: &Arc<dyn Store>, username: &str) -> Result<(), AdminError> {
    Ok(store.disable_user(username).await?)
}

/// Users with their teams, for `user list`.
pub async fn list_users(store: &Arc<dyn Store>) -> Result<Vec<UserSummary>, AdminError> {
    Ok(store.list_users().await?)
}

/// Recomputes the board from the stored events (one project or all); with
/// `check`, only reports where the stored board differs.
pub async fn rebuild_board(
    store: &Arc<dyn Store>,
    project_uuid: Option<&str>,
    check: bool,
) -> Result<crate::board::RebuildReport, AdminError> {
    Ok(store.rebuild_board(project_uuid, check).await?)
}

/// The longest lifetime `token create --expires` accepts, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Token names: 1 to 100 characters, no control characters.
pub fn check_token_name(name: &str) -> Result<(), AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "a token needs a name of 1 to 100 characters (like 'ci' or 'agent on build-3')".into(),
        ));
    }
    Ok(())
}

/// A personal access token just made: shown to its owner once.
pub struct CreatedToken {
    pub id: i64,
    pub token: String,
    pub expires_at: Option<i64>,
}

/// Makes a personal access token for `user_id` named `name`, valid for
/// `days` (none: until revoked). Only its hash is stored.
pub async fn create_token_for(
    store: &Arc<dyn Store>,
    user_id: i64,
    name: &str,
    days: Option<u32>,
) -> Result<CreatedToken, AdminError> {
    check_token_name(name)?;
    if let Some(days) = days
        && !(1..=MAX_TOKEN_DAYS).contains(&days)
    {
        return Err(AdminError::Invalid(format!(
            "--expires takes 1 to {MAX_TOKEN_DAYS} days, not {days}"
        )));
    }
    let token =
        crate::auth::personal::generate().map_err(|e| AdminError::Invalid(e.to_string()))?;
    let now = crate::clock::now_secs();
    let expires_at = days.map(|d| now + i64::from(d) * 86_400);
    let id = store
        .create_access_token(crate::store::tokens::NewAccessToken {
            user_id,
            name: name.trim().to_string(),
            hash: crate::auth::personal::hash(&token),
            created_at: now,
            expires_at,
        })
        .await?;
    Ok(CreatedToken {
        id,
        token,
        expires_at,
    })
}

/// [`create_token_for`] a user by name (`token create`).
pub async fn create_token(
    store: &Arc<dyn Store>,
    username: &str,
    name: &str,
    days: Option<u32>,
) -> Result<CreatedToken, AdminError> {
    let user = store
        .find_user(username)
        .await?
        .ok_or_else(|| AdminError::Store(StoreError::NotFound(format!("no user '{username}'"))))?;
    create_token_for(store, user.id, name, days).await
}

/// Every token, or one user's (`token list`).
pub async fn list_tokens(
    store: &Arc<dyn Store>,
    username: Option<&str>,
) -> Result<Vec<crate::store::tokens::AccessTokenInfo>, AdminError> {
    let user_id = match username {
        None => None,
        Some(username) => Some(
            store
                .find_user(username)
                .await?
                .ok_or_else(|| {
                    AdminError::Store(StoreError::NotFound(format!("no user '{username}'")))
                })?
                .id,
        ),
    };
    Ok(store.list_access_tokens(user_id).await?)
}

/// Revokes a token by id (`token revoke`); refused for an unknown or
/// already revoked one.
pub async fn revoke_token(store: &Arc<dyn Store>, id: i64) -> Result<(), AdminError> {
    if store
        .revoke_access_token(id, None, crate::clock::now_secs())
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::Store(StoreError::NotFound(format!(
            "no live token with id {id} (see `spec-kitty-server token list`)"
        ))))
    }
}
