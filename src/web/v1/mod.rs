//! OpenHands' V1 app-server API, for OpenHands' own clients (the CLI's `openhands cloud`, the
//! web app, SDK scripts): their configuration and user, settings in the nested V1 shape, start
//! tasks that make conversations, conversations and events in the V1 shapes, and sandbox
//! pause and resume. Each conversation is handed out with a `conversation_url` on this origin
//! and a session key that opens it, and only it, on the agent-server surface
//! (`agent_server.rs`) and its socket.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::Json;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::auth::Caller;
use super::conversations::{
    NewConversationBody, change_state, iso, open_conversation, parse_page_id, pull_request_urls,
    visible,
};
use super::params::{Body, Query};
use super::settings::{AnySettings, SETTINGS_FIELDS, apply_settings, settings_body, settings_view};
use super::{ApiError, AppState};
use crate::agent::events::{AgentState, CHECKOUT};
use crate::storage::start_tasks::StartTask;
use crate::storage::{Conversation, ConversationFilter, EventRange, StorageError};

pub mod agent_server;
pub mod events;

/// Items per page unless the client says (upstream's default), and the most.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/options/config", get(client_config))
        .route("/api/v1/web-client/config", get(web_client_config))
        .route("/api/v1/users/me", get(users_me))
        .route("/api/v1/settings", get(show_settings).post(save_settings))
        .route(
            "/api/v1/app-conversations",
            get(app_conversations).post(start_app_conversation),
        )
        .route(
            "/api/v1/app-conversations/search",
            get(search_app_conversations),
        )
        .route(
            "/api/v1/app-conversations/count",
            get(count_app_conversations),
        )
        .route("/api/v1/app-conversations/start-tasks", get(start_tasks))
        .route(
            "/api/v1/app-conversations/start-tasks/search",
            get(search_start_tasks),
        )
        .route("/api/v1/events/search", get(search_events))
        .route("/api/v1/events/count", get(count_events))
        .route("/api/v1/sandboxes/{id}/pause", post(pause_sandbox))
        .route("/api/v1/sandboxes/{id}/resume", post(resume_sandbox))
        .route("/api/keys/llm/byor", get(byor_key))
        .merge(agent_server::routes())
}

/// What the web app reads first: the app's mode and its feature flags.
#[utoipa::path(
    get,
    path = "/api/options/config",
    tag = "openhands-v1",
    summary = "The app's mode and feature flags, as OpenHands' web app reads them",
    extensions(("x-access" = json!("public"))),
    responses((status = 200, description = "`{APP_MODE, FEATURE_FLAGS, …}`", body = Object)),
)]
pub(super) async fn client_config(State(state): State<AppState>) -> Json<Value> {
    let providers = state.providers.clients();
    let mut configured = Vec::new();
    if providers.github.is_some() {
        configured.push("github");
    }
    if providers.gitlab.is_some() {
        configured.push("gitlab");
    }
    Json(json!({
        "APP_MODE": "oss",
        "APP_SLUG": null,
        "GITHUB_CLIENT_ID": "",
        "POSTHOG_CLIENT_KEY": "",
        "PROVIDERS_CONFIGURED": configured,
        "AUTH_URL": null,
        "FEATURE_FLAGS": {
            "ENABLE_BILLING": false,
            "HIDE_LLM_SETTINGS": false,
            "ENABLE_JIRA": false,
            "ENABLE_JIRA_DC": false,
            "ENABLE_LINEAR": false,
        },
        "MAINTENANCE": null,
    }))
}

/// The same, where later versions of the web app read it.
#[utoipa::path(
    get,
    path = "/api/v1/web-client/config",
    tag = "openhands-v1",
    summary = "The app's mode and feature flags, where later versions of OpenHands' web app read them",
    extensions(("x-access" = json!("public"))),
    responses((status = 200, description = "As `GET /api/options/config`", body = Object)),
)]
pub(super) async fn web_client_config(state: State<AppState>) -> Json<Value> {
    client_config(state).await
}

