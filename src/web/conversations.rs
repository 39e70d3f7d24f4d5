//! The conversations API (OpenHands V0 shapes where they exist): create, list, show, rename,
//! delete, start, stop, send a message, read events and the whole trajectory. A user sees and
//! drives only their own conversations; administrators see all. Another user's conversation
//! answers 404, as one that does not exist.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::params::{Body, Query};
use super::{ApiError, AppState};
use crate::agent::RunConversation;
use crate::agent::events::{self, AgentState, Draft};
use crate::agent::workspace::RemoveSandbox;
use crate::intake::repository::{Named, Verdict};
use crate::queue;
use crate::storage::{
    Conversation, ConversationFilter, Event, EventRange, NewConversation, NewEvent, StorageError,
    Tx,
};

/// The body of `POST /api/conversations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewConversationBody {
    /// The task: the first message the agent reads. Without one, the conversation waits for a
    /// message.
    #[schema(max_length = 100_000)]
    pub(super) initial_user_msg: Option<String>,
    /// `owner/name` on GitHub, `group/project` (groups may nest) on GitLab.
    #[schema(max_length = 200)]
    pub(super) repository: Option<String>,
    /// The same as `repository`, under the name OpenHands' clients use.
    #[schema(max_length = 200)]
    pub(super) selected_repository: Option<String>,
    #[schema(max_length = 200)]
    pub(super) selected_branch: Option<String>,
    /// Where `repository` is hosted; by default GitHub for `owner/name` and GitLab for a path
    /// of nested groups.
    #[schema(inline)]
    pub(super) git_provider: Option<GitHost>,
    /// By default the first line of `initial_user_msg`, until the model names the conversation.
    #[schema(max_length = 200)]
    pub(super) title: Option<String>,
    /// Images that go with `initial_user_msg`: http(s) addresses or base64 `data:image/…`
    /// URLs (at most 10).
    #[schema(max_items = 10)]
    pub(super) image_urls: Option<Vec<String>>,
    /// Whether the agent's risky actions wait for your confirmation; by default as in your
    /// settings.
    pub(super) confirmation_mode: Option<bool>,
}

/// Where a web conversation's repository is hosted.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum GitHost {
    Github,
    Gitlab,
}

/// The query of `GET /api/conversations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// The `next_page_id` of the previous page.
    page_id: Option<String>,
    /// Conversations per page (20 by default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only conversations in this state.
    #[param(inline)]
    status: Option<AgentState>,
    /// Only conversations of this repository (`owner/name`).
    repository: Option<String>,
    /// Only conversations started this way.
    #[param(inline)]
    trigger: Option<TriggerKind>,
    /// Only this user's conversations (a login); for administrators, who see everyone's.
    owner: Option<String>,
}

/// How a conversation was started: from the web, or by a provider's webhook.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum TriggerKind {
    Web,
    Github,
    Gitlab,
    Slack,
    Jira,
    #[serde(rename = "jira-dc")]
    JiraDc,
    Linear,
}

impl TriggerKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Slack => "slack",
            Self::Jira => "jira",
            Self::JiraDc => "jira-dc",
            Self::Linear => "linear",
        }
    }
}

/// The body of `PATCH /api/conversations/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TitleBody {
    /// A new title.
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    /// Whether the agent's risky actions wait for confirmation in this conversation.
    confirmation_mode: Option<bool>,
}

/// The body of `POST /api/conversations/{id}/message`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageBody {
    #[schema(min_length = 1, max_length = 100_000)]
    message: String,
    /// Images for the model: http(s) addresses or base64 `data:image/…` URLs (at most 10).
    #[schema(max_items = 10)]
    image_urls: Option<Vec<String>>,
}

/// The query of `GET /api/conversations/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// The first event id to return (0 by default).
    #[param(minimum = 0)]
    start_id: Option<i64>,
    /// The last event id to return.
    #[param(minimum = 0)]
    end_id: Option<i64>,
    /// Newest first.
    reverse: Option<bool>,
    /// Events per page (20 by default).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only events of these kinds, comma-separated (e.g. `message,run`).
    event_type: Option<String>,
    /// Only events from this source.
    #[param(inline)]
    source: Option<EventSource>,
}

/// Who wrote an event.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum EventSource {
    User,
    Agent,
    Environment,
}

impl EventSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
            Self::Environment => "environment",
        }
    }
}

