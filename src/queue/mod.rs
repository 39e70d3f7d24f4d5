//! The durable job queue (apalis on the service's own database).
//!
//! A job is enqueued inside the caller's transaction, so it exists exactly when the data that
//! caused it does. Workers claim jobs, heartbeat while they hold them, and a job whose worker
//! stops heartbeating for longer than the lease is handed to another worker. A failing job is
//! retried with exponential backoff and, after its last attempt, stays in the queue as
//! `Failed` with its error.

pub mod probe;
pub mod settings;
pub(crate) mod worker;

use apalis::prelude::{TaskBuilder, TaskId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::{Db, StorageError, Tx};

pub(crate) use worker::register_job;
pub use worker::{JobContext, WorkerSettings, Workers};

/// A kind of job: its payload type, the queue it lives in and how often it is tried.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The queue's name, stored with every job of this kind.
    const QUEUE: &'static str;
    /// How many times a job is tried before it is left as failed.
    const MAX_ATTEMPTS: u32;
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot encode the job: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot enqueue the job: {0}")]
    Push(String),
}

/// Enqueues `job` inside `tx`: it becomes visible to workers when `tx` commits, and never
/// without it. Returns the job's id.
pub async fn enqueue<J: Job>(tx: &mut Tx, job: &J) -> Result<String, QueueError> {
    let ids = enqueue_many(tx, std::slice::from_ref(job)).await?;
    ids.into_iter()
        .next()
        .ok_or_else(|| QueueError::Push("no job id returned".into()))
}

/// Enqueues `job` inside `tx`, to run no sooner than `delay` after now.
pub async fn enqueue_after<J: Job>(
    tx: &mut Tx,
    job: &J,
    delay: std::time::Duration,
) -> Result<String, QueueError> {
    let ids = push(tx, std::slice::from_ref(job), Some(delay)).await?;
    ids.into_iter()
        .next()
        .ok_or_else(|| QueueError::Push("no job id returned".into()))
}

/// Enqueues several jobs of one kind inside `tx`, in one statement. Returns their ids.
pub async fn enqueue_many<J: Job>(tx: &mut Tx, jobs: &[J]) -> Result<Vec<String>, QueueError> {
    push(tx, jobs, None).await
}

async fn push<J: Job>(
    tx: &mut Tx,
    jobs: &[J],
    delay: Option<std::time::Duration>,
) -> Result<Vec<String>, QueueError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(jobs.len());
    let mut tasks = Vec::with_capacity(jobs.len());
    for job in jobs {
        // The queue's backends read job ids back as ULIDs.
        let id = ulid::Ulid::new().to_string();
        let mut task = TaskBuilder::new(serde_json::to_vec(job)?)
            .task_id(TaskId::from(id.clone()))
            .max_attempts(J::MAX_ATTEMPTS as usize);
        if let Some(delay) = delay {
            task = task.run_after(delay);
        }
        tasks.push(task.build());
        ids.push(id);
    }
    match tx {
        Tx::Postgres(tx) => apalis_postgres::queries::push_tasks(&mut **tx, J::QUEUE, tasks)
            .await
            .map_err(|e| QueueError::Push(e.to_string()))?,
        Tx::Sqlite(tx) => apalis_sqlite::queries::push_tasks(&mut **tx, J::QUEUE, &tasks)
            .await
            .map_err(|e| QueueError::Push(e.to_string()))?,
    }
    Ok(ids)
}

/// Enqueues one job in a transaction of its own; durable when this returns.
pub async fn enqueue_now<J: Job>(db: &Db, job: &J) -> Result<String, QueueError> {
    let mut tx = db.begin().await?;
    let id = enqueue(&mut tx, job).await?;
    tx.commit().await?;
    Ok(id)
}
