//! Results go back where the request came from. Every post is an outbox row written in the
//! same transaction as what causes it (the accepted request, the agent coming to rest), with a
//! `deliver` job; the job posts it, retrying with backoff, and before posting again looks for
//! the post (a hidden marker in the comment) so that a post whose answer was lost is not
//! doubled. After the last attempt the post stays `failed`, with its error.

mod github;
mod gitlab;
mod jira;
mod linear;
mod slack;
pub mod target;

use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::integrations::request::{NO_REPOSITORY, Place, Provider, RepositoryRef, Request};
use crate::queue::{self, Job, JobContext};
use crate::storage::{NewOutboxPost, OutboxPost, Tx};
use target::{
    GithubIssue, GithubPull, GithubReaction, GithubReviewReply, GithubTarget, GitlabAward,
    GitlabDiscussionReply, GitlabMergeRequest, GitlabNoteable, GitlabTarget, JiraTarget,
    LinearTarget, Links, SlackEphemeral, SlackReaction, SlackTarget, SlackThread, Target,
};

/// Delivers one outbox post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverPost {
    pub post_id: i64,
}

impl Job for DeliverPost {
    const QUEUE: &'static str = "deliver";
    /// Only database faults fail the job; a provider's failures are rescheduled by the job.
    const MAX_ATTEMPTS: u32 = 5;
}

/// Attempts of one post before it is left failed: with the delays below, about two and a
/// half hours of a provider being down.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 20;
const FIRST_RETRY: Duration = Duration::from_secs(2);
const LONGEST_RETRY: Duration = Duration::from_secs(600);
/// How long a post waits for the one it edits to be delivered.
const DEPENDENCY_WAIT: Duration = Duration::from_secs(2);

/// The kinds of posts.
pub mod kind {
    /// A reaction on the item that asked.
    pub const REACTION: &str = "reaction";
    /// The one status comment of a request, edited as the run goes on.
    pub const STATUS: &str = "status";
    /// A new text of the status comment.
    pub const STATUS_UPDATE: &str = "status_update";
    /// A reply of its own where comments are not edited (a Slack thread, a ticket), or in a
    /// review thread.
    pub const REPLY: &str = "reply";
    /// A pull/merge request opened from the branch the run pushed.
    pub const CHANGE_REQUEST: &str = "change_request";
    /// A message only its Slack recipient sees (Slack cannot find it again: a lost answer
    /// may show it twice, which is harmless).
    pub const EPHEMERAL: &str = "ephemeral";
}

/// Why a delivery did not happen this time.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// Worth trying again later (the provider is down, answers 5xx or rate-limits).
    #[error("{0}")]
    Transient(String),
    /// Trying again will not help (the post makes no sense, the provider is not configured).
    #[error("{0}")]
    Permanent(String),
    /// The post it edits is not delivered yet.
    #[error("{0}")]
    NotYet(String),
}

/// The delay before attempt `attempts + 1`: doubling from 2 s, at most 10 minutes.
fn retry_delay(attempts: i32) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << attempts.clamp(1, 16).saturating_sub(1));
    doubled.min(LONGEST_RETRY)
}

