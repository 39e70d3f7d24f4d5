//! Completions of queue probe jobs (see `queue::probe`).

use serde::Serialize;

use super::{Db, Result, now_millis, on_backend};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ProbeCompletion {
    pub probe_id: String,
    pub worker: String,
    pub attempt: i32,
    pub completed_at: i64,
}

impl Db {
    pub async fn record_probe_completion(
        &self,
        probe_id: &str,
        worker: &str,
        attempt: i32,
    ) -> Result<()> {
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO queue_probe_completions (probe_id, worker, attempt, completed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(probe_id)
        .bind(worker)
        .bind(attempt)
        .bind(now_millis())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn probe_completions(&self, probe_id: &str) -> Result<Vec<ProbeCompletion>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, ProbeCompletion>(
            "SELECT probe_id, worker, attempt, completed_at FROM queue_probe_completions \
             WHERE probe_id = $1 ORDER BY id",
        )
        .bind(probe_id)
        .fetch_all(pool)
        .await?),
        )
    }

    /// The id of the latest probe completion (0 when there is none): a mark to count from.
    pub async fn probe_completion_mark(&self) -> Result<i64> {
        Ok(on_backend!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(MAX(id), 0) FROM queue_probe_completions",
        )
        .fetch_one(pool)
        .await?))
    }

    /// How many probe completions were recorded after `mark`; cheap however many there are.
    pub async fn probe_completions_since(&self, mark: i64) -> Result<i64> {
        Ok(on_backend!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM queue_probe_completions WHERE id > $1",
        )
        .bind(mark)
        .fetch_one(pool)
        .await?))
    }

    /// How many probe completions there are in all, and for how many distinct probes.
    pub async fn probe_completion_counts(&self) -> Result<(i64, i64)> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT COUNT(*), COUNT(DISTINCT probe_id) FROM queue_probe_completions",
        )
        .fetch_one(pool)
        .await?))
    }
}
