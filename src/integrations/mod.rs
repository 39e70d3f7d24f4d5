//! Providers that send work and receive results: GitHub, GitLab, Slack, Jira (Cloud and Data
//! Center) and Linear.
//! Each one verifies its deliveries, parses them into the provider-neutral request and replies
//! through its own API, inside its own folder.

pub mod github;
pub mod gitlab;
pub mod jira;
pub mod linear;
pub mod mention;
pub mod providers;
pub mod request;
pub mod settings;
pub mod signature;
pub mod slack;
pub mod state;
#[cfg(test)]
mod test_support;

use axum::http::HeaderMap;

/// Whether `name` is a repository path of 2 to `max_parts` segments (`owner/name`; GitLab's
/// `group/subgroup/project`), each of letters, digits, `-`, `_` and `.` and never `.` or `..`:
/// it becomes part of API paths.
pub fn is_repository_path(name: &str, max_parts: usize) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    (2..=max_parts).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

pub use providers::Providers;
use request::{Inbound, ParseError, ParseSettings, Provider};
use settings::ProviderConfig;
use signature::{VerifyError, WebhookSecrets};

/// What the webhook endpoint needs: the secrets of each enabled provider and how to recognise
/// requests.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    secrets: Vec<(Provider, WebhookSecrets)>,
    pub parse: ParseSettings,
}

impl Webhooks {
    pub fn from_config(config: &ProviderConfig) -> Self {
        let configured = [
            (Provider::Github, &config.github_webhook_secret),
            (Provider::Gitlab, &config.gitlab_webhook_token),
            (Provider::Slack, &config.slack_signing_secret),
            (Provider::Jira, &config.jira_webhook_secret),
            (Provider::JiraDc, &config.jira_dc_webhook_secret),
            (Provider::Linear, &config.linear_webhook_secret),
        ];
        Self {
            secrets: configured
                .into_iter()
                .filter_map(|(provider, secrets)| Some((provider, secrets.clone()?)))
                .filter(|(_, secrets)| !secrets.is_empty())
                .collect(),
            parse: ParseSettings {
                mention_handle: config.mention_handle.trim().to_string(),
                label: config.trigger_label.trim().to_string(),
                account_mentions: [
                    (jira::Edition::Cloud, &config.jira_account_id),
                    (jira::Edition::DataCenter, &config.jira_dc_username),
                ]
                .into_iter()
                .filter_map(|(edition, id)| {
                    let id = id.as_deref()?.trim();
                    (!id.is_empty()).then(|| jira::mention_of(edition, id))
                })
                .collect(),
            },
        }
    }

    /// Recognises these forms of the service's accounts as mentions
    /// ([`Providers::account_mentions`]).
    pub fn with_account_mentions(mut self, accounts: Vec<String>) -> Self {
        self.parse.account_mentions = accounts;
        self
    }

    /// Enables a provider with these secrets.
    pub fn with(mut self, provider: Provider, secrets: WebhookSecrets) -> Self {
        self.secrets.retain(|(p, _)| *p != provider);
        if !secrets.is_empty() {
            self.secrets.push((provider, secrets));
        }
        self
    }

    /// The providers whose webhooks are accepted.
    pub fn enabled_providers(&self) -> Vec<Provider> {
        Provider::ALL
            .into_iter()
            .filter(|p| self.secrets(*p).is_some())
            .collect()
    }

    /// The secrets of `provider`; `None` when it is not enabled.
    pub fn secrets(&self, provider: Provider) -> Option<&WebhookSecrets> {
        self.secrets
            .iter()
            .find(|(p, _)| *p == provider)
            .map(|(_, secrets)| secrets)
    }
}

/// Checks that a delivery comes from `provider`, on the raw body, before anything parses it.
pub fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    now_ms: i64,
) -> Result<(), VerifyError> {
    match provider {
        Provider::Github => github::verify(headers, body, secrets),
        Provider::Gitlab => gitlab::verify(headers, secrets),
        Provider::Slack => slack::verify(headers, body, secrets, now_ms),
        Provider::Jira | Provider::JiraDc => jira::verify(headers, body, secrets),
        Provider::Linear => linear::verify(headers, body, secrets, now_ms),
    }
}

/// Recognises what a verified delivery asks for.
pub fn parse(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    match provider {
        Provider::Github => github::parse(headers, body, settings),
        Provider::Gitlab => gitlab::parse(headers, body, settings),
        Provider::Slack => slack::parse(headers, body, settings),
        Provider::Jira => jira::parse(headers, body, settings),
        Provider::JiraDc => jira::parse_data_center(headers, body, settings),
        Provider::Linear => linear::parse(headers, body, settings),
    }
}
