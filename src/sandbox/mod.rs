//! Sandboxes in which the agent's commands run: one `SandboxBackend` interface with three
//! backends — `docker` (bollard, hardened containers, the warm pool), `remote` (a client of the
//! Runtime API served by `openhands runtime-api` on a Docker host) and `process` (a local
//! directory without isolation, for development only) — plus the persistent shell session,
//! file transfer and the git round trip that keeps credentials out of the sandbox.

pub mod archive;
pub mod docker;
pub mod git;
pub mod image;
pub mod output;
pub mod paths;
pub mod process;
pub mod remote;
pub mod runtime_api;
pub mod session;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use settings::{BackendKind, NetworkMode, SandboxSettings};

/// Where a command's output goes while it runs (the live view); the final result is returned
/// separately.
pub type OutputSink = tokio::sync::mpsc::UnboundedSender<String>;

/// The directory in which the shell starts and repositories are placed, in every sandbox.
pub const WORKSPACE: &str = "/workspace";

/// The sandboxes of this service, whichever backend holds them.
pub type Sandboxes = Arc<dyn SandboxBackend>;

/// The sandbox a conversation works in, as every backend reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// Stable id of the sandbox (also the `runtime_id` of the Runtime API).
    pub id: String,
    /// The conversation it is assigned to; `None` while it waits in the warm pool.
    pub conversation_id: Option<String>,
    pub status: SandboxStatus,
    pub image: String,
    /// The directory in which the shell starts and repositories are placed.
    pub workspace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    Running,
    Paused,
    Stopped,
}

/// One call of the shell tool, with OpenHands' `execute_bash` semantics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommandRequest {
    /// The command; empty means "wait for more output of the running command".
    pub command: String,
    /// Send `command` to the running process instead of starting a new command: text, or one
    /// of `C-c`, `C-d`, `C-z`.
    #[serde(default)]
    pub is_input: bool,
    /// Block up to this long for the command to finish, then interrupt it. Without it, a command
    /// that prints nothing new for the no-output timeout returns and keeps running.
    #[serde(default, with = "optional_seconds")]
    pub timeout: Option<Duration>,
}

impl CommandRequest {
    pub fn new(command: impl Into<String>) -> Self {
        CommandRequest {
            command: command.into(),
            ..CommandRequest::default()
        }
    }

