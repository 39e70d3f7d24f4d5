//! The settings of the providers that send work: which are enabled (by their webhook
//! secrets), how to reach their APIs, and where Slack and ticket requests work by default.

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use super::signature::WebhookSecrets;
use crate::setting::{ConfigError, Secret, check_url};

/// The providers that send work: each is enabled by its webhook secret, and talks back
/// through its API settings.
#[derive(Debug, Clone, Args)]
pub struct ProviderConfig {
    /// Where people reach this service's dashboard: the links posted back to providers.
    #[arg(
        long,
        env = "OPENHANDS_PUBLIC_URL",
        default_value = DEFAULT_PUBLIC_URL,
        global = true
    )]
    pub public_url: String,
    /// Whether pull/merge requests the agent opens are drafts (`true`) or ready for review.
    #[arg(long, env = "OPENHANDS_DRAFT_PULL_REQUESTS", default_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set, global = true)]
    pub draft_pull_requests: bool,
    /// The GitHub repository of each Jira project / Linear team, comma-separated
    /// `KEY=owner/name` (the key that starts its tickets' identifiers, e.g. `ENG=acme/api`).
    /// A ticket may name another of these repositories to work on it instead.
    #[arg(long, env = "OPENHANDS_TICKET_REPOSITORIES", value_delimiter = ',', value_parser = parse_ticket_repository, global = true)]
    pub ticket_repositories: Vec<TicketRoute>,
    /// The repository of each Slack channel's requests that name none, comma-separated
    /// `CHANNEL=owner/name` (`CHANNEL=gitlab:group/project` for GitLab; a nested group means
    /// GitLab). Administrators may set more through the admin API, which wins.
    #[arg(long, env = "SLACK_CHANNEL_REPOSITORIES", value_delimiter = ',', value_parser = parse_channel_repository, global = true)]
    pub slack_channel_repositories: Vec<ChannelRoute>,
    /// The mention that asks the agent for something, with its `@`.
    #[arg(
        long,
        env = "MENTION_HANDLE",
        default_value = "@openhands",
        global = true
    )]
    pub mention_handle: String,
    /// The label that asks the agent for something when added to an issue, PR/MR or ticket.
    #[arg(
        long,
        env = "TRIGGER_LABEL",
        default_value = "openhands",
        global = true
    )]
    pub trigger_label: String,

    /// GitHub webhook secrets, comma-separated (several while rotating); enables GitHub.
    #[arg(
        long,
        env = "GITHUB_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub github_webhook_secret: Option<WebhookSecrets>,
    /// The GitHub App's id (to check senders' permissions, read comments and diffs, and get
    /// clone tokens as the app).
    #[arg(long, env = "GITHUB_APP_ID", global = true)]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key: the PEM text, or the path of a PEM file.
    #[arg(
        long,
        env = "GITHUB_APP_PRIVATE_KEY",
        hide_env_values = true,
        global = true
    )]
    pub github_app_private_key: Option<Secret>,
    /// GitHub's REST API (GitHub Enterprise: `https://HOST/api/v3`).
    #[arg(
        long,
        env = "GITHUB_API_URL",
        default_value = "https://api.github.com",
        global = true
    )]
    pub github_api_url: String,

    /// GitLab webhook secret tokens, comma-separated; enables GitLab.
    #[arg(
        long,
        env = "GITLAB_WEBHOOK_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub gitlab_webhook_token: Option<WebhookSecrets>,
    /// GitLab's REST API (self-hosted: `https://HOST/api/v4`).
    #[arg(
        long,
        env = "GITLAB_API_URL",
        default_value = "https://gitlab.com/api/v4",
        global = true
    )]
    pub gitlab_api_url: String,
    /// A GitLab access token with `api` scope (to check members' access levels, read comments
    /// and diffs, and clone).
    #[arg(long, env = "GITLAB_TOKEN", hide_env_values = true, global = true)]
    pub gitlab_token: Option<Secret>,

    /// Slack signing secrets, comma-separated; enables Slack.
    #[arg(
        long,
        env = "SLACK_SIGNING_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub slack_signing_secret: Option<WebhookSecrets>,
    /// The Slack workspaces (team ids, comma-separated) whose requests are served.
    #[arg(long, env = "SLACK_TEAM_ID", value_delimiter = ',', global = true)]
    pub slack_team_id: Vec<String>,
    /// The Slack bot token (`xoxb-…`).
    #[arg(long, env = "SLACK_BOT_TOKEN", hide_env_values = true, global = true)]
    pub slack_bot_token: Option<Secret>,
    /// Slack's Web API.
    #[arg(
        long,
        env = "SLACK_API_URL",
        default_value = "https://slack.com/api",
        global = true
    )]
    pub slack_api_url: String,

    /// Jira webhook secrets, comma-separated; enables Jira.
    #[arg(
        long,
        env = "JIRA_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jira_webhook_secret: Option<WebhookSecrets>,
    /// The Jira Cloud site whose requests are served, e.g. `https://example.atlassian.net`.
    #[arg(long, env = "JIRA_BASE_URL", global = true)]
    pub jira_base_url: Option<String>,
    /// The Jira account that comments (with JIRA_API_TOKEN).
    #[arg(long, env = "JIRA_EMAIL", global = true)]
    pub jira_email: Option<String>,
    #[arg(long, env = "JIRA_API_TOKEN", hide_env_values = true, global = true)]
    pub jira_api_token: Option<Secret>,
    /// The Jira account id of that account, which people pick from Jira's mention menu
    /// (`[~accountid:…]` in a comment asks as `@openhands` does). Read from Jira's
    /// `/rest/api/3/myself` at start-up when unset.
    #[arg(long, env = "JIRA_ACCOUNT_ID", global = true)]
    pub jira_account_id: Option<String>,

    /// Jira Data Center webhook secrets, comma-separated; enables Jira Data Center.
    #[arg(
        long,
        env = "JIRA_DC_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jira_dc_webhook_secret: Option<WebhookSecrets>,
    /// The Jira Data Center site whose requests are served, with its context path if it has
    /// one, e.g. `https://jira.example.com` or `https://example.com/jira`.
    #[arg(long, env = "JIRA_DC_BASE_URL", global = true)]
    pub jira_dc_base_url: Option<String>,
    /// A personal access token of the Data Center account that comments (REST API v2).
    #[arg(long, env = "JIRA_DC_TOKEN", hide_env_values = true, global = true)]
    pub jira_dc_token: Option<Secret>,
    /// That account's user name, which people pick from the mention menu (`[~name]` in a
    /// comment asks as `@openhands` does). Read from `/rest/api/2/myself` at start-up when
    /// unset.
    #[arg(long, env = "JIRA_DC_USERNAME", global = true)]
    pub jira_dc_username: Option<String>,

    /// Linear webhook signing secrets, comma-separated; enables Linear.
    #[arg(
        long,
        env = "LINEAR_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub linear_webhook_secret: Option<WebhookSecrets>,
    /// The Linear organizations (ids, comma-separated) whose requests are served.
    #[arg(
        long,
        env = "LINEAR_ORGANIZATION_ID",
        value_delimiter = ',',
        global = true
    )]
    pub linear_organization_id: Vec<String>,
    /// A Linear API key (to comment on issues).
    #[arg(long, env = "LINEAR_API_KEY", hide_env_values = true, global = true)]
    pub linear_api_key: Option<Secret>,
    /// Linear's GraphQL API.
    #[arg(
        long,
        env = "LINEAR_API_URL",
        default_value = "https://api.linear.app/graphql",
        global = true
    )]
    pub linear_api_url: String,
}

