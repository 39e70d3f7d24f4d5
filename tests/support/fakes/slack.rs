//! Slack's Web API with the bot token: every answer is HTTP 200 with `ok` true or false.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::{SLACK_BOT_ID, SLACK_BOT_TOKEN, SLACK_BOT_USER, Shared, Store, bearer, body_fields};

/// A message the bot posted, as last updated.
#[derive(Clone, Debug)]
pub struct SlackMessage {
    pub channel: String,
    pub ts: String,
    /// The thread it was posted in; `None` for a top-level message.
    pub thread_ts: Option<String>,
    pub text: Option<String>,
    pub blocks: Option<Value>,
    pub metadata: Option<Value>,
    /// When it was last updated.
    pub edited_ts: Option<String>,
}

impl SlackMessage {
    /// Whether it belongs to the thread that starts at `thread_ts`.
    pub fn in_thread(&self, channel: &str, thread_ts: &str) -> bool {
        self.channel == channel
            && (self.thread_ts.as_deref() == Some(thread_ts) || self.ts == thread_ts)
    }
}

#[derive(Clone, Debug)]
pub struct SlackReaction {
    pub channel: String,
    pub ts: String,
    pub name: String,
}

pub(super) fn routes(router: Router<Store>) -> Router<Store> {
    router
        .route("/slack/auth.test", get(auth_test).post(auth_test))
        .route("/slack/chat.postEphemeral", post(post_ephemeral))
        .route("/slack/chat.postMessage", post(post_message))
        .route("/slack/chat.update", post(update))
        .route("/slack/reactions.add", post(add_reaction))
        .route("/slack/conversations.replies", get(replies))
        .route("/slack/files-pri/{*path}", get(file))
}

