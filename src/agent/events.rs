//! The agent's events, in the JSON shape of OpenHands V0 events, and their typed reading.
//!
//! A stored event is a `source`, a `kind` (the action's or observation's name) and a document
//! holding everything else of the V0 shape: `action` + `args` or `observation` + `content` +
//! `extras`, `message`, `cause`, and `tool_call_metadata` linking a tool call to its result.
//! [`to_v0`] adds `id`, `timestamp` and `source` for clients.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::microagents::Knowledge;
use crate::integrations::request::{Place, RepositoryRef};
use crate::storage::Event;

pub const USER: &str = "user";
pub const AGENT: &str = "agent";
pub const ENVIRONMENT: &str = "environment";

/// An event to append: source, kind and document.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub source: &'static str,
    pub kind: String,
    pub doc: Value,
}

impl Draft {
    /// The state and reason of an `agent_state_changed` observation; `None` for other events.
    pub fn state_change(&self) -> Option<(&str, &str)> {
        if self.kind != "agent_state_changed" {
            return None;
        }
        let extras = &self.doc["extras"];
        let state = extras["agent_state"].as_str()?;
        Some((state, extras["reason"].as_str().unwrap_or("")))
    }
}

/// The agent states, with OpenHands' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Loading,
    Running,
    AwaitingUserInput,
    Paused,
    Stopped,
    Finished,
    Rejected,
    Error,
    RateLimited,
    /// Risky actions wait for the user to confirm or reject them (confirmation mode).
    AwaitingUserConfirmation,
    /// Asked by the user, never a state the agent is in: run the waiting actions.
    UserConfirmed,
    /// Asked by the user, never a state the agent is in: do not run the waiting actions.
    UserRejected,
}

impl AgentState {
    pub const ALL: [AgentState; 12] = [
        Self::Loading,
        Self::Running,
        Self::AwaitingUserInput,
        Self::Paused,
        Self::Stopped,
        Self::Finished,
        Self::Rejected,
        Self::Error,
        Self::RateLimited,
        Self::AwaitingUserConfirmation,
        Self::UserConfirmed,
        Self::UserRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Running => "running",
            Self::AwaitingUserInput => "awaiting_user_input",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Finished => "finished",
            Self::Rejected => "rejected",
            Self::Error => "error",
            Self::RateLimited => "rate_limited",
            Self::AwaitingUserConfirmation => "awaiting_user_confirmation",
            Self::UserConfirmed => "user_confirmed",
            Self::UserRejected => "user_rejected",
        }
    }

    pub fn parse(name: &str) -> Option<AgentState> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the agent has stopped acting until someone does something.
    pub fn is_at_rest(self) -> bool {
        !matches!(self, Self::Loading | Self::Running)
    }
}

/// Links an action (or the error that replaced it) to the model's tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallMeta {
    pub function_name: String,
    pub tool_call_id: String,
    /// The arguments exactly as the model wrote them, replayed to it in later prompts.
    pub arguments: String,
    /// Names the LLM response the call came in: its calls form one assistant message.
    pub response_id: String,
}

impl ToolCallMeta {
    fn to_json(&self) -> Value {
        json!({
            "function_name": self.function_name,
            "tool_call_id": self.tool_call_id,
            "arguments": self.arguments,
            "response_id": self.response_id,
        })
    }
}

/// A message from the user; `automatic` marks the nudge sent to an unattended agent.
pub fn user_message(content: &str, automatic: bool, origin: Value) -> Draft {
    let mut args = json!({
        "content": content,
        "image_urls": [],
        "file_urls": [],
        "wait_for_response": false,
    });
    if automatic {
        args["automatic"] = json!(true);
    }
    if let (Some(args), Value::Object(origin)) = (args.as_object_mut(), origin) {
        args.extend(origin);
    }
    Draft {
        source: USER,
        kind: "message".into(),
        doc: json!({"action": "message", "args": args, "message": content}),
    }
}

/// The most images one message may carry.
pub const MAX_IMAGES: usize = crate::integrations::request::MAX_ATTACHED_IMAGES;
/// The longest image URL: a `data:` URL of about 5 MB.
const MAX_IMAGE_URL_CHARS: usize = 7_000_000;

