//! Fakes of the providers' APIs, served over HTTP on loopback, that the service's real clients
//! (octocrab, reqwest, slack-morphism) talk to: GitHub (`/github`), GitLab (`/gitlab`), Slack's
//! Web API (`/slack`), a Jira Cloud site (`/jira`), a Jira Data Center site (`/jira-dc`) and
//! Linear's GraphQL API (`/linear/graphql`).
//!
//! Besides the seeded answers the intake reads (permissions, earlier comments, diffs), the fakes
//! hold what is posted to them — comments, reactions, pull and merge requests, thread replies —
//! answer with the providers' own shapes, and can be told to fail the next mutating requests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub mod github;
pub mod gitlab;
pub mod jira;
pub mod jira_dc;
pub mod linear;
pub mod slack;

pub use github::{GithubComment, GithubPull, GithubReaction, GithubReviewReply};
pub use gitlab::{GitlabAward, GitlabMergeRequest, GitlabNote};
pub use jira::JiraComment;
pub use linear::LinearComment;
pub use slack::{SlackMessage, SlackReaction};

pub const GITHUB_APP_ID: u64 = 90210;
pub const GITHUB_APP_PRIVATE_KEY: &str = include_str!("../../fixtures/github-app/private-key.pem");
const GITHUB_APP_PUBLIC_KEY: &str = include_str!("../../fixtures/github-app/public-key.pem");
/// Who the app's installations post as.
pub const GITHUB_BOT_LOGIN: &str = "openhands[bot]";
pub const GITHUB_BOT_ID: u64 = 158_243_242;
pub const GITLAB_TOKEN: &str = "glpat-test-token";
/// The user that owns [`GITLAB_TOKEN`].
pub const GITLAB_BOT_USERNAME: &str = "openhands-bot";
pub const GITLAB_BOT_ID: u64 = 4242;
pub const SLACK_BOT_TOKEN: &str = "xoxb-test-token";
/// The bot user and bot of [`SLACK_BOT_TOKEN`].
pub const SLACK_BOT_USER: &str = "U0OPENHANDS";
pub const SLACK_BOT_ID: &str = "B0OPENHANDS";
/// The Jira account that comments, with its API token (basic auth).
pub const JIRA_EMAIL: &str = "openhands@acme.test";
pub const JIRA_API_TOKEN: &str = "jira-api-token";
pub const JIRA_ACCOUNT_ID: &str = "5b10ac8d82e05b22cc7d4ef5";
/// The Jira Data Center account that comments: its personal access token and user name.
pub const JIRA_DC_TOKEN: &str = "jira-dc-personal-access-token";
pub const JIRA_DC_USERNAME: &str = "openhands-bot";
/// A Linear API key, sent as the whole `Authorization` header.
pub const LINEAR_API_KEY: &str = "lin_api_test_key";
pub const LINEAR_USER_ID: &str = "2b7c1f3e-0d3a-4a8e-9c55-0c3f0f9f7a11";
/// The profile of the service's Linear user: a mention picked from Linear's menu links to it.
pub const LINEAR_PROFILE_URL: &str = "https://linear.app/acme/profiles/openhands";

/// The diff of every pull request unless the test sets another.
pub const GITHUB_DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs\nindex 1111111..2222222 100644\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,3 @@\n fn parse() {\n-    todo!()\n+    Ok(())\n }\n";

/// The providers, as [`FakeProviders::fail_next`] names them.
pub const PROVIDERS: [&str; 6] = ["github", "gitlab", "slack", "jira", "jira-dc", "linear"];

/// What happens to a provider's next mutating request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answered with this status; nothing changes.
    Refuse(u16),
    /// Done, but answered 500: the change is made and the answer is lost.
    LoseAnswer,
    /// Done, then the answer is held back this long (a caller killed meanwhile never hears).
    Stall(std::time::Duration),
}

