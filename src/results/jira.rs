//! Posting to Jira, Cloud or Data Center: the acknowledgement and each summary as comments of
//! their own on the issue, each marked with a comment property naming its post.

use serde_json::{Value, json};

use super::target::JiraTarget;
use super::{PostError, document, transient};
use crate::integrations::Providers;
use crate::integrations::jira::JiraApi;
use crate::queue::JobContext;
use crate::storage::OutboxPost;

/// The client of the target's site.
fn api<'a>(providers: &'a Providers, target: &JiraTarget) -> Result<&'a JiraApi, PostError> {
    let found = match &target.site {
        Some(site) => providers.jira_at(site),
        None => providers.jira.as_ref(),
    };
    found.ok_or_else(|| {
        PostError::Permanent(format!(
            "no Jira client is configured for comments on {}: JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN for Jira Cloud, JIRA_DC_BASE_URL and JIRA_DC_TOKEN for Jira Data Center",
            target.site.as_deref().unwrap_or("Jira Cloud")
        ))
    })
}

pub(super) async fn deliver(
    ctx: &JobContext,
    post: &OutboxPost,
    target: JiraTarget,
) -> Result<Value, PostError> {
    let providers = ctx.providers.clients();
    let jira = api(&providers, &target)?;
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
