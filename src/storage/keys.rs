//! API keys: a key is shown once when made; only its SHA-256 hash and first characters are kept.

use serde::Serialize;

use super::{Db, Result, StorageError, User, now_millis, on_backend};

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// How long a key's last use may be stale before it is written again: a key in constant use
/// does not cost a write per request.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

impl Db {
    /// Stores a key of `user_id` by its hash.
    pub async fn create_api_key(
        &self,
        user_id: &str,
        name: &str,
        prefix: &str,
        key_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<ApiKey> {
        let key = ApiKey {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: user_id.to_string(),
            name: super::text(name),
            prefix: prefix.to_string(),
            created_at: now_millis(),
            expires_at,
            last_used_at: None,
        };
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(key_hash)
        .bind(key.created_at)
        .bind(key.expires_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(key)
    }

    pub async fn api_keys_of(&self, user_id: &str) -> Result<Vec<ApiKey>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, ApiKey>(
            "SELECT id, user_id, name, prefix, created_at, expires_at, last_used_at FROM api_keys \
             WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?))
    }

    /// Deletes a key of `user_id`; another user's key is not found.
    pub async fn delete_api_key(&self, user_id: &str, id: &str) -> Result<()> {
        let deleted = on_backend!(self, pool => sqlx::query(
            "DELETE FROM api_keys WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .execute(pool)
        .await?
        .rows_affected());
        if deleted == 0 {
            return Err(StorageError::NotFound("API key"));
        }
        Ok(())
    }

    /// The user of an unexpired key with this hash, noting its use.
    pub async fn user_of_api_key(&self, key_hash: &str) -> Result<Option<User>> {
        #[derive(sqlx::FromRow)]
        struct Found {
            key_id: String,
            last_used_at: Option<i64>,
            expires_at: Option<i64>,
            #[sqlx(flatten)]
            user: User,
        }
        let found = on_backend!(self, pool => sqlx::query_as::<_, Found>(
            "SELECT k.id AS key_id, k.last_used_at, k.expires_at, u.id, u.login, u.email, \
             u.is_admin, u.created_at FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(pool)
        .await?);
        let Some(found) = found else {
            return Ok(None);
        };
        let now = now_millis();
        if found.expires_at.is_some_and(|at| at <= now) {
            return Ok(None);
        }
        if found
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS)
        {
            on_backend!(self, pool => sqlx::query(
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
            )
            .bind(&found.key_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        }
        Ok(Some(found.user))
    }
}
