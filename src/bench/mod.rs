//! Benchmarks that print figures (`openhands bench …`). They measure; they assert nothing.
//!
//! This module runs the subcommand asked for and holds what the benchmarks share: the figures
//! file that `openhands bench report` reads, medians and percentiles, memory readings, and the
//! processes of this binary that a benchmark starts. Each benchmark has its own file, named after
//! its subcommand; `model.rs` is the scripted model server of the agent benchmark.

mod agent;
mod ingest;
mod mcp;
mod model;
mod queue;
mod report;
mod sandbox;
mod tools;
mod websocket;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use anyhow::bail;

use crate::app::open_database;
use crate::config::{BenchCommand, Config};
use crate::storage::DatabaseKind;

/// Runs one `openhands bench …` subcommand.
pub async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Queue {
            jobs,
            clients,
            rounds,
            round_timeout,
        } => {
            let db = open_database(config).await?;
            queue::queue_throughput(&db, config, jobs, clients, rounds, round_timeout).await
        }
        BenchCommand::Ingest {
            deliveries,
            concurrency,
            rounds,
            round_timeout,
        } => {
            // Migrated here, so that the web process starts on a ready database.
            open_database(config).await?.close().await;
            ingest::ingest_throughput(config, deliveries, concurrency, rounds, round_timeout).await
        }
        BenchCommand::Sandbox {
            samples,
            round_trips,
        } => sandbox::sandbox_latency(config, samples, round_trips).await,
        BenchCommand::Report { file } => report::report(&file),
        BenchCommand::IngestReference => ingest::serve_reference().await,
        BenchCommand::BurnCpu { seconds } => {
            ingest::burn_cpu(Duration::from_secs(seconds));
            Ok(())
        }
        BenchCommand::Websocket {
            subscribers,
            rate,
            duration,
        } => {
            let db = open_database(config).await?;
            websocket::websocket_fan_out(&db, config, subscribers, rate, duration).await
        }
        BenchCommand::Agent { steps } => {
            let db = open_database(config).await?;
            agent::agent_step_overhead(&db, config, steps).await
        }
        BenchCommand::Tools { calls } => tools::tool_overhead(config, calls).await,
    }
}

/// Where the benchmarks also write their figures, one `name<TAB>value` line each, for
/// `openhands bench report` to gather into one table (`./scripts/bench` sets it).
const FIGURES_VARIABLE: &str = "BENCH_FIGURES";

/// Appends a figure to `$BENCH_FIGURES`, when it is set.
fn record(name: &str, value: f64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let Some(path) = std::env::var_os(FIGURES_VARIABLE) else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write the figures file {}", path.to_string_lossy()))?;
    writeln!(file, "{name}\t{value}")?;
    Ok(())
}

fn backend_name(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Percentile `p` (0..=100) of `values`, sorting them.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return 0.0;
    }
    let index = ((values.len() - 1) as f64 * p / 100.0).round() as usize;
    values[index.min(values.len() - 1)]
}

/// A memory figure of a process from `/proc/PID/status`, in KiB (0 when unknown).
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The key every process of a benchmark shares (PostgreSQL requires one): OPENHANDS_SECRET_KEY,
/// or one made for this run.
fn shared_key(config: &Config) -> String {
    static RUN_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    match &config.keys.secret_key {
        Some(key) => key.expose().to_string(),
        None => RUN_KEY
            .get_or_init(|| uuid::Uuid::new_v4().simple().to_string().repeat(2))
            .clone(),
    }
}

/// A process of this binary in one role (`web`, `worker`, `runtime-api`), on DATABASE_URL;
/// a web or runtime-api process listens on a free loopback port. Killed when dropped.
struct Role {
    child: std::process::Child,
    url: String,
}

impl Role {
    /// Starts `role` (a subcommand, with its arguments separated by spaces) with these extra
    /// environment variables and waits until a web or runtime-api process accepts connections.
    async fn start(config: &Config, role: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(role.split(' '))
            .env("DATABASE_URL", config.database.database_url.expose())
            .env(
                "DATABASE_MAX_CONNECTIONS",
                config.database.database_max_connections.to_string(),
            )
            .env("OPENHANDS_SECRET_KEY", shared_key(config))
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUNTIME_API_LISTEN", format!("127.0.0.1:{port}"))
            // The process logs warnings only, unless BENCH_SERVER_LOG_LEVEL says otherwise.
            .env(
                "LOG_LEVEL",
                std::env::var("BENCH_SERVER_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove(FIGURES_VARIABLE)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .spawn()?;
        let mut process = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        if role == "worker" {
            return Ok(process);
        }
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                bail!("the {role} process exited ({status}) before it listened");
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the {role} process did not listen on {} within 60 s",
                    process.url
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's peak resident memory so far, in KiB.
    fn peak_kib(&self) -> u64 {
        memory_kib(self.child.id(), "VmHWM:")
    }

    fn stop(self) {}
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
