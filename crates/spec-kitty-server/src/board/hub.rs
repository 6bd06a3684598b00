//! The stream hub: tells watchers that a project's board moved on.
//!
//! A notice carries only "project P is now at sequence S"; the project's
//! feed then reads what changed once and shares it with its watchers (see
//! [`feed`](super::feed)). So a slow watcher costs ingest nothing
//! (publishing never waits: the channel is a bounded broadcast, and a feed
//! that lags behind it just reads from the store again), and no change is
//! ever skipped: what a watcher missed is still in the database. Notices come from this process's ingest and, on
//! PostgreSQL, from `LISTEN`/`NOTIFY`, so changes made by any instance reach
//! every instance's watchers.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::feed::{Delta, Feeds};
use crate::store::Store;

/// How many notices a watcher may fall behind before it re-reads the store.
const CAPACITY: usize = 1024;

/// A project's board advanced to `seq` (`project_id` 0: every project may
/// have, after a lost connection to the database's notifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    pub project_id: i64,
    pub seq: i64,
}

impl Advance {
    /// Whether a watcher of `project_id` at `cursor` should look again.
    pub fn concerns(&self, project_id: i64, cursor: i64) -> bool {
        self.project_id == 0 || (self.project_id == project_id && self.seq > cursor)
    }

    /// The text of a PostgreSQL notification.
    pub fn to_payload(self) -> String {
        format!("{}:{}", self.project_id, self.seq)
    }

    /// Reads a notification; `None` for anything else.
    pub fn from_payload(text: &str) -> Option<Advance> {
        let (project, seq) = text.split_once(':')?;
        Some(Advance {
            project_id: project.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The channel on which PostgreSQL instances announce board changes.
pub const NOTIFY_CHANNEL: &str = "spec_kitty_board";

/// Fans notices out to every watcher of this process.
#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<Advance>,
    feeds: Feeds,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        let (sender, _) = broadcast::channel(CAPACITY);
        Hub {
            sender,
            feeds: Feeds::default(),
        }
    }

    /// The deltas of `project_id`'s shared feed, started if needed.
    pub fn feed(&self, store: &Arc<dyn Store>, project_id: i64) -> broadcast::Receiver<Arc<Delta>> {
        self.feeds
            .subscribe(store, project_id, || self.sender.subscribe())
    }

    /// How many project feeds run now (for tests).
    pub fn feeds(&self) -> usize {
        self.feeds.running()
    }

    /// Never blocks: with nobody watching the notice is simply dropped.
    pub fn publish(&self, advance: Advance) {
        let _ = self.sender.send(advance);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Advance> {
        self.sender.subscribe()
    }

    /// How many watchers listen now (for metrics and tests).
    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_concerns() {
        let a = Advance {
            project_id: 7,
            seq: 42,
        };
        assert_eq!(Advance::from_payload(&a.to_payload()), Some(a));
        assert_eq!(Advance::from_payload("x:1"), None);
        assert!(a.concerns(7, 41));
        assert!(!a.concerns(7, 42));
        assert!(!a.concerns(8, 0));
        assert!(
            Advance {
                project_id: 0,
                seq: 0
            }
            .concerns(9, 100)
        );
    }

    #[tokio::test]
    async fn publishing_never_waits_for_a_slow_watcher() {
        let hub = Hub::new();
        let mut slow = hub.subscribe();
        for seq in 0..(CAPACITY as i64 * 3) {
            hub.publish(Advance { project_id: 1, seq });
        }
        // The slow watcher learns it lagged and re-reads from the store.
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