/// A shared file, as `url_private` serves it: only with the bot token.
async fn file(
    State(state): State<Store>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    state.slack_file_reads.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    if !authorized(&headers) {
        return axum::http::StatusCode::FORBIDDEN.into_response();
    }
    match state.slack_files.get(&path) {
        Some(content) => content.clone().into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

fn error(code: &str) -> Response {
    Json(json!({"ok": false, "error": code})).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    bearer(headers).as_deref() == Some(SLACK_BOT_TOKEN)
}

/// A field sent as JSON, or as a JSON string (form posts send blocks and metadata that way).
fn json_field(body: &Value, name: &str) -> Option<Value> {
    match body.get(name)? {
        Value::Null => None,
        Value::String(text) => serde_json::from_str(text).ok(),
        value => Some(value.clone()),
    }
}

fn str_field(body: &Value, name: &str) -> Option<String> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A bot message as conversations.replies answers it.
pub(super) fn message_json(message: &SlackMessage) -> Value {
    let mut fields = Map::new();
    fields.insert("type".into(), json!("message"));
    fields.insert("user".into(), json!(SLACK_BOT_USER));
    fields.insert("bot_id".into(), json!(SLACK_BOT_ID));
    fields.insert("app_id".into(), json!("A0OPENHANDS"));
    fields.insert("team".into(), json!("T0001"));
    fields.insert("ts".into(), json!(message.ts));
    let optional = [
        ("thread_ts", message.thread_ts.clone().map(Value::String)),
        ("text", message.text.clone().map(Value::String)),
        ("blocks", message.blocks.clone()),
        ("metadata", message.metadata.clone()),
        (
            "edited",
            message
                .edited_ts
                .as_ref()
                .map(|ts| json!({"user": SLACK_BOT_USER, "ts": ts})),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.insert(name.into(), value);
        }
    }
    Value::Object(fields)
}

/// `auth.test`: who the token is.
async fn auth_test(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return error("invalid_auth");
    }
    Json(json!({
        "ok": true,
        "url": "https://acme.slack.com/",
        "team": "Acme",
        "user": "openhands",
        "team_id": "T0001",
        "user_id": SLACK_BOT_USER,
        "bot_id": SLACK_BOT_ID,
        "is_enterprise_install": false
    }))
    .into_response()
}

async fn post_ephemeral(State(state): Shared, headers: HeaderMap, body: String) -> Response {
    if !authorized(&headers) {
        return error("invalid_auth");
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    state.lock().unwrap().slack_ephemeral.push(body);
    Json(json!({"ok": true, "message_ts": "1700000000.000100"})).into_response()
}

/// `channel`, `text` and/or `blocks`, and optionally `thread_ts` and `metadata`.
async fn post_message(State(state): Shared, headers: HeaderMap, body: String) -> Response {
    if !authorized(&headers) {
        return error("invalid_auth");
    }
    let Some(body) = body_fields(&body) else {
        return error("invalid_arguments");
    };
    let Some(channel) = str_field(&body, "channel") else {
        return error("channel_not_found");
    };
    let text = str_field(&body, "text");
    let blocks = json_field(&body, "blocks");
    if text.is_none() && blocks.is_none() {
        return error("no_text");
    }
    let mut state = state.lock().unwrap();
    let message = SlackMessage {
        channel: channel.clone(),
        ts: format!("1714600000.{:06}", state.new_id()),
        thread_ts: str_field(&body, "thread_ts"),
        text,
        blocks,
        metadata: json_field(&body, "metadata"),
        edited_ts: None,
    };
    let answer = json!({
        "ok": true,
        "channel": channel,
        "ts": message.ts,
        "message": message_json(&message)
    });
    state.slack_messages.push(message);
    Json(answer).into_response()
}

/// Only the bot's own messages can be updated.
async fn update(State(state): Shared, headers: HeaderMap, body: String) -> Response {
    if !authorized(&headers) {
        return error("invalid_auth");
    }
    let Some(body) = body_fields(&body) else {
        return error("invalid_arguments");
    };
    let (Some(channel), Some(ts)) = (str_field(&body, "channel"), str_field(&body, "ts")) else {
        return error("message_not_found");
    };
    let text = str_field(&body, "text");
    let blocks = json_field(&body, "blocks");
    if text.is_none() && blocks.is_none() {
        return error("no_text");
    }
    let mut state = state.lock().unwrap();
    let edited_ts = format!("1714600000.{:06}", state.new_id());
    let Some(message) = state
        .slack_messages
        .iter_mut()
        .find(|m| m.channel == channel && m.ts == ts)
    else {
        return error("message_not_found");
    };
    message.text = text;
    if blocks.is_some() {
        message.blocks = blocks;
    }
    if let Some(metadata) = json_field(&body, "metadata") {
        message.metadata = Some(metadata);
    }
    message.edited_ts = Some(edited_ts);
    Json(json!({
        "ok": true,
        "channel": channel,
        "ts": ts,
        "thread_ts": message.thread_ts,
        "text": message.text,
        "message": message_json(message)
    }))
    .into_response()
}

/// `already_reacted` when the bot already reacted so to that message.
async fn add_reaction(State(state): Shared, headers: HeaderMap, body: String) -> Response {
    if !authorized(&headers) {
        return error("invalid_auth");
    }
    let Some(body) = body_fields(&body) else {
        return error("invalid_arguments");
    };
    let Some(name) = str_field(&body, "name") else {
        return error("invalid_name");
    };
    let (Some(channel), Some(ts)) = (str_field(&body, "channel"), str_field(&body, "timestamp"))
    else {
        return error("no_item_specified");
    };
    let name = name.trim_matches(':').to_string();
    let mut state = state.lock().unwrap();
    if state
        .slack_reactions
        .iter()
        .any(|r| r.channel == channel && r.ts == ts && r.name == name)
    {
        return error("already_reacted");
    }
    state
        .slack_reactions
        .push(SlackReaction { channel, ts, name });
    Json(json!({"ok": true})).into_response()
}

/// Every thread holds its first message, then whatever the bot posted in it.
async fn replies(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return error("invalid_auth");
    }
    let mut messages = vec![
        json!({"type": "message", "user": "U0CAROL03", "text": "the nightly build is red", "ts": "1714567890.000001"}),
    ];
    if let (Some(channel), Some(ts)) = (query.get("channel"), query.get("ts")) {
        let state = state.lock().unwrap();
        messages.extend(
            state
                .slack_messages
                .iter()
                .filter(|m| m.in_thread(channel, ts))
                .map(message_json),
        );
    }
    Json(json!({
        "ok": true,
        "messages": messages,
        "has_more": false
    }))
    .into_response()
}
