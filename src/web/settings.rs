//! A user's settings and secrets: `GET/POST /api/settings` (LLM model, base URL and key, step
//! and budget limits), `GET/POST /api/secrets`, `PUT/DELETE /api/secrets/{name}`, and
//! `GET /api/options/models`. Keys and secret values are sealed with the keyring and never
//! returned: settings say only whether a key is set, and secrets list only names.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, put};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};

use super::auth::Caller;
use super::conversations::iso;
use super::params::Body;
use super::{ApiError, AppState};
use crate::agent::llm::LlmClient;
use crate::agent::mcp::McpConfig;

/// The body of `POST /api/settings`: a field left out stays as it is, a field set to null
/// goes back to the server's default. Other fields (OpenHands' settings have many more) are
/// ignored, and named in the answer's `ignored_fields`.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct SettingsBody {
    /// The model, as `provider/name` (e.g. `anthropic/claude-sonnet-4-5`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 200)]
    llm_model: Option<Option<String>>,
    /// An OpenAI-compatible endpoint (http or https) for the model.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 500)]
    llm_base_url: Option<Option<String>>,
    /// The model provider's key; stored sealed and never shown again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 4096)]
    llm_api_key: Option<Option<String>>,
    /// The most steps the agent takes in one run.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    max_iterations: Option<Option<i64>>,
    /// The most one task may spend on the model, in US dollars.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000000)]
    max_budget_per_task: Option<Option<f64>>,
    /// Whether the agent's risky actions wait for your confirmation in the conversations you
    /// start here (each conversation may choose otherwise).
    confirmation_mode: Option<bool>,
    /// Your MCP servers, in OpenHands' `mcp_config` shape; null removes them. Secret values
    /// shown as `**********` keep what is stored.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<McpConfig>)]
    mcp_config: Option<Option<McpConfig>>,
    /// Any other field (OpenHands' settings have many more): ignored.
    #[serde(flatten)]
    #[schema(ignore)]
    other: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// A field that is present, null or not: `Some(None)` for null, where an absent one is `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The body of `POST /api/secrets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSecretBody {
    /// An environment variable's name: letters, digits and `_`, not starting with a digit.
    #[schema(min_length = 1, max_length = 100, example = "DEPLOY_TOKEN")]
    name: String,
    /// Given to the agent's sandbox as the variable's value; never shown again.
    #[schema(min_length = 1, max_length = 65536)]
    value: String,
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// The body of `PUT /api/secrets/{name}`: a new value, a new description, or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretUpdateBody {
    value: Option<String>,
    description: Option<String>,
}

// Written out rather than derived: utoipa-gen 5.5 writes `min_properties` as `maxProperties`.
impl utoipa::PartialSchema for SecretUpdateBody {
    fn schema() -> RefOr<Schema> {
        let text = |max: usize| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(max))
        };
        ObjectBuilder::new()
            .description(Some(
                "A new value, a new description, or both; neither may be null.",
            ))
            .property("value", text(65536))
            .property("description", text(500))
            .min_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .into()
    }
}

impl ToSchema for SecretUpdateBody {}

/// The caller's LLM settings and limits; null means the server's default.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SettingsView {
    pub(super) llm_model: Option<String>,
    pub(super) llm_base_url: Option<String>,
    /// Whether a key of the caller's is stored (the key is never shown).
    pub(super) llm_api_key_set: bool,
    pub(super) max_iterations: Option<i64>,
    pub(super) max_budget_per_task: Option<f64>,
    /// Whether risky actions wait for your confirmation in your conversations.
    pub(super) confirmation_mode: bool,
    /// Your MCP servers, secret values shown as `**********`; null when none are stored.
    mcp_config: Option<McpConfig>,
    /// Fields of the request that this service does not keep (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) ignored_fields: Vec<String>,
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(super) struct SecretView {
    name: String,
    description: Option<String>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SecretList {
    secrets: Vec<SecretView>,
    /// The same, under the name OpenHands' web app reads.
    custom_secrets: Vec<SecretView>,
}

/// The secret written.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SecretName {
    name: String,
}

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

