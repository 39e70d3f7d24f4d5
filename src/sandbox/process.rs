//! The `process` backend — UNSAFE, for development only: commands run on this machine as the
//! service's own user, in a workspace directory, with no isolation at all. It needs the explicit
//! opt-in SANDBOX_ALLOW_UNSAFE_PROCESS=true and says so loudly whenever it starts.
//!
//! The sandbox's `/workspace` is the directory `SANDBOX_PROCESS_ROOT/<sandbox id>`; file
//! operations reach nothing else. The shell is the same session as in a container, on a local
//! pseudo-terminal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_util::io::ReaderStream;

use super::paths::{sandbox_path, split};
use super::session::{self, ShellSession, Timeouts};
use super::{
    CommandOutcome, CommandRequest, ExecOutput, FileEntry, FileKind, OutputSink, SandboxBackend,
    SandboxError, SandboxInfo, SandboxResult, SandboxSettings, SandboxStatus,
};

use super::WORKSPACE;

struct Shell {
    session: ShellSession,
    _child: tokio::process::Child,
}

struct Entry {
    id: String,
    conversation: String,
    directory: PathBuf,
    status: SyncMutex<SandboxStatus>,
    shell: Mutex<Option<Shell>>,
}

pub struct ProcessBackend {
    root: PathBuf,
    timeouts: Timeouts,
    sandboxes: SyncMutex<HashMap<String, Arc<Entry>>>,
}

fn lock<T>(mutex: &SyncMutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ProcessBackend {
    pub fn new(settings: &SandboxSettings) -> SandboxResult<ProcessBackend> {
        if !settings.sandbox_allow_unsafe_process {
            return Err(SandboxError::Other(anyhow::anyhow!(
                "the process backend needs SANDBOX_ALLOW_UNSAFE_PROCESS=true"
            )));
        }
        std::fs::create_dir_all(&settings.sandbox_process_root).with_context(|| {
            format!("cannot create {}", settings.sandbox_process_root.display())
        })?;
        let root = std::fs::canonicalize(&settings.sandbox_process_root)
            .context("cannot resolve SANDBOX_PROCESS_ROOT")?;
        tracing::warn!(
            root = %root.display(),
            "SANDBOX_BACKEND=process: the agent's commands run on THIS MACHINE WITHOUT ANY ISOLATION. Development only; never expose this service to untrusted users."
        );
        Ok(ProcessBackend {
            root,
            timeouts: Timeouts {
                no_output: settings.sandbox_no_output_timeout,
                command: settings.sandbox_command_timeout,
            },
            sandboxes: SyncMutex::new(HashMap::new()),
        })
    }

    fn entry(&self, id: &str) -> SandboxResult<Arc<Entry>> {
        lock(&self.sandboxes)
            .get(id)
            .cloned()
            .ok_or_else(|| SandboxError::NotFound(id.to_string()))
    }

    fn info(entry: &Entry) -> SandboxInfo {
        SandboxInfo {
            id: entry.id.clone(),
            conversation_id: Some(entry.conversation.clone()),
            status: *lock(&entry.status),
            image: "process (unsafe, no isolation)".into(),
            workspace: WORKSPACE.into(),
        }
    }

    async fn start_shell(entry: &Entry) -> SandboxResult<Shell> {
        let nonce = session::new_nonce();
        let (pty, pts) = pty_process::open().context("cannot open a pseudo-terminal")?;
        let argv = session::shell_command();
        let mut command = pty_process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&entry.directory)
            .kill_on_drop(true);
        for pair in session::environment(&nonce) {
            if let Some((key, value)) = pair.split_once('=') {
                command = command.env(key, value);
            }
        }
        // SAFETY: between fork and exec the hook only calls signal(2), which is
        // async-signal-safe. A shell started by a process that ignores SIGINT and SIGQUIT (a
        // background job of a non-interactive shell does) would inherit that, bash cannot
        // undo it, and C-c would never reach the agent's commands.
        let command = unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            })
        };
        let child = command.spawn(pts).context("cannot start bash")?;
        let (read, write) = pty.into_split();
        let session = ShellSession::start(
            Box::pin(write),
            Box::pin(ReaderStream::new(read)),
            &nonce,
            Duration::from_secs(10),
        )
        .await?;
        Ok(Shell {
            session,
            _child: child,
        })
    }
}

