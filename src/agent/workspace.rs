//! The dashboard's view into a conversation's sandbox: its changes against the commit the run
//! started from, a directory's entries, a file's bytes; and the removal of a deleted
//! conversation's sandbox. The web tier never touches a sandbox: it queues these jobs, and a
//! worker that holds the sandboxes answers them through the database.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AgentRuntime;
use super::events::{self, Checkout};
use crate::queue::{Job, JobContext};
use crate::sandbox::{SandboxBackend, SandboxError, SandboxStatus, WORKSPACE};
use crate::storage::{Db, EventRange, WorkspaceRead};

/// A read the web tier waits for (`workspace_reads.id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadWorkspace {
    pub read_id: String,
}

impl Job for ReadWorkspace {
    const QUEUE: &'static str = "workspace";
    /// Someone is waiting: a failure is answered to them, never retried behind their back.
    const MAX_ATTEMPTS: u32 = 1;
}

/// Removes the sandbox of a conversation that was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveSandbox {
    pub conversation_id: String,
}

impl Job for RemoveSandbox {
    const QUEUE: &'static str = "sandbox-removal";
    const MAX_ATTEMPTS: u32 = 3;
}

/// The largest file served for download.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// The most diff text answered for all files together; past it, files show counts only.
const MAX_CHANGES_CHARS: usize = 1_000_000;
/// The most diff text shown for one file.
const MAX_FILE_DIFF_CHARS: usize = 100_000;

/// Why a read has no answer: the sandbox is gone, or the read failed.
enum Refusal {
    Gone(String),
    Failed(String),
}

impl From<SandboxError> for Refusal {
    fn from(error: SandboxError) -> Self {
        match error {
            SandboxError::NotFound(_) | SandboxError::Gone { .. } => Refusal::Gone(format!(
                "This conversation's sandbox is gone ({error}); its files were removed with it."
            )),
            other => Refusal::Failed(other.to_string()),
        }
    }
}

pub(crate) async fn handle_read(
    job: ReadWorkspace,
    ctx: Data<JobContext>,
    runtime: Data<Arc<AgentRuntime>>,
) -> Result<(), BoxDynError> {
    let db = &ctx.db;
    // Nobody waits any more (the asker gave up, or the conversation was deleted).
    let Some(read) = db.workspace_read(&job.read_id).await? else {
        return Ok(());
    };
    match answer(&runtime, db, &read).await {
        Ok((content_type, body)) => {
            db.answer_workspace_read(&read.id, "done", Some(content_type), Some(&body), None)
                .await?
        }
        Err(Refusal::Gone(why)) => {
            db.answer_workspace_read(&read.id, "gone", None, None, Some(&why))
                .await?
        }
        Err(Refusal::Failed(why)) => {
            db.answer_workspace_read(&read.id, "failed", None, None, Some(&why))
                .await?
        }
    }
    Ok(())
}

