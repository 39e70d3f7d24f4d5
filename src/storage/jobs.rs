//! Read-only views of the job queue's tables, for operators and tests.

use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::{Db, Result, on_backend};

/// One job as the queue stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct JobRecord {
    pub id: String,
    pub queue: String,
    /// `Pending`, `Queued`, `Running`, `Done`, `Failed` or `Killed`.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The last result or error, as the queue recorded it.
    pub last_result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct JobStatusCount {
    pub queue: String,
    pub status: String,
    pub count: i64,
}

impl Db {
    /// The queue's table: a constant, so safe to place in a statement.
    fn jobs_table(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "apalis.jobs",
            Db::Sqlite(_) => "Jobs",
        }
    }

    /// Jobs of one queue, optionally in one status, oldest first.
    pub async fn jobs(
        &self,
        queue: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        let sql = format!(
            "SELECT id, job_type AS queue, status, attempts, max_attempts, CAST(last_result AS TEXT) AS last_result \
             FROM {} WHERE job_type = $1 AND ($2 IS NULL OR status = $2) ORDER BY run_at, id LIMIT $3",
            self.jobs_table()
        );
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, JobRecord>(AssertSqlSafe(sql))
            .bind(queue)
            .bind(status)
            .bind(limit)
            .fetch_all(pool)
            .await?),
        )
    }

    /// How many jobs each queue holds in each status.
    pub async fn job_status_counts(&self) -> Result<Vec<JobStatusCount>> {
        let sql = format!(
            "SELECT job_type AS queue, status, COUNT(*) AS count FROM {} GROUP BY job_type, status ORDER BY job_type, status",
            self.jobs_table()
        );
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, JobStatusCount>(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?),
        )
    }
}
