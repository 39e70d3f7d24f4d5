//! Fakes of the providers' APIs, served over HTTP on loopback, that the service's real clients
//! (octocrab, reqwest, slack-morphism) talk to: GitHub's app installation tokens, collaborator
//! permissions, repositories and pull request diffs, GitLab's project members, projects and
//! merge request diffs, Slack's chat.postEphemeral.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use octocrab::jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};

pub const GITHUB_APP_ID: u64 = 90210;
pub const GITHUB_APP_PRIVATE_KEY: &str = include_str!("../fixtures/github-app/private-key.pem");
const GITHUB_APP_PUBLIC_KEY: &str = include_str!("../fixtures/github-app/public-key.pem");
pub const GITLAB_TOKEN: &str = "glpat-test-token";
pub const SLACK_BOT_TOKEN: &str = "xoxb-test-token";

/// The diff of every pull request unless the test sets another.
pub const GITHUB_DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs\nindex 1111111..2222222 100644\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,3 @@\n fn parse() {\n-    todo!()\n+    Ok(())\n }\n";

#[derive(Default)]
pub struct Recorded {
    /// Where the fakes listen, for default clone URLs.
    pub base_url: String,
    /// GitHub: repository → `clone_url`; absent means `{base_url}/git/{repository}.git`.
    pub github_clone_urls: HashMap<String, String>,
    /// GitHub: repositories the installations cannot see (404).
    pub github_hidden: Vec<String>,
    /// GitHub: (repository, number) → the pull request's diff; absent means [`GITHUB_DIFF`].
    pub github_diffs: HashMap<(String, u64), String>,
    /// GitHub: every installation token issued.
    pub issued_tokens: Vec<String>,
    /// GitLab: project id → `http_url_to_repo`; absent means `{base_url}/git/project-{id}.git`.
    pub gitlab_repo_urls: HashMap<u64, String>,
    /// GitLab: (project id, iid) → the merge request's file diffs; absent means two files.
    pub gitlab_diffs: HashMap<(u64, u64), Vec<Value>>,
    /// When set, both providers' diff endpoints answer with this status.
    pub diff_failure: Option<u16>,
    /// The diff requests, as `github REPOSITORY#N ACCEPT` or `gitlab PROJECT!IID page=P`.
    pub diff_requests: Vec<String>,
    /// GitHub: (repository, login) → permission; absent means 404.
    pub github_permissions: HashMap<(String, String), String>,
    /// GitHub: installation ids that were issued a token.
    pub installation_tokens: Vec<u64>,
    /// GitHub: permission checks, as (installation token, route).
    pub permission_checks: Vec<(String, String)>,
    /// GitLab: (project id, user id) → access level; absent means 404.
    pub gitlab_levels: HashMap<(u64, String), u32>,
    pub gitlab_checks: Vec<String>,
    /// Slack: every chat.postEphemeral body.
    pub slack_ephemeral: Vec<Value>,
}

/// The fake providers, listening on a loopback port until dropped with the runtime.
#[derive(Clone)]
pub struct FakeProviders {
    pub url: String,
    pub state: Arc<Mutex<Recorded>>,
}

impl FakeProviders {
    pub async fn start() -> FakeProviders {
        let state = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .route(
                "/github/app/installations/{id}/access_tokens",
                post(github_installation_token),
            )
            .route(
                "/github/repos/{owner}/{repo}/collaborators/{login}/permission",
                get(github_permission),
            )
            .route(
                "/gitlab/projects/{project}/members/all/{user}",
                get(gitlab_member),
            )
            .route(
                "/github/repos/{owner}/{repo}/issues/{number}/comments",
                get(github_comments),
            )
            .route(
                "/gitlab/projects/{project}/{noteable}/{iid}/{list}",
                get(gitlab_notes_or_diffs),
            )
            .route("/github/repos/{owner}/{repo}", get(github_repository))
            .route(
                "/github/repos/{owner}/{repo}/pulls/{number}",
                get(github_pull_request),
            )
            .route("/gitlab/projects/{project}", get(gitlab_project))
            .route("/slack/chat.postEphemeral", post(slack_ephemeral))
            .route("/slack/conversations.replies", get(slack_replies))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        state.lock().unwrap().base_url = url.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeProviders { url, state }
    }

