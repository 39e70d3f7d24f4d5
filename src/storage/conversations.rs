//! Conversations and their append-only event log.
//!
//! Event ids are per conversation, start at 1 and have no gaps: the next id is taken from the
//! conversation's `last_event_id` counter in the same transaction that inserts the event, so
//! concurrent appends queue on the conversation's row and a rolled-back append gives its id back.

use serde::Serialize;

use super::{Db, Result, StorageError, Tx, now_millis, on_backend};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Conversation {
    pub id: String,
    pub owner_id: String,
    pub title: String,
    pub status: String,
    pub trigger_kind: String,
    pub repository: Option<String>,
    pub branch: Option<String>,
    /// Where a web conversation's repository is: `github` or `gitlab`.
    pub git_provider: Option<String>,
    /// The provider-neutral key of the issue, pull request, thread or ticket it belongs to.
    pub external_ref: Option<String>,
    /// A web link to where it was asked, for a conversation a provider started.
    pub trigger_url: Option<String>,
    /// The title is a stand-in that the model replaces with one of its own on the first run.
    pub title_pending: bool,
    pub last_event_id: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewConversation<'a> {
    pub owner_id: &'a str,
    pub title: &'a str,
    pub trigger_kind: &'a str,
    pub repository: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub git_provider: Option<&'a str>,
    pub external_ref: Option<&'a str>,
    pub trigger_url: Option<&'a str>,
    /// The title is a stand-in (a message's first line) for the model to replace.
    pub title_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Event {
    pub conversation_id: String,
    pub id: i64,
    pub created_at: i64,
    pub source: String,
    pub kind: String,
    /// The event's JSON document.
    pub payload: String,
}

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub source: &'a str,
    pub kind: &'a str,
    pub payload: &'a serde_json::Value,
}

/// `SELECT … FROM conversations`, followed by the rest of the statement.
macro_rules! select_conversations {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner_id, title, status, trigger_kind, repository, branch, git_provider, \
             external_ref, trigger_url, title_pending, last_event_id, created_at, updated_at \
             FROM conversations ",
            $rest
        )
    };
}

/// The status of a conversation that has been created and not yet run.
pub const INITIAL_STATUS: &str = "loading";

