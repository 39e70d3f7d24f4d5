//! The Docker backend: hardened, labelled containers on a Docker engine, reached through bollard
//! (unix socket by default, DOCKER_HOST honoured), with a warm pool and idle reaping.
//!
//! Each container carries the labels `openhands.owner`, `openhands.sandbox` and
//! `openhands.conversation`; a process only ever lists, adopts or removes containers whose owner
//! label is its own. Warm containers are created before their conversation is known (labels
//! cannot change afterwards): claiming one renames the container to
//! `openhands-<owner>-<sandbox>-c-<conversation>` before anyone uses it — a metadata change of a
//! few milliseconds, out of the sandbox user's reach — so a restarted process can tell claimed
//! containers from warm ones. Containers are addressed by their engine id, which a rename keeps.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, ExecConfig, HostConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    RemoveContainerOptions, RenameContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::archive;
use super::paths::{sandbox_path, split};
use super::session::{self, ShellSession, Timeouts};
use super::{
    CommandOutcome, CommandRequest, ExecOutput, FileEntry, FileKind, NetworkMode, OutputSink,
    SandboxBackend, SandboxError, SandboxInfo, SandboxResult, SandboxSettings, SandboxStatus,
};

pub const LABEL_OWNER: &str = "openhands.owner";
pub const LABEL_SANDBOX: &str = "openhands.sandbox";
pub const LABEL_CONVERSATION: &str = "openhands.conversation";
/// Separates the sandbox id from the conversation in the name of a claimed warm container.
const CLAIM_MARK: &str = "-c-";
pub use super::WORKSPACE;
const SANDBOX_USER: &str = "openhands";
/// PID 1 of every sandbox: bash reaps orphaned processes (so zombies do not eat the pids
/// limit) and exits at once on SIGTERM.
const KEEPALIVE: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done";
const SESSION_STARTUP: Duration = Duration::from_secs(15);
/// How long a sandbox operation waits for an engine that stopped answering to come back (a
/// restart of dockerd) before it gives up.
pub const ENGINE_RETURN_WAIT: Duration = Duration::from_secs(60);
/// Where a command too long to type is written before it is sourced.
const SCRIPT_DIR: &str = "/tmp";

struct Entry {
    id: String,
    container: String,
    conversation: SyncMutex<Option<String>>,
    status: SyncMutex<SandboxStatus>,
    last_used: SyncMutex<Instant>,
    session: Mutex<Option<ShellSession>>,
}

impl Entry {
    fn new(
        id: String,
        container: String,
        conversation: Option<String>,
        status: SandboxStatus,
    ) -> Arc<Self> {
        Arc::new(Entry {
            id,
            container,
            conversation: SyncMutex::new(conversation),
            status: SyncMutex::new(status),
            last_used: SyncMutex::new(Instant::now()),
            session: Mutex::new(None),
        })
    }

    fn status(&self) -> SandboxStatus {
        *lock(&self.status)
    }

    fn set_status(&self, status: SandboxStatus) {
        *lock(&self.status) = status;
    }

    fn conversation(&self) -> Option<String> {
        lock(&self.conversation).clone()
    }

    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*lock(&self.last_used))
    }
}

/// A std mutex that survives a panicking holder (the data is plain state, still valid).
fn lock<T>(mutex: &SyncMutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, Arc<Entry>>,
    /// Started, unassigned sandboxes, oldest first.
    warm: VecDeque<String>,
}

pub struct DockerBackend {
    docker: Docker,
    settings: SandboxSettings,
    owner: String,
    state: SyncMutex<State>,
    /// Serialises starts per conversation so one conversation never gets two sandboxes.
    starting: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    refilling: Mutex<()>,
    refill_wanted: Notify,
}

/// What the last maintenance pass did (for tests and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub paused: usize,
    pub removed: usize,
    pub started_warm: usize,
}