pub(crate) async fn handle(job: DeliverPost, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    let post = ctx.db.outbox_post(job.post_id).await?;
    if post.status != "pending" {
        return Ok(());
    }
    let outcome = match Target::read(&post) {
        Ok(Target::Github(target)) => github::deliver(&ctx, &post, target).await,
        Ok(Target::Slack(target)) => slack::deliver(&ctx, &post, target).await,
        Ok(Target::Gitlab(target)) => gitlab::deliver(&ctx, &post, target).await,
        Ok(Target::Jira(target)) => jira::deliver(&ctx, &post, target).await,
        Ok(Target::Linear(target)) => linear::deliver(&ctx, &post, target).await,
        Err(error) => Err(error),
    };
    let mut tx = ctx.db.begin().await?;
    match outcome {
        Ok(result) => {
            tx.record_outbox_attempt(post.id, Ok(Some(&result)), false)
                .await?;
            tracing::info!(post = post.id, provider = %post.provider, kind = %post.kind, "posted");
        }
        Err(error) => {
            let attempts = post.attempts + 1;
            let give_up =
                matches!(error, PostError::Permanent(_)) || attempts >= MAX_DELIVERY_ATTEMPTS;
            let message = error.to_string();
            tx.record_outbox_attempt(post.id, Err(&message), give_up)
                .await?;
            if give_up {
                tracing::warn!(post = post.id, provider = %post.provider, attempts, error = %message, "post failed for good");
            } else {
                let delay = match error {
                    PostError::NotYet(_) => DEPENDENCY_WAIT,
                    _ => retry_delay(attempts),
                };
                tracing::warn!(post = post.id, provider = %post.provider, attempts, error = %message, retry_in_ms = delay.as_millis() as u64, "post not delivered; retrying later");
                queue::enqueue_after(&mut tx, &DeliverPost { post_id: post.id }, delay).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Whether a request came from a post of the agent itself: a comment carrying a post's
/// marker, or one whose id is that of a post (Jira and Linear comments carry no hidden
/// marker). The agent never answers itself.
pub async fn is_own_post(db: &crate::storage::Db, request: &Request) -> anyhow::Result<bool> {
    if carries_marker(request) {
        return Ok(true);
    }
    let Some(item) = ["issue-comment-", "review-comment-", "note-", "comment-"]
        .iter()
        .find_map(|prefix| request.source_id.strip_prefix(prefix))
    else {
        return Ok(false);
    };
    let provider = request.provider.as_str();
    let Some(conversation) = db
        .conversation_by_external_ref(provider, &request.external_ref())
        .await?
    else {
        return Ok(false);
    };
    let posts = db.outbox_posts_of(&conversation.id).await?;
    Ok(posts.iter().filter(|p| p.provider == provider).any(|post| {
        let recorded = post
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
            .map(|r| match &r["comment_id"] {
                Value::String(id) => id.clone(),
                other => other.to_string(),
            });
        recorded.as_deref() == Some(item)
            // A Linear comment's id is known before Linear answers.
            || (provider == "linear"
                && crate::integrations::linear::comment_id(&post.idempotency_key) == item)
    }))
}

/// Whether the request's text carries the hidden marker of a post of the agent.
pub fn carries_marker(request: &Request) -> bool {
    request.text.contains(MARKER_PREFIX)
}

const MARKER_PREFIX: &str = "<!-- openhands:";

/// The hidden marker a posted comment carries, to find it again.
pub fn marker(key: &str) -> String {
    format!("{MARKER_PREFIX}{key} -->")
}

/// Adds a post and its delivery job inside `tx`; nothing when a post with this key exists.
pub async fn add_post(tx: &mut Tx, post: &NewOutboxPost<'_>) -> Result<(), BoxDynError> {
    if let Some(id) = tx.add_outbox_post(post).await? {
        queue::enqueue(tx, &DeliverPost { post_id: id }).await?;
    }
    Ok(())
}

/// Adds the post of `kind` to `target`, in the caller's transaction.
async fn add(
    tx: &mut Tx,
    conversation_id: Option<&str>,
    kind: &str,
    target: Target,
    body: Value,
    key: &str,
) -> Result<(), BoxDynError> {
    add_post(
        tx,
        &NewOutboxPost {
            conversation_id,
            provider: target.provider(),
            kind,
            target: &target.to_json(),
            body: &body,
            idempotency_key: key,
        },
    )
    .await
}

/// The dashboard link of a conversation.
pub fn conversation_link(public_url: &str, conversation_id: &str) -> String {
    format!("{public_url}/conversations/{conversation_id}")
}

/// Acknowledges an accepted request where it was made: a reaction on what asked, and the
/// status comment (a thread reply on Slack, a comment on a ticket) with the conversation's link.
/// `working_on` names the repository decided for a Slack or ticket request (`Some(None)`:
/// none), said in the status.
pub async fn acknowledge(
    tx: &mut Tx,
    request: &Request,
    conversation_id: &str,
    public_url: &str,
    working_on: Option<Option<&RepositoryRef>>,
) -> Result<(), BoxDynError> {
    let request_key = request.request_key();
    let link = conversation_link(public_url, conversation_id);
    let text = match working_on {
        None => format!("I'm on it! You can follow my progress here: {link}"),
        Some(Some(repository)) => format!(
            "I'm on it, working on `{}`. You can follow my progress here: {link}",
            repository.name()
        ),
        Some(None) => {
            format!("I'm on it (without a repository). You can follow my progress here: {link}")
        }
    };
    let id = Some(conversation_id);
    let reaction_key = format!("{request_key}:reaction");
    let status_key = format!("{request_key}:status");
    if let Place::SlackThread {
        channel, thread_ts, ..
    } = &request.place
    {
        // The message that asked: its ts follows the channel in the source id. A choice made
        // in the agent's own menu gets no reaction.
        let asked = request.source_id.rsplit(':').next().unwrap_or(thread_ts);
        if request.trigger != crate::integrations::request::Trigger::Choice {
            let target = Target::Slack(SlackTarget::Reaction(SlackReaction {
                channel: channel.clone(),
                ts: asked.to_string(),
            }));
            let body = json!({"name": "eyes"});
            add(tx, id, kind::REACTION, target, body, &reaction_key).await?;
        }
        let target = Target::Slack(SlackTarget::Thread(SlackThread {
            channel: channel.clone(),
            thread_ts: thread_ts.clone(),
            links: Links::default(),
        }));
        return add(
            tx,
            id,
            kind::STATUS,
            target,
            json!({"text": text}),
            &status_key,
        )
        .await;
    }
    if let Some((project_id, noteable)) = gitlab::noteable_of(&request.place) {
        let award = Target::Gitlab(GitlabTarget::Award(GitlabAward {
            project_id,
            subject: gitlab::subject_of(request, &noteable),
        }));
        add(
            tx,
            id,
            kind::REACTION,
            award,
            json!({"name": "eyes"}),
            &reaction_key,
        )
        .await?;
        let note = Target::Gitlab(GitlabTarget::Note(GitlabNoteable {
            project_id,
            noteable,
        }));
        return add(
            tx,
            id,
            kind::STATUS,
            note,
            json!({"text": text}),
            &status_key,
        )
        .await;
    }
    if let Some(ticket @ (Target::Jira(_) | Target::Linear(_))) = reply_target(request) {
        return add(
            tx,
            id,
            kind::STATUS,
            ticket,
            json!({"text": text}),
            &status_key,
        )
        .await;
    }
    if request.provider != Provider::Github {
        return Ok(());
    }
    let (installation_id, repository, number) = match &request.place {
        Place::GithubIssue {
            installation_id,
            repository,
            number,
        }
        | Place::GithubPullRequest {
            installation_id,
            repository,
            number,
            ..
        } => (*installation_id, repository.clone(), *number),
        _ => return Ok(()),
    };
    let reaction = Target::Github(GithubTarget::Reaction(GithubReaction {
        installation_id,
        repository: repository.clone(),
        subject: github::subject_of(request, number),
    }));
    let body = json!({"content": "eyes"});
    add(tx, id, kind::REACTION, reaction, body, &reaction_key).await?;
    let comment = Target::Github(GithubTarget::Comment(GithubIssue {
        installation_id,
        repository,
        number,
    }));
    add(
        tx,
        id,
        kind::STATUS,
        comment,
        json!({"text": text}),
        &status_key,
    )
    .await
}

/// Where replies to a request from Slack, Jira or Linear go: its thread or ticket.
fn reply_target(request: &Request) -> Option<Target> {
    let links = Links::default();
    match &request.place {
        Place::SlackThread {
            channel, thread_ts, ..
        } => Some(Target::Slack(SlackTarget::Thread(SlackThread {
            channel: channel.clone(),
            thread_ts: thread_ts.clone(),
            links,
        }))),
        Place::JiraIssue {
            site, issue_key, ..
        } => Some(Target::Jira(JiraTarget {
            site: Some(site.clone()),
            issue_key: issue_key.clone(),
            links,
        })),
        Place::LinearIssue { issue_id, .. } => Some(Target::Linear(LinearTarget {
            issue_id: issue_id.clone(),
            links,
        })),
        _ => None,
    }
}

/// Asks where the request was made which repository to work on: on Slack a reaction on the
/// message and a menu of `choices` (and "No repository") in the thread; on a ticket a comment
/// listing them, to be answered by naming one. `problems` says why named ones cannot be used.
/// The question is the request's status post: what the run reports later follows it.
pub async fn ask_repository(
    tx: &mut Tx,
    request: &Request,
    conversation_id: &str,
    question: &RepositoryQuestion<'_>,
) -> Result<(), BoxDynError> {
    let Some(target) = reply_target(request) else {
        return Ok(());
    };
    let request_key = request.request_key();
    let link = conversation_link(question.public_url, conversation_id);
    let mut text = String::new();
    for problem in question.problems {
        text.push_str(&format!("I can't work on {problem}.\n"));
    }
    let body = if let Target::Slack(_) = target {
        if let Place::SlackThread { channel, .. } = &request.place
            && request.trigger != crate::integrations::request::Trigger::Choice
        {
            let asked = request.source_id.rsplit(':').next().unwrap_or_default();
            let reaction = Target::Slack(SlackTarget::Reaction(SlackReaction {
                channel: channel.clone(),
                ts: asked.to_string(),
            }));
            let key = format!("{request_key}:reaction");
            let id = Some(conversation_id);
            add(
                tx,
                id,
                kind::REACTION,
                reaction,
                json!({"name": "eyes"}),
                &key,
            )
            .await?;
        }
        text.push_str(&format!(
            "Which repository should I work on? Pick it below, or name it in this thread (`owner/name`). <{link}|Conversation>"
        ));
        let mut options: Vec<crate::integrations::slack::MenuOption> = question
            .choices
            .iter()
            .map(|choice| crate::integrations::slack::MenuOption {
                label: choice.name().to_string(),
                value: choice.choice_value(),
            })
            .collect();
        options.push(crate::integrations::slack::MenuOption {
            label: "No repository".to_string(),
            value: NO_REPOSITORY.to_string(),
        });
        let blocks = crate::integrations::slack::repository_menu(&text, &options);
        json!({"text": text, "blocks": blocks})
    } else {
        let handle = question.mention_handle;
        text.push_str(&format!(
            "Which repository should I work on? Reply with {handle} and its name, e.g. `{handle} owner/name`, or `{handle} no repository`."
        ));
        if !question.choices.is_empty() {
            const LISTED: usize = 20;
            let names: Vec<String> = question
                .choices
                .iter()
                .take(LISTED)
                .map(|c| format!("`{}`", c.name()))
                .collect();
            text.push_str(&format!("\nYou may use: {}", names.join(", ")));
            if question.choices.len() > LISTED {
                text.push_str(&format!(" and {} more", question.choices.len() - LISTED));
            }
            text.push('.');
        }
        text.push_str(&format!("\n\nConversation: {link}"));
        json!({"text": text})
    };
    let key = format!("{request_key}:status");
    add(tx, Some(conversation_id), kind::STATUS, target, body, &key).await
}

/// What [`ask_repository`] asks.
#[derive(Debug)]
pub struct RepositoryQuestion<'a> {
    pub choices: &'a [RepositoryRef],
    pub problems: &'a [String],
    /// How people address the agent, for a ticket's answer.
    pub mention_handle: &'a str,
    pub public_url: &'a str,
}

/// Tells the sender of a request something meant for them: privately on Slack (an ephemeral
/// message in the thread), as a reply comment on a ticket. `key` names this telling, so that
/// it is posted once.
pub async fn tell_sender(
    tx: &mut Tx,
    request: &Request,
    text: &str,
    key: &str,
) -> Result<(), BoxDynError> {
    let Some(target) = reply_target(request) else {
        return Ok(());
    };
    let (kind, target) = match target {
        Target::Slack(SlackTarget::Thread(thread)) => (
            kind::EPHEMERAL,
            Target::Slack(SlackTarget::Ephemeral(SlackEphemeral {
                channel: thread.channel,
                thread_ts: thread.thread_ts,
                user: request.sender.id.clone(),
            })),
        ),
        ticket => (kind::REPLY, ticket),
    };
    let key = format!("{}:{key}", request.request_key());
    add(tx, None, kind, target, json!({"text": text}), &key).await
}

/// What the run did with the repository when the agent finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The branch the work went to (or was meant to go to).
    pub branch: String,
    /// The branch the work started from: a new pull/merge request goes into it.
    pub base_branch: String,
    /// Commits on `branch` beyond the cloned commit.
    pub commits: u32,
    /// A pull/merge request is to be opened from `branch` (the request was an issue).
    pub open_request: bool,
    /// Why the work could not be pushed.
    pub error: Option<String>,
    /// The repository's pre-commit script still fails on the work, in words.
    #[serde(default)]
    pub pre_commit_failure: Option<String>,
}

/// How a run came to rest, for the posts that report it.
#[derive(Debug)]
pub struct Rest<'a> {
    pub conversation_id: &'a str,
    /// The `agent_state_changed` event: one report per rest.
    pub state_event_id: i64,
    /// The agent's final message, its question, or why it stopped.
    pub summary: &'a str,
    /// The conversation's title (the issue's), for a new pull/merge request.
    pub title: &'a str,
    /// A web link to the ticket, for the pull request of a Jira or Linear ticket.
    pub ticket_url: Option<&'a str>,
    /// Where the request was made.
    pub place: Option<&'a Place>,
    /// The repository the work went to.
    pub repository: Option<&'a RepositoryRef>,
    pub changes: Option<&'a Changes>,
}

/// Providers whose comments are not edited: each report is a new comment after the
/// acknowledgement.
/// Tells where the request was made how the run ended: the status comment is edited to the
/// agent's summary (or why it stopped), with the pull/merge request it opened or the branch
/// it pushed; a review comment also gets the summary as a reply in its thread. Written in the
/// transaction that records the state.
pub async fn report_rest(
    tx: &mut Tx,
    rest: &Rest<'_>,
    public_url: &str,
) -> Result<(), BoxDynError> {
    let conversation_id = rest.conversation_id;
    let Some(status) = tx.latest_outbox_post(conversation_id, kind::STATUS).await? else {
        return Ok(());
    };
    let link = conversation_link(public_url, conversation_id);
    let target = Target::read(&status).map_err(|e| e.to_string())?;
    let key = format!(
        "{}:{conversation_id}:{}",
        status.idempotency_key, rest.state_event_id
    );
    let plain = status.provider == "jira";
    let mut summary = rest.summary.to_string();
    let mut change_request = None;
    if let Some(changes) = rest.changes {
        let bold = |text: &str| {
            if plain {
                text.to_string()
            } else {
                format!("**{text}**")
            }
        };
        if let Some(failure) = &changes.pre_commit_failure {
            summary.push_str(&format!("\n\n{}", bold(failure)));
        }
        if let Some(error) = &changes.error {
            summary.push_str(&format!(
                "\n\n{} {error}",
                bold("The changes could not be pushed:")
            ));
        } else if changes.commits > 0 && changes.open_request {
            change_request = open_change_request(tx, rest, changes, &link).await?;
        } else if changes.commits > 0 {
            summary.push_str(&format!(
                "\n\nThe changes are pushed to `{}`.",
                changes.branch
            ));
        }
    }
    let links = Links {
        after: Some(status.idempotency_key.clone()),
        change_request: change_request.clone(),
    };
    if let Some(reply) = target.follow_up(links) {
        let text = if status.provider == "slack" {
            format!("{summary}\n<{link}|Conversation>")
        } else {
            format!("{summary}\n\nConversation: {link}")
        };
        let body = json!({"text": text});
        return add(tx, Some(conversation_id), kind::REPLY, reply, body, &key).await;
    }
    if let Some(place) = rest.place {
        reply_in_review_thread(tx, rest, place, &summary).await?;
    }
    let Some(update) = target.status_update(&status.idempotency_key, change_request) else {
        return Ok(());
    };
    let body = json!({"text": format!("{summary}\n\n[Conversation]({link})")});
    add(
        tx,
        Some(conversation_id),
        kind::STATUS_UPDATE,
        update,
        body,
        &key,
    )
    .await
}

/// Adds the post that opens a pull/merge request from the pushed branch; returns its key.
/// One per branch: a follow-up on the same issue, thread or ticket pushes to the branch its
/// request shows. A Slack thread's or ticket's pull/merge request is opened on the repository
/// chosen for it.
async fn open_change_request(
    tx: &mut Tx,
    rest: &Rest<'_>,
    changes: &Changes,
    link: &str,
) -> Result<Option<String>, BoxDynError> {
    let (Some(place), Some(repository)) = (rest.place, rest.repository) else {
        return Ok(None);
    };
    let (title, closing) = match place {
        Place::GithubIssue { number, .. } => (
            format!("Fix #{number}: {}", rest.title),
            format!("Fixes #{number}"),
        ),
        Place::GitlabIssue { iid, .. } => (
            format!("Fix #{iid}: {}", rest.title),
            format!("Closes #{iid}"),
        ),
        Place::JiraIssue { issue_key: key, .. }
        | Place::LinearIssue {
            identifier: key, ..
        } => (
            format!("{key}: {}", rest.title),
            match rest.ticket_url {
                Some(url) => format!("Ticket: [{key}]({url})"),
                None => format!("Ticket: {key}"),
            },
        ),
        Place::SlackThread { .. } => (rest.title.to_string(), "Asked in Slack.".to_string()),
        _ => return Ok(None),
    };
    let key = format!("{}:change_request:{}", rest.conversation_id, changes.branch);
    let title: String = title.chars().take(250).collect();
    let body = format!("{}\n\n{closing}\n\n[Conversation]({link})", rest.summary);
    let head = changes.branch.clone();
    let base = changes.base_branch.clone();
    let target = match repository {
        RepositoryRef::Github {
            installation_id,
            repository,
        } => Target::Github(GithubTarget::ChangeRequest(GithubPull {
            installation_id: *installation_id,
            repository: repository.clone(),
            head,
            base,
        })),
        RepositoryRef::Gitlab { project_id, .. } => {
            Target::Gitlab(GitlabTarget::ChangeRequest(GitlabMergeRequest {
                project_id: *project_id,
                head,
                base,
            }))
        }
    };
    let body = json!({"title": title, "body": body});
    let id = Some(rest.conversation_id);
    add(tx, id, kind::CHANGE_REQUEST, target, body, &key).await?;
    Ok(Some(key))
}

/// A request made in a review thread gets the summary as a reply there too.
async fn reply_in_review_thread(
    tx: &mut Tx,
    rest: &Rest<'_>,
    place: &Place,
    summary: &str,
) -> Result<(), BoxDynError> {
    let target = match place {
        Place::GithubPullRequest {
            installation_id,
            repository,
            number,
            review: Some(review),
            ..
        } => Target::Github(GithubTarget::ReviewReply(GithubReviewReply {
            pull: GithubIssue {
                installation_id: *installation_id,
                repository: repository.clone(),
                number: *number,
            },
            reply_to: review.reply_to.clone(),
        })),
        Place::GitlabMergeRequest {
            project_id,
            iid,
            review: Some(review),
            ..
        } => Target::Gitlab(GitlabTarget::DiscussionReply(GitlabDiscussionReply {
            noteable: GitlabNoteable {
                project_id: *project_id,
                noteable: format!("merge_requests/{iid}"),
            },
            reply_to: review.reply_to.clone(),
        })),
        _ => return Ok(()),
    };
    let key = format!(
        "{}:{}:review_reply",
        rest.conversation_id, rest.state_event_id
    );
    let id = Some(rest.conversation_id);
    add(tx, id, kind::REPLY, target, json!({"text": summary}), &key).await
}

/// The new text of a status comment, with the line about its pull/merge request.
pub(crate) async fn status_text(
    ctx: &JobContext,
    change_request: Option<&str>,
    body: &Value,
    plain: bool,
) -> Result<String, PostError> {
    let message = text(body, "text")?;
    Ok(
        match change_request_line(ctx, change_request, plain).await? {
            Some(line) => format!("{message}\n\n{line}"),
            None => message.to_string(),
        },
    )
}

/// What a status text says about the pull/merge request its run opened: its link once it is
/// open, why not if it could not be opened. Waits while it is being opened.
async fn change_request_line(
    ctx: &JobContext,
    change_request: Option<&str>,
    plain: bool,
) -> Result<Option<String>, PostError> {
    let Some(key) = change_request else {
        return Ok(None);
    };
    let request = dependency(ctx, key).await?;
    let noun = if request.provider == "gitlab" {
        "merge request"
    } else {
        "pull request"
    };
    match request.status.as_str() {
        "pending" => Err(PostError::NotYet(format!("the {noun} is not open yet"))),
        "sent" => {
            let url = request
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .and_then(|r| r["url"].as_str().map(str::to_string))
                .unwrap_or_default();
            let mut noun = noun.to_string();
            if let Some(first) = noun.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            Ok(Some(format!("{noun}: {url}")))
        }
        _ => {
            let why = format!("The {noun} could not be opened:");
            let why = if plain { why } else { format!("**{why}**") };
            Ok(Some(format!(
                "{why} {}",
                request.last_error.unwrap_or_default()
            )))
        }
    }
}

/// A post's body, read back.
pub(crate) fn document(text: &str) -> Result<Value, PostError> {
    serde_json::from_str(text)
        .map_err(|e| PostError::Permanent(format!("the stored post is not JSON: {e}")))
}

/// A field of a stored post's body.
pub(crate) fn text<'a>(value: &'a Value, name: &str) -> Result<&'a str, PostError> {
    value
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| PostError::Permanent(format!("the stored post has no `{name}`")))?
        .as_str()
        .ok_or_else(|| PostError::Permanent(format!("`{name}` of the stored post is not text")))
}