impl Tx {
    pub async fn create_conversation(&mut self, new: &NewConversation<'_>) -> Result<Conversation> {
        let now = now_millis();
        let conversation = Conversation {
            id: uuid::Uuid::new_v4().simple().to_string(),
            owner_id: new.owner_id.to_string(),
            title: super::text(new.title),
            status: INITIAL_STATUS.to_string(),
            trigger_kind: new.trigger_kind.to_string(),
            repository: new.repository.map(super::text),
            branch: new.branch.map(super::text),
            git_provider: new.git_provider.map(str::to_string),
            external_ref: new.external_ref.map(super::text),
            trigger_url: new.trigger_url.map(super::text),
            title_pending: new.title_pending,
            last_event_id: 0,
            created_at: now,
            updated_at: now,
        };
        on_backend!(self, tx => sqlx::query(
            "INSERT INTO conversations (id, owner_id, title, status, trigger_kind, repository, branch, \
             external_ref, trigger_url, git_provider, title_pending, last_event_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $11, $12, 0, $9, $9)",
        )
        .bind(&conversation.id)
        .bind(&conversation.owner_id)
        .bind(&conversation.title)
        .bind(&conversation.status)
        .bind(&conversation.trigger_kind)
        .bind(&conversation.repository)
        .bind(&conversation.branch)
        .bind(&conversation.external_ref)
        .bind(now)
        .bind(&conversation.trigger_url)
        .bind(&conversation.git_provider)
        .bind(conversation.title_pending)
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))
        .map_err(|e| super::conflict_on_unique(e, "a conversation for this issue, thread or ticket"))?;
        Ok(conversation)
    }

    /// Appends one event and returns its id: the conversation's next, without gaps.
    pub async fn append_event(
        &mut self,
        conversation_id: &str,
        event: &NewEvent<'_>,
    ) -> Result<i64> {
        Ok(self.append(conversation_id, event).await?.id)
    }

    /// Appends one event and returns it as stored.
    pub async fn append(&mut self, conversation_id: &str, event: &NewEvent<'_>) -> Result<Event> {
        let now = now_millis();
        let payload = event.payload.to_string();
        let id = on_backend!(self, tx => {
            let id: Option<i64> = sqlx::query_scalar(
                "UPDATE conversations SET last_event_id = last_event_id + 1, updated_at = $2 \
                 WHERE id = $1 RETURNING last_event_id",
            )
            .bind(conversation_id)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
            let id = id.ok_or(StorageError::NotFound("conversation"))?;
            sqlx::query(
                "INSERT INTO events (conversation_id, id, created_at, source, kind, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(conversation_id)
            .bind(id)
            .bind(now)
            .bind(event.source)
            .bind(event.kind)
            .bind(&payload)
            .execute(&mut **tx)
            .await?;
            Ok::<i64, StorageError>(id)
        })?;
        Ok(Event {
            conversation_id: conversation_id.to_string(),
            id,
            created_at: now,
            source: event.source.to_string(),
            kind: event.kind.to_string(),
            payload,
        })
    }

    pub async fn set_conversation_status(
        &mut self,
        conversation_id: &str,
        status: &str,
    ) -> Result<()> {
        let done = on_backend!(self, tx => sqlx::query(
            "UPDATE conversations SET status = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(conversation_id)
        .bind(status)
        .bind(now_millis())
        .execute(&mut **tx)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("conversation"));
        }
        Ok(())
    }
}

impl Tx {
    /// Records the repository chosen for a conversation (`None`: it works without one).
    pub async fn set_conversation_repository(
        &mut self,
        conversation_id: &str,
        repository: Option<&str>,
        git_provider: Option<&str>,
    ) -> Result<()> {
        let done = on_backend!(self, tx => sqlx::query(
            "UPDATE conversations SET repository = $2, git_provider = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(conversation_id)
        .bind(repository.map(super::text))
        .bind(git_provider)
        .bind(now_millis())
        .execute(&mut **tx)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("conversation"));
        }
        Ok(())
    }
}

impl Tx {
    /// The conversation started from this issue, pull request, thread or ticket, locked for
    /// this transaction on PostgreSQL (SQLite transactions run one at a time).
    pub async fn conversation_by_external_ref(
        &mut self,
        trigger_kind: &str,
        external_ref: &str,
    ) -> Result<Option<Conversation>> {
        Ok(match self {
            Tx::Postgres(tx) => {
                sqlx::query_as::<_, Conversation>(select_conversations!(
                    "WHERE trigger_kind = $1 AND external_ref = $2 FOR UPDATE"
                ))
                .bind(trigger_kind)
                .bind(super::text(external_ref))
                .fetch_optional(&mut **tx)
                .await?
            }
            Tx::Sqlite(tx) => {
                sqlx::query_as::<_, Conversation>(select_conversations!(
                    "WHERE trigger_kind = $1 AND external_ref = $2"
                ))
                .bind(trigger_kind)
                .bind(super::text(external_ref))
                .fetch_optional(&mut **tx)
                .await?
            }
        })
    }
}

impl Db {
    pub async fn create_conversation(&self, new: &NewConversation<'_>) -> Result<Conversation> {
        let mut tx = self.begin().await?;
        let conversation = tx.create_conversation(new).await?;
        tx.commit().await?;
        Ok(conversation)
    }

