//! `openhands bench queue`: enqueue, claim+complete (drain) and end-to-end throughput of the job
//! queue on DATABASE_URL, with a `worker` process of this binary doing the work. Prints each
//! round, then a table of the medians (jobs/s) and the worker's peak memory.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::{Role, backend_name, median, mib, record};
use crate::config::Config;
use crate::queue::{self, probe::Probe};
use crate::storage::Db;

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
    let backend = backend_name(db.kind());
    let mut enqueue_rates = Vec::new();
    let mut worker_peak_kib = 0;
    let mut drain_rates = Vec::new();
    let mut end_to_end_rates = Vec::new();
    for round in 1..=rounds {
        let started = Instant::now();
        enqueue_probes(db, jobs, clients).await?;
        let enqueue = jobs as f64 / started.elapsed().as_secs_f64();

        let mark = db.probe_completion_mark().await?;
        let worker = Role::start(config, "worker", &[("SANDBOX_WARM_POOL", "0")]).await?;
        // Timed from the first completion, so that the process's start is not counted.
        let first = wait_for_completions(db, mark, 1, round_timeout).await?;
        let started = Instant::now();
        wait_for_completions(db, mark, i64::from(jobs), round_timeout).await?;
        let drain = (i64::from(jobs) - first) as f64 / started.elapsed().as_secs_f64();

        let mark = db.probe_completion_mark().await?;
        let started = Instant::now();
        enqueue_probes(db, jobs, clients).await?;
        wait_for_completions(db, mark, i64::from(jobs), round_timeout).await?;
        let end_to_end = jobs as f64 / started.elapsed().as_secs_f64();
        worker_peak_kib = worker_peak_kib.max(worker.peak_kib());
        worker.stop();

        println!(
            "round {round}/{rounds}: enqueue {enqueue:.0}/s, drain {drain:.0}/s, end to end {end_to_end:.0}/s"
        );
        enqueue_rates.push(enqueue);
        drain_rates.push(drain);
        end_to_end_rates.push(end_to_end);
    }
    println!(
        "queue {backend}: {jobs} jobs x {rounds} rounds, {clients} enqueueing clients, worker concurrency {}",
        config.workers.worker_concurrency
    );
    let (enqueue, drain, end_to_end) = (
        median(&mut enqueue_rates),
        median(&mut drain_rates),
        median(&mut end_to_end_rates),
    );
    println!(
        "| backend | enqueue jobs/s | claim+complete jobs/s | end to end jobs/s | worker peak MB |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {backend} | {enqueue:.0} | {drain:.0} | {end_to_end:.0} | {:.1} |",
        mib(worker_peak_kib)
    );
    record(&format!("queue.enqueue.{backend}"), enqueue)?;
    record(&format!("queue.drain.{backend}"), drain)?;
    record(&format!("queue.end_to_end.{backend}"), end_to_end)?;
    record(&format!("memory.worker.{backend}"), mib(worker_peak_kib))?;
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

/// Waits until `expected` probes completed after `mark`; how many had.
async fn wait_for_completions(
    db: &Db,
    mark: i64,
    expected: i64,
    timeout: Duration,
) -> anyhow::Result<i64> {
    let started = Instant::now();
    loop {
        let completed = db.probe_completions_since(mark).await?;
        if completed >= expected {
            return Ok(completed);
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
