//! A web conversation asked something through the real queue, and its log as the V0 API shows it.

use openhands::agent::RunConversation;
use openhands::agent::events::{self, to_v0};
use openhands::queue;
use openhands::storage::{Db, NewConversation, NewEvent};
use serde_json::{Value, json};

/// Creates a user `alice`, a web conversation titled `title` whose first message is `text`,
/// and enqueues its run, in one transaction; the conversation's id.
pub async fn ask(db: &Db, title: &str, text: &str) -> String {
    let mut tx = db.begin().await.unwrap();
    let user = tx.create_user("alice", None, false).await.unwrap();
    let conversation = tx
        .create_conversation(&NewConversation {
            owner_id: &user.id,
            title,
            trigger_kind: "web",
            ..Default::default()
        })
        .await
        .unwrap();
    let message = events::user_message(text, false, json!({}));
    tx.append_event(
        &conversation.id,
        &NewEvent {
            source: message.source,
            kind: &message.kind,
            payload: &message.doc,
        },
    )
    .await
    .unwrap();
    queue::enqueue(
        &mut tx,
        &RunConversation {
            conversation_id: conversation.id.clone(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    conversation.id
}

/// A further message from the user in conversation `id`, and its run enqueued, in one
/// transaction.
pub async fn say(db: &Db, id: &str, text: &str) {
    let mut tx = db.begin().await.unwrap();
    let message = events::user_message(text, false, json!({}));
    tx.append_event(
        id,
        &NewEvent {
            source: message.source,
            kind: &message.kind,
            payload: &message.doc,
        },
    )
    .await
    .unwrap();
    queue::enqueue(
        &mut tx,
        &RunConversation {
            conversation_id: id.to_string(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The conversation's whole log, each event as the V0 API shows it.
pub async fn events_of(db: &Db, id: &str) -> Vec<Value> {
    db.events_after(id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(to_v0)
        .collect()
}
