//! Durable acceptance of webhook deliveries with group commit.
//!
//! Each delivery is stored, and its intake job enqueued, before the provider gets its answer.
//! One transaction per delivery would cap intake at what the database can commit one by one;
//! instead, deliveries that arrive while a commit is in flight are gathered and written together
//! in one transaction (one multi-row insert, one job push, one commit), and each waits for the
//! commit that holds it. A batch that fails is retried one delivery at a time, so one bad
//! delivery cannot fail the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::Intake;
use crate::integrations::request::{Provider, Request};
use crate::queue;
use crate::storage::{DatabaseKind, Db, DeliveryStatus, NewDelivery};

/// At most this many deliveries share one transaction.
const MAX_BATCH: usize = 256;
/// Deliveries waiting for a writer; beyond this, deliveries are answered busy (503).
const QUEUE_DEPTH: usize = 4096;

/// A verified, parsed delivery to store.
#[derive(Debug)]
pub struct Submission {
    pub provider: Provider,
    pub delivery_id: String,
    pub event: String,
    pub payload: Bytes,
    pub outcome: Outcome,
}

/// What the delivery asks for.
#[derive(Debug)]
pub enum Outcome {
    /// A request: stored as accepted, and an intake job is enqueued with it.
    Request(Box<Request>),
    /// Stored as ignored, with the reason.
    Ignored(String),
}

/// What became of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored with its intake job enqueued, under this row id.
    Accepted(i64),
    /// Stored as ignored, under this row id.
    Ignored(i64),
    /// This provider's delivery id was stored before; nothing new was done.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// More deliveries wait to be written than the writer can store in time.
    #[error("the service is busy: too many deliveries wait to be stored")]
    Busy,
    #[error("the delivery could not be stored: {0}")]
    Failed(String),
}

struct Pending {
    submission: Submission,
    reply: oneshot::Sender<Result<Stored, AcceptError>>,
    /// Whether a writer took it, or its handler gave up on it first: whichever comes first
    /// decides, so a delivery answered busy is never stored.
    state: Arc<AtomicU8>,
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Pending {
    /// Claims the delivery for a writer; false when its handler gave up on it.
    fn take(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Stores deliveries in batches; cheap to clone.
#[derive(Clone, Debug)]
pub struct DeliveryWriter {
    sender: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("delivery_id", &self.submission.delivery_id)
            .finish()
    }
}

impl DeliveryWriter {
    /// Starts the writer on the current runtime; it stops when every clone is dropped.
    pub fn start(db: Db) -> Self {
        // SQLite commits one transaction at a time; PostgreSQL overlaps a few commits.
        let writers = match db.kind() {
            DatabaseKind::Sqlite => 1,
            DatabaseKind::Postgres => 4,
        };
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(gather(db, receiver, Arc::new(Semaphore::new(writers))));
        Self { sender }
    }

    /// Stores `submission` durably (with its intake job) and says what became of it. When the
    /// writer's queue is full, or no writer has taken the delivery within `wait`, the answer is
    /// [`AcceptError::Busy`] and the delivery is not stored: waiting in the queue longer would
    /// only make the provider time out. A delivery a writer has taken is waited for: its
    /// transaction is under way, bounded by the database's own timeouts.
    pub async fn store(
        &self,
        submission: Submission,
        wait: Duration,
    ) -> Result<Stored, AcceptError> {
        let (reply, answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        self.sender
            .try_send(Pending {
                submission,
                reply,
                state: state.clone(),
            })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => AcceptError::Busy,
                mpsc::error::TrySendError::Closed(_) => {
                    AcceptError::Failed("the service is shutting down".into())
                }
            })?;
        let stopped = |_| AcceptError::Failed("the writer stopped".into());
        let mut answer = answer;
        match tokio::time::timeout(wait, &mut answer).await {
            Ok(answered) => answered.map_err(stopped)?,
            Err(_) => {
                let given_up = state
                    .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if given_up {
                    return Err(AcceptError::Busy);
                }
                answer.await.map_err(stopped)?
            }
        }
    }
}

/// Waits for a free writer, then hands it everything that has arrived meanwhile.
async fn gather(db: Db, mut receiver: mpsc::Receiver<Pending>, writers: Arc<Semaphore>) {
    while let Some(first) = receiver.recv().await {
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Deliveries whose handlers already answered busy are not stored.
        batch.retain(Pending::take);
        if batch.is_empty() {
            continue;
        }
        let db = db.clone();
        tokio::spawn(async move {
            write(&db, batch).await;
            drop(permit);
        });
    }
}

async fn write(db: &Db, mut batch: Vec<Pending>) {
    // Batches written at once insert their keys in the same order, so that two holding the
    // same delivery id (a provider's retry racing the first attempt) wait for each other
    // instead of deadlocking, which PostgreSQL only breaks after its one-second
    // deadlock_timeout.
    batch.sort_by(|a, b| {
        let (a, b) = (&a.submission, &b.submission);
        (a.provider.as_str(), a.delivery_id.as_str())
            .cmp(&(b.provider.as_str(), b.delivery_id.as_str()))
    });
    let submissions: Vec<&Submission> = batch.iter().map(|p| &p.submission).collect();
    let started = std::time::Instant::now();
    let written = write_batch(db, &submissions).await;
    tracing::debug!(size = batch.len(), elapsed = ?started.elapsed(), "deliveries stored");
    match written {
        Ok(results) => {
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.reply.send(Ok(result));
            }
        }
        Err(error) if batch.len() > 1 => {
            tracing::warn!(%error, size = batch.len(), "storing a batch of deliveries failed; storing them one by one");
            for pending in batch {
                let result = write_batch(db, &[&pending.submission]).await;
                reply(pending, result);
            }
        }
        Err(error) => {
            for pending in batch {
                reply(pending, Err(error.clone()));
            }
        }
    }
}

