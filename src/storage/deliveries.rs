//! Webhook deliveries: each one stored once per provider and delivery id, with what became of it.

use serde::Serialize;

use super::{Db, Result, StorageError, Tx, now_millis, on_backend};

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// `SELECT … FROM webhook_deliveries`, followed by the rest of the statement.
macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT id, provider, delivery_id, event, received_at, status, reason, conversation_id, \
             payload FROM webhook_deliveries ",
            $rest
        )
    };
}

impl Tx {
    /// Stores a delivery; `None` when this provider's delivery id was stored before.
    pub async fn record_delivery(&mut self, new: &NewDelivery<'_>) -> Result<Option<i64>> {
        Ok(on_backend!(self, tx => sqlx::query_scalar::<_, i64>(
            "INSERT INTO webhook_deliveries (provider, delivery_id, event, received_at, status, reason, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id",
        )
        .bind(new.provider)
        .bind(new.delivery_id)
        .bind(new.event)
        .bind(now_millis())
        .bind(new.status.as_str())
        .bind(new.reason)
        .bind(new.payload)
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