    pub fn github_api_url(&self) -> String {
        format!("{}/github", self.url)
    }
    pub fn gitlab_api_url(&self) -> String {
        format!("{}/gitlab", self.url)
    }
    pub fn slack_api_url(&self) -> String {
        format!("{}/slack", self.url)
    }

    pub fn set_github_permission(&self, repository: &str, login: &str, permission: &str) {
        self.state.lock().unwrap().github_permissions.insert(
            (repository.to_string(), login.to_string()),
            permission.to_string(),
        );
    }

    pub fn set_gitlab_level(&self, project: u64, user_id: &str, level: u32) {
        self.state
            .lock()
            .unwrap()
            .gitlab_levels
            .insert((project, user_id.to_string()), level);
    }

    pub fn set_github_clone_url(&self, repository: &str, url: &str) {
        self.state
            .lock()
            .unwrap()
            .github_clone_urls
            .insert(repository.to_string(), url.to_string());
    }

    pub fn hide_github_repository(&self, repository: &str) {
        self.state
            .lock()
            .unwrap()
            .github_hidden
            .push(repository.to_string());
    }

    pub fn set_github_diff(&self, repository: &str, number: u64, diff: &str) {
        self.state
            .lock()
            .unwrap()
            .github_diffs
            .insert((repository.to_string(), number), diff.to_string());
    }

    pub fn set_gitlab_repo_url(&self, project: u64, url: &str) {
        self.state
            .lock()
            .unwrap()
            .gitlab_repo_urls
            .insert(project, url.to_string());
    }

    pub fn set_gitlab_diffs(&self, project: u64, iid: u64, files: Vec<Value>) {
        self.state
            .lock()
            .unwrap()
            .gitlab_diffs
            .insert((project, iid), files);
    }

    /// Makes both providers' diff endpoints answer `status` (`None`: answer normally).
    pub fn fail_diffs(&self, status: Option<u16>) {
        self.state.lock().unwrap().diff_failure = status;
    }

    pub fn recorded<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.state.lock().unwrap())
    }
}

type Shared = State<Arc<Mutex<Recorded>>>;

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .map(str::to_string)
}

/// The app's JWT must be signed with the app's key and name the app as its issuer.
async fn github_installation_token(
    State(state): Shared,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let Some(jwt) = bearer(&headers) else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "no JWT"}))).into_response();
    };
    let key = DecodingKey::from_rsa_pem(GITHUB_APP_PUBLIC_KEY.as_bytes()).unwrap();
    let claims = match decode::<Value>(&jwt, &key, &Validation::new(Algorithm::RS256)) {
        Ok(data) => data.claims,
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": format!("bad JWT: {e}")})),
            )
                .into_response();
        }
    };
    if claims["iss"] != json!(GITHUB_APP_ID) && claims["iss"] != json!(GITHUB_APP_ID.to_string()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "wrong issuer"})),
        )
            .into_response();
    }
    let token = format!("ghs_installation_{id}");
    let mut state = state.lock().unwrap();
    state.installation_tokens.push(id);
    state.issued_tokens.push(token.clone());
    Json(json!({
        "token": token,
        "expires_at": "2099-01-01T00:00:00Z",
        "permissions": {"issues": "write", "contents": "write"},
        "repository_selection": "all"
    }))
    .into_response()
}

async fn github_permission(
    State(state): Shared,
    Path((owner, repo, login)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let token = bearer(&headers).unwrap_or_default();
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    state
        .permission_checks
        .push((token.clone(), format!("{repository}/{login}")));
    if !token.starts_with("ghs_installation_") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    match state.github_permissions.get(&(repository, login.clone())) {
        Some(permission) => Json(json!({
            "permission": permission,
            "role_name": permission,
            "user": {"login": login, "id": 1, "type": "User"}
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

async fn gitlab_member(
    State(state): Shared,
    Path((project, user)): Path<(u64, String)>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    state.gitlab_checks.push(format!("{project}/{user}"));
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(GITLAB_TOKEN) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response();
    }
    match state.gitlab_levels.get(&(project, user.clone())) {
        Some(level) => Json(json!({"id": user.parse::<u64>().unwrap_or(0), "username": "someone", "access_level": level, "state": "active"})).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not found"}))).into_response(),
    }
}

async fn slack_ephemeral(State(state): Shared, headers: HeaderMap, body: String) -> Response {
    if bearer(&headers).as_deref() != Some(SLACK_BOT_TOKEN) {
        return Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    state.lock().unwrap().slack_ephemeral.push(body);
    Json(json!({"ok": true, "message_ts": "1700000000.000100"})).into_response()
}

/// Every issue and pull request has one earlier comment.
async fn github_comments(headers: HeaderMap) -> Response {
    if !bearer(&headers)
        .unwrap_or_default()
        .starts_with("ghs_installation_")
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    Json(json!([
        {"id": 1, "user": {"login": "octocat", "id": 583231, "type": "User"}, "body": "The test fails on main since yesterday."}
    ]))
    .into_response()
}

fn unauthorized_github() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials"})),
    )
        .into_response()
}

fn unauthorized_gitlab() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "401 Unauthorized"})),
    )
        .into_response()
}