/// The caller's settings in the V1 shape: `agent_settings.llm` nested, the flat fields beside.
async fn v1_settings(state: &AppState, caller: &Caller) -> Result<Value, ApiError> {
    let view = settings_view(state, &caller.0.id).await?;
    let mut flat = serde_json::to_value(&view)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("settings as JSON: {e}")))?;
    flat["agent_settings"] = json!({
        "agent": "CodeActAgent",
        "llm": {"model": view.llm_model, "base_url": view.llm_base_url},
    });
    flat["agent"] = json!("CodeActAgent");
    flat["language"] = json!("en");
    flat["email"] = json!(caller.0.email);
    Ok(flat)
}

#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "openhands-v1",
    summary = "The caller, with their settings (401 tells OpenHands' CLI to sign in again)",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "The user's id, login and settings", body = Object)),
)]
pub(super) async fn users_me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let mut user = v1_settings(&state, &caller).await?;
    user["id"] = json!(caller.0.id);
    user["login"] = json!(caller.0.login);
    user["is_admin"] = json!(caller.0.is_admin);
    Ok(Json(user))
}

#[utoipa::path(
    get,
    path = "/api/v1/settings",
    tag = "openhands-v1",
    summary = "The caller's settings in the V1 shape (the key is never shown)",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "`agent_settings.llm` and the flat fields", body = Object)),
)]
pub(super) async fn show_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(v1_settings(&state, &caller).await?))
}

/// Reads the flat fields and `agent_settings.llm`; other fields of OpenHands' settings are
/// ignored, and named in `ignored_fields`. An empty or null key keeps the stored one, as
/// OpenHands' clients send the form's empty key field back.
#[utoipa::path(
    post,
    path = "/api/v1/settings",
    tag = "openhands-v1",
    summary = "Change the caller's settings from the V1 or the flat shape",
    extensions(("x-access" = json!("user"))),
    request_body = AnySettings,
    responses((status = 200, description = "The settings now, with `ignored_fields`", body = Object)),
)]
pub(super) async fn save_settings(
    State(state): State<AppState>,
    caller: Caller,
    Body(AnySettings(body)): Body<AnySettings>,
) -> Result<Json<Value>, ApiError> {
    let mut known = Map::new();
    let mut ignored = Vec::new();
    for (name, value) in body {
        if name == "agent_settings" {
            let llm = &value["llm"];
            for (from, to) in [
                ("model", "llm_model"),
                ("base_url", "llm_base_url"),
                ("api_key", "llm_api_key"),
            ] {
                if let Some(value) = llm.get(from) {
                    known.insert(to.to_string(), value.clone());
                }
            }
            if let Some(fields) = value.as_object() {
                ignored.extend(
                    fields
                        .keys()
                        .filter(|k| *k != "llm")
                        .map(|k| format!("agent_settings.{k}")),
                );
            }
        } else if SETTINGS_FIELDS.contains(&name.as_str()) {
            known.insert(name, value);
        } else {
            ignored.push(name);
        }
    }
    if known
        .get("llm_api_key")
        .is_some_and(|key| key.is_null() || key.as_str().is_some_and(|k| k.trim().is_empty()))
    {
        known.remove("llm_api_key");
    }
    if !ignored.is_empty() {
        tracing::info!(user_id = %caller.0.id, ignored = ?ignored, "V1 settings: fields this service does not keep were ignored");
    }
    apply_settings(&state, &caller, settings_body(Value::Object(known))?).await?;
    let mut answer = v1_settings(&state, &caller).await?;
    answer["ignored_fields"] = json!(ignored);
    Ok(Json(answer))
}

