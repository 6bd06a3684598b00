//! Reading the team board from the server (contract section 8): the
//! project's `board/` document, with the access token of the stored
//! session, from the server that issued it (tokens only go to their
//! issuer). An expired token is refreshed first; a `401` is refreshed once
//! and retried once, as the probe does.

use spec_kitty_protocol::board::Board;
use spec_kitty_protocol::paths;

use crate::home::paths::Home;
use crate::net::http::{Http, HttpError};
use crate::outcome::Outcome;
use crate::session::credentials::LOCK_WAIT;
use crate::session::{self, AuthError};

/// Why no board could be shown.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Network(#[from] HttpError),
    #[error("{server} refused the access token even after a refresh ({detail})")]
    Unauthorized { server: String, detail: String },
    #[error("{server} denied access to the board ({detail})")]
    Forbidden { server: String, detail: String },
    #[error("project {uuid} is not on {server} for your team{team}", team = team.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    NotFound {
        uuid: String,
        server: String,
        team: Option<String>,
    },
    #[error("{server} answered HTTP {status} ({detail})")]
    Status {
        server: String,
        status: u16,
        detail: String,
    },
    #[error("{server} sent a board that cannot be read: {detail}")]
    Unreadable { server: String, detail: String },
}

impl BoardError {
    /// The outcome (and so the exit code) of `sync status --check` for the
    /// same situation; `None` for a project the server does not know.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            BoardError::Auth(e) => Some(e.into()),
            BoardError::Network(e) => Some(e.into()),
            BoardError::Unauthorized { .. } => Some(Outcome::AuthenticationFailed),
            BoardError::Forbidden { .. } => Some(Outcome::PermissionDenied),
            BoardError::NotFound { .. } => None,
            BoardError::Status { .. } | BoardError::Unreadable { .. } => {
                Some(Outcome::UnexpectedStatus)
            }
        }
    }
}

/// A board as the server sent it, and read.
#[derive(Debug)]
pub struct Fetched {
    /// The document exactly as sent, byte for byte (what `--json` prints).
    pub document: String,
    pub board: Board,
    pub server: String,
}

/// Fetches the board of `project_uuid`.
pub fn fetch(home: &Home, http: &Http, project_uuid: &str) -> Result<Fetched, BoardError> {
    let mut session = session::access_token(home, http, http.timeout(), LOCK_WAIT)?;
    let server = session.credentials.server_url.clone();
    let url = format!("{server}{}", paths::board(project_uuid));
    let mut retried = false;
    let reply = loop {
        let reply = http.get(&url, Some(&session.access))?;
        if reply.status == 401 && !retried {
            retried = true;
            session = session::refresh(home, http, &session.access, http.timeout(), LOCK_WAIT)?;
            continue;
        }
        break reply;
    };
    let detail = reply.error_text();
    match reply.status {
        200 => {}
        401 => return Err(BoardError::Unauthorized { server, detail }),
        403 => return Err(BoardError::Forbidden { server, detail }),
        404 => {
            return Err(BoardError::NotFound {
                uuid: project_uuid.to_string(),
                server,
                team: session.credentials.team_slug,
            });
        }
        status => {
            return Err(BoardError::Status {
                server,
                status,
                detail,
            });
        }
    }
    let unreadable = |e: serde_json::Error| BoardError::Unreadable {
        server: server.clone(),
        detail: e.to_string(),
    };
    let board: Board = serde_json::from_slice(&reply.body).map_err(unreadable)?;
    let document = String::from_utf8(reply.body).map_err(|e| BoardError::Unreadable {
        server: server.clone(),
        detail: e.to_string(),
    })?;
    Ok(Fetched {
        document,
        board,
        server,
    })
}