/// A conversation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConversationView {
    conversation_id: String,
    title: String,
    /// The agent's state.
    #[schema(value_type = AgentState)]
    status: String,
    /// How it was started: `web` or the provider's name.
    trigger: String,
    /// Where it was asked, for one a provider started.
    trigger_url: Option<String>,
    selected_repository: Option<String>,
    selected_branch: Option<String>,
    /// `github` or `gitlab`.
    git_provider: Option<String>,
    /// The repository's page, when its host is configured here.
    repository_url: Option<String>,
    /// The branch's page in the repository.
    branch_url: Option<String>,
    /// The pull or merge requests the agent opened.
    pull_requests: Vec<String>,
    /// Answers to the provider that could not be posted.
    failed_posts: Vec<FailedPost>,
    owner_id: String,
    /// The owner's login.
    owner_login: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    last_updated_at: String,
    last_event_id: i64,
    stats: Stats,
    /// Whether risky actions wait for the owner's confirmation (only in conversations started
    /// here: others never wait).
    confirmation_mode: bool,
    /// `V1`: OpenHands' web app then reads the conversation through the V1 API and events.
    conversation_version: &'static str,
    /// Where the conversation's agent-server surface is (`conversation_url` in V1).
    url: String,
    /// The key that opens this conversation, and only it, on that surface and its socket.
    session_api_key: String,
}

/// An answer to the provider that could not be posted.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct FailedPost {
    provider: String,
    kind: String,
    attempts: i32,
    last_error: Option<String>,
}

/// What the model cost so far.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Stats {
    llm_calls: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cost_usd: f64,
    llm_latency_ms: i64,
}

/// A page of conversations.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConversationPage {
    results: Vec<ConversationView>,
    /// Pass as `page_id` for the next page; null on the last page.
    next_page_id: Option<String>,
}

/// What a change to a conversation answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Accepted {
    /// `ok`.
    status: String,
    conversation_id: String,
    /// Always true: what OpenHands' agent-server clients read.
    success: bool,
}

/// What a message answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MessageAccepted {
    /// `ok`.
    status: String,
    /// The id of the message's event.
    event_id: Option<i64>,
}

/// A page of events: each its own document, with `id`, `timestamp`, `source` and `kind`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EventPage {
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
    has_more: bool,
}

/// A conversation's whole log, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Trajectory {
    conversation_id: String,
    #[schema(value_type = Vec<Object>)]
    trajectory: Vec<Value>,
}

const DEFAULT_PAGE: i64 = 20;
/// The longest message or title accepted.
pub(super) const MAX_MESSAGE_CHARS: usize = 100_000;
const MAX_TITLE_CHARS: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/conversations",
            get(list_conversations).post(create_conversation),
        )
        .route(
            "/api/conversations/{id}",
            get(show_conversation)
                .patch(rename_conversation)
                .delete(delete_conversation),
        )
        .route("/api/conversations/{id}/start", post(start_conversation))
        .route("/api/conversations/{id}/stop", post(stop_conversation))
        .route("/api/conversations/{id}/pause", post(pause_conversation))
        .route("/api/conversations/{id}/confirm", post(confirm_actions))
        .route("/api/conversations/{id}/reject", post(reject_actions))
        .route("/api/conversations/{id}/message", post(send_message))
        .route("/api/conversations/{id}/events", get(list_events))
        .route("/api/conversations/{id}/trajectory", get(trajectory))
}

