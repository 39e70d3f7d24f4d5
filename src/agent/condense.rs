//! History condensation, after OpenHands' LLM summarising condenser: when the history the
//! model sees passes `max_events`, or the prompt comes near the model's context window, the
//! first `keep_first` events stay, the newest half stays, and an LLM summary replaces the
//! middle. The condensation is an event; prompts are built from it.

use super::events::Item;
use super::history::History;
use super::llm::{ChatMessage, ToolSpec};

/// Bytes per token in [`estimated_tokens`]: code and logs come to about 3.5 to 4 per token
/// with the common tokenizers, so 3 errs on the side of condensing early.
const BYTES_PER_TOKEN: usize = 3;

/// About how many tokens a prompt of these messages and tools takes: an estimate on the safe
/// side, as each provider counts with its own tokenizer.
pub fn estimated_tokens(messages: &[ChatMessage], tools: &[ToolSpec]) -> u64 {
    // Each message costs a few tokens of framing besides its text.
    const PER_MESSAGE: usize = 4;
    let messages: usize = messages
        .iter()
        .map(|m| {
            let calls: usize = m
                .tool_calls
                .iter()
                .map(|c| c.name.len() + c.arguments.len())
                .sum();
            (m.content.len() + calls) / BYTES_PER_TOKEN + PER_MESSAGE
        })
        .sum();
    let tools: usize = tools
        .iter()
        .map(|t| {
            (t.name.len() + t.description.len() + t.parameters.to_string().len()) / BYTES_PER_TOKEN
        })
        .sum();
    (messages + tools) as u64
}

/// The longest text of one event given to the summariser.
const MAX_EVENT_CHARS: usize = 4_000;

const SUMMARY_INSTRUCTIONS: &str = "You keep the notes of a coding agent whose older steps are about to be forgotten. \
You are given those steps as events, and the notes written so far if there are any. \
Write new notes that replace the old ones, under these headings: USER_CONTEXT (what the user wants, with their clarifications), \
COMPLETED (what is done, with its outcome), PENDING (what is left to do), CODE_STATE (files, functions and data structures involved), \
TESTS (tests run, failures and their messages), CHANGES (edits made), DEPS (dependencies and outside services used), \
VERSION_CONTROL_STATUS (branch, commits, state of the working tree). \
Keep exact paths and error messages and what is left to do; leave out the rest. Be brief.";

/// The middle of the history to summarise: first and last event id, and the items.
#[derive(Debug)]
pub struct Plan<'a> {
    pub start: i64,
    pub end: i64,
    pub forgotten: Vec<&'a Item>,
}

/// What to forget, when the history is longer than `max_events`, or in any case when `force`
/// (the prompt is too long for the model): then about half of what is seen goes.
pub fn plan(
    history: &History,
    max_events: usize,
    keep_first: usize,
    force: bool,
) -> Option<Plan<'_>> {
    let view = history.view();
    let max_events = if force {
        max_events.min(view.len().saturating_sub(1))
    } else if view.len() <= max_events {
        return None;
    } else {
        max_events
    };
    let response = |item: &Item| match item {
        Item::Action { call, .. }
        | Item::Observation {
            call: Some(call), ..
        } => Some(call.response_id.clone()),
        _ => None,
    };
    // Never cut a response's calls from their results.
    let mut head = keep_first.min(view.len());
    while head > 0
        && head < view.len()
        && response(view[head]).is_some()
        && response(view[head]) == response(view[head - 1])
    {
        head += 1;
    }
    let tail_len = (max_events / 2).saturating_sub(keep_first + 1).max(1);
    let mut tail = view.len().saturating_sub(tail_len);
    while tail > head
        && tail < view.len()
        && response(view[tail]).is_some()
        && response(view[tail]) == response(view[tail - 1])
    {
        tail += 1;
    }
    if tail <= head || tail >= view.len() {
        return None;
    }
    let forgotten: Vec<&Item> = view[head..tail].to_vec();
    Some(Plan {
        start: forgotten.first()?.id(),
        end: forgotten.last()?.id(),
        forgotten,
    })
}

/// The summariser's prompt: the previous summary and the forgotten events.
pub fn summary_request(previous: Option<&str>, forgotten: &[&Item]) -> Vec<ChatMessage> {
    let mut text = String::new();
    if let Some(previous) = previous {
        text.push_str(&format!(
            "<PREVIOUS SUMMARY>\n{previous}\n</PREVIOUS SUMMARY>\n\n"
        ));
    }
    for item in forgotten {
        let body = match item {
            Item::UserMessage { content, .. } => format!("user: {content}"),
            Item::AgentMessage { content, .. } => format!("agent: {content}"),
            Item::UserAction { name, args, .. } => {
                format!("user: {}", super::history::user_action_text(name, args))
            }
            Item::Action { name, call, .. } => {
                format!("action {name}: {} {}", call.function_name, call.arguments)
            }
            Item::Observation {
                name,
                content,
                exit_code,
                ..
            } => match exit_code {
                Some(code) => format!("observation {name} (exit code {code}): {content}"),
                None => format!("observation {name}: {content}"),
            },
            _ => continue,
        };
        let body: String = body.chars().take(MAX_EVENT_CHARS).collect();
        text.push_str(&format!("<EVENT id={}>\n{body}\n</EVENT>\n", item.id()));
    }
    text.push_str("\nWrite the notes for the events above, under the headings given.");
    vec![
        ChatMessage::system(SUMMARY_INSTRUCTIONS),
        ChatMessage::user(text),
    ]
}
