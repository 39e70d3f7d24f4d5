//! Posting to GitLab: an award emoji on the note that asked, and one status note edited as
//! the run goes on.

use serde_json::{Value, json};

use super::target::{GitlabNoteable, GitlabTarget};
use super::{
    PostError, StatusEdit, document, is_gone, marker, record_replaced_status, status_edit,
    status_text, text, transient,
};
use crate::integrations::Providers;
use crate::integrations::gitlab::GitlabApi;
use crate::integrations::request::{Place, Request};
use crate::queue::JobContext;
use crate::storage::OutboxPost;

/// The issue or merge request, as a path below its project (`issues/7`, `merge_requests/3`).
pub(super) fn noteable_of(place: &Place) -> Option<(u64, String)> {
    match place {
        Place::GitlabIssue {
            project_id, iid, ..
        } => Some((*project_id, format!("issues/{iid}"))),
        Place::GitlabMergeRequest {
            project_id, iid, ..
        } => Some((*project_id, format!("merge_requests/{iid}"))),
        _ => None,
    }
}

/// What the award goes on: the note that asked, else the issue or merge request.
pub(super) fn subject_of(request: &Request, noteable: &str) -> String {
    match request
        .source_id
        .strip_prefix("note-")
        .and_then(|id| id.parse::<u64>().ok())
    {
        Some(note) => format!("{noteable}/notes/{note}"),
        None => noteable.to_string(),
    }
}

fn api(providers: &Providers) -> Result<&GitlabApi, PostError> {
    providers
        .gitlab
        .as_ref()
        .ok_or_else(|| PostError::Permanent("GitLab is not configured (GITLAB_TOKEN)".into()))
}

pub(super) async fn deliver(
    ctx: &JobContext,
    post: &OutboxPost,
    target: GitlabTarget,
) -> Result<Value, PostError> {
    let providers = ctx.providers.clients();
    let gitlab = api(&providers)?;
    let body = document(&post.body)?;
    match target {
        GitlabTarget::Award(award) => {
            gitlab
                .award_emoji(award.project_id, &award.subject, text(&body, "name")?)
                .await
                .map_err(transient)?;
            Ok(json!({}))
        }
        GitlabTarget::Note(noteable) => {
            let id = post_note(
                gitlab,
                &noteable,
                &post.idempotency_key,
                text(&body, "text")?,
            )
            .await?;
            Ok(json!({"comment_id": id}))
        }
        GitlabTarget::StatusUpdate(update) => {
            let place = &update.place;
            let status = status_edit(ctx, post, &update.status).await?;
            let change_request = update.change_request.as_deref();
            let message = &status_text(ctx, change_request, &body, false).await?;
            match status {
                StatusEdit::Superseded => Ok(json!({"superseded": true})),
                StatusEdit::Edit { id, status_key } => {
                    let edited = gitlab
                        .update_note(
                            place.project_id,
                            &place.noteable,
                            id,
                            &format!("{message}\n\n{}", marker(&status_key)),
                        )
                        .await;
                    match edited {
                        Ok(()) => Ok(json!({"comment_id": id})),
                        // Someone deleted the status note: a new one takes its place.
                        Err(error) if is_gone(&error) => {
                            let id = post_note(gitlab, place, &status_key, message).await?;
                            record_replaced_status(ctx, &status_key, id).await?;
                            Ok(json!({"comment_id": id}))
                        }
                        Err(error) => Err(transient(error)),
                    }
                }
                StatusEdit::PostNew => {
                    let id = post_note(gitlab, place, &post.idempotency_key, message).await?;
                    Ok(json!({"comment_id": id}))
                }
            }
        }
        GitlabTarget::ChangeRequest(merge_request) => {
            let project_id = merge_request.project_id;
            let head = merge_request.head.as_str();
            // Opened before, its answer lost: GitLab allows one open merge request per branch.
            let request = match gitlab
                .open_merge_request(project_id, head)
                .await
                .map_err(transient)?
            {
                Some(request) => request,
                None => {
                    let title = text(&body, "title")?;
                    let title = if providers.draft_change_requests {
                        format!("Draft: {title}")
                    } else {
                        title.to_string()
                    };
                    gitlab
                        .create_merge_request(
                            project_id,
                            head,
                            &merge_request.base,
                            &title,
                            text(&body, "body")?,
                        )
                        .await
                        .map_err(transient)?
                }
            };
            Ok(json!({"number": request.iid, "url": request.web_url}))
        }
        GitlabTarget::DiscussionReply(reply) => {
            let project_id = reply.noteable.project_id;
            let noteable = reply.noteable.noteable.as_str();
            let marker = marker(&post.idempotency_key);
            if let Some(id) = gitlab
                .find_note(project_id, noteable, &marker)
                .await
                .map_err(transient)?
            {
                return Ok(json!({"comment_id": id}));
            }
            let id = gitlab
                .reply_in_discussion(
                    project_id,
                    noteable,
                    &reply.reply_to,
                    &format!("{}\n\n{marker}", text(&body, "text")?),
                )
                .await
                .map_err(transient)?;
            Ok(json!({"comment_id": id}))
        }
    }
}

/// Posts a note carrying the post's marker, unless one with the marker is there already.
async fn post_note(
    gitlab: &GitlabApi,
    target: &GitlabNoteable,
    key: &str,
    message: &str,
) -> Result<u64, PostError> {
    let project_id = target.project_id;
    let noteable = target.noteable.as_str();
    let marker = marker(key);
    if let Some(id) = gitlab
        .find_note(project_id, noteable, &marker)
        .await
        .map_err(transient)?
    {
        return Ok(id);
    }
    gitlab
        .create_note(project_id, noteable, &format!("{message}\n\n{marker}"))
        .await
        .map_err(transient)
}
