//! The one configuration of the service: flags and environment variables, validated at start-up.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::integrations::signature::WebhookSecrets;
use crate::queue::WorkerSettings;
use crate::storage::{ConnectOptions, DatabaseKind, redact_url};

#[derive(Debug, Parser)]
#[command(
    name = "openhands",
    version,
    about = "Integration service for an AI software-engineering agent: webhooks in, sandboxed agent runs, results posted back."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP and workers in one process: the single-node default.
    Serve,
    /// HTTP only (webhooks, API, dashboard); run workers separately.
    Web,
    /// Workers only: claim and run queued jobs.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect and exercise the job queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Measure the service on this machine and print the figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Manage the sandbox image and this host's sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Serve the Runtime API (start/stop/pause/resume/list sandboxes, run commands in them) for
    /// workers on other machines, on RUNTIME_API_LISTEN, authenticated by RUNTIME_API_KEY.
    RuntimeApi,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and an API key for it (printed once): how the first administrator is made.
    Create {
        /// The user's login name.
        login: String,
        /// Make the user an administrator (sees every conversation, manages account links).
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Build the sandbox image: offline from Debian's packages (debootstrap, then an import into
    /// Docker), or on top of a base image with --base where a registry is reachable.
    BuildImage(crate::sandbox::image::BuildImageArgs),
    /// List this owner's sandboxes.
    List,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Print how many jobs each queue holds in each status.
    Status,
    /// Enqueue probe jobs and wait until workers have completed them.
    Probe {
        /// How many probes to enqueue.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// How long to wait for them to complete.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Enqueue → claim → complete throughput of the job queue on DATABASE_URL.
    Queue {
        /// Jobs per measurement.
        #[arg(long, default_value_t = 5000)]
        jobs: u32,
        /// Concurrent enqueueing clients.
        #[arg(long, default_value_t = 16)]
        clients: u32,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Give up on a round after this long.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        round_timeout: Duration,
    },
    /// Signed GitHub deliveries per second, durably accepted by a `web` process on
    /// DATABASE_URL, from concurrent clients in this process over loopback.
    Ingest {
        /// Deliveries per measurement.
        #[arg(long, default_value_t = 20000)]
        deliveries: u32,
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        concurrency: u32,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Give up on a round after this long.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        round_timeout: Duration,
    },
    /// Sandbox latencies on this machine's Docker engine (SANDBOX_IMAGE): warm-pool acquire,
    /// cold create+start, and the round trip of `true` in a warm session, with `docker exec`
    /// and `docker run --rm` through the CLI as references.
    Sandbox {
        /// Acquisitions and cold starts measured.
        #[arg(long, default_value_t = 10)]
        samples: u32,
        /// `true` round trips measured.
        #[arg(long, default_value_t = 300)]
        round_trips: u32,
    },
    /// WebSocket fan-out on PostgreSQL: subscribers of one conversation on a `web` process,
    /// events appended by this process (as a worker on another machine would) at a steady
    /// rate; delivery latency from append to receipt, and the web process's peak memory.
    Websocket {
        /// Subscribers of the conversation.
        #[arg(long, default_value_t = 1000)]
        subscribers: u32,
        /// Events appended per second (in batches every 10 ms).
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// How long events are appended.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
    /// Prints the figures the benchmarks wrote to a file (BENCH_FIGURES) as one table, each
    /// beside the reference measured in the same run: what `./scripts/bench` ends with.
    Report {
        /// The figures file: one `name<TAB>value` line per figure.
        file: std::path::PathBuf,
    },
    /// Agent-loop overhead per step on DATABASE_URL and a Docker sandbox (SANDBOX_IMAGE), with
    /// a zero-latency scripted model on loopback and `true` as the command.
    Agent {
        /// Steps measured.
        #[arg(long, default_value_t = 300)]
        steps: u32,
    },
}

/// A value that must never be printed: `Debug` and `Display` show only that it is set.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, in time that depends on neither's content nor length
    /// (both are hashed first): for keys that clients present.
    pub fn matches(&self, given: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        bool::from(Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Every setting of the service. Each flag can also be given as the environment variable
/// named beside it; the README's configuration table lists them.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite://PATH` (single node, the default) or `postgres://…` (several processes).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/openhands.db",
        global = true,
        hide_env_values = true,
        hide_default_value = false
    )]
    pub database_url: Secret,
    /// Connections in the PostgreSQL pool (SQLite uses one: it writes one transaction at a time).
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1", global = true)]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, short, env = "PORT", default_value_t = 3000, global = true)]
    pub port: u16,
    /// Log one JSON object per line (message, severity, timestamp, conversation_id, user_id).
    #[arg(long, env = "LOG_JSON", default_value = "false", value_parser = BoolishValueParser::new(), action = ArgAction::Set, global = true)]
    pub log_json: bool,
    /// Log filter: a level (`info`, `debug`, …) or per-module directives (`openhands=debug,sqlx=warn`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    /// Jobs each worker process runs at once per job kind.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 8, global = true)]
    pub worker_concurrency: usize,
    /// A job whose worker stops heartbeating for this long is given to another worker.
    #[arg(long, env = "JOB_LEASE", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub job_lease: Duration,
    /// How often idle workers look for jobs.
    #[arg(long, env = "QUEUE_POLL_INTERVAL", default_value = "100ms", value_parser = humantime::parse_duration, global = true)]
    pub queue_poll_interval: Duration,
    /// Delay before the first retry of a failed job; it doubles with each attempt.
    #[arg(long, env = "JOB_RETRY_DELAY", default_value = "1s", value_parser = humantime::parse_duration, global = true)]
    pub job_retry_delay: Duration,
    /// Longest delay between two attempts of a failing job.
    #[arg(long, env = "JOB_RETRY_MAX_DELAY", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub job_retry_max_delay: Duration,
    /// Bearer token for the admin API (`/api/deliveries`); unset, the admin API is disabled.
    #[arg(
        long,
        env = "OPENHANDS_ADMIN_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub admin_api_key: Option<Secret>,
    /// Where a `worker` process serves its own Prometheus metrics (sandbox start and LLM call
    /// timings), e.g. `127.0.0.1:9464`, to the OPENHANDS_ADMIN_API_KEY only; unset, it serves
    /// none (the web processes' `/metrics` has the rest).
    #[arg(long, env = "METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The key that signs browser sessions and encrypts stored LLM keys and secrets: any
    /// string of at least 32 characters, the same on every web and worker process. Unset, a
    /// random key is used, so sessions end at restart and keys and secrets cannot be stored.
    #[arg(
        long,
        env = "OPENHANDS_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secret_key: Option<Secret>,
    /// On SIGTERM or Ctrl-C, how long running jobs may take to finish.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub http: crate::web::middleware::HttpSettings,
    #[command(flatten)]
    pub login: crate::web::login::LoginSettings,
    #[command(flatten)]
    pub providers: ProviderConfig,
    #[command(flatten)]
    pub sandbox: crate::sandbox::SandboxSettings,
    #[command(flatten)]
    pub llm: crate::agent::settings::LlmSettings,
    #[command(flatten)]
    pub agent: crate::agent::settings::AgentSettings,
}

/// The providers that send work: each is enabled by its webhook secret, and talks back
/// through its API settings.
#[derive(Debug, Clone, Args)]
pub struct ProviderConfig {
    /// Where people reach this service's dashboard: the links posted back to providers.
    #[arg(
        long,
        env = "OPENHANDS_PUBLIC_URL",
        default_value = "http://localhost:3000",
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
    if crate::integrations::is_repository_path(repository, 2) {
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
    if !crate::integrations::is_repository_path(path, 20) {
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

/// A configuration value that cannot work, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

impl Config {
    /// Checks every value that clap's parsers do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError(msg));
        if let Err(e) = DatabaseKind::of_url(self.database_url.expose()) {
            return bad(e.to_string());
        }
        if let Some(key) = &self.secret_key
            && key.expose().chars().count() < 32
        {
            return bad(
                "OPENHANDS_SECRET_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`)"
                    .into(),
            );
        }
        if self.database_max_connections == 0 {
            return bad("DATABASE_MAX_CONNECTIONS must be at least 1".into());
        }
        if self.metrics_listen.is_some() && self.admin_api_key.is_none() {
            return bad(
                "METRICS_LISTEN needs OPENHANDS_ADMIN_API_KEY: a worker serves its metrics to that key only"
                    .into(),
            );
        }
        if self.host.trim().is_empty() {
            return bad(
                "HOST must not be empty (e.g. 127.0.0.1, or 0.0.0.0 for every interface)".into(),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return bad(format!(
                "LOG_LEVEL `{}` is not a valid log filter ({e}); use e.g. `info` or `openhands=debug,sqlx=warn`",
                self.log_level
            ));
        }
        if self.worker_concurrency == 0 {
            return bad("WORKER_CONCURRENCY must be at least 1".into());
        }
        if self.job_lease < Duration::from_secs(3) {
            return bad(format!(
                "JOB_LEASE must be at least 3s (workers heartbeat every third of it, in whole seconds); got {}",
                humantime::format_duration(self.job_lease)
            ));
        }
        if self.queue_poll_interval.is_zero() {
            return bad("QUEUE_POLL_INTERVAL must be greater than zero".into());
        }
        if self.job_retry_delay.is_zero() || self.job_retry_max_delay < self.job_retry_delay {
            return bad(
                "JOB_RETRY_DELAY must be greater than zero and at most JOB_RETRY_MAX_DELAY".into(),
            );
        }
        self.providers.validate()?;
        self.login.validate()?;
        self.sandbox.validate()?;
        self.llm.validate()?;
        self.agent.validate()
    }

    /// The database URL with its password hidden, for logs.
    pub fn database_url_for_display(&self) -> String {
        redact_url(self.database_url.expose())
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.database_max_connections,
            ..ConnectOptions::default()
        }
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            concurrency: self.worker_concurrency,
            lease: self.job_lease,
            poll_interval: self.queue_poll_interval,
            retry_base_delay: self.job_retry_delay,
            retry_max_delay: self.job_retry_max_delay,
            shutdown_grace: self.shutdown_grace,
            ..WorkerSettings::default()
        }
    }
}

/// Whether a provider's webhook secret is set (and not blank).
fn enabled(secrets: &Option<WebhookSecrets>) -> bool {
    secrets.as_ref().is_some_and(|s| !s.is_empty())
}

pub(crate) fn check_url(name: &str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(ConfigError(format!(
            "{name} `{value}` is not an http(s) URL (e.g. https://example.com)"
        ))),
    }
}

impl ProviderConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError(msg));
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
        if self.github_app_private_key.is_some() {
            self.github_app_key_pem().map_err(ConfigError)?;
        }
        Ok(())
    }

    /// What workers need to act on the enabled providers' requests (the web process only
    /// verifies and stores deliveries, so it does not need these).
    pub fn check_for_workers(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError(msg));
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
        if enabled(&self.jira_webhook_secret) && self.jira_base_url.is_none() {
            return bad(
                "JIRA_WEBHOOK_SECRET is set, so JIRA_BASE_URL (the site to serve) is needed too"
                    .into(),
            );
        }
        if enabled(&self.linear_webhook_secret)
            && self
                .linear_organization_id
                .iter()
                .all(|o| o.trim().is_empty())
        {
            return bad("LINEAR_WEBHOOK_SECRET is set, so LINEAR_ORGANIZATION_ID (the organizations to serve) is needed too".into());
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
