//! GitLab's REST API v4 with an access token: project members, projects (one at a time, and
//! the list of those the token's account develops in, paginated with GitLab's headers), notes
//! and their discussions, award emoji, merge requests and their diffs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::{
    GITLAB_BOT_ID, GITLAB_BOT_USERNAME, GITLAB_TOKEN, Recorded, Shared, Store, body_fields,
    failure, joined, now, sha_of, text_field,
};

/// A note posted on an issue or merge request (`noteable`: `issues` or `merge_requests`).
#[derive(Clone, Debug)]
pub struct GitlabNote {
    pub id: u64,
    pub project: u64,
    pub noteable: String,
    pub iid: u64,
    pub body: String,
    /// The discussion it replies to.
    pub discussion_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An emoji awarded to `subject`: `issues/IID`, `merge_requests/IID`, or either followed by
/// `/notes/ID`.
#[derive(Clone, Debug)]
pub struct GitlabAward {
    pub id: u64,
    pub project: u64,
    pub subject: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Debug)]
pub struct GitlabMergeRequest {
    pub id: u64,
    pub project: u64,
    pub iid: u64,
    pub title: String,
    pub description: Option<String>,
    pub source_branch: String,
    pub target_branch: String,
    /// `opened`, `closed` or `merged`.
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Iids of new merge requests follow this one in each project.
const FIRST_MERGE_REQUEST_IID: u64 = 100;

pub(super) fn routes(router: Router<Store>) -> Router<Store> {
    router
        .route("/gitlab/projects/{project}/members/all/{user}", get(member))
        .route("/gitlab/projects", get(list_projects))
        .route("/gitlab/user", get(current_user))
        .route("/gitlab/projects/{project}", get(project))
        .route(
            "/gitlab/projects/{project}/merge_requests",
            get(list_merge_requests).post(create_merge_request),
        )
        .route(
            "/gitlab/projects/{project}/merge_requests/{iid}",
            get(one_merge_request),
        )
        .route(
            "/gitlab/projects/{project}/{noteable}/{iid}/{list}",
            get(notes_or_diffs).post(create_note_or_award),
        )
        .route(
            "/gitlab/projects/{project}/{noteable}/{iid}/{list}/{id}",
            put(update_note),
        )
        .route(
            "/gitlab/projects/{project}/{noteable}/{iid}/{list}/{id}/{sub}",
            post(award_note_or_reply),
        )
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "401 Unauthorized"})),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": format!("404 {what} Not Found")})),
    )
        .into_response()
}

fn bad_request(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

fn is_token(headers: &HeaderMap) -> bool {
    headers.get("private-token").and_then(|v| v.to_str().ok()) == Some(GITLAB_TOKEN)
}

fn noteable_type(noteable: &str) -> Option<&'static str> {
    match noteable {
        "issues" => Some("Issue"),
        "merge_requests" => Some("MergeRequest"),
        _ => None,
    }
}

fn bot_json(state: &Recorded) -> Value {
    json!({
        "id": GITLAB_BOT_ID,
        "username": GITLAB_BOT_USERNAME,
        "name": "OpenHands",
        "state": "active",
        "locked": false,
        "avatar_url": null,
        "web_url": format!("{}/{GITLAB_BOT_USERNAME}", state.base_url)
    })
}

/// `GET /user`: the token's own user.
async fn current_user(headers: HeaderMap) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    Json(json!({"id": GITLAB_BOT_ID, "username": GITLAB_BOT_USERNAME, "name": "OpenHands", "state": "active", "bot": true}))
        .into_response()
}