/// The `image_urls` of a user's message, checked: at most [`MAX_IMAGES`], each an http(s)
/// address or a base64 `data:` URL of a PNG, JPEG, GIF or WebP image. `null` is none.
pub fn image_urls(value: &Value) -> Result<Vec<String>, String> {
    let urls = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(urls) => urls,
        _ => return Err("`image_urls` must be an array of URLs".into()),
    };
    if urls.len() > MAX_IMAGES {
        return Err(format!("at most {MAX_IMAGES} images go with one message"));
    }
    urls.iter()
        .map(|url| {
            let url = url
                .as_str()
                .ok_or("each of `image_urls` must be a URL text")?
                .trim();
            if url.len() > MAX_IMAGE_URL_CHARS {
                return Err("an image URL is longer than 7,000,000 characters (about 5 MB)".into());
            }
            let image_data = ["png", "jpeg", "gif", "webp"]
                .iter()
                .any(|kind| url.starts_with(&format!("data:image/{kind};base64,")));
            let web = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if image_data || web {
                Ok(url.to_string())
            } else {
                Err(format!(
                    "`{}` is not an image URL: give an http(s) address or a data:image/png, jpeg, gif or webp;base64 URL",
                    url.chars().take(60).collect::<String>()
                ))
            }
        })
        .collect()
}

/// A message from the agent that asks for nothing to be run.
pub fn agent_message(content: &str, metrics: Option<Value>, response_id: &str) -> Draft {
    let mut doc = json!({
        "action": "message",
        "args": {"content": content, "image_urls": null, "file_urls": null, "wait_for_response": true},
        "message": content,
        "response_id": response_id,
    });
    if let Some(metrics) = metrics {
        doc["llm_metrics"] = metrics;
    }
    Draft {
        source: AGENT,
        kind: "message".into(),
        doc,
    }
}

/// An action the agent takes through a tool call.
pub fn action(name: &str, args: Value, message: String, call: &ToolCallMeta) -> Draft {
    Draft {
        source: AGENT,
        kind: name.into(),
        doc: json!({
            "action": name,
            "args": args,
            "message": message,
            "tool_call_metadata": call.to_json(),
        }),
    }
}

/// An action the user issued themselves (run a command, read or write a file, …): a worker
/// runs it and answers it with an observation whose `cause` is its id.
pub fn user_action(name: &str, args: Value, message: String) -> Draft {
    Draft {
        source: USER,
        kind: name.into(),
        doc: json!({"action": name, "args": args, "message": message}),
    }
}

/// What came of an action: of the model's tool call `call`, or of a user's action (`None`).
pub fn observation(
    name: &str,
    content: &str,
    extras: Value,
    message: String,
    cause: i64,
    call: Option<&ToolCallMeta>,
) -> Draft {
    let mut doc = json!({
        "observation": name,
        "content": content,
        "extras": extras,
        "message": message,
        "cause": cause,
    });
    if let Some(call) = call {
        doc["tool_call_metadata"] = call.to_json();
    }
    Draft {
        source: ENVIRONMENT,
        kind: name.into(),
        doc,
    }
}

/// An error the model should read: a malformed call, a failed tool, a lost command; or why a
/// user's action (`call` is `None`) could not run.
pub fn error_observation(content: &str, cause: Option<i64>, call: Option<&ToolCallMeta>) -> Draft {
    let mut doc = json!({
        "observation": "error",
        "content": content,
        "extras": {"error_id": ""},
        "message": content,
        "cause": cause,
    });
    if let Some(call) = call {
        doc["tool_call_metadata"] = call.to_json();
    }
    Draft {
        source: ENVIRONMENT,
        kind: "error".into(),
        doc,
    }
}

/// A note from the service to the model outside any tool call (a lost sandbox, say).
/// The kind of a [`repository_checkout`] event.
pub const CHECKOUT: &str = "repository_checkout";

pub fn environment_note(content: &str) -> Draft {
    Draft {
        source: ENVIRONMENT,
        kind: "error".into(),
        doc: json!({"observation": "error", "content": content, "extras": {"error_id": "environment"}, "message": content}),
    }
}

