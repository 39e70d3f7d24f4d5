//! Posting to Linear: the acknowledgement and each summary as comments of their own on the
//! issue, each created with an id derived from its post (Linear's own idempotency).

use serde_json::{Value, json};

use super::{PostError, document, kind, text, transient};
use crate::integrations::linear::{LinearApi, comment_id};
use crate::queue::JobContext;
use crate::storage::OutboxPost;

fn api(ctx: &JobContext) -> Result<&LinearApi, PostError> {
    ctx.providers.linear.as_ref().ok_or_else(|| {
        PostError::Permanent("Linear is not configured for comments (LINEAR_API_KEY)".into())
    })
}

pub(super) async fn deliver(ctx: &JobContext, post: &OutboxPost) -> Result<Value, PostError> {
    let linear = api(ctx)?;
    let target = document(&post.target)?;
    let body = document(&post.body)?;
    match post.kind.as_str() {
        kind::STATUS | kind::REPLY => {
            super::wait_for_acknowledgement(ctx, &target).await?;
            let message = super::status_text(ctx, &target, &body, false).await?;
            let issue_id = text(&target, "issue_id")?;
            let id = comment_id(&post.idempotency_key);
            if !linear.has_comment(issue_id, &id).await.map_err(transient)? {
                linear
                    .create_comment(issue_id, &id, &message)
                    .await
                    .map_err(transient)?;
            }
            Ok(json!({"comment_id": id}))
        }
        other => Err(PostError::Permanent(format!(
            "unknown Linear post kind `{other}`"
        ))),
    }
}
