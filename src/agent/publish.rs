//! When the agent finishes a task on a repository, its work leaves the sandbox: uncommitted
//! changes are committed (the message drawn from the agent's summary), and the worker pushes
//! the commits (for an issue, to a new branch `openhands/<number>-<slug>`; for a pull or merge
//! request, to its branch). Opening the pull/merge request and reporting the branch are posts
//! of the outbox, written with the finished state.

use serde_json::json;

use super::events;
use super::run::Run;
use crate::integrations::request::{Place, RepositoryRef};
use crate::results::Changes;
use crate::sandbox::git;

/// The longest first line of a commit message.
const SUBJECT_CHARS: usize = 72;
/// The longest slug of a branch name.
const SLUG_CHARS: usize = 40;

/// The repository placed in the sandbox, as its checkout event recorded it.
struct Recorded {
    branch: String,
    base: String,
    path: String,
    fork: Option<String>,
}

impl Run<'_> {
    /// Commits and pushes the agent's work; `None` when the conversation has no repository.
    /// Git and provider failures become the returned `error`, for the user; only database
    /// faults are errors.
    pub(super) async fn publish(&mut self) -> anyhow::Result<Option<Changes>> {
        let (Some(place), Some(repository)) = (self.place(), self.history.repository()) else {
            return Ok(None);
        };
        let Some(recorded) = self.history.checkout().map(|checkout| Recorded {
            branch: checkout.branch.clone(),
            base: checkout.base.clone(),
            path: checkout.path.clone(),
            fork: checkout.fork.clone(),
        }) else {
            return Ok(None);
        };
        // Work asked for on an issue, ticket or Slack thread goes to a new branch and a
        // pull/merge request; on a pull/merge request, to its own branch.
        let work_item = match &place {
            Place::GithubIssue { number, .. } => Some(number.to_string()),
            Place::GitlabIssue { iid, .. } => Some(iid.to_string()),
            Place::JiraIssue { issue_key, .. } => Some(issue_key.clone()),
            Place::LinearIssue { identifier, .. } => Some(identifier.clone()),
            Place::SlackThread { .. } => Some(self.conversation_id().chars().take(8).collect()),
            _ => None,
        };
        let open_request = work_item.is_some();
        let branch = match &work_item {
            Some(item) => work_branch(item, &self.title),
            None => recorded.branch.clone(),
        };
        let mut changes = Changes {
            branch,
            base_branch: recorded.branch.clone(),
            commits: 0,
            open_request,
            error: None,
            pre_commit_failure: None,
        };
        match self
            .push(&place, &repository, &recorded, &changes.branch)
            .await
        {
            Ok(commits) => changes.commits = commits,
            Err(error) => changes.error = Some(format!("{error:#}")),
        }
        let content = match (&changes.error, changes.commits) {
            (Some(error), _) => format!("The changes could not be pushed: {error}"),
            (None, 0) => return Ok(Some(changes)),
            (None, n) => format!(
                "The {n} commit{} of this work {} on the branch `{}`.",
                if n == 1 { "" } else { "s" },
                if n == 1 { "is" } else { "are" },
                changes.branch
            ),
        };
        let extras =
            json!({"branch": changes.branch, "commits": changes.commits, "error": changes.error});
        self.record(vec![events::git_push(&content, extras)], None)
            .await?;
        Ok(Some(changes))
    }

    /// Commits what is left uncommitted and pushes everything after the cloned commit to
    /// `branch`; returns how many commits that is.
    async fn push(
        &mut self,
        place: &Place,
        repository: &RepositoryRef,
        recorded: &Recorded,
        branch: &str,
    ) -> anyhow::Result<u32> {
        let sandboxes = self
            .sandboxes
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the sandbox is gone"))?;
        let sandbox_id = self.toolbox.sandbox_id.clone();
        let providers = self.ctx.providers.clients();
        let local = match self.checkout.take() {
            Some(checkout) if checkout.base == recorded.base => checkout,
            // Cloned by an earlier run: clone again on this worker.
            _ => {
                let source = providers.checkout_source(Some(place), repository).await?;
                git::reopen(
                    &source.remote,
                    &recorded.branch,
                    &recorded.base,
                    &recorded.path,
                )
                .await?
            }
        };
        let message = commit_message(&self.summary("finished", "").unwrap_or_default());
        let outcome = async {
            git::commit_pending(sandboxes.as_ref(), &sandbox_id, &local, &message).await?;
            if let Some(fork) = &recorded.fork {
                let commits = git::commits_since_base(sandboxes.as_ref(), &sandbox_id, &local).await?;
                if commits > 0 {
                    anyhow::bail!(
                        "the branch `{}` is in the fork {fork}, which this service may not push to; the commits stay in the conversation's sandbox",
                        recorded.branch
                    );
                }
                return Ok(0);
            }
            let remote = providers.remote_of(repository).await?;
            let pushed = git::push_back(sandboxes.as_ref(), &sandbox_id, &local, &remote, branch).await?;
            tracing::info!(branch, commits = pushed.commits, head = %pushed.head, "work pushed");
            Ok(pushed.commits)
        }
        .await;
        self.checkout = Some(local);
        outcome
    }
}

/// `openhands/<number or ticket key>-<slug of the title>`.
fn work_branch(item: &str, title: &str) -> String {
    let item: String = item
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= SLUG_CHARS {
            break;
        }
    }
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        format!("openhands/{item}")
    } else {
        format!("openhands/{item}-{slug}")
    }
}

/// A commit message from the agent's summary: its first line (cut to 72 characters) as the
/// subject, the whole summary as the body when there is more.
fn commit_message(summary: &str) -> String {
    let summary = summary.trim();
    let first = summary.lines().next().unwrap_or_default().trim();
    if first.is_empty() || first == "Done." {
        return "Changes made by OpenHands".to_string();
    }
    let mut subject: String = first.chars().take(SUBJECT_CHARS).collect();
    if subject.chars().count() < first.chars().count() {
        subject = format!(
            "{}…",
            subject.chars().take(SUBJECT_CHARS - 1).collect::<String>()
        );
    }
    if subject == summary {
        subject
    } else {
        format!("{subject}\n\n{summary}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_are_named_after_the_issue() {
        assert_eq!(
            work_branch("7", "Fix: crash on EMPTY input!!"),
            "openhands/7-fix-crash-on-empty-input"
        );
        assert_eq!(work_branch("8", "¿¿??"), "openhands/8");
        assert_eq!(
            work_branch("ENG-42", "Add a flag"),
            "openhands/ENG-42-add-a-flag"
        );
        let long = work_branch("9", &"word ".repeat(30));
        assert!(long.len() <= "openhands/9-".len() + SLUG_CHARS, "{long}");
        assert!(!long.ends_with('-'), "{long}");
    }

    #[test]
    fn commit_messages_come_from_the_summary() {
        assert_eq!(commit_message("Done."), "Changes made by OpenHands");
        assert_eq!(commit_message("  "), "Changes made by OpenHands");
        assert_eq!(commit_message("Fixed the parser."), "Fixed the parser.");
        assert_eq!(
            commit_message("Fixed the parser.\nAll tests pass."),
            "Fixed the parser.\n\nFixed the parser.\nAll tests pass."
        );
        let long = commit_message(&"x".repeat(100));
        let subject = long.lines().next().unwrap();
        assert_eq!(subject.chars().count(), SUBJECT_CHARS);
        assert!(subject.ends_with('…'));
    }
}
