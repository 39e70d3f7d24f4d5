//! What each user stores: their LLM settings (the key sealed) and secrets for their sandboxes
//! (values sealed). Sealing is the caller's: storage never sees a plaintext key.

use serde::Serialize;

use super::{Db, Result, StorageError, now_millis, on_backend};

/// A user's own LLM; `None` fields fall back to the server's.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UserLlm {
    pub llm_model: Option<String>,
    pub llm_base_url: Option<String>,
    /// Sealed with the keyring.
    pub llm_api_key: Option<String>,
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SecretInfo {
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Db {
    pub async fn user_llm(&self, user_id: &str) -> Result<UserLlm> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, UserLlm>(
            "SELECT llm_model, llm_base_url, llm_api_key FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await?)
        .unwrap_or_default())
    }

    /// Stores a user's LLM settings and limits in one write.
    pub async fn set_user_settings(
        &self,
        user_id: &str,
        llm: &UserLlm,
        limits: &super::UserLimits,
    ) -> Result<()> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE users SET llm_model = $2, llm_base_url = $3, llm_api_key = $4, \
             max_iterations = $5, max_budget_usd = $6, confirmation_mode = $7 WHERE id = $1",
        )
        .bind(user_id)
        .bind(&llm.llm_model)
        .bind(&llm.llm_base_url)
        .bind(&llm.llm_api_key)
        .bind(limits.max_iterations)
        .bind(limits.max_budget_usd)
        .bind(limits.confirmation_mode)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(super::StorageError::NotFound("user"));
        }
        Ok(())
    }

    pub async fn secrets_of(&self, user_id: &str) -> Result<Vec<SecretInfo>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, SecretInfo>(
            "SELECT name, description, created_at, updated_at FROM user_secrets \
             WHERE user_id = $1 ORDER BY name",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?))
    }

    /// Every secret of a user as (name, sealed value), for their sandboxes.
    pub async fn sealed_secrets_of(&self, user_id: &str) -> Result<Vec<(String, String)>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, (String, String)>(
            "SELECT name, value FROM user_secrets WHERE user_id = $1 ORDER BY name",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?),
        )
    }

    /// Stores a new secret; an existing name is a [`StorageError::Conflict`].
    pub async fn create_secret(
        &self,
        user_id: &str,
        name: &str,
        sealed: &str,
        description: Option<&str>,
    ) -> Result<()> {
        let now = now_millis();
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO user_secrets (user_id, name, value, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(user_id)
        .bind(name)
        .bind(sealed)
        .bind(description)
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(|e| super::conflict_on_unique(e, "a secret with this name"))?;
        Ok(())
    }

    /// Replaces a secret's value and/or description; a missing one is not found.
    pub async fn update_secret(
        &self,
        user_id: &str,
        name: &str,
        sealed: Option<&str>,
        description: Option<&str>,
    ) -> Result<()> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE user_secrets SET value = COALESCE($3, value), \
             description = COALESCE($4, description), updated_at = $5 \
             WHERE user_id = $1 AND name = $2",
        )
        .bind(user_id)
        .bind(name)
        .bind(sealed)
        .bind(description)
        .bind(now_millis())
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("secret"));
        }
        Ok(())
    }

    pub async fn delete_secret(&self, user_id: &str, name: &str) -> Result<()> {
        let done = on_backend!(self, pool => sqlx::query(
            "DELETE FROM user_secrets WHERE user_id = $1 AND name = $2",
        )
        .bind(user_id)
        .bind(name)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("secret"));
        }
        Ok(())
    }
}
