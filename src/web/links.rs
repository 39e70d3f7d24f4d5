//! People link their own provider accounts: `GET`/`POST /api/links/{token}` show and follow a
//! one-time link offered to an unlinked Slack member, Jira or Linear user (the dashboard's
//! `/link/{token}` page calls them once the person is signed in), and
//! `DELETE /api/user/accounts/…` removes one of the caller's own links.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{delete, get};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::conversations::iso;
use super::{ApiError, AppState};
use crate::intake::links::{self, LinkError};
use crate::storage::LinkToken;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/links/{token}", get(show_link).post(follow_link))
        .route(
            "/api/user/accounts/{provider}/{workspace}/{external_id}",
            delete(unlink),
        )
}

/// The provider account a one-time link links.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LinkView {
    provider: String,
    /// The Slack team id, Jira site or Linear organization id.
    workspace: String,
    external_id: String,
    /// The account's name as the provider showed it.
    account_name: String,
    /// RFC 3339.
    expires_at: String,
}

/// A link followed.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Linked {
    #[serde(flatten)]
    link: LinkView,
    /// `linked`.
    status: String,
    /// The deliveries whose refused requests now run again.
    requests: Vec<i64>,
}

fn link_view(token: &LinkToken) -> LinkView {
    LinkView {
        provider: token.provider.clone(),
        workspace: token.workspace.clone(),
        external_id: token.external_id.clone(),
        account_name: token.account_name.clone(),
        expires_at: iso(token.expires_at),
    }
}

impl From<LinkError> for ApiError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::Unknown => ApiError::NotFound("link"),
            LinkError::Used | LinkError::Expired => ApiError::Gone(error.to_string()),
            LinkError::LinkedElsewhere(_) => ApiError::Conflict(error.to_string()),
            LinkError::Storage(error) => error.into(),
            LinkError::Queue(message) => ApiError::Internal(anyhow::anyhow!(message)),
        }
    }
}

/// The account a link would link, while it may still be followed.
#[utoipa::path(
    get,
    path = "/api/links/{token}",
    tag = "sign-in",
    summary = "The provider account a one-time link would link, while it may be followed",
    extensions(("x-access" = json!("user"))),
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "The account", body = LinkView),
        (status = 410, description = "The link was used or has expired"),
    ),
)]
pub(super) async fn show_link(
    State(state): State<AppState>,
    _caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<LinkView>, ApiError> {
    let token = links::describe(&state.db, &token).await?;
    Ok(Json(link_view(&token)))
}

/// Links the account to the caller and runs the requests it was refused.
#[utoipa::path(
    post,
    path = "/api/links/{token}",
    tag = "sign-in",
    summary = "Follow a one-time link: link its account to the caller and run the requests it was refused",
    extensions(("x-access" = json!("user"))),
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "Linked", body = Linked),
        (status = 409, description = "The account is linked to someone else"),
        (status = 410, description = "The link was used or has expired"),
    ),
)]
pub(super) async fn follow_link(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(token): Path<String>,
) -> Result<Json<Linked>, ApiError> {
    let linked = links::redeem(&state.db, &token, &user).await?;
    Ok(Json(Linked {
        link: link_view(&linked.token),
        status: "linked".into(),
        requests: linked.requests,
    }))
}

/// Removes one of the caller's links (404 for someone else's).
#[utoipa::path(
    delete,
    path = "/api/user/accounts/{provider}/{workspace}/{external_id}",
    tag = "sign-in",
    summary = "Unlink one of the caller's provider accounts",
    extensions(("x-access" = json!("user"))),
    params(
        ("provider" = String, Path, description = "The account's provider"),
        ("workspace" = String, Path, description = "The account's workspace, team, site or host"),
        ("external_id" = String, Path, description = "The provider's id of the account"),
    ),
    responses((status = 204, description = "Unlinked")),
)]
pub(super) async fn unlink(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path((provider, workspace, external_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let mine = state
        .db
        .user_links(Some(&user.id))
        .await?
        .into_iter()
        .any(|l| {
            l.provider == provider && l.workspace == workspace && l.external_id == external_id
        });
    if !mine
        || !state
            .db
            .unlink_user(&provider, &workspace, &external_id)
            .await?
    {
        return Err(ApiError::NotFound("link"));
    }
    tracing::info!(%provider, %workspace, user_id = %user.id, "account unlinked by its user");
    Ok(StatusCode::NO_CONTENT)
}
