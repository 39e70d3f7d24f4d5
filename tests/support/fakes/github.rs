//! GitHub's REST API as the GitHub App and its installations see it: installation tokens,
//! the app's installations and each one's repositories (paginated with a `Link` header),
//! collaborator permissions, repositories, issue comments and reactions, pull requests and
//! their diffs, replies to review comments.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use octocrab::jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};

use super::{
    GITHUB_APP_ID, GITHUB_APP_PUBLIC_KEY, GITHUB_BOT_ID, GITHUB_BOT_LOGIN, GITHUB_DIFF, Recorded,
    Shared, Store, bearer, body_fields, failure, joined, now, sha_of, text_field,
};

/// A comment the app posted on an issue or pull request.
#[derive(Clone, Debug)]
pub struct GithubComment {
    pub id: u64,
    pub repository: String,
    pub number: u64,
    pub body: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A reaction of the app; `subject` is `issues/N`, `issues/comments/ID` or `pulls/comments/ID`.
#[derive(Clone, Debug)]
pub struct GithubReaction {
    pub id: u64,
    pub repository: String,
    pub subject: String,
    pub content: String,
    pub created_at: String,
}

#[derive(Clone, Debug)]
pub struct GithubPull {
    pub id: u64,
    pub repository: String,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    /// The owner of the head branch (`head` was `OWNER:BRANCH` or the repository's owner).
    pub head_owner: String,
    pub head_ref: String,
    pub base_ref: String,
    pub draft: bool,
    pub open: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// A reply of the app to a pull request review comment.
#[derive(Clone, Debug)]
pub struct GithubReviewReply {
    pub id: u64,
    pub repository: String,
    pub number: u64,
    pub in_reply_to: u64,
    pub body: String,
    pub created_at: String,
}

/// The reactions GitHub accepts.
const REACTIONS: [&str; 8] = [
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];

/// Numbers of new pull requests follow this one in each repository.
const FIRST_PULL_NUMBER: u64 = 100;

pub(super) fn routes(router: Router<Store>) -> Router<Store> {
    router
        .route(
            "/github/app/installations/{id}/access_tokens",
            post(installation_token),
        )
        .route("/github/app", get(app))
        .route(
            "/github/app-manifests/{code}/conversions",
            post(manifest_conversion),
        )
        .route("/github/app/installations", get(list_installations))
        .route(
            "/github/installation/repositories",
            get(list_installation_repositories),
        )
        .route(
            "/github/repos/{owner}/{repo}/collaborators/{login}/permission",
            get(permission),
        )
        .route("/github/repos/{owner}/{repo}", get(repository))
        .route("/github/user/{id}", get(account))
        .route(
            "/github/repos/{owner}/{repo}/installation",
            get(repository_installation),
        )
        .route(
            "/github/repos/{owner}/{repo}/issues/{number}/comments",
            get(list_comments).post(create_comment),
        )
        // octocrab edits comments with POST, which GitHub also accepts.
        .route(
            "/github/repos/{owner}/{repo}/issues/comments/{id}",
            get(rendered_comment)
                .patch(update_comment)
                .post(update_comment),
        )
        .route("/github/private-user-images/{*path}", get(image))
        .route(
            "/github/repos/{owner}/{repo}/issues/{number}/reactions",
            post(issue_reaction),
        )
        .route(
            "/github/repos/{owner}/{repo}/issues/comments/{id}/reactions",
            post(issue_comment_reaction),
        )
        .route(
            "/github/repos/{owner}/{repo}/pulls/comments/{id}/reactions",
            post(review_comment_reaction),
        )
        .route(
            "/github/repos/{owner}/{repo}/pulls",
            get(list_pulls).post(create_pull),
        )
        .route(
            "/github/repos/{owner}/{repo}/pulls/{number}",
            get(pull_request),
        )
        .route(
            "/github/repos/{owner}/{repo}/pulls/{number}/comments/{id}/replies",
            post(reply_to_review_comment),
        )
        .route(
            "/github/repos/{owner}/{repo}/pulls/{number}/comments",
            get(list_review_comments),
        )
}

/// The `jwt` of an uploaded image's signed link.
pub fn image_signature(path: &str) -> String {
    format!("signed-{}", path.replace('/', "-"))
}

/// `GET /repos/{owner}/{repo}/issues/comments/{id}`: a comment the test set a rendering of,
/// with `body_html` only when asked for by the `full+json` media type, as GitHub does.
async fn rendered_comment(
    State(state): Shared,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let Some(html) = state
        .github_renderings
        .get(&(repository, format!("issues/comments/{id}")))
    else {
        return not_found();
    };
    let full = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/vnd.github.full+json"));
    let mut comment = json!({"id": id, "body": "(the comment's Markdown)"});
    if full {
        comment["body_html"] = json!(html);
        comment["body_text"] = json!("(the comment's text)");
    }
    Json(comment).into_response()
}

/// An uploaded image at its signed link: a wrong or missing `jwt` is a 404, as GitHub answers.
async fn image(
    State(state): Shared,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    state.github_image_reads.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    if query.get("jwt") != Some(&image_signature(&path)) {
        return not_found();
    }
    match state.github_images.get(&path) {
        Some(content) => content.clone().into_response(),
        None => not_found(),
    }
}

/// The app's JWT must be signed with the app's key and name the app as its issuer.
async fn installation_token(
    State(state): Shared,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = app_jwt_refusal(&headers) {
        return refusal;
    }
    let token = format!("ghs_installation_{id}");
    let mut state = state.lock().unwrap();
    state.installation_tokens.push(id);
    state.issued_tokens.push(token.clone());
    state.github_token_installations.insert(token.clone(), id);
    Json(json!({
        "token": token,
        "expires_at": "2099-01-01T00:00:00Z",
        "permissions": {"issues": "write", "contents": "write"},
        "repository_selection": "all"
    }))
    .into_response()
}

/// Why a request made as the app (not an installation) is refused, if it is: the app's JWT
/// must be signed with the app's key and name the app as its issuer.
fn app_jwt_refusal(headers: &HeaderMap) -> Option<Response> {
    let Some(jwt) = bearer(headers) else {
        return Some(
            (StatusCode::UNAUTHORIZED, Json(json!({"message": "no JWT"}))).into_response(),
        );
    };
    let key = DecodingKey::from_rsa_pem(GITHUB_APP_PUBLIC_KEY.as_bytes()).unwrap();
    let claims = match decode::<Value>(&jwt, &key, &Validation::new(Algorithm::RS256)) {
        Ok(data) => data.claims,
        Err(e) => {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"message": format!("bad JWT: {e}")})),
                )
                    .into_response(),
            );
        }
    };
    if claims["iss"] != json!(GITHUB_APP_ID) && claims["iss"] != json!(GITHUB_APP_ID.to_string()) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "wrong issuer"})),
            )
                .into_response(),
        );
    }
    None
}

