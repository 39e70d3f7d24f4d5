//! GitHub's REST API as the GitHub App: an app JWT buys each installation a token (octocrab
//! caches and renews it), and the installation asks about its repositories.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use octocrab::secrecy::ExposeSecret;
use serde::Deserialize;

use super::images;
use crate::integrations::request::PriorMessage;
use crate::sandbox::git::GitRemote;
use crate::setting::Secret;

/// The GitHub App, with one client per installation it has been asked about.
#[derive(Debug)]
pub struct GithubApp {
    app: Octocrab,
    /// Shared, not cloned: each client caches its installation token.
    installations: Mutex<HashMap<u64, Arc<Octocrab>>>,
    /// The origin of GITHUB_API_URL, whose images are read as GitHub's.
    api_origin: url::Origin,
    /// Reads attached images, without any credentials, only from GitHub's hosts.
    images: reqwest::Client,
}

#[derive(Deserialize)]
struct IssueComment {
    user: Option<Account>,
    body: Option<String>,
}

#[derive(Deserialize)]
struct Account {
    login: String,
}

/// At most this many earlier comments are read (the first page).
const COMMENTS_READ: &str = "100";

#[derive(Deserialize)]
struct Repository {
    /// The `https://` URL git clones from (on GitHub Enterprise, the instance's host).
    clone_url: String,
}

#[derive(Deserialize)]
struct CollaboratorPermission {
    /// `admin`, `write`, `read` or `none` (maintain counts as write, triage as read).
    permission: String,
}

