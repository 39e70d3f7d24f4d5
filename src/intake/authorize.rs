//! Who may ask: on GitHub, anyone with write or admin permission on the repository; on
//! GitLab, Developers and above; on Slack, Jira (Cloud or Data Center) and Linear, members of a workspace we serve
//! whose account is linked to a user of ours (by themselves, through a one-time link they are
//! offered, or by an administrator).

use crate::integrations::Providers;
use crate::integrations::request::{Place, Provider, RepositoryRef, Request};
use crate::storage::{Db, StorageError, Tx, User};

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

/// Decides whether the request's sender may ask for it.
pub async fn authorize(
    providers: &Providers,
    db: &Db,
    request: &Request,
) -> anyhow::Result<Decision> {
    let sender = &request.sender;
    match &request.place {
        // A repository's own issue or pull/merge request: may the sender push there?
        Place::GithubIssue { .. }
        | Place::GithubPullRequest { .. }
        | Place::GitlabIssue { .. }
        | Place::GitlabMergeRequest { .. } => {
            let Some(repository) = request.place.repository_ref() else {
                return Ok(deny("the request names no repository".into()));
            };
            let workspace = match repository {
                RepositoryRef::Github { .. } => &providers.github_host,
                RepositoryRef::Gitlab { .. } => &providers.gitlab_host,
            };
            match providers.push_refusal(&repository, sender).await? {
                None => Ok(Decision::Allowed {
                    owner: Owner::Account {
                        workspace: workspace.clone(),
                    },
                }),
                Some(reason) => Ok(deny(reason)),
            }
        }
        Place::SlackThread { team_id, .. } => {
            if !providers.slack_teams.iter().any(|t| t == team_id) {
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
            // The same place, whichever Jira it came from: each edition serves its own site.
            let (served, setting, edition) = if request.provider == Provider::JiraDc {
                (
                    &providers.jira_dc_site,
                    "JIRA_DC_BASE_URL",
                    "Jira Data Center",
                )
            } else {
                (&providers.jira_site, "JIRA_BASE_URL", "Jira")
            };
            if served.as_deref() != Some(site.as_str()) {
                return Ok(deny(format!(
                    "{edition} site {site} is not served ({setting})"
                )));
            }
            match linked(db, request.provider, &site, &sender.id).await? {
                Some(user) => Ok(Decision::Allowed {
                    owner: Owner::Linked(user),
                }),
                None => Ok(unlinked(
                    format!(
                        "{edition} account {} ({}) is not linked to a user",
                        sender.id, sender.name
                    ),
                    request.provider,
                    &site,
                    sender,
                )),
            }
        }
        Place::LinearIssue {
            organization_id, ..
        } => {
            if !providers
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

/// The user of a GitHub/GitLab account, created (and linked) on its first request.
pub async fn account_user(
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