/// One page of `items` as GitHub pages lists: `per_page` (default 30, at most 100) from `page`
/// (default 1), and the `Link` header naming the pages around it when there are several.
fn page_of(
    state: &Recorded,
    route: &str,
    query: &HashMap<String, String>,
    items: Vec<Value>,
) -> (Vec<Value>, Option<String>) {
    let number = |name: &str, default: usize| {
        query
            .get(name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let per_page = number("per_page", 30).clamp(1, 100);
    let page = number("page", 1).max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = (start + per_page).min(items.len());
    let link = |n: usize, rel: &str| {
        format!(
            "<{}{route}?per_page={per_page}&page={n}>; rel=\"{rel}\"",
            api_url(state)
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link((page - 1).min(pages), "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let shown = items[start..end].to_vec();
    (shown, (!links.is_empty()).then(|| links.join(", ")))
}

/// `answer`, with the `Link` header when there is one.
fn with_link(answer: Value, link: Option<String>) -> Response {
    let mut response = Json(answer).into_response();
    if let Some(link) = link {
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

/// An installation as `GET /app/installations` lists it; its account owns `owner`'s
/// repositories.
fn installation_json(state: &Recorded, id: u64, owner: &str) -> Value {
    let account_id = numeric_id(owner);
    json!({
        "id": id,
        "client_id": "Iv1.8a61f9b3a7aba766",
        "account": user_json(owner, account_id, "Organization"),
        "repository_selection": "selected",
        "access_tokens_url": format!("{}/app/installations/{id}/access_tokens", api_url(state)),
        "repositories_url": format!("{}/installation/repositories", api_url(state)),
        "html_url": format!("https://github.com/organizations/{owner}/settings/installations/{id}"),
        "app_id": GITHUB_APP_ID,
        "app_slug": "openhands",
        "target_id": account_id,
        "target_type": "Organization",
        "permissions": {"issues": "write", "contents": "write", "pull_requests": "write", "metadata": "read"},
        "events": ["issue_comment", "issues", "pull_request"],
        "created_at": "2024-04-01T09:00:00Z",
        "updated_at": "2024-04-01T09:00:00Z",
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null
    })
}

/// A stable positive id for `name` (accounts, repositories).
fn numeric_id(name: &str) -> u64 {
    u64::from_str_radix(&sha_of(name)[..7], 16).unwrap() + 1
}

/// `GET /app/installations`, asked as the app: one entry per installation id set with
/// `set_github_installation`, lowest id first.
/// The code GitHub hands back after creating an app from a manifest, and what it gives for it.
pub const MANIFEST_CODE: &str = "a1b2c3manifestcode";
pub const MANIFEST_APP_ID: u64 = 777_001;
pub const MANIFEST_APP_SLUG: &str = "openhands-acme";
pub const MANIFEST_WEBHOOK_SECRET: &str = "whsec-made-by-github";

/// `POST /app-manifests/{code}/conversions` (no authentication, as on GitHub): the new app's
/// id, private key and webhook secret for the code of a manifest, once.
async fn manifest_conversion(State(state): Shared, Path(code): Path<String>) -> Response {
    let mut state = state.lock().unwrap();
    if code != MANIFEST_CODE || state.manifest_converted {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    }
    state.manifest_converted = true;
    (
        StatusCode::CREATED,
        Json(json!({
            "id": MANIFEST_APP_ID,
            "slug": MANIFEST_APP_SLUG,
            "node_id": "A_kwDOAAAAAA",
            "owner": {"login": "acme", "type": "Organization"},
            "name": "OpenHands Acme",
            "html_url": format!("https://github.com/apps/{MANIFEST_APP_SLUG}"),
            "client_id": "Iv1.manifestclient",
            "client_secret": "manifest-client-secret",
            "webhook_secret": MANIFEST_WEBHOOK_SECRET,
            "pem": super::GITHUB_APP_PRIVATE_KEY,
            "permissions": {"issues": "write", "pull_requests": "write", "contents": "write", "metadata": "read"},
            "events": ["issues", "issue_comment", "pull_request"]
        })),
    )
        .into_response()
}

/// `GET /app` with the app's JWT: the app itself.
async fn app(headers: HeaderMap) -> Response {
    if let Some(refusal) = app_jwt_refusal(&headers) {
        return refusal;
    }
    Json(json!({
        "id": GITHUB_APP_ID,
        "slug": "openhands-test",
        "name": "OpenHands Test",
        "owner": {"login": "octo-org", "type": "Organization"},
        "html_url": "https://github.com/apps/openhands-test",
        "permissions": {"issues": "write", "pull_requests": "write", "contents": "write"},
        "events": ["issues", "issue_comment", "pull_request"]
    }))
    .into_response()
}

async fn list_installations(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = app_jwt_refusal(&headers) {
        return refusal;
    }
    let state = state.lock().unwrap();
    // Each installation's account: the owner of its first repository.
    let mut owners: std::collections::BTreeMap<u64, &str> = std::collections::BTreeMap::new();
    let mut repositories: Vec<(&String, &u64)> = state.github_installations.iter().collect();
    repositories.sort();
    for (repository, id) in repositories {
        let owner = repository.split('/').next().unwrap_or_default();
        owners.entry(*id).or_insert(owner);
    }
    let installations: Vec<Value> = owners
        .into_iter()
        .map(|(id, owner)| installation_json(&state, id, owner))
        .collect();
    let (shown, link) = page_of(&state, "/app/installations", &query, installations);
    with_link(Value::Array(shown), link)
}

/// `GET /installation/repositories` with an installation's token: the repositories set with
/// `set_github_installation` for that installation (hidden ones aside), by name.
async fn list_installation_repositories(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().unwrap();
    let Some(installation) =
        bearer(&headers).and_then(|token| state.github_token_installations.get(&token).copied())
    else {
        return unauthorized();
    };
    let mut names: Vec<&String> = state
        .github_installations
        .iter()
        .filter(|(repository, id)| {
            **id == installation && !state.github_hidden.contains(repository)
        })
        .map(|(repository, _)| repository)
        .collect();
    names.sort();
    let repositories: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let (owner, repo) = name.split_once('/').unwrap_or((name, ""));
            repository_json(&state, owner, repo)
        })
        .collect();
    let total = repositories.len();
    let (shown, link) = page_of(&state, "/installation/repositories", &query, repositories);
    with_link(
        json!({
            "total_count": total,
            "repository_selection": "selected",
            "repositories": shown
        }),
        link,
    )
}

/// `GET /repos/{owner}/{repo}/installation`, asked as the app.
async fn repository_installation(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = app_jwt_refusal(&headers) {
        return refusal;
    }
    let repository = format!("{owner}/{repo}");
    match state.lock().unwrap().github_installations.get(&repository) {
        Some(id) => Json(json!({
            "id": id,
            "app_id": GITHUB_APP_ID,
            "target_type": "Organization",
            "account": user_json(&owner, numeric_id(&owner), "Organization"),
            "permissions": {"issues": "write", "contents": "write", "pull_requests": "write"},
            "events": ["issue_comment", "issues", "pull_request"],
            "repository_selection": "selected"
        }))
        .into_response(),
        None => not_found(),
    }
}

async fn permission(
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
        return unauthorized();
    }
    match state.github_permissions.get(&(repository, login.clone())) {
        Some(permission) => Json(json!({
            "permission": permission,
            "role_name": permission,
            "user": {"login": login, "id": 1, "type": "User"}
        }))
        .into_response(),
        None => not_found(),
    }
}

/// An account by its id (`GET /user/{id}`).
async fn account(State(state): Shared, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    if !bearer(&headers)
        .unwrap_or_default()
        .starts_with("ghs_installation_")
    {
        return unauthorized();
    }
    match state.lock().unwrap().github_accounts.get(&id) {
        Some(login) => Json(user_json(login, id, "User")).into_response(),
        None => not_found(),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials"})),
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
}

fn is_installation(headers: &HeaderMap) -> bool {
    bearer(headers)
        .unwrap_or_default()
        .starts_with("ghs_installation_")
}

/// 422 as GitHub words a request it cannot process.
fn validation_failed(errors: Value) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": "https://docs.github.com/rest",
            "status": "422"
        })),
    )
        .into_response()
}

