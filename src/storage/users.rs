//! Users of the service: every conversation is owned by one.

use serde::Serialize;

use super::{Db, Result, StorageError, Tx, conflict_on_unique, now_millis, on_backend};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub login: String,
    pub email: Option<String>,
    pub is_admin: bool,
    pub created_at: i64,
}

impl Tx {
    /// Creates a user; a login that is taken is a [`StorageError::Conflict`].
    pub async fn create_user(
        &mut self,
        login: &str,
        email: Option<&str>,
        is_admin: bool,
    ) -> Result<User> {
        let user = User {
            id: uuid::Uuid::new_v4().simple().to_string(),
            login: super::text(login),
            email: email.map(str::to_string),
            is_admin,
            created_at: now_millis(),
        };
        on_backend!(self, tx => sqlx::query(
            "INSERT INTO users (id, login, email, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.login)
        .bind(&user.email)
        .bind(user.is_admin)
        .bind(user.created_at)
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected()))
        .map_err(|e| conflict_on_unique(e, "a user with this login"))?;
        Ok(user)
    }
}

impl Tx {
    pub async fn user_by_login(&mut self, login: &str) -> Result<Option<User>> {
        Ok(on_backend!(self, tx => sqlx::query_as::<_, User>(
            "SELECT id, login, email, is_admin, created_at FROM users WHERE login = $1",
        )
        .bind(super::text(login))
        .fetch_optional(&mut **tx)
        .await?))
    }
}

impl Db {
    pub async fn create_user(
        &self,
        login: &str,
        email: Option<&str>,
        is_admin: bool,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        let user = tx.create_user(login, email, is_admin).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn user(&self, id: &str) -> Result<User> {
        on_backend!(self, pool => sqlx::query_as::<_, User>(
            "SELECT id, login, email, is_admin, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?)
        .ok_or(StorageError::NotFound("user"))
    }

    /// Every user, by login.
    pub async fn users(&self) -> Result<Vec<User>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, User>(
            "SELECT id, login, email, is_admin, created_at FROM users ORDER BY login",
        )
        .fetch_all(pool)
        .await?))
    }

    pub async fn user_by_login(&self, login: &str) -> Result<Option<User>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, User>(
            "SELECT id, login, email, is_admin, created_at FROM users WHERE login = $1",
        )
        .bind(login)
        .fetch_optional(pool)
        .await?))
    }
}
