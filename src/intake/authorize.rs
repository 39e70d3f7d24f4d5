//! Who may ask: on GitHub, anyone with write or admin permission on the repository; on
//! GitLab, Developers and above; on Slack, Jira and Linear, members of a workspace we serve
//! whose account is linked to a user of ours (by themselves, through a one-time link they are
//! offered, or by an administrator).

use anyhow::Context;

use crate::config::{ChannelRoute, ProviderConfig, TicketRoute};
use crate::integrations::github::GithubApp;
use crate::integrations::gitlab::{self, GitlabApi};
use crate::integrations::jira::JiraApi;
use crate::integrations::linear::LinearApi;
use crate::integrations::request::{Place, PriorMessage, Provider, RepositoryRef, Request};
use crate::integrations::slack::SlackApi;
use crate::sandbox::git::GitRemote;
use crate::storage::{Db, StorageError, Tx, User};

/// The most characters of a pull/merge request's diff given to the agent.
pub const MAX_DIFF_CHARS: usize = 100_000;

/// How intake reaches the providers, and which workspaces it serves.
#[derive(Debug, Default)]
pub struct IntakeSettings {
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

/// Whose conversation a permitted request becomes.
#[derive(Debug)]
pub enum Owner {
    /// The user the provider account is linked to.
    Linked(User),
    /// A GitHub/GitLab account: its linked user, created on first contact.
    Account { workspace: String },
}

#[derive(Debug)]
pub enum Decision {
    Allowed {
        owner: Owner,
    },
    Denied {
        reason: String,
        /// The sender's account is not linked: they are offered a link to link it themselves.
        link: Option<LinkOffer>,
    },
}

/// A provider account that may be linked through a one-time link.
#[derive(Debug, Clone)]
pub struct LinkOffer {
    pub provider: Provider,
    pub workspace: String,
    pub external_id: String,
    pub account_name: String,
}

pub(crate) fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| url.to_string())
}

fn deny(reason: String) -> Decision {
    Decision::Denied { reason, link: None }
}

/// Refuses an unlinked account, offering it a link.
fn unlinked(
    reason: String,
    provider: Provider,
    workspace: &str,
    sender: &crate::integrations::request::Sender,
) -> Decision {
    Decision::Denied {
        reason,
        link: Some(LinkOffer {
            provider,
            workspace: workspace.to_string(),
            external_id: sender.id.clone(),
            account_name: sender.name.clone(),
        }),
    }
}