/// GitHub's answer to a body it cannot parse.
fn unparsable() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"message": "Problems parsing JSON"})),
    )
        .into_response()
}

/// The refusal of a request without the installation's token or about a repository it does
/// not see.
fn refusal(state: &Recorded, headers: &HeaderMap, repository: &str) -> Option<Response> {
    if !is_installation(headers) {
        return Some(unauthorized());
    }
    if state.github_hidden.iter().any(|r| r == repository) {
        return Some(not_found());
    }
    None
}

/// A user as GitHub embeds one (`user`, `owner`, …).
pub fn user_json(login: &str, id: u64, kind: &str) -> Value {
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false
    })
}

fn bot_json() -> Value {
    user_json(GITHUB_BOT_LOGIN, GITHUB_BOT_ID, "Bot")
}

fn api_url(state: &Recorded) -> String {
    format!("{}/github", state.base_url)
}

fn default_branch(state: &Recorded, repository: &str) -> String {
    state
        .github_default_branches
        .get(repository)
        .cloned()
        .unwrap_or_else(|| "main".to_string())
}

fn repository_json(state: &Recorded, owner: &str, repo: &str) -> Value {
    let full_name = format!("{owner}/{repo}");
    let clone_url = state
        .github_clone_urls
        .get(&full_name)
        .cloned()
        .unwrap_or_else(|| format!("{}/git/{full_name}.git", state.base_url));
    let id = numeric_id(&full_name);
    json!({
        "id": id,
        "node_id": format!("R_kgDO{id:08}"),
        "name": repo,
        "full_name": full_name,
        "private": true,
        "owner": user_json(owner, numeric_id(owner), "Organization"),
        "html_url": format!("https://github.com/{full_name}"),
        "description": null,
        "url": format!("{}/repos/{full_name}", api_url(state)),
        "clone_url": clone_url,
        "ssh_url": format!("git@github.com:{full_name}.git"),
        "created_at": "2024-04-01T09:00:00Z",
        "updated_at": "2024-05-01T09:00:00Z",
        "pushed_at": "2024-05-01T09:00:00Z",
        "default_branch": default_branch(state, &full_name),
        "visibility": "private",
        "fork": false,
        "archived": false,
        "disabled": false
    })
}

