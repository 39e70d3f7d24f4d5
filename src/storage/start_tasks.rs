//! Start tasks of the V1 app-server API: a client's request to start a conversation, with the
//! conversation made for it or the reason none was.

use super::{Db, Result, now_millis, on_backend};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StartTask {
    pub id: String,
    pub user_id: String,
    pub conversation_id: Option<String>,
    /// Why no conversation was made.
    pub error: Option<String>,
    /// The client's request, as JSON.
    pub request: String,
    pub created_at: i64,
}

impl Db {
    /// Records a start task of `user_id`: the conversation made, or the error.
    pub async fn create_start_task(
        &self,
        user_id: &str,
        conversation_id: Option<&str>,
        error: Option<&str>,
        request: &str,
    ) -> Result<StartTask> {
        let task = StartTask {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: user_id.to_string(),
            conversation_id: conversation_id.map(str::to_string),
            error: error.map(str::to_string),
            request: request.to_string(),
            created_at: now_millis(),
        };
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO start_tasks (id, user_id, conversation_id, error, request, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&task.id)
        .bind(&task.user_id)
        .bind(&task.conversation_id)
        .bind(&task.error)
        .bind(&task.request)
        .bind(task.created_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(task)
    }

    /// The start tasks among `ids` that `user_id` made (all of them for `None`).
    pub async fn start_tasks(
        &self,
        ids: &[String],
        user_id: Option<&str>,
    ) -> Result<Vec<StartTask>> {
        let mut found = Vec::new();
        for id in ids {
            let task = on_backend!(self, pool => sqlx::query_as::<_, StartTask>(
                "SELECT id, user_id, conversation_id, error, request, created_at FROM start_tasks \
                 WHERE id = $1 AND ($2 IS NULL OR user_id = $2)",
            )
            .bind(id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?);
            found.extend(task);
        }
        Ok(found)
    }

    /// A page of the start tasks of `user_id` (everyone's for `None`), newest first, made at
    /// or after `since` (ms), older than the task `before` when paging on.
    pub async fn search_start_tasks(
        &self,
        user_id: Option<&str>,
        since: i64,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<StartTask>> {
        let (before_at, before_id) = before.unwrap_or((i64::MAX, ""));
        Ok(on_backend!(self, pool => sqlx::query_as::<_, StartTask>(
            "SELECT id, user_id, conversation_id, error, request, created_at FROM start_tasks \
             WHERE ($1 IS NULL OR user_id = $1) AND created_at >= $2 \
               AND (created_at < $3 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
        )
        .bind(user_id)
        .bind(since)
        .bind(before_at)
        .bind(before_id)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }
}
