//! Provider settings entered on the setup page (administrators): stored sealed, checked first
//! as every process will check them, and in force at once. What the environment sets wins
//! and cannot be changed here; the page shows it as set there.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Json;
use axum::routing::put;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Admin;
use super::params::{Body, NoQuery, Query};
use super::{ApiError, AppState};
use crate::integrations::request::Provider;
use crate::integrations::settings::{STORABLE_SETTINGS, storable_setting};

/// The longest value a setting may take (a PEM private key is about 1.7 KB).
const MAX_VALUE_CHARS: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/integrations/{provider}/settings", put(change))
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum SettingSource {
    /// The environment or a flag: it wins, and is changed there.
    Environment,
    /// Stored from the dashboard.
    Stored,
    Unset,
}

/// One of a provider's settings as the setup page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProviderSettingView {
    /// The environment variable it is, or stands in for.
    name: &'static str,
    label: &'static str,
    /// Secrets are never shown, only whether they are set.
    secret: bool,
    source: SettingSource,
    /// The value, for settings that are not secret.
    value: Option<String>,
}

/// Each storable setting of `provider`, as it stands in this process.
pub(super) async fn settings_of(
    state: &AppState,
    provider: Provider,
) -> Result<Vec<ProviderSettingView>, ApiError> {
    let stored: Vec<String> = state
        .db
        .stored_provider_settings()
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let environment = state.providers.environment();
    let in_force = state.providers.config();
    Ok(STORABLE_SETTINGS
        .iter()
        .filter(|s| s.provider == provider.as_str())
        .map(|setting| {
            let source = if environment.is_some_and(|e| setting.value_in(e).is_some()) {
                SettingSource::Environment
            } else if stored.iter().any(|name| name == setting.name) {
                SettingSource::Stored
            } else {
                SettingSource::Unset
            };
            ProviderSettingView {
                name: setting.name,
                label: setting.label,
                secret: setting.secret,
                source,
                value: in_force.as_deref().and_then(|c| setting.shown_in(c)),
            }
        })
        .collect())
}

/// The body of `PUT /api/integrations/{provider}/settings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderSettingsBody {
    /// Setting name → its new value; `null` or an empty text removes the stored value. Names
    /// left out keep theirs.
    #[schema(required = true)]
    settings: BTreeMap<String, Option<String>>,
}

/// A provider's settings after a change.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProviderSettingsView {
    provider: &'static str,
    /// Whether its webhooks are accepted now.
    configured: bool,
    settings: Vec<ProviderSettingView>,
}

/// Stores a provider's settings (sealed) and puts them in force in every process; refused
/// when they could not answer the provider's requests.
#[utoipa::path(
    put,
    path = "/api/integrations/{provider}/settings",
    tag = "admin",
    summary = "Store a provider's settings from the dashboard; they are in force at once",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery, ("provider" = String, Path, description = "github, gitlab, slack, jira, jira-dc or linear")),
    request_body = ProviderSettingsBody,
    responses((status = 200, description = "Stored and in force", body = ProviderSettingsView)),
)]
pub(super) async fn change(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
    Path(provider): Path<String>,
    Body(body): Body<ProviderSettingsBody>,
) -> Result<Json<ProviderSettingsView>, ApiError> {
    let Some(provider) = Provider::parse(&provider) else {
        return Err(ApiError::NotFound("provider"));
    };
    let Some(environment) = state.providers.environment() else {
        return Err(ApiError::Unavailable(
            "this process does not keep provider settings".into(),
        ));
    };
    let mut changes: Vec<(&str, Option<String>)> = Vec::new();
    for (name, value) in &body.settings {
        let setting = storable_setting(name)
            .filter(|s| s.provider == provider.as_str())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`{name}` is not a {provider} setting that can be stored here; these are: {}",
                    STORABLE_SETTINGS
                        .iter()
                        .filter(|s| s.provider == provider.as_str())
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        if setting.value_in(environment).is_some() {
            return Err(ApiError::Conflict(format!(
                "{name} is set in the environment, which wins: change it there"
            )));
        }
        let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty());
        if value.is_some_and(|v| v.chars().count() > MAX_VALUE_CHARS) {
            return Err(ApiError::BadRequest(format!(
                "{name} is longer than {MAX_VALUE_CHARS} characters"
            )));
        }
        changes.push((setting.name, value.map(str::to_string)));
    }
    state
        .providers
        .check_changes(&state.db, &changes)
        .await
        .map_err(ApiError::BadRequest)?;
    let mut sealed = Vec::with_capacity(changes.len());
    for (name, value) in &changes {
        let value = match value {
            Some(value) => Some(state.providers.seal(value).map_err(ApiError::Internal)?),
            None => None,
        };
        sealed.push((*name, value));
    }
    state.db.change_provider_settings(&sealed).await?;
    let names: Vec<&str> = changes.iter().map(|(name, _)| *name).collect();
    tracing::info!(%provider, settings = ?names, "provider settings stored from the dashboard");
    apply_now(&state).await;
    Ok(Json(ProviderSettingsView {
        provider: provider.as_str(),
        configured: state.providers.webhooks().secrets(provider).is_some(),
        settings: settings_of(&state, provider).await?,
    }))
}

/// Puts the stored provider settings in force in this process (other processes notice within
/// seconds).
pub(super) async fn apply_now(state: &AppState) {
    if let Err(error) = state.providers.reload(&state.db).await {
        tracing::warn!(
            error = format!("{error:#}"),
            "the provider settings were stored but cannot be read back; they are in force after the next check"
        );
    }
}
