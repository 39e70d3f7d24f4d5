//! Posting to Slack: a reaction on the message that asked, and replies in its thread. Slack
//! messages are not edited: the acknowledgement (or the question which repository to work on,
//! with its menu) and each summary are replies of their own, each marked with its post's key in
//! the message metadata so that it is found, not doubled. A summary carries the link of the
//! pull/merge request its run opened. Notes for the sender alone are ephemeral messages.

use serde_json::{Value, json};

use super::{PostError, document, kind, text, transient};
use crate::integrations::slack::SlackApi;
use crate::queue::JobContext;
use crate::storage::OutboxPost;

fn api(ctx: &JobContext) -> Result<&SlackApi, PostError> {
    ctx.providers
        .slack
        .as_ref()
        .ok_or_else(|| PostError::Permanent("Slack is not configured (SLACK_BOT_TOKEN)".into()))
}

pub(super) async fn deliver(ctx: &JobContext, post: &OutboxPost) -> Result<Value, PostError> {
    let slack = api(ctx)?;
    let target = document(&post.target)?;
    let body = document(&post.body)?;
    let channel = text(&target, "channel")?;
    match post.kind.as_str() {
        kind::REACTION => {
            slack
                .add_reaction(channel, text(&target, "ts")?, text(&body, "name")?)
                .await
                .map_err(transient)?;
            Ok(json!({}))
        }
        kind::STATUS | kind::REPLY => {
            super::wait_for_acknowledgement(ctx, &target).await?;
            let thread_ts = text(&target, "thread_ts")?;
            let key = &post.idempotency_key;
            if let Some(ts) = slack
                .find_reply(channel, thread_ts, key)
                .await
                .map_err(transient)?
            {
                return Ok(json!({"ts": ts}));
            }
            let message = super::status_text(ctx, &target, &body, true).await?;
            let blocks = body.get("blocks").filter(|b| b.is_array());
            let ts = slack
                .post_reply(channel, thread_ts, &message, blocks, key)
                .await
                .map_err(transient)?;
            Ok(json!({"ts": ts}))
        }
        kind::EPHEMERAL => {
            slack
                .post_ephemeral(
                    channel,
                    text(&target, "user")?,
                    Some(text(&target, "thread_ts")?),
                    text(&body, "text")?,
                )
                .await
                .map_err(transient)?;
            Ok(json!({}))
        }
        other => Err(PostError::Permanent(format!(
            "unknown Slack post kind `{other}`"
        ))),
    }
}
