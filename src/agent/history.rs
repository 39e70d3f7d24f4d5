//! A conversation's history as the loop reads it from the event log: where the current task
//! began, what it cost, which calls are unanswered, and the messages the model is shown
//! (with the latest condensation applied).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::events::{AgentState, Checkout, Item, RequestContext, ToolCallMeta};
use super::llm::{ChatMessage, Role, ToolCall};
use super::tools::FINISH;
use crate::integrations::request::{Place, RepositoryRef};
use crate::storage::Event;

/// What an unanswered `finish` call is told in later prompts.
const FINISH_RESULT: &str = "The task was marked as finished.";

/// The newest summary and the last event id it replaced.
type LatestSummary<'a> = Option<(i64, &'a str)>;

#[derive(Debug, Default, Clone)]
pub struct History {
    pub items: Vec<Item>,
    /// The id of the newest event read.
    pub last_id: i64,
}

impl History {
    pub fn extend(&mut self, events: &[Event]) {
        for event in events {
            if event.id > self.last_id {
                self.last_id = event.id;
                self.items.push(Item::read(event));
            }
        }
    }

    /// The request's context, if the conversation came from a provider.
    pub fn context(&self) -> Option<&RequestContext> {
        self.items.iter().find_map(|item| match item {
            Item::Context { context, .. } => Some(context),
            _ => None,
        })
    }

    /// Where the request was made, for a conversation a provider started.
    pub fn place(&self) -> Option<Place> {
        self.context().and_then(|c| c.place.clone())
    }

    /// The repository the conversation works on: its issue's or pull request's own, else the
    /// newest one chosen for it (Slack, tickets); `None` without one.
    pub fn repository(&self) -> Option<RepositoryRef> {
        if let Some(own) = self.place().and_then(|p| p.repository_ref()) {
            return Some(own);
        }
        self.items
            .iter()
            .rev()
            .find_map(|item| match item {
                Item::RepositorySelected { repository, .. } => Some(repository.clone()),
                _ => None,
            })
            .flatten()
    }

    /// The latest repository placed in the sandbox.
    pub fn checkout(&self) -> Option<&Checkout> {
        self.items.iter().rev().find_map(|item| match item {
            Item::Checkout { checkout, .. } => Some(checkout),
            _ => None,
        })
    }

    /// The agent's latest state, and its position.
    pub fn state(&self) -> Option<(usize, AgentState)> {
        self.items
            .iter()
            .enumerate()
            .rev()
            .find_map(|(at, item)| match item {
                Item::StateChanged { state, .. } => Some((at, *state)),
                _ => None,
            })
    }

    /// Whether there is work for the agent: a run that did not end, a new message from the
    /// user, or a request to resume.
    pub fn needs_run(&self) -> bool {
        let Some((at, state)) = self.state() else {
            return self
                .items
                .iter()
                .any(|i| matches!(i, Item::UserMessage { .. }));
        };
        if !state.is_at_rest() {
            return true;
        }
        let mut wanted = false;
        for item in &self.items[at + 1..] {
            match item {
                Item::UserMessage {
                    automatic: false, ..
                } => wanted = true,
                Item::ChangeRequest {
                    state:
                        AgentState::Running | AgentState::UserConfirmed | AgentState::UserRejected,
                    ..
                } => wanted = true,
                Item::ChangeRequest {
                    state: AgentState::Stopped | AgentState::Paused,
                    ..
                } => wanted = false,
                _ => {}
            }
        }
        wanted
    }

    /// The calls that wait for the user's confirmation, with whether the user confirmed them:
    /// the calls left unanswered when the agent came to rest awaiting confirmation, confirmed
    /// only by a confirmation that came after (a rejection, a message or anything else leaves
    /// them unrun). `None` when nothing waits.
    pub fn waiting_calls(&self) -> Option<(Vec<(i64, ToolCallMeta)>, bool)> {
        let (at, since) =
            self.items
                .iter()
                .enumerate()
                .rev()
                .find_map(|(at, item)| match item {
                    Item::StateChanged {
                        state: AgentState::AwaitingUserConfirmation,
                        ..
                    } => Some((at, item.id())),
                    _ => None,
                })?;
        let waiting: Vec<(i64, ToolCallMeta)> = self
            .unanswered_calls()
            .into_iter()
            .filter(|(id, _)| *id < since)
            .collect();
        if waiting.is_empty() {
            return None;
        }
        let confirmed = self.items[at + 1..]
            .iter()
            .find_map(|item| match item {
                Item::ChangeRequest { state, .. } => Some(*state == AgentState::UserConfirmed),
                Item::UserMessage {
                    automatic: false, ..
                } => Some(false),
                _ => None,
            })
            .unwrap_or(false);
        Some((waiting, confirmed))
    }

