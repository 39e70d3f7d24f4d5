//! Device sign-ins (OAuth 2.0 device flow): pending until a user approves or denies the code,
//! then taken once by the device.

use super::{Db, Result, now_millis, on_backend};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceGrant {
    pub device_code_hash: String,
    /// Without its dash, upper case.
    pub user_code: String,
    /// Who approved it.
    pub user_id: Option<String>,
    pub denied: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_polled_at: Option<i64>,
}

impl Db {
    /// A new pending grant; expired ones are removed meanwhile.
    pub async fn create_device_grant(
        &self,
        device_code_hash: &str,
        user_code: &str,
        lifetime_ms: i64,
    ) -> Result<()> {
        let now = now_millis();
        on_backend!(self, pool => sqlx::query("DELETE FROM device_grants WHERE expires_at < $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()))?;
        on_backend!(self, pool => sqlx::query(
            "INSERT INTO device_grants (device_code_hash, user_code, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(device_code_hash)
        .bind(user_code)
        .bind(now)
        .bind(now + lifetime_ms)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn device_grant_by_user_code(&self, user_code: &str) -> Result<Option<DeviceGrant>> {
        Ok(on_backend!(self, pool => sqlx::query_as::<_, DeviceGrant>(
            "SELECT device_code_hash, user_code, user_id, denied, created_at, expires_at, last_polled_at \
             FROM device_grants WHERE user_code = $1",
        )
        .bind(user_code)
        .fetch_optional(pool)
        .await?))
    }

    /// Approves (as `user_id`) or denies (`None`) a pending, unexpired grant; false when there
    /// is none.
    pub async fn decide_device_grant(
        &self,
        user_code: &str,
        user_id: Option<&str>,
    ) -> Result<bool> {
        let done = on_backend!(self, pool => sqlx::query(
            "UPDATE device_grants SET user_id = $2, denied = $3 \
             WHERE user_code = $1 AND user_id IS NULL AND NOT denied AND expires_at >= $4",
        )
        .bind(user_code)
        .bind(user_id)
        .bind(user_id.is_none())
        .bind(now_millis())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// The grant of a device code, noting this poll; the previous poll's time is in the answer.
    pub async fn poll_device_grant(&self, device_code_hash: &str) -> Result<Option<DeviceGrant>> {
        let grant = on_backend!(self, pool => sqlx::query_as::<_, DeviceGrant>(
            "SELECT device_code_hash, user_code, user_id, denied, created_at, expires_at, last_polled_at \
             FROM device_grants WHERE device_code_hash = $1",
        )
        .bind(device_code_hash)
        .fetch_optional(pool)
        .await?);
        if grant.is_some() {
            on_backend!(self, pool => sqlx::query(
                "UPDATE device_grants SET last_polled_at = $2 WHERE device_code_hash = $1",
            )
            .bind(device_code_hash)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|_| ()))?;
        }
        Ok(grant)
    }

    /// Removes an approved grant, once: true for the one caller that removed it.
    pub async fn take_device_grant(&self, device_code_hash: &str) -> Result<bool> {
        let done = on_backend!(self, pool => sqlx::query(
            "DELETE FROM device_grants WHERE device_code_hash = $1 AND user_id IS NOT NULL",
        )
        .bind(device_code_hash)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }
}