/// The repository placed in the sandbox: what a later push needs (the branch and commit it
/// started from), not shown to the model.
/// A repository placed in the sandbox, as its event records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// `owner/name`; `None` for a repository the web API named without a provider.
    #[serde(default)]
    pub repository: Option<String>,
    /// The branch the agent's work goes to.
    pub branch: String,
    /// The branch it started from.
    pub base: String,
    /// Where it is in the sandbox.
    pub path: String,
    /// The fork the branch lives in, for a pull/merge request from a fork.
    #[serde(default)]
    pub fork: Option<String>,
}

pub fn repository_checkout(
    repository: Option<&str>,
    branch: &str,
    base: &str,
    path: &str,
    fork: Option<&str>,
) -> Draft {
    Draft {
        source: ENVIRONMENT,
        kind: CHECKOUT.into(),
        doc: json!({"repository": repository, "branch": branch, "base": base, "path": path, "fork": fork}),
    }
}

/// The kinds of the events that record which repository a conversation works on.
pub const REPOSITORY_QUESTION: &str = "repository_question";
pub const REPOSITORY_SELECTED: &str = "repository_selected";

/// The agent asked where it was asked which repository to work on, offering `choices`;
/// `problems` says why repositories the request named cannot be used.
pub fn repository_question(
    question: &str,
    choices: &[RepositoryRef],
    problems: &[String],
) -> Draft {
    Draft {
        source: ENVIRONMENT,
        kind: REPOSITORY_QUESTION.into(),
        doc: json!({"question": question, "choices": choices, "problems": problems}),
    }
}

/// The repository the conversation works on (`None`: it works without one), how it was
/// decided (`named`, `chosen`, `channel`, `ticket_route`, `none`) and by whom.
pub fn repository_selected(repository: Option<&RepositoryRef>, how: &str, by: &str) -> Draft {
    Draft {
        source: ENVIRONMENT,
        kind: REPOSITORY_SELECTED.into(),
        doc: json!({
            "repository": repository,
            "name": repository.map(RepositoryRef::name),
            "git_provider": repository.map(RepositoryRef::git_provider),
            "how": how,
            "by": by,
        }),
    }
}

/// Where a conversation from Slack, Jira or Linear stands on its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryState {
    /// Nothing was asked or decided (conversations of a repository's own issues, web ones).
    Undecided,
    /// The agent asked which repository to use and waits for the answer.
    Waiting,
    /// Decided: this one, or none.
    Selected(Option<RepositoryRef>),
}

/// The state recorded by the newest of a conversation's repository events.
pub fn repository_state(newest: Option<&Event>) -> RepositoryState {
    let Some(event) = newest else {
        return RepositoryState::Undecided;
    };
    match event.kind.as_str() {
        REPOSITORY_QUESTION => RepositoryState::Waiting,
        REPOSITORY_SELECTED => RepositoryState::Selected(selected_in(event)),
        _ => RepositoryState::Undecided,
    }
}

fn selected_in(event: &Event) -> Option<RepositoryRef> {
    let doc: Value = serde_json::from_str(&event.payload).ok()?;
    serde_json::from_value(doc.get("repository")?.clone()).ok()
}

/// What became of the agent's changes when it finished: pushed to a branch, or why not. The
/// model sees it in a later task.
pub fn git_push(content: &str, extras: Value) -> Draft {
    Draft {
        source: ENVIRONMENT,
        kind: "git_push".into(),
        doc: json!({"observation": "git_push", "content": content, "extras": extras, "message": content}),
    }
}

pub fn state_changed(state: AgentState, reason: &str) -> Draft {
    Draft {
        source: ENVIRONMENT,
        kind: "agent_state_changed".into(),
        doc: json!({
            "observation": "agent_state_changed",
            "content": "",
            "extras": {"agent_state": state.as_str(), "reason": reason},
            "message": format!("Agent state changed to {}", state.as_str()),
        }),
    }
}