/// The text and images of a V1 message's `content`: a string, or parts
/// `{"type":"text","text"}` and `{"type":"image_url","image_url":{"url"}}` (or the SDK's
/// `{"type":"image","image_urls":[…]}`).
pub(super) fn message_parts(content: &Value) -> Result<(String, Vec<String>), String> {
    if let Some(text) = content.as_str() {
        return Ok((text.to_string(), Vec::new()));
    }
    let parts = content
        .as_array()
        .ok_or("`content` must be a string or a list of parts")?;
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        match part["type"].as_str() {
            Some("text") => texts.push(
                part["text"]
                    .as_str()
                    .ok_or(format!("content[{index}]: a text part needs `text`"))?,
            ),
            Some("image_url") => images.push(
                part["image_url"]["url"]
                    .as_str()
                    .or_else(|| part["image_url"].as_str())
                    .ok_or(format!(
                        "content[{index}]: an image part needs `image_url.url`"
                    ))?
                    .to_string(),
            ),
            Some("image") => images.extend(
                part["image_urls"]
                    .as_array()
                    .ok_or(format!(
                        "content[{index}]: an image part needs `image_urls`"
                    ))?
                    .iter()
                    .filter_map(|url| url.as_str().map(str::to_string)),
            ),
            other => {
                return Err(format!(
                    "content[{index}]: the part type must be text, image_url or image, not {}",
                    other.map_or("missing".to_string(), |t| format!("`{t}`"))
                ));
            }
        }
    }
    let images = crate::agent::events::image_urls(&json!(images))?;
    Ok((texts.join("\n"), images))
}

/// A user's V1 message to a running conversation (agent-server `POST …/events`, a socket
/// frame): its text, which must not be blank, and its images.
pub(super) fn later_message(content: &Value) -> Result<(String, Vec<String>), ApiError> {
    let (text, images) = message_parts(content).map_err(ApiError::BadRequest)?;
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the message needs a non-empty text part".into(),
        ));
    }
    Ok((text, images))
}

/// The body of `POST /api/v1/app-conversations`, as the CLI and the web app send it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct StartRequest {
    /// `{"role": "user", "content": [{"type": "text", "text": …}, …]}`.
    #[schema(value_type = Option<Object>)]
    initial_message: Option<Value>,
    #[schema(max_length = 200)]
    selected_repository: Option<String>,
    #[schema(max_length = 200)]
    selected_branch: Option<String>,
    /// `github` or `gitlab`.
    git_provider: Option<String>,
    #[schema(max_length = 200)]
    title: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/app-conversations",
    tag = "openhands-v1",
    summary = "Start a conversation: answers its start task",
    description = "The conversation is made at once, so the task names it from the start; its \
        status follows the run (WORKING, PREPARING_REPOSITORY, RUNNING_SETUP_SCRIPT, READY), \
        or is ERROR with a `detail` when the request cannot be served (a repository the \
        caller may not use, say). Other fields of OpenHands' request are ignored.",
    extensions(("x-access" = json!("user"))),
    request_body = StartRequest,
    responses((status = 200, description = "The start task", body = Object)),
)]
pub(super) async fn start_app_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<StartRequest>,
) -> Result<Json<Value>, ApiError> {
    let request = json!({
        "initial_message": body.initial_message,
        "selected_repository": body.selected_repository,
        "selected_branch": body.selected_branch,
        "git_provider": body.git_provider,
        "title": body.title,
    });
    let (message, images) = match &body.initial_message {
        Some(message) if !message.is_null() => {
            if message["role"].as_str().is_some_and(|role| role != "user") {
                return Err(ApiError::BadRequest(
                    "`initial_message.role` must be user".into(),
                ));
            }
            message_parts(&message["content"])
                .map_err(|e| ApiError::BadRequest(format!("`initial_message`: {e}")))?
        }
        _ => (String::new(), Vec::new()),
    };
    let git_provider = match body.git_provider.as_deref() {
        None | Some("") => None,
        Some(name) => Some(serde_json::from_value(json!(name)).map_err(|_| {
            ApiError::BadRequest(format!(
                "`git_provider` must be github or gitlab, not `{name}`"
            ))
        })?),
    };
    let new = NewConversationBody {
        initial_user_msg: (!message.trim().is_empty()).then_some(message),
        repository: None,
        selected_repository: body.selected_repository,
        selected_branch: body.selected_branch,
        git_provider,
        title: body.title,
        image_urls: (!images.is_empty()).then_some(images),
        confirmation_mode: None,
    };
    let made = open_conversation(&state, &caller, None, new).await;
    let request = request.to_string();
    let task = match made {
        Ok((_, id)) => {
            state
                .db
                .create_start_task(&caller.0.id, Some(&id), None, &request)
                .await?
        }
        // What the caller asked cannot be served: the task says why, as upstream's does.
        Err(ApiError::BadRequest(why) | ApiError::Forbidden(why) | ApiError::Upstream(why)) => {
            state
                .db
                .create_start_task(&caller.0.id, None, Some(&why), &request)
                .await?
        }
        Err(error) => return Err(error),
    };
    Ok(Json(task_view(&state, &task).await?))
}

