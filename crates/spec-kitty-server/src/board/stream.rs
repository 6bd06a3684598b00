//! One watcher per open stream: reads what changed since its cursor and
//! hands it to the connection through a small bounded channel.
//!
//! The watcher owns its cursor. Changes reach it as deltas from its
//! project's shared [`feed`](super::feed), read once for all watchers; when
//! a delta does not start at its cursor (it resumed from an older one, or
//! its connection was slow and it lagged behind the feed), it reads the
//! store on its own, so nothing is skipped, and if too much changed
//! meanwhile it sends one `reload` message instead of a flood of cards.
//! A slow connection makes only its own watcher wait.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::ProjectRef;
use super::feed::{self, Delta, SAFETY_POLL};
use super::hub::Hub;
use crate::store::Store;

/// The most cards sent one by one after a pause; past it, `reload`.
pub const MAX_CATCH_UP: usize = 500;

/// Messages a connection may hold unsent before its watcher waits.
const BUFFER: usize = 64;

/// One server-sent message. The card's JSON is shared by every watcher
/// that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A changed card: `id: CURSOR`, `event: wp`, the card JSON.
    Card { cursor: String, data: Arc<str> },
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
    // Subscribe before the first read, so that no change falls between.
    let deltas = hub.feed(&store, project.id);
    tokio::spawn(run(store, deltas, project, after, sender));
    receiver
}

async fn run(
    store: Arc<dyn Store>,
    mut deltas: broadcast::Receiver<Arc<Delta>>,
    project: ProjectRef,
    mut after: i64,
    sender: mpsc::Sender<Message>,
) {
    // Read on our own first: the watcher may resume from an old cursor.
    let mut read_store = true;
    loop {
        if read_store {
            match feed::read(&store, project.id, after).await {
                Ok(Some(delta)) => match send(&delta, &mut after, &sender).await {
                    Some(()) => {}
                    None => return,
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "board stream: cannot read changes; closing the stream");
                    return;
                }
            }
        }
        let next = tokio::select! {
            next = tokio::time::timeout(SAFETY_POLL, deltas.recv()) => next,
            () = sender.closed() => return,
        };
        read_store = match next {
            Ok(Ok(delta)) => match delta.messages_after(after) {
                Some((messages, cursor)) => {
                    for message in messages {
                        if sender.send(message).await.is_err() {
                            return;
                        }
                    }
                    after = cursor;
                    false
                }
                None => true,
            },
            Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => true,
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
        };
    }
}

/// Sends a delta this watcher read itself; `None` when the connection is
/// gone.
async fn send(delta: &Delta, after: &mut i64, sender: &mpsc::Sender<Message>) -> Option<()> {
    let (messages, cursor) = delta.messages_after(*after).unwrap_or_default();
    for message in messages {
        sender.send(message).await.ok()?;
    }
    *after = cursor.max(*after);
    Some(())
}
