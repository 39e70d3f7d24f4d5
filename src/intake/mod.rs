//! From an accepted delivery to a conversation: the HTTP handler stores each delivery with an
//! intake job ([`accept`]); the job checks that the sender may ask (repository permission or a
//! linked account, offering an unlinked one a link to link itself), decides which repository a
//! request from Slack, Jira or Linear works on (asking when it cannot tell), then creates or
//! continues the conversation of that issue, pull/merge request, thread or ticket, and
//! enqueues its run.

pub mod accept;
mod authorize;
pub mod classify;
pub mod links;
pub mod repository;

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::agent::RunConversation;
use crate::agent::events::{self as agent_events, RepositoryState};
use crate::integrations::Providers;
use crate::integrations::request::{Place, PriorMessage, Provider, Request, Trigger};
use crate::queue::{self, Job, JobContext};
use crate::storage::{
    Conversation, DeliveryStatus, Event, EventRange, NewConversation, NewEvent, Tx, User,
};
use tracing::Instrument;

use authorize::Decision;
pub use authorize::LinkOffer;
use repository::Plan;

/// Handle the request of one accepted delivery (stored with the delivery, so the job stays
/// small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intake {
    /// The delivery's row id.
    pub delivery: i64,
    /// Names this handling of the delivery: a redelivery gets a new one.
    pub intake_id: String,
}

