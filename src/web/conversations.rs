//! The conversations API (OpenHands V0 shapes where they exist): create, list, show, rename,
//! delete, start, stop, send a message, read events and the whole trajectory. A user sees and
//! drives only their own conversations; administrators see all. Another user's conversation
//! answers 404, as one that does not exist.

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::auth::Caller;
use super::params::{Fields, Params, json_object};
use super::{ApiError, AppState};
use crate::agent::RunConversation;
use crate::agent::events::{self, AgentState, Draft};
use crate::queue;
use crate::storage::{
    Conversation, ConversationFilter, Event, EventRange, NewConversation, NewEvent, StorageError,
    Tx,
};

/// The fields of `POST /api/conversations`.
pub const CREATE_FIELDS: &[&str] = &[
    "initial_user_msg",
    "repository",
    "selected_repository",
    "selected_branch",
    "git_provider",
    "title",
];
/// The query of `GET /api/conversations`.
pub const LIST_QUERY: &[&str] = &["page_id", "limit", "status", "repository", "trigger"];
/// The fields of `PATCH /api/conversations/{id}`.
pub const TITLE_FIELDS: &[&str] = &["title"];
/// The fields of `POST /api/conversations/{id}/message`.
pub const MESSAGE_FIELDS: &[&str] = &["message"];
/// The query of `GET /api/conversations/{id}/events`.
pub const EVENTS_QUERY: &[&str] = &[
    "start_id",
    "end_id",
    "reverse",
    "limit",
    "event_type",
    "source",
];