pub(super) async fn settings_view(
    state: &AppState,
    user_id: &str,
) -> Result<SettingsView, ApiError> {
    let llm = state.db.user_llm(user_id).await?;
    let limits = state.db.user_limits(user_id).await?;
    Ok(SettingsView {
        llm_model: llm.llm_model,
        llm_base_url: llm.llm_base_url,
        llm_api_key_set: llm.llm_api_key.is_some(),
        max_iterations: limits.max_iterations,
        max_budget_per_task: limits.max_budget_usd,
        confirmation_mode: limits.confirmation_mode,
        mcp_config: super::mcp::shown(state, state.db.user_mcp_config(user_id).await?),
        ignored_fields: Vec::new(),
    })
}

#[utoipa::path(
    get,
    path = "/api/settings",
    tag = "settings",
    summary = "The caller's LLM settings and limits",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "The settings", body = SettingsView)),
)]
pub(super) async fn show_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(settings_view(&state, &caller.0.id).await?))
}

/// `value` sealed for storage, when what the keyring seals can be read again after a restart.
fn seal(state: &AppState, value: &str) -> Result<String, ApiError> {
    if !state.keyring.is_persistent() {
        return Err(ApiError::Conflict(
            "keys and secrets cannot be stored: the server keeps its database in memory and has no OPENHANDS_SECRET_KEY".into(),
        ));
    }
    state.keyring.seal(value).map_err(ApiError::Internal)
}

/// A text setting as stored: trimmed, and none when blank.
fn trimmed(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Changes the fields given: a field set to null is cleared, one left out stays.
#[utoipa::path(
    post,
    path = "/api/settings",
    tag = "settings",
    summary = "Change the caller's model, endpoint, key and limits",
    extensions(("x-access" = json!("user"))),
    request_body = SettingsBody,
    responses((status = 200, description = "The settings now", body = SettingsView)),
)]
pub(super) async fn save_settings(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<SettingsBody>,
) -> Result<Json<SettingsView>, ApiError> {
    let ignored: Vec<String> = body.other.keys().cloned().collect();
    let mut view = apply_settings(&state, &caller, body).await?;
    if !ignored.is_empty() {
        tracing::info!(user_id = %caller.0.id, ignored = ?ignored, "settings: fields this service does not keep were ignored");
    }
    view.ignored_fields = ignored;
    Ok(Json(view))
}

/// A settings body as clients send it: any JSON object, whose known fields are then checked
/// as a [`SettingsBody`].
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(super) struct AnySettings(pub(super) serde_json::Map<String, serde_json::Value>);

impl utoipa::PartialSchema for AnySettings {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Object).into()
    }
}

impl ToSchema for AnySettings {}

/// The fields of `SettingsBody`, for clients that send more (OpenHands' own settings).
pub(super) const SETTINGS_FIELDS: [&str; 7] = [
    "llm_model",
    "llm_base_url",
    "llm_api_key",
    "max_iterations",
    "max_budget_per_task",
    "confirmation_mode",
    "mcp_config",
];

/// Settings from a JSON object of `SettingsBody`'s fields, checked against its schema.
pub(super) fn settings_body(fields: serde_json::Value) -> Result<SettingsBody, ApiError> {
    super::params::checked(fields)
}

