//! Posting to GitHub as the GitHub App: reactions, the status comment and its edits.

use serde_json::{Value, json};

use super::target::{GithubIssue, GithubTarget};
use super::{
    PostError, StatusEdit, document, is_gone, marker, record_replaced_status, status_edit,
    status_text, text, transient,
};
use crate::integrations::Providers;
use crate::integrations::github::{GithubApp, NewPull, ReactionSubject};
use crate::integrations::request::Request;
use crate::queue::JobContext;
use crate::storage::OutboxPost;

/// What the reaction goes on: the comment or review comment that asked, else the issue or
/// pull request (a label, an opened issue, a review).
pub(super) fn subject_of(request: &Request, number: u64) -> ReactionSubject {
    let id_after = |prefix: &str| {
        request
            .source_id
            .strip_prefix(prefix)
            .and_then(|id| id.parse::<u64>().ok())
    };
    if let Some(id) = id_after("issue-comment-") {
        return ReactionSubject::Comment(id);
    }
    if let Some(id) = id_after("review-comment-") {
        return ReactionSubject::ReviewComment(id);
    }
    ReactionSubject::Issue(number)
}

fn app(providers: &Providers) -> Result<&GithubApp, PostError> {
    providers.github.as_ref().ok_or_else(|| {
        PostError::Permanent(
            "GitHub is not configured (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY)".into(),
        )
    })
}

pub(super) async fn deliver(
    ctx: &JobContext,
    post: &OutboxPost,
    target: GithubTarget,
) -> Result<Value, PostError> {
    let providers = ctx.providers.clients();
    let github = app(&providers)?;
    let body = document(&post.body)?;
    match target {
        GithubTarget::Reaction(reaction) => {
            github
                .add_reaction(
                    reaction.installation_id,
                    &reaction.repository,
                    reaction.subject,
                    text(&body, "content")?,
                )
                .await
                .map_err(transient)?;
            Ok(json!({}))
        }
        GithubTarget::Comment(issue) => {
            let comment_id =
                post_comment(github, &issue, &post.idempotency_key, text(&body, "text")?).await?;
            Ok(json!({"comment_id": comment_id}))
        }
        GithubTarget::StatusUpdate(update) => {
            let place = &update.place;
            let status = status_edit(ctx, post, &update.status).await?;
            let change_request = update.change_request.as_deref();
            let message = &status_text(ctx, change_request, &body, false).await?;
            match status {
                StatusEdit::Superseded => Ok(json!({"superseded": true})),
                StatusEdit::Edit { id, status_key } => {
                    let edited = github
                        .update_comment(
                            place.installation_id,
                            &place.repository,
                            id,
                            &format!("{message}\n\n{}", marker(&status_key)),
                        )
                        .await;
                    match edited {
                        Ok(()) => Ok(json!({"comment_id": id})),
                        // Someone deleted the status comment: a new one takes its place.
                        Err(error) if is_gone(&error) => {
                            let id = post_comment(github, place, &status_key, message).await?;
                            record_replaced_status(ctx, &status_key, id).await?;
                            Ok(json!({"comment_id": id}))
                        }
                        Err(error) => Err(transient(error)),
                    }
                }
                StatusEdit::PostNew => {
                    let comment_id =
                        post_comment(github, place, &post.idempotency_key, message).await?;
                    Ok(json!({"comment_id": comment_id}))
                }
            }
        }
        GithubTarget::ChangeRequest(pull) => {
            let installation_id = pull.installation_id;
            let repository = pull.repository.as_str();
            let head = pull.head.as_str();
            // Opened before, its answer lost: GitHub allows one open pull request per branch.
            let pull = match github
                .open_pull(installation_id, repository, head)
                .await
                .map_err(transient)?
            {
                Some(pull) => pull,
                None => github
                    .create_pull(
                        installation_id,
                        repository,
                        &NewPull {
                            title: text(&body, "title")?,
                            head,
                            base: &pull.base,
                            body: text(&body, "body")?,
                            draft: providers.draft_change_requests,
                        },
                    )
                    .await
                    .map_err(transient)?,
            };
            Ok(json!({"number": pull.number, "url": pull.html_url}))
        }
        GithubTarget::ReviewReply(reply) => {
            let installation_id = reply.pull.installation_id;
            let repository = reply.pull.repository.as_str();
            let pull = reply.pull.number;
            let reply_to: u64 = reply.reply_to.parse().map_err(|_| {
                PostError::Permanent("the review comment to reply to is not a number".into())
            })?;
            let marker = marker(&post.idempotency_key);
            if let Some(id) = github
                .find_review_comment(installation_id, repository, pull, &marker)
                .await
                .map_err(transient)?
            {
                return Ok(json!({"comment_id": id}));
            }
            let id = github
                .reply_to_review_comment(
                    installation_id,
                    repository,
                    pull,
                    reply_to,
                    &format!("{}\n\n{marker}", text(&body, "text")?),
                )
                .await
                .map_err(transient)?;
            Ok(json!({"comment_id": id}))
        }
    }
}

/// Posts a comment carrying the post's marker, unless one with the marker is there already
/// (it went out, but its answer was lost).
async fn post_comment(
    github: &GithubApp,
    target: &GithubIssue,
    key: &str,
    message: &str,
) -> Result<u64, PostError> {
    let installation_id = target.installation_id;
    let repository = target.repository.as_str();
    let issue = target.number;
    let marker = marker(key);
    if let Some(id) = github
        .find_comment(installation_id, repository, issue, &marker)
        .await
        .map_err(transient)?
    {
        return Ok(id);
    }
    github
        .create_comment(
            installation_id,
            repository,
            issue,
            &format!("{message}\n\n{marker}"),
        )
        .await
        .map_err(transient)
}
