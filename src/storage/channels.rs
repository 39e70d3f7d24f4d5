//! The repository each Slack channel's requests work on when they name none, as administrators
//! set it.

use serde::Serialize;

use super::{Db, Result, now_millis, on_backend, text};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ChannelRepository {
    pub channel: String,
    pub repository: String,
    /// `github` or `gitlab`.
    pub git_provider: String,
    pub updated_at: i64,
}

impl Db {
    pub async fn channel_repository(&self, channel: &str) -> Result<Option<ChannelRepository>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, ChannelRepository>(
            "SELECT channel, repository, git_provider, updated_at FROM slack_channel_repositories \
             WHERE channel = $1",
        )
        .bind(channel)
        .fetch_optional(pool)
        .await?),
        )
    }

    pub async fn channel_repositories(&self) -> Result<Vec<ChannelRepository>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, ChannelRepository>(
            "SELECT channel, repository, git_provider, updated_at FROM slack_channel_repositories \
             ORDER BY channel",
        )
        .fetch_all(pool)
        .await?),
        )
    }

    /// Sets (or replaces) the channel's repository.
    pub async fn set_channel_repository(
        &self,
        channel: &str,
        repository: &str,
        git_provider: &str,
    ) -> Result<ChannelRepository> {
        let row = ChannelRepository {
            channel: text(channel),
            repository: text(repository),
            git_provider: git_provider.to_string(),
            updated_at: now_millis(),
        };
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO slack_channel_repositories (channel, repository, git_provider, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (channel) DO UPDATE SET repository = $2, \
             git_provider = $3, updated_at = $4",
        )
        .bind(&row.channel)
        .bind(&row.repository)
        .bind(&row.git_provider)
        .bind(row.updated_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(row)
    }

    /// Removes the channel's repository; false when it had none.
    pub async fn delete_channel_repository(&self, channel: &str) -> Result<bool> {
        let done = on_backend!(self, pool => sqlx::query(
            "DELETE FROM slack_channel_repositories WHERE channel = $1",
        )
        .bind(channel)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done > 0)
    }
}