async fn member(
    State(state): Shared,
    Path((project, user)): Path<(u64, String)>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    state.gitlab_checks.push(format!("{project}/{user}"));
    if !is_token(&headers) {
        return unauthorized();
    }
    match state.gitlab_levels.get(&(project, user.clone())) {
        Some(level) => Json(json!({"id": user.parse::<u64>().unwrap_or(0), "username": "someone", "access_level": level, "state": "active"})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not found"}))).into_response(),
    }
}

/// A project by id, or by its URL-encoded path.
async fn project(
    State(state): Shared,
    Path(project): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    let state = state.lock().unwrap();
    let Some(project) = project
        .parse::<u64>()
        .ok()
        .or_else(|| state.gitlab_project_paths.get(&project).copied())
    else {
        return not_found("Project");
    };
    let url = state
        .gitlab_repo_urls
        .get(&project)
        .cloned()
        .unwrap_or_else(|| format!("{}/git/project-{project}.git", state.base_url));
    Json(json!({
        "id": project,
        "path_with_namespace": "acme/widgets",
        "default_branch": "main",
        "http_url_to_repo": url
    }))
    .into_response()
}

/// A project in the shape `GET /projects?simple=true` lists it.
fn simple_project_json(state: &Recorded, id: u64, path: &str) -> Value {
    let (namespace, name) = path.rsplit_once('/').unwrap_or(("", path));
    let group = namespace.rsplit('/').next().unwrap_or(namespace);
    let host = state
        .base_url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap_or("localhost");
    let http_url_to_repo = state
        .gitlab_repo_urls
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("{}/git/project-{id}.git", state.base_url));
    json!({
        "id": id,
        "description": null,
        "name": name,
        "name_with_namespace": path.replace('/', " / "),
        "path": name,
        "path_with_namespace": path,
        "created_at": "2024-04-01T09:00:00.000Z",
        "default_branch": "main",
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": format!("git@{host}:{path}.git"),
        "http_url_to_repo": http_url_to_repo,
        "web_url": format!("{}/{path}", state.base_url),
        "readme_url": format!("{}/{path}/-/blob/main/README.md", state.base_url),
        "forks_count": 0,
        "avatar_url": null,
        "star_count": 0,
        "last_activity_at": "2024-05-01T09:00:00.000Z",
        "namespace": {
            "id": u64::from_str_radix(&sha_of(namespace)[..6], 16).unwrap() + 1,
            "name": group,
            "path": group,
            "kind": "group",
            "full_path": namespace,
            "parent_id": null,
            "avatar_url": null,
            "web_url": format!("{}/groups/{namespace}", state.base_url)
        }
    })
}

/// `GET /projects`: the projects set with `set_gitlab_project_path`, all of them the token's
/// account's with Developer access or more, newest (highest id) first; `search` keeps those
/// whose path contains it, in any case. Pages of `per_page` (default 20, at most 100) with
/// GitLab's `x-page`, `x-per-page`, `x-total`, `x-total-pages`, `x-next-page`, `x-prev-page`
/// and `Link` headers. Each listing's query is recorded.
async fn list_projects(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    let mut state = state.lock().unwrap();
    state.gitlab_project_listings.push(query.clone());
    let search = query.get("search").map(|s| s.to_lowercase());
    let mut projects: Vec<(u64, String)> = state
        .gitlab_project_paths
        .iter()
        .filter(|(path, _)| {
            search
                .as_deref()
                .is_none_or(|s| path.to_lowercase().contains(s))
        })
        .map(|(path, id)| (*id, path.clone()))
        .collect();
    projects.sort_by(|a, b| b.cmp(a));
    let number = |name: &str, default: usize| {
        query
            .get(name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let per_page = number("per_page", 20).clamp(1, 100);
    let page = number("page", 1).max(1);
    let total = projects.len();
    let pages = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = (start + per_page).min(total);
    let shown: Vec<Value> = projects[start..end]
        .iter()
        .map(|(id, path)| simple_project_json(&state, *id, path))
        .collect();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    // The link repeats the query, as GitLab's does.
    let mut kept: Vec<(&String, &String)> = query.iter().filter(|(k, _)| *k != "page").collect();
    kept.sort();
    let link = |n: usize, rel: &str| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        url.append_pair("page", &n.to_string());
        for (k, v) in &kept {
            url.append_pair(k, v);
        }
        format!(
            "<{}/gitlab/projects?{}>; rel=\"{rel}\"",
            state.base_url,
            url.finish()
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    links.push(link(1, "first"));
    links.push(link(pages, "last"));
    (
        [
            ("x-page", page.to_string()),
            ("x-per-page", per_page.to_string()),
            ("x-total", total.to_string()),
            ("x-total-pages", pages.to_string()),
            ("x-next-page", next),
            ("x-prev-page", prev),
            ("link", links.join(", ")),
        ],
        Json(shown),
    )
        .into_response()
}

async fn notes_or_diffs(
    State(state): Shared,
    Path((project, noteable, iid, list)): Path<(u64, String, u64, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match (noteable.as_str(), list.as_str()) {
        ("issues" | "merge_requests", "notes") => {
            list_notes(state, project, &noteable, iid, query, headers)
        }
        ("merge_requests", "diffs") => diffs(state, project, iid, query, headers),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "404 Not found"})),
        )
            .into_response(),
    }
}