/// Milliseconds since the epoch as RFC 3339.
pub(super) fn iso(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The conversation `id`, if the caller may see it.
pub(super) async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Conversation, ApiError> {
    match state.db.conversation(id).await {
        Ok(conversation) if caller.may_see(&conversation.owner_id) => Ok(conversation),
        Ok(_) | Err(StorageError::NotFound(_)) => Err(ApiError::NotFound("conversation")),
        Err(error) => Err(error.into()),
    }
}

/// Appends `drafts` to the conversation's log (and enqueues a run when `run`), in one
/// transaction, then publishes them to live subscribers.
pub(super) async fn record(
    state: &AppState,
    conversation_id: &str,
    drafts: &[Draft],
    status: Option<&str>,
    run: bool,
) -> Result<Vec<Event>, ApiError> {
    let mut tx = state.db.begin().await?;
    let stored = append_drafts(&mut tx, conversation_id, drafts, status, run).await?;
    tx.commit().await?;
    state.bus.publish(&state.db, stored.clone()).await;
    Ok(stored)
}

/// Appends `drafts` inside `tx` (and enqueues a run when `run`); publishing them is the
/// caller's, after the commit.
async fn append_drafts(
    tx: &mut Tx,
    conversation_id: &str,
    drafts: &[Draft],
    status: Option<&str>,
    run: bool,
) -> Result<Vec<Event>, ApiError> {
    let mut stored = Vec::with_capacity(drafts.len());
    for draft in drafts {
        stored.push(
            tx.append(
                conversation_id,
                &NewEvent {
                    source: draft.source,
                    kind: &draft.kind,
                    payload: &draft.doc,
                },
            )
            .await?,
        );
    }
    if let Some(status) = status {
        tx.set_conversation_status(conversation_id, status).await?;
    }
    if run {
        queue::enqueue(
            tx,
            &RunConversation {
                conversation_id: conversation_id.to_string(),
            },
        )
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot enqueue the run: {e}")))?;
    }
    Ok(stored)
}

/// Where a web conversation's `repository` is hosted: `provider` when given, else GitHub for
/// `owner/name` and GitLab for a path of nested groups, which GitHub cannot have.
fn repository_host(repository: &str, provider: Option<GitHost>) -> Result<&'static str, ApiError> {
    let parts = repository.split('/').count();
    match provider {
        Some(GitHost::Github) | None
            if parts == 2 && crate::integrations::is_repository_path(repository, 2) =>
        {
            Ok("github")
        }
        Some(GitHost::Github) => Err(ApiError::BadRequest(
            "`repository` on GitHub must be `owner/name`".into(),
        )),
        _ if crate::integrations::is_repository_path(repository, 20) => Ok("gitlab"),
        _ => Err(ApiError::BadRequest(
            "`repository` must be `owner/name` (GitHub) or `group/project` (GitLab)".into(),
        )),
    }
}

/// A conversation's title from the first line of its first message.
pub(super) fn title_from(message: Option<&str>) -> String {
    message
        .and_then(|m| m.lines().find(|l| !l.trim().is_empty()))
        .map(|line| line.trim().chars().take(MAX_TITLE_CHARS).collect())
        .unwrap_or_else(|| "New conversation".to_string())
}

/// The images of a message, checked; a clear 400 for any that cannot be one.
pub(super) fn checked_images(urls: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    events::image_urls(&json!(urls.unwrap_or_default()))
        .map_err(|e| ApiError::BadRequest(format!("`image_urls`: {e}")))
}

/// A message of the caller, with the images they attached, as the agent reads it.
pub(super) fn message_from(caller: &Caller, text: &str, images: &[String]) -> Draft {
    events::user_message(
        text,
        false,
        json!({"trigger": "web", "user_id": caller.0.id, "image_urls": images}),
    )
}

/// Whether `wanted` may be asked of a conversation in state `current`, and if not, why. One
/// rule for the REST API, both WebSockets and the dashboard's buttons (which mirror it):
/// pause only what is working, stop anything not already at its end, resume only what was
/// paused, stopped or waits for the user.
pub(super) fn state_change_refusal(current: AgentState, wanted: AgentState) -> Option<String> {
    let allowed = match wanted {
        AgentState::Paused => matches!(current, AgentState::Loading | AgentState::Running),
        AgentState::Stopped => matches!(
            current,
            AgentState::Loading
                | AgentState::Running
                | AgentState::Paused
                | AgentState::AwaitingUserInput
                | AgentState::AwaitingUserConfirmation
                | AgentState::RateLimited
        ),
        AgentState::Running => matches!(
            current,
            AgentState::Paused | AgentState::Stopped | AgentState::AwaitingUserInput
        ),
        AgentState::UserConfirmed | AgentState::UserRejected => {
            current == AgentState::AwaitingUserConfirmation
        }
        _ => false,
    };
    if allowed {
        return None;
    }
    let verb = match wanted {
        AgentState::Paused => "paused",
        AgentState::Stopped => "stopped",
        AgentState::UserConfirmed => "confirmed",
        AgentState::UserRejected => "rejected",
        _ => "resumed",
    };
    let hint = match (wanted, current) {
        (AgentState::UserConfirmed | AgentState::UserRejected, _) => {
            "no action waits for confirmation"
        }
        (AgentState::Running, AgentState::AwaitingUserConfirmation) => {
            "confirm or reject the actions that wait"
        }
        (AgentState::Running, AgentState::Loading | AgentState::Running) => "it is already running",
        (AgentState::Running, _) => "send a message to give the agent more to do",
        (AgentState::Paused, AgentState::Paused) => "it is already paused",
        (AgentState::Stopped, AgentState::Stopped) => "it is already stopped",
        _ => "the agent is not working",
    };
    Some(format!(
        "a conversation that is {} cannot be {verb}: {hint}",
        current.as_str().replace('_', " ")
    ))
}

