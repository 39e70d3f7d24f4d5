//! A user's settings and secrets: `GET/POST /api/settings` (LLM model, base URL and key, step
//! and budget limits), `GET/POST /api/secrets`, `PUT/DELETE /api/secrets/{name}`, and
//! `GET /api/options/models`. Keys and secret values are sealed with the keyring and never
//! returned: settings say only whether a key is set, and secrets list only names.

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, put};
use serde_json::{Value, json};

use super::auth::Caller;
use super::conversations::iso;
use super::params::{Fields, json_object};
use super::{ApiError, AppState};
use crate::agent::llm::LlmClient;

/// The fields of `POST /api/settings`.
pub const SETTINGS_FIELDS: &[&str] = &[
    "llm_model",
    "llm_base_url",
    "llm_api_key",
    "max_iterations",
    "max_budget_per_task",
];
/// The fields of `POST /api/secrets`.
pub const NEW_SECRET_FIELDS: &[&str] = &["name", "value", "description"];
/// The fields of `PUT /api/secrets/{name}`.
pub const SECRET_UPDATE_FIELDS: &[&str] = &["value", "description"];

const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Names the sandbox's own environment needs, which a secret must not replace.
const RESERVED_NAMES: [&str; 6] = ["PATH", "HOME", "USER", "SHELL", "PWD", "TERM"];
/// Model names offered in settings forms; any other name a provider knows works too.
const SUGGESTED_MODELS: [&str; 8] = [
    "anthropic/claude-sonnet-4-5",
    "anthropic/claude-opus-4-1",
    "anthropic/claude-haiku-4-5",
    "openai/gpt-5",
    "openai/gpt-5-mini",
    "openai/gpt-4.1",
    "openrouter/anthropic/claude-sonnet-4.5",
    "ollama/qwen3-coder",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(show_settings).post(save_settings))
        .route("/api/secrets", get(list_secrets).post(create_secret))
        .route(
            "/api/secrets/{name}",
            put(update_secret).delete(delete_secret),
        )
        .route("/api/options/models", get(models))
}

async fn settings_json(state: &AppState, user_id: &str) -> Result<Value, ApiError> {
    let llm = state.db.user_llm(user_id).await?;
    let limits = state.db.user_limits(user_id).await?;
    Ok(json!({
        "llm_model": llm.llm_model,
        "llm_base_url": llm.llm_base_url,
        "llm_api_key_set": llm.llm_api_key.is_some(),
        "max_iterations": limits.max_iterations,
        "max_budget_per_task": limits.max_budget_usd,
    }))
}

async fn show_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(settings_json(&state, &caller.0.id).await?))
}

/// `value` sealed for storage, when what the keyring seals can be read again after a restart.
fn seal(state: &AppState, value: &str) -> Result<String, ApiError> {
    if !state.keyring.is_persistent() {
        return Err(ApiError::Conflict(
            "keys and secrets cannot be stored: the server has no OPENHANDS_SECRET_KEY".into(),
        ));
    }
    state.keyring.seal(value).map_err(ApiError::Internal)
}

/// Changes the fields given: a field set to null is cleared, one left out stays.
async fn save_settings(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_object(body)?;
    let fields = Fields::new(&body, SETTINGS_FIELDS)?;
    let mut llm = state.db.user_llm(&caller.0.id).await?;
    let mut limits = state.db.user_limits(&caller.0.id).await?;
    if fields.has("llm_model") {
        llm.llm_model = fields
            .text("llm_model", 200)?
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string);
    }
    if fields.has("llm_base_url") {
        llm.llm_base_url = fields
            .text("llm_base_url", 500)?
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        if let Some(url) = &llm.llm_base_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ApiError::BadRequest(format!("`llm_base_url` is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ApiError::BadRequest(
                    "`llm_base_url` must be an http or https URL".into(),
                ));
            }
        }
    }
    if let Some(model) = &llm.llm_model
        && let Err(error) = LlmClient::new(model, None, llm.llm_base_url.as_deref())
    {
        return Err(ApiError::BadRequest(format!(
            "`llm_model`: {}",
            error
                .to_string()
                .replace("LLM_MODEL", "the model")
                .replace("LLM_BASE_URL", "`llm_base_url`")
        )));
    }
    if fields.has("llm_api_key") {
        llm.llm_api_key = match fields.text("llm_api_key", 4096)?.map(str::trim) {
            Some(key) if !key.is_empty() => Some(seal(&state, key)?),
            _ => None,
        };
    }
    if fields.has("max_iterations") {
        limits.max_iterations = fields.integer("max_iterations", 1, 10_000)?;
    }
    if fields.has("max_budget_per_task") {
        limits.max_budget_usd = fields.number("max_budget_per_task", 0.0, 1_000_000.0)?;
    }
    state
        .db
        .set_user_settings(&caller.0.id, &llm, &limits)
        .await?;
    tracing::info!(user_id = %caller.0.id, "settings saved");
    Ok(Json(settings_json(&state, &caller.0.id).await?))
}

/// A secret's name is an environment variable's.
fn check_secret_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ApiError::BadRequest(
            "`name` must be an environment variable name: letters, digits and `_`, not starting with a digit".into(),
        ));
    }
    if RESERVED_NAMES.contains(&name) || name.starts_with("OPENHANDS_") {
        return Err(ApiError::BadRequest(format!(
            "`name` {name} is reserved for the sandbox itself"
        )));
    }
    Ok(())
}

fn secret_value<'a>(fields: &Fields<'a>, required: bool) -> Result<Option<&'a str>, ApiError> {
    let value = fields.text("value", MAX_SECRET_BYTES)?;
    if required && value.is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest("`value` is required".into()));
    }
    Ok(value)
}

async fn list_secrets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let secrets = state.db.secrets_of(&caller.0.id).await?;
    Ok(Json(json!({
        "secrets": secrets.iter().map(|s| json!({
            "name": s.name,
            "description": s.description,
            "created_at": iso(s.created_at),
            "updated_at": iso(s.updated_at),
        })).collect::<Vec<_>>()
    })))
}

async fn create_secret(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_object(body)?;
    let fields = Fields::new(&body, NEW_SECRET_FIELDS)?;
    let name = fields.required_text("name", 100)?.trim();
    check_secret_name(name)?;
    let value = secret_value(&fields, true)?.unwrap_or_default();
    let description = fields.text("description", 500)?;
    let sealed = seal(&state, value)?;
    state
        .db
        .create_secret(&caller.0.id, name, &sealed, description)
        .await?;
    tracing::info!(user_id = %caller.0.id, secret = name, "secret stored");
    Ok((StatusCode::CREATED, Json(json!({"name": name}))))
}

async fn update_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_object(body)?;
    let fields = Fields::new(&body, SECRET_UPDATE_FIELDS)?;
    let value = secret_value(&fields, false)?;
    let description = fields.text("description", 500)?;
    if value.is_none() && description.is_none() {
        return Err(ApiError::BadRequest(
            "give a new `value`, a `description`, or both".into(),
        ));
    }
    let sealed = value.map(|value| seal(&state, value)).transpose()?;
    state
        .db
        .update_secret(&caller.0.id, &name, sealed.as_deref(), description)
        .await?;
    Ok(Json(json!({"name": name})))
}

async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.db.delete_secret(&caller.0.id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn models(_caller: Caller) -> Json<Value> {
    Json(json!(SUGGESTED_MODELS))
}
