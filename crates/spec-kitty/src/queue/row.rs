//! What goes into the queue and comes out of it: the [`Queueable`]
//! events, the stored row, and an event's [`State`].

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;
use spec_kitty_protocol::{Event, timestamp};

use super::{Enqueued, QueueError, Queued, micros_of, now_micros};

/// Where a queued event stands (the `state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting to be sent (again).
    Pending,
    /// The server answered `rejected` for it; sent again on the next drain.
    Rejected,
    /// Set aside after a `400` or `413` of its own; not sent until unparked.
    Parked,
}

impl State {
    /// The value of the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Rejected => "rejected",
            State::Parked => "parked",
        }
    }
}

impl rusqlite::types::FromSql for State {
    fn column_result(
        value: rusqlite::types::ValueRef<'_>,
    ) -> rusqlite::types::FromSqlResult<State> {
        let text = value.as_str()?;
        [State::Pending, State::Rejected, State::Parked]
            .into_iter()
            .find(|state| state.as_str() == text)
            // The column's CHECK constraint makes this a corrupt file.
            .ok_or_else(|| {
                rusqlite::types::FromSqlError::Other(format!("unknown queue state '{text}'").into())
            })
    }
}

/// What the queue needs of an event: its id, type and time, and the JSON
/// text that is stored and sent as it is.
///
/// Events this client makes are [`Event`]s; imported ones (`sync import`,
/// the Python queue) stay raw JSON [`Value`]s, so that what another program
/// wrote is sent byte for byte, unknown fields and explicit nulls included,
/// and an invalid one can still be queued, diagnosed and discarded.
pub trait Queueable {
    fn event_id(&self) -> Option<&str>;
    fn event_type(&self) -> Option<&str>;
    fn timestamp(&self) -> Option<&str>;
    fn json(&self) -> String;
}

impl Queueable for Event {
    fn event_id(&self) -> Option<&str> {
        Some(&self.event_id)
    }
    fn event_type(&self) -> Option<&str> {
        Some(&self.event_type)
    }
    fn timestamp(&self) -> Option<&str> {
        Some(&self.timestamp)
    }
    fn json(&self) -> String {
        self.to_json()
    }
}

impl Queueable for Value {
    fn event_id(&self) -> Option<&str> {
        self.get("event_id").and_then(Value::as_str)
    }
    fn event_type(&self) -> Option<&str> {
        self.get("event_type").and_then(Value::as_str)
    }
    fn timestamp(&self) -> Option<&str> {
        self.get("timestamp").and_then(Value::as_str)
    }
    fn json(&self) -> String {
        self.to_string()
    }
}

pub(super) struct Row {
    event_id: String,
    event_type: String,
    ts_micros: i64,
    body: String,
}

impl Row {
    pub(super) fn of(event: &impl Queueable) -> Result<Row, QueueError> {
        let text = |key: &str, value: Option<&str>| {
            value
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| QueueError::Invalid(format!("{key} is missing or not a string")))
        };
        let event_id = text("event_id", event.event_id())?;
        let event_type = text("event_type", event.event_type())?;
        let ts_micros = event
            .timestamp()
            .and_then(|t| timestamp::parse(t).ok())
            .map_or_else(now_micros, micros_of);
        Ok(Row {
            event_id,
            event_type,
            ts_micros,
            body: event.json(),
        })
    }
}

pub(super) fn insert(tx: &rusqlite::Transaction<'_>, row: &Row) -> rusqlite::Result<Enqueued> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO events (event_id, event_type, ts_micros, body, queued_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(event_id) DO NOTHING",
        )?
        .execute(params![
            row.event_id,
            row.event_type,
            row.ts_micros,
            row.body,
            now_micros()
        ])?;
    Ok(if changed == 1 {
        Enqueued::Added
    } else {
        Enqueued::AlreadyQueued
    })
}

pub(super) fn queued_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Queued> {
    Ok(Queued {
        id: row.get(0)?,
        event_id: row.get(1)?,
        event_type: row.get(2)?,
        ts_micros: row.get(3)?,
        body: row.get(4)?,
        state: row.get(5)?,
        retry_count: row.get(6)?,
        last_error: row.get(7)?,
    })
}