#[derive(Default)]
pub struct Recorded {
    /// Where the fakes listen, for default clone URLs.
    pub base_url: String,
    /// GitHub: repository → `clone_url`; absent means `{base_url}/git/{repository}.git`.
    pub github_clone_urls: HashMap<String, String>,
    /// GitHub: repository → the id of the app's installation on it; absent means 404.
    pub github_installations: HashMap<String, u64>,
    /// GitHub: repositories the installations cannot see (404).
    pub github_hidden: Vec<String>,
    /// GitHub: (repository, number) → the pull request's diff; absent means [`GITHUB_DIFF`].
    pub github_diffs: HashMap<(String, u64), String>,
    /// GitHub: every installation token issued.
    pub issued_tokens: Vec<String>,
    /// GitLab: project id → `http_url_to_repo`; absent means `{base_url}/git/project-{id}.git`.
    pub gitlab_repo_urls: HashMap<u64, String>,
    /// GitLab: project path (`group/project`) → id, for projects asked for by path.
    pub gitlab_project_paths: HashMap<String, u64>,
    /// GitLab: the query of each project listing (`GET /projects`), in order.
    pub gitlab_project_listings: Vec<HashMap<String, String>>,
    /// GitLab: (project id, iid) → the merge request's file diffs; absent means two files.
    pub gitlab_diffs: HashMap<(u64, u64), Vec<Value>>,
    /// When set, both providers' diff endpoints answer with this status.
    pub diff_failure: Option<u16>,
    /// The diff requests, as `github REPOSITORY#N ACCEPT` or `gitlab PROJECT!IID page=P`.
    pub diff_requests: Vec<String>,
    /// GitHub: (repository, login) → permission; absent means 404.
    pub github_permissions: HashMap<(String, String), String>,
    /// GitHub: account id → login.
    pub github_accounts: HashMap<u64, String>,
    /// GitHub: installation ids that were issued a token.
    pub installation_tokens: Vec<u64>,
    /// GitHub: each installation token issued → the installation it acts for.
    pub github_token_installations: HashMap<String, u64>,
    /// GitHub: permission checks, as (installation token, route).
    pub permission_checks: Vec<(String, String)>,
    /// GitLab: (project id, user id) → access level; absent means 404.
    pub gitlab_levels: HashMap<(u64, String), u32>,
    pub gitlab_checks: Vec<String>,
    /// Slack: every chat.postEphemeral body.
    pub slack_ephemeral: Vec<Value>,
    /// Slack: files shared in the workspace, by their path under `/slack/files-pri/`.
    pub slack_files: HashMap<String, Vec<u8>>,
    /// Slack: the Authorization header of each file read, in order.
    pub slack_file_reads: Vec<Option<String>>,
    /// GitHub: the `body_html` of items (`REPOSITORY`, `issues/comments/ID`) as the
    /// `full+json` media type renders them.
    pub github_renderings: HashMap<(String, String), String>,
    /// GitHub: uploaded images, by path, served only at their signed links.
    pub github_images: HashMap<String, Vec<u8>>,
    /// GitHub: the Authorization header of each image read, in order.
    pub github_image_reads: Vec<Option<String>>,

    /// Per provider, what happens to its next mutating requests, first first.
    /// Queued faults per provider, each for any mutating request or only for paths ending so.
    pub faults: HashMap<String, VecDeque<(Option<String>, Fault)>>,
    /// Every mutating request, as `METHOD path -> status`, in order.
    pub mutations: Vec<String>,
    /// The last id given to something posted (ids are unique across providers).
    pub last_id: u64,
    /// GitHub: repository → default branch; absent means `main`.
    pub github_default_branches: HashMap<String, String>,
    /// GitHub: issue and pull request comments the app posted.
    pub github_comments: Vec<GithubComment>,
    pub github_reactions: Vec<GithubReaction>,
    pub github_pulls: Vec<GithubPull>,
    /// GitHub: replies to pull request review comments.
    pub github_review_replies: Vec<GithubReviewReply>,
    /// GitLab: notes posted on issues and merge requests, discussion replies included.
    pub gitlab_notes: Vec<GitlabNote>,
    pub gitlab_award_emoji: Vec<GitlabAward>,
    pub gitlab_merge_requests: Vec<GitlabMergeRequest>,
    /// Slack: messages the bot posted, as last updated.
    pub slack_messages: Vec<SlackMessage>,
    pub slack_reactions: Vec<SlackReaction>,
    pub jira_comments: Vec<JiraComment>,
    /// Whether the manifest's code was exchanged (GitHub takes each code once).
    pub manifest_converted: bool,
    /// Jira Data Center: comments whose body is wiki markup text.
    pub jira_dc_comments: Vec<JiraComment>,
    pub linear_comments: Vec<LinearComment>,
}

