//! Posting to Jira: the acknowledgement and each summary as comments of their own on the
//! issue, each marked with a comment property naming its post.

use serde_json::{Value, json};

use super::target::JiraTarget;
use super::{PostError, document, transient};
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

pub(super) async fn deliver(
    ctx: &JobContext,
    post: &OutboxPost,
    target: JiraTarget,
) -> Result<Value, PostError> {
    let jira = api(ctx)?;
    let body = document(&post.body)?;
    super::wait_for_acknowledgement(ctx, &target.links).await?;
    let change_request = target.links.change_request.as_deref();
    let message = super::status_text(ctx, change_request, &body, true).await?;
    let issue_key = target.issue_key.as_str();
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