    pub async fn append_event(&self, conversation_id: &str, event: &NewEvent<'_>) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id = tx.append_event(conversation_id, event).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn conversation(&self, id: &str) -> Result<Conversation> {
        on_backend!(self, pool => sqlx::query_as::<_, Conversation>(select_conversations!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?)
        .ok_or(StorageError::NotFound("conversation"))
    }

    /// The conversation started from this issue, pull request, thread or ticket, if any.
    pub async fn conversation_by_external_ref(
        &self,
        trigger_kind: &str,
        external_ref: &str,
    ) -> Result<Option<Conversation>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, Conversation>(select_conversations!(
            "WHERE trigger_kind = $1 AND external_ref = $2"
        ))
            .bind(trigger_kind)
            .bind(super::text(external_ref))
            .fetch_optional(pool)
            .await?),
        )
    }

    /// The (id, last event id) of conversations changed at or after `since` (milliseconds).
    pub async fn conversations_changed_since(&self, since: i64) -> Result<Vec<(String, i64)>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, (String, i64)>(
            "SELECT id, last_event_id FROM conversations WHERE updated_at >= $1",
        )
        .bind(since)
        .fetch_all(pool)
        .await?),
        )
    }

    /// A user's conversations, most recently active first.
    pub async fn conversations_of(&self, owner_id: &str, limit: i64) -> Result<Vec<Conversation>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, Conversation>(select_conversations!(
            "WHERE owner_id = $1 ORDER BY updated_at DESC, id LIMIT $2"
        ))
            .bind(owner_id)
            .bind(limit)
            .fetch_all(pool)
            .await?),
        )
    }

    /// Events with ids greater than `after`, in order, at most `limit` of them.
    pub async fn events_after(
        &self,
        conversation_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, Event>(
            "SELECT conversation_id, id, created_at, source, kind, payload FROM events \
             WHERE conversation_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(conversation_id)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }
}

/// Which conversations a listing shows, newest first.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter<'a> {
    /// Only this user's; `None` for all (administrators).
    pub owner_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub repository: Option<&'a str>,
    pub trigger_kind: Option<&'a str>,
    /// Only conversations created before this one (`(created_at, id)` of the previous page's last).
    pub before: Option<(i64, &'a str)>,
    /// Only those whose title contains this, ignoring case.
    pub title_contains: Option<&'a str>,
    /// Only those created at or after this time (ms).
    pub created_since: Option<i64>,
    pub limit: i64,
}

impl ConversationFilter<'_> {
    /// `title_contains` as a LIKE pattern (escaped with `\`), lower case.
    fn title_pattern(&self) -> Option<String> {
        self.title_contains.map(|part| {
            let escaped = part
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        })
    }
}

/// Which events of a conversation to read.
#[derive(Debug, Clone, Default)]
pub struct EventRange<'a> {
    /// The first id included.
    pub start_id: i64,
    /// The last id included, if any.
    pub end_id: Option<i64>,
    /// Newest first.
    pub reverse: bool,
    /// Only events of these kinds (all when empty).
    pub kinds: &'a [String],
    /// Only events from this source (`user`, `agent`, `environment`).
    pub source: Option<&'a str>,
    pub limit: i64,
}

