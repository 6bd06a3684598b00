//! What the pages show, shaped for the templates in `templates/`.

use askama::Template;
use spec_kitty_protocol::board::Card;
use spec_kitty_protocol::timestamp::ago;
use time::OffsetDateTime;

use crate::board::{BoardRows, COLUMNS, ProjectRow, StoredCard, wp_order};

/// The parts every page shares: the top bar.
pub struct Chrome {
    pub asset_version: &'static str,
    pub who: Option<Who>,
}

pub struct Who {
    pub username: String,
    pub team: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub error: Option<String>,
    pub username: String,
    /// Where to go after logging in (a page of this site), or empty.
    pub next: String,
}

#[derive(Template)]
#[template(path = "device.html")]
pub struct DevicePage {
    pub chrome: Chrome,
    pub username: String,
    pub team: String,
    /// The request to approve or deny; `None` shows the code form.
    pub pending: Option<DeviceRequest>,
    pub error: Option<String>,
    /// What was typed into the code form.
    pub typed: String,
}

pub struct DeviceRequest {
    pub code: String,
    pub client_name: String,
    pub client_addr: String,
    pub asked: String,
}

#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage {
    pub chrome: Chrome,
    pub sessions: Vec<SessionRow>,
}

/// One signed-in device (a refresh-token family).
pub struct SessionRow {
    pub family: String,
    pub client: String,
    pub address: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub chrome: Chrome,
    /// A token just made: shown on this one answer only.
    pub created: Option<NewToken>,
    pub error: Option<String>,
    pub tokens: Vec<TokenRow>,
}

pub struct NewToken {
    pub name: String,
    pub token: String,
}

/// One row of the Tokens page; never the token itself.
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub heading: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
pub struct ProjectsPage {
    pub chrome: Chrome,
    pub projects: Vec<ProjectView>,
}

pub struct ProjectView {
    pub uuid: String,
    pub name: String,
    pub features: u64,
    pub work_packages: u64,
    pub last_event_at: String,
    pub last_event_ago: Option<String>,
    pub bar_width: u64,
    pub segments: Vec<Segment>,
    pub lanes: Vec<LaneCount>,
}

pub struct Segment {
    pub lane: &'static str,
    pub x: u64,
    pub width: u64,
}

pub struct LaneCount {
    pub lane: &'static str,
    pub title: &'static str,
    pub count: u64,
}

#[derive(Template)]
#[template(path = "board.html")]
pub struct BoardPage {
    pub chrome: Chrome,
    pub uuid: String,
    pub name: String,
    pub cursor: String,
    pub filter: String,
    pub filtered: bool,
    pub show_feature: bool,
    pub features: Vec<FeatureOption>,
    pub total: usize,
    pub columns: Vec<ColumnView>,
}

pub struct FeatureOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct ColumnView {
    pub lane: &'static str,
    pub title: &'static str,
    pub cards: Vec<CardView>,
}

pub struct CardView {
    pub href: String,
    pub key: String,
    pub tooltip: String,
    pub wp_id: String,
    pub badge: Option<String>,
    pub feature_label: String,
    pub title: String,
    pub untitled: bool,
    pub actor: Option<String>,
    pub updated_at: Option<String>,
    pub ago: String,
}

#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryPage {
    pub chrome: Chrome,
    pub uuid: String,
    pub name: String,
    pub wp_id: String,
    pub title: String,
    pub feature_label: String,
    pub lane: Option<String>,
    pub rows: Vec<HistoryRow>,
}

pub struct HistoryRow {
    pub at: String,
    pub ago: String,
    pub change: String,
    pub actor: String,
    pub node: String,
    pub note: String,
}

/// The filter value that selects the work packages without a feature.
pub const NO_FEATURE_PARAM: &str = "-";

/// `""` is the work packages sent without a feature.
pub fn feature_label(key: &str) -> String {
    if key.is_empty() {
        "(no feature)".into()
    } else {
        key.to_string()
    }
}

/// The link to a work package's history.
pub fn history_href(uuid: &str, feature_key: &str, wp_id: &str) -> String {
    let mut href = format!("/projects/{uuid}/history?wp={}", encode(wp_id));
    if !feature_key.is_empty() {
        href.push_str("&feature=");
        href.push_str(&encode(feature_key));
    }
    href
}