/// Where a start task stands, read from its conversation.
async fn task_view(state: &AppState, task: &StartTask) -> Result<Value, ApiError> {
    let conversation = match &task.conversation_id {
        Some(id) => match state.db.conversation(id).await {
            Ok(conversation) => Some(conversation),
            Err(StorageError::NotFound(_)) => None,
            Err(error) => return Err(error.into()),
        },
        None => None,
    };
    let (status, detail) = match (&task.error, &conversation) {
        (Some(error), _) => ("ERROR", Some(error.clone())),
        (None, None) => ("ERROR", Some("the conversation was deleted".to_string())),
        (None, Some(conversation)) => progress(state, conversation).await?,
    };
    let request: Value = serde_json::from_str(&task.request).unwrap_or(Value::Null);
    Ok(json!({
        "id": task.id,
        "created_by_user_id": task.user_id,
        "status": status,
        "detail": detail,
        "app_conversation_id": task.conversation_id,
        "sandbox_id": task.conversation_id,
        "agent_server_url": state.public_url.as_ref(),
        "request": request,
        "created_at": iso(task.created_at),
        "updated_at": iso(conversation.as_ref().map_or(task.created_at, |c| c.updated_at)),
    }))
}

/// A start task's status from its conversation's run: until the agent runs, the worker is
/// starting a sandbox, cloning, or running the repository's set-up script.
async fn progress(
    state: &AppState,
    conversation: &Conversation,
) -> Result<(&'static str, Option<String>), ApiError> {
    let kinds = [CHECKOUT.to_string(), "agent_state_changed".to_string()];
    let records = state
        .db
        .events_in(
            &conversation.id,
            &EventRange {
                kinds: &kinds,
                limit: 200,
                ..Default::default()
            },
        )
        .await?;
    let checked_out = records.iter().any(|e| e.kind == CHECKOUT);
    let ran = records
        .iter()
        .any(|e| e.kind == "agent_state_changed" && e.payload.contains("\"running\""));
    let status = AgentState::parse(&conversation.status).unwrap_or(AgentState::Loading);
    Ok(match status {
        AgentState::Error if !ran => {
            let reason = records
                .iter()
                .rev()
                .find(|e| e.kind == "agent_state_changed")
                .and_then(|e| serde_json::from_str::<Value>(&e.payload).ok())
                .and_then(|doc| doc["extras"]["reason"].as_str().map(str::to_string));
            ("ERROR", reason)
        }
        AgentState::Loading if checked_out => ("RUNNING_SETUP_SCRIPT", None),
        AgentState::Loading if conversation.repository.is_some() => ("PREPARING_REPOSITORY", None),
        AgentState::Loading => ("WORKING", None),
        _ => ("READY", None),
    })
}

/// The `ids` of a raw query (repeated, or separated by commas); any other parameter is
/// refused.
fn ids_in(query: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name == "ids" {
            ids.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_string),
            );
        } else {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter `{name}`; known: ids"
            )));
        }
    }
    if ids.len() > MAX_PAGE as usize {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_PAGE} `ids` at once"
        )));
    }
    Ok(ids)
}

/// Only the caller's own, or everyone's for an administrator.
fn owner_filter(caller: &Caller) -> Option<&str> {
    (!caller.0.is_admin).then_some(caller.0.id.as_str())
}

