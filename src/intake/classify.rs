//! What a verified, parsed delivery asks of us, decided before it is stored: a thread reply
//! asks for something only where a conversation already runs, the agent's own posts ask for
//! nothing, and a repository picked from the agent's Slack menu is a choice to take in.

use super::accept::Outcome;
use crate::integrations::request::{Parsed, Place, Provider, Request, Sender, Trigger};
use crate::integrations::slack::{Interaction, REPOSITORY_ACTION};
use crate::storage::Db;

/// The outcome of a parsed delivery. Errors are the database's: nothing was decided, and the
/// provider should send the delivery again.
pub async fn classify(db: &Db, parsed: Parsed) -> anyhow::Result<Outcome> {
    let request = match parsed {
        Parsed::Ignored(reason) => return Ok(Outcome::Ignored(reason)),
        Parsed::Request(request) => request,
    };
    if request.trigger == Trigger::ThreadReply {
        let running = db
            .conversation_by_external_ref(request.provider.as_str(), &request.external_ref())
            .await?;
        return Ok(match running {
            Some(_) => Outcome::Request(request),
            None => Outcome::Ignored("no conversation runs in this thread".into()),
        });
    }
    if crate::results::is_own_post(db, &request).await? {
        return Ok(Outcome::Ignored("a post of the agent itself".into()));
    }
    Ok(Outcome::Request(request))
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
    }))
}