impl GithubApp {
    /// A client for the app `app_id`, signing its JWTs with `private_key_pem`, against the
    /// REST API at `api_url` (GitHub Enterprise: `https://HOST/api/v3`).
    pub fn new(api_url: &str, app_id: u64, private_key_pem: &str) -> anyhow::Result<Self> {
        let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
            .context("GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM format")?;
        let app = Octocrab::builder()
            .base_uri(api_url)
            .with_context(|| format!("GITHUB_API_URL `{api_url}` is not usable"))?
            .app(AppId(app_id), key)
            // A POST whose answer was lost must not be sent again blindly: the jobs retry,
            // and the outbox looks for the post first.
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .build()
            .context("cannot build the GitHub client")?;
        let api_origin = url::Url::parse(api_url)
            .with_context(|| format!("GITHUB_API_URL `{api_url}` is not a URL"))?
            .origin();
        let redirect_origin = api_origin.clone();
        let images = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if images::may_read(attempt.url(), &redirect_origin) {
                    attempt.follow()
                } else {
                    attempt.error("a redirect led away from GitHub")
                }
            }))
            .build()
            .context("cannot build the HTTP client for GitHub's images")?;
        Ok(Self {
            app,
            installations: Mutex::new(HashMap::new()),
            api_origin,
            images,
        })
    }

    /// The client of one installation; its token is fetched on first use and renewed before
    /// it expires.
    fn installation(&self, id: u64) -> anyhow::Result<Arc<Octocrab>> {
        let mut installations = self
            .installations
            .lock()
            .map_err(|_| anyhow::anyhow!("the GitHub installation cache is poisoned"))?;
        if let Some(client) = installations.get(&id) {
            return Ok(client.clone());
        }
        let client = Arc::new(
            self.app
                .installation(InstallationId(id))
                .context("cannot build the GitHub installation client")?,
        );
        installations.insert(id, client.clone());
        Ok(client)
    }

    /// The permission of `login` on `repository` (`owner/name`): `admin`, `write`, `read` or
    /// `none`. Someone GitHub does not know has `none`.
    pub async fn permission(
        &self,
        installation_id: u64,
        repository: &str,
        login: &str,
    ) -> anyhow::Result<String> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/collaborators/{login}/permission");
        match client
            .get::<CollaboratorPermission, _, ()>(route, None)
            .await
        {
            Ok(answer) => Ok(answer.permission),
            Err(octocrab::Error::GitHub { source, .. })
                if source.status_code == axum::http::StatusCode::NOT_FOUND =>
            {
                Ok("none".to_string())
            }
            Err(error) => Err(anyhow::Error::new(error).context(format!(
                "cannot read {login}'s permission on {repository} from GitHub"
            ))),
        }
    }

    /// The id of the app's installation on `repository` (`owner/name`); `None` when the app
    /// is not installed there (or the repository does not exist).
    pub async fn repository_installation(&self, repository: &str) -> anyhow::Result<Option<u64>> {
        check_repository(repository)?;
        #[derive(Deserialize)]
        struct Installation {
            id: u64,
        }
        match self
            .app
            .get::<Installation, _, ()>(format!("/repos/{repository}/installation"), None)
            .await
        {
            Ok(installation) => Ok(Some(installation.id)),
            Err(octocrab::Error::GitHub { source, .. })
                if source.status_code == axum::http::StatusCode::NOT_FOUND =>
            {
                Ok(None)
            }
            Err(error) => Err(anyhow::Error::new(error).context(format!(
                "cannot read the GitHub App's installation on {repository}"
            ))),
        }
    }

    /// The comments of issue or pull request `number`, oldest first (the first 100).
    pub async fn comments(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
    ) -> anyhow::Result<Vec<PriorMessage>> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/issues/{number}/comments");
        let comments: Vec<IssueComment> = client
            .get(route, Some(&[("per_page", COMMENTS_READ)]))
            .await
            .with_context(|| format!("cannot read the comments of {repository}#{number}"))?;
        Ok(comments
            .into_iter()
            .map(|c| PriorMessage {
                author: c.user.map(|u| u.login).unwrap_or_default(),
                text: c.body.unwrap_or_default(),
            })
            .collect())
    }

    /// The current login of the GitHub account `account_id` (logins can change; ids do not).
    pub async fn login_of(&self, installation_id: u64, account_id: &str) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Account {
            login: String,
        }
        let id: u64 = account_id
            .parse()
            .with_context(|| format!("`{account_id}` is not a GitHub account id"))?;
        let client = self.installation(installation_id)?;
        let account: Account = client
            .get(format!("/user/{id}"), None::<&()>)
            .await
            .with_context(|| format!("cannot read GitHub account {id}"))?;
        Ok(account.login)
    }

    /// Where to clone `repository` (`owner/name`) from, with a token of the installation.
    /// The token lasts about an hour: ask again before each clone or push.
    pub async fn repository_remote(
        &self,
        installation_id: u64,
        repository: &str,
    ) -> anyhow::Result<GitRemote> {
        check_repository(repository)?;
        let client = self.installation(installation_id)?;
        let found: Repository = client
            .get(format!("/repos/{repository}"), None::<&()>)
            .await
            .with_context(|| format!("cannot read the repository {repository} from GitHub"))?;
        let token = client.installation_token().await.with_context(|| {
            format!("cannot get a token of GitHub App installation {installation_id}")
        })?;
        let token: Secret = token.expose_secret().parse()?;
        Ok(GitRemote::github(found.clone_url, Some(token)))
    }

    /// The unified diff of pull request `number` of `repository`, as GitHub renders it.
    pub async fn pull_request_diff(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
    ) -> anyhow::Result<String> {
        check_repository(repository)?;
        let client = self.installation(installation_id)?;
        let failed = || format!("cannot read the diff of {repository}#{number} from GitHub");
        let body = get_as(
            &client,
            &format!("/repos/{repository}/pulls/{number}"),
            "application/vnd.github.diff",
        )
        .await
        .with_context(failed)?;
        // Files in other encodings keep their lines; only the odd bytes are replaced.
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// The body of `GET route` in the media type `accept` (a diff, a rendering), GitHub's errors
/// as errors.
async fn get_as(
    client: &Octocrab,
    route: &str,
    accept: &'static str,
) -> anyhow::Result<bytes::Bytes> {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::ACCEPT,
        axum::http::HeaderValue::from_static(accept),
    );
    let response = client._get_with_headers(route, Some(headers)).await?;
    let response = octocrab::map_github_error(response).await?;
    Ok(response.into_body().collect().await?.to_bytes())
}

