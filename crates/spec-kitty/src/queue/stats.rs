//! Queue health for `sync status`: depth, age, retries, event types,
//! rejected and parked events, and the last sync.

use rusqlite::OptionalExtension;
use serde::Serialize;
use spec_kitty_protocol::timestamp;
use time::OffsetDateTime;

use super::{Queue, QueueError, now_micros};

/// Queue health for `sync status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub depth: i64,
    pub oldest_event_at: Option<String>,
    pub oldest_event_age_secs: Option<i64>,
    pub retries: RetryBuckets,
    pub top_event_types: Vec<(String, i64)>,
    pub rejected: i64,
    pub parked: Vec<ParkedEvent>,
    pub last_sync_at: Option<String>,
}

/// How many events have been tried how often.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetryBuckets {
    #[serde(rename = "0")]
    pub none: i64,
    #[serde(rename = "1-3")]
    pub few: i64,
    #[serde(rename = "4+")]
    pub many: i64,
}

/// An event set aside, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedEvent {
    pub event_id: String,
    pub event_type: String,
    pub reason: Option<String>,
}

impl Queue {
    /// Queue health, read-only.
    pub fn stats(&self) -> Result<Stats, QueueError> {
        let err = self.err();
        let (depth, oldest, none, few, many, rejected): (i64, Option<i64>, i64, i64, i64, i64) =
            self.conn
                .query_row(
                    "SELECT count(*), min(ts_micros),
                        coalesce(sum(retry_count = 0), 0),
                        coalesce(sum(retry_count BETWEEN 1 AND 3), 0),
                        coalesce(sum(retry_count >= 4), 0),
                        coalesce(sum(state = 'rejected'), 0)
                 FROM events",
                    [],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    },
                )
                .map_err(&err)?;
        let mut types = self
            .conn
            .prepare(
                "SELECT event_type, count(*) AS n FROM events GROUP BY event_type
                 ORDER BY n DESC, event_type LIMIT 5",
            )
            .map_err(&err)?;
        let top_event_types = types
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        let mut parked_stmt = self
            .conn
            .prepare(
                "SELECT event_id, event_type, last_error FROM events WHERE state = 'parked'
                 ORDER BY ts_micros, id LIMIT 20",
            )
            .map_err(&err)?;
        let parked = parked_stmt
            .query_map([], |r| {
                Ok(ParkedEvent {
                    event_id: r.get(0)?,
                    event_type: r.get(1)?,
                    reason: r.get(2)?,
                })
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        let last_sync: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'last_sync_at'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?;
        let now = now_micros();
        let to_text = |micros: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                .map(timestamp::format)
                .ok()
        };
        Ok(Stats {
            depth,
            oldest_event_at: oldest.and_then(to_text),
            oldest_event_age_secs: oldest.map(|o| ((now - o) / 1_000_000).max(0)),
            retries: RetryBuckets { none, few, many },
            top_event_types,
            rejected,
            parked,
            last_sync_at: last_sync.and_then(to_text),
        })
    }
}
