//! Posting to Jira: the acknowledgement and each summary as comments of their own on the
//! issue, each marked with a comment property naming its post.

use serde_json::{Value, json};

use super::{PostError, document, kind, text, transient};
use crate::integrations::jira::JiraApi;
use crate::queue::JobContext;
use crate::storage::OutboxPost;

fn api(ctx: &JobContext) -> Result<&JiraApi, PostError> {
    ctx.providers.jira.as_ref().ok_or_else(|| {
        PostError::Permanent(
            "Jira is not configured for comments (JIRA_BASE_URL, JIRA_EMAIL, JIRA_API_TOKEN)"
                .into(),
        )
    })
}

pub(super) async fn deliver(ctx: &JobContext, post: &OutboxPost) -> Result<Value, PostError> {
    let jira = api(ctx)?;
    let target = document(&post.target)?;
    let body = document(&post.body)?;
    match post.kind.as_str() {
        kind::STATUS | kind::REPLY => {
            super::wait_for_acknowledgement(ctx, &target).await?;
            let message = super::status_text(ctx, &target, &body, true).await?;
            let issue_key = text(&target, "issue_key")?;
            let key = &post.idempotency_key;
            if let Some(id) = jira.find_comment(issue_key, key).await.map_err(transient)? {
                return Ok(json!({"comment_id": id}));
            }
            let id = jira
                .create_comment(issue_key, &message, key)
                .await
                .map_err(transient)?;
            Ok(json!({"comment_id": id}))
        }
        other => Err(PostError::Permanent(format!(
            "unknown Jira post kind `{other}`"
        ))),
    }
}
