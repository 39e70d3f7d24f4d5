//! Which repository a request from Slack, Jira or Linear works on.
//!
//! A repository named in the request (`owner/name`, `group/subgroup/project`, or a GitHub or
//! GitLab link) is used when the requester may push to it through their linked GitHub or GitLab
//! account (write or admin on GitHub, Developer or more on GitLab), the same rule as a mention on
//! the repository itself. A repository an administrator configured (a Slack channel's default, a
//! ticket project's route) needs no such check. When none is named and none is configured, the
//! agent asks, offering the repositories the requester may push to.
//!
//! Every lookup here calls a provider: callers do it before they open a transaction.

use anyhow::Context;
use futures::StreamExt;

use crate::integrations::Providers;
use crate::integrations::gitlab;
use crate::integrations::request::{Place, Provider, RepositoryRef, Request};
use crate::storage::Db;

/// A repository named in a message: its path and, when a link says so, its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub path: String,
    /// `github` or `gitlab`; `None` when the text does not say.
    pub host: Option<&'static str>,
}

/// At most this many names of one message are looked up.
const MAX_NAMED: usize = 5;
/// The most repositories offered in a menu: Slack allows 100 options, one is "No repository".
pub const MAX_CHOICES: usize = 99;
/// The most permission checks one listing makes.
const MAX_CHECKS: usize = 200;
/// Permission checks in flight at once.
const CHECKS_AT_ONCE: usize = 8;

/// The web hosts of the configured GitHub and GitLab, to recognise their links.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    pub github: Vec<String>,
    pub gitlab: Vec<String>,
}

impl Hosts {
    /// github.com and gitlab.com, and the hosts of the configured API URLs (GitHub Enterprise's
    /// `api.` prefix dropped).
    pub fn of(github_api_host: &str, gitlab_api_host: &str) -> Hosts {
        let github = github_api_host
            .strip_prefix("api.")
            .unwrap_or(github_api_host);
        Hosts {
            github: vec!["github.com".into(), github.to_ascii_lowercase()],
            gitlab: vec!["gitlab.com".into(), gitlab_api_host.to_ascii_lowercase()],
        }
    }

    fn host_of(&self, host: &str) -> Option<&'static str> {
        let host = host.to_ascii_lowercase();
        let host = host.strip_prefix("www.").unwrap_or(&host);
        if self.github.iter().any(|h| h == host) {
            Some("github")
        } else if self.gitlab.iter().any(|h| h == host) {
            Some("gitlab")
        } else {
            None
        }
    }
}

/// The repositories `text` names, in the order written: links first understood by their host,
/// then words shaped like `owner/name`. At most [`MAX_NAMED`]; a name that turns out not to be
/// a repository (`src/lib.rs`) is dropped when it is looked up.
pub fn named_in(text: &str, hosts: &Hosts) -> Vec<Named> {
    let mut found: Vec<(usize, Named)> = Vec::new();
    let mut rest = String::with_capacity(text.len());
    let mut cursor = 0;
    while let Some(start) = next_link(text, cursor) {
        rest.push_str(&text[cursor..start]);
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || "<>|()\"'`[]".contains(c))
            .map_or(text.len(), |n| start + n);
        if let Some(named) = link_repository(&text[start..end], hosts) {
            found.push((start, named));
        }
        rest.push(' ');
        rest.extend(std::iter::repeat_n(' ', end - start - 1));
        cursor = end;
    }
    rest.push_str(&text[cursor..]);
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || "/-_.".contains(c);
    let mut word_start = None;
    for (at, c) in rest
        .char_indices()
        .chain(std::iter::once((rest.len(), ' ')))
    {
        if is_name_char(c) {
            word_start.get_or_insert(at);
            continue;
        }
        let Some(start) = word_start.take() else {
            continue;
        };
        let word = rest[start..at].trim_end_matches('.');
        let word = word.strip_suffix(".git").unwrap_or(word);
        if word.starts_with(['/', '.', '-']) || !word.contains('/') {
            continue;
        }
        if crate::integrations::is_repository_path(word, 20) {
            found.push((
                start,
                Named {
                    path: word.to_string(),
                    host: None,
                },
            ));
        }
    }
    found.sort_by_key(|(at, _)| *at);
    let mut names: Vec<Named> = Vec::new();
    for (_, named) in found {
        let seen = names
            .iter()
            .any(|n| n.path.eq_ignore_ascii_case(&named.path));
        if !seen {
            names.push(named);
        }
        if names.len() == MAX_NAMED {
            break;
        }
    }
    names
}

