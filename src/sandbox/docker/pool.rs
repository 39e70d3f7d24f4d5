//! The warm pool: started, unassigned sandboxes waiting for a conversation. Refilling starts
//! containers (and their shells) until SANDBOX_WARM_POOL wait; claiming takes the oldest and
//! renames its container to `openhands-<owner>-<sandbox>-c-<conversation>` before anyone uses it,
//! so a restarted process tells claimed containers from warm ones by name alone.

use std::sync::Arc;

use bollard::query_parameters::RenameContainerOptions;

use super::{DockerBackend, Entry, engine_error, lock};
use crate::sandbox::SandboxResult;

/// Separates the sandbox id from the conversation in the name of a claimed warm container.
const CLAIM_MARK: &str = "-c-";

impl DockerBackend {
    /// How many started sandboxes wait in the warm pool.
    pub fn warm_count(&self) -> usize {
        lock(&self.state).warm.len()
    }

    /// Starts sandboxes until SANDBOX_WARM_POOL of them wait; returns how many it started.
    pub async fn refill_pool(&self) -> SandboxResult<usize> {
        let _only_one = self.refilling.lock().await;
        let mut started = 0;
        while self.warm_count() < self.settings.sandbox_warm_pool {
            let entry = self.create(None).await?;
            // Start the shell now, so the first command does not wait for it.
            self.session_ready(&entry).await?;
            let mut state = lock(&self.state);
            state.warm.push_back(entry.id.clone());
            state.sandboxes.insert(entry.id.clone(), entry);
            started += 1;
        }
        Ok(started)
    }

    /// Claims a warm sandbox for the conversation, if one is ready.
    pub(super) async fn claim_warm(
        &self,
        conversation_id: &str,
    ) -> SandboxResult<Option<Arc<Entry>>> {
        loop {
            let entry = {
                let mut state = lock(&self.state);
                let Some(id) = state.warm.pop_front() else {
                    return Ok(None);
                };
                state.sandboxes.get(&id).cloned()
            };
            self.refill_wanted.notify_one();
            let Some(entry) = entry else { continue };
            // Recorded on the container before anyone uses it, so after a crash a claimed
            // sandbox is never mistaken for a warm one.
            let name = claimed_name(&self.owner, &entry.id, conversation_id);
            match self
                .docker
                .rename_container(&entry.container, RenameContainerOptions { name })
                .await
            {
                Ok(()) => {
                    *lock(&entry.conversation) = Some(conversation_id.to_string());
                    entry.touch();
                    return Ok(Some(entry));
                }
                Err(error) => {
                    tracing::warn!(sandbox = %entry.id, error = %engine_error(error), "dropping a broken warm sandbox");
                    lock(&self.state).sandboxes.remove(&entry.id);
                    let _ = self.remove_container(&entry.container).await;
                }
            }
        }
    }
}

/// The name of a claimed warm container. Conversation ids that are not plain names
/// (letters, digits, `_`, `.`, `-`) are hex-encoded behind an `x`.
fn claimed_name(owner: &str, sandbox: &str, conversation: &str) -> String {
    let plain = !conversation.is_empty()
        && conversation
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let encoded = if plain {
        format!("p{conversation}")
    } else {
        format!("x{}", hex::encode(conversation))
    };
    format!("openhands-{owner}-{sandbox}{CLAIM_MARK}{encoded}")
}

/// The conversation recorded in a claimed container's name, if it is one.
pub(super) fn claimed_conversation(name: &str, sandbox: &str) -> Option<String> {
    let (_, after) = name.split_once(&format!("-{sandbox}{CLAIM_MARK}"))?;
    match after.split_at_checked(1)? {
        ("p", plain) if !plain.is_empty() => Some(plain.to_string()),
        ("x", hex) => String::from_utf8(hex::decode(hex).ok()?).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_round_trip() {
        for conversation in ["01jabc", "conv 1/é", "a-b_c.d"] {
            let name = claimed_name("owner-1", "01sbx", conversation);
            assert_eq!(
                claimed_conversation(&name, "01sbx").as_deref(),
                Some(conversation)
            );
        }
        assert_eq!(claimed_conversation("openhands-owner-01sbx", "01sbx"), None);
    }
}
