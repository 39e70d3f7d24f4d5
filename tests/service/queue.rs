//! The job queue against real databases and real worker processes.

use crate::on_both_backends;
use crate::support;

use std::time::Duration;

use openhands::queue::{self, Job, WorkerSettings, probe::Probe};
use openhands::storage::Db;
use support::{ChildGuard, TestDb, wait_for};
use tokio_util::sync::CancellationToken;

on_both_backends! {
    a_job_exists_exactly_when_its_transaction_commits => enqueue_is_transactional;
    failing_jobs_are_retried_then_left_failed_with_their_error => retries_then_failure;
    four_worker_processes_complete_1000_jobs_once_each => four_workers_race;
    a_job_of_a_killed_worker_completes_on_another_worker => killed_worker_job_moves_on;
    sigterm_lets_the_running_job_finish => graceful_shutdown_finishes_running_job;
    an_idle_worker_finds_new_jobs_by_polling_not_by_its_heartbeat => idle_worker_polls;
}

fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        concurrency: 4,
        lease: Duration::from_secs(3),
        poll_interval: Duration::from_millis(50),
        retry_base_delay: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(10),
        ..WorkerSettings::default()
    }
}

/// A worker process on the test's database, with a short lease so that drills end quickly.
fn worker_process(t: &TestDb) -> ChildGuard {
    worker_process_with_lease(t, "3s")
}

fn worker_process_with_lease(t: &TestDb, lease: &str) -> ChildGuard {
    ChildGuard::spawn(
        support::openhands(&t.url)
            .arg("worker")
            .env("JOB_LEASE", lease)
            .env("QUEUE_POLL_INTERVAL", "50ms")
            .env("WORKER_CONCURRENCY", "8")
            .env("JOB_RETRY_DELAY", "100ms")
            .env("SHUTDOWN_GRACE", "20s"),
    )
}

async fn job_status(db: &Db, id: &str) -> Option<String> {
    db.jobs(Probe::QUEUE, None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.id == id)
        .map(|j| j.status)
}

async fn enqueue_is_transactional(t: &TestDb) {
    let mut tx = t.db.begin().await.unwrap();
    let rolled_back = queue::enqueue(&mut tx, &Probe::new("rolled-back"))
        .await
        .unwrap();
    drop(tx);
    let mut tx = t.db.begin().await.unwrap();
    let committed = queue::enqueue(&mut tx, &Probe::new("committed"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(job_status(&t.db, &rolled_back).await, None);
    assert_eq!(
        job_status(&t.db, &committed).await.as_deref(),
        Some("Pending")
    );
    let counts = t.db.job_status_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (
            counts[0].queue.as_str(),
            counts[0].status.as_str(),
            counts[0].count
        ),
        ("probe", "Pending", 1)
    );
}

async fn retries_then_failure(t: &TestDb) {
    let recovers = Probe {
        fail_attempts: 2,
        ..Probe::new("recovers")
    };
    let never = Probe {
        fail_attempts: 100,
        ..Probe::new("never")
    };
    let recovers_job = queue::enqueue_now(&t.db, &recovers).await.unwrap();
    let never_job = queue::enqueue_now(&t.db, &never).await.unwrap();

    let shutdown = CancellationToken::new();
    let workers =
        queue::Workers::new(queue::JobContext::new(t.db.clone()), fast_settings()).unwrap();
    let workers = tokio::spawn(workers.run(shutdown.clone().cancelled_owned()));

    let completions = wait_for_completion(t, "recovers").await;
    assert_eq!(completions.len(), 1);
    assert_eq!(
        completions[0].attempt, 3,
        "two failures, then success on the third attempt"
    );

    let failed = wait_for(
        "the failing probe to be marked failed",
        Duration::from_secs(30),
        || async {
            let jobs = t.db.jobs("probe", Some("Failed"), 10).await.unwrap();
            jobs.into_iter().find(|j| j.id == never_job)
        },
    )
    .await;
    assert_eq!(failed.attempts, 3, "tried MAX_ATTEMPTS times");
    let error = failed.last_result.unwrap_or_default();
    assert!(
        error.contains("failed on purpose"),
        "the error is kept: {error}"
    );
    assert!(t.db.probe_completions("never").await.unwrap().is_empty());

    wait_for(
        "the recovered job to be marked done",
        Duration::from_secs(10),
        || async {
            (job_status(&t.db, &recovers_job).await.as_deref() == Some("Done")).then_some(())
        },
    )
    .await;
    // A failed job is not picked up again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        job_status(&t.db, &never_job).await.as_deref(),
        Some("Failed")
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), workers)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // Operators see the failure and its error.
    let output = support::openhands(&t.url)
        .args(["queue", "status"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("failed probe jobs"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains(&never_job))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("after 3 attempt(s)") && line.contains("failed on purpose"),
        "{line}"
    );
}