fn next_link(text: &str, from: usize) -> Option<usize> {
    let rest = &text[from..];
    [rest.find("https://"), rest.find("http://")]
        .into_iter()
        .flatten()
        .min()
        .map(|at| from + at)
}

/// The repository of a GitHub or GitLab link: `https://github.com/owner/name/pull/3` is
/// `owner/name`; `https://gitlab.com/group/sub/project/-/issues/1` is `group/sub/project`.
fn link_repository(link: &str, hosts: &Hosts) -> Option<Named> {
    let url = url::Url::parse(link.trim_end_matches(['.', ',', ';', ':', '!', '?'])).ok()?;
    let host = hosts.host_of(url.host_str()?)?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let parts: Vec<&str> = match host {
        "github" => segments.into_iter().take(2).collect(),
        _ => segments.into_iter().take_while(|s| *s != "-").collect(),
    };
    let path = parts.join("/");
    let path = path.strip_suffix(".git").unwrap_or(&path);
    crate::integrations::is_repository_path(path, 20).then(|| Named {
        path: path.to_string(),
        host: Some(host),
    })
}

/// The requester's linked GitHub and GitLab accounts (their provider ids).
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub github: Option<String>,
    pub gitlab: Option<String>,
}

/// What a named repository is to the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Usable(RepositoryRef),
    /// It exists, but they may not work on it: why, in words for them.
    Refused(String),
    /// No such repository reachable by the service.
    Unknown,
}

/// What to do about the repository of a conversation from Slack, Jira or Linear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Work on this repository (or without one), decided `how`.
    Work {
        repository: Option<RepositoryRef>,
        how: &'static str,
    },
    /// Ask which one, offering `choices`; `problems` says why named ones cannot be used.
    Ask {
        choices: Vec<RepositoryRef>,
        problems: Vec<String>,
    },
    /// Nothing named: keep waiting for the answer to the earlier question.
    KeepWaiting,
}

impl Providers {
    fn hosts(&self) -> Hosts {
        Hosts::of(&self.github_host, &self.gitlab_host)
    }

    /// The GitHub and GitLab accounts linked to user `user_id`.
    pub async fn accounts_of(&self, db: &Db, user_id: &str) -> anyhow::Result<Accounts> {
        let links = db.user_links(Some(user_id)).await?;
        let find = |provider: &str, host: &str| {
            links
                .iter()
                .find(|l| l.provider == provider && l.workspace == host)
                .map(|l| l.external_id.clone())
        };
        Ok(Accounts {
            github: find("github", &self.github_host),
            gitlab: find("gitlab", &self.gitlab_host),
        })
    }

    /// Whether the requester with `accounts` may work on `named`.
    pub async fn check_named(&self, accounts: &Accounts, named: &Named) -> anyhow::Result<Verdict> {
        let nested = named.path.matches('/').count() > 1;
        let hosts: &[&str] = match named.host {
            Some("github") => &["github"],
            Some(_) => &["gitlab"],
            None if nested => &["gitlab"],
            None => &["github", "gitlab"],
        };
        for host in hosts {
            let verdict = match *host {
                "github" if self.github.is_some() => {
                    self.github_verdict(accounts, &named.path).await?
                }
                "gitlab" if self.gitlab.is_some() => {
                    self.gitlab_verdict(accounts, &named.path).await?
                }
                _ => Verdict::Unknown,
            };
            if verdict != Verdict::Unknown {
                return Ok(verdict);
            }
        }
        Ok(Verdict::Unknown)
    }

