//! V1 events, the shape of OpenHands' agent server and SDK, as a projection of the one event
//! log: every stored event is one V1 event, whose `id` is the stored id as a string, except
//! the agent's `finish`, which is also followed by its `FinishObservation` (the SDK records
//! one; the log, in OpenHands' V0 shape, does not).

use serde_json::{Map, Value, json};

use crate::agent::events::AgentState;
use crate::storage::{Conversation, Event};

use super::super::conversations::iso;

/// The V1 `execution_status` of an agent state (lower case on the wire).
pub fn execution_status(status: &str) -> &'static str {
    match AgentState::parse(status) {
        Some(AgentState::Loading) | None => "idle",
        // A rate-limited run waits and goes on by itself.
        Some(AgentState::Running | AgentState::RateLimited | AgentState::UserConfirmed) => {
            "running"
        }
        Some(AgentState::AwaitingUserInput | AgentState::Finished | AgentState::Rejected) => {
            "finished"
        }
        Some(AgentState::Paused | AgentState::Stopped) => "paused",
        Some(AgentState::AwaitingUserConfirmation) => "waiting_for_confirmation",
        Some(AgentState::Error | AgentState::UserRejected) => "error",
    }
}

/// The first frame of a V1 socket: the conversation's state as a whole.
pub fn full_state(conversation: &Conversation, events: i64) -> Value {
    json!({
        "kind": "ConversationStateUpdateEvent",
        "id": format!("state-{}-{}", conversation.id, conversation.last_event_id),
        "timestamp": iso(conversation.updated_at),
        "source": "environment",
        "key": "full_state",
        "value": {
            "id": conversation.id,
            "execution_status": execution_status(&conversation.status),
            "title": conversation.title,
            "events_count": events,
            "confirmation_policy": {"kind": "NeverConfirm"},
        },
    })
}

/// The action and observation kinds of the V1 shape for one of our action names, and the
/// tool that makes such calls.
fn kinds_of(action: &str) -> (String, String, &'static str) {
    let (act, obs, tool) = match action {
        "run" => (
            "ExecuteBashAction",
            "ExecuteBashObservation",
            "execute_bash",
        ),
        "read" | "edit" | "write" => (
            "FileEditorAction",
            "FileEditorObservation",
            "str_replace_editor",
        ),
        "think" => ("ThinkAction", "ThinkObservation", "think"),
        "finish" => ("FinishAction", "FinishObservation", "finish"),
        "task_tracking" => (
            "TaskTrackerAction",
            "TaskTrackerObservation",
            "task_tracker",
        ),
        "browse" => ("BrowserNavigateAction", "BrowserObservation", "fetch"),
        "call_tool_mcp" | "mcp" => ("MCPToolAction", "MCPToolObservation", "mcp"),
        other => {
            let camel: String = other
                .split('_')
                .map(|part| {
                    let mut chars = part.chars();
                    chars
                        .next()
                        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                        .unwrap_or_default()
                })
                .collect();
            return (format!("{camel}Action"), format!("{camel}Observation"), "");
        }
    };
    (act.to_string(), obs.to_string(), tool)
}

fn text(content: &str) -> Value {
    json!([{"type": "text", "text": content}])
}

/// The V1 event of a stored one.
pub fn v1_event(event: &Event) -> Value {
    let doc: Value = serde_json::from_str(&event.payload).unwrap_or_else(|_| json!({}));
    let mut v1 = match event.kind.as_str() {
        "message" => message(event, &doc),
        "agent_state_changed" => json!({
            "kind": "ConversationStateUpdateEvent",
            "key": "execution_status",
            "value": execution_status(doc["extras"]["agent_state"].as_str().unwrap_or_default()),
        }),
        "change_agent_state" if doc["args"]["agent_state"] == "paused" => {
            json!({"kind": "PauseEvent"})
        }
        // Asking to run, stop or confirm is a request about the state, not a tool call.
        "change_agent_state" => json!({
            "kind": "ConversationStateUpdateEvent",
            "key": "requested_agent_state",
            "value": doc["args"]["agent_state"],
        }),
        "condensation" => condensation(&doc),
        _ if doc.get("action").is_some() => action(event, &doc),
        "error" if doc.get("tool_call_metadata").is_some() => {
            let call = &doc["tool_call_metadata"];
            json!({
                "kind": "AgentErrorEvent",
                "tool_name": call["function_name"],
                "tool_call_id": call["tool_call_id"],
                "error": doc["content"],
            })
        }
        _ if doc.get("observation").is_some() && doc.get("cause").is_some_and(Value::is_i64) => {
            observation(&doc)
        }
        // Notes of the service (a lost sandbox, what became of a push): text for the reader.
        _ if doc["content"].is_string() => json!({
            "kind": "MessageEvent",
            "llm_message": {"role": "user", "content": text(doc["content"].as_str().unwrap_or_default())},
            "activated_skills": [],
            "extended_content": [],
        }),
        // The service's own records (the repository checked out or chosen): a state field.
        kind => json!({
            "kind": "ConversationStateUpdateEvent",
            "key": kind,
            "value": doc,
        }),
    };
    if let Some(fields) = v1.as_object_mut() {
        fields.insert("id".into(), json!(event.id.to_string()));
        fields.insert("timestamp".into(), json!(iso(event.created_at)));
        fields.insert("source".into(), json!(event.source));
    }
    v1
}

