//! How this process's workers claim, hold and retry jobs, as configured.

use std::time::Duration;

use clap::Args;

use super::WorkerSettings;
use crate::setting::ConfigError;

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
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
    /// On SIGTERM or Ctrl-C, how long running jobs may take to finish.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |message: String| Err(ConfigError::new(message));
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
        Ok(())
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
