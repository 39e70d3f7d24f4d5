//! The probe job: a job that exercises the queue end to end without touching any provider.
//! Operators enqueue probes to check that workers are claiming and completing work
//! (`openhands queue probe`); the queue benchmark and the crash drills use them too.
//! Every completion is recorded, so a probe that ran to completion twice is visible.

use std::time::Duration;

use apalis::prelude::{Attempt, BoxDynError, Data, WorkerContext};
use serde::{Deserialize, Serialize};

use super::{Job, JobContext};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Names the probe in `queue_probe_completions`.
    pub id: String,
    /// How long the job works before it completes, in milliseconds.
    #[serde(default)]
    pub work_ms: u64,
    /// How many of the first attempts fail on purpose (to see retries and failures).
    #[serde(default)]
    pub fail_attempts: u32,
}

impl Probe {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            work_ms: 0,
            fail_attempts: 0,
        }
    }
}

impl Job for Probe {
    const QUEUE: &'static str = "probe";
    const MAX_ATTEMPTS: u32 = 3;
}

pub(super) async fn handle(
    probe: Probe,
    ctx: Data<JobContext>,
    attempt: Attempt,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let attempt = attempt.current();
    if probe.work_ms > 0 {
        tokio::time::sleep(Duration::from_millis(probe.work_ms)).await;
    }
    if attempt <= probe.fail_attempts as usize {
        return Err(format!("probe {} failed on purpose (attempt {attempt})", probe.id).into());
    }
    ctx.db
        .record_probe_completion(&probe.id, worker.name(), attempt as i32)
        .await?;
    Ok(())
}
