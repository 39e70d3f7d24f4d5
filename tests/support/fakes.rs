//! Fakes of the providers' APIs, served over HTTP on loopback, that the service's real clients
//! (octocrab, reqwest, slack-morphism) talk to: GitHub's app installation tokens and
//! collaborator permissions, GitLab's project members, Slack's chat.postEphemeral.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
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

#[derive(Default)]
pub struct Recorded {
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
                "/gitlab/projects/{project}/{noteable}/{iid}/notes",
                get(gitlab_notes),
            )
            .route("/slack/chat.postEphemeral", post(slack_ephemeral))
            .route("/slack/conversations.replies", get(slack_replies))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
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
    state.lock().unwrap().installation_tokens.push(id);
    Json(json!({
        "token": format!("ghs_installation_{id}"),
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
