//! The admin API, for administrators (an administrator's API key, or the bootstrap
//! `OPENHANDS_ADMIN_API_KEY`): what the webhooks did, users and their provider accounts, and
//! the repository of each Slack channel.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::auth::Admin;
use super::params::{Body, NoQuery, Query};
use super::{ApiError, AppState};
use crate::intake::Intake;
use crate::queue;
use crate::storage::{ChannelRepository, Delivery, DeliveryStatus, OutboxPost, User, UserLink};

const DEFAULT_PAGE: i64 = 50;

/// Providers whose accounts can be linked: the five that send work, and OpenID sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum AccountProvider {
    Github,
    Gitlab,
    Slack,
    Jira,
    #[serde(rename = "jira-dc")]
    JiraDc,
    Linear,
    Oidc,
}

impl AccountProvider {
    fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Slack => "slack",
            Self::Jira => "jira",
            Self::JiraDc => "jira-dc",
            Self::Linear => "linear",
            Self::Oidc => "oidc",
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/deliveries", get(list_deliveries))
        .route("/api/deliveries/{id}", get(show_delivery))
        .route("/api/deliveries/{id}/redeliver", post(redeliver))
        .route("/api/users", get(list_users).post(create_user))
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

/// The body of `PUT /api/slack-channels/{channel}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChannelBody {
    /// `owner/name` or `group/project`, with a `github:` or `gitlab:` prefix where the host
    /// is not the default.
    #[schema(min_length = 1, max_length = 300, example = "acme/api")]
    repository: String,
}

/// Every channel's repository set here.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ChannelList {
    channels: Vec<ChannelRepository>,
}

/// Every channel's repository as set here (SLACK_CHANNEL_REPOSITORIES gives the defaults
/// below them).
#[utoipa::path(
    get,
    path = "/api/slack-channels",
    tag = "admin",
    summary = "The repository of each Slack channel's requests that name none",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    responses((status = 200, description = "The channels", body = ChannelList)),
)]
pub(super) async fn list_channels(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
) -> Result<Json<ChannelList>, ApiError> {
    let channels = state.db.channel_repositories().await?;
    Ok(Json(ChannelList { channels }))
}

#[utoipa::path(
    put,
    path = "/api/slack-channels/{channel}",
    tag = "admin",
    summary = "Set a Slack channel's repository",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery, ("channel" = String, Path, description = "The Slack channel id (e.g. C0123ABCD)")),
    request_body = ChannelBody,
    responses((status = 200, description = "Set", body = ChannelRepository)),
)]
pub(super) async fn set_channel(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
    Path(channel): Path<String>,
    Body(body): Body<ChannelBody>,
) -> Result<Json<ChannelRepository>, ApiError> {
    let channel = channel.trim().to_ascii_uppercase();
    if channel.is_empty() || !channel.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::BadRequest(format!(
            "`{channel}` is not a Slack channel id (letters and digits, e.g. C0123ABCD)"
        )));
    }
    let (repository, git_provider) =
        crate::integrations::settings::parse_repository_setting(&body.repository)
            .map_err(ApiError::BadRequest)?;
    let set = state
        .db
        .set_channel_repository(&channel, &repository, git_provider)
        .await?;
    Ok(Json(set))
}

#[utoipa::path(
    delete,
    path = "/api/slack-channels/{channel}",
    tag = "admin",
    summary = "Remove a Slack channel's repository",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery, ("channel" = String, Path, description = "The Slack channel id")),
    responses((status = 204, description = "Removed")),
)]
pub(super) async fn delete_channel(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
    Path(channel): Path<String>,
) -> Result<StatusCode, ApiError> {
    let channel = channel.trim().to_ascii_uppercase();
    if state.db.delete_channel_repository(&channel).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("channel repository"))
    }
}

/// What a re-run answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Redelivered {
    /// `accepted`.
    status: String,
    delivery: i64,
    /// The intake job's id.
    #[schema(value_type = Object)]
    job: Value,
}

/// Re-runs the intake of a delivery's request (after linking the sender, say).
#[utoipa::path(
    post,
    path = "/api/deliveries/{id}/redeliver",
    tag = "admin",
    summary = "Run a delivery's intake again",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery, ("id" = i64, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Queued", body = Redelivered),
        (status = 409, description = "The delivery asked for nothing"),
    ),
)]
pub(super) async fn redeliver(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Redelivered>), ApiError> {
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
        Json(Redelivered {
            status: "accepted".into(),
            delivery: id,
            job: json!(job),
        }),
    ))
}

/// The body of `POST /api/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUserBody {
    #[schema(min_length = 1, max_length = 100)]
    login: String,
    email: Option<String>,
    /// False by default.
    #[serde(default)]
    is_admin: bool,
}

#[utoipa::path(
    post,
    path = "/api/users",
    tag = "admin",
    summary = "Create a user",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 409, description = "The login is taken"),
    ),
)]
pub(super) async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
    Body(body): Body<NewUserBody>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let login = body.login.trim();
    if login.is_empty() {
        return Err(ApiError::BadRequest(
            "`login` is required and must not be blank".into(),
        ));
    }
    let user = state
        .db
        .create_user(login, body.email.as_deref(), body.is_admin)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Every user.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UserList {
    users: Vec<User>,
}