impl Db {
    /// One page of conversations, newest first.
    pub async fn list_conversations(
        &self,
        filter: &ConversationFilter<'_>,
    ) -> Result<Vec<Conversation>> {
        let before_at = filter.before.map(|(at, _)| at);
        let before_id = filter.before.map(|(_, id)| id);
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, Conversation>(select_conversations!(
            "WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR repository = $3) AND ($4 IS NULL OR trigger_kind = $4) \
             AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND id < $6)) \
             AND ($8 IS NULL OR LOWER(title) LIKE $8 ESCAPE '\\') AND ($9 IS NULL OR created_at >= $9) \
             ORDER BY created_at DESC, id DESC LIMIT $7"
        ))
            .bind(filter.owner_id)
            .bind(filter.status)
            .bind(filter.repository)
            .bind(filter.trigger_kind)
            .bind(before_at)
            .bind(before_id)
            .bind(filter.limit)
            .bind(filter.title_pattern())
            .bind(filter.created_since)
            .fetch_all(pool)
            .await?),
        )
    }

    /// How many conversations the filter shows, all pages together (`before` and `limit`
    /// aside).
    pub async fn count_conversations(&self, filter: &ConversationFilter<'_>) -> Result<i64> {
        Ok(on_backend!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM conversations \
             WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR repository = $3) AND ($4 IS NULL OR trigger_kind = $4) \
             AND ($5 IS NULL OR LOWER(title) LIKE $5 ESCAPE '\\') AND ($6 IS NULL OR created_at >= $6)"
        )
        .bind(filter.owner_id)
        .bind(filter.status)
        .bind(filter.repository)
        .bind(filter.trigger_kind)
        .bind(filter.title_pattern())
        .bind(filter.created_since)
        .fetch_one(pool)
        .await?))
    }

    pub async fn set_conversation_title(&self, id: &str, title: &str) -> Result<()> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE conversations SET title = $2, title_pending = FALSE, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(super::text(title))
        .bind(now_millis())
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("conversation"));
        }
        Ok(())
    }

    /// Replaces a stand-in title with the model's; false when someone renamed the conversation
    /// meanwhile (their title stays).
    pub async fn set_written_title(&self, id: &str, title: &str) -> Result<bool> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE conversations SET title = $2, title_pending = FALSE, updated_at = $3 \
             WHERE id = $1 AND title_pending",
        )
        .bind(id)
        .bind(super::text(title))
        .bind(now_millis())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Deletes a conversation with its events and posts; its deliveries stay, unlinked.
    pub async fn delete_conversation(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.delete_conversation(id).await?;
        tx.commit().await
    }
}

impl Tx {
    /// Deletes the conversation with its events and everything kept about it.
    pub async fn delete_conversation(&mut self, id: &str) -> Result<()> {
        let done = on_backend!(self, tx => sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("conversation"));
        }
        Ok(())
    }
}

impl Db {
    /// Events of a conversation in `range`.
    /// How many events a conversation has, only from `source` and of `kind` when given.
    pub async fn count_events(
        &self,
        conversation_id: &str,
        source: Option<&str>,
        kind: Option<&str>,
    ) -> Result<i64> {
        Ok(on_backend!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM events WHERE conversation_id = $1 \
             AND ($2 IS NULL OR source = $2) AND ($3 IS NULL OR kind = $3)",
        )
        .bind(conversation_id)
        .bind(source)
        .bind(kind)
        .fetch_one(pool)
        .await?))
    }

    pub async fn events_in(
        &self,
        conversation_id: &str,
        range: &EventRange<'_>,
    ) -> Result<Vec<Event>> {
        let kinds = serde_json::to_string(range.kinds).unwrap_or_else(|_| "[]".into());
        let end = range.end_id.unwrap_or(i64::MAX);
        // The kind filter is a JSON array, matched the same way on both backends.
        let statement = if range.reverse {
            "SELECT conversation_id, id, created_at, source, kind, payload FROM events \
             WHERE conversation_id = $1 AND id >= $2 AND id <= $3 AND ($4 IS NULL OR source = $4) \
             AND ($5 = '[]' OR $5 LIKE '%\"' || kind || '\"%') ORDER BY id DESC LIMIT $6"
        } else {
            "SELECT conversation_id, id, created_at, source, kind, payload FROM events \
             WHERE conversation_id = $1 AND id >= $2 AND id <= $3 AND ($4 IS NULL OR source = $4) \
             AND ($5 = '[]' OR $5 LIKE '%\"' || kind || '\"%') ORDER BY id LIMIT $6"
        };
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, Event>(statement)
            .bind(conversation_id)
            .bind(range.start_id)
            .bind(end)
            .bind(range.source)
            .bind(&kinds)
            .bind(range.limit)
            .fetch_all(pool)
            .await?),
        )
    }
}