/// Changes the settings `body` gives; answers them as they are now.
pub(super) async fn apply_settings(
    state: &AppState,
    caller: &Caller,
    body: SettingsBody,
) -> Result<SettingsView, ApiError> {
    let mut llm = state.db.user_llm(&caller.0.id).await?;
    let mut limits = state.db.user_limits(&caller.0.id).await?;
    if let Some(model) = body.llm_model {
        llm.llm_model = trimmed(model);
    }
    if let Some(url) = body.llm_base_url {
        llm.llm_base_url = trimmed(url);
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
    if let Some(key) = body.llm_api_key {
        llm.llm_api_key = match trimmed(key) {
            Some(key) => Some(seal(state, &key)?),
            None => None,
        };
    }
    if let Some(max_iterations) = body.max_iterations {
        limits.max_iterations = max_iterations;
    }
    if let Some(budget) = body.max_budget_per_task {
        limits.max_budget_usd = budget;
    }
    if let Some(on) = body.confirmation_mode {
        limits.confirmation_mode = on;
    }
    let mcp_config = match body.mcp_config {
        Some(config) => {
            let stored = state.db.user_mcp_config(&caller.0.id).await?;
            Some(super::mcp::sealed(state, config, stored, "mcp_config")?)
        }
        None => None,
    };
    state
        .db
        .set_user_settings(&caller.0.id, &llm, &limits)
        .await?;
    if let Some(sealed) = mcp_config {
        state
            .db
            .set_user_mcp_config(&caller.0.id, sealed.as_deref())
            .await?;
    }
    tracing::info!(user_id = %caller.0.id, "settings saved");
    settings_view(state, &caller.0.id).await
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

#[utoipa::path(
    get,
    path = "/api/secrets",
    tag = "settings",
    summary = "The caller's secrets, without values",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "The secrets", body = SecretList)),
)]
pub(super) async fn list_secrets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SecretList>, ApiError> {
    let secrets: Vec<SecretView> = state
        .db
        .secrets_of(&caller.0.id)
        .await?
        .into_iter()
        .map(|s| SecretView {
            name: s.name,
            description: s.description,
            created_at: iso(s.created_at),
            updated_at: iso(s.updated_at),
        })
        .collect();
    Ok(Json(SecretList {
        custom_secrets: secrets.clone(),
        secrets,
    }))
}

#[utoipa::path(
    post,
    path = "/api/secrets",
    tag = "settings",
    summary = "Add a secret, given to the agent's sandbox as an environment variable",
    extensions(("x-access" = json!("user"))),
    request_body = NewSecretBody,
    responses((status = 201, description = "Stored", body = SecretName)),
)]
pub(super) async fn create_secret(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<NewSecretBody>,
) -> Result<(StatusCode, Json<SecretName>), ApiError> {
    let name = body.name.trim();
    check_secret_name(name)?;
    let sealed = seal(&state, &body.value)?;
    state
        .db
        .create_secret(&caller.0.id, name, &sealed, body.description.as_deref())
        .await?;
    tracing::info!(user_id = %caller.0.id, secret = name, "secret stored");
    Ok((
        StatusCode::CREATED,
        Json(SecretName {
            name: name.to_string(),
        }),
    ))
}

#[utoipa::path(
    put,
    path = "/api/secrets/{name}",
    tag = "settings",
    summary = "Change a secret's value or description",
    extensions(("x-access" = json!("user"))),
    params(("name" = String, Path, description = "The secret's name")),
    request_body = SecretUpdateBody,
    responses((status = 200, description = "Changed", body = SecretName)),
)]
pub(super) async fn update_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<SecretUpdateBody>,
) -> Result<Json<SecretName>, ApiError> {
    let sealed = body
        .value
        .as_deref()
        .map(|value| seal(&state, value))
        .transpose()?;
    state
        .db
        .update_secret(
            &caller.0.id,
            &name,
            sealed.as_deref(),
            body.description.as_deref(),
        )
        .await?;
    Ok(Json(SecretName { name }))
}

#[utoipa::path(
    delete,
    path = "/api/secrets/{name}",
    tag = "settings",
    summary = "Delete a secret",
    extensions(("x-access" = json!("user"))),
    params(("name" = String, Path, description = "The secret's name")),
    responses((status = 204, description = "Deleted")),
)]
pub(super) async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.db.delete_secret(&caller.0.id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/options/models",
    tag = "settings",
    summary = "Model names to offer",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "Model names", body = Vec<String>)),
)]
pub(super) async fn models(_caller: Caller) -> Json<&'static [&'static str]> {
    Json(&SUGGESTED_MODELS)
}
