//! What the dashboard keeps beside conversations: the Idempotency-Key of each new-conversation
//! request, and the reads of a conversation's workspace that the web tier asks of a worker
//! (the web tier never touches a sandbox itself).

use super::{Db, Result, Tx, now_millis, on_backend};

/// A read of a workspace, as the worker answered it (or has not yet).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkspaceRead {
    pub id: String,
    pub conversation_id: String,
    /// `changes`, `files` or `file`.
    pub kind: String,
    pub path: Option<String>,
    /// `pending`, `done`, `gone` (the conversation has no sandbox) or `failed`.
    pub status: String,
    pub content_type: Option<String>,
    pub body: Option<Vec<u8>>,
    pub error: Option<String>,
    pub created_at: i64,
}

/// How long an unanswered or unread read is kept before it is swept away.
const READ_KEPT_MS: i64 = 10 * 60 * 1000;

impl Tx {
    /// The conversation an earlier request of `owner_id` with this key created, if any.
    pub async fn conversation_for_request(
        &mut self,
        owner_id: &str,
        key: &str,
    ) -> Result<Option<String>> {
        Ok(on_backend!(self, tx => sqlx::query_scalar::<_, String>(
            "SELECT conversation_id FROM conversation_requests WHERE owner_id = $1 AND idempotency_key = $2",
        )
        .bind(owner_id)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?))
    }

    /// Remembers that the request of `owner_id` with this key created `conversation_id`; a
    /// concurrent request with the same key makes this fail with a conflict.
    pub async fn remember_request(
        &mut self,
        owner_id: &str,
        key: &str,
        conversation_id: &str,
    ) -> Result<()> {
        on_backend!(self, tx => sqlx::query(
            "INSERT INTO conversation_requests (owner_id, idempotency_key, conversation_id, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(owner_id)
        .bind(key)
        .bind(conversation_id)
        .bind(now_millis())
        .execute(&mut **tx)
        .await
        .map(|_| ()))
        .map_err(|e| super::conflict_on_unique(e, "a request with this Idempotency-Key"))
    }

    /// Records a pending read of the conversation's workspace (its job is enqueued in the same
    /// transaction), and sweeps reads nobody collected.
    pub async fn open_workspace_read(
        &mut self,
        id: &str,
        conversation_id: &str,
        kind: &str,
        path: Option<&str>,
    ) -> Result<()> {
        let now = now_millis();
        on_backend!(self, tx => sqlx::query("DELETE FROM workspace_reads WHERE created_at < $1")
            .bind(now - READ_KEPT_MS)
            .execute(&mut **tx)
            .await
            .map(|_| ()))?;
        on_backend!(self, tx => sqlx::query(
            "INSERT INTO workspace_reads (id, conversation_id, kind, path, status, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5)",
        )
        .bind(id)
        .bind(conversation_id)
        .bind(kind)
        .bind(path)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}

impl Db {
    pub async fn workspace_read(&self, id: &str) -> Result<Option<WorkspaceRead>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, WorkspaceRead>(
            "SELECT id, conversation_id, kind, path, status, content_type, body, error, created_at \
             FROM workspace_reads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?),
        )
    }

    /// The worker's answer to a read: `done` with a body, or `gone`/`failed` with why.
    pub async fn answer_workspace_read(
        &self,
        id: &str,
        status: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        error: Option<&str>,
    ) -> Result<()> {
        on_backend!(self, pool => sqlx::query(
            "UPDATE workspace_reads SET status = $2, content_type = $3, body = $4, error = $5 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(status)
        .bind(content_type)
        .bind(body)
        .bind(error)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Forgets a read once its answer was given (or given up on).
    pub async fn forget_workspace_read(&self, id: &str) -> Result<()> {
        on_backend!(self, pool => sqlx::query("DELETE FROM workspace_reads WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
