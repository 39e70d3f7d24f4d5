//! What a repository says about itself reaches the agent. Once per conversation, before the
//! first step, the run reads the instructions of the repository it checked out (AGENTS.md,
//! `.cursorrules`, `.openhands/microagents`), of the owner's `.openhands` repository and of the
//! service's skills directory, and records them as OpenHands' `recall` observation
//! (`workspace_context`), which the model reads as a user message. Knowledge microagents are
//! kept in a catalog event; each one is recalled (`knowledge`) the first time one of its
//! triggers appears in a user message.

use std::path::Path;

use serde_json::{Value, json};

use super::events::{self, Draft, Item};
use super::microagents::{self, Found, Knowledge};
use super::prompt::REPOSITORY_DIR;
use super::run::Run;
use crate::integrations::request::RepositoryRef;
use crate::sandbox::{WORKSPACE, git};

/// The kind of the event holding the knowledge microagents a conversation may recall.
pub const CATALOG: &str = "microagent_catalog";
/// The observation of what was recalled.
pub const RECALL: &str = "recall";

impl Run<'_> {
    /// Records the workspace's instructions and the catalog of knowledge microagents, once per
    /// conversation. Reading failures are notes in the recall, never the end of the run.
    pub(super) async fn recall_workspace(
        &mut self,
        repository_name: Option<&str>,
        git_provider: Option<&str>,
    ) -> anyhow::Result<()> {
        if self.history.items.iter().any(is_workspace_recall) {
            return Ok(());
        }
        let mut found = Found::default();
        let branch = self
            .history
            .checkout()
            .map(|checkout| checkout.branch.clone());
        if let Some(name) = repository_name {
            found.merge(self.read_repository_instructions(name).await);
            let host = git_provider.unwrap_or("github");
            found.merge(self.read_owner_instructions(name, host).await);
        }
        if let Some(dir) = self.skills_dir() {
            let dir = dir.to_path_buf();
            let skills =
                tokio::task::spawn_blocking(move || microagents::read_skills_dir(&dir, "service"))
                    .await
                    .unwrap_or_default();
            found.merge(skills);
        }
        found.limit();
        let checked_out = repository_name.filter(|_| self.history.checkout().is_some());
        // Without a repository and with nothing found there is nothing to say, and nothing
        // costly to read again next time.
        if checked_out.is_none() && found.is_empty() && found.notes.is_empty() {
            return Ok(());
        }
        let mut drafts = Vec::new();
        if !found.knowledge.is_empty() {
            drafts.push(Draft {
                source: events::ENVIRONMENT,
                kind: CATALOG.into(),
                doc: json!({"knowledge": found.knowledge}),
            });
        }
        drafts.push(workspace_recall(&found, checked_out, branch.as_deref()));
        self.record(drafts, None).await?;
        Ok(())
    }

    /// Recalls each knowledge microagent whose trigger appears in a user message and that was
    /// not recalled before; one event per message that triggers any.
    pub(super) async fn recall_knowledge(&mut self) -> anyhow::Result<()> {
        let Some(knowledge) = self.history.items.iter().rev().find_map(|item| match item {
            Item::Catalog { knowledge, .. } => Some(knowledge.clone()),
            _ => None,
        }) else {
            return Ok(());
        };
        if knowledge.is_empty() {
            return Ok(());
        }
        let mut recalled: Vec<String> = self
            .history
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Observation { name, extras, .. }
                    if name == RECALL && extras.recall_type.as_deref() == Some("knowledge") =>
                {
                    Some(extras.recalled.clone())
                }
                _ => None,
            })
            .flatten()
            .collect();
        let mut drafts = Vec::new();
        for item in &self.history.items {
            let Item::UserMessage {
                id,
                content,
                automatic: false,
                ..
            } = item
            else {
                continue;
            };
            let mut triggered = Vec::new();
            for agent in &knowledge {
                if recalled.contains(&agent.name) {
                    continue;
                }
                if let Some(trigger) = agent.trigger_in(content) {
                    triggered.push((agent, trigger.to_string()));
                    recalled.push(agent.name.clone());
                }
            }
            if !triggered.is_empty() {
                drafts.push(knowledge_recall(&triggered, *id));
            }
        }
        if !drafts.is_empty() {
            self.record(drafts, None).await?;
        }
        Ok(())
    }

    /// The instructions of the checked-out repository, read from the worker's clone (cloned
    /// again when another worker made the checkout).
    async fn read_repository_instructions(&mut self, name: &str) -> Found {
        let clone = match &self.checkout {
            Some(checkout) => Some((None, checkout.local_repo())),
            None => match self.history.repository() {
                Some(repository) => match self.clone_for_reading(&repository).await {
                    Ok((dir, path)) => Some((Some(dir), path)),
                    Err(error) => {
                        return note(format!(
                            "The instructions of {name} could not be read: {error:#}"
                        ));
                    }
                },
                None => None,
            },
        };
        let Some((_dir, path)) = clone else {
            return Found::default();
        };
        let source = name.to_string();
        tokio::task::spawn_blocking(move || microagents::read_repository(&path, &source))
            .await
            .unwrap_or_default()
    }

    /// The instructions of the owner's `.openhands` repository (a GitHub organisation or
    /// user; a GitLab group's `openhands-config`), when the service can read it.
    async fn read_owner_instructions(&self, name: &str, host: &str) -> Found {
        let Some((owner, _)) = name.rsplit_once('/') else {
            return Found::default();
        };
        // GitLab does not allow a project named `.openhands`: its groups keep theirs in
        // `openhands-config`, as OpenHands does.
        let path = match host {
            "gitlab" => format!("{owner}/openhands-config"),
            _ => format!("{owner}/.openhands"),
        };
        let providers = self.ctx.providers.clients();
        let reachable = match host {
            "gitlab" if providers.gitlab.is_none() => return Found::default(),
            "github" if providers.github.is_none() => return Found::default(),
            _ => providers.configured_repository(&path, host).await,
        };
        let repository = match reachable {
            Ok(Some(repository)) => repository,
            Ok(None) => return Found::default(),
            Err(error) => {
                return note(format!(
                    "The instructions of {path} could not be read: {error:#}"
                ));
            }
        };
        match self.clone_for_reading(&repository).await {
            Ok((_dir, root)) => {
                let source = path.clone();
                tokio::task::spawn_blocking(move || microagents::read_repository(&root, &source))
                    .await
                    .unwrap_or_default()
            }
            Err(error) => note(format!(
                "The instructions of {path} could not be read: {error:#}"
            )),
        }
    }

    async fn clone_for_reading(
        &self,
        repository: &RepositoryRef,
    ) -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf)> {
        let remote = self.ctx.providers.clients().remote_of(repository).await?;
        git::shallow_clone(&remote).await
    }

    fn skills_dir(&self) -> Option<&Path> {
        self.runtime.settings.skills_dir.as_deref()
    }
}