/// A request from a user to stop, pause or resume the agent.
pub fn change_state_request(state: AgentState) -> Draft {
    Draft {
        source: USER,
        kind: "change_agent_state".into(),
        doc: json!({
            "action": "change_agent_state",
            "args": {"agent_state": state.as_str(), "thought": ""},
            "message": format!("Agent state changed to {}", state.as_str()),
        }),
    }
}

/// The middle of the history, from `start` to `end` (event ids), replaced by a summary.
pub fn condensation(
    start: i64,
    end: i64,
    summary: &str,
    offset: usize,
    metrics: Option<Value>,
) -> Draft {
    let mut doc = json!({
        "action": "condensation",
        "args": {
            "forgotten_event_ids": null,
            "forgotten_events_start_id": start,
            "forgotten_events_end_id": end,
            "summary": summary,
            "summary_offset": offset,
        },
        "message": format!("Summarized events {start} to {end}"),
    });
    if let Some(metrics) = metrics {
        doc["llm_metrics"] = metrics;
    }
    Draft {
        source: AGENT,
        kind: "condensation".into(),
        doc,
    }
}

/// The event as an OpenHands client reads it.
pub fn to_v0(event: &Event) -> Value {
    let mut doc: Value = serde_json::from_str(&event.payload).unwrap_or_else(|_| json!({}));
    if !doc.is_object() {
        doc = json!({"content": doc});
    }
    doc["id"] = json!(event.id);
    doc["timestamp"] = json!(timestamp(event.created_at));
    doc["source"] = json!(event.source);
    if doc.get("action").is_none() && doc.get("observation").is_none() {
        // Events recorded by the service itself read as observations of their kind.
        let extras = doc.take();
        doc = json!({
            "id": extras["id"],
            "timestamp": extras["timestamp"],
            "source": extras["source"],
            "observation": event.kind,
            "content": "",
            "extras": extras,
            "message": "",
        });
        if let Some(extras) = doc["extras"].as_object_mut() {
            extras.remove("id");
            extras.remove("timestamp");
            extras.remove("source");
        }
    }
    doc
}

fn timestamp(millis: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// An event as the loop reads it back.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The request's context (place, title, body, earlier messages, diff).
    Context {
        id: i64,
        context: RequestContext,
    },
    /// A repository placed in the sandbox.
    Checkout {
        id: i64,
        checkout: Checkout,
    },
    UserMessage {
        id: i64,
        content: String,
        automatic: bool,
        /// The images the user attached (`image_urls`).
        images: Vec<String>,
    },
    AgentMessage {
        id: i64,
        content: String,
        response_id: String,
        metrics: Option<Value>,
    },
    Action {
        id: i64,
        name: String,
        args: Value,
        call: ToolCallMeta,
        metrics: Option<Value>,
    },
    Observation {
        id: i64,
        name: String,
        content: String,
        cause: Option<i64>,
        call: Option<ToolCallMeta>,
        exit_code: Option<i64>,
        extras: Extras,
    },
    StateChanged {
        id: i64,
        state: AgentState,
        reason: String,
        /// The user's action that caused it (their `finish`).
        cause: Option<i64>,
    },
    ChangeRequest {
        id: i64,
        state: AgentState,
    },
    /// An action the user issued themselves, answered by the event whose `cause` is its id.
    UserAction {
        id: i64,
        name: String,
        args: Value,
    },
    Condensation {
        id: i64,
        start: i64,
        end: i64,
        summary: String,
        metrics: Option<Value>,
    },
    /// The knowledge microagents the conversation may recall (not shown to the model).
    Catalog {
        id: i64,
        knowledge: Vec<Knowledge>,
    },
    /// The repository chosen for the conversation (`None`: none).
    RepositorySelected {
        id: i64,
        repository: Option<RepositoryRef>,
    },
    /// Anything else (kept for ids, ignored by the loop).
    Other {
        id: i64,
    },
}

impl Item {
    pub fn id(&self) -> i64 {
        match self {
            Item::Context { id, .. }
            | Item::Checkout { id, .. }
            | Item::UserMessage { id, .. }
            | Item::AgentMessage { id, .. }
            | Item::Action { id, .. }
            | Item::Observation { id, .. }
            | Item::StateChanged { id, .. }
            | Item::ChangeRequest { id, .. }
            | Item::UserAction { id, .. }
            | Item::Condensation { id, .. }
            | Item::RepositorySelected { id, .. }
            | Item::Catalog { id, .. }
            | Item::Other { id } => *id,
        }
    }

