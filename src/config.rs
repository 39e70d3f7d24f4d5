//! The one configuration of the service: the command line, and every subsystem's settings
//! (flags and environment variables, each group beside its owner) gathered and validated at
//! start-up.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::integrations::settings::ProviderConfig;
use crate::setting::ConfigError;

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
    /// Check the database, the Docker engine and sandbox image, the model, each configured
    /// provider's credentials, the public URL and the webhook secrets; print the fix for each
    /// failure and exit non-zero when one failed.
    Doctor,
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
    /// The reference `bench ingest` measures beside the service: a minimal HTTP server on
    /// 127.0.0.1:PORT that verifies each GitHub delivery's signature and answers 202 without
    /// storing anything.
    #[command(hide = true)]
    IngestReference,
    /// Keeps one core busy for SECONDS, then exits: the CPU-bound neighbour of `bench ingest`.
    #[command(hide = true)]
    BurnCpu {
        #[arg(long, default_value_t = 300)]
        seconds: u64,
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
    /// What an MCP tool call (rmcp's streamable HTTP server on loopback) and a `fetch` (a page
    /// served inside a Docker sandbox, SANDBOX_IMAGE) cost beside their plain transport.
    Tools {
        /// Calls measured of each.
        #[arg(long, default_value_t = 300)]
        calls: u32,
    },
}

/// Every setting of the service. Each flag can also be given as the environment variable
/// named beside it; docs/configuration.md lists them.
#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub database: crate::storage::connection::DatabaseSettings,
    #[command(flatten)]
    pub server: crate::web::server::ServerSettings,
    #[command(flatten)]
    pub logging: crate::logging::LogSettings,
    #[command(flatten)]
    pub workers: crate::queue::settings::WorkerConfig,
    #[command(flatten)]
    pub keys: crate::crypto::KeySettings,
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
        self.database.validate()?;
        self.keys.validate()?;
        self.server.validate()?;
        self.logging.validate()?;
        self.workers.validate()?;
        self.providers.validate()?;
        self.login.validate()?;
        self.sandbox.validate()?;
        self.llm.validate()?;
        self.agent.validate()
    }
}