impl DockerBackend {
    /// Connects to the engine, checks the image and re-adopts this owner's containers.
    pub async fn connect(settings: &SandboxSettings) -> SandboxResult<Arc<DockerBackend>> {
        let docker = connect_engine().await?;
        let backend = Arc::new(DockerBackend {
            docker,
            owner: settings.owner(),
            settings: settings.clone(),
            state: SyncMutex::new(State::default()),
            starting: Mutex::new(HashMap::new()),
            refilling: Mutex::new(()),
            refill_wanted: Notify::new(),
        });
        backend.check_image().await?;
        backend.adopt().await?;
        Ok(backend)
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The engine id of a sandbox's container.
    pub fn container_id(&self, sandbox_id: &str) -> Option<String> {
        lock(&self.state)
            .sandboxes
            .get(sandbox_id)
            .map(|e| e.container.clone())
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// How many started sandboxes wait in the warm pool.
    pub fn warm_count(&self) -> usize {
        lock(&self.state).warm.len()
    }

    async fn check_image(&self) -> SandboxResult<()> {
        match self
            .docker
            .inspect_image(&self.settings.sandbox_image)
            .await
        {
            Ok(_) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(SandboxError::ImageMissing(
                self.settings.sandbox_image.clone(),
            )),
            Err(error) => Err(engine_error(error)),
        }
    }

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
    async fn adopt(&self) -> SandboxResult<()> {
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

    /// Starts sandboxes until SANDBOX_WARM_POOL of them wait; returns how many it started.
    pub async fn refill_pool(&self) -> SandboxResult<usize> {
        let _only_one = self.refilling.lock().await;
        let mut started = 0;
        while self.warm_count() < self.settings.sandbox_warm_pool {
            let entry = self.create(None).await?;
            // Start the shell now, so the first command does not wait for it.
            self.session_ready(&entry).await?;
            let mut state = lock(&self.state);
            state.warm.push_back(entry.id.clone());
            state.sandboxes.insert(entry.id.clone(), entry);
            started += 1;
        }
        Ok(started)
    }

    /// Creates and starts a container; registers nothing.
    async fn create(&self, conversation: Option<&str>) -> SandboxResult<Arc<Entry>> {
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let name = format!("openhands-{}-{id}", self.owner);
        let body = self.container_body(&id, conversation);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        let container = match created {
            Ok(created) => created.id,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(SandboxError::ImageMissing(
                    self.settings.sandbox_image.clone(),
                ));
            }
            Err(error) => return Err(engine_error(error)),
        };
        if let Err(error) = self.docker.start_container(&container, None).await {
            let _ = self.remove_container(&container).await;
            return Err(SandboxError::Other(anyhow::anyhow!(
                "the sandbox container did not start: {}",
                engine_error(error)
            )));
        }
        Ok(Entry::new(
            id,
            container,
            conversation.map(str::to_string),
            SandboxStatus::Running,
        ))
    }

    /// The container settings: the sandbox policy, translated in this one place.
    fn container_body(&self, id: &str, conversation: Option<&str>) -> ContainerCreateBody {
        let s = &self.settings;
        let labels = HashMap::from([
            (LABEL_OWNER.to_string(), self.owner.clone()),
            (LABEL_SANDBOX.to_string(), id.to_string()),
            (
                LABEL_CONVERSATION.to_string(),
                conversation.unwrap_or_default().to_string(),
            ),
        ]);
        let network = match s.sandbox_network {
            NetworkMode::Bridge => "bridge",
            NetworkMode::None => "none",
        };
        ContainerCreateBody {
            image: Some(s.sandbox_image.clone()),
            cmd: Some(vec!["/bin/bash".into(), "-c".into(), KEEPALIVE.into()]),
            entrypoint: Some(vec![]),
            user: Some(SANDBOX_USER.into()),
            working_dir: Some(WORKSPACE.into()),
            hostname: Some("sandbox".into()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                privileged: Some(false),
                // The sandbox user needs no capability: nothing in it runs as root.
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                pids_limit: Some(s.sandbox_pids),
                memory: Some(s.sandbox_memory as i64),
                // Equal to memory: no swap on top of the limit.
                memory_swap: Some(s.sandbox_memory as i64),
                nano_cpus: Some((s.sandbox_cpus * 1e9) as i64),
                network_mode: Some(network.into()),
                ipc_mode: Some("private".into()),
                binds: None,
                mounts: None,
                init: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn entry(&self, sandbox_id: &str) -> SandboxResult<Arc<Entry>> {
        lock(&self.state)
            .sandboxes
            .get(sandbox_id)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(sandbox_id.to_string()))
    }

    fn info(&self, entry: &Entry) -> SandboxInfo {
        SandboxInfo {
            id: entry.id.clone(),
            conversation_id: entry.conversation(),
            status: entry.status(),
            image: self.settings.sandbox_image.clone(),
            workspace: WORKSPACE.into(),
        }
    }

    /// Makes the sandbox runnable for an operation: resumes it if paused, starts it if stopped.
    async fn ready(&self, sandbox_id: &str) -> SandboxResult<Arc<Entry>> {
        let entry = self.entry(sandbox_id)?;
        entry.touch();
        match entry.status() {
            SandboxStatus::Running => {}
            SandboxStatus::Paused => {
                self.docker
                    .unpause_container(&entry.container)
                    .await
                    .map_err(|e| self.container_error(&entry, e))?;
                entry.set_status(SandboxStatus::Running);
            }
            SandboxStatus::Stopped => {
                self.docker
                    .start_container(&entry.container, None)
                    .await
                    .map_err(|e| self.container_error(&entry, e))?;
                *entry.session.lock().await = None;
                entry.set_status(SandboxStatus::Running);
            }
        }
        Ok(entry)
    }

    /// Maps an engine error on a container operation to a clear cause.
    fn container_error(&self, entry: &Entry, error: DockerError) -> SandboxError {
        match error {
            DockerError::DockerResponseServerError {
                status_code: 404, ..
            } => SandboxError::Gone {
                id: entry.id.clone(),
                reason: "its container was removed".into(),
            },
            DockerError::DockerResponseServerError {
                status_code: 409,
                message,
            } => SandboxError::Gone {
                id: entry.id.clone(),
                reason: message,
            },
            other => engine_error(other),
        }
    }

    /// Waits until the engine answers again, for at most [`ENGINE_RETURN_WAIT`]; whether it
    /// does. An engine restart takes seconds, and a run should outlive it.
    async fn engine_returns(&self) -> bool {
        let deadline = Instant::now() + ENGINE_RETURN_WAIT;
        loop {
            if self.docker.ping().await.is_ok() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Why a container is not running, in words, when it is not. When the engine does not
    /// answer, waits for it to come back first: its containers die when it stops.
    async fn death_reason(&self, entry: &Entry) -> Option<String> {
        let mut engine_was_down = false;
        let inspected = loop {
            match self.docker.inspect_container(&entry.container, None).await {
                Ok(inspected) => break inspected,
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Some("its container was removed".into()),
                Err(DockerError::DockerResponseServerError { .. }) => return None,
                Err(_) if engine_was_down => return None,
                Err(error) => {
                    tracing::warn!(sandbox = %entry.id, error = %engine_error(error), "the Docker engine stopped answering; waiting for it");
                    if !self.engine_returns().await {
                        return Some(format!(
                            "the Docker engine stopped answering and did not come back within {}",
                            humantime::format_duration(ENGINE_RETURN_WAIT)
                        ));
                    }
                    engine_was_down = true;
                }
            }
        };
        if engine_was_down && inspected.state.as_ref().and_then(|s| s.running) != Some(true) {
            return Some("the Docker engine restarted and stopped its container".into());
        }
        let state = inspected.state?;
        if state.running == Some(true) {
            return None;
        }
        let code = state.exit_code.unwrap_or(-1);
        Some(if state.oom_killed == Some(true) {
            format!(
                "its container ran out of memory (SANDBOX_MEMORY) and was killed, exit code {code}"
            )
        } else {
            format!("its container exited with code {code}")
        })
    }

    async fn gone_if_dead(&self, entry: &Entry, error: SandboxError) -> SandboxError {
        match self.death_reason(entry).await {
            Some(reason) => {
                entry.set_status(SandboxStatus::Stopped);
                SandboxError::Gone {
                    id: entry.id.clone(),
                    reason,
                }
            }
            None => error,
        }
    }

    /// Starts the sandbox's shell session if it has none (or its old one ended).
    async fn session_ready(&self, entry: &Entry) -> SandboxResult<()> {
        let mut guard = entry.session.lock().await;
        if guard.as_ref().is_some_and(ShellSession::is_open) {
            return Ok(());
        }
        *guard = Some(self.start_session(entry).await?);
        Ok(())
    }

    async fn start_session(&self, entry: &Entry) -> SandboxResult<ShellSession> {
        let nonce = session::new_nonce();
        let exec = self
            .docker
            .create_exec(
                &entry.container,
                ExecConfig {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    cmd: Some(session::shell_command()),
                    env: Some(session::environment(&nonce)),
                    working_dir: Some(WORKSPACE.into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.container_error(entry, e))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: true,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| self.container_error(entry, e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(SandboxError::Other(anyhow::anyhow!(
                "the engine did not attach to the sandbox shell"
            )));
        };
        let output = output
            .map_ok(LogOutput::into_bytes)
            .map_err(std::io::Error::other);
        ShellSession::start(input, Box::pin(output), &nonce, SESSION_STARTUP).await
    }

    async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>, DockerError> {
        let chunks: Vec<bytes::Bytes> = self
            .docker
            .download_from_container(
                container,
                Some(DownloadFromContainerOptions {
                    path: path.to_string(),
                }),
            )
            .try_collect()
            .await?;
        Ok(chunks.concat())
    }

    async fn upload(
        &self,
        container: &str,
        directory: &str,
        tar: bytes::Bytes,
    ) -> Result<(), DockerError> {
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: directory.to_string(),
                    ..Default::default()
                }),
                bollard::body_full(tar),
            )
            .await
    }

    /// Uploads `tar` into `directory`, creating the directory as the sandbox user if missing.
    async fn upload_creating(
        &self,
        entry: &Entry,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()> {
        // Bytes: the retry after creating the directory sends the same archive without a copy.
        let tar = bytes::Bytes::from(tar);
        match self.upload(&entry.container, directory, tar.clone()).await {
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                let made = self
                    .run_argv(
                        entry,
                        &["mkdir".into(), "-p".into(), "--".into(), directory.into()],
                        "/",
                    )
                    .await?;
                if made.exit_code != 0 {
                    return Err(SandboxError::BadPath(format!(
                        "cannot create {directory}: {}",
                        made.stderr.trim()
                    )));
                }
                self.upload(&entry.container, directory, tar)
                    .await
                    .map_err(|e| self.container_error(entry, e))
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 400 | 403 | 500,
                message,
            }) => Err(SandboxError::BadPath(format!(
                "cannot write into {directory}: {message}"
            ))),
            Err(error) => Err(self.container_error(entry, error)),
        }
    }

    async fn run_argv(
        &self,
        entry: &Entry,
        argv: &[String],
        workdir: &str,
    ) -> SandboxResult<ExecOutput> {
        let exec = self
            .docker
            .create_exec(
                &entry.container,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(argv.to_vec()),
                    working_dir: Some(workdir.into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.container_error(entry, e))?;
        let started = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| self.container_error(entry, e))?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(SandboxError::Other(anyhow::anyhow!(
                "the engine did not attach to the program"
            )));
        };
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let collect = async {
            while let Some(item) = output.next().await {
                match item.map_err(engine_error)? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.extend_from_slice(&message)
                    }
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
            Ok::<(), SandboxError>(())
        };
        tokio::time::timeout(self.settings.sandbox_command_timeout, collect)
            .await
            .map_err(|_| {
                SandboxError::Other(anyhow::anyhow!(
                    "`{}` did not finish within SANDBOX_COMMAND_TIMEOUT",
                    argv.first().map(String::as_str).unwrap_or_default()
                ))
            })??;
        let inspected = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(engine_error)?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    async fn remove_container(&self, container: &str) -> SandboxResult<()> {
        match self
            .docker
            .remove_container(
                container,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(error) => Err(engine_error(error)),
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            no_output: self.settings.sandbox_no_output_timeout,
            command: self.settings.sandbox_command_timeout,
        }
    }

    /// Claims a warm sandbox for the conversation, if one is ready.
    async fn claim_warm(&self, conversation_id: &str) -> SandboxResult<Option<Arc<Entry>>> {
        loop {
            let entry = {
                let mut state = lock(&self.state);
                let Some(id) = state.warm.pop_front() else {
                    return Ok(None);
                };
                state.sandboxes.get(&id).cloned()
            };
            self.refill_wanted.notify_one();
            let Some(entry) = entry else { continue };
            // Recorded on the container before anyone uses it, so after a crash a claimed
            // sandbox is never mistaken for a warm one.
            let name = claimed_name(&self.owner, &entry.id, conversation_id);
            match self
                .docker
                .rename_container(&entry.container, RenameContainerOptions { name })
                .await
            {
                Ok(()) => {
                    *lock(&entry.conversation) = Some(conversation_id.to_string());
                    entry.touch();
                    return Ok(Some(entry));
                }
                Err(error) => {
                    tracing::warn!(sandbox = %entry.id, error = %engine_error(error), "dropping a broken warm sandbox");
                    lock(&self.state).sandboxes.remove(&entry.id);
                    let _ = self.remove_container(&entry.container).await;
                }
            }
        }
    }

    fn find_entry(&self, conversation_id: &str) -> Option<Arc<Entry>> {
        lock(&self.state)
            .sandboxes
            .values()
            .find(|e| e.conversation().as_deref() == Some(conversation_id))
            .cloned()
    }

    /// [`SandboxBackend::start`] without the per-conversation gate.
    /// A sandbox that cannot be started again (its container removed) is replaced.
    async fn start_unserialized(&self, conversation_id: &str) -> SandboxResult<SandboxInfo> {
        if let Some(entry) = self.find_entry(conversation_id) {
            match self.ready(&entry.id).await {
                Ok(entry) => return Ok(self.info(&entry)),
                Err(SandboxError::Gone { reason, .. }) => {
                    tracing::warn!(sandbox = %entry.id, %reason, "replacing a sandbox that cannot be started again");
                    lock(&self.state).sandboxes.remove(&entry.id);
                    self.remove_container(&entry.container).await?;
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(entry) = self.claim_warm(conversation_id).await? {
            return Ok(self.info(&entry));
        }
        let entry = self.create(Some(conversation_id)).await?;
        lock(&self.state)
            .sandboxes
            .insert(entry.id.clone(), entry.clone());
        Ok(self.info(&entry))
    }
}

/// Connects to the engine named by DOCKER_HOST (else the local socket) and agrees on an API
/// version with it.
pub async fn connect_engine() -> SandboxResult<Docker> {
    let docker = Docker::connect_with_defaults()
        .map_err(|e| SandboxError::EngineUnavailable(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| SandboxError::EngineUnavailable(e.to_string()))
}

/// Errors of the engine itself (not of one container).
fn engine_error(error: DockerError) -> SandboxError {
    match error {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => SandboxError::Other(anyhow::anyhow!(
            "the Docker engine answered {status_code}: {message}"
        )),
        DockerError::RequestTimeoutError => {
            SandboxError::EngineUnavailable("the engine did not answer in time".into())
        }
        other => SandboxError::EngineUnavailable(other.to_string()),
    }
}

#[async_trait]
impl SandboxBackend for DockerBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }

    async fn check(&self) -> SandboxResult<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| SandboxError::EngineUnavailable(e.to_string()))
    }

    async fn start(&self, conversation_id: &str) -> SandboxResult<SandboxInfo> {
        let gate = {
            let mut starting = self.starting.lock().await;
            starting
                .entry(conversation_id.to_string())
                .or_default()
                .clone()
        };
        let _one_start_per_conversation = gate.lock().await;
        let mut result = self.start_unserialized(conversation_id).await;
        if matches!(result, Err(SandboxError::EngineUnavailable(_))) && self.engine_returns().await
        {
            result = self.start_unserialized(conversation_id).await;
        }
        let mut starting = self.starting.lock().await;
        // Forget the gate only when nobody else waits on it (the map and this call hold it).
        if Arc::strong_count(&gate) <= 2 {
            starting.remove(conversation_id);
        }
        result
    }

    async fn get(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(sandbox_id)?;
        Ok(self.info(&entry))
    }

    async fn find(&self, conversation_id: &str) -> SandboxResult<Option<SandboxInfo>> {
        Ok(self.find_entry(conversation_id).map(|e| self.info(&e)))
    }

    async fn list(&self) -> SandboxResult<Vec<SandboxInfo>> {
        let entries: Vec<Arc<Entry>> = lock(&self.state).sandboxes.values().cloned().collect();
        let mut list: Vec<SandboxInfo> = entries.iter().map(|e| self.info(e)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    async fn pause(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(sandbox_id)?;
        if entry.status() == SandboxStatus::Running {
            self.docker
                .pause_container(&entry.container)
                .await
                .map_err(|e| self.container_error(&entry, e))?;
            entry.set_status(SandboxStatus::Paused);
        }
        Ok(self.info(&entry))
    }

    async fn resume(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.ready(sandbox_id).await?;
        Ok(self.info(&entry))
    }

    async fn stop(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(sandbox_id)?;
        if entry.status() == SandboxStatus::Paused {
            self.docker
                .unpause_container(&entry.container)
                .await
                .map_err(|e| self.container_error(&entry, e))?;
        }
        self.docker
            .stop_container(
                &entry.container,
                Some(StopContainerOptions {
                    t: Some(5),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| self.container_error(&entry, e))?;
        *entry.session.lock().await = None;
        entry.set_status(SandboxStatus::Stopped);
        Ok(self.info(&entry))
    }

    async fn remove(&self, sandbox_id: &str) -> SandboxResult<()> {
        let entry = {
            let mut state = lock(&self.state);
            state.warm.retain(|id| id != sandbox_id);
            state.sandboxes.remove(sandbox_id)
        }
        .ok_or_else(|| SandboxError::NotFound(sandbox_id.to_string()))?;
        self.remove_container(&entry.container).await
    }

    async fn execute(
        &self,
        sandbox_id: &str,
        request: &CommandRequest,
        output: Option<OutputSink>,
    ) -> SandboxResult<CommandOutcome> {
        let entry = self.ready(sandbox_id).await?;
        let mut guard = entry.session.lock().await;
        if !guard.as_ref().is_some_and(ShellSession::is_open) {
            if request.is_input || request.command.trim().is_empty() {
                return Err(SandboxError::NoRunningCommand);
            }
            match self.start_session(&entry).await {
                Ok(session) => *guard = Some(session),
                Err(error) => return Err(self.gone_if_dead(&entry, error).await),
            }
        }
        let Some(session) = guard.as_mut() else {
            return Err(SandboxError::NoRunningCommand);
        };
        let script = if !request.is_input && session::needs_script(&request.command) {
            if session.is_running() {
                return Err(SandboxError::Busy);
            }
            let name = format!(".openhands-command-{}.sh", session::new_nonce());
            let tar = archive::single_file(&name, request.command.as_bytes(), 0o600)?;
            self.upload(&entry.container, SCRIPT_DIR, tar.into())
                .await
                .map_err(|e| self.container_error(&entry, e))?;
            Some(format!("{SCRIPT_DIR}/{name}"))
        } else {
            None
        };
        let result = session
            .execute(request, script.as_deref(), self.timeouts(), output.as_ref())
            .await;
        entry.touch();
        match result {
            Ok(outcome) if !session.is_open() => {
                // The shell ended: if the container died with it, say so.
                drop(guard);
                match self.death_reason(&entry).await {
                    Some(reason) => {
                        entry.set_status(SandboxStatus::Stopped);
                        Err(SandboxError::Gone {
                            id: entry.id.clone(),
                            reason,
                        })
                    }
                    None => Ok(outcome),
                }
            }
            Ok(outcome) => Ok(outcome),
            Err(error) => {
                drop(guard);
                Err(self.gone_if_dead(&entry, error).await)
            }
        }
    }

    async fn exec(
        &self,
        sandbox_id: &str,
        argv: &[String],
        workdir: &str,
    ) -> SandboxResult<ExecOutput> {
        if argv.is_empty() {
            return Err(SandboxError::Other(anyhow::anyhow!("no program to run")));
        }
        let workdir = sandbox_path(workdir)?;
        let entry = self.ready(sandbox_id).await?;
        match self.run_argv(&entry, argv, &workdir).await {
            Ok(output) => Ok(output),
            Err(error) => Err(self.gone_if_dead(&entry, error).await),
        }
    }

    async fn read_file(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        let path = sandbox_path(path)?;
        let entry = self.ready(sandbox_id).await?;
        match self.download(&entry.container, &path).await {
            Ok(tar) => archive::file_content(&tar, &path),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => match self.death_reason(&entry).await {
                Some(reason) => Err(SandboxError::Gone {
                    id: entry.id.clone(),
                    reason,
                }),
                None => Err(SandboxError::FileNotFound(path)),
            },
            Err(error) => Err(self.container_error(&entry, error)),
        }
    }

    async fn write_file(&self, sandbox_id: &str, path: &str, content: &[u8]) -> SandboxResult<()> {
        let path = sandbox_path(path)?;
        let Some((directory, name)) = split(&path) else {
            return Err(SandboxError::BadPath("cannot write to /".into()));
        };
        let entry = self.ready(sandbox_id).await?;
        let tar = archive::single_file(name, content, 0o644)?;
        self.upload_creating(&entry, directory, tar).await
    }

    async fn list_files(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<FileEntry>> {
        let path = sandbox_path(path)?;
        let entry = self.ready(sandbox_id).await?;
        // The trailing slash makes find refuse a file ("Not a directory").
        let directory = format!("{}/", path.trim_end_matches('/'));
        let argv: Vec<String> = [
            "find",
            &directory,
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-printf",
            "%y\\t%s\\t%p\\0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let listed = self.run_argv(&entry, &argv, "/").await?;
        if listed.exit_code != 0 && listed.stdout.is_empty() {
            if listed.stderr.contains("Not a directory") {
                return Err(SandboxError::BadPath(format!(
                    "{path} is a file, not a directory"
                )));
            }
            return Err(SandboxError::FileNotFound(path));
        }
        Ok(parse_listing(&listed.stdout))
    }

    async fn put_archive(
        &self,
        sandbox_id: &str,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()> {
        let directory = sandbox_path(directory)?;
        let entry = self.ready(sandbox_id).await?;
        self.upload_creating(&entry, &directory, tar).await
    }

    async fn get_archive(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        let path = sandbox_path(path)?;
        let entry = self.ready(sandbox_id).await?;
        match self.download(&entry.container, &path).await {
            Ok(tar) => Ok(tar),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => match self.death_reason(&entry).await {
                Some(reason) => Err(SandboxError::Gone {
                    id: entry.id.clone(),
                    reason,
                }),
                None => Err(SandboxError::FileNotFound(path)),
            },
            Err(error) => Err(self.container_error(&entry, error)),
        }
    }
}

/// The name of a claimed warm container. Conversation ids that are not plain names
/// (letters, digits, `_`, `.`, `-`) are hex-encoded behind an `x`.
fn claimed_name(owner: &str, sandbox: &str, conversation: &str) -> String {
    let plain = !conversation.is_empty()
        && conversation
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let encoded = if plain {
        format!("p{conversation}")
    } else {
        format!("x{}", hex::encode(conversation))
    };
    format!("openhands-{owner}-{sandbox}{CLAIM_MARK}{encoded}")
}

/// The conversation recorded in a claimed container's name, if it is one.
fn claimed_conversation(name: &str, sandbox: &str) -> Option<String> {
    let (_, after) = name.split_once(&format!("-{sandbox}{CLAIM_MARK}"))?;
    match after.split_at_checked(1)? {
        ("p", plain) if !plain.is_empty() => Some(plain.to_string()),
        ("x", hex) => String::from_utf8(hex::decode(hex).ok()?).ok(),
        _ => None,
    }
}

/// Parses `find -printf '%y\t%s\t%p\0'` output.
pub fn parse_listing(stdout: &str) -> Vec<FileEntry> {
    let mut entries: Vec<FileEntry> = stdout
        .split('\0')
        .filter_map(|record| {
            let mut fields = record.splitn(3, '\t');
            let kind = match fields.next()? {
                "f" => FileKind::File,
                "d" => FileKind::Directory,
                "l" => FileKind::Symlink,
                _ => FileKind::Other,
            };
            let size = fields.next()?.parse().unwrap_or(0);
            let path = fields.next()?.to_string();
            Some(FileEntry { path, kind, size })
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_round_trip() {
        for conversation in ["01jabc", "conv 1/é", "a-b_c.d"] {
            let name = claimed_name("owner-1", "01sbx", conversation);
            assert_eq!(
                claimed_conversation(&name, "01sbx").as_deref(),
                Some(conversation)
            );
        }
        assert_eq!(claimed_conversation("openhands-owner-01sbx", "01sbx"), None);
    }

    #[test]
    fn listing() {
        let entries = parse_listing("f\t12\t/w/b.txt\0d\t4096\t/w/a\0");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "/w/a");
        assert_eq!(entries[0].kind, FileKind::Directory);
        assert_eq!(entries[1].size, 12);
    }
}