/// Pages of `per_page` files (default 20), with `x-next-page` as GitLab sends it.
fn diffs(
    state: Arc<Mutex<Recorded>>,
    project: u64,
    iid: u64,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    let page: usize = query.get("page").map_or(1, |p| p.parse().unwrap());
    let per_page: usize = query.get("per_page").map_or(20, |p| p.parse().unwrap());
    let mut state = state.lock().unwrap();
    state
        .diff_requests
        .push(format!("gitlab {project}!{iid} page={page}"));
    if let Some(status) = state.diff_failure {
        return failure(status);
    }
    let files = state.gitlab_diffs.get(&(project, iid)).cloned().unwrap_or_else(|| {
        vec![
            json!({"old_path": "app/money.py", "new_path": "app/money.py", "a_mode": "100644", "b_mode": "100644",
                   "new_file": false, "renamed_file": false, "deleted_file": false, "generated_file": false,
                   "diff": "@@ -1,2 +1,2 @@\n def round_amount(x):\n-    return round(x)\n+    return round_half_even(x)\n"}),
            json!({"old_path": "tests/test_money.py", "new_path": "tests/test_money.py", "a_mode": "0", "b_mode": "100644",
                   "new_file": true, "renamed_file": false, "deleted_file": false, "generated_file": false,
                   "diff": "@@ -0,0 +1 @@\n+assert round_amount(2.5) == 2\n"}),
        ]
    });
    let start = (page - 1) * per_page;
    let end = (start + per_page).min(files.len());
    let page_files = files.get(start..end).unwrap_or_default().to_vec();
    let next = if end < files.len() {
        (page + 1).to_string()
    } else {
        String::new()
    };
    ([("x-next-page", next)], Json(page_files)).into_response()
}

/// Someone's comment and a system note, present on every issue and merge request before the
/// posted notes.
fn seeded_notes(project: u64, noteable: &str, iid: u64) -> Vec<Value> {
    let kind = noteable_type(noteable).unwrap_or("Issue");
    let author = json!({"id": 2718, "username": "jdoe", "name": "Jane Doe", "state": "active"});
    [
        (1, "Seen on CI too.", false),
        (2, "added ~openhands label", true),
    ]
    .into_iter()
    .map(|(id, body, system)| {
        json!({
            "id": id,
            "type": null,
            "body": body,
            "attachment": null,
            "author": author,
            "created_at": format!("2024-05-01T09:0{id}:00.000Z"),
            "updated_at": format!("2024-05-01T09:0{id}:00.000Z"),
            "system": system,
            "noteable_id": iid,
            "noteable_type": kind,
            "project_id": project,
            "noteable_iid": iid,
            "resolvable": false,
            "confidential": false,
            "internal": false
        })
    })
    .collect()
}

fn note_json(state: &Recorded, note: &GitlabNote) -> Value {
    json!({
        "id": note.id,
        "type": if note.discussion_id.is_some() { json!("DiscussionNote") } else { Value::Null },
        "body": note.body,
        "attachment": null,
        "author": bot_json(state),
        "created_at": note.created_at,
        "updated_at": note.updated_at,
        "system": false,
        "noteable_id": note.iid,
        "noteable_type": noteable_type(&note.noteable),
        "project_id": note.project,
        "noteable_iid": note.iid,
        "discussion_id": note.discussion_id,
        "resolvable": note.discussion_id.is_some(),
        "confidential": false,
        "internal": false,
        "commands_changes": {}
    })
}

/// The seeded notes, then the posted ones; newest first unless `sort=asc`, as GitLab does.
fn list_notes(
    state: Arc<Mutex<Recorded>>,
    project: u64,
    noteable: &str,
    iid: u64,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    let state = state.lock().unwrap();
    let mut notes = seeded_notes(project, noteable, iid);
    notes.extend(
        state
            .gitlab_notes
            .iter()
            .filter(|n| n.project == project && n.noteable == noteable && n.iid == iid)
            .map(|n| note_json(&state, n)),
    );
    if query.get("sort").map(String::as_str) != Some("asc") {
        notes.reverse();
    }
    Json(notes).into_response()
}

