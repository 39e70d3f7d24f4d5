//! Running commands. Each sandbox has one long-lived shell session (a TTY exec, started on first
//! use or when its shell ended) for agent commands; a command too long to type is uploaded as a
//! script and sourced. Single programs (`exec`) run as their own exec with stdout and stderr
//! apart, bounded by SANDBOX_COMMAND_TIMEOUT. When a command fails because its container died,
//! the error says why.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures::{StreamExt, TryStreamExt};

use super::{DockerBackend, Entry, WORKSPACE, engine_error};
use crate::sandbox::archive;
use crate::sandbox::paths::sandbox_path;
use crate::sandbox::session::{self, ShellSession, Timeouts};
use crate::sandbox::{
    CommandOutcome, CommandRequest, ExecOutput, OutputSink, SandboxError, SandboxResult,
    SandboxStatus, StdioProcess,
};

const SESSION_STARTUP: Duration = Duration::from_secs(15);
/// Where a command too long to type is written before it is sourced.
const SCRIPT_DIR: &str = "/tmp";

impl DockerBackend {
    /// Starts the sandbox's shell session if it has none (or its old one ended).
    pub(super) async fn session_ready(&self, entry: &Entry) -> SandboxResult<()> {
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

    pub(super) async fn run_argv(
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

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            no_output: self.settings.sandbox_no_output_timeout,
            command: self.settings.sandbox_command_timeout,
        }
    }

    /// [`SandboxBackend::execute`]: a command in the sandbox's shell session.
    pub(super) async fn execute_in_session(
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

    /// [`SandboxBackend::open_stdio`]: a program on its own, its stdin and stdout attached.
    pub(super) async fn open_stdio_of(
        &self,
        sandbox_id: &str,
        argv: &[String],
        env: &[(String, String)],
        workdir: &str,
    ) -> SandboxResult<StdioProcess> {
        if argv.is_empty() {
            return Err(SandboxError::Other(anyhow::anyhow!("no program to run")));
        }
        let workdir = sandbox_path(workdir)?;
        let entry = self.ready(sandbox_id).await?;
        let exec = self
            .docker
            .create_exec(
                &entry.container,
                ExecConfig {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(argv.to_vec()),
                    env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                    working_dir: Some(workdir),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.container_error(&entry, e))?;
        let started = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| self.container_error(&entry, e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(SandboxError::Other(anyhow::anyhow!(
                "the engine did not attach to the program"
            )));
        };
        // Only standard output carries the protocol; what the program says on standard error
        // is its own log.
        let stdout = output
            .map_err(std::io::Error::other)
            .try_filter_map(|item| async move {
                Ok(match item {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => Some(message),
                    LogOutput::StdErr { .. } | LogOutput::StdIn { .. } => None,
                })
            });
        Ok(StdioProcess {
            output: Box::pin(tokio_util::io::StreamReader::new(Box::pin(stdout))),
            input,
        })
    }

    /// [`SandboxBackend::exec`]: a program on its own, outside the session.
    pub(super) async fn exec_argv(
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
}