/// The triggers a conversation can have.
pub const TRIGGERS: [&str; 6] = ["web", "github", "gitlab", "slack", "jira", "linear"];
const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;
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
fn repository_host(
    repository: &str,
    provider: Option<&'static str>,
) -> Result<&'static str, ApiError> {
    let parts = repository.split('/').count();
    match provider {
        Some("github") | None
            if parts == 2 && crate::integrations::is_repository_path(repository, 2) =>
        {
            Ok("github")
        }
        Some("github") => Err(ApiError::BadRequest(
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

/// A message of the caller, as the agent reads it.
pub(super) fn message_from(caller: &Caller, text: &str) -> Draft {
    events::user_message(
        text,
        false,
        json!({"trigger": "web", "user_id": caller.0.id}),
    )
}

/// A request to stop, pause or resume: recorded for the run that holds the conversation; a
/// conversation at rest takes the new state at once, and a resumed one is run.
pub(super) async fn change_state(
    state: &AppState,
    conversation: &Conversation,
    wanted: AgentState,
) -> Result<(), ApiError> {
    let current = AgentState::parse(&conversation.status).unwrap_or(AgentState::Loading);
    let request = events::change_state_request(wanted);
    match wanted {
        AgentState::Running => {
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
        _ => None,
    }
}

/// A conversation as the API shows it.
pub(super) async fn view(state: &AppState, conversation: &Conversation) -> Result<Value, ApiError> {
    let stats = state.db.conversation_stats(&conversation.id).await?;
    let posts = state.db.outbox_posts_of(&conversation.id).await?;
    let pull_requests: Vec<Value> = posts
        .iter()
        .filter(|p| p.kind == crate::results::kind::CHANGE_REQUEST && p.status == "sent")
        .filter_map(|p| p.result.as_deref())
        .filter_map(|r| serde_json::from_str::<Value>(r).ok())
        .filter_map(|r| r["url"].as_str().map(|url| json!(url)))
        .collect();
    let failed_posts: Vec<Value> = posts
        .iter()
        .filter(|p| p.status == "failed")
        .map(|p| {
            json!({"provider": p.provider, "kind": p.kind, "attempts": p.attempts, "last_error": p.last_error})
        })
        .collect();
    Ok(json!({
        "conversation_id": conversation.id,
        "title": conversation.title,
        "status": conversation.status,
        "trigger": conversation.trigger_kind,
        "trigger_url": conversation.trigger_url,
        "selected_repository": conversation.repository,
        "selected_branch": conversation.branch,
        "git_provider": conversation.git_provider,
        "pull_requests": pull_requests,
        "failed_posts": failed_posts,
        "owner_id": conversation.owner_id,
        "created_at": iso(conversation.created_at),
        "last_updated_at": iso(conversation.updated_at),
        "last_event_id": conversation.last_event_id,
        "stats": {
            "llm_calls": stats.llm_calls,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "cached_tokens": stats.cached_tokens,
            "cost_usd": stats.cost_usd,
            "llm_latency_ms": stats.llm_latency_ms,
        },
    }))
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

async fn create_conversation(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_object(body)?;
    let fields = Fields::new(&body, CREATE_FIELDS)?;
    let message = fields
        .text("initial_user_msg", MAX_MESSAGE_CHARS)?
        .filter(|m| !m.trim().is_empty());
    let repository = match fields.text("repository", 200)? {
        Some(repository) => Some(repository),
        None => fields.text("selected_repository", 200)?,
    }
    .map(str::trim)
    .filter(|r| !r.is_empty());
    let git_provider = match fields.text("git_provider", 20)?.map(str::trim) {
        None | Some("") => None,
        Some("github") => Some("github"),
        Some("gitlab") => Some("gitlab"),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`git_provider` must be github or gitlab, not `{other}`"
            )));
        }
    };
    let git_provider = match repository {
        Some(repository) => Some(repository_host(repository, git_provider)?),
        None => None,
    };
    let branch = fields
        .text("selected_branch", 200)?
        .map(str::trim)
        .filter(|b| !b.is_empty());
    // Without a title of the user's, the first line stands in until the model writes one.
    let (title, title_pending) = match fields.text("title", MAX_TITLE_CHARS)? {
        Some(title) if !title.trim().is_empty() => (title.trim().to_string(), false),
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
    // The conversation and its first message are one write: never one without the other.
    let stored = match message {
        Some(message) => {
            append_drafts(
                &mut tx,
                &conversation.id,
                &[message_from(&caller, message)],
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
    Ok((
        StatusCode::CREATED,
        Json(json!({"status": "ok", "conversation_id": conversation.id})),
    ))
}

async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(LIST_QUERY)?;
    let limit = params.int("limit", 1, MAX_PAGE, DEFAULT_PAGE)?;
    let statuses: Vec<&str> = AgentState::ALL.iter().map(|s| s.as_str()).collect();
    let status = params.choice("status", &statuses)?;
    let trigger = params.choice("trigger", &TRIGGERS)?;
    let before = match params.text("page_id") {
        Some(page) => Some(parse_page_id(page)?),
        None => None,
    };
    let filter = ConversationFilter {
        owner_id: (!caller.0.is_admin).then_some(caller.0.id.as_str()),
        status: status.as_deref(),
        repository: params.text("repository"),
        trigger_kind: trigger.as_deref(),
        before: before.as_ref().map(|(at, id)| (*at, id.as_str())),
        limit: limit + 1,
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
    Ok(Json(
        json!({"results": results, "next_page_id": next_page_id}),
    ))
}

fn parse_page_id(page: &str) -> Result<(i64, String), ApiError> {
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

async fn show_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    Ok(Json(view(&state, &conversation).await?))
}

async fn rename_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    let body = json_object(body)?;
    let fields = Fields::new(&body, TITLE_FIELDS)?;
    let title = fields.required_text("title", MAX_TITLE_CHARS)?.trim();
    state
        .db
        .set_conversation_title(&conversation.id, title)
        .await?;
    let conversation = state.db.conversation(&conversation.id).await?;
    Ok(Json(view(&state, &conversation).await?))
}

async fn delete_conversation(
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
    state.db.delete_conversation(&conversation.id).await?;
    tracing::info!(conversation_id = %conversation.id, user_id = %caller.0.id, "conversation deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn start_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    requested_state(&state, &caller, &id, AgentState::Running).await
}

async fn stop_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    requested_state(&state, &caller, &id, AgentState::Stopped).await
}

async fn requested_state(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wanted: AgentState,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let conversation = visible(state, caller, id).await?;
    change_state(state, &conversation, wanted).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "ok", "conversation_id": conversation.id})),
    ))
}

async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    let body = json_object(body)?;
    let fields = Fields::new(&body, MESSAGE_FIELDS)?;
    let message = fields.required_text("message", MAX_MESSAGE_CHARS)?;
    let stored = record(
        &state,
        &conversation.id,
        &[message_from(&caller, message)],
        None,
        true,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "ok", "event_id": stored.first().map(|e| e.id)})),
    ))
}

async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    params.only(EVENTS_QUERY)?;
    let limit = params.int("limit", 1, 100, 20)?;
    let kinds: Vec<String> = params
        .text("event_type")
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
    let source = params.choice("source", &["user", "agent", "environment"])?;
    let range = EventRange {
        start_id: params.int("start_id", 0, i64::MAX, 0)?,
        end_id: params.optional_int("end_id", 0)?,
        reverse: params.flag("reverse")?,
        kinds: &kinds,
        source: source.as_deref(),
        limit: limit + 1,
    };
    let mut events = state.db.events_in(&conversation.id, &range).await?;
    let has_more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    Ok(Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}

/// The whole log, oldest first.
async fn trajectory(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "conversation_id": conversation.id,
        "trajectory": events,
    })))
}
