//! One write transaction on the queue: Lamport ticks, enqueued events and
//! the publish ledger (which features this machine published, which work
//! packages it already sent a lane for), committed together or not at all.
//!
//! `agent tasks publish` queues dozens of events at once and `move-task`
//! may publish a feature before its move: either all of it is queued and
//! recorded, or nothing is, and the clock never hands out a value twice.

use std::path::Path;

use rusqlite::{OptionalExtension, Transaction, params};

use super::row::{Row, insert};
use super::{Enqueued, Queue, QueueError, Queueable, classify, now_micros};

/// The open transaction [`Queue::write`] hands to its closure.
pub struct Writer<'q> {
    tx: Transaction<'q>,
    path: &'q Path,
    /// The last value handed out (or found in the file).
    lamport: u64,
    ticked: bool,
}

impl Queue {
    /// Runs `work` in one IMMEDIATE transaction and commits when it
    /// returns `Ok`; an `Err` rolls everything back (events, ledger and
    /// clock). `floor` lets the clock jump past a value seen elsewhere.
    pub fn write<R, E: From<QueueError>>(
        &mut self,
        floor: u64,
        work: impl FnOnce(&mut Writer<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let path = self.path.clone();
        let err = |e| classify(&path, e);
        let tx = self.begin()?;
        let current: i64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'lamport'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?
            .unwrap_or(0);
        let mut writer = Writer {
            tx,
            path: &path,
            lamport: (current.max(0) as u64).max(floor),
            ticked: false,
        };
        let result = work(&mut writer)?;
        writer.commit()?;
        Ok(result)
    }
}

impl Writer<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> QueueError + '_ {
        |e| classify(self.path, e)
    }

    /// The next Lamport value; stored when the transaction commits.
    pub fn tick(&mut self) -> u64 {
        self.lamport += 1;
        self.ticked = true;
        self.lamport
    }

    /// Queues one event (keeping the first of an event id queued twice).
    pub fn enqueue(&mut self, event: &impl Queueable) -> Result<Enqueued, QueueError> {
        let row = Row::of(event)?;
        insert(&self.tx, &row).map_err(self.err())
    }

    /// Whether this machine has published `feature` of the project: one
    /// primary-key lookup, cheap enough for every `move-task`.
    pub fn feature_published(&self, project_uuid: &str, feature: &str) -> Result<bool, QueueError> {
        self.tx
            .prepare_cached(
                "SELECT 1 FROM published_features WHERE project_uuid = ?1 AND feature_slug = ?2",
            )
            .map_err(self.err())?
            .exists(params![project_uuid, feature])
            .map_err(self.err())
    }

    /// Records that `feature` was published (again: the time moves on).
    pub fn mark_published(&mut self, project_uuid: &str, feature: &str) -> Result<(), QueueError> {
        self.tx
            .prepare_cached(
                "INSERT INTO published_features (project_uuid, feature_slug, published_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT(project_uuid, feature_slug) DO UPDATE SET published_at = excluded.published_at",
            )
            .map_err(self.err())?
            .execute(params![project_uuid, feature, now_micros()])
            .map_err(self.err())?;
        Ok(())
    }

    /// Whether a `WPStatusChanged` for this work package was ever queued here.
    pub fn status_sent(
        &self,
        project_uuid: &str,
        feature: &str,
        wp_id: &str,
    ) -> Result<bool, QueueError> {
        self.tx
            .prepare_cached(
                "SELECT 1 FROM status_sent
                 WHERE project_uuid = ?1 AND feature_slug = ?2 AND wp_id = ?3",
            )
            .map_err(self.err())?
            .exists(params![project_uuid, feature, wp_id])
            .map_err(self.err())
    }

    /// Records a queued `WPStatusChanged` (the first one is kept).
    pub fn record_status(
        &mut self,
        project_uuid: &str,
        feature: &str,
        wp_id: &str,
        event_id: &str,
    ) -> Result<(), QueueError> {
        self.tx
            .prepare_cached(
                "INSERT INTO status_sent (project_uuid, feature_slug, wp_id, first_event_id)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .map_err(self.err())?
            .execute(params![project_uuid, feature, wp_id, event_id])
            .map_err(self.err())?;
        Ok(())
    }

    fn commit(self) -> Result<(), QueueError> {
        let err = |e| classify(self.path, e);
        if self.ticked {
            self.tx
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('lamport', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [self.lamport as i64],
                )
                .map_err(err)?;
        }
        self.tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::paths::Home;
    use serde_json::json;

    fn event(id: &str, t: u64) -> serde_json::Value {
        json!({"event_id": id, "event_type": "T", "timestamp": "2026-01-01T00:00:00Z", "lamport_clock": t})
    }

    #[test]
    fn everything_commits_together_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut q = Queue::open(&Home::at(dir.path().join(".spec-kitty"))).expect("opens");
        let failed: Result<(), QueueError> = q.write(0, |w| {
            let t = w.tick();
            w.enqueue(&event("a", t))?;
            w.mark_published("u", "001-x")?;
            Err(QueueError::Invalid("stop".into()))
        });
        assert!(failed.is_err());
        assert_eq!(q.len().expect("len"), 0);
        assert_eq!(
            q.lamport().expect("clock"),
            0,
            "a rolled-back tick is not kept"
        );
        q.write(0, |w| -> Result<(), QueueError> {
            assert!(!w.feature_published("u", "001-x")?);
            for id in ["a", "b"] {
                let t = w.tick();
                w.enqueue(&event(id, t))?;
            }
            w.mark_published("u", "001-x")?;
            w.record_status("u", "001-x", "WP01", "a")?;
            w.record_status("u", "001-x", "WP01", "b")?;
            Ok(())
        })
        .expect("commits");
        assert_eq!((q.len().expect("len"), q.lamport().expect("clock")), (2, 2));
        q.write(0, |w| -> Result<(), QueueError> {
            assert!(w.feature_published("u", "001-x")?);
            assert!(!w.feature_published("other", "001-x")?);
            assert!(w.status_sent("u", "001-x", "WP01")?);
            assert!(!w.status_sent("u", "001-x", "WP02")?);
            Ok(())
        })
        .expect("reads");
    }
}