/// `POST …/{noteable}/{iid}/notes` and `POST …/{noteable}/{iid}/award_emoji`.
async fn create_note_or_award(
    State(state): Shared,
    Path((project, noteable, iid, list)): Path<(u64, String, u64, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    if noteable_type(&noteable).is_none() {
        return not_found("Project");
    }
    let body = body_fields(&body).unwrap_or_default();
    let mut state = state.lock().unwrap();
    match list.as_str() {
        "notes" => post_note(&mut state, project, &noteable, iid, None, &body),
        "award_emoji" => award(&mut state, project, format!("{noteable}/{iid}"), &body),
        _ => not_found(""),
    }
}

/// `POST …/{noteable}/{iid}/notes/{id}/award_emoji` and
/// `POST …/{noteable}/{iid}/discussions/{id}/notes`.
async fn award_note_or_reply(
    State(state): Shared,
    Path((project, noteable, iid, list, id, sub)): Path<(u64, String, u64, String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    if noteable_type(&noteable).is_none() {
        return not_found("Project");
    }
    let body = body_fields(&body).unwrap_or_default();
    let mut state = state.lock().unwrap();
    match (list.as_str(), sub.as_str()) {
        ("notes", "award_emoji") => award(
            &mut state,
            project,
            format!("{noteable}/{iid}/notes/{id}"),
            &body,
        ),
        ("discussions", "notes") => post_note(&mut state, project, &noteable, iid, Some(id), &body),
        _ => not_found(""),
    }
}

fn post_note(
    state: &mut Recorded,
    project: u64,
    noteable: &str,
    iid: u64,
    discussion_id: Option<String>,
    body: &Value,
) -> Response {
    let Some(text) = text_field(body, "body") else {
        return bad_request("body is missing");
    };
    let created_at = now();
    let note = GitlabNote {
        id: state.new_id(),
        project,
        noteable: noteable.to_string(),
        iid,
        body: text,
        discussion_id,
        created_at: created_at.clone(),
        updated_at: created_at,
    };
    let answer = note_json(state, &note);
    state.gitlab_notes.push(note);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// 201 with the award; 404 when the same emoji is already awarded, as GitLab answers.
fn award(state: &mut Recorded, project: u64, subject: String, body: &Value) -> Response {
    let Some(name) = text_field(body, "name") else {
        return bad_request("name is missing");
    };
    if state
        .gitlab_award_emoji
        .iter()
        .any(|a| a.project == project && a.subject == subject && a.name == name)
    {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "404 Award Emoji Name has already been taken"})),
        )
            .into_response();
    }
    let award = GitlabAward {
        id: state.new_id(),
        project,
        subject,
        name,
        created_at: now(),
    };
    let on_note = award.subject.contains("/notes/");
    let awardable_id: u64 = award
        .subject
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let awardable_type = if on_note {
        "Note"
    } else if award.subject.starts_with("issues/") {
        "Issue"
    } else {
        "MergeRequest"
    };
    let answer = json!({
        "id": award.id,
        "name": award.name,
        "user": bot_json(state),
        "created_at": award.created_at,
        "updated_at": award.created_at,
        "awardable_id": awardable_id,
        "awardable_type": awardable_type,
        "url": null
    });
    state.gitlab_award_emoji.push(award);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// `PUT …/{noteable}/{iid}/notes/{id}`: only posted notes can be edited.
