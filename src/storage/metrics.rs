//! Figures over the whole service for `/metrics`: read from the database at each scrape, so
//! every web process reports the same numbers whichever worker produced them.

use serde::Serialize;

use super::{Db, Result, on_backend};

/// Conversations in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

/// Sums over every LLM call ever recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct LlmTotals {
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub latency_ms: i64,
}

impl Db {
    pub async fn conversation_status_counts(&self) -> Result<Vec<StatusCount>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, StatusCount>(
            "SELECT status, COUNT(*) AS count FROM conversations GROUP BY status ORDER BY status",
        )
        .fetch_all(pool)
        .await?))
    }

    /// Conversations that hold a sandbox and are running now.
    pub async fn running_sandboxes(&self) -> Result<i64> {
        Ok(on_backend!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM conversations WHERE status = 'running' AND sandbox_id IS NOT NULL",
        )
        .fetch_one(pool)
        .await?))
    }

    pub async fn llm_totals(&self) -> Result<LlmTotals> {
        // CAST: SUM over BIGINT is NUMERIC in PostgreSQL.
        Ok(on_backend!(self, pool => sqlx::query_as::<_, LlmTotals>(
            "SELECT CAST(COALESCE(SUM(llm_calls), 0) AS BIGINT) AS calls, \
                    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
                    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
                    CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
                    CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
                    CAST(COALESCE(SUM(llm_latency_ms), 0) AS BIGINT) AS latency_ms \
             FROM conversations",
        )
        .fetch_one(pool)
        .await?))
    }
}
