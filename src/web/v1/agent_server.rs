//! The agent-server surface of a conversation, as OpenHands' SDK and web app call it at the
//! `conversation_url` the V1 API hands out: its events in the V1 shape, a message with or
//! without a run, and a run. They share `/api/conversations/{id}/…` with this service's own
//! routes; every route there takes the conversation's session key (`X-Session-API-Key`) as
//! well as the owner's credentials, and a session key opens nothing else. Pausing is the
//! service's own `POST …/pause`, whose answer also carries `success`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Json;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::super::auth::Caller;
use super::super::conversations::{message_from, record, visible};
use super::super::params::{Body, Query};
use super::super::{ApiError, AppState};
use super::events::v1_events;
use super::{DEFAULT_PAGE, MAX_PAGE, later_message};
use crate::agent::events::{self, AgentState};
use crate::storage::{Conversation, EventRange};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/conversations/{id}/events/search", get(search_events))
        .route("/api/conversations/{id}/events/count", get(count_events))
        .route("/api/conversations/{id}/events", post(send_event))
        .route("/api/conversations/{id}/run", post(run))
        .route(
            "/api/conversations/{id}/events/respond_to_confirmation",
            post(respond_to_confirmation),
        )
}

/// How events are searched: by V1 kind and source, a page at a time, by id.
#[derive(Debug, Default)]
pub struct EventSearch {
    pub kind: Option<String>,
    pub source: Option<String>,
    pub page_id: Option<String>,
    pub limit: Option<i64>,
    pub sort_order: Option<String>,
}

/// Stored events read per query while filtering by V1 kind.
const SCAN_PAGE: i64 = 500;

fn check_source(source: Option<&str>) -> Result<(), ApiError> {
    match source {
        None | Some("agent" | "user" | "environment") => Ok(()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`source` must be agent, user or environment, not `{other}`"
        ))),
    }
}

/// A page of a conversation's V1 events: `{items, next_page_id}`, where the page id is the
/// id of the next V1 event to give (`N`, or `N-finish` for the observation of a finish).
pub async fn search(
    state: &AppState,
    conversation: &Conversation,
    search: &EventSearch,
) -> Result<Value, ApiError> {
    let limit = search.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let reverse = match search.sort_order.as_deref() {
        None | Some("TIMESTAMP") => false,
        Some("TIMESTAMP_DESC") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`sort_order` must be TIMESTAMP or TIMESTAMP_DESC, not `{other}`"
            )));
        }
    };
    check_source(search.source.as_deref())?;
    let not_ours = || {
        ApiError::BadRequest(
            "`page_id` is not one this API gave (use `next_page_id` of the previous page)".into(),
        )
    };
    // Where to start: the stored event, and which of its V1 events.
    let (mut next, mut resume_at) = match search.page_id.as_deref() {
        Some(page) => {
            let (stored, part) = page.split_once('-').unwrap_or((page, ""));
            if !matches!(part, "" | "finish") {
                return Err(not_ours());
            }
            (
                Some(stored.parse::<i64>().map_err(|_| not_ours())?),
                Some(page.to_string()),
            )
        }
        None => (None, None),
    };
    let mut items = Vec::new();
    loop {
        let range = EventRange {
            start_id: if reverse { 0 } else { next.unwrap_or(0) },
            end_id: if reverse { next } else { None },
            reverse,
            limit: SCAN_PAGE,
            ..Default::default()
        };
        let page = state.db.events_in(&conversation.id, &range).await?;
        let exhausted = (page.len() as i64) < SCAN_PAGE;
        for event in &page {
            let mut projected = v1_events(event);
            if reverse {
                projected.reverse();
            }
            for v1 in projected {
                if let Some(at) = &resume_at {
                    if v1["id"] != at.as_str() {
                        continue;
                    }
                    resume_at = None;
                }
                if search
                    .source
                    .as_deref()
                    .is_some_and(|source| v1["source"] != source)
                    || search
                        .kind
                        .as_deref()
                        .is_some_and(|kind| v1["kind"] != kind)
                {
                    continue;
                }
                if items.len() as i64 == limit {
                    return Ok(json!({"items": items, "next_page_id": v1["id"]}));
                }
                items.push(v1);
            }
        }
        match page.last() {
            Some(last) if !exhausted => {
                next = Some(if reverse { last.id - 1 } else { last.id + 1 });
            }
            _ => return Ok(json!({"items": items, "next_page_id": null})),
        }
    }
}

/// How many V1 events a conversation has, of the V1 `kind` and from `source` when given.
pub async fn count(
    state: &AppState,
    conversation: &Conversation,
    kind: Option<&str>,
    source: Option<&str>,
) -> Result<i64, ApiError> {
    check_source(source)?;
    let Some(kind) = kind else {
        // Each finish of the agent is also a FinishObservation from the environment.
        let stored = state
            .db
            .count_events(&conversation.id, source, None)
            .await?;
        let finishes = match source {
            None | Some("environment") => {
                state
                    .db
                    .count_events(&conversation.id, Some("agent"), Some("finish"))
                    .await?
            }
            _ => 0,
        };
        return Ok(stored + finishes);
    };
    let mut counted = 0;
    let mut after = 0;
    loop {
        let range = EventRange {
            start_id: after + 1,
            limit: SCAN_PAGE,
            ..Default::default()
        };
        let page = state.db.events_in(&conversation.id, &range).await?;
        counted += page
            .iter()
            .flat_map(v1_events)
            .filter(|e| e["kind"] == kind && source.is_none_or(|s| e["source"] == s))
            .count() as i64;
        match page.last() {
            Some(last) if page.len() as i64 == SCAN_PAGE => after = last.id,
            _ => return Ok(counted),
        }
    }
}

