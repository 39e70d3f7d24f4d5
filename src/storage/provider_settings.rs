//! Provider settings stored from the dashboard, by the name of the setting they stand for
//! (`GITHUB_APP_ID`, …), each value sealed by the caller.

use super::{Db, Result, now_millis, on_backend};

impl Db {
    /// Every stored setting: (name, sealed value).
    pub async fn stored_provider_settings(&self) -> Result<Vec<(String, String)>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, (String, String)>(
            "SELECT name, sealed_value FROM provider_settings ORDER BY name",
        )
        .fetch_all(pool)
        .await?),
        )
    }

    /// Stores these (name, sealed value) settings together, replacing any of the same name;
    /// a `None` value removes the setting.
    pub async fn change_provider_settings(
        &self,
        settings: &[(&str, Option<String>)],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        for (name, sealed) in settings {
            match sealed {
                Some(sealed) => on_backend!(&mut tx, tx => sqlx::query(
                    "INSERT INTO provider_settings (name, sealed_value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET sealed_value = excluded.sealed_value, updated_at = excluded.updated_at",
                )
                .bind(*name)
                .bind(sealed)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map(|_| ()))?,
                None => on_backend!(&mut tx, tx => sqlx::query(
                    "DELETE FROM provider_settings WHERE name = $1",
                )
                .bind(*name)
                .execute(&mut **tx)
                .await
                .map(|_| ()))?,
            }
        }
        tx.commit().await
    }
}
