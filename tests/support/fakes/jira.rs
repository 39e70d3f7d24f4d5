//! A Jira Cloud site's REST API v3 (basic auth with an account's email and API token): issue
//! comments in Atlassian Document Format.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{JIRA_ACCOUNT_ID, JIRA_API_TOKEN, JIRA_EMAIL, Recorded, Shared, Store, now};

/// A comment posted on an issue; `body` is an Atlassian Document Format document.
#[derive(Clone, Debug)]
pub struct JiraComment {
    pub id: String,
    pub issue_key: String,
    pub body: Value,
    pub created: String,
    pub updated: String,
    /// Comment properties set when it was created (`[{key, value}]`).
    pub properties: Vec<Value>,
}

pub(super) fn routes(router: Router<Store>) -> Router<Store> {
    router
        .route(
            "/jira/rest/api/3/issue/{key}/comment",
            get(list_comments).post(create_comment),
        )
        .route(
            "/jira/rest/api/3/issue/{key}/comment/{id}",
            put(update_comment),
        )
        .route("/jira/rest/api/3/myself", get(myself))
}

/// `GET /rest/api/3/myself`: the account the credentials sign in as.
async fn myself(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return errors(
            StatusCode::UNAUTHORIZED,
            &["You are not authenticated. Authentication required to perform this operation."],
            json!({}),
        );
    }
    Json(json!({
        "accountId": JIRA_ACCOUNT_ID,
        "accountType": "atlassian",
        "emailAddress": JIRA_EMAIL,
        "displayName": "OpenHands",
        "active": true
    }))
    .into_response()
}

/// The plain text of an Atlassian Document Format document, paragraphs on their own lines.
pub fn adf_text(document: &Value) -> String {
    fn walk(node: &Value, out: &mut String) {
        if let Some(text) = node.get("text").and_then(Value::as_str) {
            out.push_str(text);
        }
        if node.get("type").and_then(Value::as_str) == Some("hardBreak") {
            out.push('\n');
        }
        for child in node
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(child, out);
        }
        let block = matches!(
            node.get("type").and_then(Value::as_str),
            Some("paragraph" | "heading" | "codeBlock" | "listItem")
        );
        if block && !out.ends_with('\n') {
            out.push('\n');
        }
    }
    let mut out = String::new();
    walk(document, &mut out);
    out.trim_end().to_string()
}

pub(super) fn errors(status: StatusCode, messages: &[&str], fields: Value) -> Response {
    (
        status,
        Json(json!({"errorMessages": messages, "errors": fields})),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{JIRA_EMAIL}:{JIRA_API_TOKEN}"));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        == Some(expected.as_str())
}

/// The refusal of a request without the account's credentials or about something that is not
/// an issue key (`ENG-42`).
fn refusal(headers: &HeaderMap, key: &str) -> Option<Response> {
    if !authorized(headers) {
        return Some(errors(
            StatusCode::UNAUTHORIZED,
            &["You are not authenticated. Authentication required to perform this operation."],
            json!({}),
        ));
    }
    no_such_issue(key)
}

/// The refusal of something that is not an issue key (`ENG-42`).
pub(super) fn no_such_issue(key: &str) -> Option<Response> {
    let valid = key.split_once('-').is_some_and(|(project, number)| {
        project.starts_with(|c: char| c.is_ascii_uppercase())
            && project
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit())
    });
    (!valid).then(|| {
        errors(
            StatusCode::NOT_FOUND,
            &["Issue does not exist or you do not have permission to see it."],
            json!({}),
        )
    })
}

/// The `body` of a request, if it is an Atlassian Document Format document.
fn document(body: &str) -> Option<Value> {
    let body: Value = serde_json::from_str(body).unwrap_or_default();
    let document = body.get("body").cloned().unwrap_or_default();
    let valid = document.get("type").and_then(Value::as_str) == Some("doc")
        && document.get("version").and_then(Value::as_u64) == Some(1)
        && document.get("content").is_some_and(Value::is_array);
    valid.then_some(document)
}

