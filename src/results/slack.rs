//! Posting to Slack: a reaction on the message that asked, and replies in its thread. Slack
//! messages are not edited: the acknowledgement (or the question which repository to work on,
//! with its menu) and each summary are replies of their own, each marked with its post's key in
//! the message metadata so that it is found, not doubled. A summary carries the link of the
//! pull/merge request its run opened. Notes for the sender alone are ephemeral messages.

use serde_json::{Value, json};

use super::target::SlackTarget;
use super::{PostError, document, text, transient};
use crate::integrations::Providers;
use crate::integrations::slack::SlackApi;
use crate::queue::JobContext;
use crate::storage::OutboxPost;

fn api(providers: &Providers) -> Result<&SlackApi, PostError> {
    providers
        .slack
        .as_ref()
        .ok_or_else(|| PostError::Permanent("Slack is not configured (SLACK_BOT_TOKEN)".into()))
}

pub(super) async fn deliver(
    ctx: &JobContext,
    post: &OutboxPost,
    target: SlackTarget,
) -> Result<Value, PostError> {
    let providers = ctx.providers.clients();
    let slack = api(&providers)?;
    let body = document(&post.body)?;
    match target {
        SlackTarget::Reaction(reaction) => {
            slack
                .add_reaction(&reaction.channel, &reaction.ts, text(&body, "name")?)
                .await
                .map_err(transient)?;
            Ok(json!({}))
        }
        SlackTarget::Thread(thread) => {
            super::wait_for_acknowledgement(ctx, &thread.links).await?;
            let channel = thread.channel.as_str();
            let thread_ts = thread.thread_ts.as_str();
            let key = &post.idempotency_key;
            if let Some(ts) = slack
                .find_reply(channel, thread_ts, key)
                .await
                .map_err(transient)?
            {
                return Ok(json!({"ts": ts}));
            }
            let change_request = thread.links.change_request.as_deref();
            let message = super::status_text(ctx, change_request, &body, true).await?;
            let blocks = body.get("blocks").filter(|b| b.is_array());
            let ts = slack
                .post_reply(channel, thread_ts, &message, blocks, key)
                .await
                .map_err(transient)?;
            Ok(json!({"ts": ts}))
        }
        SlackTarget::Ephemeral(note) => {
            slack
                .post_ephemeral(
                    &note.channel,
                    &note.user,
                    Some(&note.thread_ts),
                    text(&body, "text")?,
                )
                .await
                .map_err(transient)?;
            Ok(json!({}))
        }
    }
}
