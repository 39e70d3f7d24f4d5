//! A Jira Data Center site's REST API v2 (a personal access token as a bearer token): issue
//! comments whose body is wiki markup text, and users named by `name` and `key`.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::jira::{comments_page, errors, jira_time, no_such_issue};
use super::{JIRA_DC_TOKEN, JIRA_DC_USERNAME, JiraComment, Recorded, Shared, Store, now};

/// The key Data Center gives the service's account (stable across renames).
pub const JIRA_DC_USER_KEY: &str = "JIRAUSER10100";

pub(super) fn routes(router: Router<Store>) -> Router<Store> {
    router
        .route(
            "/jira-dc/rest/api/2/issue/{key}/comment",
            get(list_comments).post(create_comment),
        )
        .route("/jira-dc/rest/api/2/myself", get(myself))
}

fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (bearer != Some(JIRA_DC_TOKEN)).then(|| {
        errors(
            StatusCode::UNAUTHORIZED,
            &["You are not authenticated. Authentication required to perform this operation."],
            json!({}),
        )
    })
}

fn user_json(state: &Recorded) -> Value {
    json!({
        "self": format!("{}/jira-dc/rest/api/2/user?username={JIRA_DC_USERNAME}", state.base_url),
        "key": JIRA_DC_USER_KEY,
        "name": JIRA_DC_USERNAME,
        "emailAddress": "openhands@jira.example.test",
        "displayName": "OpenHands",
        "active": true,
        "timeZone": "UTC"
    })
}

/// `GET /rest/api/2/myself`.
async fn myself(State(state): Shared, headers: HeaderMap) -> Response {
    if let Some(refused) = unauthorized(&headers) {
        return refused;
    }
    Json(user_json(&state.lock().unwrap())).into_response()
}

fn comment_json(state: &Recorded, comment: &JiraComment) -> Value {
    let author = user_json(state);
    json!({
        "self": format!("{}/jira-dc/rest/api/2/issue/{}/comment/{}", state.base_url, comment.issue_key, comment.id),
        "id": comment.id,
        "author": author,
        "body": comment.body,
        "updateAuthor": author,
        "created": comment.created,
        "updated": comment.updated
    })
}

/// API v2 takes the body as wiki markup text; a document object is refused as Jira's JSON
/// reader refuses it.
async fn create_comment(
    State(state): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = unauthorized(&headers).or_else(|| no_such_issue(&key)) {
        return refused;
    }
    let request: Value = serde_json::from_str(&body).unwrap_or_default();
    let Some(text) = request.get("body").and_then(Value::as_str) else {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Can not deserialize instance of java.lang.String out of START_OBJECT token"],
            json!({}),
        );
    };
    if text.trim().is_empty() {
        return errors(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"comment": "Comment body can not be empty!"}),
        );
    }
    let properties = request
        .get("properties")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut state = state.lock().unwrap();
    let created = jira_time(&now());
    let comment = JiraComment {
        id: state.new_id().to_string(),
        issue_key: key,
        body: Value::String(text.to_string()),
        created: created.clone(),
        updated: created,
        properties,
    };
    let answer = comment_json(&state, &comment);
    state.jira_dc_comments.push(comment);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Oldest first, paged by `startAt` and `maxResults`; `expand=properties` adds properties.
async fn list_comments(
    State(state): Shared,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&headers).or_else(|| no_such_issue(&key)) {
        return refused;
    }
    let state = state.lock().unwrap();
    comments_page(&state, &state.jira_dc_comments, &key, &query, comment_json)
}
