//! The Python client's queues in a test `HOME` (the `queue_support`
//! [`Home`]): events queued by the real client or the fixture, credentials
//! it reads, and what the tests check afterwards.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::json;
use time::OffsetDateTime;

use super::{Emitted, PYTHON_SCHEMA, fixture_db, fixture_insert, ids_in, scoped_file_name};
use crate::queue_support::{Home, describe, id_of, project, stamp, status_event, stderr, stdout};

/// The project the real Python client works in (it needs `.kittify/`).
pub fn project_dir(home: &Home) -> PathBuf {
    let dir = home.file("project");
    std::fs::create_dir_all(dir.join(".kittify")).expect("create the project");
    dir
}

/// The log-in the credentials in HOME name: (url, user, team).
pub fn login_of(home: &Home) -> Option<(String, String, Option<String>)> {
    let text = std::fs::read_to_string(home.credentials_path()).ok()?;
    let doc = text
        .parse::<toml_edit::DocumentMut>()
        .expect("credentials are TOML");
    let url = doc["server"]["url"].as_str()?.to_string();
    let user = doc["user"]["username"].as_str()?.to_string();
    let team = doc["user"]
        .get("team_slug")
        .and_then(|t| t.as_str())
        .map(str::to_string);
    Some((url, user, team))
}

/// Has the Python client queue `n` events for whatever log-in HOME holds:
/// the real client when installed, else the fixture, which picks the file
/// and the `team_slug` as the client does (`local` without a team).
pub fn python_emits(home: &Home, n: usize) -> Emitted {
    if let Some(client) = super::real() {
        return client.emit(home.home.path(), &project_dir(home), n);
    }
    let (db, team) = match login_of(home) {
        Some((url, user, team)) => {
            let name = scoped_file_name(&url, &user, team.as_deref());
            (home.dir().join("queues").join(name), team)
        }
        None => (home.dir().join("queue.db"), None),
    };
    let conn = fixture_db(&db, PYTHON_SCHEMA);
    let project = project();
    let mut ids = Vec::new();
    for seq in 0..n {
        let mut event = status_event(&project, seq as u64, "in_progress", time::Duration::ZERO);
        event["team_slug"] = json!(team.as_deref().unwrap_or("local"));
        fixture_insert(&conn, &id_of(&event), "WPStatusChanged", &event.to_string());
        ids.push(id_of(&event));
    }
    Emitted { db, ids }
}

/// Credentials as a log-in by either client leaves them, for a server that
/// is not running (the Python client only reads them to pick its file).
pub fn write_credentials(home: &Home, url: &str, user: &str, team: &str) {
    let now = OffsetDateTime::now_utc();
    let text = format!(
        "[tokens]\naccess = \"a\"\nrefresh = \"r\"\naccess_expires_at = \"{}\"\nrefresh_expires_at = \"{}\"\n\n[user]\nusername = \"{user}\"\nteam_slug = \"{team}\"\n\n[server]\nurl = \"{url}\"\n",
        stamp(now + time::Duration::hours(1)),
        stamp(now + time::Duration::days(7)),
    );
    std::fs::create_dir_all(home.dir()).expect("create ~/.spec-kitty");
    std::fs::write(home.credentials_path(), text).expect("write credentials");
}

/// A path as the client shows it: `~/` for HOME.
pub fn tilde(home: &Home, path: &Path) -> String {
    let rest = path.strip_prefix(home.home.path()).expect("a path in HOME");
    format!("~/{}", rest.display())
}

pub fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

pub fn queued_ids(home: &Home) -> Vec<String> {
    sorted(home.rows().into_iter().map(|r| r.event_id).collect())
}

/// The Python client can still read the file after the import.
pub fn python_reads(home: &Home, db: &Path) -> Vec<String> {
    match super::real() {
        Some(client) => sorted(client.ids(home.home.path(), db)),
        None => sorted(ids_in(db)),
    }
}

pub fn assert_has(out: &Output, text: &str) {
    assert!(
        stdout(out).contains(text),
        "stdout lacks {text:?}:\n{}",
        describe(out)
    );
}

pub fn assert_err_has(out: &Output, text: &str) {
    assert!(
        stderr(out).contains(text),
        "stderr lacks {text:?}:\n{}",
        describe(out)
    );
}