/// The V1 events of a stored one: its own, and for the agent's `finish` its observation too.
pub fn v1_events(event: &Event) -> Vec<Value> {
    let v1 = v1_event(event);
    if !is_agent_finish(event) {
        return vec![v1];
    }
    let message = v1["action"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let observation = json!({
        "kind": "ObservationEvent",
        "id": format!("{}-finish", event.id),
        "timestamp": v1["timestamp"],
        "source": "environment",
        "tool_name": v1["tool_name"],
        "tool_call_id": v1["tool_call_id"],
        "action_id": v1["id"],
        "observation": {"kind": "FinishObservation", "content": text(&message), "is_error": false},
    });
    vec![v1, observation]
}

/// Whether the stored event is the agent's `finish`, which projects to two V1 events.
pub fn is_agent_finish(event: &Event) -> bool {
    event.kind == "finish" && event.source == "agent"
}

fn message(event: &Event, doc: &Value) -> Value {
    let args = &doc["args"];
    let role = if event.source == "user" {
        "user"
    } else {
        "assistant"
    };
    let mut content = text(args["content"].as_str().unwrap_or_default());
    if let (Some(parts), Some(images)) = (content.as_array_mut(), args["image_urls"].as_array())
        && !images.is_empty()
    {
        parts.push(json!({"type": "image", "image_urls": images}));
    }
    json!({
        "kind": "MessageEvent",
        "llm_message": {"role": role, "content": content},
        "activated_skills": [],
        "extended_content": [],
        "llm_response_id": doc.get("response_id"),
    })
}

fn action(event: &Event, doc: &Value) -> Value {
    let name = doc["action"].as_str().unwrap_or(&event.kind);
    let (action_kind, _, default_tool) = kinds_of(name);
    let args = doc["args"].as_object().cloned().unwrap_or_default();
    let mut fields = Map::new();
    fields.insert("kind".into(), json!(action_kind));
    match name {
        "finish" => {
            fields.insert("message".into(), args.get("final_thought").cloned().into());
        }
        "call_tool_mcp" => {
            fields.insert("data".into(), args.get("arguments").cloned().into());
            fields.insert("tool_name".into(), args.get("name").cloned().into());
        }
        _ => {
            for (key, value) in args {
                if key != "thought" {
                    fields.insert(key, value);
                }
            }
        }
    }
    let call = &doc["tool_call_metadata"];
    let (tool_name, tool_call_id) = match call["tool_call_id"].as_str() {
        Some(id) => (
            call["function_name"]
                .as_str()
                .unwrap_or(default_tool)
                .to_string(),
            id.to_string(),
        ),
        // A user's own action: no model call, so an id of its own.
        None => (default_tool.to_string(), format!("user-{}", event.id)),
    };
    let thought = doc["args"]["thought"].as_str().unwrap_or_default();
    json!({
        "kind": "ActionEvent",
        "thought": if thought.is_empty() { json!([]) } else { text(thought) },
        "thinking_blocks": [],
        "action": fields,
        "tool_name": tool_name,
        "tool_call_id": tool_call_id,
        "tool_call": {
            "id": tool_call_id,
            "name": tool_name,
            "arguments": call["arguments"].as_str().unwrap_or("{}"),
            "origin": "completion",
        },
        "llm_response_id": call["response_id"].as_str().unwrap_or_default(),
        "security_risk": doc["args"]["security_risk"].as_str().unwrap_or("UNKNOWN"),
    })
}

fn observation(doc: &Value) -> Value {
    let name = doc["observation"].as_str().unwrap_or_default();
    let (_, observation_kind, default_tool) = kinds_of(name);
    let cause = doc["cause"].as_i64().unwrap_or_default();
    let content = doc["content"].as_str().unwrap_or_default();
    let extras = &doc["extras"];
    let mut observation = json!({
        "kind": observation_kind,
        "content": text(content),
        "is_error": false,
    });
    match name {
        "run" => {
            observation["output"] = json!(content);
            observation["command"] = extras["command"].clone();
            observation["exit_code"] = extras["exit_code"].clone();
        }
        "read" | "edit" | "write" => {
            observation["output"] = json!(content);
            observation["path"] = extras["path"].clone();
            observation["command"] = extras["command"].clone();
        }
        "browse" => {
            observation["output"] = json!(content);
            observation["url"] = extras["url"].clone();
        }
        _ => {}
    }
    let call = &doc["tool_call_metadata"];
    let (tool_name, tool_call_id) = match call["tool_call_id"].as_str() {
        Some(id) => (
            call["function_name"]
                .as_str()
                .unwrap_or(default_tool)
                .to_string(),
            id.to_string(),
        ),
        None => (default_tool.to_string(), format!("user-{cause}")),
    };
    json!({
        "kind": "ObservationEvent",
        "tool_name": tool_name,
        "tool_call_id": tool_call_id,
        "action_id": cause.to_string(),
        "observation": observation,
    })
}

fn condensation(doc: &Value) -> Value {
    let args = &doc["args"];
    let start = args["forgotten_events_start_id"].as_i64().unwrap_or(0);
    let end = args["forgotten_events_end_id"].as_i64().unwrap_or(-1);
    let forgotten: Vec<String> = (start..=end).map(|id| id.to_string()).collect();
    json!({
        "kind": "Condensation",
        "forgotten_event_ids": forgotten,
        "summary": args["summary"],
        "summary_offset": args["summary_offset"],
    })
}

#[cfg(test)]
mod finish_tests {
    use super::*;
    use crate::agent::events::{self, ToolCallMeta};

    #[test]
    fn the_agents_finish_is_followed_by_its_observation() {
        let meta = ToolCallMeta {
            function_name: "finish".into(),
            tool_call_id: "call_9".into(),
            arguments: "{}".into(),
            response_id: "r".into(),
        };
        let draft = events::action(
            "finish",
            json!({"final_thought": "Done.", "task_completed": "true", "outputs": {}}),
            "Done.".into(),
            &meta,
        );
        let event = Event {
            conversation_id: "c".into(),
            id: 7,
            created_at: 0,
            source: draft.source.into(),
            kind: draft.kind,
            payload: draft.doc.to_string(),
        };
        let both = v1_events(&event);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0]["action"]["kind"], "FinishAction");
        assert_eq!(both[0]["action"]["message"], "Done.");
        assert_eq!(both[1]["observation"]["kind"], "FinishObservation");
        assert_eq!(both[1]["action_id"], "7");
        assert_eq!(both[1]["tool_call_id"], "call_9");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::events::{self, ToolCallMeta};

    fn stored(id: i64, draft: events::Draft) -> Event {
        Event {
            conversation_id: "c".into(),
            id,
            created_at: 1_700_000_000_000,
            source: draft.source.into(),
            kind: draft.kind,
            payload: draft.doc.to_string(),
        }
    }

    #[test]
    fn a_tool_call_and_its_result_are_an_action_and_an_observation_event() {
        let meta = ToolCallMeta {
            function_name: "execute_bash".into(),
            tool_call_id: "toolu_1".into(),
            arguments: r#"{"command":"ls"}"#.into(),
            response_id: "resp_1".into(),
        };
        let action = stored(
            3,
            events::action(
                "run",
                json!({"command": "ls", "is_input": false, "thought": "look"}),
                "Running command: ls".into(),
                &meta,
            ),
        );
        let v1 = v1_event(&action);
        assert_eq!(v1["kind"], "ActionEvent");
        assert_eq!(v1["id"], "3");
        assert_eq!(v1["source"], "agent");
        assert_eq!(v1["tool_name"], "execute_bash");
        assert_eq!(v1["tool_call_id"], "toolu_1");
        assert_eq!(v1["tool_call"]["id"], "toolu_1");
        assert_eq!(v1["action"]["kind"], "ExecuteBashAction");
        assert_eq!(v1["action"]["command"], "ls");
        assert_eq!(v1["thought"][0]["text"], "look");
        let observation = stored(
            4,
            events::observation(
                "run",
                "a\nb",
                json!({"command": "ls", "exit_code": 0}),
                String::new(),
                3,
                Some(&meta),
            ),
        );
        let v1 = v1_event(&observation);
        assert_eq!(v1["kind"], "ObservationEvent");
        assert_eq!(v1["action_id"], "3");
        assert_eq!(v1["observation"]["kind"], "ExecuteBashObservation");
        assert_eq!(v1["observation"]["output"], "a\nb");
        assert_eq!(v1["observation"]["exit_code"], 0);
    }

    #[test]
    fn messages_states_and_pauses_have_their_v1_kinds() {
        let message = stored(1, events::user_message("fix it", false, json!({})));
        let v1 = v1_event(&message);
        assert_eq!(v1["kind"], "MessageEvent");
        assert_eq!(v1["llm_message"]["role"], "user");
        assert_eq!(v1["llm_message"]["content"][0]["text"], "fix it");
        let state = stored(2, events::state_changed(AgentState::AwaitingUserInput, ""));
        let v1 = v1_event(&state);
        assert_eq!(v1["kind"], "ConversationStateUpdateEvent");
        assert_eq!(v1["key"], "execution_status");
        assert_eq!(v1["value"], "finished");
        let pause = stored(3, events::change_state_request(AgentState::Paused));
        assert_eq!(v1_event(&pause)["kind"], "PauseEvent");
        let resume = stored(3, events::change_state_request(AgentState::Running));
        assert_eq!(v1_event(&resume)["kind"], "ConversationStateUpdateEvent");
        let note = stored(4, events::environment_note("the sandbox was replaced"));
        assert_eq!(v1_event(&note)["kind"], "MessageEvent");
    }
}
