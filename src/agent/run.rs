//! The run job: one per request on a conversation. Until the agent loop is in place it records
//! that the run was requested, so that the conversation's log shows the request reached it.

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::queue::{Job, JobContext};
use crate::storage::NewEvent;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConversation {
    pub conversation_id: String,
}

impl Job for RunConversation {
    const QUEUE: &'static str = "run";
    const MAX_ATTEMPTS: u32 = 3;
}

pub(crate) async fn handle(job: RunConversation, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    ctx.db
        .append_event(
            &job.conversation_id,
            &NewEvent {
                source: "system",
                kind: "run_requested",
                payload: &json!({}),
            },
        )
        .await?;
    Ok(())
}