/// A request to stop, pause or resume: recorded for the run that holds the conversation; a
/// conversation at rest takes the new state at once, and a resumed one is run. A request the
/// conversation's state does not allow is refused with 409 and recorded nowhere.
pub(super) async fn change_state(
    state: &AppState,
    conversation: &Conversation,
    wanted: AgentState,
) -> Result<(), ApiError> {
    let current = AgentState::parse(&conversation.status).unwrap_or(AgentState::Loading);
    if let Some(refusal) = state_change_refusal(current, wanted) {
        return Err(ApiError::Conflict(refusal));
    }
    let request = events::change_state_request(wanted);
    match wanted {
        // The run answers the waiting actions: it runs them, or says they were rejected.
        AgentState::Running | AgentState::UserConfirmed | AgentState::UserRejected => {
            record(state, &conversation.id, &[request], None, true).await?;
        }
        _ if current.is_at_rest() => {
            let changed = events::state_changed(wanted, "asked by the user");
            record(
                state,
                &conversation.id,
                &[request, changed],
                Some(wanted.as_str()),
                false,
            )
            .await?;
        }
        _ => {
            record(state, &conversation.id, &[request], None, false).await?;
        }
    }
    Ok(())
}

/// The state a client asks for by name: stop, pause or resume (or the state's own name).
pub(super) fn state_named(name: &str) -> Option<AgentState> {
    match name {
        "stop" | "stopped" => Some(AgentState::Stopped),
        "pause" | "paused" => Some(AgentState::Paused),
        "resume" | "running" => Some(AgentState::Running),
        "confirm" | "user_confirmed" => Some(AgentState::UserConfirmed),
        "reject" | "user_rejected" => Some(AgentState::UserRejected),
        _ => None,
    }
}

/// The pull or merge requests the agent opened, from the posts that opened them.
pub(super) fn pull_request_urls(posts: &[crate::storage::OutboxPost]) -> Vec<String> {
    posts
        .iter()
        .filter(|p| p.kind == crate::results::kind::CHANGE_REQUEST && p.status == "sent")
        .filter_map(|p| p.result.as_deref())
        .filter_map(|r| serde_json::from_str::<Value>(r).ok())
        .filter_map(|r| r["url"].as_str().map(str::to_string))
        .collect()
}

/// A conversation as the API shows it.
pub(super) async fn view(
    state: &AppState,
    conversation: &Conversation,
) -> Result<ConversationView, ApiError> {
    let stats = state.db.conversation_stats(&conversation.id).await?;
    let posts = state.db.outbox_posts_of(&conversation.id).await?;
    let pull_requests = pull_request_urls(&posts);
    let failed_posts = posts
        .iter()
        .filter(|p| p.status == "failed")
        .map(|p| FailedPost {
            provider: p.provider.clone(),
            kind: p.kind.clone(),
            attempts: p.attempts,
            last_error: p.last_error.clone(),
        })
        .collect();
    let confirmation_mode = state.db.confirmation_mode(&conversation.id).await?;
    Ok(ConversationView {
        conversation_id: conversation.id.clone(),
        title: conversation.title.clone(),
        status: conversation.status.clone(),
        trigger: conversation.trigger_kind.clone(),
        trigger_url: conversation.trigger_url.clone(),
        selected_repository: conversation.repository.clone(),
        selected_branch: conversation.branch.clone(),
        git_provider: conversation.git_provider.clone(),
        repository_url: repository_url(state, conversation),
        branch_url: repository_url(state, conversation).and_then(|url| {
            let branch = conversation.branch.as_deref()?;
            let tree = match conversation.git_provider.as_deref() {
                Some("gitlab") => "-/tree",
                _ => "tree",
            };
            Some(format!("{url}/{tree}/{branch}"))
        }),
        pull_requests,
        failed_posts,
        owner_id: conversation.owner_id.clone(),
        owner_login: match state.db.user(&conversation.owner_id).await {
            Ok(owner) => owner.login,
            Err(StorageError::NotFound(_)) => String::new(),
            Err(error) => return Err(error.into()),
        },
        created_at: iso(conversation.created_at),
        last_updated_at: iso(conversation.updated_at),
        last_event_id: conversation.last_event_id,
        stats: Stats {
            llm_calls: stats.llm_calls,
            prompt_tokens: stats.prompt_tokens,
            completion_tokens: stats.completion_tokens,
            cached_tokens: stats.cached_tokens,
            cost_usd: stats.cost_usd,
            llm_latency_ms: stats.llm_latency_ms,
        },
        confirmation_mode,
        conversation_version: "V1",
        url: format!("{}/api/conversations/{}", state.public_url, conversation.id),
        session_api_key: state.session_key_of(&conversation.id),
    })
}

