//! The repository's own scripts, run in the sandbox: `.openhands/setup.sh` in each new
//! checkout before the agent's first step (a failure is told to the model, not fatal), and
//! `.openhands/pre-commit.sh` before the worker takes the agent's commits out (a failure goes
//! back to the model with its output, at most [`PRE_COMMIT_ATTEMPTS`] times, then is reported
//! with the work). Their output and exit codes are `run` observations in the event log.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::events::{self, Draft, Item};
use super::run::Run;
use crate::sandbox::{CommandRequest, SandboxBackend};

pub const SETUP_SCRIPT: &str = ".openhands/setup.sh";
pub const PRE_COMMIT_SCRIPT: &str = ".openhands/pre-commit.sh";
/// How long a script may run before it is interrupted.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);
/// Failed pre-commit runs of one task handed back to the model before the work goes out as it is.
pub const PRE_COMMIT_ATTEMPTS: usize = 3;

/// What the pre-commit script said of the agent's work.
pub(super) enum PreCommit {
    /// It passed, or the repository has none.
    Passed,
    /// It failed and the model was told: the task goes on.
    Retry,
    /// It still fails after the last attempt: the work goes out, with this said.
    StillFailing(String),
}

impl Run<'_> {
    /// Runs the setup script of the repository this run just checked out into `sandbox_id`,
    /// when it has one.
    pub(super) async fn run_setup_script(
        &mut self,
        sandboxes: &dyn SandboxBackend,
        sandbox_id: &str,
    ) -> anyhow::Result<()> {
        let Some(checkout) = &self.checkout else {
            return Ok(());
        };
        if !is_plain_file(&checkout.local_repo().join(SETUP_SCRIPT)) {
            return Ok(());
        }
        let repository_dir = checkout.path.clone();
        let (output, exit_code) =
            run_script(sandboxes, sandbox_id, &repository_dir, SETUP_SCRIPT).await;
        let content = if exit_code == 0 {
            format!(
                "The repository's setup script ({SETUP_SCRIPT}) ran before you started. Its output:\n{output}"
            )
        } else {
            format!(
                "The repository's setup script ({SETUP_SCRIPT}) failed with exit code {exit_code} before you started; the environment may be incomplete. Its output:\n{output}"
            )
        };
        let draft = script_observation(&content, "setup", SETUP_SCRIPT, exit_code);
        let draft = self.hidden(draft);
        self.record(vec![draft], None).await?;
        Ok(())
    }

    /// Runs the pre-commit script of the repository in the sandbox, when the work is about to
    /// go out and the repository has one.
    pub(super) async fn pre_commit_gate(&mut self) -> anyhow::Result<PreCommit> {
        let (Some(_), Some(_), Some(checkout)) = (
            self.place(),
            self.history.repository(),
            self.history.checkout().cloned(),
        ) else {
            return Ok(PreCommit::Passed);
        };
        let Some(sandboxes) = self.sandboxes.clone() else {
            return Ok(PreCommit::Passed);
        };
        let sandbox_id = self.toolbox.sandbox_id.clone();
        let repository_dir = checkout.path.clone();
        let script = format!("{repository_dir}/{PRE_COMMIT_SCRIPT}");
        let present = sandboxes
            .exec(&sandbox_id, &["test".into(), "-f".into(), script], "/")
            .await
            .is_ok_and(|done| done.exit_code == 0);
        if !present {
            return Ok(PreCommit::Passed);
        }
        let (output, exit_code) = run_script(
            sandboxes.as_ref(),
            &sandbox_id,
            &repository_dir,
            PRE_COMMIT_SCRIPT,
        )
        .await;
        if exit_code == 0 {
            let content = format!(
                "The repository's pre-commit script ({PRE_COMMIT_SCRIPT}) passed. Its output:\n{output}"
            );
            let draft = self.hidden(script_observation(
                &content,
                "pre-commit",
                PRE_COMMIT_SCRIPT,
                0,
            ));
            self.record(vec![draft], None).await?;
            return Ok(PreCommit::Passed);
        }
        let failures = self.pre_commit_failures() + 1;
        let content = if failures < PRE_COMMIT_ATTEMPTS {
            format!(
                "The repository's pre-commit script ({PRE_COMMIT_SCRIPT}) failed with exit code {exit_code}, so your work was not handed over. Fix what it reports, commit, and finish again. Its output:\n{output}"
            )
        } else {
            format!(
                "The repository's pre-commit script ({PRE_COMMIT_SCRIPT}) failed with exit code {exit_code} again ({PRE_COMMIT_ATTEMPTS} attempts); the work is handed over as it is. Its output:\n{output}"
            )
        };
        let draft = self.hidden(script_observation(
            &content,
            "pre-commit",
            PRE_COMMIT_SCRIPT,
            exit_code,
        ));
        self.record(vec![draft], None).await?;
        Ok(if failures < PRE_COMMIT_ATTEMPTS {
            PreCommit::Retry
        } else {
            PreCommit::StillFailing(format!(
                "The repository's pre-commit script ({PRE_COMMIT_SCRIPT}) still fails (exit code {exit_code})."
            ))
        })
    }

    /// Failed pre-commit runs in the current task.
    fn pre_commit_failures(&self) -> usize {
        self.history.items[self.history.task_start()..]
            .iter()
            .filter(|item| {
                matches!(item, Item::Observation { name, extras, exit_code, .. }
                    if name == "run"
                        && extras.script.as_deref() == Some("pre-commit")
                        && *exit_code != Some(0))
            })
            .count()
    }

    /// The draft with the owner's secret values hidden, as every observation.
    fn hidden(&self, mut draft: Draft) -> Draft {
        events::hide_secrets(&mut draft.doc, &self.secret_values);
        draft
    }
}

/// Runs `script` (relative to `repository_dir`) with bash in the sandbox's shell session;
/// returns its output and exit code (-1 when it could not run or was interrupted).
async fn run_script(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    repository_dir: &str,
    script: &str,
) -> (String, i64) {
    let command = format!("cd {repository_dir} && bash {script}");
    let request = CommandRequest::new(command).with_timeout(SCRIPT_TIMEOUT);
    match sandboxes.execute(sandbox_id, &request, None).await {
        Ok(outcome) if outcome.timed_out => (
            format!(
                "{}\n[interrupted after {} s]",
                outcome.output,
                SCRIPT_TIMEOUT.as_secs()
            ),
            -1,
        ),
        Ok(outcome) => (outcome.output.trim_end().to_string(), outcome.exit_code),
        Err(error) => (format!("[the script could not be run: {error}]"), -1),
    }
}

/// A `run` observation of one of the repository's scripts.
fn script_observation(content: &str, script: &str, path: &str, exit_code: i64) -> Draft {
    Draft {
        source: events::ENVIRONMENT,
        kind: "run".into(),
        doc: json!({
            "observation": "run",
            "content": content,
            "extras": {
                "command": format!("bash {path}"),
                "exit_code": exit_code,
                "script": script,
                "hidden": false,
                "metadata": {"exit_code": exit_code, "working_dir": super::prompt::REPOSITORY_DIR},
            },
            "message": format!("Ran {path}"),
        }),
    }
}

/// Whether `path` is a regular file, not a link (the clone is the repository's, untrusted).
fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}