/// The query of the agent server's event search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AgentEventQuery {
    /// The `next_page_id` of the previous page.
    page_id: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only events of this V1 kind (`MessageEvent`, `ActionEvent`, …).
    kind: Option<String>,
    /// Only events from `agent`, `user` or `environment`.
    source: Option<String>,
    /// `TIMESTAMP` (oldest first, the default) or `TIMESTAMP_DESC`.
    sort_order: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/conversations/{id}/events/search",
    tag = "openhands-v1",
    summary = "Agent server: the conversation's events in the V1 shape",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id"), AgentEventQuery),
    responses((status = 200, description = "`{items, next_page_id}`", body = Object)),
)]
pub(super) async fn search_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<AgentEventQuery>,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    let wanted = EventSearch {
        kind: query.kind,
        source: query.source,
        page_id: query.page_id,
        limit: query.limit,
        sort_order: query.sort_order,
    };
    Ok(Json(search(&state, &conversation, &wanted).await?))
}

/// The query of the agent server's event count.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AgentCountQuery {
    /// Only events of this V1 kind.
    kind: Option<String>,
    /// Only events from `agent`, `user` or `environment`.
    source: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/conversations/{id}/events/count",
    tag = "openhands-v1",
    summary = "Agent server: how many events the conversation has (a bare integer)",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id"), AgentCountQuery),
    responses((status = 200, description = "The count", body = i64)),
)]
pub(super) async fn count_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<AgentCountQuery>,
) -> Result<Json<i64>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    Ok(Json(
        count(
            &state,
            &conversation,
            query.kind.as_deref(),
            query.source.as_deref(),
        )
        .await?,
    ))
}

/// The body of `POST /api/conversations/{id}/events`: a user message.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct SendMessage {
    /// `user`.
    role: Option<String>,
    #[schema(schema_with = message_content)]
    content: Value,
    /// Whether the agent runs on it now (false: it is only recorded, for a later `run`).
    #[serde(default)]
    run: bool,
}

/// A message's `content`: a string, or a list of parts.
fn message_content() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1)),
        )
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::Object))
                .min_items(Some(1)),
        )
        .description(Some(
            "A string, or parts `{\"type\": \"text\", \"text\"}` and `{\"type\": \"image_url\", \"image_url\": {\"url\"}}`",
        ))
        .into()
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/events",
    tag = "openhands-v1",
    summary = "Agent server: record a user message, and run the agent on it when `run` is true",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = SendMessage,
    responses((status = 200, description = "`{\"success\": true}`", body = Object)),
)]
pub(super) async fn send_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<SendMessage>,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    if body.role.as_deref().is_some_and(|role| role != "user") {
        return Err(ApiError::BadRequest("`role` must be user".into()));
    }
    let (text, images) = later_message(&body.content)?;
    record(
        &state,
        &conversation.id,
        &[message_from(&caller, &text, &images)],
        None,
        body.run,
    )
    .await?;
    Ok(Json(json!({"success": true})))
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/run",
    tag = "openhands-v1",
    summary = "Agent server: run the agent on what the conversation holds (409 while it runs)",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "`{\"success\": true}`", body = Object),
        (status = 409, description = "The agent is already running"),
    ),
)]
pub(super) async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    let current = AgentState::parse(&conversation.status).unwrap_or(AgentState::Loading);
    if !current.is_at_rest() {
        return Err(ApiError::Conflict("the agent is already running".into()));
    }
    record(
        &state,
        &conversation.id,
        &[events::change_state_request(AgentState::Running)],
        None,
        true,
    )
    .await?;
    Ok(Json(json!({"success": true})))
}

/// The body of `POST …/events/respond_to_confirmation` (OpenHands' `reason` is ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct ConfirmationResponse {
    /// True runs the actions that wait for confirmation; false rejects them.
    accept: bool,
}

#[utoipa::path(
    post,
    path = "/api/conversations/{id}/events/respond_to_confirmation",
    tag = "openhands-v1",
    summary = "Agent server: confirm or reject the actions that wait for confirmation",
    extensions(("x-access" = json!("user"))),
    params(("id" = String, Path, description = "The conversation's id")),
    request_body = ConfirmationResponse,
    responses(
        (status = 200, description = "`{\"success\": true}`", body = Object),
        (status = 409, description = "Nothing waits for confirmation"),
    ),
)]
pub(super) async fn respond_to_confirmation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<ConfirmationResponse>,
) -> Result<Json<Value>, ApiError> {
    let conversation = visible(&state, &caller, &id).await?;
    let wanted = if body.accept {
        AgentState::UserConfirmed
    } else {
        AgentState::UserRejected
    };
    super::super::conversations::change_state(&state, &conversation, wanted).await?;
    Ok(Json(json!({"success": true})))
}