    async fn github_verdict(&self, accounts: &Accounts, path: &str) -> anyhow::Result<Verdict> {
        let Some(github) = &self.github else {
            return Ok(Verdict::Unknown);
        };
        let Some(installation_id) = github.repository_installation(path).await? else {
            return Ok(Verdict::Unknown);
        };
        let Some(account) = &accounts.github else {
            return Ok(Verdict::Refused(format!(
                "{path}: your OpenHands user has no GitHub account linked (sign in to the dashboard with GitHub to link it)"
            )));
        };
        let login = github.login_of(installation_id, account).await?;
        let permission = github.permission(installation_id, path, &login).await?;
        Ok(if matches!(permission.as_str(), "admin" | "write") {
            Verdict::Usable(RepositoryRef::Github {
                installation_id,
                repository: path.to_string(),
            })
        } else {
            Verdict::Refused(format!(
                "{path}: {login} has `{permission}` permission there; write or admin is needed"
            ))
        })
    }

    async fn gitlab_verdict(&self, accounts: &Accounts, path: &str) -> anyhow::Result<Verdict> {
        let Some(gitlab) = &self.gitlab else {
            return Ok(Verdict::Unknown);
        };
        let project_id = match gitlab.project_by_path(path).await {
            Ok((id, _)) => id,
            Err(error) if is_not_found(&error) => return Ok(Verdict::Unknown),
            Err(error) => return Err(error),
        };
        let Some(account) = &accounts.gitlab else {
            return Ok(Verdict::Refused(format!(
                "{path}: your OpenHands user has no GitLab account linked (ask an administrator to link it)"
            )));
        };
        let level = gitlab.access_level(project_id, account).await?;
        Ok(if level >= gitlab::DEVELOPER {
            Verdict::Usable(RepositoryRef::Gitlab {
                project_id,
                path: path.to_string(),
            })
        } else {
            Verdict::Refused(format!(
                "{path}: your GitLab account has access level {level} there; Developer ({}) or higher is needed",
                gitlab::DEVELOPER
            ))
        })
    }

    /// A repository an administrator configured, found through the GitHub App or GITLAB_TOKEN
    /// (no requester's permission is checked); `None` when the service cannot reach it.
    pub async fn configured_repository(
        &self,
        path: &str,
        host: &str,
    ) -> anyhow::Result<Option<RepositoryRef>> {
        match host {
            "gitlab" => {
                let gitlab = self
                    .gitlab
                    .as_ref()
                    .context("GitLab repositories need GITLAB_TOKEN")?;
                match gitlab.project_by_path(path).await {
                    Ok((project_id, _)) => Ok(Some(RepositoryRef::Gitlab {
                        project_id,
                        path: path.to_string(),
                    })),
                    Err(error) if is_not_found(&error) => Ok(None),
                    Err(error) => Err(error),
                }
            }
            _ => {
                let github = self.github.as_ref().context(
                    "GitHub repositories need the GitHub App (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY)",
                )?;
                Ok(github
                    .repository_installation(path)
                    .await?
                    .map(|installation_id| RepositoryRef::Github {
                        installation_id,
                        repository: path.to_string(),
                    }))
            }
        }
    }

    /// The repositories the requester may push to that the service reaches, those whose
    /// names share a word with `text` first (only those, when some do), at most
    /// [`MAX_CHOICES`].
    pub async fn choices(
        &self,
        accounts: &Accounts,
        text: &str,
    ) -> anyhow::Result<Vec<RepositoryRef>> {
        let words = words_of(text);
        let mut candidates: Vec<(bool, RepositoryRef)> = Vec::new();
        let mut github_login = None;
        if let (Some(github), Some(account)) = (&self.github, &accounts.github) {
            for installation_id in github.installations().await? {
                for repository in github.installation_repositories(installation_id).await? {
                    if github_login.is_none() {
                        github_login = Some(github.login_of(installation_id, account).await?);
                    }
                    candidates.push((
                        matches_words(&repository, &words),
                        RepositoryRef::Github {
                            installation_id,
                            repository,
                        },
                    ));
                }
            }
        }
        if let (Some(gitlab), Some(_)) = (&self.gitlab, &accounts.gitlab) {
            for (project_id, path) in gitlab.projects(None).await? {
                candidates.push((
                    matches_words(&path, &words),
                    RepositoryRef::Gitlab { project_id, path },
                ));
            }
        }
        if candidates.iter().any(|(matched, _)| *matched) {
            candidates.retain(|(matched, _)| *matched);
        }
        candidates.sort_by(|(_, a), (_, b)| {
            (a.git_provider(), a.name().to_ascii_lowercase())
                .cmp(&(b.git_provider(), b.name().to_ascii_lowercase()))
        });
        candidates.truncate(MAX_CHECKS);
        let login = github_login.as_deref();
        let checked: Vec<Option<RepositoryRef>> = futures::stream::iter(candidates)
            .map(|(_, repository)| async move {
                match self.may_push(accounts, login, &repository).await {
                    Ok(true) => Some(repository),
                    Ok(false) => None,
                    Err(error) => {
                        tracing::warn!(repository = repository.name(), error = %format!("{error:#}"), "cannot check a permission; the repository is left out of the choices");
                        None
                    }
                }
            })
            .buffered(CHECKS_AT_ONCE)
            .collect()
            .await;
        Ok(checked.into_iter().flatten().take(MAX_CHOICES).collect())
    }

