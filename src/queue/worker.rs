//! The worker runtime: one apalis worker per job kind, supervised by a monitor. On shutdown
//! the workers stop claiming, in-flight jobs finish within a grace period, then the monitor
//! stops the workers. It knows no job kind but its own probe: the others are registered with
//! [`register_job!`](crate::queue::register_job) where the service is assembled.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::{BackoffRetryPolicy, Monitor, RetryPolicy};
use apalis::prelude::{PollSnapshot, PollStrategy};
use tower::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;

use super::Job;
use super::probe::{self, Probe};
use crate::integrations::state::ProviderState;
use crate::live::EventBus;
use crate::storage::Db;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::task::TaskTracker;

/// What every job handler may use. The run job's handler is also handed the agent runtime,
/// which only workers that run agents have.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub db: Db,
    /// Every provider client: those in force when asked, which change when the dashboard
    /// stores new settings.
    pub providers: Arc<ProviderState>,
    /// Where committed events are published to live subscribers.
    pub bus: EventBus,
}

impl JobContext {
    /// A context with no provider configured.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            providers: Arc::default(),
            bus: EventBus::default(),
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
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        (self.lease / HEARTBEATS_PER_LEASE).max(Duration::from_secs(1))
    }

    /// A worker restarted after a failure registers under a new name, so that the queue does
    /// not mistake it for its still-registered predecessor.
    pub(crate) fn worker_name(&self, queue: &str, restarts: usize) -> String {
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
pub(crate) fn restart_delay(restarts: usize) -> Duration {
    match restarts {
        0 => Duration::ZERO,
        n => Duration::from_secs(1 << (n - 1).min(5)).min(Duration::from_secs(30)),
    }
}

/// Retries a failing job of kind `J` until it has had `J::MAX_ATTEMPTS` attempts.
pub(crate) fn retry_policy<J: Job>(
    backoff: &ExponentialBackoffMaker,
) -> BackoffRetryPolicy<ExponentialBackoff> {
    // The first attempt is not a retry.
    RetryPolicy::retries(J::MAX_ATTEMPTS.saturating_sub(1) as usize)
        .with_backoff(backoff.clone().make_backoff())
}

/// Builds the apalis worker of job kind `$job` on `$backend`, handled by `$handler`, with the
/// job context and `$extra` as the handler's `Data` arguments.
macro_rules! job_worker {
    ($registration:expr, $restarts:expr, $backend:expr, $job:ty, $handler:expr, $extra:expr) => {{
        use $crate::queue::worker::builder::*;
        let registration: &$crate::queue::worker::Registration = $registration;
        WorkerBuilder::new(
            registration
                .settings
                .worker_name(<$job as $crate::queue::Job>::QUEUE, $restarts),
        )
        .backend($backend)
        .layer(registration.drain.counting_layer())
        .data(registration.ctx.clone())
        .data($extra.clone())
        .concurrency(registration.settings.concurrency)
        .retry($crate::queue::worker::retry_policy::<$job>(
            &registration.backoff,
        ))
        // A panicking job counts as a failed attempt instead of taking the worker down.
        .catch_panic()
        .parallelize(tokio::spawn)
        .build($handler)
    }};
}
pub(crate) use job_worker;

/// Registers with `$monitor` the worker of `$job` on the `$storage` backend of `$pool`,
/// built anew (under a new name, after a pause) each time it restarts.
macro_rules! restartable_worker {
    ($monitor:expr, $registration:ident, $storage:ident, $pool:expr, $config:expr, $job:ty, $handler:expr, $extra:ident) => {{
        let pool = $pool.clone();
        let config = $config;
        $monitor.register(move |restarts| {
            let backend = $storage::<$job>::new(&pool)
                .with_config(config.clone())
                .poll_with_strategy($registration.poll_strategy())
                .before_start(move |_| {
                    tokio::time::sleep($crate::queue::worker::restart_delay(restarts)).map(Ok)
                });
            $crate::queue::worker::job_worker!(
                &$registration,
                restarts,
                backend,
                $job,
                $handler,
                $extra
            )
        })
    }};
}
pub(crate) use restartable_worker;

/// Registers the worker of job kind `$job` with `$workers` (a [`Workers`]), on whichever
/// database it runs; `$extra`, when given, is handed to `$handler` as one more `Data`
/// argument after the job context.
macro_rules! register_job {
    ($workers:expr, $job:ty, $handler:expr) => {
        $crate::queue::register_job!($workers, $job, $handler, ())
    };
    ($workers:expr, $job:ty, $handler:expr, $extra:expr) => {{
        use $crate::queue::worker::builder::*;
        let mut workers: $crate::queue::Workers = $workers;
        let registration = workers.registration.clone();
        let queue = <$job as $crate::queue::Job>::QUEUE;
        let extra = $extra;
        let monitor = workers.monitor;
        workers.monitor = match &registration.ctx.db {
            $crate::storage::Db::Postgres(pool) => {
                let config = registration.postgres_config(queue);
                $crate::queue::worker::restartable_worker!(
                    monitor,
                    registration,
                    PostgresStorage,
                    pool,
                    config,
                    $job,
                    $handler,
                    extra
                )
            }
            $crate::storage::Db::Sqlite(pool) => {
                let config = registration.sqlite_config(queue);
                $crate::queue::worker::restartable_worker!(
                    monitor,
                    registration,
                    SqliteStorage,
                    pool,
                    config,
                    $job,
                    $handler,
                    extra
                )
            }
        };
        workers
    }};
}
pub(crate) use register_job;

/// What the registration macros bring into scope.
pub(crate) mod builder {
    pub use apalis::prelude::{BackendExt, ParallelizeExt, WorkerBuilder, WorkerBuilderExt};
    pub use apalis_postgres::PostgresStorage;
    pub use apalis_sqlite::SqliteStorage;
    pub use futures::FutureExt;
}

/// What registering a worker needs; cloned into each worker's restart closure.
#[derive(Clone)]
pub(crate) struct Registration {
    pub ctx: JobContext,
    pub settings: WorkerSettings,
    pub backoff: ExponentialBackoffMaker,
    pub drain: Drain,
}

impl Registration {
    pub fn postgres_config(&self, queue: &str) -> apalis_postgres::Config {
        apalis_postgres::Config::default()
            .queue(queue)
            .batch_size(self.settings.batch_size)
            .heartbeat_interval(self.settings.heartbeat_interval())
            .missed_heartbeats(HEARTBEATS_PER_LEASE as usize)
    }

    pub fn sqlite_config(&self, queue: &str) -> apalis_sqlite::Config {
        apalis_sqlite::Config::default()
            .queue(queue)
            .batch_size(self.settings.batch_size)
            .heartbeat_interval(self.settings.heartbeat_interval())
            .missed_heartbeats(HEARTBEATS_PER_LEASE as usize)
    }

    pub fn poll_strategy(&self) -> EveryInterval {
        EveryInterval::new(self.settings.poll_interval, &self.drain)
    }
}

/// The workers of every registered job kind, run until shutdown.
pub struct Workers {
    pub(crate) registration: Registration,
    pub(crate) monitor: Monitor,
}

impl Workers {
    /// Workers on `ctx.db`, with the queue's own probe job registered.
    pub fn new(ctx: JobContext, settings: WorkerSettings) -> anyhow::Result<Self> {
        let backoff = settings.backoff()?;
        let monitor = Monitor::new()
            .shutdown_timeout(settings.shutdown_grace)
            .should_restart(|worker, error| {
                tracing::warn!(worker = worker.name(), %error, "worker stopped; restarting it");
                true
            });
        let workers = Workers {
            registration: Registration {
                ctx,
                settings,
                backoff,
                drain: Drain::default(),
            },
            monitor,
        };
        Ok(register_job!(workers, Probe, probe::handle))
    }

    /// Runs the workers until `shutdown` resolves, then stops claiming and waits up to the
    /// grace period for in-flight jobs.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Workers {
            registration,
            monitor,
        } = self;
        let settings = registration.settings;
        let drain = registration.drain;
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
}

/// Shutdown in two steps. First the workers stop claiming while still running, so that each
/// job in flight finishes with its worker's database work (claims, heartbeats, results)
/// still being driven; then the monitor stops the workers. Stopping them at once would leave
/// a half-done fetch holding a connection that a finishing job may be waiting for: with
/// SQLite's single connection, the job would wait out the whole grace period.
#[derive(Clone, Default)]
pub(crate) struct Drain {
    draining: Arc<AtomicBool>,
    in_flight: TaskTracker,
}

impl Drain {
    /// Counts each job from its start to its end.
    pub(crate) fn counting_layer<F: Future>(
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
pub(crate) struct CountedJob<F> {
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
pub(crate) struct EveryInterval {
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