/// A provider's failure: worth trying again later, unless the provider refused the post
/// itself (a 4xx other than 408 and 429: the issue is gone, the app may not post there).
pub(crate) fn transient(error: anyhow::Error) -> PostError {
    let message = format!("{error:#}");
    let refused = |status: u16| (400..500).contains(&status) && status != 408 && status != 429;
    match refusal_status(&error) {
        Some(status) if refused(status) => {
            PostError::Permanent(format!("{message} (the provider answered {status})"))
        }
        _ => PostError::Transient(message),
    }
}

/// Whether the provider answered that the thing addressed is not there (404 or 410): a
/// deleted comment, say.
pub(crate) fn is_gone(error: &anyhow::Error) -> bool {
    matches!(refusal_status(error), Some(404 | 410))
}

/// The HTTP status a provider answered with, where it is one; GitHub's rate-limit 403 is none.
fn refusal_status(error: &anyhow::Error) -> Option<u16> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<reqwest::Error>() {
            return e.status().map(|s| s.as_u16());
        }
        if let Some(octocrab::Error::GitHub { source, .. }) =
            cause.downcast_ref::<octocrab::Error>()
        {
            // GitHub answers 403 when a rate limit is exceeded: that passes.
            let limited = source.message.to_ascii_lowercase().contains("rate limit");
            return (!limited).then_some(source.status_code.as_u16());
        }
        None
    })
}

