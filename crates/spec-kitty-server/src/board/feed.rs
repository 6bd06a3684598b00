//! One reader per watched project, shared by all its watchers.
//!
//! Without it, every open stream read the store on every notice: with 500
//! browsers on one board a single lane move cost 500 identical queries and
//! the last watcher heard of it 0.6 s later. A feed reads once per change
//! and hands the same cards to every watcher as a [`Delta`]; a watcher whose
//! cursor the delta does not start from (it resumed from an older
//! `Last-Event-ID`, or lagged behind the feed's channel) reads the store on
//! its own, as before, so a feed can only save work, never skip a change.
//!
//! A feed starts with its first watcher and ends when its last one leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;

use super::cursor;
use super::hub::Advance;
use super::stream::{MAX_CATCH_UP, Message};
use crate::store::{Store, StoreError};

/// Deltas a watcher may fall behind its feed before it reads on its own.
const CAPACITY: usize = 64;

/// Even without notices, a feed looks at the store this often (a lost
/// notification, or a database without them, only delays a change).
pub const SAFETY_POLL: Duration = Duration::from_secs(30);

/// After a failed read, how long a feed waits before it tries again.
const RETRY: Duration = Duration::from_secs(1);

/// What changed in a project after sequence `from`, up to `to`: every card
/// whose last change lies in `(from, to]`, in its state at `to`.
#[derive(Debug)]
pub struct Delta {
    pub from: i64,
    pub to: i64,
    pub changes: Changes,
}

#[derive(Debug)]
pub enum Changes {
    /// Each changed card with the sequence of its last change.
    Cards(Vec<(i64, Message)>),
    /// Too many to send one by one: watchers tell their pages to reload.
    Reload,
}

impl Delta {
    /// The messages for a watcher at `cursor`, with its new cursor; `None`
    /// when the delta does not start at or before the cursor (the watcher
    /// must read the store itself).
    pub fn messages_after(&self, cursor: i64) -> Option<(Vec<Message>, i64)> {
        if cursor >= self.to {
            return Some((Vec::new(), cursor));
        }
        if cursor < self.from {
            return None;
        }
        let messages = match &self.changes {
            Changes::Cards(cards) => cards
                .iter()
                .filter(|(seq, _)| *seq > cursor)
                .map(|(_, message)| message.clone())
                .collect(),
            Changes::Reload => vec![Message::Reload {
                cursor: cursor::encode(self.to),
            }],
        };
        Some((messages, self.to))
    }
}

/// Reads what changed in `project_id` after `after`, as one delta (`None`
/// when nothing did). Watchers use it too, when they read on their own.
pub async fn read(
    store: &Arc<dyn Store>,
    project_id: i64,
    after: i64,
) -> Result<Option<Delta>, StoreError> {
    let changed = store
        .cards_since(project_id, after, MAX_CATCH_UP + 1)
        .await?;
    if changed.is_empty() {
        return Ok(None);
    }
    if changed.len() > MAX_CATCH_UP {
        let to = store.project_seq(project_id).await?.max(after + 1);
        return Ok(Some(Delta {
            from: after,
            to,
            changes: Changes::Reload,
        }));
    }
    let mut to = after;
    let mut cards = Vec::with_capacity(changed.len());
    for card in changed {
        to = to.max(card.changed_seq);
        let data = serde_json::to_string(&card.stream_card()).unwrap_or_default();
        cards.push((
            card.changed_seq,
            Message::Card {
                cursor: cursor::encode(card.changed_seq),
                data: data.into(),
            },
        ));
    }
    Ok(Some(Delta {
        from: after,
        to,
        changes: Changes::Cards(cards),
    }))
}

type Registry = Arc<Mutex<HashMap<i64, broadcast::Sender<Arc<Delta>>>>>;

/// The feeds of one process, by project.
#[derive(Debug, Clone, Default)]
pub struct Feeds {
    registry: Registry,
}

