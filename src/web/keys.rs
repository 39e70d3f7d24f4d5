//! `POST/GET/DELETE /api/keys`: a user's API keys. A key is shown once, when made; the list
//! shows its name, first characters, expiry and last use.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, new_api_key};
use super::conversations::iso;
use super::params::Body;
use super::{ApiError, AppState};
use crate::crypto::key_hash;
use crate::storage::{ApiKey, now_millis};

/// The characters of a key kept to tell keys apart.
const SHOWN_PREFIX: usize = 10;

/// The body of `POST /api/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKeyBody {
    /// What the key is for.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Days until the key stops working; without it, it never does.
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<i64>,
}

/// An API key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyView {
    id: String,
    name: String,
    /// The key's first characters, to tell keys apart.
    prefix: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339; null when it never expires.
    expires_at: Option<String>,
    /// RFC 3339; null when never used.
    last_used_at: Option<String>,
}

/// A new key: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NewKey {
    #[serde(flatten)]
    listed: KeyView,
    /// The key (`oh_…`), to send as `Authorization: Bearer …`.
    key: String,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/keys", get(list_keys).post(create_key))
        .route("/api/keys/{id}", delete(delete_key))
}

fn key_view(key: &ApiKey) -> KeyView {
    KeyView {
        id: key.id.clone(),
        name: key.name.clone(),
        prefix: key.prefix.clone(),
        created_at: iso(key.created_at),
        expires_at: key.expires_at.map(iso),
        last_used_at: key.last_used_at.map(iso),
    }
}

/// Makes a key of `user_id`; returns the key (to show once) and its record.
pub async fn issue_key(
    db: &crate::storage::Db,
    user_id: &str,
    name: &str,
    expires_at: Option<i64>,
) -> Result<(String, ApiKey), ApiError> {
    let key = new_api_key();
    let prefix: String = key.chars().take(SHOWN_PREFIX).collect();
    let stored = db
        .create_api_key(user_id, name, &prefix, &key_hash(&key), expires_at)
        .await?;
    Ok((key, stored))
}

#[utoipa::path(
    post,
    path = "/api/keys",
    tag = "keys",
    summary = "Create an API key (shown once)",
    extensions(("x-access" = json!("user"))),
    request_body = NewKeyBody,
    responses((status = 201, description = "The key, shown this once", body = NewKey)),
)]
pub(super) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewKeyBody>,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::BadRequest(
            "`name` is required and must not be blank".into(),
        ));
    }
    let expires_at = body
        .expires_in_days
        .map(|days| now_millis() + days * 24 * 3600 * 1000);
    let (key, stored) = issue_key(&state.db, &caller.0.id, name, expires_at).await?;
    tracing::info!(user_id = %caller.0.id, key_id = %stored.id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(NewKey {
            listed: key_view(&stored),
            key,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/keys",
    tag = "keys",
    summary = "The caller's API keys: prefix, expiry, last use",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "The keys, as a list (the shape OpenHands' web app reads)", body = Vec<KeyView>)),
)]
pub(super) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    let keys = state.db.api_keys_of(&caller.0.id).await?;
    Ok(Json(keys.iter().map(key_view).collect()))
}

#[utoipa::path(
    delete,
    path = "/api/keys/{id}",
    tag = "keys",
    summary = "Revoke an API key",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The key's id (not the key)")),
    responses((status = 204, description = "Revoked")),
)]
pub(super) async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.db.delete_api_key(&caller.0.id, &id).await?;
    tracing::info!(user_id = %caller.0.id, key_id = %id, "API key deleted");
    Ok(StatusCode::NO_CONTENT)
}