    async fn may_push(
        &self,
        accounts: &Accounts,
        github_login: Option<&str>,
        repository: &RepositoryRef,
    ) -> anyhow::Result<bool> {
        match repository {
            RepositoryRef::Github {
                installation_id,
                repository,
            } => match (&self.github, github_login) {
                (Some(github), Some(login)) => {
                    let permission = github
                        .permission(*installation_id, repository, login)
                        .await?;
                    Ok(matches!(permission.as_str(), "admin" | "write"))
                }
                _ => Ok(false),
            },
            RepositoryRef::Gitlab { project_id, .. } => match (&self.gitlab, &accounts.gitlab) {
                (Some(gitlab), Some(account)) => {
                    Ok(gitlab.access_level(*project_id, account).await? >= gitlab::DEVELOPER)
                }
                _ => Ok(false),
            },
        }
    }

    /// What to do about the repository of a new conversation from Slack, Jira or Linear:
    /// the one the request names, else the configured one, else ask.
    pub async fn plan_new(
        &self,
        db: &Db,
        request: &Request,
        owner_id: &str,
    ) -> anyhow::Result<Plan> {
        let accounts = self.accounts_of(db, owner_id).await?;
        let texts = [
            Some(request.text.as_str()),
            request.title.as_deref(),
            request.body.as_deref(),
        ];
        let text = texts.into_iter().flatten().collect::<Vec<_>>().join("\n");
        let (usable, problems) = self.usable_named(request, &accounts, &text).await?;
        match usable.len() {
            1 => {
                return Ok(Plan::Work {
                    repository: usable.into_iter().next(),
                    how: "named",
                });
            }
            0 => {}
            _ => {
                return Ok(Plan::Ask {
                    choices: usable,
                    problems,
                });
            }
        }
        if problems.is_empty()
            && let Some((repository, how)) = self.configured_default(db, request).await?
        {
            return Ok(Plan::Work {
                repository: Some(repository),
                how,
            });
        }
        let choices = self.choices(&accounts, &text).await?;
        if choices.is_empty() && problems.is_empty() {
            // Nothing to offer: asking would only offer "No repository".
            return Ok(Plan::Work {
                repository: None,
                how: "none",
            });
        }
        Ok(Plan::Ask { choices, problems })
    }

    /// What a new message of a conversation that waits for its repository says about it: the
    /// one it names, or a new question when what it names cannot be used (or it addressed the
    /// agent without naming one); else keep waiting.
    pub async fn plan_answer(
        &self,
        db: &Db,
        request: &Request,
        owner_id: &str,
    ) -> anyhow::Result<Plan> {
        if asks_for_no_repository(&request.text) {
            return Ok(Plan::Work {
                repository: None,
                how: "named",
            });
        }
        let accounts = self.accounts_of(db, owner_id).await?;
        let (usable, problems) = self.usable_named(request, &accounts, &request.text).await?;
        if usable.len() == 1 {
            return Ok(Plan::Work {
                repository: usable.into_iter().next(),
                how: "named",
            });
        }
        if !usable.is_empty() {
            return Ok(Plan::Ask {
                choices: usable,
                problems,
            });
        }
        let addressed = request.trigger != crate::integrations::request::Trigger::ThreadReply;
        if problems.is_empty() && !addressed {
            return Ok(Plan::KeepWaiting);
        }
        let choices = self.choices(&accounts, &request.text).await?;
        Ok(Plan::Ask { choices, problems })
    }

