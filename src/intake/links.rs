//! People link their own provider accounts. A request from an unlinked Slack member, Jira or
//! Linear user is refused with a one-time link (`/link/<token>`): whoever follows it within
//! [`LINK_LIFETIME`] and signs in gets that account linked to their user, once, and the refused
//! requests of that account run then, without being asked again. Only the token's SHA-256 is
//! stored, and the token never reaches a log or an event.

use std::time::Duration;

use super::{Intake, LinkOffer};
use crate::integrations::request::{Provider, Request};
use crate::queue;
use crate::storage::{Db, LinkToken, NewLinkToken, StorageError, Tx, User, now_millis};

/// How long an offered link may be used.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The path of the dashboard page that follows a link.
pub const LINK_PATH: &str = "/link/";

/// How a token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    crate::crypto::key_hash(token)
}

/// Stores a new link for `offer` that runs `delivery` once linked; returns its URL.
pub async fn offer(
    tx: &mut Tx,
    offer: &LinkOffer,
    delivery: i64,
    public_url: &str,
) -> Result<String, StorageError> {
    let token = crate::crypto::one_time_token();
    tx.create_link_token(
        &token_hash(&token),
        &NewLinkToken {
            provider: offer.provider.as_str(),
            workspace: &offer.workspace,
            external_id: &offer.external_id,
            account_name: &offer.account_name,
            delivery_id: Some(delivery),
            lifetime_ms: LINK_LIFETIME.as_millis() as i64,
        },
    )
    .await?;
    Ok(format!("{public_url}{LINK_PATH}{token}"))
}

/// What an unlinked sender is told, with the link.
pub fn invitation(offer: &LinkOffer, request: &Request, url: &str) -> String {
    let minutes = LINK_LIFETIME.as_secs() / 60;
    let account = match offer.provider {
        Provider::Slack => "Slack account",
        Provider::Jira | Provider::JiraDc => "Jira account",
        Provider::Linear => "Linear account",
        Provider::Github | Provider::Gitlab => "account",
    };
    let greeting = match request.provider {
        Provider::Slack => String::new(),
        _ => format!("{}: ", request.sender.name),
    };
    format!(
        "{greeting}I can't work on this yet: your {account} is not linked to an OpenHands user. \
         Sign in here to link it (the link works once, within {minutes} minutes): {url}\n\
         Your request runs as soon as the account is linked."
    )
}

/// Why a link cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not known; ask again where you asked to get a new one")]
    Unknown,
    #[error("this link was used already; ask again where you asked to get a new one")]
    Used,
    #[error("this link expired; ask again where you asked to get a new one")]
    Expired,
    #[error("this {0} account is linked to another user already; ask an administrator")]
    LinkedElsewhere(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Queue(String),
}

/// What following a link did.
#[derive(Debug, Clone)]
pub struct Linked {
    pub token: LinkToken,
    /// The refused requests that run now.
    pub requests: Vec<i64>,
}

/// The link behind `token`, if it may still be followed.
pub async fn describe(db: &Db, token: &str) -> Result<LinkToken, LinkError> {
    let found = db
        .link_token(&token_hash(token))
        .await?
        .ok_or(LinkError::Unknown)?;
    check(&found)?;
    Ok(found)
}

fn check(token: &LinkToken) -> Result<(), LinkError> {
    if token.used_at.is_some() {
        return Err(LinkError::Used);
    }
    if token.expires_at <= now_millis() {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// Follows the link behind `token` for `user`: links the account, uses up the account's
/// links, and queues the requests they held again, all in one transaction.
pub async fn redeem(db: &Db, token: &str, user: &User) -> Result<Linked, LinkError> {
    let hash = token_hash(token);
    let mut tx = db.begin().await?;
    let found = tx.link_token(&hash).await?.ok_or(LinkError::Unknown)?;
    check(&found)?;
    let (provider, workspace, external_id) =
        (&found.provider, &found.workspace, &found.external_id);
    match tx.linked_user(provider, workspace, external_id).await? {
        Some(linked) if linked.id != user.id => {
            return Err(LinkError::LinkedElsewhere(provider.clone()));
        }
        Some(_) => {}
        None => {
            tx.link_user(provider, workspace, external_id, &user.id)
                .await?;
        }
    }
    let requests = tx
        .use_link_tokens_of(provider, workspace, external_id, &user.id)
        .await?;
    for delivery in &requests {
        tx.reopen_delivery(*delivery).await?;
        queue::enqueue(&mut tx, &Intake::new(*delivery))
            .await
            .map_err(|e| LinkError::Queue(format!("cannot queue the request again: {e}")))?;
    }
    tx.commit().await?;
    tracing::info!(%provider, %workspace, user_id = %user.id, requests = requests.len(), "account linked through a link");
    Ok(Linked {
        token: found,
        requests,
    })
}
