//! One watcher per open stream: reads what changed since its cursor and
//! hands it to the connection through a small bounded channel.
//!
//! The watcher owns its cursor. When the connection is slow, the channel
//! fills and only this watcher waits; ingest and other watchers never do.
//! When it wakes it reads from the store again, so nothing is skipped, and
//! if too much changed meanwhile it sends one `reload` message instead of a
//! flood of cards.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::hub::Hub;
use super::{ProjectRef, cursor};
use crate::store::Store;

/// The most cards sent one by one after a pause; past it, `reload`.
pub const MAX_CATCH_UP: usize = 500;

/// Messages a connection may hold unsent before its watcher waits.
const BUFFER: usize = 64;

/// Even without notices, a watcher looks at the store this often (a lost
/// notification, or a database without them, only delays a change).
const SAFETY_POLL: Duration = Duration::from_secs(30);

/// One server-sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A changed card: `id: CURSOR`, `event: wp`, the card JSON.
    Card { cursor: String, data: String },
    /// The watcher fell too far behind: fetch the board again.
    Reload { cursor: String },
}

/// Starts a watcher of `project` from `after` and returns the receiving
/// end of its messages. The watcher ends when the receiver is dropped.
pub fn watch(
    store: Arc<dyn Store>,
    hub: &Hub,
    project: ProjectRef,
    after: i64,
) -> mpsc::Receiver<Message> {
    let (sender, receiver) = mpsc::channel(BUFFER);
    let notices = hub.subscribe();
    tokio::spawn(run(store, notices, project, after, sender));
    receiver
}

async fn run(
    store: Arc<dyn Store>,
    mut notices: broadcast::Receiver<super::hub::Advance>,
    project: ProjectRef,
    mut after: i64,
    sender: mpsc::Sender<Message>,
) {
    loop {
        match catch_up(&store, &project, after, &sender).await {
            Ok(Some(cursor)) => after = cursor,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "board stream: cannot read changes; closing the stream");
                return;
            }
        }
        // Wait for a notice about this project (or a lag, or the poll).
        loop {
            let notice = tokio::time::timeout(SAFETY_POLL, notices.recv()).await;
            match notice {
                Ok(Ok(advance)) if advance.concerns(project.id, after) => break,
                Ok(Ok(_)) => {
                    if sender.is_closed() {
                        return;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => break,
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
            }
        }
    }
}

/// Sends what changed after `after`; returns the new cursor, or `None`
/// when the connection is gone.
async fn catch_up(
    store: &Arc<dyn Store>,
    project: &ProjectRef,
    after: i64,
    sender: &mpsc::Sender<Message>,
) -> Result<Option<i64>, crate::store::StoreError> {
    let changed = store
        .cards_since(project.id, after, MAX_CATCH_UP + 1)
        .await?;
    if changed.len() > MAX_CATCH_UP {
        let now = store.project_seq(project.id).await?;
        let message = Message::Reload {
            cursor: cursor::encode(now),
        };
        return Ok(sender.send(message).await.ok().map(|()| now));
    }
    let mut cursor = after;
    for card in changed {
        cursor = cursor.max(card.changed_seq);
        let data = serde_json::to_string(&card.stream_card()).unwrap_or_default();
        let message = Message::Card {
            cursor: cursor::encode(card.changed_seq),
            data,
        };
        if sender.send(message).await.is_err() {
            return Ok(None);
        }
    }
    Ok(Some(cursor))
}