fn reply(pending: Pending, result: Result<Vec<Stored>, String>) {
    let result = result
        .map(|mut stored| stored.pop().unwrap_or(Stored::Duplicate))
        .map_err(|error| {
            let submission = &pending.submission;
            tracing::error!(%error, provider = %submission.provider, delivery = %submission.delivery_id, "a delivery could not be stored");
            AcceptError::Failed(error)
        });
    // The handler may have gone (the client hung up); the delivery is stored all the same.
    let _ = pending.reply.send(result);
}

/// One transaction: every delivery of `batch`, and the intake jobs of the new requests.
async fn write_batch(db: &Db, batch: &[&Submission]) -> Result<Vec<Stored>, String> {
    let requests: Vec<Option<String>> = batch
        .iter()
        .map(|s| match &s.outcome {
            Outcome::Request(request) => serde_json::to_string(request).ok(),
            Outcome::Ignored(_) => None,
        })
        .collect();
    let news: Vec<NewDelivery<'_>> = batch
        .iter()
        .zip(&requests)
        .map(|(s, request)| {
            let (status, reason) = match &s.outcome {
                Outcome::Request(_) => (DeliveryStatus::Accepted, None),
                Outcome::Ignored(reason) => (DeliveryStatus::Ignored, Some(reason.as_str())),
            };
            NewDelivery {
                provider: s.provider.as_str(),
                delivery_id: &s.delivery_id,
                event: &s.event,
                status,
                reason,
                payload: &s.payload,
                request: request.as_deref(),
            }
        })
        .collect();
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    let ids = tx
        .record_deliveries(&news)
        .await
        .map_err(|e| e.to_string())?;
    let mut jobs = Vec::new();
    let mut results = Vec::with_capacity(batch.len());
    for (submission, id) in batch.iter().zip(ids) {
        results.push(match (id, &submission.outcome) {
            (None, _) => Stored::Duplicate,
            (Some(id), Outcome::Ignored(_)) => Stored::Ignored(id),
            (Some(id), Outcome::Request(_)) => {
                jobs.push(Intake::new(id));
                Stored::Accepted(id)
            }
        });
    }
    queue::enqueue_many(&mut tx, &jobs)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(results)
}
