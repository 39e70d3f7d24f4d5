//! From an accepted delivery to a conversation: the HTTP handler stores each delivery with an
//! intake job ([`accept`]); the job checks that the sender may ask (repository permission or a
//! linked account), then creates or continues the conversation of that issue, pull/merge
//! request, thread or ticket, and enqueues its run.

pub mod accept;
mod authorize;

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::agent::RunConversation;
use crate::integrations::request::{PriorMessage, Provider, Request};
use crate::queue::{self, Job, JobContext};
use crate::storage::{DeliveryStatus, Event, NewConversation, NewEvent, Tx, User};
use tracing::Instrument;

use authorize::Decision;
pub use authorize::{CheckoutSource, IntakeSettings, MAX_DIFF_CHARS};

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
    let mut request: Request = serde_json::from_str(request)?;
    tracing::debug!(provider = %request.provider, "authorizing");
    let decision = ctx.intake.authorize(&ctx.db, &request).await?;
    // A new conversation starts with what was said before it, the pull/merge request's diff
    // and a ticket's repository, read before the transaction opens (SQLite has one connection; a provider call
    // must not hold it).
    let (history, diff) = match &decision {
        Decision::Allowed { .. } if is_new_conversation(ctx, &request).await? => {
            if let Some(repository) = ctx.intake.ticket_repository(&request).await? {
                request.set_ticket_repository(repository);
            }
            let history = ctx.intake.history(&request).await?;
            (history, diff_of(ctx, &request).await)
        }
        _ => (Vec::new(), Diff::default()),
    };
    let mut tx = ctx.db.begin().await?;
    if tx.delivery(job.delivery).await?.intake_id.as_deref() == Some(job.intake_id.as_str()) {
        return Ok(());
    }
    match decision {
        Decision::Denied { reason, hint } => {
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
            if let Some(hint) = hint {
                // Told once, after the outcome is stored: a retry of this job does not repeat it.
                if let Err(error) = ctx.intake.send_hint(&hint).await {
                    tracing::warn!(error = %format!("{error:#}"), "could not tell the sender how to link their account");
                }
            }
            Ok(())
        }
        Decision::Allowed { owner } => {
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
                    ctx.intake
                        .account_user(&mut tx, &request, &workspace)
                        .await?
                }
            };
            let (conversation_id, stored) = record_request(
                &mut tx,
                &job,
                &request,
                &owner,
                &history,
                &diff,
                &ctx.intake.public_url,
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
            if let Some(agent) = &ctx.agent {
                agent.bus.publish(&ctx.db, stored).await;
            }
            tracing::info!(conversation_id = %conversation_id, user_id = %owner.id, "request accepted");
            Ok(())
        }
    }
}

/// A pull/merge request's diff for the agent, or why it could not be read.
#[derive(Debug, Default)]
struct Diff {
    text: Option<String>,
    error: Option<String>,
}

/// Reads the diff; a failure is recorded for the agent, and does not refuse the request.
async fn diff_of(ctx: &JobContext, request: &Request) -> Diff {
    match ctx.intake.diff(&request.place).await {
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

async fn is_new_conversation(ctx: &JobContext, request: &Request) -> Result<bool, BoxDynError> {
    Ok(ctx
        .db
        .conversation_by_external_ref(request.provider.as_str(), &request.external_ref())
        .await?
        .is_none())
}

/// Creates the conversation of the request's issue, thread or ticket (or continues the one it
/// has), records the request for the agent and enqueues a run. Returns the conversation's id.
async fn record_request(
    tx: &mut Tx,
    job: &Intake,
    request: &Request,
    owner: &User,
    history: &[PriorMessage],
    diff: &Diff,
    public_url: &str,
) -> Result<(String, Vec<Event>), BoxDynError> {
    let provider = request.provider.as_str();
    let external_ref = request.external_ref();
    let existing = tx
        .conversation_by_external_ref(provider, &external_ref)
        .await?;
    let mut stored = Vec::new();
    let conversation = match existing {
        Some(conversation) => conversation,
        None => {
            let title = title_of(request);
            let conversation = tx
                .create_conversation(&NewConversation {
                    owner_id: &owner.id,
                    title: &title,
                    trigger_kind: provider,
                    repository: request.repository(),
                    branch: request.branch(),
                    git_provider: request.git_provider(),
                    external_ref: Some(&external_ref),
                    trigger_url: request.url.as_deref(),
                })
                .await?;
            stored.push(
                tx.append(
                    &conversation.id,
                    &NewEvent {
                        source: "environment",
                        kind: "request_context",
                        payload: &context_of(request, history, diff),
                    },
                )
                .await?,
            );
            conversation
        }
    };
    let message = crate::agent::events::user_message(
        &request.text,
        false,
        json!({
            "trigger": request.trigger,
            "sender": request.sender,
            "user_id": owner.id,
            "url": request.url,
            "delivery": job.delivery,
        }),
    );
    stored.push(
        tx.append(
            &conversation.id,
            &NewEvent {
                source: message.source,
                kind: &message.kind,
                payload: &message.doc,
            },
        )
        .await?,
    );
    crate::results::acknowledge(tx, request, &conversation.id, public_url).await?;
    queue::enqueue(
        tx,
        &RunConversation {
            conversation_id: conversation.id.clone(),
        },
    )
    .await?;
    Ok((conversation.id, stored))
}

/// A conversation's title: the or ticket's, else the first line of what was asked.
fn title_of(request: &Request) -> String {
    let title = request
        .title
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| request.text.lines().next().unwrap_or(""))
        .trim();
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
        "repository": request.repository(),
        "branch": request.branch(),
    })
}

/// The provider account's user name, for a user created on first contact.
/// The workspace GitHub accounts are linked under (webhook senders and browser sign-ins
/// alike): the host of GITHUB_API_URL.
pub(crate) fn github_workspace(api_url: &str) -> String {
    authorize::host_of(api_url)
}

pub(crate) fn account_login(provider: Provider, name: &str) -> String {
    format!("{provider}:{name}")
}