/// Where the tickets of one Jira project or Linear team are worked on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRoute {
    /// The project's or team's key, as in `ENG-42`.
    pub key: String,
    /// The GitHub repository, `owner/name`.
    pub repository: String,
}

fn parse_ticket_repository(value: &str) -> Result<TicketRoute, String> {
    let expected = "expected KEY=owner/name, e.g. ENG=acme/api";
    let (key, repository) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}` has no `=`: {expected}"))?;
    let key = key.trim();
    let repository = repository.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{key}` is not a project or team key (letters, digits, `_`): {expected}"
        ));
    }
    if super::is_repository_path(repository, 2) {
        Ok(TicketRoute {
            key: key.to_ascii_uppercase(),
            repository: repository.to_string(),
        })
    } else {
        Err(format!(
            "`{repository}` is not a GitHub repository: {expected}"
        ))
    }
}

/// The repository a Slack channel's requests work on when they name none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRoute {
    /// The channel's id, e.g. `C0123ABCD`.
    pub channel: String,
    pub repository: String,
    /// `github` or `gitlab`.
    pub git_provider: &'static str,
}

/// A repository as people write it in settings: `owner/name` (GitHub), `group/sub/project`
/// (GitLab, for its nested group), or either with a `github:` / `gitlab:` prefix. Returns the
/// path and its host.
pub fn parse_repository_setting(value: &str) -> Result<(String, &'static str), String> {
    let value = value.trim();
    let (host, path) = match value.split_once(':') {
        Some(("github", path)) => (Some("github"), path.trim()),
        Some(("gitlab", path)) => (Some("gitlab"), path.trim()),
        Some((other, _)) => {
            return Err(format!(
                "`{other}:` is not a repository host; write github: or gitlab: (or nothing, for GitHub)"
            ));
        }
        None => (None, value),
    };
    if !super::is_repository_path(path, 20) {
        return Err(format!(
            "`{path}` is not a repository path (owner/name, or group/subgroup/project)"
        ));
    }
    let nested = path.matches('/').count() > 1;
    let host = match host {
        Some("github") if nested => {
            return Err(format!(
                "`{path}` has more than two parts, so it cannot be a GitHub repository"
            ));
        }
        Some(host) => host,
        None if nested => "gitlab",
        None => "github",
    };
    Ok((path.to_string(), host))
}