async fn repository(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &format!("{owner}/{repo}")) {
        return refused;
    }
    Json(repository_json(&state, &owner, &repo)).into_response()
}

/// Someone else's comment, present on every issue and pull request before the app's.
fn seeded_comment(state: &Recorded, repository: &str, number: u64) -> Value {
    json!({
        "id": 1,
        "node_id": "IC_kwDOAAAAAc4AAAAB",
        "url": format!("{}/repos/{repository}/issues/comments/1", api_url(state)),
        "html_url": format!("https://github.com/{repository}/issues/{number}#issuecomment-1"),
        "issue_url": format!("{}/repos/{repository}/issues/{number}", api_url(state)),
        "body": "The test fails on main since yesterday.",
        "user": user_json("octocat", 583231, "User"),
        "created_at": "2024-05-01T09:00:00Z",
        "updated_at": "2024-05-01T09:00:00Z",
        "author_association": "MEMBER"
    })
}

fn comment_json(state: &Recorded, comment: &GithubComment) -> Value {
    let (repository, number, id) = (&comment.repository, comment.number, comment.id);
    json!({
        "id": id,
        "node_id": format!("IC_kwDO{id:08}"),
        "url": format!("{}/repos/{repository}/issues/comments/{id}", api_url(state)),
        "html_url": format!("https://github.com/{repository}/issues/{number}#issuecomment-{id}"),
        "issue_url": format!("{}/repos/{repository}/issues/{number}", api_url(state)),
        "body": comment.body,
        "user": bot_json(),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "author_association": "NONE",
        "performed_via_github_app": null
    })
}