/// The web page of a conversation's repository, from the API host of its provider
/// (`api.github.com` serves `github.com`; GitHub Enterprise and GitLab serve both on one host).
fn repository_url(state: &AppState, conversation: &Conversation) -> Option<String> {
    let repository = conversation.repository.as_deref()?;
    let providers = state.providers.clients();
    let host = match conversation.git_provider.as_deref() {
        Some("gitlab") => providers.gitlab_host.as_str(),
        _ => providers.github_host.as_str(),
    };
    let host = match host {
        "" => return None,
        "api.github.com" => "github.com",
        other => other,
    };
    Some(format!("https://{host}/{repository}"))
}

/// An event as the API and the WebSocket show it: its document with id, time and source.
pub fn event_json(event: &Event) -> Value {
    let mut doc: Value = serde_json::from_str(&event.payload).unwrap_or_else(|_| json!({}));
    if !doc.is_object() {
        doc = json!({ "content": doc });
    }
    doc["id"] = json!(event.id);
    doc["timestamp"] = json!(iso(event.created_at));
    doc["source"] = json!(event.source);
    doc["kind"] = json!(event.kind);
    doc
}

#[utoipa::path(
    post,
    path = "/api/conversations",
    tag = "conversations",
    summary = "Start a conversation",
    extensions(("x-access" = json!("user"))),
    params(("Idempotency-Key" = Option<String>, Header, description = "A key of the client's choosing: a retry with the same key answers the conversation the first request created (200) instead of creating another")),
    request_body = NewConversationBody,
    responses(
        (status = 201, description = "Created; with a message, the agent is queued", body = Accepted),
        (status = 200, description = "Created earlier by a request with the same Idempotency-Key", body = Accepted),
        (status = 400, description = "The repository is not one this server reaches"),
        (status = 403, description = "The caller may not work on the repository (why is said)"),
    ),
)]
pub(super) async fn create_conversation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(body): Body<NewConversationBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let key = idempotency_key(&headers)?;
    let (status, id) = open_conversation(&state, &caller, key.as_deref(), body).await?;
    Ok((status, Json(accepted(&id))))
}