    pub fn input(text: impl Into<String>) -> Self {
        CommandRequest {
            command: text.into(),
            is_input: true,
            timeout: None,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// What a shell call produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// Output (stdout and stderr as the terminal shows them), cut in the middle when longer
    /// than 30,000 characters, followed by any note about the command's state.
    pub output: String,
    /// The command's exit code; -1 while it is still running.
    pub exit_code: i64,
    /// The command has not finished: more input or an empty command (to wait) may follow.
    pub still_running: bool,
    /// The hard timeout was reached and the command was interrupted.
    pub timed_out: bool,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute path inside the sandbox.
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// The result of a one-off program run inside a sandbox (outside the shell session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A program started inside a sandbox whose standard input and output are a byte stream to the
/// caller (an MCP server speaking stdio); its standard error is dropped. Dropping both halves
/// closes its input, which ends such a server.
pub struct StdioProcess {
    pub output: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Why a sandbox operation failed. Each message names the cause and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot reach the Docker engine ({0}); start it (`systemctl start docker`; as root, `./scripts/run` installs and starts it) or point DOCKER_HOST at it"
    )]
    EngineUnavailable(String),
    #[error(
        "the sandbox image `{0}` is not on this Docker host; build it with `openhands sandbox build-image --tag {0}`"
    )]
    ImageMissing(String),
    #[error("no sandbox `{0}`")]
    NotFound(String),
    #[error("the sandbox `{id}` is no longer running ({reason}); start a new one")]
    Gone { id: String, reason: String },
    #[error("{0}")]
    BadPath(String),
    #[error("no such file or directory in the sandbox: {0}")]
    FileNotFound(String),
    #[error(
        "the previous command is still running; send is_input=true with input (or C-c to interrupt), or an empty command to keep waiting"
    )]
    Busy,
    #[error("no command is running to receive input")]
    NoRunningCommand,
    #[error("the Runtime API answered {status}: {message}")]
    Remote { status: u16, message: String },
    #[error("the Runtime API rejected the key (RUNTIME_API_KEY)")]
    RemoteUnauthorized,
    #[error("cannot reach the Runtime API at {url}: {reason}")]
    RemoteUnavailable { url: String, reason: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type SandboxResult<T> = Result<T, SandboxError>;

/// The one interface through which workers use sandboxes, wherever they live.
#[async_trait]
pub trait SandboxBackend: Send + Sync + 'static {
    /// `docker`, `remote` or `process`.
    fn kind(&self) -> &'static str;

    /// A running sandbox for the conversation: its existing one (resumed if paused), else one
    /// claimed from the warm pool, else a newly started one.
    async fn start(&self, conversation_id: &str) -> SandboxResult<SandboxInfo>;
    async fn get(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo>;
    /// The conversation's sandbox, if it has one.
    async fn find(&self, conversation_id: &str) -> SandboxResult<Option<SandboxInfo>>;
    /// Every sandbox of this backend, warm ones included.
    async fn list(&self) -> SandboxResult<Vec<SandboxInfo>>;
    async fn pause(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo>;
    async fn resume(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo>;
    /// Stops the sandbox's processes; its files stay until it is removed. `resume` starts it again.
    async fn stop(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo>;
    /// Ends the sandbox and deletes everything in it.
    async fn remove(&self, sandbox_id: &str) -> SandboxResult<()>;

    /// Runs one call of the shell tool in the sandbox's long-lived bash session.
    async fn execute(
        &self,
        sandbox_id: &str,
        request: &CommandRequest,
        output: Option<OutputSink>,
    ) -> SandboxResult<CommandOutcome>;
    /// Runs a program with these arguments (no shell in between), as the sandbox user.
    async fn exec(
        &self,
        sandbox_id: &str,
        argv: &[String],
        workdir: &str,
    ) -> SandboxResult<ExecOutput>;

    /// Starts a program (no shell in between) with these extra environment variables, as the
    /// sandbox user, attached to the caller by its standard input and output.
    async fn open_stdio(
        &self,
        _sandbox_id: &str,
        _argv: &[String],
        _env: &[(String, String)],
        _workdir: &str,
    ) -> SandboxResult<StdioProcess> {
        Err(SandboxError::Other(anyhow::anyhow!(
            "programs attached by their standard input and output (stdio MCP servers) need the docker or process sandbox backend, not {}",
            self.kind()
        )))
    }

    async fn read_file(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>>;
    /// Writes the file (creating its parent directories), owned by the sandbox user.
    async fn write_file(&self, sandbox_id: &str, path: &str, content: &[u8]) -> SandboxResult<()>;
    /// The entries of a directory, one level deep.
    async fn list_files(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<FileEntry>>;
    /// Extracts a tar archive into `directory` (created when missing), owned by the sandbox user.
    async fn put_archive(
        &self,
        sandbox_id: &str,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()>;
    /// A tar archive of `path` (a file or a directory, under its own name).
    async fn get_archive(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>>;

    /// Whether sandboxes can be started: the engine (or the Runtime API) answers.
    async fn check(&self) -> SandboxResult<()> {
        self.list().await.map(|_| ())
    }
}

/// Serde for an optional duration in (fractional) seconds, as OpenHands' `timeout` parameter.
mod optional_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let seconds = Option::<f64>::deserialize(d)?;
        match seconds {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            Some(s) => Err(serde::de::Error::custom(format!(
                "timeout must be between 0 and 86400 seconds, got {s}"
            ))),
        }
    }
}

/// The sandboxes of SANDBOX_BACKEND. For `docker`, the warm pool and idle reaping run in the
/// background until `shutdown`.
pub async fn connect(
    settings: &SandboxSettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> SandboxResult<Sandboxes> {
    match settings.sandbox_backend {
        BackendKind::Docker => {
            let backend = docker::DockerBackend::connect(settings).await?;
            tokio::spawn(
                backend
                    .clone()
                    .run_maintenance(MAINTENANCE_INTERVAL, shutdown),
            );
            Ok(backend)
        }
        BackendKind::Process => Ok(Arc::new(process::ProcessBackend::new(settings)?)),
        BackendKind::Remote => {
            let (Some(url), Some(key)) = (&settings.runtime_api_url, &settings.runtime_api_key)
            else {
                return Err(SandboxError::Other(anyhow::anyhow!(
                    "SANDBOX_BACKEND=remote needs RUNTIME_API_URL and RUNTIME_API_KEY"
                )));
            };
            Ok(Arc::new(remote::RemoteBackend::new(url, key.clone())?))
        }
    }
}

/// How often the warm pool is topped up and idle sandboxes are looked at.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
