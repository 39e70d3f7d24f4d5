//! People link their own provider accounts: `GET`/`POST /api/links/{token}` show and follow a
//! one-time link offered to an unlinked Slack member, Jira or Linear user (the dashboard's
//! `/link/{token}` page calls them once the person is signed in), and
//! `DELETE /api/user/accounts/…` removes one of the caller's own links.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{delete, get};
use serde_json::{Value, json};

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

fn link_json(token: &LinkToken) -> Value {
    json!({
        "provider": token.provider,
        "workspace": token.workspace,
        "external_id": token.external_id,
        "account_name": token.account_name,
        "expires_at": iso(token.expires_at),
    })
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
async fn show_link(
    State(state): State<AppState>,
    _caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let token = links::describe(&state.db, &token).await?;
    Ok(Json(link_json(&token)))
}

/// Links the account to the caller and runs the requests it was refused.
async fn follow_link(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let linked = links::redeem(&state.db, &token, &user).await?;
    let mut body = link_json(&linked.token);
    body["status"] = json!("linked");
    body["requests"] = json!(linked.requests);
    Ok(Json(body))
}

/// Removes one of the caller's links (404 for someone else's).
async fn unlink(
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
