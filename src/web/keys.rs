//! `POST/GET/DELETE /api/keys`: a user's API keys. A key is shown once, when made; the list
//! shows its name, first characters, expiry and last use.

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{delete, get};
use serde_json::{Value, json};

use super::auth::{Caller, new_api_key};
use super::conversations::iso;
use super::params::{Fields, json_object};
use super::{ApiError, AppState};
use crate::crypto::key_hash;
use crate::storage::{ApiKey, now_millis};

/// The characters of a key kept to tell keys apart.
const SHOWN_PREFIX: usize = 10;
const MAX_EXPIRY_DAYS: i64 = 3650;

/// The fields of `POST /api/keys`.
pub const NEW_KEY_FIELDS: &[&str] = &["name", "expires_in_days"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/keys", get(list_keys).post(create_key))
        .route("/api/keys/{id}", delete(delete_key))
}

fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "expires_at": key.expires_at.map(iso),
        "last_used_at": key.last_used_at.map(iso),
    })
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

async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_object(body)?;
    let fields = Fields::new(&body, NEW_KEY_FIELDS)?;
    let name = fields.required_text("name", 100)?.trim();
    let expires_at = fields
        .integer("expires_in_days", 1, MAX_EXPIRY_DAYS)?
        .map(|days| now_millis() + days * 24 * 3600 * 1000);
    let (key, stored) = issue_key(&state.db, &caller.0.id, name, expires_at).await?;
    let mut answer = key_json(&stored);
    answer["key"] = json!(key);
    tracing::info!(user_id = %caller.0.id, key_id = %stored.id, "API key created");
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let keys = state.db.api_keys_of(&caller.0.id).await?;
    Ok(Json(
        json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()}),
    ))
}

async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.db.delete_api_key(&caller.0.id, &id).await?;
    tracing::info!(user_id = %caller.0.id, key_id = %id, "API key deleted");
    Ok(StatusCode::NO_CONTENT)
}
