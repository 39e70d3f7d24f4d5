//! The worker runtime: one apalis worker per job kind, supervised by a monitor. On shutdown
//! the workers stop claiming, in-flight jobs finish within a grace period, then the monitor
//! stops the workers.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::{BackendExt, ParallelizeExt};
use apalis::prelude::{BackoffRetryPolicy, Monitor, RetryPolicy, WorkerBuilder, WorkerBuilderExt};
use apalis::prelude::{PollSnapshot, PollStrategy};
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use tower::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;

use futures::FutureExt;

use super::Job;
use super::probe::{self, Probe};
use crate::agent::{self, RunConversation};
use crate::intake::{self, Intake, IntakeSettings};
use crate::storage::Db;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::task::TaskTracker;

/// What every job handler may use.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub db: Db,
    /// How intake reaches the providers.
    pub intake: Arc<IntakeSettings>,
    /// What the run job needs; a worker without it leaves runs to other workers.
    pub agent: Option<Arc<agent::AgentRuntime>>,
}

impl JobContext {
    /// A context with no provider configured.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            intake: Arc::default(),
            agent: None,
        }
    }
}

/// How workers claim, hold and retry jobs.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Names this process's workers; unique per process.
    pub instance: String,
    /// Jobs run at once per job kind.
    pub concurrency: usize,
    /// A job whose worker has not heartbeated for this long is handed to another worker.
    pub lease: Duration,
    /// How often idle workers look for new jobs.
    pub poll_interval: Duration,
    /// Jobs claimed in one fetch.
    pub batch_size: usize,
    /// First delay between attempts of a failing job; it doubles up to `retry_max_delay`.
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
    /// On shutdown, how long in-flight jobs may take to finish before the process exits
    /// (unfinished jobs are handed to another worker when their lease runs out).
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            instance: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            concurrency: 8,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(100),
            batch_size: 10,
            retry_base_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Heartbeats per lease: a worker is presumed dead after missing this many.
const HEARTBEATS_PER_LEASE: u32 = 3;

impl WorkerSettings {
    fn heartbeat_interval(&self) -> Duration {
        (self.lease / HEARTBEATS_PER_LEASE).max(Duration::from_secs(1))
    }

    /// A worker restarted after a failure registers under a new name, so that the queue does
    /// not mistake it for its still-registered predecessor.
    fn worker_name(&self, queue: &str, restarts: usize) -> String {
        format!("{}-{queue}-{restarts}", self.instance)
    }

    fn backoff(&self) -> anyhow::Result<ExponentialBackoffMaker> {
        ExponentialBackoffMaker::new(
            self.retry_base_delay,
            self.retry_max_delay.max(self.retry_base_delay),
            0.25,
            HasherRng::default(),
        )
        .map_err(|e| anyhow::anyhow!("invalid retry delays: {e}"))
    }
}

/// How long a worker waits before starting again after its `restarts`-th failure (a lost
/// database, say): nothing the first time, then 1 s, doubling up to 30 s.
fn restart_delay(restarts: usize) -> Duration {
    match restarts {
        0 => Duration::ZERO,
        n => Duration::from_secs(1 << (n - 1).min(5)).min(Duration::from_secs(30)),
    }
}

/// Retries a failing job of kind `J` until it has had `J::MAX_ATTEMPTS` attempts.
fn retry_policy<J: Job>(
    backoff: &ExponentialBackoffMaker,
) -> BackoffRetryPolicy<ExponentialBackoff> {
    // The first attempt is not a retry.
    RetryPolicy::retries(J::MAX_ATTEMPTS.saturating_sub(1) as usize)
        .with_backoff(backoff.clone().make_backoff())
}

/// Builds the apalis worker of job kind `$job` on `$backend`, handled by `$handler`.
macro_rules! job_worker {
    ($settings:expr, $restarts:expr, $backoff:expr, $ctx:expr, $drain:expr, $backend:expr, $job:ty, $handler:expr) => {{
        let settings: &WorkerSettings = $settings;
        let drain: &Drain = $drain;
        WorkerBuilder::new(settings.worker_name(<$job as Job>::QUEUE, $restarts))
            .backend($backend)
            .layer(drain.counting_layer())
            .data($ctx.clone())
            .concurrency(settings.concurrency)
            .retry(retry_policy::<$job>($backoff))
            // A panicking job counts as a failed attempt instead of taking the worker down.
            .catch_panic()
            .parallelize(tokio::spawn)
            .build($handler)
    }};
}