/// The status comment posted under `status_key` was deleted and `comment_id` took its place:
/// later edits go to the new one.
pub(crate) async fn record_replaced_status(
    ctx: &JobContext,
    status_key: &str,
    comment_id: u64,
) -> Result<(), PostError> {
    let status = dependency(ctx, status_key).await?;
    ctx.db
        .set_outbox_result(status.id, &json!({"comment_id": comment_id}))
        .await
        .map_err(|e| PostError::Transient(e.to_string()))
}

/// The post another one depends on, by key.
pub(crate) async fn dependency(ctx: &JobContext, key: &str) -> Result<OutboxPost, PostError> {
    ctx.db
        .outbox_post_by_key(key)
        .await
        .map_err(|e| PostError::Transient(e.to_string()))?
        .ok_or_else(|| PostError::Permanent(format!("the post {key} it edits does not exist")))
}

/// A summary follows the acknowledgement it comes `after` (a Slack thread, a ticket's comments).
pub(crate) async fn wait_for_acknowledgement(
    ctx: &JobContext,
    links: &Links,
) -> Result<(), PostError> {
    if let Some(first) = &links.after
        && dependency(ctx, first).await?.status == "pending"
    {
        return Err(PostError::NotYet(
            "the acknowledgement is not posted yet".into(),
        ));
    }
    Ok(())
}