#[utoipa::path(
    get,
    path = "/api/v1/app-conversations/start-tasks",
    tag = "openhands-v1",
    summary = "Start tasks by id (`?ids=A&ids=B` or `?ids=A,B`), null for each unknown",
    extensions(("x-access" = json!("user"))),
    params(("ids" = Vec<String>, Query, description = "Task ids")),
    responses((status = 200, description = "One task or null per id", body = Vec<Object>)),
)]
pub(super) async fn start_tasks(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let ids = ids_in(query.as_deref())?;
    let found = state.db.start_tasks(&ids, owner_filter(&caller)).await?;
    let mut answer = Vec::with_capacity(ids.len());
    for id in &ids {
        answer.push(match found.iter().find(|task| &task.id == id) {
            Some(task) => task_view(&state, task).await?,
            None => Value::Null,
        });
    }
    Ok(Json(answer))
}

/// The query of the V1 searches: a page, newest first unless `sort_order` says.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchQuery {
    /// The `next_page_id` of the previous page.
    page_id: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only those made at or after this time (ISO 8601).
    #[serde(rename = "created_at__gte")]
    created_at_gte: Option<String>,
    /// Only those whose title contains this (conversations).
    #[serde(rename = "title__contains")]
    title_contains: Option<String>,
    /// `CREATED_AT_DESC` (the default) only: newest first.
    sort_order: Option<String>,
}

impl SearchQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
    }

    fn since(&self) -> Result<Option<i64>, ApiError> {
        self.created_at_gte
            .as_deref()
            .map(|at| {
                parse_time(at).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`created_at__gte` must be an ISO 8601 time, not `{at}`"
                    ))
                })
            })
            .transpose()
    }

    fn check_sort(&self) -> Result<(), ApiError> {
        match self.sort_order.as_deref() {
            None | Some("CREATED_AT_DESC") => Ok(()),
            Some(other) => Err(ApiError::BadRequest(format!(
                "`sort_order` must be CREATED_AT_DESC, not `{other}`"
            ))),
        }
    }
}

/// Milliseconds since the epoch of an ISO 8601 time (with or without a zone: UTC then).
fn parse_time(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text.trim().trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(text.trim()).ok())?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

#[utoipa::path(
    get,
    path = "/api/v1/app-conversations/start-tasks/search",
    tag = "openhands-v1",
    summary = "The caller's start tasks, newest first",
    extensions(("x-access" = json!("user"))),
    params(SearchQuery),
    responses((status = 200, description = "`{items, next_page_id}`", body = Object)),
)]
pub(super) async fn search_start_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    query.check_sort()?;
    let limit = query.limit();
    let before = query.page_id.as_deref().map(parse_page_id).transpose()?;
    let mut tasks = state
        .db
        .search_start_tasks(
            owner_filter(&caller),
            query.since()?.unwrap_or(0),
            before.as_ref().map(|(at, id)| (*at, id.as_str())),
            limit + 1,
        )
        .await?;
    let next_page_id = next_page(&mut tasks, limit, |t| (t.created_at, &t.id));
    let mut items = Vec::with_capacity(tasks.len());
    for task in &tasks {
        items.push(task_view(&state, task).await?);
    }
    Ok(Json(json!({"items": items, "next_page_id": next_page_id})))
}

/// Cuts a page read with one item more than `limit`; the id of the next page, if any.
fn next_page<T>(
    items: &mut Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (i64, &String),
) -> Option<String> {
    if items.len() as i64 <= limit {
        return None;
    }
    items.truncate(limit as usize);
    items.last().map(|item| {
        let (at, id) = key(item);
        format!("{at}_{id}")
    })
}

