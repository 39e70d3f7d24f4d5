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
//!
//! This file holds the backend type, connecting to the engine, and a sandbox's lifecycle: the
//! hardened container settings, create, start (through the warm pool, else a new container),
//! pause, resume, stop and remove, and telling why a container died. The other parts:
//! `pool.rs` (the warm pool and claiming), `reap.rs` (re-adoption, dead and idle sandboxes, the
//! maintenance pass), `exec.rs` (the shell session and programs), `files.rs` (files and trees in
//! and out).

mod exec;
mod files;
mod pool;
mod reap;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StopContainerOptions,
};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

use super::session::ShellSession;
use super::{
    CommandOutcome, CommandRequest, ExecOutput, FileEntry, NetworkMode, OutputSink, SandboxBackend,
    SandboxError, SandboxInfo, SandboxResult, SandboxSettings, SandboxStatus,
};

pub use reap::Maintenance;

pub const LABEL_OWNER: &str = "openhands.owner";
pub const LABEL_SANDBOX: &str = "openhands.sandbox";
pub const LABEL_CONVERSATION: &str = "openhands.conversation";
pub use super::WORKSPACE;
const SANDBOX_USER: &str = "openhands";
/// PID 1 of every sandbox: bash reaps orphaned processes (so zombies do not eat the pids
/// limit) and exits at once on SIGTERM.
const KEEPALIVE: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done";
/// How long a sandbox operation waits for an engine that stopped answering to come back (a
/// restart of dockerd) before it gives up.
pub const ENGINE_RETURN_WAIT: Duration = Duration::from_secs(60);

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

    // Commands run in exec.rs; files move in files.rs.
    async fn execute(
        &self,
        sandbox_id: &str,
        request: &CommandRequest,
        output: Option<OutputSink>,
    ) -> SandboxResult<CommandOutcome> {
        self.execute_in_session(sandbox_id, request, output).await
    }

    async fn exec(
        &self,
        sandbox_id: &str,
        argv: &[String],
        workdir: &str,
    ) -> SandboxResult<ExecOutput> {
        self.exec_argv(sandbox_id, argv, workdir).await
    }

    async fn open_stdio(
        &self,
        sandbox_id: &str,
        argv: &[String],
        env: &[(String, String)],
        workdir: &str,
    ) -> SandboxResult<crate::sandbox::StdioProcess> {
        self.open_stdio_of(sandbox_id, argv, env, workdir).await
    }

    async fn read_file(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        self.read_file_from(sandbox_id, path).await
    }

    async fn write_file(&self, sandbox_id: &str, path: &str, content: &[u8]) -> SandboxResult<()> {
        self.write_file_to(sandbox_id, path, content).await
    }

    async fn list_files(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<FileEntry>> {
        self.list_files_in(sandbox_id, path).await
    }

    async fn put_archive(
        &self,
        sandbox_id: &str,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()> {
        self.put_archive_into(sandbox_id, directory, tar).await
    }

    async fn get_archive(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        self.get_archive_from(sandbox_id, path).await
    }
}
