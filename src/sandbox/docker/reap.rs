//! Finding this owner's containers and removing stale ones. On connect, containers left by an
//! earlier process are adopted again (claimed ones re-registered, running warm ones back in the
//! pool, dead warm ones removed). Each maintenance pass removes warm sandboxes whose container
//! died, marks claimed ones stopped, pauses and removes idle sandboxes, then refills the pool.
//! Only containers whose owner label is this backend's are ever touched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptions;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pool::claimed_conversation;
use super::{
    DockerBackend, Entry, LABEL_CONVERSATION, LABEL_OWNER, LABEL_SANDBOX, engine_error, lock,
};
use crate::sandbox::{SandboxBackend, SandboxResult, SandboxStatus};

/// What the last maintenance pass did (for tests and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub paused: usize,
    pub removed: usize,
    pub started_warm: usize,
}

impl DockerBackend {
    /// Every container of this owner, running or not.
    async fn owner_containers(&self) -> SandboxResult<Vec<ContainerSummary>> {
        self.docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{LABEL_OWNER}={}", self.owner)],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(engine_error)
    }

    /// Finds this owner's containers after a restart: claimed ones are registered again,
    /// running unclaimed ones return to the warm pool, dead unclaimed ones are removed.
    pub(super) async fn adopt(&self) -> SandboxResult<()> {
        let containers = self.owner_containers().await?;
        for container in containers {
            let labels = container.labels.unwrap_or_default();
            let (Some(id), Some(name)) = (labels.get(LABEL_SANDBOX).cloned(), container.id) else {
                continue;
            };
            let claimed = container
                .names
                .unwrap_or_default()
                .iter()
                .find_map(|n| claimed_conversation(n.trim_start_matches('/'), &id));
            let mut conversation = labels
                .get(LABEL_CONVERSATION)
                .filter(|c| !c.is_empty())
                .cloned();
            let status = match container.state {
                Some(ContainerSummaryStateEnum::RUNNING) => SandboxStatus::Running,
                Some(ContainerSummaryStateEnum::PAUSED) => SandboxStatus::Paused,
                _ => SandboxStatus::Stopped,
            };
            if conversation.is_none() {
                conversation = claimed;
            }
            if conversation.is_none() && status == SandboxStatus::Paused {
                self.docker
                    .unpause_container(&name)
                    .await
                    .map_err(engine_error)?;
            }
            if conversation.is_none() && status == SandboxStatus::Stopped {
                // A warm container that died with the engine: nothing of anyone's is in it.
                self.remove_container(&name).await?;
                continue;
            }
            let warm = conversation.is_none();
            let status = if warm { SandboxStatus::Running } else { status };
            tracing::info!(sandbox = %id, conversation = ?conversation, ?status, "re-adopted sandbox");
            let entry = Entry::new(id.clone(), name, conversation, status);
            let mut state = lock(&self.state);
            state.sandboxes.insert(id.clone(), entry);
            if warm {
                state.warm.push_back(id);
            }
        }
        Ok(())
    }

    /// Runs the warm-pool refill and idle reaping every `interval` until `shutdown`.
    pub async fn run_maintenance(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            match self.maintain().await {
                Ok(done) if done != Maintenance::default() => {
                    tracing::debug!(?done, "sandbox maintenance")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sandbox maintenance failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
                _ = self.refill_wanted.notified() => {}
            }
        }
    }

    /// One maintenance pass: pause and remove idle sandboxes, drop dead warm ones, refill the
    /// warm pool.
    pub async fn maintain(&self) -> SandboxResult<Maintenance> {
        let dead_warm = self.reconcile().await?;
        let mut done = self.reap_idle(Instant::now()).await?;
        done.removed += dead_warm;
        done.started_warm = self.refill_pool().await?;
        Ok(done)
    }

    /// Brings what this backend believes in line with the engine, whose containers die when
    /// it restarts: dead warm sandboxes are removed (the refill replaces them), and claimed ones
    /// whose container stopped are marked stopped, so their next use starts them again.
    /// Returns how many warm sandboxes it removed.
    async fn reconcile(&self) -> SandboxResult<usize> {
        // Only sandboxes known before the listing: a newer one may be missing from it.
        let known: Vec<Arc<Entry>> = lock(&self.state).sandboxes.values().cloned().collect();
        let containers = self.owner_containers().await?;
        let alive: HashSet<String> = containers
            .into_iter()
            .filter(|c| {
                matches!(
                    c.state,
                    Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED)
                )
            })
            .filter_map(|c| c.id)
            .collect();
        let dead = known
            .into_iter()
            .filter(|e| e.status() != SandboxStatus::Stopped && !alive.contains(&e.container));
        let mut removed = 0;
        for entry in dead {
            if entry.conversation().is_some() {
                tracing::warn!(sandbox = %entry.id, "the sandbox's container stopped; it is started again on its next use");
                entry.set_status(SandboxStatus::Stopped);
                continue;
            }
            tracing::warn!(sandbox = %entry.id, "removing a warm sandbox whose container stopped");
            {
                let mut state = lock(&self.state);
                state.warm.retain(|id| id != &entry.id);
                state.sandboxes.remove(&entry.id);
            }
            self.remove_container(&entry.container).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Pauses sandboxes idle for SANDBOX_PAUSE_AFTER and removes those idle for
    /// SANDBOX_REMOVE_AFTER, as of `now`.
    pub async fn reap_idle(&self, now: Instant) -> SandboxResult<Maintenance> {
        let assigned: Vec<Arc<Entry>> = lock(&self.state)
            .sandboxes
            .values()
            .filter(|e| e.conversation().is_some())
            .cloned()
            .collect();
        let mut done = Maintenance::default();
        for entry in assigned {
            let idle = entry.idle_for(now);
            if idle >= self.settings.sandbox_remove_after {
                tracing::info!(sandbox = %entry.id, idle_s = idle.as_secs(), "removing idle sandbox");
                self.remove(&entry.id).await?;
                done.removed += 1;
            } else if idle >= self.settings.sandbox_pause_after
                && entry.status() == SandboxStatus::Running
            {
                // A call in progress holds the session: not idle after all.
                let Ok(_session) = entry.session.try_lock() else {
                    continue;
                };
                tracing::info!(sandbox = %entry.id, idle_s = idle.as_secs(), "pausing idle sandbox");
                self.docker
                    .pause_container(&entry.container)
                    .await
                    .map_err(engine_error)?;
                entry.set_status(SandboxStatus::Paused);
                done.paused += 1;
            }
        }
        Ok(done)
    }
}