/// Makes the conversation `body` asks for, with its first message queued for the agent;
/// answers 201 and its id, or 200 and the id of the one an earlier request with the same
/// idempotency `key` made.
pub(super) async fn open_conversation(
    state: &AppState,
    caller: &Caller,
    key: Option<&str>,
    body: NewConversationBody,
) -> Result<(StatusCode, String), ApiError> {
    if let Some(key) = key {
        let mut tx = state.db.begin().await?;
        if let Some(existing) = tx.conversation_for_request(&caller.0.id, key).await? {
            return Ok((StatusCode::OK, existing));
        }
    }
    let message = body
        .initial_user_msg
        .as_deref()
        .filter(|m| !m.trim().is_empty());
    let images = checked_images(body.image_urls.as_deref())?;
    if message.is_none() && !images.is_empty() {
        return Err(ApiError::BadRequest(
            "`image_urls` go with `initial_user_msg`, which is missing".into(),
        ));
    }
    let repository = body
        .repository
        .as_deref()
        .or(body.selected_repository.as_deref())
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let git_provider = match repository {
        Some(repository) => {
            repository_host(repository, body.git_provider)?;
            Some(reachable_repository(state, caller, repository, body.git_provider).await?)
        }
        None => None,
    };
    let branch = body
        .selected_branch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    // Without a title of the user's, the first line stands in until the model writes one.
    let (title, title_pending) = match body.title.as_deref().map(str::trim) {
        Some(title) if !title.is_empty() => (title.to_string(), false),
        _ => (title_from(message), true),
    };
    let mut tx = state.db.begin().await?;
    let conversation = tx
        .create_conversation(&NewConversation {
            owner_id: &caller.0.id,
            title: &title,
            trigger_kind: "web",
            repository,
            branch,
            git_provider,
            title_pending,
            ..Default::default()
        })
        .await?;
    if body.confirmation_mode.is_some() {
        tx.set_confirmation_mode(&conversation.id, body.confirmation_mode)
            .await?;
    }
    if let Some(key) = key {
        // A retry racing this request loses here, and answers what this one created.
        if let Err(error) = tx
            .remember_request(&caller.0.id, key, &conversation.id)
            .await
        {
            drop(tx);
            let mut tx = state.db.begin().await?;
            return match tx.conversation_for_request(&caller.0.id, key).await? {
                Some(existing) => Ok((StatusCode::OK, existing)),
                None => Err(error.into()),
            };
        }
    }
    // The conversation and its first message are one write: never one without the other.
    let stored = match message {
        Some(message) => {
            append_drafts(
                &mut tx,
                &conversation.id,
                &[message_from(caller, message, &images)],
                None,
                true,
            )
            .await?
        }
        None => Vec::new(),
    };
    tx.commit().await?;
    state.bus.publish(&state.db, stored).await;
    tracing::info!(conversation_id = %conversation.id, user_id = %caller.0.id, "conversation created");
    Ok((StatusCode::CREATED, conversation.id))
}

/// The longest Idempotency-Key accepted.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

/// The request's `Idempotency-Key`: a retried create with the same key answers the
/// conversation the first one made instead of making another.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_CHARS)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_string()))
}

/// Where `repository` is, when the service reaches it and the caller may work on it, by the
/// rules the run applies: refused here rather than failing the run at once.
async fn reachable_repository(
    state: &AppState,
    caller: &Caller,
    repository: &str,
    host: Option<GitHost>,
) -> Result<&'static str, ApiError> {
    let providers = state.providers.clients();
    if providers.github.is_none() && providers.gitlab.is_none() {
        return Err(ApiError::BadRequest(
            "no repository host is configured on this server: the GitHub App (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY) or GitLab (GITLAB_TOKEN) is needed to work on a repository; start without one, or ask an administrator".into(),
        ));
    }
    let named = Named {
        path: repository.to_string(),
        host: host.map(|h| match h {
            GitHost::Github => "github",
            GitHost::Gitlab => "gitlab",
        }),
    };
    let accounts = providers
        .accounts_of(&state.db, &caller.0.id)
        .await
        .map_err(ApiError::Internal)?;
    let verdict = providers
        .check_named(&accounts, &named)
        .await
        .map_err(|e| ApiError::Upstream(format!("cannot check {repository}: {e:#}")))?;
    match verdict {
        Verdict::Usable(found) => Ok(found.git_provider()),
        Verdict::Refused(why) => Err(ApiError::Forbidden(why)),
        Verdict::Unknown => Err(ApiError::BadRequest(format!(
            "{repository} is not a repository this server reaches: the GitHub App is not installed there, GitLab does not know it, or it does not exist"
        ))),
    }
}

fn accepted(conversation_id: &str) -> Accepted {
    Accepted {
        status: "ok".into(),
        conversation_id: conversation_id.to_string(),
        success: true,
    }
}

