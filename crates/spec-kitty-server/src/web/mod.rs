//! The team board in a browser: a log-in form, the team's projects and a
//! live board per project, rendered on the server (complete without
//! JavaScript) with one small script that follows the stream. Templates,
//! the stylesheet and the script are compiled into the binary.

pub mod device;
pub mod session;
pub mod sessions;
pub mod tokens;
pub mod views;

use spec_kitty_protocol::timestamp::ago;
use std::net::SocketAddr;
use std::sync::LazyLock;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use spec_kitty_protocol::board::Fact;
use spec_kitty_protocol::board::WinnerKey;
use time::OffsetDateTime;

use crate::board::ProjectRef;
use crate::http::api_error::ApiError;
use crate::http::app::AppState;
use crate::http::routes::auth::verify_login;
use crate::http::routes::board::Viewer;
use views::{
    BoardPage, Chrome, HistoryPage, HistoryRow, LoginPage, MessagePage, ProjectView, ProjectsPage,
    Who, feature_label,
};

const APP_CSS: &str = include_str!("../../static/app.css");
const BOARD_JS: &str = include_str!("../../static/board.js");

/// Changes whenever an asset does, so browsers may cache them for long.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in APP_CSS.bytes().chain(BOARD_JS.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash & 0xffff_ffff)
});

/// Scripts and styles only from this server, no inline code, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers every page carries.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn chrome(who: Option<Who>) -> Chrome {
    Chrome {
        asset_version: ASSET_VERSION.as_str(),
        who,
    }
}

fn page(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => ApiError::Internal(format!("template: {e}")).into_response(),
    }
}

fn message(who: Option<Who>, status: StatusCode, heading: &str, text: &str) -> Response {
    page(
        &MessagePage {
            chrome: chrome(who),
            heading: heading.into(),
            text: text.into(),
        },
        status,
    )
}

