//! MCP servers for every conversation, stored by administrators: `GET`/`PUT /api/admin/mcp`.
//! MCP_CONFIG in the environment wins and cannot be changed here. Users keep their own in
//! `/api/settings`. Configurations are stored sealed; secret values are never shown back.

use axum::Router;
use axum::extract::State;
use axum::response::Json;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Admin;
use super::params::{Body, NoQuery, Query};
use super::provider_settings::SettingSource;
use super::{ApiError, AppState};
use crate::agent::mcp::McpConfig;
use crate::storage::mcp::SERVICE_MCP_CONFIG;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/mcp", get(show).put(change))
}

/// The MCP servers of every conversation.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ServiceMcpView {
    /// Where the configuration in force comes from: MCP_CONFIG, the one stored here, or none.
    source: SettingSource,
    /// The stored configuration, secret values shown as `**********` (null under MCP_CONFIG,
    /// which is not shown here).
    mcp_config: Option<McpConfig>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceMcpBody {
    /// The configuration to store, in OpenHands' `mcp_config` shape; null removes it. Secret
    /// values sent as `**********` keep what is stored.
    mcp_config: Option<McpConfig>,
}

/// The configuration as it may be shown, from its sealed form; `None` when none is stored or
/// it cannot be read (the run says so to the user).
pub(super) fn shown(state: &AppState, sealed: Option<String>) -> Option<McpConfig> {
    let json = state.keyring.open(&sealed?).ok()?;
    McpConfig::from_json(&json).ok().map(|c| c.masked())
}

/// `config` checked and sealed for storage, hidden values taken from `stored`; `None` removes.
pub(super) fn sealed(
    state: &AppState,
    config: Option<McpConfig>,
    stored: Option<String>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    let Some(mut config) = config else {
        return Ok(None);
    };
    config
        .check()
        .map_err(|e| ApiError::BadRequest(format!("`{field}`: {e}")))?;
    let stored = stored
        .and_then(|sealed| state.keyring.open(&sealed).ok())
        .and_then(|json| McpConfig::from_json(&json).ok());
    config
        .keep_hidden(stored.as_ref())
        .map_err(|e| ApiError::BadRequest(format!("`{field}`: {e}")))?;
    if config.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(&config).map_err(|e| ApiError::Internal(e.into()))?;
    if !state.keyring.is_persistent() {
        return Err(ApiError::Conflict(
            "MCP settings cannot be stored: the server keeps its database in memory and has no OPENHANDS_SECRET_KEY".into(),
        ));
    }
    state
        .keyring
        .seal(&json)
        .map(Some)
        .map_err(ApiError::Internal)
}

async fn view(state: &AppState) -> Result<ServiceMcpView, ApiError> {
    if state.mcp_from_environment {
        return Ok(ServiceMcpView {
            source: SettingSource::Environment,
            mcp_config: None,
        });
    }
    let stored = state.db.service_setting(SERVICE_MCP_CONFIG).await?;
    Ok(ServiceMcpView {
        source: if stored.is_some() {
            SettingSource::Stored
        } else {
            SettingSource::Unset
        },
        mcp_config: shown(state, stored),
    })
}

#[utoipa::path(
    get,
    path = "/api/admin/mcp",
    tag = "admin",
    summary = "The MCP servers every conversation's agent may use",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    responses((status = 200, description = "The service's MCP servers", body = ServiceMcpView)),
)]
pub(super) async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
) -> Result<Json<ServiceMcpView>, ApiError> {
    Ok(Json(view(&state).await?))
}

/// Stores the service's MCP servers; runs that start from now on use them.
#[utoipa::path(
    put,
    path = "/api/admin/mcp",
    tag = "admin",
    summary = "Store the MCP servers every conversation's agent may use",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    request_body = ServiceMcpBody,
    responses((status = 200, description = "Stored", body = ServiceMcpView)),
)]
pub(super) async fn change(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
    Body(body): Body<ServiceMcpBody>,
) -> Result<Json<ServiceMcpView>, ApiError> {
    if state.mcp_from_environment {
        return Err(ApiError::Conflict(
            "MCP_CONFIG is set in the environment, which wins: change it there".into(),
        ));
    }
    let stored = state.db.service_setting(SERVICE_MCP_CONFIG).await?;
    let sealed = sealed(&state, body.mcp_config, stored, "mcp_config")?;
    state
        .db
        .set_service_setting(SERVICE_MCP_CONFIG, sealed.as_deref())
        .await?;
    tracing::info!(
        stored = sealed.is_some(),
        "the service's MCP servers were changed"
    );
    Ok(Json(view(&state).await?))
}