async fn four_workers_race(t: &TestDb) {
    const JOBS: usize = 1000;
    // A lease long enough that a heartbeat delayed by a loaded machine never hands a running
    // job to another worker: this test is about concurrent claims, not lease expiry.
    let _workers: Vec<ChildGuard> = (0..4)
        .map(|_| worker_process_with_lease(t, "60s"))
        .collect();
    // Enqueue from several clients while the workers are already claiming.
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..8 {
        let db = t.db.clone();
        clients.spawn(async move {
            for n in 0..JOBS / 8 {
                queue::enqueue_now(&db, &Probe::new(format!("race-{client}-{n}")))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    wait_for("1000 completions", Duration::from_secs(240), || async {
        let (completions, _) = t.db.probe_completion_counts().await.unwrap();
        (completions >= JOBS as i64).then_some(())
    })
    .await;
    wait_for(
        "every job to be marked done",
        Duration::from_secs(30),
        || async {
            let done =
                t.db.jobs("probe", Some("Done"), 10_000)
                    .await
                    .unwrap()
                    .len();
            (done == JOBS).then_some(())
        },
    )
    .await;
    // Give any duplicate execution time to show itself before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (completions, distinct) = t.db.probe_completion_counts().await.unwrap();
    assert_eq!(
        (completions, distinct),
        (JOBS as i64, JOBS as i64),
        "each job completed exactly once"
    );
    let workers_used: std::collections::BTreeSet<String> = sqlx_distinct_workers(&t.db).await;
    assert!(
        workers_used.len() >= 2,
        "the work was shared: {workers_used:?}"
    );
}

async fn sqlx_distinct_workers(db: &Db) -> std::collections::BTreeSet<String> {
    let sql = "SELECT DISTINCT worker FROM queue_probe_completions";
    let names: Vec<String> = match db {
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
    };
    names
        .into_iter()
        .map(|n| n.split("-probe-").next().unwrap_or_default().to_string())
        .collect()
}

async fn killed_worker_job_moves_on(t: &TestDb) {
    let mut first = worker_process(t);
    let job = enqueue_running_probe(t, "survivor", 5_000).await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert!(
        t.db.probe_completions("survivor").await.unwrap().is_empty(),
        "killed mid-job"
    );

    let _second = worker_process(t);
    let completions = wait_for_completion(t, "survivor").await;
    wait_for(
        "the job to be marked done",
        Duration::from_secs(20),
        || async { (job_status(&t.db, &job).await.as_deref() == Some("Done")).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let completions_now = t.db.probe_completions("survivor").await.unwrap();
    assert_eq!(
        completions_now.len(),
        1,
        "exactly one success: {completions_now:?}"
    );
    assert_eq!(completions, completions_now);
}

async fn graceful_shutdown_finishes_running_job(t: &TestDb) {
    let mut worker = worker_process(t);
    let job = enqueue_running_probe(t, "in-flight", 1_500).await;
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let completions = t.db.probe_completions("in-flight").await.unwrap();
    assert_eq!(
        completions.len(),
        1,
        "the in-flight job finished before exit"
    );
    assert_eq!(
        job_status(&t.db, &job).await.as_deref(),
        Some("Done"),
        "its completion was recorded in the queue before exit"
    );
    // A job enqueued after shutdown waits for the next worker.
    let later = queue::enqueue_now(&t.db, &Probe::new("after-shutdown"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(job_status(&t.db, &later).await.as_deref(), Some("Pending"));
}

/// Enqueues a probe that works for `work_ms` and waits until a worker is running it.
async fn enqueue_running_probe(t: &TestDb, id: &str, work_ms: u64) -> String {
    let probe = Probe {
        work_ms,
        ..Probe::new(id)
    };
    let job = queue::enqueue_now(&t.db, &probe).await.unwrap();
    wait_for(
        "a worker to take the job",
        Duration::from_secs(30),
        || async {
            matches!(job_status(&t.db, &job).await.as_deref(), Some("Running")).then_some(())
        },
    )
    .await;
    job
}

/// Waits until the probe named `id` has completed at least once; returns its completions.
async fn wait_for_completion(t: &TestDb, id: &str) -> Vec<openhands::storage::ProbeCompletion> {
    wait_for(
        &format!("probe {id} to complete"),
        Duration::from_secs(60),
        || async {
            let done = t.db.probe_completions(id).await.unwrap();
            (!done.is_empty()).then_some(done)
        },
    )
    .await
}

/// With a ten-minute lease the heartbeat comes every 200 s: a job enqueued into idle queues
/// is found by the poll, within the test's minute, each time.
async fn idle_worker_polls(t: &TestDb) {
    let stop = CancellationToken::new();
    let settings = WorkerSettings {
        lease: Duration::from_secs(600),
        ..fast_settings()
    };
    let workers = queue::Workers::new(queue::JobContext::new(t.db.clone()), settings).unwrap();
    let workers = tokio::spawn(workers.run(stop.clone().cancelled_owned()));
    for round in 0..3 {
        // Long enough for the workers to go idle after their first polls.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let id = format!("idle-{round}");
        queue::enqueue_now(&t.db, &Probe::new(id.clone()))
            .await
            .unwrap();
        wait_for_completion(t, &id).await;
    }
    stop.cancel();
    workers.await.unwrap().unwrap();
}