/// The seeded comment, then the app's, oldest first.
async fn list_comments(
    State(state): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let mut comments = vec![seeded_comment(&state, &repository, number)];
    comments.extend(
        state
            .github_comments
            .iter()
            .filter(|c| c.repository == repository && c.number == number)
            .map(|c| comment_json(&state, c)),
    );
    Json(comments).into_response()
}

async fn create_comment(
    State(state): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let Some(body) = body_fields(&body) else {
        return unparsable();
    };
    let Some(text) = text_field(&body, "body") else {
        return validation_failed(
            json!([{"resource": "IssueComment", "field": "body", "code": "missing_field"}]),
        );
    };
    let created_at = now();
    let comment = GithubComment {
        id: state.new_id(),
        repository,
        number,
        body: text,
        created_at: created_at.clone(),
        updated_at: created_at,
    };
    let answer = comment_json(&state, &comment);
    state.github_comments.push(comment);
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn update_comment(
    State(state): Shared,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let Some(body) = body_fields(&body) else {
        return unparsable();
    };
    let Some(text) = text_field(&body, "body") else {
        return validation_failed(
            json!([{"resource": "IssueComment", "field": "body", "code": "missing_field"}]),
        );
    };
    let Some(comment) = state
        .github_comments
        .iter_mut()
        .find(|c| c.repository == repository && c.id == id)
    else {
        return not_found();
    };
    comment.body = text;
    comment.updated_at = now();
    let comment = comment.clone();
    Json(comment_json(&state, &comment)).into_response()
}

async fn issue_reaction(
    State(state): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    react(
        &state,
        &owner,
        &repo,
        format!("issues/{number}"),
        &headers,
        &body,
    )
}

async fn issue_comment_reaction(
    State(state): Shared,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    react(
        &state,
        &owner,
        &repo,
        format!("issues/comments/{id}"),
        &headers,
        &body,
    )
}

async fn review_comment_reaction(
    State(state): Shared,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    react(
        &state,
        &owner,
        &repo,
        format!("pulls/comments/{id}"),
        &headers,
        &body,
    )
}

/// 201 with the new reaction, or 200 with the app's same reaction when it already exists.
fn react(
    state: &Store,
    owner: &str,
    repo: &str,
    subject: String,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, headers, &repository) {
        return refused;
    }
    let Some(body) = body_fields(body) else {
        return unparsable();
    };
    let content = text_field(&body, "content").unwrap_or_default();
    if !REACTIONS.contains(&content.as_str()) {
        return validation_failed(
            json!([{"resource": "Reaction", "field": "content", "code": "invalid"}]),
        );
    }
    let reaction_json = |r: &GithubReaction| {
        json!({
            "id": r.id,
            "node_id": format!("REA_lADO{:08}", r.id),
            "user": bot_json(),
            "content": r.content,
            "created_at": r.created_at
        })
    };
    if let Some(existing) = state
        .github_reactions
        .iter()
        .find(|r| r.repository == repository && r.subject == subject && r.content == content)
    {
        return Json(reaction_json(existing)).into_response();
    }
    let reaction = GithubReaction {
        id: state.new_id(),
        repository,
        subject,
        content,
        created_at: now(),
    };
    let answer = reaction_json(&reaction);
    state.github_reactions.push(reaction);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// A pull request as GitHub answers it.
pub(super) fn pull_json(state: &Recorded, pull: &GithubPull) -> Value {
    let (repository, number) = (&pull.repository, pull.number);
    let (owner, repo) = repository.split_once('/').unwrap_or((repository, ""));
    let api = format!("{}/repos/{repository}", api_url(state));
    let html = format!("https://github.com/{repository}/pull/{number}");
    let repo_json = repository_json(state, owner, repo);
    let head_sha = sha_of(&format!("{}:{}", pull.head_owner, pull.head_ref));
    let pull_fields = json!({
        "url": format!("{api}/pulls/{number}"),
        "id": pull.id,
        "node_id": format!("PR_kwDO{:08}", pull.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{number}"),
        "commits_url": format!("{api}/pulls/{number}/commits"),
        "review_comments_url": format!("{api}/pulls/{number}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{number}/comments"),
        "statuses_url": format!("{api}/statuses/{head_sha}"),
        "number": number,
        "state": if pull.open { "open" } else { "closed" },
        "locked": false,
        "title": pull.title,
        "user": bot_json(),
        "body": pull.body,
        "labels": [],
        "milestone": null,
        "active_lock_reason": null,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": if pull.open { Value::Null } else { json!(pull.updated_at) },
        "merged_at": null,
        "merge_commit_sha": null,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": []
    });
    let rest = json!({
        "head": {
            "label": format!("{}:{}", pull.head_owner, pull.head_ref),
            "ref": pull.head_ref,
            "sha": head_sha,
            "user": user_json(&pull.head_owner, numeric_id(&pull.head_owner), "Organization"),
            "repo": if pull.head_owner == owner { repo_json.clone() } else { repository_json(state, &pull.head_owner, repo) }
        },
        "base": {
            "label": format!("{owner}:{}", pull.base_ref),
            "ref": pull.base_ref,
            "sha": sha_of(&format!("{owner}:{}", pull.base_ref)),
            "user": user_json(owner, numeric_id(owner), "Organization"),
            "repo": repo_json
        },
        "_links": {
            "self": {"href": format!("{api}/pulls/{number}")},
            "html": {"href": html},
            "issue": {"href": format!("{api}/issues/{number}")},
            "comments": {"href": format!("{api}/issues/{number}/comments")},
            "review_comments": {"href": format!("{api}/pulls/{number}/comments")},
            "commits": {"href": format!("{api}/pulls/{number}/commits")}
        },
        "author_association": "NONE",
        "auto_merge": null,
        "draft": pull.draft,
        "merged": false,
        "mergeable": null,
        "mergeable_state": "unknown",
        "merged_by": null,
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": false,
        "commits": 1,
        "additions": 1,
        "deletions": 1,
        "changed_files": 1
    });
    joined(pull_fields, rest)
}

/// `head` is `BRANCH` or `OWNER:BRANCH`; 422 when an open pull request has the same head.
async fn create_pull(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let Some(body) = body_fields(&body) else {
        return unparsable();
    };
    let missing: Vec<Value> = ["title", "head", "base"]
        .into_iter()
        .filter(|field| text_field(&body, field).is_none())
        .map(|field| json!({"resource": "PullRequest", "field": field, "code": "missing_field"}))
        .collect();
    if !missing.is_empty() {
        return validation_failed(Value::Array(missing));
    }
    let head = text_field(&body, "head").unwrap_or_default();
    let (head_owner, head_ref) = match head.split_once(':') {
        Some((head_owner, head_ref)) => (head_owner.to_string(), head_ref.to_string()),
        None => (owner.clone(), head.clone()),
    };
    let base_ref = text_field(&body, "base").unwrap_or_default();
    if head_owner == owner && head_ref == base_ref {
        return validation_failed(json!([{
            "resource": "PullRequest",
            "code": "custom",
            "message": format!("No commits between {base_ref} and {head_ref}")
        }]));
    }
    if state.github_pulls.iter().any(|p| {
        p.repository == repository && p.open && p.head_owner == head_owner && p.head_ref == head_ref
    }) {
        return validation_failed(json!([{
            "resource": "PullRequest",
            "code": "custom",
            "message": format!("A pull request already exists for {head_owner}:{head_ref}.")
        }]));
    }
    let number = state
        .github_pulls
        .iter()
        .filter(|p| p.repository == repository)
        .map(|p| p.number)
        .max()
        .unwrap_or(FIRST_PULL_NUMBER)
        + 1;
    let created_at = now();
    let pull = GithubPull {
        id: state.new_id(),
        repository,
        number,
        title: text_field(&body, "title").unwrap_or_default(),
        body: body.get("body").and_then(Value::as_str).map(str::to_string),
        head_owner,
        head_ref,
        base_ref,
        draft: body.get("draft").and_then(Value::as_bool).unwrap_or(false),
        open: true,
        created_at: created_at.clone(),
        updated_at: created_at,
    };
    let answer = pull_json(&state, &pull);
    state.github_pulls.push(pull);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Newest first, filtered by `state` (`open` unless given), `head` (`OWNER:BRANCH`) and `base`.
async fn list_pulls(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let wanted = query.get("state").map_or("open", String::as_str);
    let pulls: Vec<Value> = state
        .github_pulls
        .iter()
        .rev()
        .filter(|p| p.repository == repository)
        .filter(|p| match wanted {
            "all" => true,
            "closed" => !p.open,
            _ => p.open,
        })
        .filter(|p| {
            query
                .get("head")
                .is_none_or(|head| match head.split_once(':') {
                    Some((head_owner, head_ref)) => {
                        p.head_owner == head_owner && p.head_ref == head_ref
                    }
                    None => p.head_owner == head.as_str(),
                })
        })
        .filter(|p| query.get("base").is_none_or(|base| &p.base_ref == base))
        .map(|p| pull_json(&state, p))
        .collect();
    Json(pulls).into_response()
}

/// The diff media type answers the diff (every pull request has one); JSON answers the pull
/// requests the app opened.
async fn pull_request(
    State(state): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    if !is_installation(&headers) {
        return unauthorized();
    }
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    if !accept.contains(".diff") {
        return match state
            .github_pulls
            .iter()
            .find(|p| p.repository == repository && p.number == number)
        {
            Some(pull) => Json(pull_json(&state, pull)).into_response(),
            None => not_found(),
        };
    }
    state
        .diff_requests
        .push(format!("github {repository}#{number} {accept}"));
    if let Some(status) = state.diff_failure {
        return failure(status);
    }
    let diff = state
        .github_diffs
        .get(&(repository, number))
        .cloned()
        .unwrap_or_else(|| GITHUB_DIFF.to_string());
    ([("content-type", "text/plain; charset=utf-8")], diff).into_response()
}

/// Any review comment may be replied to; the reply is on `src/lib.rs` like the seeded diff.
async fn reply_to_review_comment(
    State(state): Shared,
    Path((owner, repo, number, id)): Path<(String, String, u64, u64)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let mut state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let Some(body) = body_fields(&body) else {
        return unparsable();
    };
    let Some(text) = text_field(&body, "body") else {
        return validation_failed(
            json!([{"resource": "PullRequestReviewComment", "field": "body", "code": "missing_field"}]),
        );
    };
    let reply = GithubReviewReply {
        id: state.new_id(),
        repository,
        number,
        in_reply_to: id,
        body: text,
        created_at: now(),
    };
    let api = format!("{}/repos/{}", api_url(&state), reply.repository);
    let html = format!(
        "https://github.com/{}/pull/{number}#discussion_r{}",
        reply.repository, reply.id
    );
    let sha = sha_of(&format!("{}#{number}", reply.repository));
    let answer = json!({
        "url": format!("{api}/pulls/comments/{}", reply.id),
        "pull_request_review_id": reply.id + 1,
        "id": reply.id,
        "node_id": format!("PRRC_kwDO{:08}", reply.id),
        "diff_hunk": "@@ -1,3 +1,3 @@\n fn parse() {\n-    todo!()\n+    Ok(())",
        "path": "src/lib.rs",
        "position": 3,
        "original_position": 3,
        "commit_id": sha,
        "original_commit_id": sha,
        "in_reply_to_id": id,
        "user": bot_json(),
        "body": reply.body,
        "created_at": reply.created_at,
        "updated_at": reply.created_at,
        "html_url": html,
        "pull_request_url": format!("{api}/pulls/{number}"),
        "author_association": "NONE",
        "_links": {
            "self": {"href": format!("{api}/pulls/comments/{}", reply.id)},
            "html": {"href": html},
            "pull_request": {"href": format!("{api}/pulls/{number}")}
        },
        "start_line": null,
        "original_start_line": null,
        "start_side": null,
        "line": 2,
        "original_line": 2,
        "side": "RIGHT",
        "subject_type": "line"
    });
    state.github_review_replies.push(reply);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// The app's replies in the review threads of pull request `number`, oldest first (the
/// seeded review comments they answer are not listed).
async fn list_review_comments(
    State(state): Shared,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let repository = format!("{owner}/{repo}");
    let state = state.lock().unwrap();
    if let Some(refused) = refusal(&state, &headers, &repository) {
        return refused;
    }
    let replies: Vec<Value> = state
        .github_review_replies
        .iter()
        .filter(|r| r.repository == repository && r.number == number)
        .map(|r| {
            json!({
                "id": r.id,
                "in_reply_to_id": r.in_reply_to,
                "user": bot_json(),
                "body": r.body,
                "created_at": r.created_at,
                "updated_at": r.created_at
            })
        })
        .collect();
    Json(replies).into_response()
}