    /// A repository picked from a menu (`value` as [`RepositoryRef::choice_value`] wrote it),
    /// checked again for the one who picked it.
    pub async fn plan_choice(&self, db: &Db, owner_id: &str, value: &str) -> anyhow::Result<Plan> {
        let chosen = crate::integrations::request::parse_choice_value(value)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some((host, path)) = chosen else {
            return Ok(Plan::Work {
                repository: None,
                how: "chosen",
            });
        };
        let accounts = self.accounts_of(db, owner_id).await?;
        let named = Named {
            path: path.to_string(),
            host: Some(host),
        };
        Ok(match self.check_named(&accounts, &named).await? {
            Verdict::Usable(repository) => Plan::Work {
                repository: Some(repository),
                how: "chosen",
            },
            Verdict::Refused(reason) => Plan::Ask {
                choices: self.choices(&accounts, "").await?,
                problems: vec![reason],
            },
            Verdict::Unknown => Plan::Ask {
                choices: self.choices(&accounts, "").await?,
                problems: vec![format!("{path} cannot be reached by the service")],
            },
        })
    }

    /// The named repositories the requester may use, and why others cannot be used. A
    /// configured repository (a ticket route, a channel's default) is used without a check.
    async fn usable_named(
        &self,
        request: &Request,
        accounts: &Accounts,
        text: &str,
    ) -> anyhow::Result<(Vec<RepositoryRef>, Vec<String>)> {
        let mut usable: Vec<RepositoryRef> = Vec::new();
        let mut problems = Vec::new();
        for named in named_in(text, &self.hosts()) {
            let configured = self
                .ticket_repositories
                .iter()
                .any(|route| route.repository.eq_ignore_ascii_case(&named.path))
                && request.ticket_key().is_some();
            let verdict = if configured {
                match self.configured_repository(&named.path, "github").await? {
                    Some(repository) => Verdict::Usable(repository),
                    None => Verdict::Unknown,
                }
            } else {
                self.check_named(accounts, &named).await?
            };
            match verdict {
                Verdict::Usable(repository) => {
                    if !usable.contains(&repository) {
                        usable.push(repository);
                    }
                }
                Verdict::Refused(reason) => problems.push(reason),
                Verdict::Unknown => {}
            }
        }
        Ok((usable, problems))
    }

    /// The repository an administrator set for the request's Slack channel or ticket project.
    async fn configured_default(
        &self,
        db: &Db,
        request: &Request,
    ) -> anyhow::Result<Option<(RepositoryRef, &'static str)>> {
        match (&request.place, request.provider) {
            (Place::SlackThread { channel, .. }, Provider::Slack) => {
                let set = db.channel_repository(channel).await?;
                let route = match set {
                    Some(set) => Some((
                        set.repository,
                        if set.git_provider == "gitlab" {
                            "gitlab"
                        } else {
                            "github"
                        },
                    )),
                    None => self
                        .channel_repositories
                        .iter()
                        .find(|r| r.channel.eq_ignore_ascii_case(channel))
                        .map(|r| (r.repository.clone(), r.git_provider)),
                };
                let Some((path, host)) = route else {
                    return Ok(None);
                };
                let found = self.configured_repository(&path, host).await?;
                if found.is_none() {
                    tracing::warn!(%channel, repository = %path, "the service cannot reach the channel's repository");
                }
                Ok(found.map(|r| (r, "channel")))
            }
            _ => {
                let Some(key) = request.ticket_key() else {
                    return Ok(None);
                };
                let prefix = key.split('-').next().unwrap_or(key);
                let Some(route) = self
                    .ticket_repositories
                    .iter()
                    .find(|route| route.key.eq_ignore_ascii_case(prefix))
                else {
                    return Ok(None);
                };
                let found = self
                    .configured_repository(&route.repository, "github")
                    .await?;
                if found.is_none() {
                    tracing::warn!(repository = %route.repository, ticket = key, "the GitHub App is not installed on the ticket's repository");
                }
                Ok(found.map(|r| (r, "ticket_route")))
            }
        }
    }
}

/// Whether an answer to the question which repository to use says "no repository" (the
/// words the question offers on a ticket).
fn asks_for_no_repository(text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.windows(2).any(|pair| pair == ["no", "repository"])
}

