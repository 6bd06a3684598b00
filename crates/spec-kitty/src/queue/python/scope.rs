//! Which log-in a Python queue file belongs to.
//!
//! The Python client 2.1.3 (`specify_cli/sync/queue.py`) writes to
//! `~/.spec-kitty/queues/queue-<h>.db` while logged in, where `<h>` is the
//! first 16 hex characters of the SHA-256 of its scope
//! `"<server url>|<username>|<team slug>"` (`build_queue_scope`: each part
//! trimmed and lower-cased, the URL without trailing `/`; the team
//! `no-team` when the credentials name none). The rule is reproduced here
//! exactly, so the file of the current log-in can be named: the user can
//! then tell their own waiting events from those of an old log-in.

use sha2::{Digest, Sha256};
use toml_edit::DocumentMut;

use crate::home::Home;

/// The team part of a scope when the credentials name no team (the Python
/// client's own placeholder).
pub const NO_TEAM: &str = "no-team";

/// A log-in as the Python client names its queue: server, user, team, each
/// already normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub server: String,
    pub user: String,
    pub team: String,
}

impl Scope {
    /// `build_queue_scope`: each part trimmed and lower-cased, then the URL
    /// stripped of every trailing `/` (in that order, as Python does it).
    pub fn new(server_url: &str, username: &str, team_slug: &str) -> Scope {
        let normalise = |part: &str| part.trim().to_lowercase();
        Scope {
            server: normalise(server_url).trim_end_matches('/').to_string(),
            user: normalise(username),
            team: normalise(team_slug),
        }
    }

    /// The scope string the Python client hashes and writes to
    /// `active_queue_scope`.
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.server, self.user, self.team)
    }

    /// `queue-<h>.db`, the name of this scope's queue file.
    pub fn file_name(&self) -> String {
        file_name_of(&self.key())
    }

    /// "alice on https://sync.example.com, team acme", for messages.
    pub fn describe(&self) -> String {
        if self.team == NO_TEAM {
            format!("{} on {}, no team", self.user, self.server)
        } else {
            format!("{} on {}, team {}", self.user, self.server, self.team)
        }
    }

    /// Reads a scope string back (the `active_queue_scope` file). The URL
    /// may hold a `|`, the user and team cannot, so it splits from the
    /// right.
    fn parse(key: &str) -> Option<Scope> {
        let mut parts = key.rsplitn(3, '|');
        let team = parts.next()?;
        let user = parts.next()?;
        let server = parts.next()?;
        let scope = Scope {
            server: server.to_string(),
            user: user.to_string(),
            team: team.to_string(),
        };
        // Only a string the Python client could have written names a file.
        (scope.key() == key).then_some(scope)
    }
}

/// `scope_db_path`: the file name for a scope string, hashed as given.
fn file_name_of(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("queue-{hex}.db")
}

/// The scope of the credentials in `~/.spec-kitty/credentials`, read as
/// the Python client reads it (`read_queue_scope_from_credentials`): only
/// `[user] username`, `[user] team_slug` and `[server] url` matter, tokens
/// and their expiry do not (an expired session still writes to its scoped
/// file). `None` when there is no such log-in, as for Python; also when a
/// value is not a string, which Python would stringify and we do not
/// guess at (the file is still imported, only not named).
pub fn current(home: &Home) -> Option<Scope> {
    let text = std::fs::read_to_string(home.credentials()).ok()?;
    from_credentials(&text)
}

fn from_credentials(text: &str) -> Option<Scope> {
    let doc = text.parse::<DocumentMut>().ok()?;
    let user = doc.get("user")?.as_table_like()?;
    let server = doc.get("server")?.as_table_like()?;
    let username = user.get("username")?.as_str().filter(|s| !s.is_empty())?;
    let url = server.get("url")?.as_str().filter(|s| !s.is_empty())?;
    let team = match user.get("team_slug") {
        None => NO_TEAM,
        Some(item) => match item.as_str()? {
            "" => NO_TEAM,
            team => team,
        },
    };
    Some(Scope::new(url, username, team))
}

/// The scope the Python client used last (`active_queue_scope`), if the
/// file holds one.
pub fn last_used(home: &Home) -> Option<Scope> {
    let text = std::fs::read_to_string(home.python_active_scope()).ok()?;
    Scope::parse(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names computed by the Python client 2.1.3 itself
    /// (`scope_db_path(build_queue_scope(...)).name`).
    #[test]
    fn file_names_match_the_python_client() {
        let cases = [
            (
                ("https://Sync.Example.com/ ", "  Alice ", "no-team"),
                "https://sync.example.com|alice|no-team",
                "queue-bec27e55cfbff75b.db",
            ),
            (
                ("https://sync.example.com", "alice", "Acme"),
                "https://sync.example.com|alice|acme",
                "queue-96438e373a1d396b.db",
            ),
            (
                ("http://127.0.0.1:8000//", "bob", "beta"),
                "http://127.0.0.1:8000|bob|beta",
                "queue-1b670a0f2fe9e730.db",
            ),
        ];
        for ((url, user, team), key, name) in cases {
            let scope = Scope::new(url, user, team);
            assert_eq!(scope.key(), key);
            assert_eq!(scope.file_name(), name);
            assert_eq!(Scope::parse(key), Some(scope));
        }
    }

    #[test]
    fn credentials_give_the_scope_python_would_use() {
        let text = "[tokens]\naccess = \"a\"\n\n[user]\nusername = \"Alice\"\nteam_slug = \"Acme\"\n\n[server]\nurl = \"https://sync.example.com/\"\n";
        let scope = from_credentials(text).expect("a scope");
        assert_eq!(scope.file_name(), "queue-96438e373a1d396b.db");
        let no_team = "[user]\nusername = \"alice\"\nteam_slug = \"\"\n[server]\nurl = \"https://sync.example.com\"\n";
        assert_eq!(
            from_credentials(no_team).expect("a scope").team,
            NO_TEAM,
            "an empty team is no team, as `team_slug or \"no-team\"`"
        );
        assert_eq!(from_credentials("[user]\nusername = \"alice\"\n"), None);
        assert_eq!(from_credentials("not toml ["), None);
        assert_eq!(Scope::parse("no bars here"), None);
    }
}
