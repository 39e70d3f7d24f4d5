//! The one registry of provider API clients (GitHub App, GitLab, Slack, Jira, Linear) and the
//! questions intake, the agent and results ask of them: may this account push here, what does
//! the worker clone, what is the diff of this pull request, what was said before. Nothing
//! else builds a provider client; errors never contain a token.

use anyhow::Context;

use super::github::{self, GithubApp};
use super::gitlab::{self, GitlabApi};
use super::jira::{self, Edition, JiraApi};
use super::linear::LinearApi;
use super::request::{Place, PriorMessage, RepositoryRef, Request, Sender};
use super::settings::{ChannelRoute, ProviderConfig, TicketRoute};
use super::slack::SlackApi;
use crate::sandbox::git::GitRemote;
use crate::storage::Db;

/// The most characters of a pull/merge request's diff given to the agent.
pub const MAX_DIFF_CHARS: usize = 100_000;

/// Every provider client, built once from the configuration, with what is configured about
/// the workspaces served. A provider whose settings are missing has no client (`None`).
#[derive(Debug, Default)]
pub struct Providers {
    /// The dashboard's address, for links posted back (no trailing slash).
    pub public_url: String,
    pub github: Option<GithubApp>,
    /// Names GitHub accounts in user links: the API's host.
    pub github_host: String,
    pub gitlab: Option<GitlabApi>,
    pub gitlab_host: String,
    pub slack: Option<SlackApi>,
    pub slack_teams: Vec<String>,
    /// The Jira site served, without a trailing slash.
    pub jira_site: Option<String>,
    pub linear_organizations: Vec<String>,
    /// Comments on Jira issues, when JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN are set.
    pub jira: Option<JiraApi>,
    /// The Jira Data Center site served, without a trailing slash.
    pub jira_dc_site: Option<String>,
    /// Comments on Jira Data Center issues, when JIRA_DC_BASE_URL and JIRA_DC_TOKEN are set.
    pub jira_dc: Option<JiraApi>,
    /// Comments on Linear issues, when LINEAR_API_KEY is set.
    pub linear: Option<LinearApi>,
    /// Whether opened pull/merge requests are drafts.
    pub draft_change_requests: bool,
    /// The GitHub repository of each Jira project / Linear team.
    pub ticket_repositories: Vec<TicketRoute>,
    /// The repository of each Slack channel's requests that name none (below what the admin
    /// API sets).
    pub channel_repositories: Vec<ChannelRoute>,
    /// How people address the agent (`@openhands`), for the questions it asks.
    pub mention_handle: String,
}

/// What `ask` answers, or `None` after a warning that says which setting makes it unneeded
/// when it fails or takes longer than ten seconds (start-up waits for it).
async fn ask_in_time(
    ask: impl std::future::Future<Output = anyhow::Result<String>>,
    provider: &str,
    setting: &str,
) -> Option<String> {
    const ASK_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
    let fix = if setting.is_empty() {
        String::new()
    } else {
        format!("; set {setting}")
    };
    match tokio::time::timeout(ASK_WITHIN, ask).await {
        Ok(Ok(answer)) => Some(answer),
        Ok(Err(error)) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "{provider} mentions picked from the menu are not recognised{fix}"
            );
            None
        }
        Err(_) => {
            tracing::warn!("{provider} did not say who the service's account is in time{fix}");
            None
        }
    }
}

/// What the worker clones for a request.
#[derive(Debug)]
pub struct CheckoutSource {
    pub remote: GitRemote,
    /// The branch to clone; the default branch when `None`.
    pub branch: Option<String>,
    /// The fork the branch lives in, for a pull/merge request from a fork: the agent's work
    /// cannot be pushed there.
    pub fork: Option<String>,
}

/// The host of an API URL, which names the accounts of that provider in user links.
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| url.to_string())
}

impl Providers {
    /// How the service's own Jira and Linear accounts appear in a comment when people pick
    /// them from the mention menu (`[~accountid:…]` on Jira Cloud, `[~name]` on Data Center, a
    /// Linear profile link): JIRA_ACCOUNT_ID and JIRA_DC_USERNAME, or else asked once of each
    /// provider's API. A provider that does not answer in time is logged and left out; typing
    /// the handle still asks.
    pub async fn account_mentions(&self, config: &ProviderConfig) -> Vec<String> {
        let mut found = Vec::new();
        let jira_accounts = [
            (
                &self.jira,
                &config.jira_account_id,
                Edition::Cloud,
                "JIRA_ACCOUNT_ID",
            ),
            (
                &self.jira_dc,
                &config.jira_dc_username,
                Edition::DataCenter,
                "JIRA_DC_USERNAME",
            ),
        ];
        for (client, configured, edition, setting) in jira_accounts {
            let configured = configured
                .as_deref()
                .map(str::trim)
                .filter(|id| !id.is_empty());
            let mention = match (configured, client) {
                (Some(id), _) => Some(jira::mention_of(edition, id)),
                (None, Some(jira)) => ask_in_time(jira.own_mention(), "Jira", setting).await,
                (None, None) => None,
            };
            found.extend(mention);
        }
        if let Some(linear) = &self.linear {
            found.extend(ask_in_time(linear.own_profile_url(), "Linear", "").await);
        }
        found
    }