impl GithubApp {
    /// The signed links of the images GitHub shows in the item at `route` (a comment, review,
    /// issue or pull request), in order, from its rendered HTML.
    pub async fn rendered_image_links(
        &self,
        installation_id: u64,
        route: &str,
    ) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Rendered {
            body_html: Option<String>,
        }
        let client = self.installation(installation_id)?;
        let failed = || format!("cannot read GitHub's rendering of {route}");
        let body = get_as(&client, route, "application/vnd.github.full+json")
            .await
            .with_context(failed)?;
        let rendered: Rendered = serde_json::from_slice(&body).with_context(failed)?;
        Ok(images::rendered_image_links(
            rendered.body_html.as_deref().unwrap_or_default(),
            &self.api_origin,
        ))
    }

    /// An image GitHub serves at `link` (a signed link of its rendering): at most `max_bytes`,
    /// read without credentials, following redirects only on GitHub's hosts.
    pub async fn image(&self, link: &str, max_bytes: usize) -> anyhow::Result<Vec<u8>> {
        let url = url::Url::parse(link).context("the image's address is not a URL")?;
        anyhow::ensure!(
            images::may_read(&url, &self.api_origin),
            "the image is not on GitHub"
        );
        let response =
            self.images.get(url).send().await.map_err(|e| {
                anyhow::anyhow!("GitHub did not serve the image: {}", e.without_url())
            })?;
        anyhow::ensure!(
            response.status().is_success(),
            "GitHub answered {} for the image",
            response.status()
        );
        crate::integrations::providers::read_image(response, max_bytes).await
    }
}

/// Pages read when listing installations or repositories, and what one page holds (GitHub's
/// most): at most 1000 of each.
const LIST_PAGES: u32 = 10;
const LIST_PER_PAGE: &str = "100";

impl GithubApp {
    /// The app's name, as the app itself (signed with its key) sees it.
    pub async fn name(&self) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct App {
            name: String,
        }
        let app: App = self
            .app
            .get("/app", None::<&()>)
            .await
            .context("GitHub refused the app's own key")?;
        Ok(app.name)
    }

    /// The ids of the app's installations (the accounts it is installed on), as the app itself
    /// sees them; at most 1000.
    pub async fn installations(&self) -> anyhow::Result<Vec<u64>> {
        #[derive(Deserialize)]
        struct Installation {
            id: u64,
        }
        let found: Vec<Installation> = read_pages(&self.app, "/app/installations")
            .await
            .context("cannot list the GitHub App's installations")?;
        Ok(found.into_iter().map(|i| i.id).collect())
    }

    /// The `owner/name` of each repository installation `installation_id` can reach, in
    /// GitHub's order; at most 1000.
    pub async fn installation_repositories(
        &self,
        installation_id: u64,
    ) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Listed {
            full_name: String,
        }
        let client = self.installation(installation_id)?;
        let found: Vec<Listed> = read_pages(&client, "/installation/repositories")
            .await
            .with_context(|| {
                format!("cannot list the repositories of GitHub App installation {installation_id}")
            })?;
        Ok(found.into_iter().map(|r| r.full_name).collect())
    }
}

/// The items of up to [`LIST_PAGES`] pages at `route`, a JSON array or an object holding one
/// (`repositories`, `installations`, …). GitHub's `Link` header says whether another page
/// follows; its URL is not fetched as is but asked for by number on `route`, because octocrab
/// sends its credentials only with relative routes (or to api.github.com).
async fn read_pages<T: serde::de::DeserializeOwned>(
    client: &Octocrab,
    route: &str,
) -> octocrab::Result<Vec<T>> {
    let mut items = Vec::new();
    for page in 1..=LIST_PAGES {
        let page = page.to_string();
        let mut answer: octocrab::Page<T> = client
            .get(
                route,
                Some(&[("per_page", LIST_PER_PAGE), ("page", page.as_str())]),
            )
            .await?;
        let read = answer.take_items();
        let more = answer.next.is_some() && !read.is_empty();
        items.extend(read);
        if !more {
            break;
        }
    }
    Ok(items)
}