impl IntakeSettings {
    pub fn from_config(config: &ProviderConfig) -> anyhow::Result<Self> {
        config.check_for_workers()?;
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
                Some(JiraApi::new(site, email, token.clone())?)
            }
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
            linear,
            draft_change_requests: config.draft_pull_requests,
            ticket_repositories: config.ticket_repositories.clone(),
            channel_repositories: config.slack_channel_repositories.clone(),
            mention_handle: config.mention_handle.trim().to_string(),
        })
    }

    /// Decides whether the request's sender may ask for it.
    pub async fn authorize(&self, db: &Db, request: &Request) -> anyhow::Result<Decision> {
        let sender = &request.sender;
        match &request.place {
            Place::GithubIssue {
                installation_id,
                repository,
                ..
            }
            | Place::GithubPullRequest {
                installation_id,
                repository,
                ..
            } => {
                let github = self
                    .github
                    .as_ref()
                    .context("GitHub requests need GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY")?;
                let permission = github
                    .permission(*installation_id, repository, &sender.name)
                    .await?;
                if matches!(permission.as_str(), "admin" | "write") {
                    Ok(Decision::Allowed {
                        owner: Owner::Account {
                            workspace: self.github_host.clone(),
                        },
                    })
                } else {
                    Ok(deny(format!(
                        "{} has `{permission}` permission on {repository}; write or admin is needed",
                        sender.name
                    )))
                }
            }
            Place::GitlabIssue {
                project_id,
                project_path,
                ..
            }
            | Place::GitlabMergeRequest {
                project_id,
                project_path,
                ..
            } => {
                let gitlab = self
                    .gitlab
                    .as_ref()
                    .context("GitLab requests need GITLAB_TOKEN")?;
                let level = gitlab.access_level(*project_id, &sender.id).await?;
                if level >= gitlab::DEVELOPER {
                    Ok(Decision::Allowed {
                        owner: Owner::Account {
                            workspace: self.gitlab_host.clone(),
                        },
                    })
                } else {
                    Ok(deny(format!(
                        "{} has access level {level} on {project_path}; Developer ({}) or higher is needed",
                        sender.name,
                        gitlab::DEVELOPER
                    )))
                }
            }
            Place::SlackThread { team_id, .. } => {
                if !self.slack_teams.iter().any(|t| t == team_id) {
                    return Ok(deny(format!(
                        "Slack workspace {team_id} is not served (SLACK_TEAM_ID)"
                    )));
                }
                match linked(db, Provider::Slack, team_id, &sender.id).await? {
                    Some(user) => Ok(Decision::Allowed {
                        owner: Owner::Linked(user),
                    }),
                    None => Ok(unlinked(
                        format!(
                            "Slack user {} of workspace {team_id} is not linked to a user",
                            sender.id
                        ),
                        Provider::Slack,
                        team_id,
                        sender,
                    )),
                }
            }
            Place::JiraIssue { site, .. } => {
                let site = site.trim_end_matches('/').to_ascii_lowercase();
                if self.jira_site.as_deref() != Some(site.as_str()) {
                    return Ok(deny(format!(
                        "Jira site {site} is not served (JIRA_BASE_URL)"
                    )));
                }
                match linked(db, Provider::Jira, &site, &sender.id).await? {
                    Some(user) => Ok(Decision::Allowed {
                        owner: Owner::Linked(user),
                    }),
                    None => Ok(unlinked(
                        format!(
                            "Jira account {} ({}) is not linked to a user",
                            sender.id, sender.name
                        ),
                        Provider::Jira,
                        &site,
                        sender,
                    )),
                }
            }
            Place::LinearIssue {
                organization_id, ..
            } => {
                if !self
                    .linear_organizations
                    .iter()
                    .any(|o| o == organization_id)
                {
                    return Ok(deny(format!(
                        "Linear organization {organization_id} is not served (LINEAR_ORGANIZATION_ID)"
                    )));
                }
                match linked(db, Provider::Linear, organization_id, &sender.id).await? {
                    Some(user) => Ok(Decision::Allowed {
                        owner: Owner::Linked(user),
                    }),
                    None => Ok(unlinked(
                        format!(
                            "Linear user {} ({}) is not linked to a user",
                            sender.id, sender.name
                        ),
                        Provider::Linear,
                        organization_id,
                        sender,
                    )),
                }
            }
        }
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
        let permission = github
            .permission(installation_id, repository, &login)
            .await?;
        if !matches!(permission.as_str(), "admin" | "write") {
            anyhow::bail!(
                "{login} has `{permission}` permission on {repository}; write or admin is needed"
            );
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

    /// The user of a GitHub/GitLab account, created (and linked) on its first request.
    pub async fn account_user(
        &self,
        tx: &mut Tx,
        request: &Request,
        workspace: &str,
    ) -> Result<User, StorageError> {
        let provider = request.provider.as_str();
        let sender = &request.sender;
        if let Some(user) = tx.linked_user(provider, workspace, &sender.id).await? {
            return Ok(user);
        }
        let mut login = super::account_login(request.provider, &sender.name);
        if tx.user_by_login(&login).await?.is_some() {
            // The name was someone else's before (accounts can be renamed): keep both apart.
            login = format!("{login}:{}", sender.id);
        }
        let user = tx.create_user(&login, None, false).await?;
        tx.link_user(provider, workspace, &sender.id, &user.id)
            .await?;
        Ok(user)
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

async fn linked(
    db: &Db,
    provider: Provider,
    workspace: &str,
    external_id: &str,
) -> Result<Option<User>, StorageError> {
    let mut tx = db.begin().await?;
    let user = tx
        .linked_user(provider.as_str(), workspace, external_id)
        .await?;
    tx.commit().await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
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