    /// The Jira client of `site` (Cloud's or Data Center's), if one is configured for it.
    pub fn jira_at(&self, site: &str) -> Option<&JiraApi> {
        let site = site.trim_end_matches('/');
        [&self.jira, &self.jira_dc]
            .into_iter()
            .flatten()
            .find(|client| client.site().eq_ignore_ascii_case(site))
    }

    /// Builds every configured client; fails when a provider that sends work lacks what
    /// answering it needs.
    pub fn from_config(config: &ProviderConfig) -> anyhow::Result<Self> {
        config.check_for_workers()?;
        Self::clients_of(config)
    }

    /// The same clients without requiring what only answering work needs: what the web tier
    /// uses to list a user's repositories and check the one a new conversation names.
    pub fn clients_of(config: &ProviderConfig) -> anyhow::Result<Self> {
        let github = match (config.github_app_id, &config.github_app_private_key) {
            (Some(app_id), Some(_)) => {
                let pem = config.github_app_key_pem().map_err(anyhow::Error::msg)?;
                Some(GithubApp::new(&config.github_api_url, app_id, &pem)?)
            }
            _ => None,
        };
        let gitlab = match &config.gitlab_token {
            Some(token) => Some(GitlabApi::new(&config.gitlab_api_url, token.clone())?),
            None => None,
        };
        let slack = match &config.slack_bot_token {
            Some(token) => Some(SlackApi::new(&config.slack_api_url, token)?),
            None => None,
        };
        let jira = match (
            &config.jira_base_url,
            &config.jira_email,
            &config.jira_api_token,
        ) {
            (Some(site), Some(email), Some(token)) => {
                Some(JiraApi::cloud(site, email, token.clone())?)
            }
            _ => None,
        };
        let jira_dc = match (&config.jira_dc_base_url, &config.jira_dc_token) {
            (Some(site), Some(token)) => Some(JiraApi::data_center(site, token.clone())?),
            _ => None,
        };
        let linear = match &config.linear_api_key {
            Some(key) => Some(LinearApi::new(&config.linear_api_url, key.clone())?),
            None => None,
        };
        let listed = |values: &[String]| -> Vec<String> {
            values
                .iter()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        };
        Ok(Self {
            public_url: config.public_url.trim_end_matches('/').to_string(),
            github,
            github_host: host_of(&config.github_api_url),
            gitlab,
            gitlab_host: host_of(&config.gitlab_api_url),
            slack,
            slack_teams: listed(&config.slack_team_id),
            jira_site: config
                .jira_base_url
                .as_deref()
                .map(|site| site.trim_end_matches('/').to_ascii_lowercase()),
            linear_organizations: listed(&config.linear_organization_id),
            jira,
            jira_dc_site: config
                .jira_dc_base_url
                .as_deref()
                .map(|site| site.trim_end_matches('/').to_ascii_lowercase()),
            jira_dc,
            linear,
            draft_change_requests: config.draft_pull_requests,
            ticket_repositories: config.ticket_repositories.clone(),
            channel_repositories: config.slack_channel_repositories.clone(),
            mention_handle: config.mention_handle.trim().to_string(),
        })
    }

    /// Why `sender` may not push to `repository`, or `None` when they may: on GitHub the
    /// login in `sender.name` needs write or admin; on GitLab the user id in `sender.id` needs
    /// Developer or more.
    pub async fn push_refusal(
        &self,
        repository: &RepositoryRef,
        sender: &Sender,
    ) -> anyhow::Result<Option<String>> {
        match repository {
            RepositoryRef::Github {
                installation_id,
                repository,
            } => {
                let github = self
                    .github
                    .as_ref()
                    .context("GitHub requests need GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY")?;
                let permission = github
                    .permission(*installation_id, repository, &sender.name)
                    .await?;
                Ok((!matches!(permission.as_str(), "admin" | "write")).then(|| {
                    format!(
                        "{} has `{permission}` permission on {repository}; write or admin is needed",
                        sender.name
                    )
                }))
            }
            RepositoryRef::Gitlab { project_id, path } => {
                let gitlab = self
                    .gitlab
                    .as_ref()
                    .context("GitLab requests need GITLAB_TOKEN")?;
                let level = gitlab.access_level(*project_id, &sender.id).await?;
                Ok((level < gitlab::DEVELOPER).then(|| {
                    format!(
                        "{} has access level {level} on {path}; Developer ({}) or higher is needed",
                        sender.name,
                        gitlab::DEVELOPER
                    )
                }))
            }
        }
    }

