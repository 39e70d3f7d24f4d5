//! The first sign-in: the administrator made on a first start, and the one-time links that sign
//! them in. Only a hash of each token is stored; a token signs in once, within its lifetime.

use super::{Db, Result, StorageError, User, now_millis, on_backend};

impl Db {
    /// Whether anyone ever signed in to the dashboard.
    pub async fn anyone_signed_in(&self) -> Result<bool> {
        let signed_in: Option<i64> = on_backend!(self, pool => sqlx::query_scalar(
            "SELECT MAX(signed_in_at) FROM users",
        )
        .fetch_one(pool)
        .await?);
        Ok(signed_in.is_some())
    }

    /// Notes that `user_id` signed in now.
    pub async fn record_sign_in(&self, user_id: &str) -> Result<()> {
        on_backend!(self, pool => sqlx::query("UPDATE users SET signed_in_at = $2 WHERE id = $1")
            .bind(user_id)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The administrator a first start made: the user of the oldest sign-in token.
    pub async fn first_start_admin(&self) -> Result<Option<User>> {
        let user_id: Option<String> = on_backend!(self, pool => sqlx::query_scalar(
            "SELECT user_id FROM sign_in_tokens ORDER BY created_at, token_hash LIMIT 1",
        )
        .fetch_optional(pool)
        .await?);
        match user_id {
            Some(id) => Ok(Some(self.user(&id).await?)),
            None => Ok(None),
        }
    }

    /// Makes `login` the administrator of a service that has no users yet, with a sign-in
    /// token; `None` when the service has users already (another process may have made it).
    pub async fn create_first_admin(
        &self,
        login: &str,
        token_hash: &str,
        lifetime_ms: i64,
    ) -> Result<Option<User>> {
        let mut tx = self.begin().await?;
        let users: i64 = on_backend!(&mut tx, tx => sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut **tx)
            .await?);
        if users > 0 {
            return Ok(None);
        }
        let user = match tx.create_user(login, None, true).await {
            Ok(user) => user,
            Err(StorageError::Conflict(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        tx.commit().await?;
        self.create_sign_in_token(token_hash, &user.id, lifetime_ms)
            .await?;
        Ok(Some(user))
    }

    pub async fn create_sign_in_token(
        &self,
        token_hash: &str,
        user_id: &str,
        lifetime_ms: i64,
    ) -> Result<()> {
        let now = now_millis();
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO sign_in_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now)
        .bind(now.saturating_add(lifetime_ms))
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Uses the token with this hash: the user it signs in, once, before it expires.
    pub async fn use_sign_in_token(&self, token_hash: &str) -> Result<Option<User>> {
        let user_id: Option<String> = on_backend!(self, pool => sqlx::query_scalar(
            "UPDATE sign_in_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
             AND expires_at > $2 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(now_millis())
        .fetch_optional(pool)
        .await?);
        match user_id {
            Some(id) => Ok(Some(self.user(&id).await?)),
            None => Ok(None),
        }
    }
}
