//! Provider accounts linked to users of ours: who may ask from Slack, Jira and Linear, and
//! which user owns the conversations a GitHub or GitLab account starts.

use serde::Serialize;

use super::{Db, Result, StorageError, Tx, User, conflict_on_unique, now_millis, on_backend, text};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UserLink {
    pub provider: String,
    /// The GitHub/GitLab host, Slack team id, Jira site or Linear organization id.
    pub workspace: String,
    /// The provider's id of the account.
    pub external_id: String,
    pub user_id: String,
    pub created_at: i64,
}

impl Tx {
    /// Links a provider account to a user; an account already linked is a conflict.
    pub async fn link_user(
        &mut self,
        provider: &str,
        workspace: &str,
        external_id: &str,
        user_id: &str,
    ) -> Result<UserLink> {
        let link = UserLink {
            provider: text(provider),
            workspace: text(workspace),
            external_id: text(external_id),
            user_id: user_id.to_string(),
            created_at: now_millis(),
        };
        on_backend!(self, tx => sqlx::query(
            "INSERT INTO user_links (provider, workspace, external_id, user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&link.provider)
        .bind(&link.workspace)
        .bind(&link.external_id)
        .bind(&link.user_id)
        .bind(link.created_at)
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))
        .map_err(|e| match conflict_on_unique(e, "a link for this account") {
            StorageError::Query(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                StorageError::NotFound("user")
            }
            other => other,
        })?;
        Ok(link)
    }

    /// The user linked to a provider account, if any.
    pub async fn linked_user(
        &mut self,
        provider: &str,
        workspace: &str,
        external_id: &str,
    ) -> Result<Option<User>> {
        Ok(on_backend!(self, tx => sqlx::query_as::<_, User>(
            "SELECT u.id, u.login, u.email, u.is_admin, u.created_at FROM user_links l \
             JOIN users u ON u.id = l.user_id \
             WHERE l.provider = $1 AND l.workspace = $2 AND l.external_id = $3",
        )
        .bind(text(provider))
        .bind(text(workspace))
        .bind(text(external_id))
        .fetch_optional(&mut **tx)
        .await?))
    }
}

impl Db {
    pub async fn link_user(
        &self,
        provider: &str,
        workspace: &str,
        external_id: &str,
        user_id: &str,
    ) -> Result<UserLink> {
        let mut tx = self.begin().await?;
        let link = tx
            .link_user(provider, workspace, external_id, user_id)
            .await?;
        tx.commit().await?;
        Ok(link)
    }

    /// Links, optionally of one user, oldest first.
    pub async fn user_links(&self, user_id: Option<&str>) -> Result<Vec<UserLink>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, UserLink>(
            "SELECT provider, workspace, external_id, user_id, created_at FROM user_links \
             WHERE ($1 IS NULL OR user_id = $1) ORDER BY created_at, provider, workspace, external_id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?))
    }

    /// Removes a link; false when there was none.
    pub async fn unlink_user(
        &self,
        provider: &str,
        workspace: &str,
        external_id: &str,
    ) -> Result<bool> {
        let done = on_backend!(self, pool => sqlx::query(
            "DELETE FROM user_links WHERE provider = $1 AND workspace = $2 AND external_id = $3",
        )
        .bind(provider)
        .bind(workspace)
        .bind(external_id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done > 0)
    }
}
