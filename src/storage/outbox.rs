//! The outbox: every post to a provider is a row written in the same transaction as the event
//! that causes it, and delivered later by a job.

use serde::Serialize;

use super::{Db, Result, StorageError, Tx, now_millis, on_backend};

#[derive(Debug, Clone)]
pub struct NewOutboxPost<'a> {
    pub conversation_id: Option<&'a str>,
    pub provider: &'a str,
    pub kind: &'a str,
    /// Where to post, as JSON (repository and issue, channel and thread, …).
    pub target: &'a serde_json::Value,
    /// What to post, as JSON.
    pub body: &'a serde_json::Value,
    /// Unique per intended post: writing the same post twice stores it once.
    pub idempotency_key: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OutboxPost {
    pub id: i64,
    pub conversation_id: Option<String>,
    pub provider: String,
    pub kind: String,
    pub target: String,
    pub body: String,
    pub idempotency_key: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// What the provider made of it, as JSON (the created comment's id, …).
    pub result: Option<String>,
}

/// `SELECT … FROM outbox`, followed by the rest of the statement.
macro_rules! select_outbox {
    ($rest:literal) => {
        concat!(
            "SELECT id, conversation_id, provider, kind, target, body, idempotency_key, status, \
             attempts, last_error, created_at, sent_at, result FROM outbox ",
            $rest
        )
    };
}

impl Tx {
    /// Stores a post to be delivered; `None` when a post with this idempotency key exists.
    pub async fn add_outbox_post(&mut self, new: &NewOutboxPost<'_>) -> Result<Option<i64>> {
        Ok(on_backend!(self, tx => sqlx::query_scalar::<_, i64>(
            "INSERT INTO outbox (conversation_id, provider, kind, target, body, idempotency_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(new.conversation_id)
        .bind(new.provider)
        .bind(new.kind)
        .bind(new.target.to_string())
        .bind(new.body.to_string())
        .bind(new.idempotency_key)
        .bind(now_millis())
        .fetch_optional(&mut **tx)
        .await?))
    }
}

impl Db {
    pub async fn outbox_post(&self, id: i64) -> Result<OutboxPost> {
        on_backend!(self, pool => sqlx::query_as::<_, OutboxPost>(select_outbox!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?)
        .ok_or(StorageError::NotFound("outbox post"))
    }

    /// Posts not yet delivered, oldest first.
    pub async fn pending_outbox_posts(&self, limit: i64) -> Result<Vec<OutboxPost>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, OutboxPost>(select_outbox!(
            "WHERE status = 'pending' ORDER BY id LIMIT $1"
        ))
            .bind(limit)
            .fetch_all(pool)
            .await?),
        )
    }

    /// The post with this idempotency key, if any.
    pub async fn outbox_post_by_key(&self, key: &str) -> Result<Option<OutboxPost>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, OutboxPost>(select_outbox!("WHERE idempotency_key = $1"))
            .bind(key)
            .fetch_optional(pool)
            .await?),
        )
    }

    /// A conversation's posts, oldest first.
    pub async fn outbox_posts_of(&self, conversation_id: &str) -> Result<Vec<OutboxPost>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, OutboxPost>(select_outbox!(
            "WHERE conversation_id = $1 ORDER BY id"
        ))
            .bind(conversation_id)
            .fetch_all(pool)
            .await?),
        )
    }

    /// Replaces what the provider made of a sent post (its comment was deleted and another
    /// one took its place).
    pub async fn set_outbox_result(&self, id: i64, result: &serde_json::Value) -> Result<()> {
        let done = on_backend!(self, pool => sqlx::query("UPDATE outbox SET result = $2 WHERE id = $1")
            .bind(id)
            .bind(result.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("outbox post"));
        }
        Ok(())
    }

    /// Records one delivery attempt in a transaction of its own.
    pub async fn record_outbox_attempt(
        &self,
        id: i64,
        outcome: std::result::Result<Option<&serde_json::Value>, &str>,
        give_up: bool,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.record_outbox_attempt(id, outcome, give_up).await?;
        tx.commit().await
    }
}

impl Tx {
    /// Records one delivery attempt: `Ok` marks the post sent with what the provider made of
    /// it; an error counts the attempt and, when `give_up` is set, marks the post failed.
    pub async fn record_outbox_attempt(
        &mut self,
        id: i64,
        outcome: std::result::Result<Option<&serde_json::Value>, &str>,
        give_up: bool,
    ) -> Result<()> {
        let (status, error, sent_at, result) = match outcome {
            Ok(result) => (
                "sent",
                None,
                Some(now_millis()),
                result.map(|r| r.to_string()),
            ),
            Err(error) if give_up => ("failed", Some(error), None, None),
            Err(error) => ("pending", Some(error), None, None),
        };
        let done = on_backend!(self, tx => sqlx::query(
            "UPDATE outbox SET status = $2, attempts = attempts + 1, last_error = $3, sent_at = $4, \
             result = COALESCE($5, result) WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(error)
        .bind(sent_at)
        .bind(result)
        .execute(&mut **tx)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("outbox post"));
        }
        Ok(())
    }

    /// The conversation's newest post of this kind, if any.
    pub async fn latest_outbox_post(
        &mut self,
        conversation_id: &str,
        kind: &str,
    ) -> Result<Option<OutboxPost>> {
        Ok(
            on_backend!(self, tx => sqlx::query_as::<_, OutboxPost>(select_outbox!(
            "WHERE conversation_id = $1 AND kind = $2 ORDER BY id DESC LIMIT 1"
        ))
            .bind(conversation_id)
            .bind(kind)
            .fetch_optional(&mut **tx)
            .await?),
        )
    }
}