#[utoipa::path(
    get,
    path = "/api/users",
    tag = "admin",
    summary = "Every user, by login",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    responses((status = 200, description = "The users", body = UserList)),
)]
pub(super) async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(UserList {
        users: state.db.users().await?,
    }))
}

/// The body of `POST /api/user-links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewLinkBody {
    #[schema(inline)]
    provider: AccountProvider,
    /// The GitHub/GitLab host, Slack team id, Jira site or Linear organization id.
    #[schema(min_length = 1)]
    workspace: String,
    /// The provider's id of the account.
    #[schema(min_length = 1)]
    external_id: String,
    /// The user's login.
    #[schema(min_length = 1)]
    user: String,
}

/// Links a provider account (a Slack, Jira or Linear member, or a GitHub/GitLab account) to a
/// user, who then owns the conversations that account starts.
#[utoipa::path(
    post,
    path = "/api/user-links",
    tag = "admin",
    summary = "Link a provider account to a user",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    request_body = NewLinkBody,
    responses(
        (status = 201, description = "Linked", body = UserLink),
        (status = 404, description = "No user has this login"),
        (status = 409, description = "The account is linked already"),
    ),
)]
pub(super) async fn create_link(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
    Body(body): Body<NewLinkBody>,
) -> Result<(StatusCode, Json<UserLink>), ApiError> {
    if body.workspace.trim().is_empty() || body.external_id.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "`workspace` and `external_id` must not be blank".into(),
        ));
    }
    let user = state
        .db
        .user_by_login(body.user.trim())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    // Jira sites are compared without a trailing slash, in lower case.
    let workspace = if matches!(
        body.provider,
        AccountProvider::Jira | AccountProvider::JiraDc
    ) {
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
            body.provider.as_str(),
            &workspace,
            body.external_id.trim(),
            &user.id,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// The query of `GET /api/user-links`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LinkQuery {
    /// Only the links of the user with this login.
    user: Option<String>,
}

/// Links, as the admin API lists them.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LinkList {
    links: Vec<UserLink>,
}

#[utoipa::path(
    get,
    path = "/api/user-links",
    tag = "admin",
    summary = "Links from Slack, Jira, Linear and other accounts to users",
    extensions(("x-access" = json!("admin"))),
    params(LinkQuery),
    responses((status = 200, description = "The links", body = LinkList)),
)]
pub(super) async fn list_links(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<LinkQuery>,
) -> Result<Json<LinkList>, ApiError> {
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
    Ok(Json(LinkList { links }))
}

#[utoipa::path(
    delete,
    path = "/api/user-links/{provider}/{workspace}/{external_id}",
    tag = "admin",
    summary = "Remove a link",
    extensions(("x-access" = json!("admin"))),
    params(
        NoQuery,
        ("provider" = String, Path, description = "The account's provider"),
        ("workspace" = String, Path, description = "The account's workspace, team, site or host"),
        ("external_id" = String, Path, description = "The provider's id of the account"),
    ),
    responses((status = 204, description = "Removed")),
)]
pub(super) async fn delete_link(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
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

/// The query of `GET /api/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveryQuery {
    /// Only this provider's deliveries.
    #[param(inline)]
    provider: Option<AccountProvider>,
    /// Only deliveries that came to this.
    #[param(inline)]
    status: Option<DeliveryStatus>,
    /// Only deliveries with a smaller id: the `next_before` of the previous page.
    before: Option<i64>,
    /// Deliveries per page (50 by default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A delivery as the API shows it (the raw payload stays in the database).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeliveryView {
    id: i64,
    provider: String,
    delivery_id: String,
    event: String,
    /// Milliseconds since the epoch.
    received_at: i64,
    status: String,
    reason: Option<String>,
    conversation_id: Option<String>,
    /// Whether the delivery holds a request to run again: false for one that asked for
    /// nothing, which `POST /api/deliveries/{id}/redeliver` refuses (409).
    redeliverable: bool,
}
impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            redeliverable: d.request.is_some(),
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
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PostView {
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
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeliveryDetail {
    #[serde(flatten)]
    delivery: DeliveryView,
    posts: Vec<PostView>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeliveryPage {
    deliveries: Vec<DeliveryView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/deliveries",
    tag = "admin",
    summary = "Recent webhook deliveries and what became of them",
    extensions(("x-access" = json!("admin"))),
    params(DeliveryQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveryPage)),
)]
pub(super) async fn list_deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    // One more than asked tells whether there is a next page.
    let mut deliveries = state
        .db
        .deliveries(
            query.provider.map(AccountProvider::as_str),
            query.status,
            query.before,
            limit + 1,
        )
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

#[utoipa::path(
    get,
    path = "/api/deliveries/{id}",
    tag = "admin",
    summary = "One delivery with its posts",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery, ("id" = i64, Path, description = "The delivery's id")),
    responses((status = 200, description = "The delivery", body = DeliveryDetail)),
)]
pub(super) async fn show_delivery(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
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