impl Recorded {
    /// A new id for something posted.
    pub fn new_id(&mut self) -> u64 {
        self.last_id = self.last_id.max(1000) + 1;
        self.last_id
    }
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
        let mut app = Router::new();
        app = github::routes(app);
        app = gitlab::routes(app);
        app = slack::routes(app);
        app = jira::routes(app);
        app = jira_dc::routes(app);
        app = linear::routes(app);
        let app = app
            .layer(middleware::from_fn_with_state(state.clone(), faults))
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
    /// Shares a file in the fake workspace; its `url_private` is returned.
    pub fn add_slack_file(&self, path: &str, content: &[u8]) -> String {
        self.state
            .lock()
            .unwrap()
            .slack_files
            .insert(path.to_string(), content.to_vec());
        format!("{}/slack/files-pri/{path}", self.url)
    }
    /// The Jira site (JIRA_BASE_URL); its REST API is under `/rest/api/3`.
    pub fn jira_site_url(&self) -> String {
        format!("{}/jira", self.url)
    }
    /// The Jira Data Center site (JIRA_DC_BASE_URL); its REST API is under `/rest/api/2`.
    pub fn jira_dc_site_url(&self) -> String {
        format!("{}/jira-dc", self.url)
    }
    /// LINEAR_API_URL.
    pub fn linear_api_url(&self) -> String {
        format!("{}/linear/graphql", self.url)
    }

    /// Uploads an image to the fake GitHub; returns its signed link (as a rendering holds it).
    pub fn add_github_image(&self, path: &str, content: &[u8]) -> String {
        self.state
            .lock()
            .unwrap()
            .github_images
            .insert(path.to_string(), content.to_vec());
        format!(
            "{}/github/private-user-images/{path}?jwt={}",
            self.url,
            github::image_signature(path)
        )
    }

    /// What GitHub's rendering of `item` (`issues/comments/ID`) of `repository` is.
    pub fn set_github_rendering(&self, repository: &str, item: &str, body_html: &str) {
        self.state.lock().unwrap().github_renderings.insert(
            (repository.to_string(), item.to_string()),
            body_html.to_string(),
        );
    }

    pub fn set_github_permission(&self, repository: &str, login: &str, permission: &str) {
        self.state.lock().unwrap().github_permissions.insert(
            (repository.to_string(), login.to_string()),
            permission.to_string(),
        );
    }