impl Intake {
    pub fn new(delivery: i64) -> Self {
        Self {
            delivery,
            intake_id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

impl Job for Intake {
    const QUEUE: &'static str = "intake";
    const MAX_ATTEMPTS: u32 = 5;
}

pub(crate) async fn handle(job: Intake, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("intake", delivery = job.delivery);
    intake(job, &ctx).instrument(span).await
}

async fn intake(job: Intake, ctx: &JobContext) -> Result<(), BoxDynError> {
    let delivery = ctx.db.delivery(job.delivery).await?;
    // Jobs run at least once: a job that already did its work does nothing the second time.
    if delivery.intake_id.as_deref() == Some(job.intake_id.as_str()) {
        return Ok(());
    }
    let Some(request) = delivery.request.as_deref() else {
        return Err(format!("delivery {} holds no request", job.delivery).into());
    };
    let request: Request = serde_json::from_str(request)?;
    if let Some(reason) = classify::asks_nothing(&ctx.db, &request).await? {
        return skip_request(ctx, &job, &request, Skip::Ignore(reason)).await;
    }
    tracing::debug!(provider = %request.provider, "authorizing");
    match authorize::authorize(&ctx.providers.clients(), &ctx.db, &request).await? {
        Decision::Denied { reason, link } => refuse(ctx, &job, &request, &reason, link).await,
        Decision::Allowed { owner } => admit(ctx, &job, request, owner).await,
    }
}

/// Records a refused request; an unlinked account is offered a one-time link (privately on
/// Slack, in a comment on a ticket) that links it and then runs this request.
async fn refuse(
    ctx: &JobContext,
    job: &Intake,
    request: &Request,
    reason: &str,
    link: Option<LinkOffer>,
) -> Result<(), BoxDynError> {
    let mut tx = ctx.db.begin().await?;
    if tx.delivery(job.delivery).await?.intake_id.as_deref() == Some(job.intake_id.as_str()) {
        return Ok(());
    }
    let reason = match &link {
        Some(offer) => {
            let url = links::offer(
                &mut tx,
                offer,
                job.delivery,
                &ctx.providers.clients().public_url,
            )
            .await?;
            let text = links::invitation(offer, request, &url);
            let key = format!("link:{}", job.intake_id);
            crate::results::tell_sender(&mut tx, request, &text, &key).await?;
            format!("{reason}; a link to link the account was offered")
        }
        None => reason.to_string(),
    };
    tx.finish_intake(
        job.delivery,
        &job.intake_id,
        DeliveryStatus::Unauthorized,
        Some(&reason),
        None,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%reason, "request not authorized");
    Ok(())
}

/// What is read from providers for an admitted request before the transaction opens (SQLite
/// has one connection; a provider call must not hold it).
#[derive(Debug, Default)]
struct Prepared {
    history: Vec<PriorMessage>,
    diff: Diff,
    /// The request's attached images as data URLs, and those that could not be read.
    images: Vec<String>,
    unread_images: Vec<String>,
    /// What to do about the repository of a Slack or ticket request.
    plan: Option<Plan>,
}

/// Why an admitted request does nothing after all.
enum Skip {
    /// Stored as ignored, with the reason.
    Ignore(String),
    /// Ignored, and the sender is told why (privately on Slack).
    Tell(String),
}

async fn admit(
    ctx: &JobContext,
    job: &Intake,
    request: Request,
    owner: authorize::Owner,
) -> Result<(), BoxDynError> {
    let existing = ctx
        .db
        .conversation_by_external_ref(request.provider.as_str(), &request.external_ref())
        .await?;
    let prepared = match prepare(ctx, &request, &owner, existing.as_ref()).await? {
        Ok(prepared) => prepared,
        Err(skip) => return skip_request(ctx, job, &request, skip).await,
    };
    let mut tx = ctx.db.begin().await?;
    if tx.delivery(job.delivery).await?.intake_id.as_deref() == Some(job.intake_id.as_str()) {
        return Ok(());
    }
    let key = request.request_key();
    if let Some(first) = tx.claim_request(&key, job.delivery).await? {
        let reason = format!("the same request arrived before as delivery {first}");
        tx.finish_intake(
            job.delivery,
            &job.intake_id,
            DeliveryStatus::Duplicate,
            Some(&reason),
            None,
        )
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    let owner = match owner {
        authorize::Owner::Linked(user) => user,
        authorize::Owner::Account { workspace } => {
            authorize::account_user(&mut tx, &request, &workspace).await?
        }
    };
    let (conversation_id, stored) = record_request(
        &mut tx,
        job,
        &request,
        &owner,
        &prepared,
        &ctx.providers.clients(),
    )
    .await?;
    tx.finish_intake(
        job.delivery,
        &job.intake_id,
        DeliveryStatus::Accepted,
        None,
        Some(&conversation_id),
    )
    .await?;
    tx.commit().await?;
    ctx.bus.publish(&ctx.db, stored).await;
    tracing::info!(conversation_id = %conversation_id, user_id = %owner.id, "request accepted");
    Ok(())
}

/// Reads what a new conversation starts with (earlier messages, the diff) and decides what to
/// do about the repository of a Slack or ticket request.
async fn prepare(
    ctx: &JobContext,
    request: &Request,
    owner: &authorize::Owner,
    existing: Option<&Conversation>,
) -> Result<Result<Prepared, Skip>, BoxDynError> {
    let mut prepared = Prepared::default();
    let state = match existing {
        Some(conversation) => repository_state(ctx, conversation).await?,
        None => RepositoryState::Undecided,
    };
    if request.trigger == Trigger::Choice {
        let Some(conversation) = existing else {
            return Ok(Err(Skip::Ignore(
                "no conversation asked for a repository in this thread".into(),
            )));
        };
        if state != RepositoryState::Waiting {
            return Ok(Err(Skip::Tell(
                "The repository of this conversation was chosen already.".into(),
            )));
        }
        let authorize::Owner::Linked(user) = owner else {
            return Ok(Err(Skip::Ignore(
                "a choice from an unlinked account".into(),
            )));
        };
        if user.id != conversation.owner_id {
            return Ok(Err(Skip::Tell(
                "Only the person who asked can choose the repository.".into(),
            )));
        }
        prepared.plan = Some(
            ctx.providers
                .clients()
                .plan_choice(&ctx.db, &user.id, &request.text)
                .await?,
        );
        return Ok(Ok(prepared));
    }
    if existing.is_none() {
        prepared.history = ctx.providers.clients().history(request).await?;
        prepared.diff = diff_of(ctx, request).await;
    }
    if !request.images.is_empty() {
        (prepared.images, prepared.unread_images) = ctx.providers.clients().images(request).await;
    }
    let chooses_repository = matches!(
        request.place,
        Place::SlackThread { .. } | Place::JiraIssue { .. } | Place::LinearIssue { .. }
    );
    if let (true, authorize::Owner::Linked(user)) = (chooses_repository, owner) {
        prepared.plan = match (existing, &state) {
            (None, _) => Some(
                ctx.providers
                    .clients()
                    .plan_new(&ctx.db, request, &user.id)
                    .await?,
            ),
            (Some(_), RepositoryState::Waiting) => Some(
                ctx.providers
                    .clients()
                    .plan_answer(&ctx.db, request, &user.id)
                    .await?,
            ),
            _ => None,
        };
    }
    Ok(Ok(prepared))
}

/// Where a conversation stands on its repository, from its newest repository event.
async fn repository_state(
    ctx: &JobContext,
    conversation: &Conversation,
) -> Result<RepositoryState, BoxDynError> {
    let kinds = [
        agent_events::REPOSITORY_QUESTION.to_string(),
        agent_events::REPOSITORY_SELECTED.to_string(),
    ];
    let newest = ctx
        .db
        .events_in(
            &conversation.id,
            &EventRange {
                start_id: 0,
                reverse: true,
                kinds: &kinds,
                limit: 1,
                ..Default::default()
            },
        )
        .await?;
    Ok(agent_events::repository_state(newest.first()))
}

/// Stores a request that does nothing after all, telling the sender why (in the same
/// transaction, through the outbox) when there is a reason for them.
async fn skip_request(
    ctx: &JobContext,
    job: &Intake,
    request: &Request,
    skip: Skip,
) -> Result<(), BoxDynError> {
    let (reason, tell) = match skip {
        Skip::Ignore(reason) => (reason, false),
        Skip::Tell(reason) => (reason, true),
    };
    let mut tx = ctx.db.begin().await?;
    if tx.delivery(job.delivery).await?.intake_id.as_deref() == Some(job.intake_id.as_str()) {
        return Ok(());
    }
    if tell {
        let key = format!("told:{}", job.intake_id);
        crate::results::tell_sender(&mut tx, request, &reason, &key).await?;
    }
    tx.finish_intake(
        job.delivery,
        &job.intake_id,
        DeliveryStatus::Ignored,
        Some(&reason),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A pull/merge request's diff for the agent, or why it could not be read.
#[derive(Debug, Default)]
struct Diff {
    text: Option<String>,
    error: Option<String>,
}

/// Reads the diff; a failure is recorded for the agent, and does not refuse the request.
async fn diff_of(ctx: &JobContext, request: &Request) -> Diff {
    match ctx.providers.clients().diff(&request.place).await {
        Ok(text) => Diff { text, error: None },
        Err(error) => {
            let error = format!("{error:#}");
            tracing::warn!(%error, "could not read the diff; the request goes on without it");
            Diff {
                text: None,
                error: Some(error),
            }
        }
    }
}

/// Creates the conversation of the request's issue, thread or ticket (or continues the one it
/// has), records the request for the agent, decides or asks its repository, and enqueues a run
/// unless it waits for the answer. Returns the conversation's id.
async fn record_request(
    tx: &mut Tx,
    job: &Intake,
    request: &Request,
    owner: &User,
    prepared: &Prepared,
    providers: &Providers,
) -> Result<(String, Vec<Event>), BoxDynError> {
    let provider = request.provider.as_str();
    let external_ref = request.external_ref();
    let existing = tx
        .conversation_by_external_ref(provider, &external_ref)
        .await?;
    let decided = match &prepared.plan {
        Some(Plan::Work { repository, .. }) => Some(repository.as_ref()),
        _ => None,
    };
    let mut stored = Vec::new();
    let conversation = match existing {
        Some(conversation) => conversation,
        None => {
            let title = title_of(request);
            let repository = decided
                .flatten()
                .cloned()
                .or_else(|| request.place.repository_ref());
            let conversation = tx
                .create_conversation(&NewConversation {
                    owner_id: &owner.id,
                    title: &title,
                    trigger_kind: provider,
                    repository: repository.as_ref().map(|r| r.name()),
                    branch: request.branch(),
                    git_provider: repository.as_ref().map(|r| r.git_provider()),
                    external_ref: Some(&external_ref),
                    trigger_url: request.url.as_deref(),
                    title_pending: title_is_written(request),
                })
                .await?;
            stored.push(
                tx.append(
                    &conversation.id,
                    &NewEvent {
                        source: "environment",
                        kind: "request_context",
                        payload: &context_of(request, &prepared.history, &prepared.diff),
                    },
                )
                .await?,
            );
            conversation
        }
    };
    // A choice from a menu is not a message.
    if request.trigger != Trigger::Choice {
        let message = crate::agent::events::user_message(
            &request.text,
            false,
            json!({
                "trigger": request.trigger,
                "sender": request.sender,
                "user_id": owner.id,
                "url": request.url,
                "delivery": job.delivery,
                "image_urls": prepared.images,
            }),
        );
        stored.push(append_draft(tx, &conversation.id, &message).await?);
        if !prepared.unread_images.is_empty() {
            let note = agent_events::environment_note(&format!(
                "Images attached to this message could not be read: {}.",
                prepared.unread_images.join("; ")
            ));
            stored.push(append_draft(tx, &conversation.id, &note).await?);
        }
    }
    let public_url = &providers.public_url;
    let run = match &prepared.plan {
        None => {
            crate::results::acknowledge(tx, request, &conversation.id, public_url, None).await?;
            true
        }
        Some(Plan::Work { repository, how }) => {
            let selected =
                agent_events::repository_selected(repository.as_ref(), how, &request.sender.name);
            stored.push(append_draft(tx, &conversation.id, &selected).await?);
            tx.set_conversation_repository(
                &conversation.id,
                repository.as_ref().map(|r| r.name()),
                repository.as_ref().map(|r| r.git_provider()),
            )
            .await?;
            crate::results::acknowledge(
                tx,
                request,
                &conversation.id,
                public_url,
                Some(repository.as_ref()),
            )
            .await?;
            true
        }
        Some(Plan::Ask { choices, problems }) => {
            let question = crate::results::RepositoryQuestion {
                choices,
                problems,
                mention_handle: &providers.mention_handle,
                public_url,
            };
            let asked = agent_events::repository_question(
                "Which repository should I work on?",
                choices,
                problems,
            );
            stored.push(append_draft(tx, &conversation.id, &asked).await?);
            tx.set_conversation_status(
                &conversation.id,
                agent_events::AgentState::AwaitingUserInput.as_str(),
            )
            .await?;
            crate::results::ask_repository(tx, request, &conversation.id, &question).await?;
            false
        }
        Some(Plan::KeepWaiting) => false,
    };
    if run {
        queue::enqueue(
            tx,
            &RunConversation {
                conversation_id: conversation.id.clone(),
            },
        )
        .await?;
    }
    Ok((conversation.id, stored))
}

async fn append_draft(
    tx: &mut Tx,
    conversation_id: &str,
    draft: &agent_events::Draft,
) -> Result<Event, BoxDynError> {
    Ok(tx
        .append(
            conversation_id,
            &NewEvent {
                source: draft.source,
                kind: &draft.kind,
                payload: &draft.doc,
            },
        )
        .await?)
}

/// Whether the conversation's title is a stand-in for the model to replace: a Slack thread's
/// (its first line); issues, pull/merge requests and tickets have titles of their own.
fn title_is_written(request: &Request) -> bool {
    matches!(request.place, Place::SlackThread { .. })
}

/// A conversation's title: `owner/repo#N: title` for an issue or pull request
/// (`group/project!N: title` for a merge request), `KEY: title` for a ticket, else the first
/// line of what was asked.
fn title_of(request: &Request) -> String {
    let first_line = || request.text.lines().next().unwrap_or("").trim().to_string();
    let own = request
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let title = match (&request.place, own) {
        (
            Place::GithubIssue {
                repository, number, ..
            }
            | Place::GithubPullRequest {
                repository, number, ..
            },
            Some(title),
        ) => format!("{repository}#{number}: {title}"),
        (
            Place::GitlabIssue {
                project_path, iid, ..
            },
            Some(title),
        ) => format!("{project_path}#{iid}: {title}"),
        (
            Place::GitlabMergeRequest {
                project_path, iid, ..
            },
            Some(title),
        ) => format!("{project_path}!{iid}: {title}"),
        (_, Some(title)) => match request.ticket_key() {
            Some(key) => format!("{key}: {title}"),
            None => title.to_string(),
        },
        (_, None) => first_line(),
    };
    let title: String = title.chars().take(200).collect();
    if title.is_empty() {
        format!("{} request", request.provider)
    } else {
        title
    }
}

/// What the agent is told about where it was asked.
fn context_of(request: &Request, history: &[PriorMessage], diff: &Diff) -> serde_json::Value {
    json!({
        "history": history,
        "diff": diff.text,
        "diff_error": diff.error,
        "provider": request.provider,
        "place": request.place,
        "title": request.title,
        "body": request.body,
        "url": request.url,
        "repository": request.place.repository_ref().map(|r| r.name().to_string()),
        "branch": request.branch(),
    })
}

/// The provider account's user name, for a user created on first contact.
/// The workspace GitHub accounts are linked under (webhook senders and browser sign-ins
/// alike): the host of GITHUB_API_URL.
pub(crate) fn github_workspace(api_url: &str) -> String {
    crate::integrations::providers::host_of(api_url)
}

pub(crate) fn account_login(provider: Provider, name: &str) -> String {
    format!("{provider}:{name}")
}
