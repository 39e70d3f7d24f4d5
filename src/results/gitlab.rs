//! Posting to GitLab: an award emoji on the note that asked, and one status note edited as
//! the run goes on.

use serde_json::{Value, json};

use super::{
    PostError, StatusEdit, document, field, is_gone, kind, marker, number, record_replaced_status,
    status_edit, status_text, text, transient,
};
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

fn api(ctx: &JobContext) -> Result<&GitlabApi, PostError> {
    ctx.providers
        .gitlab
        .as_ref()
        .ok_or_else(|| PostError::Permanent("GitLab is not configured (GITLAB_TOKEN)".into()))
}

pub(super) async fn deliver(ctx: &JobContext, post: &OutboxPost) -> Result<Value, PostError> {
    let gitlab = api(ctx)?;
    let target = document(&post.target)?;
    let body = document(&post.body)?;
    match post.kind.as_str() {
        kind::REACTION => {
            gitlab
                .award_emoji(
                    number(&target, "project_id")?,
                    text(&target, "subject")?,
                    text(&body, "name")?,
                )
                .await
                .map_err(transient)?;
            Ok(json!({}))
        }
        kind::STATUS => {
            let id =
                post_note(gitlab, &target, &post.idempotency_key, text(&body, "text")?).await?;
            Ok(json!({"comment_id": id}))
        }
        kind::STATUS_UPDATE => {
            let place = field(&target, "place")?;
            let status = status_edit(ctx, post, &target).await?;
            let message = &status_text(ctx, &target, &body, false).await?;
            match status {
                StatusEdit::Superseded => Ok(json!({"superseded": true})),
                StatusEdit::Edit { id, status_key } => {
                    let edited = gitlab
                        .update_note(
                            number(place, "project_id")?,
                            text(place, "noteable")?,
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
        kind::CHANGE_REQUEST => {
            let project_id = number(&target, "project_id")?;
            let head = text(&target, "head")?;
            // Opened before, its answer lost: GitLab allows one open merge request per branch.
            let request = match gitlab
                .open_merge_request(project_id, head)
                .await
                .map_err(transient)?
            {
                Some(request) => request,
                None => {
                    let title = text(&body, "title")?;
                    let title = if ctx.providers.draft_change_requests {
                        format!("Draft: {title}")
                    } else {
                        title.to_string()
                    };
                    gitlab
                        .create_merge_request(
                            project_id,
                            head,
                            text(&target, "base")?,
                            &title,
                            text(&body, "body")?,
                        )
                        .await
                        .map_err(transient)?
                }
            };
            Ok(json!({"number": request.iid, "url": request.web_url}))
        }
        kind::REPLY => {
            let project_id = number(&target, "project_id")?;
            let noteable = text(&target, "noteable")?;
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
                    text(&target, "reply_to")?,
                    &format!("{}\n\n{marker}", text(&body, "text")?),
                )
                .await
                .map_err(transient)?;
            Ok(json!({"comment_id": id}))
        }
        other => Err(PostError::Permanent(format!(
            "unknown GitLab post kind `{other}`"
        ))),
    }
}

/// Posts a note carrying the post's marker, unless one with the marker is there already.
async fn post_note(
    gitlab: &GitlabApi,
    target: &Value,
    key: &str,
    message: &str,
) -> Result<u64, PostError> {
    let project_id = number(target, "project_id")?;
    let noteable = text(target, "noteable")?;
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