/// `GET /static/app.css`.
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /static/board.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", BOARD_JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// The signed-in viewer of a page, or `None` (the page then asks to log
/// in). A session whose user left the team is no session.
async fn viewer(headers: &HeaderMap, state: &AppState) -> Result<Option<Viewer>, ApiError> {
    if session::cookie_value(headers).is_none() {
        return Ok(None);
    }
    match Viewer::from_headers(headers, state).await {
        Ok(viewer) => Ok(Some(viewer)),
        Err(ApiError::Unauthorized(_) | ApiError::Forbidden(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn who(viewer: &Viewer) -> Who {
    Who {
        username: viewer.user.username.clone(),
        team: viewer.team.clone(),
    }
}

/// `GET /`: the team's projects, or the log-in form.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match home_page(&state, &headers).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn home_page(state: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let Some(viewer) = viewer(headers, state).await? else {
        return Ok(page(
            &LoginPage {
                chrome: chrome(None),
                error: None,
                username: String::new(),
                next: String::new(),
            },
            StatusCode::OK,
        ));
    };
    let now = OffsetDateTime::now_utc();
    let projects = state
        .store
        .team_projects(&viewer.team)
        .await?
        .iter()
        .map(|row| ProjectView::new(row, now))
        .collect();
    Ok(page(
        &ProjectsPage {
            chrome: chrome(Some(who(&viewer))),
            projects,
        },
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    /// A page of this site to go to after logging in (only `/device`).
    #[serde(default)]
    next: String,
}

/// Where a log-in goes next: `/device` (with its code) when asked,
/// else the projects. Anything else is ignored, so the form cannot be
/// made to redirect off the site.
fn after_login(next: &str) -> String {
    let safe = next == "/device"
        || next.strip_prefix("/device?code=").is_some_and(|code| {
            code.len() <= 20 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if safe {
        next.to_string()
    } else {
        "/".to_string()
    }
}

/// The answer to a form posted from another site, or `None` when it came
/// from this one: a cross-site `Origin` is refused (the session cookie is
/// also `SameSite=Strict`), and nothing is changed.
fn refuse_cross_site(headers: &HeaderMap) -> Option<Response> {
    (!same_origin(headers)).then(|| {
        message(
            None,
            StatusCode::FORBIDDEN,
            "Refused",
            "This form must be sent from this site.",
        )
    })
}

/// The signed-in viewer of a form posted from this site, or the answer to
/// send instead (403 from another site, 401 without a session); either
/// way nothing is changed. Every form that acts for a user starts here.
async fn form_viewer(state: &AppState, headers: &HeaderMap) -> Result<Viewer, Response> {
    if let Some(refused) = refuse_cross_site(headers) {
        return Err(refused);
    }
    match viewer(headers, state).await {
        Ok(Some(viewer)) => Ok(viewer),
        Ok(None) => Err(message(
            None,
            StatusCode::UNAUTHORIZED,
            "Not logged in",
            "Log in first; nothing was changed.",
        )),
        Err(e) => Err(e.into_response()),
    }
}

/// Whether a form post comes from this site (no `Origin`, or this host's).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// `POST /login`: the same check and throttle as `/api/v1/token/`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some(refused) = refuse_cross_site(&headers) {
        return refused;
    }
    let retry = |error: String, status: StatusCode| {
        page(
            &LoginPage {
                chrome: chrome(None),
                error: Some(error),
                username: form.username.clone(),
                next: form.next.clone(),
            },
            status,
        )
    };
    let user = match verify_login(&state, peer.ip(), &form.username, form.password.clone()).await {
        Ok(user) => user,
        Err(ApiError::TooManyRequests { retry_after }) => {
            return retry(
                format!("Too many failed log-ins. Try again in {retry_after} seconds."),
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
        Err(ApiError::Unauthorized(text)) => {
            return retry(format!("{text}."), StatusCode::UNAUTHORIZED);
        }
        // Too many password checks at once: the form stays, with the wait.
        Err(ApiError::ServiceUnavailable { retry_after, .. }) => {
            return retry(
                format!(
                    "The server is busy checking other log-ins. Try again in {retry_after} seconds."
                ),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
        Err(e) => return e.into_response(),
    };
    let Some(team) = user.team.clone() else {
        return retry(
            "This account belongs to no team; ask your server administrator.".into(),
            StatusCode::FORBIDDEN,
        );
    };
    match session::start(&state, &user, &team).await {
        Ok(cookie) => {
            tracing::info!(user = %user.username, "web log-in");
            let mut response = Redirect::to(&after_login(&form.next)).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /logout`.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_cross_site(&headers) {
        return refused;
    }
    session::end_and_go_home(&headers, &state).await
}

#[derive(Deserialize)]
pub struct BoardQuery {
    feature: Option<String>,
}

/// The viewer's project for a page, or the response to send instead (the
/// log-in page, a "no such project" page, or an error).
async fn page_project(
    state: &AppState,
    headers: &HeaderMap,
    uuid: &str,
) -> Result<(Viewer, ProjectRef), Response> {
    let Some(viewer) = viewer(headers, state)
        .await
        .map_err(IntoResponse::into_response)?
    else {
        return Err(Redirect::to("/").into_response());
    };
    match viewer.project(state, uuid).await {
        Ok(project) => Ok((viewer, project)),
        Err(ApiError::NotFound(_) | ApiError::BadRequest { .. }) => Err(message(
            Some(who(&viewer)),
            StatusCode::NOT_FOUND,
            "No such project",
            "Your team has no project with this id. It appears after its first sync.",
        )),
        Err(e) => Err(e.into_response()),
    }
}

/// `GET /projects/{uuid}`: the board.
pub async fn board(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    Query(query): Query<BoardQuery>,
) -> Response {
    let (viewer, project) = match page_project(&state, &headers, &uuid).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match state.store.board(&project).await {
        Ok(rows) => page(
            &BoardPage::new(
                chrome(Some(who(&viewer))),
                &rows,
                query.feature.as_deref().filter(|f| !f.is_empty()),
            ),
            StatusCode::OK,
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    wp: Option<String>,
    feature: Option<String>,
}

/// `GET /projects/{uuid}/history?wp=WPnn&feature=SLUG`: every lane change
/// of one work package, newest first.
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let (viewer, project) = match page_project(&state, &headers, &uuid).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let wp_id = query.wp.unwrap_or_default();
    let feature_key = query.feature.unwrap_or_default();
    let (bodies, rows) = match tokio::try_join!(
        state.store.wp_history(project.id, &feature_key, &wp_id),
        state.store.board(&project)
    ) {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let card = rows
        .cards
        .iter()
        .find(|c| c.feature_key == feature_key && c.card.wp_id == wp_id);
    let Some(card) = card else {
        return message(
            Some(who(&viewer)),
            StatusCode::NOT_FOUND,
            "No such work package",
            "This project's board has no such work package.",
        );
    };
    let now = OffsetDateTime::now_utc();
    page(
        &HistoryPage {
            chrome: chrome(Some(who(&viewer))),
            uuid: project.uuid.clone(),
            name: project.name().to_string(),
            title: card.card.title.clone().unwrap_or_else(|| "Untitled".into()),
            feature_label: feature_label(&feature_key),
            lane: Some(
                card.card
                    .raw_lane
                    .clone()
                    .unwrap_or_else(|| card.card.lane.clone()),
            ),
            rows: history_rows(&bodies, now),
            wp_id,
        },
        StatusCode::OK,
    )
}

/// The history table, newest first by the winner rule's order.
fn history_rows(bodies: &[String], now: OffsetDateTime) -> Vec<HistoryRow> {
    let mut rows: Vec<(WinnerKey, HistoryRow)> = bodies
        .iter()
        .filter_map(|body| serde_json::from_str::<serde_json::Value>(body).ok())
        .filter_map(|event| {
            let text = |pointer: &str| {
                event
                    .pointer(pointer)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let key = WinnerKey {
                lamport: event.get("lamport_clock")?.as_i64()?,
                node_id: text("/node_id"),
                event_id: text("/event_id"),
            };
            let change = match Fact::of_event(&event)? {
                Fact::Status { raw_lane, .. } => {
                    let from = text("/payload/from_lane");
                    if from.is_empty() {
                        format!("→ {raw_lane}")
                    } else {
                        format!("{from} → {raw_lane}")
                    }
                }
                Fact::Created { .. } => "published".to_string(),
                Fact::Feature { .. } => return None,
            };
            let at = text("/timestamp");
            Some((
                key,
                HistoryRow {
                    ago: ago(&at, now),
                    at,
                    change,
                    actor: text("/payload/actor"),
                    node: text("/node_id"),
                    note: text("/payload/reason"),
                },
            ))
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    rows.into_iter().map(|(_, row)| row).collect()
}

/// Anything else, for a browser: a page, not JSON.
pub async fn not_found_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = viewer(&headers, &state)
        .await
        .ok()
        .flatten()
        .map(|v| who(&v));
    message(
        who,
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address.",
    )
}
