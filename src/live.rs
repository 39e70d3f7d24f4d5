//! Live events: every event appended to a conversation's log is published here, after its
//! commit, to subscribers in this process, in id order per conversation.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};

use crate::storage::{Db, Event};

/// Events a slow subscriber may fall behind by before it is told it lagged (it then reads
/// the log from the database).
const CAPACITY: usize = 4096;
/// Conversations whose last published id is remembered; beyond, the memory starts afresh.
const TRACKED: usize = 10_000;

#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
    /// The last id published per conversation: a gap is filled from the log first, so
    /// subscribers see each conversation's events in order even when writers commit out of order.
    published: Arc<Mutex<HashMap<String, i64>>>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        EventBus {
            sender,
            published: Arc::default(),
        }
    }
}

impl EventBus {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Publishes committed events of one conversation.
    pub async fn publish(&self, db: &Db, events: Vec<Event>) {
        let Some(first) = events.first() else {
            return;
        };
        let conversation = first.conversation_id.clone();
        let mut published = self.published.lock().await;
        if published.len() >= TRACKED && !published.contains_key(&conversation) {
            published.clear();
        }
        let mut last = published
            .get(&conversation)
            .copied()
            .unwrap_or(first.id - 1);
        for event in events {
            if event.id <= last {
                continue;
            }
            if event.id > last + 1 {
                // Another writer's events are committed but not yet published: send them first.
                match db
                    .events_after(&conversation, last, event.id - last - 1)
                    .await
                {
                    Ok(missing) => {
                        for missed in missing {
                            let _ = self.sender.send(Arc::new(missed));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, conversation, "cannot read events to publish")
                    }
                }
            }
            last = event.id;
            // No subscriber is not an error.
            let _ = self.sender.send(Arc::new(event));
        }
        published.insert(conversation, last);
    }
}