    /// The newest request to stop or pause after item `after` (an id), if any.
    pub fn stop_request_after(&self, after: i64) -> Option<AgentState> {
        self.items
            .iter()
            .rev()
            .take_while(|i| i.id() > after)
            .find_map(|item| match item {
                Item::ChangeRequest {
                    state: state @ (AgentState::Stopped | AgentState::Paused),
                    ..
                } => Some(*state),
                _ => None,
            })
    }

    /// Where the current task began: just after the latest message written by the user.
    pub fn task_start(&self) -> usize {
        self.items
            .iter()
            .rposition(|i| {
                matches!(
                    i,
                    Item::UserMessage {
                        automatic: false,
                        ..
                    }
                )
            })
            .unwrap_or(0)
    }

    /// LLM calls of the current task (steps), and what they cost.
    pub fn task_usage(&self) -> (u32, f64) {
        let mut steps = 0;
        let mut cost = 0.0;
        for item in &self.items[self.task_start()..] {
            if item.metrics().is_some() {
                cost += item.cost();
                if !matches!(item, Item::Condensation { .. }) {
                    steps += 1;
                }
            }
        }
        (steps, cost)
    }

    /// The user's own actions that nothing answered yet (no event names them as its cause),
    /// oldest first: a worker runs them.
    pub fn pending_user_actions(&self) -> Vec<(i64, &str, &Value)> {
        let answered: HashSet<i64> = self
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Observation { cause, .. } | Item::StateChanged { cause, .. } => *cause,
                _ => None,
            })
            .collect();
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::UserAction { id, name, args } if !answered.contains(id) => {
                    Some((*id, name.as_str(), args))
                }
                _ => None,
            })
            .collect()
    }

    /// Tool calls recorded as actions that have no result: the run stopped while they ran.
    /// `finish` has no result by design.
    pub fn unanswered_calls(&self) -> Vec<(i64, ToolCallMeta)> {
        let answered: HashSet<&str> = self
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Observation {
                    call: Some(call), ..
                } => Some(call.tool_call_id.as_str()),
                _ => None,
            })
            .collect();
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Action { id, call, .. }
                    if call.function_name != FINISH
                        && !answered.contains(call.tool_call_id.as_str()) =>
                {
                    Some((*id, call.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Event ids forgotten by condensations, and the newest summary with the end of its range.
    fn condensed(&self) -> (Vec<(i64, i64)>, LatestSummary<'_>) {
        let mut ranges = Vec::new();
        let mut latest = None;
        for item in &self.items {
            if let Item::Condensation {
                start,
                end,
                summary,
                ..
            } = item
            {
                ranges.push((*start, *end));
                latest = Some((*end, summary.as_str()));
            }
        }
        (ranges, latest)
    }

    /// The items the model sees, in order: messages, actions and their observations, minus
    /// what a condensation forgot.
    pub fn view(&self) -> Vec<&Item> {
        let (ranges, _) = self.condensed();
        self.items
            .iter()
            .filter(|item| {
                matches!(
                    item,
                    Item::UserMessage { .. }
                        | Item::AgentMessage { .. }
                        | Item::Action { .. }
                        | Item::UserAction { .. }
                        | Item::Observation { .. }
                )
            })
            // A recall that found nothing says nothing.
            .filter(|item| !matches!(item, Item::Observation { name, content, .. } if name == super::recall::RECALL && content.is_empty()))
            .filter(|item| !ranges.iter().any(|(s, e)| (*s..=*e).contains(&item.id())))
            .collect()
    }

    /// The newest summary, if the history was condensed.
    pub fn summary(&self) -> Option<&str> {
        self.condensed().1.map(|(_, s)| s)
    }

    /// The messages for the next LLM call. `first_message` renders the task's first user
    /// message (from the prompt template).
    pub fn messages(
        &self,
        system: String,
        first_message: impl Fn(&str) -> String,
    ) -> Vec<ChatMessage> {
        let (_, latest) = self.condensed();
        let first_user = self.items.iter().find_map(|i| match i {
            Item::UserMessage {
                id,
                automatic: false,
                ..
            } => Some(*id),
            _ => None,
        });
        let view = self.view();
        // Every response's tool calls, in order, wherever they were recorded.
        let mut calls: HashMap<&str, (String, Vec<ToolCall>)> = HashMap::new();
        for item in &view {
            let (call, thought) = match item {
                Item::Action { call, .. } => (call, item.thought()),
                Item::Observation {
                    call: Some(call), ..
                } => (call, ""),
                _ => continue,
            };
            let entry = calls.entry(call.response_id.as_str()).or_default();
            if entry.0.is_empty() {
                entry.0 = thought.to_string();
            }
            if !entry.1.iter().any(|c| c.id == call.tool_call_id) {
                entry.1.push(ToolCall {
                    id: call.tool_call_id.clone(),
                    name: call.function_name.clone(),
                    arguments: call.arguments.clone(),
                });
            }
        }

        let mut out = vec![ChatMessage::system(system)];
        let mut summary_placed = latest.is_none();
        let mut open: Option<&str> = None;
        let mut answered: HashSet<String> = HashSet::new();
        let mut notes: Vec<String> = Vec::new();
        for item in view {
            if !summary_placed && latest.is_some_and(|(end, _)| item.id() > end) {
                close(&mut out, open.take(), &calls, &answered);
                out.extend(notes.drain(..).map(ChatMessage::user));
                if let Some((_, summary)) = latest {
                    out.push(ChatMessage::user(format!(
                        "<SUMMARY_OF_EARLIER_EVENTS>\n{summary}\n</SUMMARY_OF_EARLIER_EVENTS>"
                    )));
                }
                summary_placed = true;
            }
            match item {
                Item::UserMessage {
                    id,
                    content,
                    images,
                    ..
                } => {
                    close(&mut out, open.take(), &calls, &answered);
                    out.extend(notes.drain(..).map(ChatMessage::user));
                    let text = if Some(*id) == first_user {
                        first_message(content)
                    } else {
                        content.clone()
                    };
                    out.push(ChatMessage {
                        images: images.clone(),
                        ..ChatMessage::user(text)
                    });
                }
                Item::AgentMessage { content, .. } => {
                    close(&mut out, open.take(), &calls, &answered);
                    out.extend(notes.drain(..).map(ChatMessage::user));
                    out.push(ChatMessage {
                        role: Role::Assistant,
                        content: content.clone(),
                        tool_calls: Vec::new(),
                        tool_call_id: None,
                        images: Vec::new(),
                    });
                }
                Item::Action { call, .. }
                | Item::Observation {
                    call: Some(call), ..
                } => {
                    if open != Some(call.response_id.as_str()) {
                        close(&mut out, open.take(), &calls, &answered);
                        out.extend(notes.drain(..).map(ChatMessage::user));
                        open = Some(call.response_id.as_str());
                        answered.clear();
                        if let Some((thought, tool_calls)) = calls.get(call.response_id.as_str()) {
                            out.push(ChatMessage {
                                role: Role::Assistant,
                                content: thought.clone(),
                                tool_calls: tool_calls.clone(),
                                tool_call_id: None,
                                images: Vec::new(),
                            });
                        }
                    }
                    if let Item::Observation { content, .. } = item
                        && answered.insert(call.tool_call_id.clone())
                    {
                        out.push(ChatMessage::tool_result(
                            call.tool_call_id.clone(),
                            content.clone(),
                        ));
                    }
                }
                Item::Observation { .. } | Item::UserAction { .. } => {
                    let content = match item {
                        Item::UserAction { name, args, .. } => user_action_text(name, args),
                        Item::Observation { content, .. } => content.clone(),
                        _ => continue,
                    };
                    // A note from the service, or what the user did themselves, never splits a
                    // response from its results.
                    let waiting = open
                        .and_then(|r| calls.get(r))
                        .is_some_and(|(_, c)| c.iter().any(|c| !answered.contains(&c.id)));
                    if waiting {
                        notes.push(content);
                    } else {
                        close(&mut out, open.take(), &calls, &answered);
                        out.extend(notes.drain(..).map(ChatMessage::user));
                        out.push(ChatMessage::user(content));
                    }
                }
                _ => {}
            }
        }
        close(&mut out, open.take(), &calls, &answered);
        out.extend(notes.drain(..).map(ChatMessage::user));
        if !summary_placed && let Some((_, summary)) = latest {
            out.push(ChatMessage::user(format!(
                "<SUMMARY_OF_EARLIER_EVENTS>\n{summary}\n</SUMMARY_OF_EARLIER_EVENTS>"
            )));
        }
        out
    }
}

/// How the model is told of an action the user took themselves; its result follows as the
/// next message.
pub fn user_action_text(name: &str, args: &Value) -> String {
    let arg = |key: &str| args[key].as_str().unwrap_or_default();
    match name {
        "run" => format!(
            "The user ran this command in the sandbox:\n{}",
            arg("command")
        ),
        "read" => format!("The user read the file {}.", arg("path")),
        "write" => format!("The user wrote the file {}.", arg("path")),
        "browse" => format!("The user fetched {}.", arg("url")),
        "think" => format!("The user noted: {}", arg("thought")),
        "finish" => "The user marked the task as finished.".to_string(),
        other => format!("The user took the action `{other}`."),
    }
}

/// Ends a response: calls without a recorded result get one (`finish`), so that every call
/// the model made is answered exactly once.
fn close(
    out: &mut Vec<ChatMessage>,
    response: Option<&str>,
    calls: &HashMap<&str, (String, Vec<ToolCall>)>,
    answered: &HashSet<String>,
) {
    let Some((_, tool_calls)) = response.and_then(|r| calls.get(r)) else {
        return;
    };
    for call in tool_calls {
        if !answered.contains(&call.id) {
            let text = if call.name == FINISH {
                FINISH_RESULT
            } else {
                "(no result was recorded for this call)"
            };
            out.push(ChatMessage::tool_result(call.id.clone(), text));
        }
    }
}
