//! `GET /api/user/repositories`: the repositories the caller may work on through the
//! configured providers (the GitHub App's installations, GitLab), for the dashboard's
//! repository picker. The same rules decide as for a request from Slack or a ticket: the
//! caller's linked account must be allowed to push.

use axum::Router;
use axum::extract::State;
use axum::response::Json;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::params::Query;
use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/user/repositories", get(list_repositories))
}

/// The query of `GET /api/user/repositories`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RepositoryQuery {
    /// Words of the name: repositories whose names share one come first (only those, when
    /// some do).
    q: Option<String>,
}

/// A repository the caller may work on.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Repository {
    /// `owner/name` on GitHub, `group/project` on GitLab.
    name: String,
    /// `github` or `gitlab`.
    git_provider: String,
}

/// The caller's repositories, and why the list may be short.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RepositoryList {
    repositories: Vec<Repository>,
    /// What keeps repositories out of the list (no provider configured, no account linked).
    notes: Vec<String>,
}

/// The longest search accepted.
const MAX_QUERY_CHARS: usize = 200;

#[utoipa::path(
    get,
    path = "/api/user/repositories",
    tag = "conversations",
    summary = "The repositories the caller may work on, for picking one",
    extensions(("x-access" = json!("user"))),
    params(RepositoryQuery),
    responses((status = 200, description = "At most 99, by provider and name", body = RepositoryList)),
)]
pub(super) async fn list_repositories(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RepositoryQuery>,
) -> Result<Json<RepositoryList>, ApiError> {
    let words = query.q.as_deref().unwrap_or("").trim();
    if words.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::BadRequest(format!(
            "`q` is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let providers = state.providers.clients();
    let accounts = providers
        .accounts_of(&state.db, &caller.0.id)
        .await
        .map_err(ApiError::Internal)?;
    let mut notes = Vec::new();
    if providers.github.is_none() && providers.gitlab.is_none() {
        notes.push(
            "No repository host is configured on this server (the GitHub App or GITLAB_TOKEN)."
                .to_string(),
        );
    }
    if providers.github.is_some() && accounts.github.is_none() {
        notes.push(
            "No GitHub account is linked to you: sign in with GitHub to see your GitHub repositories.".to_string(),
        );
    }
    if providers.gitlab.is_some() && accounts.gitlab.is_none() {
        notes.push(
            "No GitLab account is linked to you: sign in with GitLab, or ask an administrator to link it.".to_string(),
        );
    }
    let found = providers
        .choices(&accounts, words)
        .await
        .map_err(|e| ApiError::Upstream(format!("cannot list repositories: {e:#}")))?;
    Ok(Json(RepositoryList {
        repositories: found
            .iter()
            .map(|r| Repository {
                name: r.name().to_string(),
                git_provider: r.git_provider().to_string(),
            })
            .collect(),
        notes,
    }))
}