/// Percent-encodes a query value (slugs and ids are nearly always plain).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn card_view(uuid: &str, stored: &StoredCard, now: OffsetDateTime) -> CardView {
    let Card {
        wp_id,
        title,
        actor,
        updated_at,
        ..
    } = &stored.card;
    CardView {
        href: history_href(uuid, &stored.feature_key, wp_id),
        key: format!("{}/{wp_id}", stored.feature_key),
        tooltip: match title {
            Some(title) => format!("{wp_id} – {title}"),
            None => wp_id.clone(),
        },
        wp_id: wp_id.clone(),
        badge: stored.card.badge().map(str::to_string),
        feature_label: feature_label(&stored.feature_key),
        title: title.clone().unwrap_or_else(|| "Untitled".into()),
        untitled: title.is_none(),
        actor: actor.clone(),
        ago: updated_at
            .as_deref()
            .map(|at| ago(at, now))
            .unwrap_or_default(),
        updated_at: updated_at.clone(),
    }
}

impl BoardPage {
    /// The page of a board, filtered to one feature key when given.
    pub fn new(chrome: Chrome, rows: &BoardRows, filter: Option<&str>) -> BoardPage {
        let now = OffsetDateTime::now_utc();
        let uuid = rows.project.uuid.clone();
        let mut keys: Vec<String> = rows.feature_keys.clone();
        keys.extend(rows.cards.iter().map(|c| c.feature_key.clone()));
        keys.sort();
        keys.dedup();
        // "-" in the URL is the "(no feature)" feature, whose key is "".
        let filter = filter
            .map(|f| if f == NO_FEATURE_PARAM { "" } else { f })
            .filter(|f| keys.iter().any(|k| k == f));
        let mut cards: Vec<&StoredCard> = rows
            .cards
            .iter()
            .filter(|c| filter.is_none_or(|f| c.feature_key == f))
            .collect();
        cards.sort_by(|a, b| {
            a.feature_key
                .cmp(&b.feature_key)
                .then_with(|| wp_order(&a.card.wp_id, &b.card.wp_id))
        });
        let columns = COLUMNS
            .iter()
            .map(|(lane, title)| ColumnView {
                lane: lane.as_str(),
                title,
                cards: cards
                    .iter()
                    .filter(|c| c.card.sync_lane() == *lane)
                    .map(|c| card_view(&uuid, c, now))
                    .collect(),
            })
            .collect();
        BoardPage {
            chrome,
            name: rows.project.name().to_string(),
            cursor: crate::board::cursor::encode(rows.project.last_seq),
            filter: filter.unwrap_or_default().to_string(),
            filtered: filter.is_some(),
            show_feature: filter.is_none(),
            features: keys
                .iter()
                .map(|key| FeatureOption {
                    value: if key.is_empty() {
                        NO_FEATURE_PARAM.to_string()
                    } else {
                        key.clone()
                    },
                    label: feature_label(key),
                    selected: Some(key.as_str()) == filter,
                })
                .collect(),
            total: cards.len(),
            columns,
            uuid,
        }
    }
}

impl ProjectView {
    pub fn new(row: &ProjectRow, now: OffsetDateTime) -> ProjectView {
        let mut x = 0;
        let mut segments = Vec::new();
        let mut lanes = Vec::new();
        for (lane, title) in COLUMNS {
            let count = row.counts.get(lane);
            if count > 0 {
                segments.push(Segment {
                    lane: lane.as_str(),
                    x,
                    width: count,
                });
                x += count;
            }
            lanes.push(LaneCount {
                lane: lane.as_str(),
                title,
                count,
            });
        }
        ProjectView {
            uuid: row.project.uuid.clone(),
            name: row.project.name().to_string(),
            features: row.features,
            work_packages: row.counts.total(),
            last_event_at: row.last_event_at.clone().unwrap_or_default(),
            last_event_ago: row.last_event_at.as_deref().map(|at| ago(at, now)),
            bar_width: x.max(1),
            segments,
            lanes,
        }
    }
}
