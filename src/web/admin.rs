//! The admin API, guarded by the `OPENHANDS_ADMIN_API_KEY` bearer token: what the webhooks did.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Json;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::storage::{Delivery, DeliveryStatus};

const PROVIDERS: [&str; 5] = ["github", "gitlab", "slack", "jira", "linear"];
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/deliveries", get(list_deliveries))
        .route("/api/deliveries/{id}", get(show_delivery))
}

/// Accepts the request when it carries `Authorization: Bearer <OPENHANDS_ADMIN_API_KEY>`.
fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = state.admin_api_key.as_ref().ok_or(ApiError::Forbidden(
        "the admin API is disabled; set OPENHANDS_ADMIN_API_KEY to enable it",
    ))?;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    // Compare digests: constant time whatever the lengths.
    let matches = Sha256::digest(given.trim().as_bytes())
        .ct_eq(&Sha256::digest(expected.expose().as_bytes()));
    if bool::from(matches) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[derive(Debug, Deserialize)]
struct DeliveryQuery {
    provider: Option<String>,
    status: Option<String>,
    /// Only deliveries with a smaller id: the `next_before` of the previous page.
    before: Option<i64>,
    limit: Option<i64>,
}

/// A delivery as the API shows it (the raw payload stays in the database).
#[derive(Debug, Serialize)]
struct DeliveryView {
    id: i64,
    provider: String,
    delivery_id: String,
    event: String,
    received_at: i64,
    status: String,
    reason: Option<String>,
    conversation_id: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            provider: d.provider,
            delivery_id: d.delivery_id,
            event: d.event,
            received_at: d.received_at,
            status: d.status,
            reason: d.reason,
            conversation_id: d.conversation_id,
        }
    }
}

#[derive(Debug, Serialize)]
struct DeliveryPage {
    deliveries: Vec<DeliveryView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

async fn list_deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    require_admin(&state, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let provider = match query.provider.as_deref() {
        Some(p) if !PROVIDERS.contains(&p) => {
            return Err(ApiError::BadRequest(format!(
                "provider must be one of {}; got `{p}`",
                PROVIDERS.join(", ")
            )));
        }
        other => other,
    };
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!(
                "status must be one of {}; got `{text}`",
                known.join(", ")
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}; got {limit}"
        )));
    }
    // One more than asked tells whether there is a next page.
    let mut deliveries = state
        .db
        .deliveries(provider, status, query.before, limit + 1)
        .await?;
    let next_before = if deliveries.len() as i64 > limit {
        deliveries.truncate(limit as usize);
        deliveries.last().map(|d| d.id)
    } else {
        None
    };
    Ok(Json(DeliveryPage {
        deliveries: deliveries.into_iter().map(DeliveryView::from).collect(),
        next_before,
    }))
}

async fn show_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DeliveryView>, ApiError> {
    require_admin(&state, &headers)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("delivery id must be a number; got `{id}`")))?;
    Ok(Json(state.db.delivery(id).await?.into()))
}
