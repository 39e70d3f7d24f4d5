//! The admin API, for administrators (an administrator's API key, or the bootstrap
//! `OPENHANDS_ADMIN_API_KEY`): what the webhooks did, users and their provider accounts, and
//! the repository of each Slack channel.

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Admin;
use super::params::{Fields, json_object};
use super::{ApiError, AppState};
use crate::intake::Intake;
use crate::queue;
use crate::storage::{Delivery, DeliveryStatus, OutboxPost, User, UserLink};

/// Providers whose accounts can be linked: the five that send work, and OpenID sign-in.
const PROVIDERS: [&str; 6] = ["github", "gitlab", "slack", "jira", "linear", "oidc"];
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/deliveries", get(list_deliveries))
        .route("/api/deliveries/{id}", get(show_delivery))
        .route("/api/deliveries/{id}/redeliver", post(redeliver))
        .route("/api/users", post(create_user))
        .route("/api/user-links", get(list_links).post(create_link))
        .route(
            "/api/user-links/{provider}/{workspace}/{external_id}",
            delete(delete_link),
        )
        .route("/api/slack-channels", get(list_channels))
        .route(
            "/api/slack-channels/{channel}",
            put(set_channel).delete(delete_channel),
        )
}

/// The fields of `PUT /api/slack-channels/{channel}`.
pub const CHANNEL_FIELDS: &[&str] = &["repository"];

/// Every channel's repository as set here (SLACK_CHANNEL_REPOSITORIES gives the defaults
/// below them).
async fn list_channels(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let channels = state.db.channel_repositories().await?;
    Ok(Json(json!({ "channels": channels })))
}

async fn set_channel(
    State(state): State<AppState>,
    _admin: Admin,
    Path(channel): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<crate::storage::ChannelRepository>, ApiError> {
    let body = json_object(body)?;
    let fields = Fields::new(&body, CHANNEL_FIELDS)?;
    let repository = fields.required_text("repository", 300)?;
    let channel = channel.trim().to_ascii_uppercase();
    if channel.is_empty() || !channel.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::BadRequest(format!(
            "`{channel}` is not a Slack channel id (letters and digits, e.g. C0123ABCD)"
        )));
    }
    let (repository, git_provider) =
        crate::integrations::settings::parse_repository_setting(repository)
            .map_err(ApiError::BadRequest)?;
    let set = state
        .db
        .set_channel_repository(&channel, &repository, git_provider)
        .await?;
    Ok(Json(set))
}

async fn delete_channel(
    State(state): State<AppState>,
    _admin: Admin,
    Path(channel): Path<String>,
) -> Result<StatusCode, ApiError> {
    let channel = channel.trim().to_ascii_uppercase();
    if state.db.delete_channel_repository(&channel).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("channel repository"))
    }
}

/// A JSON body, or a 400 that says what is wrong with it.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// Re-runs the intake of a delivery's request (after linking the sender, say).
async fn redeliver(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = delivery_id(&id)?;
    let mut tx = state.db.begin().await?;
    let delivery = tx.delivery(id).await?;
    if delivery.request.is_none() {
        return Err(ApiError::Conflict(format!(
            "delivery {id} asked for nothing ({}): there is nothing to re-run",
            delivery.reason.as_deref().unwrap_or(&delivery.status)
        )));
    }
    tx.reopen_delivery(id).await?;
    let job = queue::enqueue(&mut tx, &Intake::new(id))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "delivery": id, "job": job })),
    ))
}

#[derive(Debug, Deserialize)]
struct NewUserBody {
    login: String,
    email: Option<String>,
    #[serde(default)]
    is_admin: bool,
}

async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    body: Result<Json<NewUserBody>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let body = json_body(body)?;
    let login = body.login.trim();
    if login.is_empty() || login.len() > 100 {
        return Err(ApiError::BadRequest(
            "`login` must be 1 to 100 characters".into(),
        ));
    }
    let user = state
        .db
        .create_user(login, body.email.as_deref(), body.is_admin)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Deserialize)]
struct NewLinkBody {
    provider: String,
    workspace: String,
    external_id: String,
    /// The user's login.
    user: String,
}

/// Links a provider account (a Slack, Jira or Linear member, or a GitHub/GitLab account) to a
/// user, who then owns the conversations that account starts.
async fn create_link(
    State(state): State<AppState>,
    _admin: Admin,
    body: Result<Json<NewLinkBody>, JsonRejection>,
) -> Result<(StatusCode, Json<UserLink>), ApiError> {
    let body = json_body(body)?;
    if !PROVIDERS.contains(&body.provider.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "`provider` must be one of {}",
            PROVIDERS.join(", ")
        )));
    }
    if body.workspace.trim().is_empty() || body.external_id.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "`workspace` and `external_id` must not be empty".into(),
        ));
    }
    let user = state
        .db
        .user_by_login(body.user.trim())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    // Jira sites are compared without a trailing slash, in lower case.
    let workspace = if body.provider == "jira" {
        body.workspace
            .trim()
            .trim_end_matches('/')
            .to_ascii_lowercase()
    } else {
        body.workspace.trim().to_string()
    };
    let link = state
        .db
        .link_user(
            &body.provider,
            &workspace,
            body.external_id.trim(),
            &user.id,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(link)))
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    /// Only the links of the user with this login.
    user: Option<String>,
}

async fn list_links(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let user_id = match query.user.as_deref() {
        Some(login) => Some(
            state
                .db
                .user_by_login(login)
                .await?
                .ok_or(ApiError::NotFound("user"))?
                .id,
        ),
        None => None,
    };
    let links = state.db.user_links(user_id.as_deref()).await?;
    Ok(Json(json!({ "links": links })))
}

async fn delete_link(
    State(state): State<AppState>,
    _admin: Admin,
    Path((provider, workspace, external_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    if state
        .db
        .unlink_user(&provider, &workspace, &external_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("link"))
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

/// A post of the outbox as the API shows it: what went back to the provider, or why not.
#[derive(Debug, Serialize)]
struct PostView {
    id: i64,
    provider: String,
    kind: String,
    /// `pending`, `sent` or `failed`.
    status: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
}

impl From<OutboxPost> for PostView {
    fn from(p: OutboxPost) -> Self {
        Self {
            id: p.id,
            provider: p.provider,
            kind: p.kind,
            status: p.status,
            attempts: p.attempts,
            last_error: p.last_error,
            created_at: p.created_at,
            sent_at: p.sent_at,
        }
    }
}

/// One delivery, with the posts of the conversation it led to.
#[derive(Debug, Serialize)]
struct DeliveryDetail {
    #[serde(flatten)]
    delivery: DeliveryView,
    posts: Vec<PostView>,
}

#[derive(Debug, Serialize)]
struct DeliveryPage {
    deliveries: Vec<DeliveryView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

async fn list_deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
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
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let id = delivery_id(&id)?;
    let delivery = state.db.delivery(id).await?;
    let posts = match &delivery.conversation_id {
        Some(conversation_id) => state.db.outbox_posts_of(conversation_id).await?,
        None => Vec::new(),
    };
    Ok(Json(DeliveryDetail {
        delivery: delivery.into(),
        posts: posts.into_iter().map(PostView::from).collect(),
    }))
}

/// A delivery's id from the path.
fn delivery_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::BadRequest(format!("delivery id must be a number; got `{id}`")))
}