/// A conversation in the V1 shape, with where and how a client reaches its agent-server
/// surface.
pub(super) async fn app_conversation(
    state: &AppState,
    conversation: &Conversation,
) -> Result<Value, ApiError> {
    let llm = state.db.user_llm(&conversation.owner_id).await?;
    let agent = AgentState::parse(&conversation.status).unwrap_or(AgentState::Loading);
    // A paused agent keeps its sandbox, as upstream's does: only the execution is paused.
    let sandbox_status = match agent {
        AgentState::Loading => "STARTING",
        AgentState::Error => "ERROR",
        _ => "RUNNING",
    };
    let posts = state.db.outbox_posts_of(&conversation.id).await?;
    let pull_requests = pull_request_urls(&posts);
    let pr_numbers: Vec<u64> = pull_requests
        .iter()
        .filter_map(|url| url.rsplit('/').next()?.parse().ok())
        .collect();
    let trigger = match conversation.trigger_kind.as_str() {
        "web" => "gui",
        "github" | "gitlab" => "resolver",
        other => other,
    };
    Ok(json!({
        "id": conversation.id,
        "created_by_user_id": conversation.owner_id,
        "sandbox_id": conversation.id,
        "selected_repository": conversation.repository,
        "selected_branch": conversation.branch,
        "git_provider": conversation.git_provider,
        "title": conversation.title,
        "trigger": trigger,
        "pr_number": pr_numbers,
        "llm_model": llm.llm_model,
        "metrics": null,
        "parent_conversation_id": null,
        "sub_conversation_ids": [],
        "created_at": iso(conversation.created_at),
        "updated_at": iso(conversation.updated_at),
        "sandbox_status": sandbox_status,
        "execution_status": (sandbox_status == "RUNNING")
            .then(|| events::execution_status(&conversation.status)),
        "conversation_url": format!("{}/api/conversations/{}", state.public_url, conversation.id),
        "session_api_key": state.session_key_of(&conversation.id),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/app-conversations",
    tag = "openhands-v1",
    summary = "Conversations by id (`?ids=A&ids=B` or `?ids=A,B`), null for each unknown",
    extensions(("x-access" = json!("user"))),
    params(("ids" = Vec<String>, Query, description = "Conversation ids")),
    responses((status = 200, description = "One conversation or null per id", body = Vec<Object>)),
)]
pub(super) async fn app_conversations(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let ids = ids_in(query.as_deref())?;
    let mut answer = Vec::with_capacity(ids.len());
    for id in &ids {
        answer.push(match visible(&state, &caller, id).await {
            Ok(conversation) => app_conversation(&state, &conversation).await?,
            Err(ApiError::NotFound(_)) => Value::Null,
            Err(error) => return Err(error),
        });
    }
    Ok(Json(answer))
}

fn conversation_filter<'q>(
    caller: &'q Caller,
    query: &'q SearchQuery,
    before: Option<&'q (i64, String)>,
) -> Result<ConversationFilter<'q>, ApiError> {
    Ok(ConversationFilter {
        owner_id: owner_filter(caller),
        before: before.map(|(at, id)| (*at, id.as_str())),
        title_contains: query.title_contains.as_deref(),
        created_since: query.since()?,
        limit: query.limit() + 1,
        ..Default::default()
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/app-conversations/search",
    tag = "openhands-v1",
    summary = "The caller's conversations in the V1 shape, newest first",
    extensions(("x-access" = json!("user"))),
    params(SearchQuery),
    responses((status = 200, description = "`{items, next_page_id}`", body = Object)),
)]
pub(super) async fn search_app_conversations(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    query.check_sort()?;
    let before = query.page_id.as_deref().map(parse_page_id).transpose()?;
    let filter = conversation_filter(&caller, &query, before.as_ref())?;
    let mut page = state.db.list_conversations(&filter).await?;
    let next_page_id = next_page(&mut page, query.limit(), |c| (c.created_at, &c.id));
    let mut items = Vec::with_capacity(page.len());
    for conversation in &page {
        items.push(app_conversation(&state, conversation).await?);
    }
    Ok(Json(json!({"items": items, "next_page_id": next_page_id})))
}

#[utoipa::path(
    get,
    path = "/api/v1/app-conversations/count",
    tag = "openhands-v1",
    summary = "How many conversations the same filters find: a bare integer",
    extensions(("x-access" = json!("user"))),
    params(SearchQuery),
    responses((status = 200, description = "The count", body = i64)),
)]
pub(super) async fn count_app_conversations(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<i64>, ApiError> {
    let filter = conversation_filter(&caller, &query, None)?;
    Ok(Json(state.db.count_conversations(&filter).await?))
}

/// The query of `GET /api/v1/events/search` and `…/count`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventSearchQuery {
    /// The conversation (required here).
    #[serde(rename = "conversation_id__eq")]
    conversation_id_eq: Option<String>,
    /// Only events of this V1 kind (`MessageEvent`, `ActionEvent`, …).
    #[serde(rename = "kind__eq")]
    kind_eq: Option<String>,
    /// The `next_page_id` of the previous page.
    page_id: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// `TIMESTAMP` (oldest first, the default) or `TIMESTAMP_DESC`.
    sort_order: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/events/search",
    tag = "openhands-v1",
    summary = "A conversation's events in the V1 shape",
    extensions(("x-access" = json!("user"))),
    params(EventSearchQuery),
    responses((status = 200, description = "`{items, next_page_id}`", body = Object)),
)]
pub(super) async fn search_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventSearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let conversation = searched_conversation(&state, &caller, &query.conversation_id_eq).await?;
    let search = agent_server::EventSearch {
        kind: query.kind_eq,
        source: None,
        page_id: query.page_id,
        limit: query.limit,
        sort_order: query.sort_order,
    };
    Ok(Json(
        agent_server::search(&state, &conversation, &search).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/events/count",
    tag = "openhands-v1",
    summary = "How many events of a conversation: a bare integer",
    extensions(("x-access" = json!("user"))),
    params(EventSearchQuery),
    responses((status = 200, description = "The count", body = i64)),
)]
pub(super) async fn count_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventSearchQuery>,
) -> Result<Json<i64>, ApiError> {
    let conversation = searched_conversation(&state, &caller, &query.conversation_id_eq).await?;
    Ok(Json(
        agent_server::count(&state, &conversation, query.kind_eq.as_deref(), None).await?,
    ))
}

