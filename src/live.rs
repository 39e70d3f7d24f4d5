//! Live events: every event appended to a conversation's log is published here, after its
//! commit, to subscribers in this process, in id order per conversation. Writers in this
//! process publish what they commit; on PostgreSQL every appended event is also announced with
//! NOTIFY (a trigger), and [`listen`] reads announced events from the log, so that web
//! processes stream what workers on other nodes write (on SQLite, [`listen`] polls the log).
//! The bus drops what it published already.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;

use tokio::sync::{Mutex, broadcast};

use crate::storage::{Db, Event};

/// Events a slow subscriber may fall behind by before it is told it lagged (it then reads
/// the log from the database).
const CAPACITY: usize = 4096;
/// Announcements handled at once, at most.
const NOTIFY_BATCH: usize = 1024;
/// Conversations whose last published id is remembered; beyond, the memory starts afresh.
const TRACKED: usize = 10_000;

/// An event as the bus hands it out. Its text form for WebSocket clients is made once, by the
/// first subscriber that needs it, and shared by every other: with many subscribers on one
/// conversation, serializing per subscriber would cost more than sending.
#[derive(Debug)]
pub struct LiveEvent {
    event: Event,
    frame: OnceLock<Utf8Bytes>,
}

impl LiveEvent {
    fn new(event: Event) -> Arc<Self> {
        Arc::new(Self {
            event,
            frame: OnceLock::new(),
        })
    }

    /// The event's frame, rendered by `render` the first time it is asked for.
    pub fn frame(&self, render: impl FnOnce(&Event) -> String) -> Utf8Bytes {
        self.frame
            .get_or_init(|| Utf8Bytes::from(render(&self.event)))
            .clone()
    }
}

impl Deref for LiveEvent {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<LiveEvent>>,
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
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// Publishes events `first..=last` of a conversation, read from the log with any before
    /// them that were not published yet.
    pub async fn announce(&self, db: &Db, conversation_id: &str, first: i64, last: i64) {
        let after = {
            let published = self.published.lock().await;
            match published.get(conversation_id) {
                Some(published) if *published >= last => return,
                Some(published) => *published,
                None => first - 1,
            }
        };
        match db.events_after(conversation_id, after, last - after).await {
            Ok(events) => self.publish(db, events).await,
            Err(error) => {
                tracing::warn!(%error, conversation_id, "cannot read an announced event")
            }
        }
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
                            let _ = self.sender.send(LiveEvent::new(missed));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, conversation, "cannot read events to publish")
                    }
                }
            }
            last = event.id;
            // No subscriber is not an error.
            let _ = self.sender.send(LiveEvent::new(event));
        }
        published.insert(conversation, last);
    }
}

/// The NOTIFY channel of appended events (see the `events_announce` trigger).
pub const EVENTS_CHANNEL: &str = "openhands_events";

/// How often a web process on SQLite looks for events other processes appended.
const SQLITE_POLL: Duration = Duration::from_millis(250);
/// How far back each look goes: a write stamped before a look but committed after it is
/// still seen by the next one.
const SQLITE_LOOK_BACK: Duration = Duration::from_secs(5);

/// Publishes the events other processes append, until `stop`: LISTENs on PostgreSQL, polls
/// on SQLite (a `web` and a `worker` process may share one SQLite file). A lost connection is
/// made again; events announced meanwhile reach subscribers with the next event of their
/// conversation, which fills the gap from the log.
pub async fn listen(db: Db, bus: EventBus, stop: tokio_util::sync::CancellationToken) {
    let Db::Postgres(pool) = &db else {
        return poll(db, bus, stop).await;
    };
    let mut listener = loop {
        let attempt = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            result = attempt => match result {
                Ok(listener) => break listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for events; trying again in a second");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    };
    loop {
        let notification = tokio::select! {
            _ = stop.cancelled() => return,
            notification = listener.recv() => notification,
        };
        match notification {
            Ok(first) => {
                // The announcements already received (a transaction's come together) are read
                // from the log with one query per conversation and published together, so
                // subscribers are woken, and write to their sockets, once per batch.
                let mut announced: HashMap<String, (i64, i64)> = HashMap::new();
                let mut next = Some(first);
                let mut taken = 0;
                while let Some(notification) = next {
                    if let Some((conversation_id, id)) = notification.payload().rsplit_once(':')
                        && let Ok(id) = id.parse::<i64>()
                    {
                        let range = announced
                            .entry(conversation_id.to_string())
                            .or_insert((id, id));
                        *range = (range.0.min(id), range.1.max(id));
                    }
                    taken += 1;
                    next = if taken < NOTIFY_BATCH {
                        listener.next_buffered()
                    } else {
                        None
                    };
                }
                for (conversation_id, (first, last)) in announced {
                    bus.announce(&db, &conversation_id, first, last).await;
                }
            }
            Err(error) => {
                // recv reconnects on its next call.
                tracing::warn!(%error, "lost the event listener's connection; reconnecting");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

/// SQLite has no NOTIFY: every `SQLITE_POLL` the conversations changed lately are read, and
/// those with events this process has not published have them announced.
async fn poll(db: Db, bus: EventBus, stop: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SQLITE_POLL) => {}
        }
        let since = crate::storage::now_millis() - SQLITE_LOOK_BACK.as_millis() as i64;
        match db.conversations_changed_since(since).await {
            Ok(changed) => {
                for (conversation_id, last) in changed {
                    if last > 0 {
                        bus.announce(&db, &conversation_id, last, last).await;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot look for new events"),
        }
    }
}
