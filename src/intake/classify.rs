//! What a verified, parsed delivery asks of us. Decided in two places on purpose: what the
//! delivery itself shows is decided here, before it is stored, without the database (a
//! webhook is answered without waiting for a query); what depends on stored state (a thread
//! reply asks for something only where a conversation already runs; a comment the agent
//! posted itself asks for nothing) is decided by the intake job ([`asks_nothing`]).

use super::accept::Outcome;
use crate::integrations::request::{Parsed, Place, Provider, Request, Sender, Trigger};
use crate::integrations::slack::{Interaction, REPOSITORY_ACTION};
use crate::storage::Db;

/// The outcome of a parsed delivery, from the delivery alone.
pub fn classify(parsed: Parsed) -> Outcome {
    match parsed {
        Parsed::Ignored(reason) => Outcome::Ignored(reason),
        Parsed::Request(request) if crate::results::carries_marker(&request) => {
            Outcome::Ignored(OWN_POST.into())
        }
        Parsed::Request(request) => Outcome::Request(request),
    }
}

const OWN_POST: &str = "a post of the agent itself";

/// Why a stored request asks for nothing after all, from what the database holds; `None` when
/// it asks. Errors are the database's.
pub async fn asks_nothing(db: &Db, request: &Request) -> anyhow::Result<Option<String>> {
    if request.trigger == Trigger::ThreadReply {
        let running = db
            .conversation_by_external_ref(request.provider.as_str(), &request.external_ref())
            .await?;
        if running.is_none() {
            return Ok(Some("no conversation runs in this thread".into()));
        }
    }
    if crate::results::is_own_post(db, request).await? {
        return Ok(Some(OWN_POST.into()));
    }
    Ok(None)
}

/// The outcome of a Slack interaction: a repository chosen from the agent's menu becomes a
/// [`Trigger::Choice`] request in the menu's thread; any other action is ignored.
pub fn classify_interaction(action: Interaction) -> Outcome {
    if action.action_id != REPOSITORY_ACTION {
        return Outcome::Ignored(format!(
            "the action {} is not one of the agent's",
            action.action_id
        ));
    }
    Outcome::Request(Box::new(Request {
        provider: Provider::Slack,
        trigger: Trigger::Choice,
        sender: Sender {
            name: action.user_name.unwrap_or_else(|| action.user_id.clone()),
            id: action.user_id,
        },
        place: Place::SlackThread {
            team_id: action.team_id,
            channel: action.channel,
            thread_ts: action.thread_ts,
        },
        text: action.value,
        title: None,
        body: None,
        url: None,
        source_id: format!("choice:{}", action.id),
        images: Vec::new(),
    }))
}