/// `repository` must be `owner/name`: it becomes part of API paths.
fn check_repository(repository: &str) -> anyhow::Result<()> {
    if crate::integrations::is_repository_path(repository, 2) {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "`{repository}` is not a GitHub repository name (owner/name)"
        ))
    }
}

/// What a reaction is put on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "on", content = "id", rename_all = "snake_case")]
pub enum ReactionSubject {
    /// The issue or pull request itself (its number).
    Issue(u64),
    /// A comment on an issue or pull request.
    Comment(u64),
    /// A review comment on a line of a pull request's diff.
    ReviewComment(u64),
}

#[derive(Deserialize)]
struct CreatedComment {
    id: u64,
    body: Option<String>,
}

/// Comments read when looking for one posted before.
const COMMENT_PAGES: u32 = 10;

impl GithubApp {
    /// Adds `content` (`eyes`, `rocket`, …) as the app's reaction; adding it again is harmless.
    pub async fn add_reaction(
        &self,
        installation_id: u64,
        repository: &str,
        subject: ReactionSubject,
        content: &str,
    ) -> anyhow::Result<()> {
        let client = self.installation(installation_id)?;
        let route = match subject {
            ReactionSubject::Issue(number) => {
                format!("/repos/{repository}/issues/{number}/reactions")
            }
            ReactionSubject::Comment(id) => {
                format!("/repos/{repository}/issues/comments/{id}/reactions")
            }
            ReactionSubject::ReviewComment(id) => {
                format!("/repos/{repository}/pulls/comments/{id}/reactions")
            }
        };
        client
            .post::<_, serde_json::Value>(route, Some(&serde_json::json!({"content": content})))
            .await
            .with_context(|| format!("cannot add a reaction on {repository}"))?;
        Ok(())
    }

    /// The id of a comment on issue or pull request `number` whose body contains `marker`.
    pub async fn find_comment(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
        marker: &str,
    ) -> anyhow::Result<Option<u64>> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/issues/{number}/comments");
        find_marked(&client, &route, marker)
            .await
            .with_context(|| format!("cannot read the comments of {repository}#{number}"))
    }

    /// Posts a comment on issue or pull request `number`; returns its id.
    pub async fn create_comment(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
        body: &str,
    ) -> anyhow::Result<u64> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/issues/{number}/comments");
        let created: CreatedComment = client
            .post(route, Some(&serde_json::json!({"body": body})))
            .await
            .with_context(|| format!("cannot comment on {repository}#{number}"))?;
        Ok(created.id)
    }

    /// Replaces the body of comment `comment_id`.
    pub async fn update_comment(
        &self,
        installation_id: u64,
        repository: &str,
        comment_id: u64,
        body: &str,
    ) -> anyhow::Result<()> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/issues/comments/{comment_id}");
        client
            .patch::<serde_json::Value, _, _>(route, Some(&serde_json::json!({"body": body})))
            .await
            .with_context(|| format!("cannot edit comment {comment_id} on {repository}"))?;
        Ok(())
    }
}

/// The branch a pull request's commits are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullHead {
    /// The head branch.
    pub branch: String,
    /// The repository (`owner/name`) the branch is in: another one for a pull request from a fork.
    pub repository: String,
    /// Where git clones the head repository from.
    pub clone_url: String,
}

/// A pull request, as far as a link to it goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct PullLink {
    pub number: u64,
    pub html_url: String,
}

#[derive(Deserialize)]
struct PullRequestHead {
    head: HeadRef,
}

#[derive(Deserialize)]
struct HeadRef {
    #[serde(rename = "ref")]
    branch: String,
    /// `null` when the fork was deleted.
    repo: Option<HeadRepository>,
}