    pub fn set_github_account(&self, id: u64, login: &str) {
        self.state
            .lock()
            .unwrap()
            .github_accounts
            .insert(id, login.to_string());
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

    /// Installs the app on `repository` as installation `id`: the app lists the installation,
    /// and the installation lists the repository.
    pub fn set_github_installation(&self, repository: &str, id: u64) {
        self.state
            .lock()
            .unwrap()
            .github_installations
            .insert(repository.to_string(), id);
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

    /// Project `project` is also found by its `path` (`group/project`), and listed among the
    /// projects the token's account develops in.
    pub fn set_gitlab_project_path(&self, path: &str, project: u64) {
        self.state
            .lock()
            .unwrap()
            .gitlab_project_paths
            .insert(path.to_string(), project);
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

    pub fn set_github_default_branch(&self, repository: &str, branch: &str) {
        self.state
            .lock()
            .unwrap()
            .github_default_branches
            .insert(repository.to_string(), branch.to_string());
    }

    /// Closes pull request `number` of `repository`, as if someone closed it on GitHub.
    pub fn close_github_pull(&self, repository: &str, number: u64) {
        let mut state = self.state.lock().unwrap();
        let pull = state
            .github_pulls
            .iter_mut()
            .find(|p| p.repository == repository && p.number == number)
            .unwrap_or_else(|| panic!("no pull request {repository}#{number}"));
        pull.open = false;
    }

    /// Closes merge request `iid` of `project`, as if someone closed it on GitLab.
    pub fn close_gitlab_merge_request(&self, project: u64, iid: u64) {
        let mut state = self.state.lock().unwrap();
        let request = state
            .gitlab_merge_requests
            .iter_mut()
            .find(|m| m.project == project && m.iid == iid)
            .unwrap_or_else(|| panic!("no merge request !{iid} in project {project}"));
        request.state = "closed".to_string();
    }

    /// The next `count` mutating requests to `provider` (one of [`PROVIDERS`]) answer `status`
    /// and change nothing. Mutating: GitHub, GitLab and Jira requests other than GET (GitHub's
    /// installation tokens aside), every Slack method but conversations.replies, Linear's
    /// mutations. Slack answers with the HTTP status itself, not `ok: false`.
    pub fn fail_next(&self, provider: &str, count: usize, status: u16) {
        self.queue_faults(provider, count, Fault::Refuse(status));
    }

    /// The next `count` mutating requests to `provider` take effect but answer 500, as when a
    /// post went out and its answer was lost.
    pub fn fail_after_commit_next(&self, provider: &str, count: usize) {
        self.queue_faults(provider, count, Fault::LoseAnswer);
    }

    /// The next `count` mutating requests to `provider` take effect, then their answers are
    /// held back for `delay`.
    pub fn stall_next(&self, provider: &str, count: usize, delay: std::time::Duration) {
        self.queue_faults(provider, count, Fault::Stall(delay));
    }

    /// An open pull request `number` of `repository` from `head_owner:head_ref` into
    /// `base_ref`; a `head_owner` other than the repository's owner makes it a fork's
    /// (`head_owner/<name>`, cloned from the URL set with [`Self::set_github_clone_url`]).
    pub fn add_github_pull(
        &self,
        repository: &str,
        number: u64,
        head_owner: &str,
        head_ref: &str,
        base_ref: &str,
    ) {
        let mut state = self.state.lock().unwrap();
        let id = state.new_id();
        let at = now();
        state.github_pulls.push(github::GithubPull {
            id,
            repository: repository.to_string(),
            number,
            title: format!("Pull request {number}"),
            body: None,
            head_owner: head_owner.to_string(),
            head_ref: head_ref.to_string(),
            base_ref: base_ref.to_string(),
            draft: false,
            open: true,
            created_at: at.clone(),
            updated_at: at,
        });
    }

    /// An open merge request `iid` of project `project` from `source_branch` into `target_branch`.
    pub fn add_gitlab_merge_request(
        &self,
        project: u64,
        iid: u64,
        source_branch: &str,
        target_branch: &str,
    ) {
        let mut state = self.state.lock().unwrap();
        let id = state.new_id();
        let at = now();
        state
            .gitlab_merge_requests
            .push(gitlab::GitlabMergeRequest {
                id,
                project,
                iid,
                title: format!("Merge request {iid}"),
                description: None,
                source_branch: source_branch.to_string(),
                target_branch: target_branch.to_string(),
                state: "opened".to_string(),
                created_at: at.clone(),
                updated_at: at,
            });
    }

    /// Like [`Self::fail_next`] and [`Self::fail_after_commit_next`], for mutating requests
    /// whose path ends with `path_end` only.
    pub fn fault_next_at(&self, provider: &str, path_end: &str, faults: Vec<Fault>) {
        let mut state = self.state.lock().unwrap();
        let queue = state.faults.entry(provider.to_string()).or_default();
        queue.extend(faults.into_iter().map(|f| (Some(path_end.to_string()), f)));
    }

    fn queue_faults(&self, provider: &str, count: usize, fault: Fault) {
        assert!(
            PROVIDERS.contains(&provider),
            "unknown provider `{provider}` (one of {PROVIDERS:?})"
        );
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(provider.to_string())
            .or_default()
            .extend(std::iter::repeat_n((None, fault), count));
    }

    /// Every mutating request so far, as `METHOD path -> status`, in order.
    pub fn mutations(&self) -> Vec<String> {
        self.recorded(|r| r.mutations.clone())
    }

    /// Deletes comment `id` as a person on GitHub would: edits of it then answer 404.
    pub fn delete_github_comment(&self, id: u64) {
        self.state
            .lock()
            .unwrap()
            .github_comments
            .retain(|c| c.id != id);
    }

    /// The (id, body) of the comments the app posted on issue or pull request `number`.
    pub fn github_comments(&self, repository: &str, number: u64) -> Vec<(u64, String)> {
        self.recorded(|r| {
            r.github_comments
                .iter()
                .filter(|c| c.repository == repository && c.number == number)
                .map(|c| (c.id, c.body.clone()))
                .collect()
        })
    }

    /// The contents of the app's reactions to `subject`: `issues/N`, `issues/comments/ID` or
    /// `pulls/comments/ID`.
    pub fn github_reactions(&self, repository: &str, subject: &str) -> Vec<String> {
        self.recorded(|r| {
            r.github_reactions
                .iter()
                .filter(|x| x.repository == repository && x.subject == subject)
                .map(|x| x.content.clone())
                .collect()
        })
    }

    /// The pull requests of `repository` as GitHub answers them, oldest first.
    pub fn github_pulls(&self, repository: &str) -> Vec<Value> {
        self.recorded(|r| {
            r.github_pulls
                .iter()
                .filter(|p| p.repository == repository)
                .map(|p| github::pull_json(r, p))
                .collect()
        })
    }

    /// The (replied-to comment id, body) of the app's replies to review comments of pull
    /// request `number`.
    pub fn github_review_replies(&self, repository: &str, number: u64) -> Vec<(u64, String)> {
        self.recorded(|r| {
            r.github_review_replies
                .iter()
                .filter(|c| c.repository == repository && c.number == number)
                .map(|c| (c.in_reply_to, c.body.clone()))
                .collect()
        })
    }

    /// The (id, body) of the notes posted on an issue or merge request (`noteable`: `issues` or
    /// `merge_requests`), discussion replies included.
    pub fn gitlab_notes(&self, project: u64, noteable: &str, iid: u64) -> Vec<(u64, String)> {
        self.recorded(|r| {
            r.gitlab_notes
                .iter()
                .filter(|n| n.project == project && n.noteable == noteable && n.iid == iid)
                .map(|n| (n.id, n.body.clone()))
                .collect()
        })
    }

    /// The names of the emoji awarded to `subject`: `issues/IID`, `merge_requests/IID`, or
    /// either followed by `/notes/ID`.
    pub fn gitlab_award_emoji(&self, project: u64, subject: &str) -> Vec<String> {
        self.recorded(|r| {
            r.gitlab_award_emoji
                .iter()
                .filter(|a| a.project == project && a.subject == subject)
                .map(|a| a.name.clone())
                .collect()
        })
    }

    /// The merge requests of `project` as GitLab answers them, oldest first.
    pub fn gitlab_merge_requests(&self, project: u64) -> Vec<Value> {
        self.recorded(|r| {
            r.gitlab_merge_requests
                .iter()
                .filter(|m| m.project == project)
                .map(|m| gitlab::merge_request_json(r, m))
                .collect()
        })
    }

    /// The bot's messages in the thread that starts at `thread_ts` (the thread's first message
    /// too when the bot posted it), as conversations.replies answers them.
    pub fn slack_messages(&self, channel: &str, thread_ts: &str) -> Vec<Value> {
        self.recorded(|r| {
            r.slack_messages
                .iter()
                .filter(|m| m.in_thread(channel, thread_ts))
                .map(slack::message_json)
                .collect()
        })
    }

    /// The names of the bot's reactions to message `ts`.
    pub fn slack_reactions(&self, channel: &str, ts: &str) -> Vec<String> {
        self.recorded(|r| {
            r.slack_reactions
                .iter()
                .filter(|x| x.channel == channel && x.ts == ts)
                .map(|x| x.name.clone())
                .collect()
        })
    }

    /// The (id, body as Atlassian Document Format) of the comments posted on issue `key`.
    pub fn jira_comments(&self, key: &str) -> Vec<(String, Value)> {
        self.recorded(|r| {
            r.jira_comments
                .iter()
                .filter(|c| c.issue_key == key)
                .map(|c| (c.id.clone(), c.body.clone()))
                .collect()
        })
    }

    /// The (id, wiki markup) of the comments posted on Data Center issue `key`.
    pub fn jira_dc_comments(&self, key: &str) -> Vec<(String, String)> {
        self.recorded(|r| {
            r.jira_dc_comments
                .iter()
                .filter(|c| c.issue_key == key)
                .map(|c| {
                    (
                        c.id.clone(),
                        c.body.as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    }

    /// The (id, body) of the comments posted on issue `issue_id`.
    pub fn linear_comments(&self, issue_id: &str) -> Vec<(String, String)> {
        self.recorded(|r| {
            r.linear_comments
                .iter()
                .filter(|c| c.issue_id == issue_id)
                .map(|c| (c.id.clone(), c.body.clone()))
                .collect()
        })
    }
}

type Shared = State<Arc<Mutex<Recorded>>>;
type Store = Arc<Mutex<Recorded>>;

/// Whether a request changes a provider's state, and which provider.
fn mutating<'a>(method: &Method, path: &'a str, body: &[u8]) -> Option<&'a str> {
    let provider = path.trim_start_matches('/').split('/').next()?;
    let reads = *method == Method::GET || *method == Method::HEAD;
    let changes = match provider {
        "github" => !reads && !path.ends_with("/access_tokens"),
        "gitlab" | "jira" | "jira-dc" => !reads,
        "slack" => path != "/slack/conversations.replies",
        "linear" => linear::is_mutation(body),
        _ => false,
    };
    changes.then_some(provider)
}

/// Applies the queued faults to mutating requests and records them.
async fn faults(State(state): Shared, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // Only Linear needs the body to tell a mutation from a query.
    let (request, body) = if path.starts_with("/linear/") {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        (Request::from_parts(parts, Body::from(bytes.clone())), bytes)
    } else {
        (request, Default::default())
    };
    let Some(provider) = mutating(&method, &path, &body) else {
        return next.run(request).await;
    };
    let fault = state
        .lock()
        .unwrap()
        .faults
        .get_mut(provider)
        .and_then(|queue| {
            let at = queue
                .iter()
                .position(|(end, _)| end.as_deref().is_none_or(|end| path.ends_with(end)))?;
            queue.remove(at).map(|(_, fault)| fault)
        });
    let response = match fault {
        Some(Fault::Refuse(status)) => injected(provider, status),
        Some(Fault::LoseAnswer) => {
            next.run(request).await;
            injected(provider, 500)
        }
        Some(Fault::Stall(delay)) => {
            let response = next.run(request).await;
            tokio::time::sleep(delay).await;
            response
        }
        None => next.run(request).await,
    };
    state
        .lock()
        .unwrap()
        .mutations
        .push(format!("{method} {path} -> {}", response.status().as_u16()));
    response
}

/// An injected failure in the provider's own error shape.
fn injected(provider: &str, status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    let reason = code.canonical_reason().unwrap_or("Error");
    let body = match provider {
        "slack" => json!({"ok": false, "error": "fatal_error"}),
        "jira" | "jira-dc" => json!({"errorMessages": [reason], "errors": {}}),
        "linear" => json!({"errors": [{"message": reason}]}),
        "gitlab" => json!({"message": format!("{status} {reason}")}),
        _ => json!({"message": reason}),
    };
    let mut response = (code, Json(body)).into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert("retry-after", "1".parse().unwrap());
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .map(str::to_string)
}

fn failure(status: u16) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"message": "Server Error"})),
    )
        .into_response()
}

/// The current time as the providers write it (`2024-05-01T12:00:00Z`).
fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A request body as JSON, or the fields of a form.
fn body_fields(body: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        return value.is_object().then_some(value);
    }
    let fields: serde_json::Map<String, Value> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    (!fields.is_empty()).then_some(Value::Object(fields))
}

/// A string field of a request body; empty counts as missing.
fn text_field(body: &Value, name: &str) -> Option<String> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The fields of two JSON objects in one (`json!` cannot nest very long objects).
fn joined(first: Value, second: Value) -> Value {
    match (first, second) {
        (Value::Object(mut first), Value::Object(second)) => {
            first.extend(second);
            Value::Object(first)
        }
        (first, _) => first,
    }
}

/// A commit sha that stays the same for the same name.
fn sha_of(name: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(name.as_bytes()))[..40].to_string()
}