fn not_a_document() -> Response {
    errors(
        StatusCode::BAD_REQUEST,
        &[],
        json!({"comment": "Comment body is not valid: it must be an Atlassian Document (see the Atlassian Document Format)."}),
    )
}

/// Jira's time format: `2024-05-01T12:00:00.000+0000`.
pub(super) fn jira_time(rfc3339: &str) -> String {
    format!("{}.000+0000", rfc3339.trim_end_matches('Z'))
}

fn comment_json(state: &Recorded, comment: &JiraComment) -> Value {
    let site = format!("{}/jira", state.base_url);
    let author = json!({
        "self": format!("{site}/rest/api/3/user?accountId={JIRA_ACCOUNT_ID}"),
        "accountId": JIRA_ACCOUNT_ID,
        "emailAddress": JIRA_EMAIL,
        "displayName": "OpenHands",
        "active": true,
        "timeZone": "Etc/UTC",
        "accountType": "atlassian"
    });
    json!({
        "self": format!("{site}/rest/api/3/issue/{}/comment/{}", comment.issue_key, comment.id),
        "id": comment.id,
        "author": author,
        "body": comment.body,
        "updateAuthor": author,
        "created": comment.created,
        "updated": comment.updated,
        "jsdPublic": true
    })
}

async fn create_comment(
    State(state): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = refusal(&headers, &key) {
        return refused;
    }
    let Some(document) = document(&body) else {
        return not_a_document();
    };
    let properties = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| b.get("properties").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let mut state = state.lock().unwrap();
    let created = jira_time(&now());
    let comment = JiraComment {
        id: state.new_id().to_string(),
        issue_key: key,
        body: document,
        created: created.clone(),
        updated: created,
        properties,
    };
    let answer = comment_json(&state, &comment);
    state.jira_comments.push(comment);
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn update_comment(
    State(state): Shared,
    Path((key, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = refusal(&headers, &key) {
        return refused;
    }
    let Some(document) = document(&body) else {
        return not_a_document();
    };
    let mut state = state.lock().unwrap();
    let Some(comment) = state
        .jira_comments
        .iter_mut()
        .find(|c| c.issue_key == key && c.id == id)
    else {
        return errors(
            StatusCode::NOT_FOUND,
            &["Can not find a comment for the id."],
            json!({}),
        );
    };
    comment.body = document;
    comment.updated = jira_time(&now());
    let comment = comment.clone();
    Json(comment_json(&state, &comment)).into_response()
}

/// Oldest first, paged by `startAt` and `maxResults` (default 5000).
async fn list_comments(
    State(state): Shared,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&headers, &key) {
        return refused;
    }
    let state = state.lock().unwrap();
    comments_page(&state, &state.jira_comments, &key, &query, comment_json)
}

/// The page of `comments` on issue `key` that `query` asks for (`startAt`, `maxResults`, and
/// `expand=properties` for the comments' properties), each shown by `shown`.
pub(super) fn comments_page(
    state: &Recorded,
    comments: &[JiraComment],
    key: &str,
    query: &HashMap<String, String>,
    shown: fn(&Recorded, &JiraComment) -> Value,
) -> Response {
    let number = |name: &str, default: usize| {
        query
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (start, max) = (number("startAt", 0), number("maxResults", 5000));
    let expand = query
        .get("expand")
        .is_some_and(|e| e.split(',').any(|x| x == "properties"));
    let all: Vec<&JiraComment> = comments.iter().filter(|c| c.issue_key == key).collect();
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|c| {
            let mut comment = shown(state, c);
            if expand {
                comment["properties"] = Value::Array(c.properties.clone());
            }
            comment
        })
        .collect();
    Json(json!({
        "startAt": start,
        "maxResults": max,
        "total": all.len(),
        "comments": page
    }))
    .into_response()
}
