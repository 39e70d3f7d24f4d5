//! Posting to Linear: the acknowledgement and each summary as comments of their own on the
//! issue, each created with an id derived from its post (Linear's own idempotency).

use serde_json::{Value, json};

use super::target::LinearTarget;
use super::{PostError, document, transient};
use crate::integrations::Providers;
use crate::integrations::linear::{LinearApi, comment_id};
use crate::queue::JobContext;
use crate::storage::OutboxPost;

fn api(providers: &Providers) -> Result<&LinearApi, PostError> {
    providers.linear.as_ref().ok_or_else(|| {
        PostError::Permanent("Linear is not configured for comments (LINEAR_API_KEY)".into())
    })
}

pub(super) async fn deliver(
    ctx: &JobContext,
    post: &OutboxPost,
    target: LinearTarget,
) -> Result<Value, PostError> {
    let providers = ctx.providers.clients();
    let linear = api(&providers)?;
    let body = document(&post.body)?;
    super::wait_for_acknowledgement(ctx, &target.links).await?;
    let change_request = target.links.change_request.as_deref();
    let message = super::status_text(ctx, change_request, &body, false).await?;
    let issue_id = target.issue_id.as_str();
    let id = comment_id(&post.idempotency_key);
    if !linear.has_comment(issue_id, &id).await.map_err(transient)? {
        linear
            .create_comment(issue_id, &id, &message)
            .await
            .map_err(transient)?;
    }
    Ok(json!({"comment_id": id}))
}