pub(crate) async fn handle_removal(
    job: RemoveSandbox,
    runtime: Data<Arc<AgentRuntime>>,
) -> Result<(), BoxDynError> {
    let sandboxes = runtime.sandboxes().await?;
    if let Some(sandbox) = sandboxes.find(&job.conversation_id).await? {
        match sandboxes.remove(&sandbox.id).await {
            Ok(()) | Err(SandboxError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        tracing::info!(conversation_id = %job.conversation_id, sandbox_id = %sandbox.id, "sandbox of a deleted conversation removed");
    }
    Ok(())
}

async fn answer(
    runtime: &AgentRuntime,
    db: &Db,
    read: &WorkspaceRead,
) -> Result<(&'static str, Vec<u8>), Refusal> {
    let sandboxes = runtime.sandboxes().await.map_err(Refusal::Failed)?;
    let Some(sandbox) = sandboxes.find(&read.conversation_id).await? else {
        return Err(Refusal::Gone(
            "This conversation has no sandbox now: it was removed after the run ended, or never started. Send a message to start a new one."
                .into(),
        ));
    };
    // Reading needs it running; the idle sweep pauses it again later.
    if sandbox.status != SandboxStatus::Running {
        sandboxes.resume(&sandbox.id).await?;
    }
    let path = read.path.as_deref().unwrap_or(WORKSPACE);
    match read.kind.as_str() {
        "changes" => {
            let checkout = latest_checkout(db, &read.conversation_id).await?;
            let changes = changes(sandboxes.as_ref(), &sandbox.id, checkout.as_ref()).await?;
            Ok(("application/json", changes.to_string().into_bytes()))
        }
        "files" => {
            let mut entries = sandboxes.list_files(&sandbox.id, path).await?;
            entries.sort_by(|a, b| a.path.cmp(&b.path));
            let listing = json!({"path": path, "entries": entries});
            Ok(("application/json", listing.to_string().into_bytes()))
        }
        "file" => {
            let size = file_size(sandboxes.as_ref(), &sandbox.id, path).await?;
            if size > MAX_FILE_BYTES {
                return Err(Refusal::Failed(format!(
                    "{path} is {size} bytes; files up to {MAX_FILE_BYTES} bytes are served"
                )));
            }
            Ok((
                "application/octet-stream",
                sandboxes.read_file(&sandbox.id, path).await?,
            ))
        }
        other => Err(Refusal::Failed(format!("unknown workspace read `{other}`"))),
    }
}

/// The repository the run placed in the sandbox, as its event recorded it.
async fn latest_checkout(db: &Db, conversation_id: &str) -> Result<Option<Checkout>, Refusal> {
    let kinds = [events::CHECKOUT.to_string()];
    let range = EventRange {
        start_id: 0,
        end_id: None,
        reverse: true,
        kinds: &kinds,
        source: None,
        limit: 1,
    };
    let found = db
        .events_in(conversation_id, &range)
        .await
        .map_err(|e| Refusal::Failed(e.to_string()))?;
    Ok(found
        .first()
        .and_then(|event| serde_json::from_str::<Checkout>(&event.payload).ok()))
}

/// A regular file's size, refusing directories and other kinds with a clear reason.
async fn file_size(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    path: &str,
) -> Result<u64, Refusal> {
    let argv = ["stat", "-L", "-c", "%F|%s", "--", path].map(String::from);
    let out = sandboxes.exec(sandbox_id, &argv, WORKSPACE).await?;
    if out.exit_code != 0 {
        return Err(Refusal::Failed(format!(
            "no such file in the sandbox: {path}"
        )));
    }
    let (kind, size) = out.stdout.trim().split_once('|').unwrap_or(("", ""));
    if !kind.starts_with("regular") {
        return Err(Refusal::Failed(format!("{path} is a {kind}, not a file")));
    }
    size.parse()
        .map_err(|_| Refusal::Failed(format!("cannot read the size of {path}")))
}

/// The repository's changes against the commit the run cloned: committed, staged, unstaged
/// and new files, each with its added and removed line counts and its diff.
async fn changes(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    checkout: Option<&Checkout>,
) -> Result<serde_json::Value, Refusal> {
    let Some(checkout) = checkout else {
        return Ok(json!({
            "repository": null,
            "files": [],
            "note": "This conversation has no repository, so there are no changes to compare.",
        }));
    };
    // New files are compared with /dev/null one by one, so that nothing is added to the
    // agent's index.
    const SCRIPT: &str = r#"cd -- "$1" || exit 3
git -c core.quotepath=off diff --no-color --no-ext-diff "$2" -- || exit 4
git -c core.quotepath=off ls-files --others --exclude-standard -z |
while IFS= read -r -d '' file; do
  git -c core.quotepath=off diff --no-color --no-ext-diff --no-index -- /dev/null "$file"
done
exit 0"#;
    let argv = [
        "bash",
        "-c",
        SCRIPT,
        "changes",
        checkout.path.as_str(),
        checkout.base.as_str(),
    ]
    .map(String::from);
    let out = sandboxes.exec(sandbox_id, &argv, WORKSPACE).await?;
    match out.exit_code {
        0 => {}
        3 => {
            return Err(Refusal::Failed(format!(
                "the repository's directory {} is no longer in the sandbox",
                checkout.path
            )));
        }
        _ => {
            return Err(Refusal::Failed(format!(
                "git could not compare the workspace with {}: {}",
                checkout.base,
                out.stderr.trim()
            )));
        }
    }
    let (files, truncated) = diff_files(&out.stdout);
    Ok(json!({
        "repository": checkout.repository,
        "path": checkout.path,
        "base": checkout.base,
        "branch": checkout.branch,
        "files": files,
        "truncated": truncated,
    }))
}

/// One file of a unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct FileChange {
    path: String,
    /// `added`, `deleted`, `renamed` or `modified`.
    status: &'static str,
    added: usize,
    removed: usize,
    binary: bool,
    /// The file's diff, or `None` when it was too long to send.
    diff: Option<String>,
}

/// Splits git's diff output into files with their counts; `true` when diffs were left out.
fn diff_files(text: &str) -> (Vec<FileChange>, bool) {
    let mut files: Vec<FileChange> = Vec::new();
    let mut current: Option<(FileChange, String, bool)> = None;
    let mut sent = 0usize;
    let mut truncated = false;
    let mut finish = |current: Option<(FileChange, String, bool)>, files: &mut Vec<FileChange>| {
        if let Some((mut file, diff, _)) = current {
            if diff.len() <= MAX_FILE_DIFF_CHARS && sent + diff.len() <= MAX_CHANGES_CHARS {
                sent += diff.len();
                file.diff = Some(diff);
            } else {
                truncated = true;
            }
            files.push(file);
        }
    };
    for line in text.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("diff --git ") {
            finish(current.take(), &mut files);
            let path = header
                .trim_end()
                .rsplit_once(" b/")
                .map(|(_, path)| path.to_string())
                .unwrap_or_default();
            let file = FileChange {
                path,
                status: "modified",
                added: 0,
                removed: 0,
                binary: false,
                diff: None,
            };
            current = Some((file, line.to_string(), false));
            continue;
        }
        let Some((file, diff, in_hunk)) = current.as_mut() else {
            continue;
        };
        diff.push_str(line);
        if line.starts_with("@@") {
            *in_hunk = true;
        } else if *in_hunk {
            if line.starts_with('+') {
                file.added += 1;
            } else if line.starts_with('-') {
                file.removed += 1;
            }
        } else if line.starts_with("new file mode") {
            file.status = "added";
        } else if line.starts_with("deleted file mode") {
            file.status = "deleted";
        } else if let Some(to) = line.strip_prefix("rename to ") {
            file.status = "renamed";
            file.path = to.trim_end().to_string();
        } else if line.starts_with("Binary files ") {
            file.binary = true;
        } else if let Some(path) = line.strip_prefix("+++ b/") {
            file.path = path.trim_end().to_string();
        }
    }
    finish(current.take(), &mut files);
    (files, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_is_split_into_files_with_their_counts() {
        let text = "diff --git a/src/app.py b/src/app.py\nindex 1..2 100644\n--- a/src/app.py\n+++ b/src/app.py\n@@ -1,3 +1,3 @@\n keep\n-old\n--- a removed line that looks like a header\n+new\n+++ an added line that looks like a header\ndiff --git a/notes.txt b/notes.txt\nnew file mode 100644\n--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1,2 @@\n+one\n+two\ndiff --git a/gone.md b/gone.md\ndeleted file mode 100644\n--- a/gone.md\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\ndiff --git a/logo.png b/logo.png\nindex 1..2 100644\nBinary files a/logo.png and b/logo.png differ\n";
        let (files, truncated) = diff_files(text);
        assert!(!truncated);
        let summary: Vec<_> = files
            .iter()
            .map(|f| (f.path.as_str(), f.status, f.added, f.removed, f.binary))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("src/app.py", "modified", 2, 2, false),
                ("notes.txt", "added", 2, 0, false),
                ("gone.md", "deleted", 0, 1, false),
                ("logo.png", "modified", 0, 0, true),
            ]
        );
        assert!(files[1].diff.as_deref().unwrap().contains("+two"));
    }

    #[test]
    fn a_diff_too_long_to_send_keeps_its_counts() {
        let body: String = (0..30_000).map(|i| format!("+line {i}\n")).collect();
        let text = format!(
            "diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,30000 @@\n{body}"
        );
        let (files, truncated) = diff_files(&text);
        assert!(truncated);
        assert_eq!(files[0].added, 30_000);
        assert_eq!(files[0].diff, None);
    }
}
