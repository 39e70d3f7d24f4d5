//! What the agent loop keeps on a conversation besides its events: which run holds it, the
//! sandbox it last ran in, LLM statistics, and its owner's limits.

use serde::Serialize;

use super::{Db, Result, StorageError, Tx, now_millis, on_backend};

/// The sums over every LLM call of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct ConversationStats {
    pub llm_calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub llm_latency_ms: i64,
}

/// A user's own limits; `None` means the server's default.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct UserLimits {
    pub max_iterations: Option<i64>,
    pub max_budget_usd: Option<f64>,
    /// Whether risky actions of the user's conversations wait for their confirmation.
    pub confirmation_mode: bool,
}

impl Tx {
    /// Sets the conversation's own choice of confirmation mode (`None`: its owner's).
    pub async fn set_confirmation_mode(
        &mut self,
        conversation_id: &str,
        on: Option<bool>,
    ) -> Result<()> {
        on_backend!(self, tx => sqlx::query(
            "UPDATE conversations SET confirmation_mode = $2 WHERE id = $1",
        )
        .bind(conversation_id)
        .bind(on)
        .execute(&mut **tx)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Adds one LLM call's figures to the conversation's sums.
    pub async fn add_llm_usage(
        &mut self,
        conversation_id: &str,
        call: &ConversationStats,
    ) -> Result<()> {
        on_backend!(self, tx => sqlx::query(
            "UPDATE conversations SET llm_calls = llm_calls + $2, prompt_tokens = prompt_tokens + $3, \
             completion_tokens = completion_tokens + $4, cached_tokens = cached_tokens + $5, \
             cost_usd = cost_usd + $6, llm_latency_ms = llm_latency_ms + $7 WHERE id = $1",
        )
        .bind(conversation_id)
        .bind(call.llm_calls)
        .bind(call.prompt_tokens)
        .bind(call.completion_tokens)
        .bind(call.cached_tokens)
        .bind(call.cost_usd)
        .bind(call.llm_latency_ms)
        .execute(&mut **tx)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}

impl Db {
    /// Claims the conversation for `runner` until `lease_ms` from now. Succeeds when nobody
    /// holds it, the holder's claim ran out, or `runner` holds it already.
    pub async fn claim_run(
        &self,
        conversation_id: &str,
        runner: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let now = now_millis();
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE conversations SET runner = $2, runner_until = $3 WHERE id = $1 \
             AND (runner IS NULL OR runner = $2 OR runner_until < $4)",
        )
        .bind(conversation_id)
        .bind(runner)
        .bind(now + lease_ms)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Extends `runner`'s claim; false when it no longer holds the conversation.
    pub async fn renew_run(
        &self,
        conversation_id: &str,
        runner: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE conversations SET runner_until = $3 WHERE id = $1 AND runner = $2",
        )
        .bind(conversation_id)
        .bind(runner)
        .bind(now_millis() + lease_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Gives the conversation up, but only if no event was appended after `seen_event_id`:
    /// false means something new arrived (a message, a stop) and the run must look at it.
    pub async fn release_run(
        &self,
        conversation_id: &str,
        runner: &str,
        seen_event_id: i64,
    ) -> Result<bool> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE conversations SET runner = NULL, runner_until = NULL \
             WHERE id = $1 AND runner = $2 AND last_event_id = $3",
        )
        .bind(conversation_id)
        .bind(runner)
        .bind(seen_event_id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Gives the conversation up whatever happened since (the run is failing).
    pub async fn abandon_run(&self, conversation_id: &str, runner: &str) -> Result<()> {
        on_backend!(self, pool => sqlx::query(
            "UPDATE conversations SET runner = NULL, runner_until = NULL WHERE id = $1 AND runner = $2",
        )
        .bind(conversation_id)
        .bind(runner)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The sandbox the conversation last ran in.
    pub async fn conversation_sandbox(&self, conversation_id: &str) -> Result<Option<String>> {
        on_backend!(self, pool => sqlx::query_scalar::<_, Option<String>>(
            "SELECT sandbox_id FROM conversations WHERE id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(pool)
        .await?)
        .ok_or(StorageError::NotFound("conversation"))
    }

    pub async fn set_conversation_sandbox(
        &self,
        conversation_id: &str,
        sandbox_id: &str,
    ) -> Result<()> {
        on_backend!(self, pool => sqlx::query("UPDATE conversations SET sandbox_id = $2 WHERE id = $1")
            .bind(conversation_id)
            .bind(sandbox_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn conversation_stats(&self, conversation_id: &str) -> Result<ConversationStats> {
        on_backend!(self, pool => sqlx::query_as::<_, ConversationStats>(
            "SELECT llm_calls, prompt_tokens, completion_tokens, cached_tokens, cost_usd, llm_latency_ms \
             FROM conversations WHERE id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(pool)
        .await?)
        .ok_or(StorageError::NotFound("conversation"))
    }

    /// Whether risky actions of the conversation wait for its owner: its own choice, else its
    /// owner's.
    pub async fn confirmation_mode(&self, conversation_id: &str) -> Result<bool> {
        let found: Option<(Option<bool>, bool)> = on_backend!(self, pool => sqlx::query_as(
            "SELECT c.confirmation_mode, u.confirmation_mode FROM conversations c \
             JOIN users u ON u.id = c.owner_id WHERE c.id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(pool)
        .await?);
        let (own, owners) = found.ok_or(StorageError::NotFound("conversation"))?;
        Ok(own.unwrap_or(owners))
    }

    pub async fn user_limits(&self, user_id: &str) -> Result<UserLimits> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, UserLimits>(
            "SELECT max_iterations, max_budget_usd, confirmation_mode FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await?)
        .unwrap_or_default())
    }

    pub async fn set_user_limits(&self, user_id: &str, limits: &UserLimits) -> Result<()> {
        on_backend!(self, pool => sqlx::query(
            "UPDATE users SET max_iterations = $2, max_budget_usd = $3, confirmation_mode = $4 WHERE id = $1",
        )
        .bind(user_id)
        .bind(limits.max_iterations)
        .bind(limits.max_budget_usd)
        .bind(limits.confirmation_mode)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