/// Registers the worker of one job kind with the monitor, on whichever database `db` is.
macro_rules! register_job {
    ($monitor:expr, $db:expr, $settings:expr, $backoff:expr, $ctx:expr, $drain:expr, $job:ty, $handler:expr) => {{
        let settings = $settings.clone();
        let backoff = $backoff.clone();
        let ctx = $ctx.clone();
        let drain: Drain = $drain.clone();
        let queue = <$job as Job>::QUEUE;
        match $db {
            Db::Postgres(pool) => {
                let config = apalis_postgres::Config::default()
                    .queue(queue)
                    .batch_size(settings.batch_size)
                    .heartbeat_interval(settings.heartbeat_interval())
                    .missed_heartbeats(HEARTBEATS_PER_LEASE as usize);
                let pool = pool.clone();
                $monitor.register(move |restarts| {
                    let backend = PostgresStorage::<$job>::new(&pool)
                        .with_config(config.clone())
                        .poll_with_strategy(EveryInterval::new(settings.poll_interval, &drain))
                        .before_start(move |_| tokio::time::sleep(restart_delay(restarts)).map(Ok));
                    job_worker!(
                        &settings, restarts, &backoff, ctx, &drain, backend, $job, $handler
                    )
                })
            }
            Db::Sqlite(pool) => {
                let config = apalis_sqlite::Config::default()
                    .queue(queue)
                    .batch_size(settings.batch_size)
                    .heartbeat_interval(settings.heartbeat_interval())
                    .missed_heartbeats(HEARTBEATS_PER_LEASE as usize);
                let pool = pool.clone();
                $monitor.register(move |restarts| {
                    let backend = SqliteStorage::<$job>::new(&pool)
                        .with_config(config.clone())
                        .poll_with_strategy(EveryInterval::new(settings.poll_interval, &drain))
                        .before_start(move |_| tokio::time::sleep(restart_delay(restarts)).map(Ok));
                    job_worker!(
                        &settings, restarts, &backoff, ctx, &drain, backend, $job, $handler
                    )
                })
            }
        }
    }};
}

/// Runs the workers of every job kind until `shutdown` resolves, then stops claiming and
/// waits up to the grace period for in-flight jobs.
pub async fn run_workers(
    ctx: JobContext,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = ctx.db.clone();
    let backoff = settings.backoff()?;
    let drain = Drain::default();
    let monitor = Monitor::new()
        .shutdown_timeout(settings.shutdown_grace)
        .should_restart(|worker, error| {
            tracing::warn!(worker = worker.name(), %error, "worker stopped; restarting it");
            true
        });
    let monitor = register_job!(
        monitor,
        &db,
        settings,
        backoff,
        ctx,
        drain,
        Probe,
        probe::handle
    );
    let monitor = register_job!(
        monitor,
        &db,
        settings,
        backoff,
        ctx,
        drain,
        Intake,
        intake::handle
    );
    let monitor = register_job!(
        monitor,
        &db,
        settings,
        backoff,
        ctx,
        drain,
        RunConversation,
        agent::handle_run
    );
    let monitor = register_job!(
        monitor,
        &db,
        settings,
        backoff,
        ctx,
        drain,
        crate::results::DeliverPost,
        crate::results::handle
    );
    tracing::info!(instance = %settings.instance, concurrency = settings.concurrency, "workers started");
    monitor
        .run_with_signal(async move {
            shutdown.await;
            tracing::info!("shutting down workers: no new jobs are claimed");
            drain.finish_in_flight(settings.shutdown_grace).await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("worker monitor failed: {e}"))?;
    tracing::info!("workers stopped");
    Ok(())
}

/// Shutdown in two steps. First the workers stop claiming while still running, so that each
/// job in flight finishes with its worker's database work (claims, heartbeats, results)
/// still being driven; then the monitor stops the workers. Stopping them at once would leave
/// a half-done fetch holding a connection that a finishing job may be waiting for: with
/// SQLite's single connection, the job would wait out the whole grace period.
#[derive(Clone, Default)]
struct Drain {
    draining: Arc<AtomicBool>,
    in_flight: TaskTracker,
}

impl Drain {
    /// Counts each job from its start to its end.
    fn counting_layer<F: Future>(
        &self,
    ) -> tower::util::MapFutureLayer<impl Fn(F) -> CountedJob<F> + Clone + use<F>> {
        let in_flight = self.in_flight.clone();
        tower::util::MapFutureLayer::new(move |job: F| CountedJob {
            job: Box::pin(job),
            _token: in_flight.token(),
        })
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Stops claiming and waits, at most `grace`, for the jobs in flight.
    async fn finish_in_flight(&self, grace: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        self.in_flight.close();
        let running = self.in_flight.len();
        if running > 0 {
            tracing::info!(running, "waiting for the jobs in flight");
        }
        if tokio::time::timeout(grace, self.in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.in_flight.len(),
                "jobs still running after the grace period; another worker takes them over"
            );
        }
    }
}

/// A job's future, counted as in flight until it ends or is dropped.
struct CountedJob<F> {
    job: std::pin::Pin<Box<F>>,
    _token: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl<F: Future> Future for CountedJob<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.job.as_mut().poll(cx)
    }
}

/// Wakes an idle worker every `interval` to look for new jobs. apalis' own interval strategy
/// arms its next timer without polling it, so after the first tick only the heartbeat (a
/// third of the lease) woke idle PostgreSQL workers: new jobs waited up to 20 s.
/// Once shutdown begins it never wakes again.
struct EveryInterval {
    interval: Duration,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    drain: Drain,
}

impl EveryInterval {
    fn new(interval: Duration, drain: &Drain) -> Self {
        Self {
            // A zero interval would spin.
            interval: interval.max(Duration::from_millis(1)),
            timer: None,
            drain: drain.clone(),
        }
    }
}

impl PollStrategy for EveryInterval {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _snapshot: &PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        let mut ticked = false;
        loop {
            if self.drain.is_draining() {
                return std::task::Poll::Pending;
            }
            let interval = self.interval;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
            match timer.as_mut().poll(cx) {
                // The next timer is polled at once, so that it wakes this worker.
                std::task::Poll::Ready(()) => {
                    self.timer = None;
                    ticked = true;
                }
                std::task::Poll::Pending if ticked => return std::task::Poll::Ready(Some(())),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
    }
}