#[derive(Deserialize)]
struct HeadRepository {
    full_name: String,
    clone_url: String,
}

impl GithubApp {
    /// The head branch of pull request `number` and the repository it lives in.
    pub async fn pull_request_head(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
    ) -> anyhow::Result<PullHead> {
        check_repository(repository)?;
        let client = self.installation(installation_id)?;
        let pull: PullRequestHead = client
            .get(format!("/repos/{repository}/pulls/{number}"), None::<&()>)
            .await
            .with_context(|| format!("cannot read pull request {repository}#{number}"))?;
        let repo = pull.head.repo.with_context(|| {
            format!(
                "the branch of pull request {repository}#{number} is in a fork that was deleted"
            )
        })?;
        Ok(PullHead {
            branch: pull.head.branch,
            repository: repo.full_name,
            clone_url: repo.clone_url,
        })
    }

    /// The open pull request of `repository` whose head is `branch` of the same repository.
    pub async fn open_pull(
        &self,
        installation_id: u64,
        repository: &str,
        branch: &str,
    ) -> anyhow::Result<Option<PullLink>> {
        check_repository(repository)?;
        let client = self.installation(installation_id)?;
        let owner = repository.split('/').next().unwrap_or_default();
        let head = format!("{owner}:{branch}");
        let pulls: Vec<PullLink> = client
            .get(
                format!("/repos/{repository}/pulls"),
                Some(&[("state", "open"), ("head", head.as_str())]),
            )
            .await
            .with_context(|| format!("cannot list the pull requests of {repository}"))?;
        Ok(pulls.into_iter().next())
    }

    /// Opens a pull request from `head` into `base` of `repository`.
    pub async fn create_pull(
        &self,
        installation_id: u64,
        repository: &str,
        new: &NewPull<'_>,
    ) -> anyhow::Result<PullLink> {
        check_repository(repository)?;
        let client = self.installation(installation_id)?;
        client
            .post(format!("/repos/{repository}/pulls"), Some(new))
            .await
            .with_context(|| format!("cannot open a pull request on {repository}"))
    }

    /// The id of a review comment of pull request `number` whose body contains `marker`.
    pub async fn find_review_comment(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
        marker: &str,
    ) -> anyhow::Result<Option<u64>> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/pulls/{number}/comments");
        find_marked(&client, &route, marker)
            .await
            .with_context(|| format!("cannot read the review comments of {repository}#{number}"))
    }

    /// Replies in the review thread of comment `comment_id` on pull request `number`.
    pub async fn reply_to_review_comment(
        &self,
        installation_id: u64,
        repository: &str,
        number: u64,
        comment_id: u64,
        body: &str,
    ) -> anyhow::Result<u64> {
        let client = self.installation(installation_id)?;
        let route = format!("/repos/{repository}/pulls/{number}/comments/{comment_id}/replies");
        let created: CreatedComment = client
            .post(route, Some(&serde_json::json!({"body": body})))
            .await
            .with_context(|| {
                format!("cannot reply to a review comment on {repository}#{number}")
            })?;
        Ok(created.id)
    }
}

/// A pull request to open.
#[derive(Debug, serde::Serialize)]
pub struct NewPull<'a> {
    pub title: &'a str,
    pub head: &'a str,
    pub base: &'a str,
    pub body: &'a str,
    pub draft: bool,
}

/// The id of the first comment listed at `route` whose body contains `marker`.
async fn find_marked(client: &Octocrab, route: &str, marker: &str) -> anyhow::Result<Option<u64>> {
    for page in 1..=COMMENT_PAGES {
        let page = page.to_string();
        let comments: Vec<CreatedComment> = client
            .get(route, Some(&[("per_page", "100"), ("page", page.as_str())]))
            .await?;
        if let Some(found) = comments
            .iter()
            .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)))
        {
            return Ok(Some(found.id));
        }
        if comments.len() < 100 {
            break;
        }
    }
    Ok(None)
}