    /// The images attached to the request, read with the provider's credentials, as data URLs
    /// for the model; each that cannot be read (or is too large, or not an image) is named in
    /// the second list instead.
    pub async fn images(&self, request: &Request) -> (Vec<String>, Vec<String>) {
        use base64::Engine as _;
        let mut images = Vec::new();
        let mut problems = Vec::new();
        if request.images.is_empty() {
            return (images, problems);
        }
        let github_links = self.github_image_links(request).await;
        for (index, image) in request.images.iter().enumerate() {
            let read = match (&request.place, &self.slack, &self.github) {
                (Place::SlackThread { .. }, Some(slack), _) => {
                    slack.file(&image.url, MAX_IMAGE_BYTES).await
                }
                (Place::GithubIssue { .. } | Place::GithubPullRequest { .. }, _, Some(github)) => {
                    match &github_links {
                        Ok(links) => match links.get(index) {
                            Some(link) => github.image(link, MAX_IMAGE_BYTES).await,
                            None => Err(anyhow::anyhow!("GitHub's rendering does not show it")),
                        },
                        Err(error) => Err(anyhow::anyhow!("{error:#}")),
                    }
                }
                _ => Err(anyhow::anyhow!("images of this provider cannot be read")),
            };
            let checked = read.and_then(|bytes| {
                let kind = image_kind(&bytes)
                    .ok_or_else(|| anyhow::anyhow!("it is not a PNG, JPEG, GIF or WebP image"))?;
                Ok(format!(
                    "data:{kind};base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                ))
            });
            match checked {
                Ok(data_url) => images.push(data_url),
                Err(error) => {
                    tracing::warn!(name = %image.name, error = format!("{error:#}"), "an attached image was not read");
                    problems.push(format!("{} ({error:#})", image.name));
                }
            }
        }
        (images, problems)
    }

    /// Where GitHub serves the images of a GitHub request, in the order its text names them:
    /// the signed links of GitHub's rendering of the comment (or review, or issue), read with
    /// the installation's token. Empty for other providers.
    async fn github_image_links(&self, request: &Request) -> anyhow::Result<Vec<String>> {
        let (Place::GithubIssue {
            installation_id,
            repository,
            number,
        }
        | Place::GithubPullRequest {
            installation_id,
            repository,
            number,
            ..
        }) = &request.place
        else {
            return Ok(Vec::new());
        };
        let github = self.github.as_ref().context("GitHub is not configured")?;
        let route = github::rendered_route(repository, *number, &request.source_id)
            .context("the request does not say which comment holds the images")?;
        github.rendered_image_links(*installation_id, &route).await
    }

    /// The messages that came before the request where it was made (earlier comments, the
    /// Slack thread), for a new conversation's context. Jira and Linear deliveries carry the
    /// ticket's title and description, which is what is recorded for them.
    pub async fn history(&self, request: &Request) -> anyhow::Result<Vec<PriorMessage>> {
        match &request.place {
            Place::GithubIssue {
                installation_id,
                repository,
                number,
            }
            | Place::GithubPullRequest {
                installation_id,
                repository,
                number,
                ..
            } => {
                let github = self.github.as_ref().context("GitHub is not configured")?;
                github.comments(*installation_id, repository, *number).await
            }
            Place::GitlabIssue {
                project_id, iid, ..
            } => {
                let gitlab = self.gitlab.as_ref().context("GitLab is not configured")?;
                gitlab.notes(*project_id, "issues", *iid).await
            }
            Place::GitlabMergeRequest {
                project_id, iid, ..
            } => {
                let gitlab = self.gitlab.as_ref().context("GitLab is not configured")?;
                gitlab.notes(*project_id, "merge_requests", *iid).await
            }
            Place::SlackThread {
                channel, thread_ts, ..
            } => {
                let slack = self.slack.as_ref().context("Slack is not configured")?;
                slack.thread(channel, thread_ts).await
            }
            Place::JiraIssue { .. } | Place::LinearIssue { .. } => Ok(Vec::new()),
        }
    }

    /// Where the worker clones `repository` from, with a fresh token (GitHub's last about an
    /// hour: ask again before each clone or push). Errors never contain the token.
    pub async fn remote_of(&self, repository: &RepositoryRef) -> anyhow::Result<GitRemote> {
        match repository {
            RepositoryRef::Github {
                installation_id,
                repository,
            } => {
                let github = self.github.as_ref().context(
                    "cloning from GitHub needs GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY",
                )?;
                github.repository_remote(*installation_id, repository).await
            }
            RepositoryRef::Gitlab { project_id, .. } => {
                let gitlab = self
                    .gitlab
                    .as_ref()
                    .context("cloning from GitLab needs GITLAB_TOKEN")?;
                gitlab.project_remote(*project_id).await
            }
        }
    }

    /// What the worker clones for a conversation started through the web API on the GitHub
    /// repository `repository` (`owner/name`) by the user `owner_id`: only through the GitHub
    /// App's installation there, and only when the owner's linked GitHub account may push to
    /// it, as for a mention on GitHub. Errors say what is missing; they never hold a token.
    pub async fn web_checkout_source(
        &self,
        db: &Db,
        owner_id: &str,
        repository: &str,
        git_provider: Option<&str>,
        branch: Option<&str>,
    ) -> anyhow::Result<CheckoutSource> {
        if git_provider == Some("gitlab") {
            return self
                .web_gitlab_checkout_source(db, owner_id, repository, branch)
                .await;
        }
        let github = self.github.as_ref().context(
            "repositories are cloned through the GitHub App, which is not configured (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY)",
        )?;
        let installation_id = github
            .repository_installation(repository)
            .await?
            .with_context(|| {
                format!("the GitHub App is not installed on {repository} (or it does not exist)")
            })?;
        let account = db
            .user_links(Some(owner_id))
            .await?
            .into_iter()
            .find(|link| link.provider == "github" && link.workspace == self.github_host)
            .context(
                "your user has no GitHub account linked: sign in with GitHub, or ask an administrator to link your account",
            )?;
        let login = github
            .login_of(installation_id, &account.external_id)
            .await?;
        let github_repository = RepositoryRef::Github {
            installation_id,
            repository: repository.to_string(),
        };
        let account = Sender {
            id: account.external_id,
            name: login,
        };
        if let Some(refusal) = self.push_refusal(&github_repository, &account).await? {
            anyhow::bail!(refusal);
        }
        Ok(CheckoutSource {
            remote: github
                .repository_remote(installation_id, repository)
                .await?,
            branch: branch.map(str::to_string),
            fork: None,
        })
    }

    /// The same on GitLab (`group/project`): cloned with GITLAB_TOKEN, and only when the
    /// owner's linked GitLab account is a Developer or more there, as for a mention on GitLab.
    async fn web_gitlab_checkout_source(
        &self,
        db: &Db,
        owner_id: &str,
        repository: &str,
        branch: Option<&str>,
    ) -> anyhow::Result<CheckoutSource> {
        let gitlab = self
            .gitlab
            .as_ref()
            .context("GitLab repositories are cloned with GITLAB_TOKEN, which is not set")?;
        let account = db
            .user_links(Some(owner_id))
            .await?
            .into_iter()
            .find(|link| link.provider == "gitlab" && link.workspace == self.gitlab_host)
            .context(
                "your user has no GitLab account linked: ask an administrator to link your account",
            )?;
        let (project_id, remote) = gitlab
            .project_by_path(repository)
            .await
            .with_context(|| format!("the GitLab project {repository} cannot be read"))?;
        let level = gitlab
            .access_level(project_id, &account.external_id)
            .await?;
        if level < gitlab::DEVELOPER {
            anyhow::bail!(
                "your GitLab account has access level {level} on {repository}; Developer ({}) or higher is needed",
                gitlab::DEVELOPER
            );
        }
        Ok(CheckoutSource {
            remote,
            branch: branch.map(str::to_string),
            fork: None,
        })
    }

    /// What the worker clones of `repository` for a conversation asked at `place`: the default
    /// branch, or for a pull or merge request its head branch (from the fork it lives in, for
    /// a fork's). Errors never contain the token.
    pub async fn checkout_source(
        &self,
        place: Option<&Place>,
        repository: &RepositoryRef,
    ) -> anyhow::Result<CheckoutSource> {
        let mut source = CheckoutSource {
            remote: self.remote_of(repository).await?,
            branch: None,
            fork: None,
        };
        match place {
            Some(Place::GithubPullRequest {
                installation_id,
                repository,
                number,
                ..
            }) => {
                let github = self.github.as_ref().context("GitHub is not configured")?;
                let head = github
                    .pull_request_head(*installation_id, repository, *number)
                    .await?;
                if !head.repository.eq_ignore_ascii_case(repository) {
                    source.remote = GitRemote::github(head.clone_url, source.remote.token);
                    source.fork = Some(head.repository);
                }
                source.branch = Some(head.branch);
            }
            Some(Place::GitlabMergeRequest {
                project_id, iid, ..
            }) => {
                let gitlab = self.gitlab.as_ref().context("GitLab is not configured")?;
                let head = gitlab.merge_request_head(*project_id, *iid).await?;
                if head.source_project_id != *project_id {
                    source.remote = gitlab.project_remote(head.source_project_id).await?;
                    source.fork = Some(format!("project {}", head.source_project_id));
                }
                source.branch = Some(head.source_branch);
            }
            _ => {}
        }
        Ok(source)
    }

    /// The diff of the pull or merge request of `place`, cut to [`MAX_DIFF_CHARS`]; `None`
    /// for other places.
    pub async fn diff(&self, place: &Place) -> anyhow::Result<Option<String>> {
        let diff = match place {
            Place::GithubPullRequest {
                installation_id,
                repository,
                number,
                ..
            } => {
                let github = self.github.as_ref().context("GitHub is not configured")?;
                github
                    .pull_request_diff(*installation_id, repository, *number)
                    .await?
            }
            Place::GitlabMergeRequest {
                project_id, iid, ..
            } => {
                let gitlab = self.gitlab.as_ref().context("GitLab is not configured")?;
                gitlab.merge_request_diff(*project_id, *iid).await?
            }
            _ => return Ok(None),
        };
        Ok(Some(cut_diff(diff, MAX_DIFF_CHARS)))
    }
}

/// `diff` if it has at most `max` characters; else its first whole lines and a note of the
/// cut, `max` characters at most in all.
fn cut_diff(diff: String, max: usize) -> String {
    let total = diff.chars().count();
    if total <= max {
        return diff;
    }
    let note = format!(
        "\n[the diff is cut here: it has {total} characters, only the first part is shown]\n"
    );
    let budget = max.saturating_sub(note.chars().count());
    let end = diff
        .char_indices()
        .nth(budget)
        .map_or(diff.len(), |(index, _)| index);
    let kept = &diff[..end];
    // Whole lines, unless a single line is longer than what is kept.
    let kept = match kept.rfind('\n') {
        Some(newline) if newline > 0 => &kept[..newline],
        _ => kept,
    };
    format!("{kept}{note}")
}

/// The largest attached image that is read.
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// The body of `response`, refused as soon as it passes `max_bytes`.
pub(crate) async fn read_image(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("the file could not be read: {}", e.without_url()))?
    {
        anyhow::ensure!(
            bytes.len() + chunk.len() <= max_bytes,
            "the file is larger than {} MB",
            max_bytes / (1024 * 1024)
        );
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The image type of `bytes`, by their first bytes: what the file is, not what it is called.
fn image_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn images_are_known_by_their_first_bytes() {
        use super::image_kind;
        assert_eq!(image_kind(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_kind(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(image_kind(b"GIF89a.."), Some("image/gif"));
        assert_eq!(image_kind(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_kind(b"<svg xmlns=...>"), None);
        assert_eq!(image_kind(b"%PDF-1.4"), None);
    }

    use super::cut_diff;

    #[test]
    fn short_diffs_are_kept_and_long_ones_cut_at_a_line() {
        let short = "diff --git a/x b/x\n+one\n".to_string();
        assert_eq!(cut_diff(short.clone(), 100), short);

        let long: String = (0..50).map(|n| format!("+line {n} ä\n")).collect();
        let cut = cut_diff(long.clone(), 200);
        assert!(cut.chars().count() <= 200, "{}", cut.chars().count());
        let (kept, note) = cut.split_once("\n[the diff is cut here").unwrap();
        assert!(long.starts_with(kept) && long[kept.len()..].starts_with('\n'));
        assert!(note.contains(&long.chars().count().to_string()));

        // One line longer than the limit is cut inside the line.
        let line = "x".repeat(500);
        let cut = cut_diff(line, 200);
        assert_eq!(cut.chars().count(), 200);
        assert!(cut.starts_with("xxx"));
    }
}