#[utoipa::path(
    get,
    path = "/api/conversations",
    tag = "conversations",
    summary = "Conversations, newest first (administrators see everyone's)",
    extensions(("x-access" = json!("user"))),
    params(ListQuery),
    responses((status = 200, description = "A page", body = ConversationPage)),
)]
pub(super) async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<ConversationPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let before = match query.page_id.as_deref() {
        Some(page) => Some(parse_page_id(page)?),
        None => None,
    };
    // Administrators may narrow to one owner; everyone else sees only their own.
    let owner = match query.owner.as_deref().map(str::trim) {
        Some(login) if caller.0.is_admin && !login.is_empty() => {
            match state.db.user_by_login(login).await? {
                Some(user) => Some(user.id),
                None => {
                    return Ok(Json(ConversationPage {
                        results: Vec::new(),
                        next_page_id: None,
                    }));
                }
            }
        }
        _ if caller.0.is_admin => None,
        _ => Some(caller.0.id.clone()),
    };
    let filter = ConversationFilter {
        owner_id: owner.as_deref(),
        status: query.status.map(AgentState::as_str),
        repository: query.repository.as_deref(),
        trigger_kind: query.trigger.map(TriggerKind::as_str),
        before: before.as_ref().map(|(at, id)| (*at, id.as_str())),
        limit: limit + 1,
        ..Default::default()
    };
    let mut page = state.db.list_conversations(&filter).await?;
    let next_page_id = if page.len() as i64 > limit {
        page.truncate(limit as usize);
        page.last().map(|c| format!("{}_{}", c.created_at, c.id))
    } else {
        None
    };
    let mut results = Vec::with_capacity(page.len());
    for conversation in &page {
        results.push(view(&state, conversation).await?);
    }
    Ok(Json(ConversationPage {
        results,
        next_page_id,
    }))
}

pub(super) fn parse_page_id(page: &str) -> Result<(i64, String), ApiError> {
    page.split_once('_')
        .and_then(|(at, id)| {
            let at = at.parse::<i64>().ok()?;
            (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
                .then(|| (at, id.to_string()))
        })
        .ok_or_else(|| {
            ApiError::BadRequest(
                "`page_id` is not one this API gave (use `next_page_id` of the previous page)"
                    .into(),
            )
        })
}

#[utoipa::path(
    get,
    path = "/api/conversations/{id}",
    tag = "conversations",
    summary = "A conversation with its trigger, pull requests and statistics",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 200, description = "The conversation", body = ConversationView)),
)]
pub(super) async fn show_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    Ok(Json(view(&state, &conversation).await?))
}

#[utoipa::path(
    patch,
    path = "/api/conversations/{id}",
    tag = "conversations",
    summary = "Rename a conversation, or turn its confirmation mode on or off",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = TitleBody,
    responses((status = 200, description = "The renamed conversation", body = ConversationView)),
)]
pub(super) async fn rename_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<TitleBody>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    if let Some(title) = &body.title {
        let title = title.trim();
        if title.is_empty() {
            return Err(ApiError::BadRequest("`title` must not be blank".into()));
        }
        state
            .db
            .set_conversation_title(&conversation.id, title)
            .await?;
    }
    if let Some(on) = body.confirmation_mode {
        let mut tx = state.db.begin().await?;
        tx.set_confirmation_mode(&conversation.id, Some(on)).await?;
        tx.commit().await?;
    }
    let conversation = state.db.conversation(&conversation.id).await?;
    Ok(Json(view(&state, &conversation).await?))
}

#[utoipa::path(
    delete,
    path = "/api/conversations/{id}",
    tag = "conversations",
    summary = "Delete a conversation at rest, with its event log and its sandbox",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Still running: stop it first"),
    ),
)]
pub(super) async fn delete_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    // A queued run finds it gone; a running one must be stopped first, so that its sandbox
    // and posts end cleanly.
    if conversation.status == AgentState::Running.as_str() {
        return Err(ApiError::Conflict(
            "the conversation is running; stop it first".into(),
        ));
    }
    // Its sandbox goes with it, removed by a worker that holds the sandboxes.
    let mut tx = state.db.begin().await?;
    queue::enqueue(
        &mut tx,
        &RemoveSandbox {
            conversation_id: conversation.id.clone(),
        },
    )
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot queue the sandbox's removal: {e}")))?;
    tx.delete_conversation(&conversation.id).await?;
    tx.commit().await?;
    tracing::info!(conversation_id = %conversation.id, user_id = %caller.0.id, "conversation deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/start",
    tag = "conversations",
    summary = "Resume the agent",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 202, description = "Asked", body = Accepted),
        (status = 409, description = "Only a paused, stopped or waiting conversation is resumed"),
    ),
)]
pub(super) async fn start_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    requested_state(&state, &caller, &id, AgentState::Running).await
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/stop",
    tag = "conversations",
    summary = "Stop the agent",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 202, description = "Asked", body = Accepted),
        (status = 409, description = "Already at its end (finished, stopped, rejected, in error)"),
    ),
)]
pub(super) async fn stop_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    requested_state(&state, &caller, &id, AgentState::Stopped).await
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/pause",
    tag = "conversations",
    summary = "Pause the agent before its next step",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 202, description = "Asked", body = Accepted),
        (status = 409, description = "Only a working agent is paused"),
    ),
)]
pub(super) async fn pause_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    requested_state(&state, &caller, &id, AgentState::Paused).await
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/confirm",
    tag = "conversations",
    summary = "Run the actions that wait for confirmation",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 202, description = "Asked", body = Accepted),
        (status = 409, description = "Nothing waits for confirmation"),
    ),
)]
pub(super) async fn confirm_actions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    requested_state(&state, &caller, &id, AgentState::UserConfirmed).await
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/reject",
    tag = "conversations",
    summary = "Answer the actions that wait for confirmation as rejected; the agent goes on",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 202, description = "Asked", body = Accepted),
        (status = 409, description = "Nothing waits for confirmation"),
    ),
)]
pub(super) async fn reject_actions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    requested_state(&state, &caller, &id, AgentState::UserRejected).await
}