/// The real path of a sandbox path, which must lie under /workspace.
fn host_path(entry: &Entry, path: &str) -> SandboxResult<PathBuf> {
    let path = sandbox_path(path)?;
    let rest = if path == WORKSPACE {
        ""
    } else if let Some(rest) = path.strip_prefix("/workspace/") {
        rest
    } else {
        return Err(SandboxError::BadPath(format!(
            "{path} is outside /workspace, the only directory the process backend reaches"
        )));
    };
    let joined = entry.directory.join(rest);
    // A symlink inside the workspace must not lead out of it.
    let mut existing = joined.as_path();
    while !existing.exists() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    if let Ok(resolved) = std::fs::canonicalize(existing)
        && !resolved.starts_with(&entry.directory)
    {
        return Err(SandboxError::BadPath(format!(
            "{path} leads outside the workspace"
        )));
    }
    Ok(joined)
}

fn io_error(path: &str, error: std::io::Error) -> SandboxError {
    if error.kind() == std::io::ErrorKind::NotFound {
        SandboxError::FileNotFound(path.to_string())
    } else {
        SandboxError::BadPath(format!("{path}: {error}"))
    }
}

#[async_trait]
impl SandboxBackend for ProcessBackend {
    fn kind(&self) -> &'static str {
        "process"
    }

    async fn start(&self, conversation_id: &str) -> SandboxResult<SandboxInfo> {
        let existing = lock(&self.sandboxes)
            .values()
            .find(|e| e.conversation == conversation_id)
            .cloned();
        if let Some(entry) = existing {
            *lock(&entry.status) = SandboxStatus::Running;
            return Ok(Self::info(&entry));
        }
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let directory = self.root.join(&id);
        std::fs::create_dir_all(&directory)
            .with_context(|| format!("cannot create {}", directory.display()))?;
        let entry = Arc::new(Entry {
            id: id.clone(),
            conversation: conversation_id.to_string(),
            directory,
            status: SyncMutex::new(SandboxStatus::Running),
            shell: Mutex::new(None),
        });
        lock(&self.sandboxes).insert(id, entry.clone());
        Ok(Self::info(&entry))
    }

    async fn get(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(sandbox_id)?;
        Ok(Self::info(&entry))
    }

    async fn find(&self, conversation_id: &str) -> SandboxResult<Option<SandboxInfo>> {
        Ok(lock(&self.sandboxes)
            .values()
            .find(|e| e.conversation == conversation_id)
            .map(|e| Self::info(e)))
    }

    async fn list(&self) -> SandboxResult<Vec<SandboxInfo>> {
        Ok(lock(&self.sandboxes)
            .values()
            .map(|e| Self::info(e))
            .collect())
    }

    /// Only marks the sandbox: local processes are not frozen.
    async fn pause(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(sandbox_id)?;
        *lock(&entry.status) = SandboxStatus::Paused;
        Ok(Self::info(&entry))
    }

    async fn resume(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(sandbox_id)?;
        *lock(&entry.status) = SandboxStatus::Running;
        Ok(Self::info(&entry))
    }

    async fn stop(&self, sandbox_id: &str) -> SandboxResult<SandboxInfo> {
        let entry = self.entry(sandbox_id)?;
        *entry.shell.lock().await = None;
        *lock(&entry.status) = SandboxStatus::Stopped;
        Ok(Self::info(&entry))
    }

    async fn remove(&self, sandbox_id: &str) -> SandboxResult<()> {
        let entry = lock(&self.sandboxes)
            .remove(sandbox_id)
            .ok_or_else(|| SandboxError::NotFound(sandbox_id.to_string()))?;
        *entry.shell.lock().await = None;
        let _ = tokio::fs::remove_dir_all(&entry.directory).await;
        Ok(())
    }

    async fn execute(
        &self,
        sandbox_id: &str,
        request: &CommandRequest,
        output: Option<OutputSink>,
    ) -> SandboxResult<CommandOutcome> {
        let entry = self.entry(sandbox_id)?;
        *lock(&entry.status) = SandboxStatus::Running;
        let mut guard = entry.shell.lock().await;
        if !guard.as_ref().is_some_and(|s| s.session.is_open()) {
            if request.is_input || request.command.trim().is_empty() {
                return Err(SandboxError::NoRunningCommand);
            }
            *guard = Some(Self::start_shell(&entry).await?);
        }
        let Some(shell) = guard.as_mut() else {
            return Err(SandboxError::NoRunningCommand);
        };
        let script = if !request.is_input && session::needs_script(&request.command) {
            let path = entry
                .directory
                .join(format!(".openhands-command-{}.sh", session::new_nonce()));
            tokio::fs::write(&path, &request.command)
                .await
                .context("cannot write the command script")?;
            Some(path.to_string_lossy().into_owned())
        } else {
            None
        };
        shell
            .session
            .execute(request, script.as_deref(), self.timeouts, output.as_ref())
            .await
    }

    async fn open_stdio(
        &self,
        sandbox_id: &str,
        argv: &[String],
        env: &[(String, String)],
        workdir: &str,
    ) -> SandboxResult<crate::sandbox::StdioProcess> {
        let entry = self.entry(sandbox_id)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(SandboxError::Other(anyhow::anyhow!("no program to run")));
        };
        let workdir = host_path(&entry, workdir)?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(workdir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {program}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SandboxError::Other(anyhow::anyhow!(
                "{program} started without its standard input and output"
            )));
        };
        // The child is reaped (and killed if still running) once its output is dropped.
        let output = ChildOutput {
            stdout,
            _child: child,
        };
        Ok(crate::sandbox::StdioProcess {
            output: Box::pin(output),
            input: Box::pin(stdin),
        })
    }

    async fn exec(
        &self,
        sandbox_id: &str,
        argv: &[String],
        workdir: &str,
    ) -> SandboxResult<ExecOutput> {
        let entry = self.entry(sandbox_id)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(SandboxError::Other(anyhow::anyhow!("no program to run")));
        };
        let workdir = host_path(&entry, workdir)?;
        let output = tokio::process::Command::new(program)
            .args(args)
            .current_dir(workdir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {program}"))?;
        Ok(ExecOutput {
            exit_code: output.status.code().map(i64::from).unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    async fn read_file(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        let entry = self.entry(sandbox_id)?;
        let real = host_path(&entry, path)?;
        if real.is_dir() {
            return Err(SandboxError::BadPath(format!(
                "{path} is a directory, not a file"
            )));
        }
        tokio::fs::read(&real).await.map_err(|e| io_error(path, e))
    }

    async fn write_file(&self, sandbox_id: &str, path: &str, content: &[u8]) -> SandboxResult<()> {
        let entry = self.entry(sandbox_id)?;
        let real = host_path(&entry, path)?;
        if let Some(parent) = real.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(path, e))?;
        }
        tokio::fs::write(&real, content)
            .await
            .map_err(|e| io_error(path, e))
    }

    async fn list_files(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<FileEntry>> {
        let entry = self.entry(sandbox_id)?;
        let real = host_path(&entry, path)?;
        let base = sandbox_path(path)?;
        let mut reader = tokio::fs::read_dir(&real)
            .await
            .map_err(|e| io_error(path, e))?;
        let mut entries = Vec::new();
        while let Some(item) = reader.next_entry().await.map_err(|e| io_error(path, e))? {
            let metadata = tokio::fs::symlink_metadata(item.path())
                .await
                .map_err(|e| io_error(path, e))?;
            let kind = if metadata.is_symlink() {
                FileKind::Symlink
            } else if metadata.is_dir() {
                FileKind::Directory
            } else if metadata.is_file() {
                FileKind::File
            } else {
                FileKind::Other
            };
            let name = item.file_name().to_string_lossy().into_owned();
            let separator = if base.ends_with('/') { "" } else { "/" };
            entries.push(FileEntry {
                path: format!("{base}{separator}{name}"),
                kind,
                size: metadata.len(),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    async fn put_archive(
        &self,
        sandbox_id: &str,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()> {
        let entry = self.entry(sandbox_id)?;
        let real = host_path(&entry, directory)?;
        let directory = directory.to_string();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&real).map_err(|e| io_error(&directory, e))?;
            // `unpack` refuses entries that would land outside `real`.
            tar::Archive::new(tar.as_slice())
                .unpack(&real)
                .map_err(|e| SandboxError::BadPath(format!("cannot extract into {directory}: {e}")))
        })
        .await
        .context("the extraction task failed")?
    }

    async fn get_archive(&self, sandbox_id: &str, path: &str) -> SandboxResult<Vec<u8>> {
        let entry = self.entry(sandbox_id)?;
        let real = host_path(&entry, path)?;
        let normalized = sandbox_path(path)?;
        let name = split(&normalized)
            .map(|(_, name)| name.to_string())
            .unwrap_or_else(|| "workspace".into());
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            let mut builder = tar::Builder::new(Vec::new());
            builder.follow_symlinks(false);
            let added = if real.is_dir() {
                builder.append_dir_all(&name, &real)
            } else {
                builder.append_path_with_name(&real, &name)
            };
            added.map_err(|e| io_error(&path, e))?;
            builder
                .into_inner()
                .map_err(|e| SandboxError::Other(e.into()))
        })
        .await
        .context("the archive task failed")?
    }
}

impl std::fmt::Debug for ProcessBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessBackend")
            .field("root", &self.root)
            .finish()
    }
}

/// A child's standard output that owns the child, so that the process lives as long as it is
/// read and is killed when it is dropped.
struct ChildOutput {
    stdout: tokio::process::ChildStdout,
    _child: tokio::process::Child,
}

impl tokio::io::AsyncRead for ChildOutput {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}
