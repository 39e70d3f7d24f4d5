//! Webhook deliveries: each one stored once per provider and delivery id, with what became of it.

use serde::Serialize;

use std::collections::HashMap;

use super::{Db, Result, StorageError, Tx, now_millis, on_backend, text};

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Accepted,
    Ignored,
    Duplicate,
    Unauthorized,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        Self::Accepted,
        Self::Ignored,
        Self::Duplicate,
        Self::Unauthorized,
        Self::Failed,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ignored => "ignored",
            Self::Duplicate => "duplicate",
            Self::Unauthorized => "unauthorized",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub provider: &'a str,
    pub delivery_id: &'a str,
    pub event: &'a str,
    pub status: DeliveryStatus,
    pub reason: Option<&'a str>,
    pub payload: &'a [u8],
    /// The recognised request, as JSON.
    pub request: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub provider: String,
    pub delivery_id: String,
    pub event: String,
    pub received_at: i64,
    pub status: String,
    pub reason: Option<String>,
    pub conversation_id: Option<String>,
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// The intake job that handled it, once one has.
    #[serde(skip)]
    pub intake_id: Option<String>,
    /// The recognised request, as JSON.
    #[serde(skip)]
    pub request: Option<String>,
}

/// `SELECT … FROM webhook_deliveries`, followed by the rest of the statement.
macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT id, provider, delivery_id, event, received_at, status, reason, conversation_id, \
             payload, intake_id, request FROM webhook_deliveries ",
            $rest
        )
    };
}

/// Columns bound per delivery in [`Tx::record_deliveries`].
const DELIVERY_COLUMNS: usize = 8;

impl Tx {
    /// Stores several deliveries in one statement. For each, in order: its new row id, or
    /// `None` when a delivery with the same provider and id was stored before (or earlier in
    /// `batch`).
    pub async fn record_deliveries(
        &mut self,
        batch: &[NewDelivery<'_>],
    ) -> Result<Vec<Option<i64>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<String> = (0..batch.len())
            .map(|row| {
                let first = row * DELIVERY_COLUMNS + 1;
                let params: Vec<String> = (first..first + DELIVERY_COLUMNS)
                    .map(|n| format!("${n}"))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        // Built from placeholders only; every value is bound.
        let sql = format!(
            "INSERT INTO webhook_deliveries (provider, delivery_id, event, received_at, status, reason, payload, request) \
             VALUES {} ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id, provider, delivery_id",
            rows.join(", ")
        );
        let now = now_millis();
        let stored: Vec<(i64, String, String)> = on_backend!(self, tx => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for new in batch {
                query = query
                    .bind(text(new.provider))
                    .bind(text(new.delivery_id))
                    .bind(text(new.event))
                    .bind(now)
                    .bind(new.status.as_str())
                    .bind(new.reason.map(text))
                    .bind(new.payload)
                    .bind(new.request);
            }
            query.fetch_all(&mut **tx).await?
        });
        let mut ids: HashMap<(String, String), i64> = stored
            .into_iter()
            .map(|(id, provider, delivery_id)| ((provider, delivery_id), id))
            .collect();
        // The first of two equal keys in the batch gets the row; the second is a duplicate.
        Ok(batch
            .iter()
            .map(|new| ids.remove(&(text(new.provider), text(new.delivery_id))))
            .collect())
    }

    /// Records that intake job `intake_id` handled the delivery, with the outcome.
    pub async fn finish_intake(
        &mut self,
        id: i64,
        intake_id: &str,
        status: DeliveryStatus,
        reason: Option<&str>,
        conversation_id: Option<&str>,
    ) -> Result<()> {
        let done = on_backend!(self, tx => sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, reason = $3, conversation_id = $4, \
             intake_id = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(reason.map(text))
        .bind(conversation_id)
        .bind(intake_id)
        .execute(&mut **tx)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("delivery"));
        }
        Ok(())
    }

    /// Puts a delivery back to accepted, for its request to be handled again.
    pub async fn reopen_delivery(&mut self, id: i64) -> Result<()> {
        let done = on_backend!(self, tx => sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, reason = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(DeliveryStatus::Accepted.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("delivery"));
        }
        Ok(())
    }

    /// Claims the item behind a request for `delivery`; returns the delivery that claimed it
    /// first when that is another one.
    pub async fn claim_request(&mut self, request_key: &str, delivery: i64) -> Result<Option<i64>> {
        let owner: i64 = on_backend!(self, tx => {
            sqlx::query(
                "INSERT INTO intake_requests (request_key, delivery_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (request_key) DO NOTHING",
            )
            .bind(text(request_key))
            .bind(delivery)
            .bind(now_millis())
            .execute(&mut **tx)
            .await?;
            sqlx::query_scalar("SELECT delivery_id FROM intake_requests WHERE request_key = $1")
                .bind(text(request_key))
                .fetch_one(&mut **tx)
                .await?
        });
        Ok((owner != delivery).then_some(owner))
    }

    pub async fn delivery(&mut self, id: i64) -> Result<Delivery> {
        on_backend!(self, tx => sqlx::query_as::<_, Delivery>(select_deliveries!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?)
        .ok_or(StorageError::NotFound("delivery"))
    }

    /// Stores a delivery; `None` when this provider's delivery id was stored before.
    pub async fn record_delivery(&mut self, new: &NewDelivery<'_>) -> Result<Option<i64>> {
        Ok(on_backend!(self, tx => sqlx::query_scalar::<_, i64>(
            "INSERT INTO webhook_deliveries (provider, delivery_id, event, received_at, status, reason, payload, request) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id",
        )
        .bind(text(new.provider))
        .bind(text(new.delivery_id))
        .bind(text(new.event))
        .bind(now_millis())
        .bind(new.status.as_str())
        .bind(new.reason.map(text))
        .bind(new.payload)
        .bind(new.request)
        .fetch_optional(&mut **tx)
        .await?))
    }

    pub async fn set_delivery_outcome(
        &mut self,
        id: i64,
        status: DeliveryStatus,
        reason: Option<&str>,
        conversation_id: Option<&str>,
    ) -> Result<()> {
        let done = on_backend!(self, tx => sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, reason = $3, \
             conversation_id = COALESCE($4, conversation_id) WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(reason)
        .bind(conversation_id)
        .execute(&mut **tx)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StorageError::NotFound("delivery"));
        }
        Ok(())
    }
}

impl Db {
    pub async fn delivery(&self, id: i64) -> Result<Delivery> {
        on_backend!(self, pool => sqlx::query_as::<_, Delivery>(select_deliveries!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?)
        .ok_or(StorageError::NotFound("delivery"))
    }

    /// Deliveries newest first, optionally of one provider and status, with ids below `before`.
    pub async fn deliveries(
        &self,
        provider: Option<&str>,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        Ok(
            on_backend!(self, pool => sqlx::query_as::<_, Delivery>(select_deliveries!(
            "WHERE ($1 IS NULL OR provider = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        ))
            .bind(provider)
            .bind(status.map(DeliveryStatus::as_str))
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?),
        )
    }
}
