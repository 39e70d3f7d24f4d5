//! Benchmarks that print figures (`openhands bench …`). They measure; they assert nothing.

use std::time::{Duration, Instant};

use anyhow::bail;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::queue::{self, probe::Probe};
use crate::storage::{DatabaseKind, Db};

/// Enqueue → claim → complete throughput of the job queue, as the median of `rounds`:
/// - enqueue: `clients` concurrent clients, one durable transaction per job, no workers;
/// - drain: the workers of one process claim and complete the jobs enqueued before;
/// - end to end: clients enqueue while the workers run, until the last job completes.
pub async fn queue_throughput(
    db: &Db,
    config: &Config,
    jobs: u32,
    clients: u32,
    rounds: u32,
    round_timeout: Duration,
) -> anyhow::Result<()> {
    if jobs == 0 || clients == 0 || rounds == 0 {
        bail!("--jobs, --clients and --rounds must each be at least 1");
    }
    let backend = match db.kind() {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    };
    let mut enqueue_rates = Vec::new();
    let mut drain_rates = Vec::new();
    let mut end_to_end_rates = Vec::new();
    for round in 1..=rounds {
        let started = Instant::now();
        enqueue_probes(db, jobs, clients).await?;
        let enqueue = jobs as f64 / started.elapsed().as_secs_f64();

        let mark = db.probe_completion_mark().await?;
        let workers = start_workers(db, config);
        let started = Instant::now();
        wait_for_completions(db, mark, i64::from(jobs), round_timeout).await?;
        let drain = jobs as f64 / started.elapsed().as_secs_f64();

        let mark = db.probe_completion_mark().await?;
        let started = Instant::now();
        enqueue_probes(db, jobs, clients).await?;
        wait_for_completions(db, mark, i64::from(jobs), round_timeout).await?;
        let end_to_end = jobs as f64 / started.elapsed().as_secs_f64();
        workers.stop().await?;

        println!(
            "round {round}/{rounds}: enqueue {enqueue:.0}/s, drain {drain:.0}/s, end to end {end_to_end:.0}/s"
        );
        enqueue_rates.push(enqueue);
        drain_rates.push(drain);
        end_to_end_rates.push(end_to_end);
    }
    println!(
        "queue {backend}: {jobs} jobs x {rounds} rounds, {clients} enqueueing clients, worker concurrency {}",
        config.worker_concurrency
    );
    println!("| backend | enqueue jobs/s | claim+complete jobs/s | end to end jobs/s |");
    println!("|---|---|---|---|");
    println!(
        "| {backend} | {:.0} | {:.0} | {:.0} |",
        median(&mut enqueue_rates),
        median(&mut drain_rates),
        median(&mut end_to_end_rates)
    );
    Ok(())
}

/// Enqueues `jobs` probes from `clients` concurrent clients, each job in its own transaction.
async fn enqueue_probes(db: &Db, jobs: u32, clients: u32) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let share = jobs / clients + u32::from(client < jobs % clients);
        let db = db.clone();
        tasks.spawn(async move {
            for _ in 0..share {
                let probe = Probe::new(uuid::Uuid::new_v4().simple().to_string());
                queue::enqueue_now(&db, &probe).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// Workers of this process, running until the token is cancelled.
struct Workers {
    stop: CancellationToken,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start_workers(db: &Db, config: &Config) -> Workers {
    let stop = CancellationToken::new();
    let running = tokio::spawn(queue::run_workers(
        queue::JobContext::new(db.clone()),
        config.worker_settings(),
        stop.clone().cancelled_owned(),
    ));
    Workers { stop, running }
}

impl Workers {
    /// Stops the workers and waits until they have let go of every job.
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.running.await?
    }
}

async fn wait_for_completions(
    db: &Db,
    mark: i64,
    expected: i64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let completed = db.probe_completions_since(mark).await?;
        if completed >= expected {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "only {} of {expected} jobs completed within {}",
                completed,
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