async fn update_note(
    State(state): Shared,
    Path((project, noteable, iid, list, id)): Path<(u64, String, u64, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    if list != "notes" {
        return not_found("");
    }
    let body = body_fields(&body).unwrap_or_default();
    let Some(text) = text_field(&body, "body") else {
        return bad_request("body is missing");
    };
    let mut state = state.lock().unwrap();
    let Some(note) = state.gitlab_notes.iter_mut().find(|n| {
        n.project == project && n.noteable == noteable && n.iid == iid && n.id.to_string() == id
    }) else {
        return not_found("Note");
    };
    note.body = text;
    note.updated_at = now();
    let note = note.clone();
    Json(note_json(&state, &note)).into_response()
}

/// A merge request as GitLab answers it.
pub(super) fn merge_request_json(state: &Recorded, request: &GitlabMergeRequest) -> Value {
    let iid = request.iid;
    let draft = request.title.starts_with("Draft:") || request.title.starts_with("[Draft]");
    let fields = json!({
        "id": request.id,
        "iid": iid,
        "project_id": request.project,
        "title": request.title,
        "description": request.description,
        "state": request.state,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "merged_by": null,
        "merged_at": null,
        "closed_by": null,
        "closed_at": if request.state == "closed" { json!(request.updated_at) } else { Value::Null },
        "target_branch": request.target_branch
    });
    let rest = json!({
        "source_branch": request.source_branch,
        "user_notes_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "author": bot_json(state),
        "assignees": [],
        "assignee": null,
        "reviewers": [],
        "source_project_id": request.project,
        "target_project_id": request.project,
        "labels": [],
        "draft": draft,
        "work_in_progress": draft,
        "milestone": null,
        "merge_when_pipeline_succeeds": false,
        "merge_status": "checking",
        "detailed_merge_status": "checking",
        "sha": sha_of(&format!("{}:{}", request.project, request.source_branch)),
        "merge_commit_sha": null,
        "squash_commit_sha": null,
        "discussion_locked": null,
        "should_remove_source_branch": null,
        "force_remove_source_branch": false,
        "squash": false,
        "references": {
            "short": format!("!{iid}"),
            "relative": format!("!{iid}"),
            "full": format!("acme/widgets!{iid}")
        },
        "web_url": format!("{}/acme/widgets/-/merge_requests/{iid}", state.base_url),
        "has_conflicts": false,
        "blocking_discussions_resolved": true
    });
    joined(fields, rest)
}

/// 201 with the merge request; 409 when one is open for the same source branch.
async fn create_merge_request(
    State(state): Shared,
    Path(project): Path<u64>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    let body = body_fields(&body).unwrap_or_default();
    for field in ["source_branch", "target_branch", "title"] {
        if text_field(&body, field).is_none() {
            return bad_request(&format!("{field} is missing"));
        }
    }
    let source_branch = text_field(&body, "source_branch").unwrap_or_default();
    let target_branch = text_field(&body, "target_branch").unwrap_or_default();
    let mut state = state.lock().unwrap();
    if let Some(open) = state
        .gitlab_merge_requests
        .iter()
        .find(|m| m.project == project && m.state == "opened" && m.source_branch == source_branch)
    {
        return (
            StatusCode::CONFLICT,
            Json(json!({"message": [format!(
                "Another open merge request already exists for this source branch: !{}",
                open.iid
            )]})),
        )
            .into_response();
    }
    let iid = state
        .gitlab_merge_requests
        .iter()
        .filter(|m| m.project == project)
        .map(|m| m.iid)
        .max()
        .unwrap_or(FIRST_MERGE_REQUEST_IID)
        + 1;
    let created_at = now();
    let request = GitlabMergeRequest {
        id: state.new_id(),
        project,
        iid,
        title: text_field(&body, "title").unwrap_or_default(),
        description: body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        source_branch,
        target_branch,
        state: "opened".to_string(),
        created_at: created_at.clone(),
        updated_at: created_at,
    };
    let answer = merge_request_json(&state, &request);
    state.gitlab_merge_requests.push(request);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Newest first, filtered by `state` (`opened`, `closed`, `merged` or `all`, the default),
/// `source_branch` and `target_branch`.
async fn list_merge_requests(
    State(state): Shared,
    Path(project): Path<u64>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    let state = state.lock().unwrap();
    let wanted = query.get("state").map_or("all", String::as_str);
    let requests: Vec<Value> = state
        .gitlab_merge_requests
        .iter()
        .rev()
        .filter(|m| m.project == project)
        .filter(|m| wanted == "all" || m.state == wanted)
        .filter(|m| {
            query
                .get("source_branch")
                .is_none_or(|b| &m.source_branch == b)
        })
        .filter(|m| {
            query
                .get("target_branch")
                .is_none_or(|b| &m.target_branch == b)
        })
        .map(|m| merge_request_json(&state, m))
        .collect();
    Json(requests).into_response()
}

async fn one_merge_request(
    State(state): Shared,
    Path((project, iid)): Path<(u64, u64)>,
    headers: HeaderMap,
) -> Response {
    if !is_token(&headers) {
        return unauthorized();
    }
    let state = state.lock().unwrap();
    match state
        .gitlab_merge_requests
        .iter()
        .find(|m| m.project == project && m.iid == iid)
    {
        Some(request) => Json(merge_request_json(&state, request)).into_response(),
        None => not_found("Merge Request"),
    }
}
