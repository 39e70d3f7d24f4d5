//! Where MCP configurations are kept: a user's own on their row, the service's among the
//! service settings. Values are sealed by the caller.

use super::{Db, Result, StorageError, now_millis, on_backend};

/// The name of the administrators' MCP configuration among the service settings.
pub const SERVICE_MCP_CONFIG: &str = "mcp_config";

impl Db {
    /// A user's sealed MCP configuration, if they stored one.
    pub async fn user_mcp_config(&self, user_id: &str) -> Result<Option<String>> {
        Ok(
            on_backend!(self, pool => sqlx::query_scalar::<_, Option<String>>(
            "SELECT mcp_config FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(pool)
        .await?)
            .flatten(),
        )
    }

    /// Stores (or, with `None`, removes) a user's sealed MCP configuration.
    pub async fn set_user_mcp_config(&self, user_id: &str, sealed: Option<&str>) -> Result<()> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE users SET mcp_config = $2 WHERE id = $1",
        )
        .bind(user_id)
        .bind(sealed)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("user"));
        }
        Ok(())
    }

    /// A sealed setting of the whole service.
    pub async fn service_setting(&self, name: &str) -> Result<Option<String>> {
        Ok(on_backend!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT sealed_value FROM service_settings WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?))
    }

    /// Stores (or, with `None`, removes) a sealed setting of the whole service.
    pub async fn set_service_setting(&self, name: &str, sealed: Option<&str>) -> Result<()> {
        match sealed {
            Some(sealed) => on_backend!(self, pool => sqlx::query(
                "INSERT INTO service_settings (name, sealed_value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET sealed_value = excluded.sealed_value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(sealed)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|_| ()))?,
            None => on_backend!(self, pool => sqlx::query(
                "DELETE FROM service_settings WHERE name = $1",
            )
            .bind(name)
            .execute(pool)
            .await
            .map(|_| ()))?,
        }
        Ok(())
    }
}
