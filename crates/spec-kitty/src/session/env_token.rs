//! `SPEC_KITTY_TOKEN`: a personal access token from the environment, for
//! CI jobs, agents in containers and headless machines.
//!
//! When it is set, it is the bearer of every request, and the credentials
//! file is neither read nor written nor locked: a job must never pick up,
//! refresh or clobber a person's session on a shared machine. There is
//! nothing to refresh either: a refused token is refused for good. The
//! server comes from `SPEC_KITTY_SERVER_URL`, else from config.toml.

use crate::home::config::{self, Config};
use crate::home::paths::Home;

/// The variable that holds the token.
pub const TOKEN_VAR: &str = "SPEC_KITTY_TOKEN";

/// The variable that names the server for it.
pub const SERVER_VAR: &str = "SPEC_KITTY_SERVER_URL";

/// A token taken from the environment, with the server it goes to.
#[derive(Clone)]
pub struct EnvToken {
    pub token: String,
    pub server_url: String,
    /// Where the server came from: [`SERVER_VAR`] or the config file.
    pub server_source: String,
}

impl std::fmt::Debug for EnvToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvToken")
            .field("server_url", &self.server_url)
            .field("server_source", &self.server_source)
            .finish_non_exhaustive()
    }
}

/// Why a token in the environment cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvTokenError {
    #[error(
        "{TOKEN_VAR} is set but no server is: set {SERVER_VAR}, or run `spec-kitty sync server URL`"
    )]
    NoServer,
    #[error("{SERVER_VAR} is not a usable server URL: {0}")]
    BadServer(String),
}

/// Whether `SPEC_KITTY_TOKEN` is set (to anything but blanks).
pub fn is_set() -> bool {
    token_from_env().is_some()
}

fn token_from_env() -> Option<String> {
    std::env::var(TOKEN_VAR)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The token of the environment with its server; `Ok(None)` when
/// `SPEC_KITTY_TOKEN` is unset or blank.
pub fn from_env(home: &Home) -> Result<Option<EnvToken>, EnvTokenError> {
    let Some(token) = token_from_env() else {
        return Ok(None);
    };
    let from_var = std::env::var(SERVER_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty());
    let (server_url, server_source) = match from_var {
        Some(url) => (
            config::normalize_server_url(&url)
                .map_err(|e| EnvTokenError::BadServer(e.to_string()))?,
            SERVER_VAR.to_string(),
        ),
        None => {
            let config = Config::load(home).map_err(|_| EnvTokenError::NoServer)?;
            let url = config.server_url().ok_or(EnvTokenError::NoServer)?;
            (url, crate::home::paths::display(config.path()))
        }
    };
    Ok(Some(EnvToken {
        token,
        server_url,
        server_source,
    }))
}