async fn requested_state(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: AgentState,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let conversation = visible(state, caller, id).await?;
    change_state(state, &conversation, wanted).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted(&conversation.id))))
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/message",
    tag = "conversations",
    summary = "Send the agent a message",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = MessageBody,
    responses((status = 202, description = "Recorded; the agent is queued", body = MessageAccepted)),
)]
pub(super) async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<MessageBody>,
) -> Result<(StatusCode, Json<MessageAccepted>), ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    if body.message.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "`message` is required and must not be blank".into(),
        ));
    }
    let images = checked_images(body.image_urls.as_deref())?;
    let stored = record(
        &state,
        &conversation.id,
        &[message_from(&caller, &body.message, &images)],
        None,
        true,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageAccepted {
            status: "ok".into(),
            event_id: stored.first().map(|e| e.id),
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/conversations/{id}/events",
    tag = "conversations",
    summary = "A conversation's events, by id range, direction, kind and source",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id"), EventsQuery),
    responses((status = 200, description = "A page of events", body = EventPage)),
)]
pub(super) async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    let limit = query.limit.unwrap_or(20);
    let kinds: Vec<String> = query
        .event_type
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = kinds
        .iter()
        .find(|k| !k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        return Err(ApiError::BadRequest(format!(
            "`event_type` holds `{bad}`, which is not an event type (e.g. message, run, agent_state_changed)"
        )));
    }
    let range = EventRange {
        start_id: query.start_id.unwrap_or(0),
        end_id: query.end_id,
        reverse: query.reverse.unwrap_or(false),
        kinds: &kinds,
        source: query.source.map(EventSource::as_str),
        limit: limit + 1,
    };
    let mut events = state.db.events_in(&conversation.id, &range).await?;
    let has_more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    Ok(Json(EventPage {
        events: events.iter().map(event_json).collect(),
        has_more,
    }))
}

/// The whole log, oldest first.
#[utoipa::path(
    get,
    path = "/api/conversations/{id}/trajectory",
    tag = "conversations",
    summary = "A conversation's whole event log",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses((status = 200, description = "Every event, oldest first", body = Trajectory)),
)]
pub(super) async fn trajectory(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Trajectory>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    const PAGE: i64 = 1000;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = state.db.events_after(&conversation.id, after, PAGE).await?;
        let done = (page.len() as i64) < PAGE;
        if let Some(last) = page.last() {
            after = last.id;
        }
        events.extend(page.iter().map(event_json));
        if done {
            break;
        }
    }
    Ok(Json(Trajectory {
        conversation_id: conversation.id,
        trajectory: events,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    /// The schemas' limits are literals (the derive takes no constants): they must say what
    /// the rest of the service holds to.
    #[test]
    fn the_schema_limits_are_the_constants() {
        let message = serde_json::to_value(MessageBody::schema()).unwrap_or_default();
        assert_eq!(
            message["properties"]["message"]["maxLength"],
            MAX_MESSAGE_CHARS
        );
        let title = serde_json::to_value(TitleBody::schema()).unwrap_or_default();
        assert_eq!(title["properties"]["title"]["maxLength"], MAX_TITLE_CHARS);
    }
}