impl Feeds {
    /// Subscribes to the feed of `project_id`, starting it if needed.
    /// `notices` is a fresh subscription to the hub, used only when a feed
    /// starts.
    pub fn subscribe(
        &self,
        store: &Arc<dyn Store>,
        project_id: i64,
        notices: impl FnOnce() -> broadcast::Receiver<Advance>,
    ) -> broadcast::Receiver<Arc<Delta>> {
        let mut feeds = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = feeds.get(&project_id) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CAPACITY);
        feeds.insert(project_id, sender.clone());
        tokio::spawn(run(
            store.clone(),
            notices(),
            project_id,
            sender,
            self.registry.clone(),
        ));
        receiver
    }

    /// How many feeds run now (for tests).
    pub fn running(&self) -> usize {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut notices: broadcast::Receiver<Advance>,
    project_id: i64,
    sender: broadcast::Sender<Arc<Delta>>,
    registry: Registry,
) {
    let mut at = loop {
        match store.project_seq(project_id).await {
            Ok(seq) => break seq,
            Err(e) => {
                tracing::warn!(error = %e, project_id, "board feed: cannot read the project; retrying");
                if stop_if_unwatched(&registry, project_id, &sender) {
                    return;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    loop {
        // Wait for a notice about this project (or a lag, or the poll);
        // between notices, leave as soon as the last watcher has.
        loop {
            if stop_if_unwatched(&registry, project_id, &sender) {
                return;
            }
            match tokio::time::timeout(SAFETY_POLL, notices.recv()).await {
                Ok(Ok(advance)) if advance.concerns(project_id, at) => break,
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => break,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    remove(&registry, project_id);
                    return;
                }
            }
        }
        match read(&store, project_id, at).await {
            Ok(Some(delta)) => {
                at = delta.to;
                // No receiver: the check at the top of the loop ends us.
                let _ = sender.send(Arc::new(delta));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, project_id, "board feed: cannot read changes; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Removes the feed when nobody watches it any more. Checked under the
/// registry's lock, where watchers subscribe, so none can join a feed that
/// is about to end.
fn stop_if_unwatched(
    registry: &Registry,
    project_id: i64,
    sender: &broadcast::Sender<Arc<Delta>>,
) -> bool {
    let mut feeds = registry.lock().unwrap_or_else(PoisonError::into_inner);
    if sender.receiver_count() > 0 {
        return false;
    }
    feeds.remove(&project_id);
    true
}

fn remove(registry: &Registry, project_id: i64) {
    registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&project_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(seq: i64) -> (i64, Message) {
        (
            seq,
            Message::Card {
                cursor: cursor::encode(seq),
                data: format!("{seq}").into(),
            },
        )
    }

    fn delta() -> Delta {
        Delta {
            from: 10,
            to: 15,
            changes: Changes::Cards(vec![card(12), card(15)]),
        }
    }

    #[test]
    fn a_watcher_at_the_start_gets_every_card() {
        let (messages, cursor) = delta().messages_after(10).expect("applies");
        assert_eq!(messages.len(), 2);
        assert_eq!(cursor, 15);
    }

    #[test]
    fn a_watcher_inside_the_delta_gets_only_newer_cards() {
        let (messages, cursor) = delta().messages_after(12).expect("applies");
        assert_eq!(messages, vec![card(15).1]);
        assert_eq!(cursor, 15);
    }

    #[test]
    fn a_watcher_past_the_delta_gets_nothing_and_keeps_its_cursor() {
        let (messages, cursor) = delta().messages_after(20).expect("applies");
        assert!(messages.is_empty());
        assert_eq!(cursor, 20);
    }

    #[test]
    fn a_watcher_behind_the_delta_reads_on_its_own() {
        assert!(delta().messages_after(9).is_none());
    }

    #[test]
    fn a_reload_moves_the_cursor_to_its_end() {
        let reload = Delta {
            from: 10,
            to: 900,
            changes: Changes::Reload,
        };
        let (messages, cursor) = reload.messages_after(10).expect("applies");
        assert_eq!(
            messages,
            vec![Message::Reload {
                cursor: cursor::encode(900)
            }]
        );
        assert_eq!(cursor, 900);
    }
}