fn is_installation(headers: &HeaderMap) -> bool {
    bearer(headers)
        .unwrap_or_default()
        .starts_with("ghs_installation_")
}

fn is_gitlab_token(headers: &HeaderMap) -> bool {
    headers.get("private-token").and_then(|v| v.to_str().ok()) == Some(GITLAB_TOKEN)
}

fn failure(status: u16) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"message": "Server Error"})),
    )
        .into_response()
}

async fn github_repository(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !is_installation(&headers) {
        return unauthorized_github();
    }
    let state = state.lock().unwrap();
    let full_name = format!("{owner}/{repo}");
    if state.github_hidden.contains(&full_name) {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    }
    let clone_url = state
        .github_clone_urls
        .get(&full_name)
        .cloned()
        .unwrap_or_else(|| format!("{}/git/{full_name}.git", state.base_url));
    Json(json!({
        "id": 1296269,
        "name": repo,
        "full_name": full_name,
        "private": true,
        "owner": {"login": owner, "id": 1, "type": "Organization"},
        "clone_url": clone_url,
        "default_branch": "main"
    }))
    .into_response()
}

/// Only the diff media type is served.
async fn github_pull_request(
    State(state): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    if !is_installation(&headers) {
        return unauthorized_github();
    }
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    state
        .diff_requests
        .push(format!("github {repository}#{number} {accept}"));
    if let Some(status) = state.diff_failure {
        return failure(status);
    }
    if !accept.contains(".diff") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"message": "only the diff media type is faked"})),
        )
            .into_response();
    }
    let diff = state
        .github_diffs
        .get(&(repository, number))
        .cloned()
        .unwrap_or_else(|| GITHUB_DIFF.to_string());
    ([("content-type", "text/plain; charset=utf-8")], diff).into_response()
}

async fn gitlab_project(
    State(state): Shared,
    Path(project): Path<u64>,
    headers: HeaderMap,
) -> Response {
    if !is_gitlab_token(&headers) {
        return unauthorized_gitlab();
    }
    let state = state.lock().unwrap();
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

async fn gitlab_notes_or_diffs(
    State(state): Shared,
    Path((project, noteable, iid, list)): Path<(u64, String, u64, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match (noteable.as_str(), list.as_str()) {
        (_, "notes") => gitlab_notes(headers).await,
        ("merge_requests", "diffs") => gitlab_diffs(state, project, iid, query, headers),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "404 Not found"})),
        )
            .into_response(),
    }
}

/// Pages of `per_page` files (default 20), with `x-next-page` as GitLab sends it.
fn gitlab_diffs(
    state: Arc<Mutex<Recorded>>,
    project: u64,
    iid: u64,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    if !is_gitlab_token(&headers) {
        return unauthorized_gitlab();
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

/// Every issue and merge request has one comment and one system note.
async fn gitlab_notes(headers: HeaderMap) -> Response {
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(GITLAB_TOKEN) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401 Unauthorized"})),
        )
            .into_response();
    }
    Json(json!([
        {"id": 1, "author": {"username": "jdoe"}, "body": "Seen on CI too.", "system": false},
        {"id": 2, "author": {"username": "jdoe"}, "body": "added ~openhands label", "system": true}
    ]))
    .into_response()
}

/// Every thread holds its first message.
async fn slack_replies(headers: HeaderMap) -> Response {
    if bearer(&headers).as_deref() != Some(SLACK_BOT_TOKEN) {
        return Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    Json(json!({
        "ok": true,
        "messages": [{"type": "message", "user": "U0CAROL03", "text": "the nightly build is red", "ts": "1714567890.000001"}],
        "has_more": false
    }))
    .into_response()
}
