//! The read API of the team board (contract section 8): projects, a
//! project's board, its event feed and its live stream. Everything is
//! scoped to the caller's team; another team's project, like a project
//! that does not exist, is `404`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use spec_kitty_protocol::board::{
    Board, DEFAULT_FEED_LIMIT, EventPage, MAX_FEED_LIMIT, ProjectList, ProjectSummary,
};
use spec_kitty_protocol::validate::is_uuid;

use crate::board::stream::{self as watch, Message};
use crate::board::{ProjectRef, cursor};
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::routes::authenticated::Authenticated;
use crate::ingest::rules::{no_team, not_member};
use crate::store::User;
use crate::web::session;

/// Who reads: a bearer token, or a browser's session cookie; in both cases
/// a member of the team they read.
pub struct Viewer {
    pub user: User,
    pub team: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Viewer::from_headers(&parts.headers, state).await
    }
}

impl Viewer {
    pub async fn from_headers(headers: &HeaderMap, state: &AppState) -> Result<Viewer, ApiError> {
        let (user, team) = if headers.contains_key(axum::http::header::AUTHORIZATION) {
            let auth = Authenticated::from_headers(headers, state).await?;
            let Some(team) = auth.team else {
                return Err(ApiError::Forbidden(no_team(&auth.user.username)));
            };
            (auth.user, team)
        } else {
            session::from_headers(headers, state)
                .await?
                .ok_or_else(ApiError::token_invalid)?
        };
        if !state.store.is_member(user.id, &team).await? {
            return Err(ApiError::Forbidden(not_member(&team, &user.username)));
        }
        Ok(Viewer { user, team })
    }

    /// The team's project with this uuid.
    pub async fn project(&self, state: &AppState, uuid: &str) -> Result<ProjectRef, ApiError> {
        if !is_uuid(uuid) {
            return Err(ApiError::bad_request(
                "Invalid project_uuid",
                format!("project_uuid: expected a UUID, found '{}'", shorten(uuid)),
            ));
        }
        state
            .store
            .team_project(&self.team, uuid)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("No project {uuid} in team '{}'", self.team)))
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(60).collect()
}

/// `GET /api/v1/projects/`.
pub async fn projects(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<ProjectList>, ApiError> {
    let rows = state.store.team_projects(&viewer.team).await?;
    let projects = rows
        .into_iter()
        .map(|row| ProjectSummary {
            work_packages: row.counts.total(),
            project_uuid: row.project.uuid,
            project_slug: row.project.slug,
            features: row.features,
            counts: row.counts,
            last_event_at: row.last_event_at,
        })
        .collect();
    Ok(Json(ProjectList { projects }))
}

/// `GET /api/v1/projects/{uuid}/board/`.
pub async fn board(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(uuid): Path<String>,
) -> Result<Json<Board>, ApiError> {
    let project = viewer.project(&state, &uuid).await?;
    Ok(Json(state.store.board(&project).await?.into_document()))
}

/// The query parameters of a request, or a 400 naming the trouble.
fn query(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request("Invalid query string", e.body_text()))
}

fn after_param(value: Option<&String>, name: &str) -> Result<i64, ApiError> {
    match value {
        None => Ok(0),
        Some(text) => cursor::decode(text).ok_or_else(|| {
            ApiError::bad_request(
                format!("Invalid {name}"),
                format!(
                    "{name}: expected a cursor this server handed out (a board's \"cursor\" or a page's \"next\"), found '{}'",
                    shorten(text)
                ),
            )
        }),
    }
}

/// `GET /api/v1/projects/{uuid}/events/?after=CURSOR&limit=N`.
pub async fn events(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(uuid): Path<String>,
    uri: Uri,
) -> Result<Json<EventPage>, ApiError> {
    let params = query(&uri)?;
    let after = after_param(params.get("after"), "after")?;
    let limit = match params.get("limit") {
        None => DEFAULT_FEED_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_FEED_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid limit",
                    format!(
                        "limit: expected a whole number from 1 to {MAX_FEED_LIMIT}, found '{}'",
                        shorten(text)
                    ),
                )
            })?,
    };
    let project = viewer.project(&state, &uuid).await?;
    let rows = state.store.feed(project.id, after, limit).await?;
    let next = rows.last().map(|(seq, _)| cursor::encode(*seq));
    let events = rows
        .into_iter()
        .filter_map(|(_, body)| serde_json::value::RawValue::from_string(body).ok())
        .collect();
    Ok(Json(EventPage { events, next }))
}

/// How often a comment keeps an idle stream open (the contract asks for
/// at least every 15 s).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// `GET /api/v1/projects/{uuid}/stream/`: one `wp` message per changed
/// work package, resumable with `Last-Event-ID` (or `?after=CURSOR`).
pub async fn stream(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params = query(&uri)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let project = viewer.project(&state, &uuid).await?;
    let after = match (&resume, params.get("after")) {
        (Some(id), _) => after_param(Some(id), "Last-Event-ID")?,
        (None, Some(after)) => after_param(Some(after), "after")?,
        (None, None) => project.last_seq,
    };
    let receiver = watch::watch(state.store.clone(), &state.hub, project, after);
    let events = stream::unfold(receiver, |mut receiver| async move {
        let message = receiver.recv().await?;
        let event = match message {
            Message::Card { cursor, data } => Event::default().event("wp").id(cursor).data(data),
            Message::Reload { cursor } => Event::default().event("reload").id(cursor).data(
                "{\"reason\": \"too many changes to send one by one; fetch the board again\"}",
            ),
        };
        Some((Ok(event), receiver))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