/// Words of a message that may name a repository: letters and digits, three or more, minus
/// the commonest English words.
fn words_of(text: &str) -> Vec<String> {
    const COMMON: &[&str] = &[
        "the",
        "and",
        "for",
        "with",
        "this",
        "that",
        "please",
        "can",
        "you",
        "fix",
        "add",
        "our",
        "from",
        "into",
        "are",
        "not",
        "but",
        "all",
        "any",
        "its",
        "has",
        "have",
        "was",
        "will",
        "would",
        "could",
        "should",
        "what",
        "when",
        "where",
        "which",
        "who",
        "how",
        "why",
        "make",
        "some",
        "there",
        "here",
        "openhands",
    ];
    let mut words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !COMMON.contains(&w.as_str()))
        .collect();
    words.sort();
    words.dedup();
    words
}

fn matches_words(name: &str, words: &[String]) -> bool {
    let name = name.to_lowercase();
    words.iter().any(|w| name.contains(w.as_str()))
}

/// Whether a provider answered 404 for what `error` asked.
fn is_not_found(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<reqwest::Error>()
            .and_then(reqwest::Error::status)
            == Some(reqwest::StatusCode::NOT_FOUND)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<(String, Option<&'static str>)> {
        let hosts = Hosts::of("api.github.com", "gitlab.example.com");
        named_in(text, &hosts)
            .into_iter()
            .map(|n| (n.path, n.host))
            .collect()
    }

    #[test]
    fn repositories_are_named_by_path_or_link() {
        assert_eq!(
            paths("please add a hello script to Codertocat/Hello-World"),
            vec![("Codertocat/Hello-World".to_string(), None)]
        );
        assert_eq!(
            paths("fix it in acme/api."),
            vec![("acme/api".to_string(), None)]
        );
        assert_eq!(
            paths("see https://github.com/acme/api/pull/3 and acme/api"),
            vec![("acme/api".to_string(), Some("github"))]
        );
        // Slack writes links as <url|label>.
        assert_eq!(
            paths("<https://gitlab.example.com/group/sub/project/-/issues/1|the issue>"),
            vec![("group/sub/project".to_string(), Some("gitlab"))]
        );
        assert_eq!(
            paths("work on platform/infra/deploy please"),
            vec![("platform/infra/deploy".to_string(), None)]
        );
        assert_eq!(
            paths("clone https://gitlab.com/acme/web.git"),
            vec![("acme/web".to_string(), Some("gitlab"))]
        );
        // Longer names that start like another are names of their own.
        assert_eq!(
            paths("acme/api-docs acme/api.js xacme/api acme/infra_old"),
            vec![
                ("acme/api-docs".to_string(), None),
                ("acme/api.js".to_string(), None),
                ("xacme/api".to_string(), None),
                ("acme/infra_old".to_string(), None),
            ]
        );
        // Links to other hosts, absolute and relative paths name nothing.
        assert!(paths("read https://example.com/acme/api first").is_empty());
        assert!(paths("the file /workspace/repo/README and ./src/lib").is_empty());
        assert!(paths("no repository at all").is_empty());
        // File paths are candidates too; looking them up drops them.
        assert_eq!(
            paths("src/lib.rs in acme/api"),
            vec![
                ("src/lib.rs".to_string(), None),
                ("acme/api".to_string(), None)
            ]
        );
    }

    #[test]
    fn at_most_a_few_names_are_looked_up() {
        let text = (0..20)
            .map(|n| format!("o/r{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(paths(&text).len(), MAX_NAMED);
        assert_eq!(paths("a/b A/B a/b").len(), 1);
    }

    #[test]
    fn no_repository_is_an_answer() {
        assert!(asks_for_no_repository("@openhands no repository"));
        assert!(asks_for_no_repository("No Repository, please."));
        assert!(!asks_for_no_repository("no repositories here: acme/api"));
        assert!(!asks_for_no_repository("the repository is acme/api"));
    }

    #[test]
    fn words_filter_the_choices() {
        let words = words_of("Please fix the flaky test in our API service");
        assert_eq!(words, vec!["api", "flaky", "service", "test"]);
        assert!(matches_words("acme/api", &words));
        assert!(!matches_words("acme/web", &words));
    }
}
