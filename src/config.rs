//! The one configuration of the service: flags and environment variables, validated at start-up.

use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::integrations::settings::ProviderConfig;
use crate::queue::WorkerSettings;
use crate::setting::{ConfigError, Secret};
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

impl Config {
    /// Checks every value that clap's parsers do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::new(msg));
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