fn parse_channel_repository(value: &str) -> Result<ChannelRoute, String> {
    let expected = "expected CHANNEL=owner/name, e.g. C0123ABCD=acme/api";
    let (channel, repository) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}` has no `=`: {expected}"))?;
    let channel = channel.trim();
    if channel.is_empty() || !channel.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "`{channel}` is not a Slack channel id (letters and digits, e.g. C0123ABCD): {expected}"
        ));
    }
    let (repository, git_provider) =
        parse_repository_setting(repository).map_err(|e| format!("{e}: {expected}"))?;
    Ok(ChannelRoute {
        channel: channel.to_ascii_uppercase(),
        repository,
        git_provider,
    })
}

/// Whether a provider's webhook secret is set (and not blank).
fn enabled(secrets: &Option<WebhookSecrets>) -> bool {
    secrets.as_ref().is_some_and(|s| !s.is_empty())
}

/// OPENHANDS_PUBLIC_URL when it is not set: the default address of the HTTP role.
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:3000";

/// A provider setting that may be stored from the dashboard instead of the environment,
/// named by the environment variable it stands in for.
pub struct StorableSetting {
    pub name: &'static str,
    /// The provider it belongs to (`github`, `gitlab`, `slack`, `jira`, `jira-dc`, `linear`).
    pub provider: &'static str,
    /// What it is, for the setup page's form.
    pub label: &'static str,
    /// Secrets are never shown back, only whether they are set.
    pub secret: bool,
    /// Its value in `config`, `None` when unset.
    value: fn(&ProviderConfig) -> Option<String>,
    /// Sets it in `config` from text; what is wrong with the text otherwise.
    apply: fn(&mut ProviderConfig, &str) -> Result<(), String>,
}

impl StorableSetting {
    /// Its value in `config`, `None` when unset or blank.
    pub fn value_in(&self, config: &ProviderConfig) -> Option<String> {
        (self.value)(config).filter(|v| !v.trim().is_empty())
    }

    /// The value shown back: a secret's is never shown.
    pub fn shown_in(&self, config: &ProviderConfig) -> Option<String> {
        if self.secret {
            None
        } else {
            self.value_in(config)
        }
    }
}

fn list_setting(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn joined(values: &[String]) -> Option<String> {
    (!values.is_empty()).then(|| values.join(","))
}

/// A secret's text, or `None`: only whether it is set matters here.
fn secret_text<T>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(|_| "set".to_string())
}

fn text_setting(value: &str) -> Option<String> {
    Some(value.trim().to_string())
}

/// Every provider setting the dashboard can store; others come from the environment only.
pub const STORABLE_SETTINGS: &[StorableSetting] = &[
    StorableSetting {
        name: "GITHUB_APP_ID",
        provider: "github",
        label: "App ID",
        secret: false,
        value: |c| c.github_app_id.map(|id| id.to_string()),
        apply: |c, v| {
            c.github_app_id = Some(
                v.trim()
                    .parse()
                    .map_err(|_| "is not a number (the App ID on the app's settings page)")?,
            );
            Ok(())
        },
    },
    StorableSetting {
        name: "GITHUB_APP_PRIVATE_KEY",
        provider: "github",
        label: "Private key (PEM)",
        secret: true,
        value: |c| secret_text(&c.github_app_private_key),
        apply: |c, v| {
            let Ok(key) = v.trim().parse();
            c.github_app_private_key = Some(key);
            Ok(())
        },
    },
    StorableSetting {
        name: "GITHUB_WEBHOOK_SECRET",
        provider: "github",
        label: "Webhook secret",
        secret: true,
        value: |c| secret_text(&c.github_webhook_secret),
        apply: |c, v| {
            let Ok(secrets) = v.trim().parse();
            c.github_webhook_secret = Some(secrets);
            Ok(())
        },
    },
    StorableSetting {
        name: "GITLAB_TOKEN",
        provider: "gitlab",
        label: "Access token (api scope)",
        secret: true,
        value: |c| secret_text(&c.gitlab_token),
        apply: |c, v| {
            let Ok(token) = v.trim().parse();
            c.gitlab_token = Some(token);
            Ok(())
        },
    },
    StorableSetting {
        name: "GITLAB_WEBHOOK_TOKEN",
        provider: "gitlab",
        label: "Webhook secret token",
        secret: true,
        value: |c| secret_text(&c.gitlab_webhook_token),
        apply: |c, v| {
            let Ok(secrets) = v.trim().parse();
            c.gitlab_webhook_token = Some(secrets);
            Ok(())
        },
    },
    StorableSetting {
        name: "SLACK_TEAM_ID",
        provider: "slack",
        label: "Workspace IDs (T…, comma-separated)",
        secret: false,
        value: |c| joined(&c.slack_team_id),
        apply: |c, v| {
            c.slack_team_id = list_setting(v);
            Ok(())
        },
    },
    StorableSetting {
        name: "SLACK_BOT_TOKEN",
        provider: "slack",
        label: "Bot token (xoxb-…)",
        secret: true,
        value: |c| secret_text(&c.slack_bot_token),
        apply: |c, v| {
            let Ok(token) = v.trim().parse();
            c.slack_bot_token = Some(token);
            Ok(())
        },
    },
    StorableSetting {
        name: "SLACK_SIGNING_SECRET",
        provider: "slack",
        label: "Signing secret",
        secret: true,
        value: |c| secret_text(&c.slack_signing_secret),
        apply: |c, v| {
            let Ok(secrets) = v.trim().parse();
            c.slack_signing_secret = Some(secrets);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_BASE_URL",
        provider: "jira",
        label: "Site (https://…atlassian.net)",
        secret: false,
        value: |c| c.jira_base_url.clone(),
        apply: |c, v| {
            c.jira_base_url = text_setting(v);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_EMAIL",
        provider: "jira",
        label: "Account email",
        secret: false,
        value: |c| c.jira_email.clone(),
        apply: |c, v| {
            c.jira_email = text_setting(v);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_API_TOKEN",
        provider: "jira",
        label: "API token",
        secret: true,
        value: |c| secret_text(&c.jira_api_token),
        apply: |c, v| {
            let Ok(token) = v.trim().parse();
            c.jira_api_token = Some(token);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_WEBHOOK_SECRET",
        provider: "jira",
        label: "Webhook secret",
        secret: true,
        value: |c| secret_text(&c.jira_webhook_secret),
        apply: |c, v| {
            let Ok(secrets) = v.trim().parse();
            c.jira_webhook_secret = Some(secrets);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_DC_BASE_URL",
        provider: "jira-dc",
        label: "Site (https://jira.example.com)",
        secret: false,
        value: |c| c.jira_dc_base_url.clone(),
        apply: |c, v| {
            c.jira_dc_base_url = text_setting(v);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_DC_USERNAME",
        provider: "jira-dc",
        label: "Account username (optional)",
        secret: false,
        value: |c| c.jira_dc_username.clone(),
        apply: |c, v| {
            c.jira_dc_username = text_setting(v);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_DC_TOKEN",
        provider: "jira-dc",
        label: "Personal access token",
        secret: true,
        value: |c| secret_text(&c.jira_dc_token),
        apply: |c, v| {
            let Ok(token) = v.trim().parse();
            c.jira_dc_token = Some(token);
            Ok(())
        },
    },
    StorableSetting {
        name: "JIRA_DC_WEBHOOK_SECRET",
        provider: "jira-dc",
        label: "Webhook secret",
        secret: true,
        value: |c| secret_text(&c.jira_dc_webhook_secret),
        apply: |c, v| {
            let Ok(secrets) = v.trim().parse();
            c.jira_dc_webhook_secret = Some(secrets);
            Ok(())
        },
    },
    StorableSetting {
        name: "LINEAR_ORGANIZATION_ID",
        provider: "linear",
        label: "Organization IDs (comma-separated)",
        secret: false,
        value: |c| joined(&c.linear_organization_id),
        apply: |c, v| {
            c.linear_organization_id = list_setting(v);
            Ok(())
        },
    },
    StorableSetting {
        name: "LINEAR_API_KEY",
        provider: "linear",
        label: "API key",
        secret: true,
        value: |c| secret_text(&c.linear_api_key),
        apply: |c, v| {
            let Ok(key) = v.trim().parse();
            c.linear_api_key = Some(key);
            Ok(())
        },
    },
    StorableSetting {
        name: "LINEAR_WEBHOOK_SECRET",
        provider: "linear",
        label: "Webhook signing secret",
        secret: true,
        value: |c| secret_text(&c.linear_webhook_secret),
        apply: |c, v| {
            let Ok(secrets) = v.trim().parse();
            c.linear_webhook_secret = Some(secrets);
            Ok(())
        },
    },
];

/// The storable setting named `name`.
pub fn storable_setting(name: &str) -> Option<&'static StorableSetting> {
    STORABLE_SETTINGS.iter().find(|s| s.name == name)
}

impl ProviderConfig {
    /// These settings with the stored ones (`(name, plain value)`) filled in where the
    /// environment and flags left them unset: what is configured there wins. Unknown names
    /// are left out (a newer version may have stored them).
    pub fn with_stored(mut self, stored: &[(String, String)]) -> Result<Self, ConfigError> {
        let environment = self.clone();
        for (name, value) in stored {
            let Some(setting) = storable_setting(name) else {
                continue;
            };
            if setting.value_in(&environment).is_some() || value.trim().is_empty() {
                continue;
            }
            (setting.apply)(&mut self, value)
                .map_err(|e| ConfigError::new(format!("the stored {name} {e}")))?;
        }
        self.validate()?;
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::new(msg));
        let handle = self.mention_handle.trim();
        if !handle.starts_with('@') || handle.len() < 2 || handle.contains(char::is_whitespace) {
            return bad(format!(
                "MENTION_HANDLE `{}` must be an @ followed by a name without spaces, e.g. @openhands",
                self.mention_handle
            ));
        }
        if self.trigger_label.trim().is_empty() {
            return bad("TRIGGER_LABEL must not be empty".into());
        }
        check_url("OPENHANDS_PUBLIC_URL", &self.public_url)?;
        check_url("GITHUB_API_URL", &self.github_api_url)?;
        check_url("GITLAB_API_URL", &self.gitlab_api_url)?;
        check_url("SLACK_API_URL", &self.slack_api_url)?;
        check_url("LINEAR_API_URL", &self.linear_api_url)?;
        if let Some(url) = &self.jira_base_url {
            check_url("JIRA_BASE_URL", url)?;
        }
        if let Some(url) = &self.jira_dc_base_url {
            check_url("JIRA_DC_BASE_URL", url)?;
        }
        if self.github_app_private_key.is_some() {
            self.github_app_key_pem().map_err(ConfigError::new)?;
        }
        Ok(())
    }

    /// What workers need to act on the enabled providers' requests (the web process only
    /// verifies and stores deliveries, so it does not need these).
    pub fn check_for_workers(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::new(msg));
        if enabled(&self.github_webhook_secret)
            && (self.github_app_id.is_none() || self.github_app_private_key.is_none())
        {
            return bad("GITHUB_WEBHOOK_SECRET is set, so GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are needed too (the app checks each sender's permission on the repository)".into());
        }
        if enabled(&self.gitlab_webhook_token) && self.gitlab_token.is_none() {
            return bad("GITLAB_WEBHOOK_TOKEN is set, so GITLAB_TOKEN is needed too (it checks each sender's access level on the project)".into());
        }
        if enabled(&self.slack_signing_secret)
            && (self.slack_team_id.iter().all(|t| t.trim().is_empty())
                || self.slack_bot_token.is_none())
        {
            return bad("SLACK_SIGNING_SECRET is set, so SLACK_TEAM_ID (the workspaces to serve) and SLACK_BOT_TOKEN are needed too".into());
        }
        if enabled(&self.jira_webhook_secret)
            && (self.jira_base_url.is_none()
                || self.jira_email.is_none()
                || self.jira_api_token.is_none())
        {
            return bad("JIRA_WEBHOOK_SECRET is set, so JIRA_BASE_URL (the site to serve), JIRA_EMAIL and JIRA_API_TOKEN (the account that answers) are needed too".into());
        }
        if enabled(&self.jira_dc_webhook_secret)
            && (self.jira_dc_base_url.is_none() || self.jira_dc_token.is_none())
        {
            return bad("JIRA_DC_WEBHOOK_SECRET is set, so JIRA_DC_BASE_URL (the site to serve) and JIRA_DC_TOKEN (a personal access token of the account that answers) are needed too".into());
        }
        if enabled(&self.linear_webhook_secret)
            && self
                .linear_organization_id
                .iter()
                .all(|o| o.trim().is_empty())
        {
            return bad("LINEAR_WEBHOOK_SECRET is set, so LINEAR_ORGANIZATION_ID (the organizations to serve) is needed too".into());
        }
        if enabled(&self.linear_webhook_secret) && self.linear_api_key.is_none() {
            return bad("LINEAR_WEBHOOK_SECRET is set, so LINEAR_API_KEY (the user that answers) is needed too".into());
        }
        if !self.ticket_repositories.is_empty()
            && (self.github_app_id.is_none() || self.github_app_private_key.is_none())
        {
            return bad("OPENHANDS_TICKET_REPOSITORIES is set, so GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are needed too (tickets are worked on through the GitHub App)".into());
        }
        for route in &self.slack_channel_repositories {
            if route.git_provider == "github"
                && (self.github_app_id.is_none() || self.github_app_private_key.is_none())
            {
                return bad(format!(
                    "SLACK_CHANNEL_REPOSITORIES names the GitHub repository {}, so GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are needed too",
                    route.repository
                ));
            }
            if route.git_provider == "gitlab" && self.gitlab_token.is_none() {
                return bad(format!(
                    "SLACK_CHANNEL_REPOSITORIES names the GitLab project {}, so GITLAB_TOKEN is needed too",
                    route.repository
                ));
            }
        }
        Ok(())
    }

    /// The GitHub App's private key as PEM text, read from the file it names when it is a path.
    pub fn github_app_key_pem(&self) -> Result<String, String> {
        let Some(key) = &self.github_app_private_key else {
            return Err("GITHUB_APP_PRIVATE_KEY is not set".into());
        };
        let value = key.expose().trim();
        let pem = if value.starts_with("-----BEGIN") {
            // Environment variables often carry the key with escaped newlines.
            value.replace("\\n", "\n")
        } else {
            std::fs::read_to_string(value).map_err(|e| {
                format!("GITHUB_APP_PRIVATE_KEY is neither a PEM key nor a readable file ({e})")
            })?
        };
        octocrab::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
            format!("GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM format ({e})")
        })?;
        Ok(pem)
    }
}
