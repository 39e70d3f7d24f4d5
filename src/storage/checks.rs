//! What workers last saw of the dependencies web processes cannot check themselves (the
//! sandbox engine), one row per worker.

use serde::Serialize;

use super::{Db, Result, now_millis, on_backend};

/// One worker's latest check of a dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DependencyCheck {
    pub name: String,
    pub instance: String,
    /// `up` or `down`.
    pub state: String,
    pub reason: Option<String>,
    pub checked_at: i64,
}

impl Db {
    /// Records what worker `instance` saw of dependency `name` just now: up when `down_reason`
    /// is `None`.
    pub async fn record_dependency_check(
        &self,
        name: &str,
        instance: &str,
        down_reason: Option<&str>,
    ) -> Result<()> {
        let state = if down_reason.is_some() { "down" } else { "up" };
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO dependency_checks (name, instance, state, reason, checked_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, instance) DO UPDATE \
             SET state = excluded.state, reason = excluded.reason, checked_at = excluded.checked_at",
        )
        .bind(name)
        .bind(instance)
        .bind(state)
        .bind(down_reason)
        .bind(now_millis())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The checks of dependency `name` made at or after `since` (milliseconds), newest first.
    pub async fn dependency_checks(&self, name: &str, since: i64) -> Result<Vec<DependencyCheck>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, DependencyCheck>(
            "SELECT name, instance, state, reason, checked_at FROM dependency_checks \
             WHERE name = $1 AND checked_at >= $2 ORDER BY checked_at DESC",
        )
        .bind(name)
        .bind(since)
        .fetch_all(pool)
        .await?),
        )
    }
}
