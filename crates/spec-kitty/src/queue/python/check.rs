//! Which Python queue rows may enter our queue, and why the others may
//! not. A refused row stays in the Python file, where nothing is lost;
//! an accepted one would otherwise be refused later, by the server, and
//! hold up the events behind it.

use serde_json::Value;
use spec_kitty_protocol::{describe_errors, validate_event};

use super::db::PythonRow;

/// A row left in the Python file, with the reason in the words
/// `sync diagnose` uses.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The row's event id, or `row N` when it has none.
    pub event_id: String,
    pub reason: String,
}

/// The team an event names, if any: absent, null, empty and `local` (what
/// the Python client writes when it had no team) mean the sender's own
/// team, as the server reads it.
fn named_team(event: &Value) -> Option<&str> {
    event
        .get("team_slug")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && *t != "local")
}

/// Accepts a row as `(event_id, event)` or says why not. `own_team` is the
/// logged-in user's team, when known: an event for another team would be
/// answered `403` and block the queue (issue #15), so it is refused here.
pub fn judge(row: PythonRow, own_team: Option<&str>) -> Result<(String, Value), Refused> {
    let Some(event_id) = row.event_id else {
        return Err(Refused {
            event_id: format!("row {}", row.rowid),
            reason: "event_id: the row has no readable event id".into(),
        });
    };
    let refuse = |reason: String| Refused {
        event_id: event_id.clone(),
        reason,
    };
    let data = row.data.map_err(|why| refuse(format!("(event): {why}")))?;
    let event: Value = serde_json::from_str(&data)
        .map_err(|e| refuse(format!("(event): expected JSON, found {e}")))?;
    let errors = validate_event(&event);
    if !errors.is_empty() {
        return Err(refuse(describe_errors(&errors)));
    }
    if event.get("event_id").and_then(Value::as_str) != Some(event_id.as_str()) {
        return Err(refuse(format!(
            "event_id: the event's id differs from the row's ({event_id})"
        )));
    }
    if let (Some(own), Some(team)) = (own_team, named_team(&event))
        && team != own
    {
        return Err(refuse(format!(
            "team_slug: the event is for team '{team}', but you are logged in to team '{own}'; log in as a member of '{team}' to import it"
        )));
    }
    Ok((event_id, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(data: &Value) -> PythonRow {
        PythonRow {
            rowid: 1,
            event_id: data["event_id"].as_str().map(str::to_string),
            data: Ok(data.to_string()),
        }
    }

    fn event(team: Option<&str>) -> Value {
        let mut event = spec_kitty_protocol::fixtures::status_event_json(
            "550e8400-e29b-41d4-a716-446655440000",
            "my-project",
            1,
            ("planned", "doing"),
            time::OffsetDateTime::now_utc(),
        );
        match team {
            Some(team) => event["team_slug"] = json!(team),
            None => {
                if let Some(obj) = event.as_object_mut() {
                    obj.remove("team_slug");
                }
            }
        }
        event
    }

    #[test]
    fn own_team_local_and_absent_pass_another_team_does_not() {
        for team in [Some("acme"), Some("local"), Some(""), None] {
            assert!(judge(row(&event(team)), Some("acme")).is_ok(), "{team:?}");
        }
        let refused = judge(row(&event(Some("beta"))), Some("acme")).expect_err("beta");
        assert!(
            refused.reason.starts_with("team_slug:"),
            "{}",
            refused.reason
        );
        assert!(
            judge(row(&event(Some("beta"))), None).is_ok(),
            "unknown own team: left for the server"
        );
    }

    #[test]
    fn invalid_rows_are_refused_with_the_field() {
        let mut bad = event(None);
        bad["payload"]["to_lane"] = json!("doingg");
        let refused = judge(row(&bad), None).expect_err("bad lane");
        assert!(
            refused.reason.contains("payload.to_lane"),
            "{}",
            refused.reason
        );
        let mut text = row(&event(None));
        text.data = Ok("{not json".into());
        assert!(judge(text, None).is_err());
        let mut other = row(&event(None));
        other.event_id = Some("01ARZ3NDEKTSV4RRFFQ69G5FAV".into());
        assert!(judge(other, None).is_err(), "ids must agree");
    }
}