/// What to do with a new text of a status comment.
pub(crate) enum StatusEdit {
    /// A newer text went out already.
    Superseded,
    /// Edit the comment `id`, the status comment posted under `status_key` (its marker stays).
    Edit { id: u64, status_key: String },
    /// The status comment could not be posted: post this text as a comment of its own.
    PostNew,
}

/// Decides how a `status_update` post is delivered: it waits for the status comment it edits,
/// and an older text never overwrites a newer one.
pub(crate) async fn status_edit(
    ctx: &JobContext,
    post: &OutboxPost,
    key: &str,
) -> Result<StatusEdit, PostError> {
    if let Some(conversation_id) = &post.conversation_id {
        let posts = ctx
            .db
            .outbox_posts_of(conversation_id)
            .await
            .map_err(|e| PostError::Transient(e.to_string()))?;
        if posts.iter().any(|p| {
            p.kind == kind::STATUS_UPDATE
                && p.id > post.id
                && p.status == "sent"
                && p.target == post.target
        }) {
            return Ok(StatusEdit::Superseded);
        }
    }
    let status = dependency(ctx, key).await?;
    match status.status.as_str() {
        "pending" => Err(PostError::NotYet(
            "the status comment is not posted yet".into(),
        )),
        "sent" => Ok(status
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
            .and_then(|r| r["comment_id"].as_u64())
            .map(|id| StatusEdit::Edit {
                id,
                status_key: status.idempotency_key.clone(),
            })
            .unwrap_or(StatusEdit::PostNew)),
        _ => Ok(StatusEdit::PostNew),
    }
}