async fn searched_conversation(
    state: &AppState,
    caller: &Caller,
    id: &Option<String>,
) -> Result<Conversation, ApiError> {
    let id = id.as_deref().ok_or_else(|| {
        ApiError::BadRequest(
            "`conversation_id__eq` is required: events are searched per conversation".into(),
        )
    })?;
    visible(state, caller, id).await
}

/// A conversation's sandbox is named by the conversation's id.
#[utoipa::path(
    post,
    path = "/api/v1/sandboxes/{id}/pause",
    tag = "openhands-v1",
    summary = "Pause the conversation whose sandbox this is (its agent stops at the next step)",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The sandbox id: the conversation's id")),
    responses((status = 200, description = "`{\"success\": true}`", body = Object)),
)]
pub(super) async fn pause_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    let current = AgentState::parse(&conversation.status).unwrap_or(AgentState::Loading);
    if !current.is_at_rest() {
        change_state(&state, &conversation, AgentState::Paused).await?;
    }
    Ok(Json(json!({"success": true})))
}

#[utoipa::path(
    post,
    path = "/api/v1/sandboxes/{id}/resume",
    tag = "openhands-v1",
    summary = "Resume a conversation's sandbox: it is started again with the next run",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The sandbox id: the conversation's id")),
    responses((status = 200, description = "`{\"success\": true}`", body = Object)),
)]
pub(super) async fn resume_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible(&state, &caller, &id).await?;
    Ok(Json(json!({"success": true})))
}

/// OpenHands' CLI asks for the user's own LLM key after signing in, to set up its local
/// agent. This service never shows a stored key: the answer is always `{"key": null}`, and the
/// CLI goes on without one.
#[utoipa::path(
    get,
    path = "/api/keys/llm/byor",
    tag = "openhands-v1",
    summary = "The user's LLM key for OpenHands' CLI: never shown, always null",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "`{\"key\": null}`", body = Object)),
)]
pub(super) async fn byor_key(_caller: Caller) -> Json<Value> {
    Json(json!({"key": null}))
}