fn note(text: String) -> Found {
    tracing::warn!(%text, "repository instructions");
    Found {
        notes: vec![text],
        ..Found::default()
    }
}

fn is_workspace_recall(item: &Item) -> bool {
    matches!(item, Item::Observation { name, extras, .. }
        if name == RECALL && extras.recall_type.as_deref() == Some("workspace_context"))
}

/// The `workspace_context` recall: what the model reads of the repository and its
/// instructions, and the fields OpenHands clients know.
fn workspace_recall(found: &Found, repository: Option<&str>, branch: Option<&str>) -> Draft {
    let mut sections = Vec::new();
    if let Some(name) = repository {
        let on_branch = branch
            .map(|b| format!(" on the branch `{b}`"))
            .unwrap_or_default();
        sections.push(format!(
            "<REPOSITORY_INFO>\nThe repository {name} is checked out in {REPOSITORY_DIR}{on_branch}.\n</REPOSITORY_INFO>"
        ));
    }
    let instructions = instructions_text(found);
    if !instructions.is_empty() {
        let tag = if repository.is_some() {
            "REPOSITORY_INSTRUCTIONS"
        } else {
            "INSTRUCTIONS"
        };
        sections.push(format!(
            "<{tag}>\nWhat the repository and its owners ask of work on it; follow it unless the user asks otherwise.\n\n{instructions}\n</{tag}>"
        ));
    }
    if !found.notes.is_empty() {
        sections.push(format!("<NOTE>\n{}\n</NOTE>", found.notes.join("\n")));
    }
    let content = sections.join("\n\n");
    let loaded: Vec<Value> = found
        .instructions
        .iter()
        .map(|i| json!({"name": i.name, "source": i.source, "path": i.path}))
        .collect();
    let available: Vec<Value> = found
        .knowledge
        .iter()
        .map(
            |k| json!({"name": k.name, "source": k.source, "path": k.path, "triggers": k.triggers}),
        )
        .collect();
    recall(
        content,
        json!({
            "recall_type": "workspace_context",
            "repo_name": repository.unwrap_or(""),
            "repo_directory": if repository.is_some() { REPOSITORY_DIR } else { "" },
            "repo_branch": branch.unwrap_or(""),
            "repo_instructions": instructions,
            "date": today(),
            "working_dir": WORKSPACE,
            "instructions": loaded,
            "knowledge_available": available,
            "notes": found.notes,
        }),
        "Added workspace context",
        None,
    )
}

/// A `recall` observation: `extras` over the fields OpenHands clients expect of one.
fn recall(content: String, extras: Value, message: &str, cause: Option<i64>) -> Draft {
    let mut all = json!({
        "recall_type": "",
        "repo_name": "",
        "repo_directory": "",
        "repo_branch": "",
        "repo_instructions": "",
        "runtime_hosts": {},
        "additional_agent_instructions": "",
        "date": "",
        "custom_secrets_descriptions": {},
        "conversation_instructions": "",
        "working_dir": "",
        "microagent_knowledge": [],
    });
    if let (Some(all), Value::Object(extras)) = (all.as_object_mut(), extras) {
        all.extend(extras);
    }
    let mut doc = json!({
        "observation": RECALL,
        "content": content,
        "extras": all,
        "message": message,
    });
    if let Some(cause) = cause {
        doc["cause"] = json!(cause);
    }
    Draft {
        source: events::ENVIRONMENT,
        kind: RECALL.into(),
        doc,
    }
}

fn instructions_text(found: &Found) -> String {
    found
        .instructions
        .iter()
        .map(|i| format!("## {} ({})\n{}", i.path, i.source, i.content))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A `knowledge` recall of the microagents a user message (`cause`) triggered.
fn knowledge_recall(triggered: &[(&Knowledge, String)], cause: i64) -> Draft {
    let content = triggered
        .iter()
        .map(|(agent, trigger)| {
            format!(
                "<EXTRA_INFO>\nThe user's message mentions \"{trigger}\", so here is what the microagent {} knows about it; use it where it helps.\n\n{}\n</EXTRA_INFO>",
                agent.name, agent.content
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    let knowledge: Vec<Value> = triggered
        .iter()
        .map(|(agent, trigger)| json!({"name": agent.name, "trigger": trigger, "content": agent.content}))
        .collect();
    recall(
        content,
        json!({"recall_type": "knowledge", "microagent_knowledge": knowledge}),
        "Added microagent knowledge",
        Some(cause),
    )
}

/// Today's date, `YYYY-MM-DD`.
fn today() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .take(10)
        .collect()
}