    /// The LLM figures recorded with this event, if it came from an LLM call.
    pub fn metrics(&self) -> Option<&Value> {
        match self {
            Item::AgentMessage { metrics, .. }
            | Item::Action { metrics, .. }
            | Item::Condensation { metrics, .. } => metrics.as_ref(),
            _ => None,
        }
    }

    /// What the LLM call that produced this event cost, in US dollars (0 for other events).
    pub fn cost(&self) -> f64 {
        self.metrics()
            .and_then(|metrics| metrics["cost"].as_f64())
            .unwrap_or(0.0)
    }

    /// The reasoning the model gave with a tool call (`""` for other events).
    pub fn thought(&self) -> &str {
        match self {
            Item::Action { args, .. } => args["thought"].as_str().unwrap_or(""),
            _ => "",
        }
    }

    pub fn read(event: &Event) -> Item {
        let id = event.id;
        let Ok(doc) = serde_json::from_str::<Value>(&event.payload) else {
            return Item::Other { id };
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        if event.kind == "request_context" {
            return Item::Context {
                id,
                context: RequestContext::read(doc),
            };
        }
        if event.kind == CHECKOUT {
            return match serde_json::from_value(doc) {
                Ok(checkout) => Item::Checkout { id, checkout },
                Err(_) => Item::Other { id },
            };
        }
        if event.kind == super::recall::CATALOG {
            let knowledge = serde_json::from_value(doc["knowledge"].clone()).unwrap_or_default();
            return Item::Catalog { id, knowledge };
        }
        if event.kind == REPOSITORY_SELECTED {
            return Item::RepositorySelected {
                id,
                repository: selected_in(event),
            };
        }
        let metrics = doc.get("llm_metrics").cloned();
        if let Some(action) = doc.get("action").and_then(Value::as_str) {
            let args = doc.get("args").cloned().unwrap_or(Value::Null);
            return match action {
                "message" if event.source == USER => Item::UserMessage {
                    id,
                    content: text(&args["content"]),
                    automatic: args["automatic"].as_bool().unwrap_or(false),
                    images: args["image_urls"]
                        .as_array()
                        .map(|urls| {
                            urls.iter()
                                .filter_map(|u| u.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                },
                "message" => Item::AgentMessage {
                    id,
                    content: text(&args["content"]),
                    response_id: text(&doc["response_id"]),
                    metrics,
                },
                "change_agent_state" => {
                    match AgentState::parse(args["agent_state"].as_str().unwrap_or("")) {
                        Some(state) => Item::ChangeRequest { id, state },
                        None => Item::Other { id },
                    }
                }
                "condensation" => Item::Condensation {
                    id,
                    start: args["forgotten_events_start_id"].as_i64().unwrap_or(0),
                    end: args["forgotten_events_end_id"].as_i64().unwrap_or(-1),
                    summary: text(&args["summary"]),
                    metrics,
                },
                _ => match tool_call(&doc) {
                    Some(call) => Item::Action {
                        id,
                        name: action.to_string(),
                        args,
                        call,
                        metrics,
                    },
                    None if event.source == USER => Item::UserAction {
                        id,
                        name: action.to_string(),
                        args,
                    },
                    None => Item::Other { id },
                },
            };
        }
        if let Some(observation) = doc.get("observation").and_then(Value::as_str) {
            let extras = doc.get("extras").cloned().unwrap_or(Value::Null);
            if observation == "agent_state_changed" {
                return match AgentState::parse(extras["agent_state"].as_str().unwrap_or("")) {
                    Some(state) => Item::StateChanged {
                        id,
                        state,
                        reason: text(&extras["reason"]),
                        cause: doc["cause"].as_i64(),
                    },
                    None => Item::Other { id },
                };
            }
            let extras = Extras::read(&extras);
            return Item::Observation {
                id,
                name: observation.to_string(),
                content: text(&doc["content"]),
                cause: doc["cause"].as_i64(),
                call: tool_call(&doc),
                exit_code: extras.exit_code,
                extras,
            };
        }
        Item::Other { id }
    }
}

/// The request's context as the loop reads it; the whole document is what the prompt renders.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestContext {
    /// Where the request was made; `None` for the web API's conversations.
    pub place: Option<Place>,
    /// The issue's, pull request's or ticket's title.
    pub title: Option<String>,
    /// The issue's, pull request's or ticket's address.
    pub url: Option<String>,
    pub doc: Value,
}

impl RequestContext {
    fn read(doc: Value) -> RequestContext {
        let text = |name: &str| doc[name].as_str().map(str::to_string);
        RequestContext {
            place: serde_json::from_value(doc["place"].clone()).ok(),
            title: text("title"),
            url: text("url"),
            doc,
        }
    }
}

/// What the loop reads of an observation's `extras`; the rest is for clients. A field of
/// another type than these reads as absent, without hiding the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    pub exit_code: Option<i64>,
    /// `recall` observations: `workspace_context` or `knowledge`.
    pub recall_type: Option<String>,
    /// `knowledge` recalls: the names of the microagents recalled.
    pub recalled: Vec<String>,
    /// `run` observations of the repository's own scripts: `setup` or `pre-commit`.
    pub script: Option<String>,
    /// Editor observations, replayed into the editor's undo history.
    pub command: Option<String>,
    pub path: Option<String>,
    pub old_content: Option<String>,
    /// `task_tracking` observations: the whole task list.
    pub task_list: Option<Vec<Value>>,
}

impl Extras {
    fn read(extras: &Value) -> Extras {
        let text = |name: &str| extras[name].as_str().map(str::to_string);
        Extras {
            exit_code: extras["exit_code"].as_i64(),
            recall_type: text("recall_type"),
            recalled: extras["microagent_knowledge"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k["name"].as_str().map(str::to_string))
                .collect(),
            script: text("script"),
            command: text("command"),
            path: text("path"),
            old_content: text("old_content"),
            task_list: extras["task_list"].as_array().cloned(),
        }
    }
}

fn tool_call(doc: &Value) -> Option<ToolCallMeta> {
    let meta = doc.get("tool_call_metadata")?;
    Some(ToolCallMeta {
        function_name: meta["function_name"].as_str()?.to_string(),
        tool_call_id: meta["tool_call_id"].as_str()?.to_string(),
        arguments: meta["arguments"].as_str().unwrap_or("{}").to_string(),
        response_id: meta["response_id"].as_str().unwrap_or_default().to_string(),
    })
}

/// Values shorter than this are not hidden: they would match ordinary text.
const MIN_HIDDEN_SECRET_CHARS: usize = 4;

/// Replaces each secret value found in the strings of `doc` with `<secret NAME hidden>`, so
/// output that prints a secret (`env`, `echo $TOKEN`) is never stored or shown.
pub fn hide_secrets(doc: &mut Value, secrets: &[(String, String)]) {
    match doc {
        Value::String(text) => {
            for (name, value) in secrets {
                if value.chars().count() >= MIN_HIDDEN_SECRET_CHARS && text.contains(value.as_str())
                {
                    *text = text.replace(value.as_str(), &format!("<secret {name} hidden>"));
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| hide_secrets(item, secrets)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|field| hide_secrets(field, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod hide_secrets_tests {
    use super::*;

    #[test]
    fn secret_values_are_hidden_wherever_they_appear() {
        let secrets = vec![
            ("API_TOKEN".to_string(), "tok-123456".to_string()),
            ("PIN".to_string(), "42".to_string()),
        ];
        let mut doc = serde_json::json!({
            "content": "API_TOKEN=tok-123456\nPIN=42",
            "extras": { "lines": ["x tok-123456 y"], "exit_code": 0 },
        });
        hide_secrets(&mut doc, &secrets);
        assert_eq!(
            doc["content"],
            "API_TOKEN=<secret API_TOKEN hidden>\nPIN=42"
        );
        assert_eq!(doc["extras"]["lines"][0], "x <secret API_TOKEN hidden> y");
        assert_eq!(doc["extras"]["exit_code"], 0);
    }
}
