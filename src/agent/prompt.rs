//! The system prompt and the first user message, rendered from Jinja templates (built in, or
//! from AGENT_PROMPT_DIR) with what the request said and where.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;
use serde_json::Value;

const SYSTEM: &str = "system_prompt.j2";
const USER: &str = "user_prompt.j2";
const BUILT_IN_SYSTEM: &str = include_str!("prompts/system_prompt.j2");
const BUILT_IN_USER: &str = include_str!("prompts/user_prompt.j2");

use crate::sandbox::WORKSPACE;
/// Where the conversation's repository is checked out.
pub const REPOSITORY_DIR: &str = "/workspace/repo";

#[derive(Debug)]
pub struct Prompts {
    env: Environment<'static>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PromptError(String);

/// What the templates are filled with.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PromptContext<'a> {
    pub repository: Option<&'a str>,
    pub branch: Option<&'a str>,
    /// The `request_context` event's document: place, title, body, url, history, diff.
    pub context: Option<&'a Value>,
    /// What the user asked.
    pub message: &'a str,
}

impl Prompts {
    /// The built-in templates, each replaced by its file in `dir` where there is one.
    pub fn load(dir: Option<&Path>) -> Result<Prompts, PromptError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, built_in) in [(SYSTEM, BUILT_IN_SYSTEM), (USER, BUILT_IN_USER)] {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                    PromptError(format!(
                        "AGENT_PROMPT_DIR: cannot read {}: {e}",
                        path.display()
                    ))
                })?,
                None => built_in.to_string(),
            };
            env.add_template_owned(name, source).map_err(|e| {
                PromptError(format!("the prompt template {name} is not valid: {e}"))
            })?;
        }
        Ok(Prompts { env })
    }

    pub fn system(&self, context: &PromptContext<'_>) -> Result<String, PromptError> {
        self.render(SYSTEM, context)
    }

    /// The first user message of a task.
    pub fn first_message(&self, context: &PromptContext<'_>) -> Result<String, PromptError> {
        self.render(USER, context)
    }

    fn render(&self, name: &str, context: &PromptContext<'_>) -> Result<String, PromptError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| PromptError(format!("the prompt template {name} is missing: {e}")))?;
        let values = minijinja::context! {
            workspace => WORKSPACE,
            repository_dir => REPOSITORY_DIR,
            repository => context.repository,
            branch => context.branch,
            context => context.context,
            message => context.message,
        };
        template
            .render(values)
            .map(|text| text.trim().to_string())
            .map_err(|e| PromptError(format!("cannot render the prompt template {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pull_request_prompt_is_rendered_line_by_line() {
        let prompts = Prompts::load(None).unwrap();
        let context = json!({
            "place": {"kind": "github_pull_request", "installation_id": 1, "repository": "acme/app",
                      "number": 7, "branch": "feature",
                      "review": {"path": "src/lib.rs", "line": 12, "diff_hunk": "@@ -1 +1 @@", "reply_to": "9"}},
            "title": "Speed up parsing", "body": "It is slow.", "url": "https://example.test/pr/7",
            "history": [{"author": "alice", "text": "one"}, {"author": "bob", "text": "two"}],
            "diff": "diff --git a/src/lib.rs b/src/lib.rs",
        });
        let text = prompts
            .first_message(&PromptContext {
                repository: Some("acme/app"),
                branch: Some("feature"),
                context: Some(&context),
                message: "@openhands please rename it",
            })
            .unwrap();
        let expected = "\
You were asked for help on the pull request \"Speed up parsing\" in acme/app (branch `feature`).
Link: https://example.test/pr/7

<DESCRIPTION>
It is slow.
</DESCRIPTION>

<EARLIER_MESSAGES>
alice: one
bob: two
</EARLIER_MESSAGES>

<REVIEW_COMMENT_LOCATION>
File: src/lib.rs, line 12
@@ -1 +1 @@
</REVIEW_COMMENT_LOCATION>

<DIFF>
diff --git a/src/lib.rs b/src/lib.rs
</DIFF>

The request:
@openhands please rename it";
        assert_eq!(text, expected);
        let system = prompts
            .system(&PromptContext {
                repository: Some("acme/app"),
                ..Default::default()
            })
            .unwrap();
        assert!(system.contains("acme/app is checked out in /workspace/repo"));
    }

    #[test]
    fn issue_thread_and_ticket_prompts_are_rendered_line_by_line() {
        let prompts = Prompts::load(None).unwrap();
        let render = |context: serde_json::Value, repository: Option<&str>| {
            prompts
                .first_message(&PromptContext {
                    repository,
                    branch: None,
                    context: Some(&context),
                    message: "fix it",
                })
                .unwrap()
        };
        assert_eq!(
            render(
                json!({"place": {"kind": "github_issue", "installation_id": 1, "repository": "acme/app", "number": 3},
                       "title": "Crash", "url": "https://example.test/issues/3"}),
                Some("acme/app")
            ),
            "You were asked for help on the issue \"Crash\" in acme/app.\nLink: https://example.test/issues/3\n\nThe request:\nfix it"
        );
        assert_eq!(
            render(
                json!({"place": {"kind": "slack_thread", "team_id": "T1", "channel": "C1", "thread_ts": "1.2"},
                       "history": [{"author": "U1", "text": "it broke"}]}),
                Some("acme/api")
            ),
            "You were asked for help in a Slack thread, on the repository acme/api.\n\n<EARLIER_MESSAGES>\nU1: it broke\n</EARLIER_MESSAGES>\n\nThe request:\nfix it"
        );
        assert_eq!(
            render(
                json!({"place": {"kind": "jira_issue", "site": "https://x.atlassian.net", "issue_key": "ENG-1"},
                       "title": "Typo", "body": "In the README."}),
                None
            ),
            "You were asked for help on the ticket \"Typo\".\n\n<DESCRIPTION>\nIn the README.\n</DESCRIPTION>\n\nThe request:\nfix it"
        );
    }

    #[test]
    fn a_web_task_is_the_message_alone() {
        let prompts = Prompts::load(None).unwrap();
        let text = prompts
            .first_message(&PromptContext {
                message: "write hello.py",
                ..Default::default()
            })
            .unwrap();
        assert_eq!(text, "write hello.py");
    }

    #[test]
    fn a_broken_template_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(USER), "{% if %}").unwrap();
        let error = Prompts::load(Some(dir.path())).unwrap_err().to_string();
        assert!(error.contains("user_prompt.j2 is not valid"), "{error}");
    }
}
