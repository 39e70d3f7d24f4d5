//! Stuck detection, after OpenHands' patterns, over the current task's steps: the same action
//! with the same result 4 times; the same action failing 3 times; 3 messages from the agent
//! in a row without acting; two actions alternating for 6 steps.

use std::collections::HashMap;

use super::events::Item;
use super::history::History;
use super::tools::FINISH;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Act {
        action: String,
        result: String,
        failed: bool,
    },
    Talk,
}

/// Why the agent is stuck, in words for the user; `None` while it makes progress.
pub fn check(history: &History) -> Option<String> {
    let steps = steps(history);
    let last = |n: usize| (steps.len() >= n).then(|| &steps[steps.len() - n..]);

    if let Some(window) = last(4)
        && window
            .iter()
            .all(|s| matches!(s, Step::Act { .. }) && *s == window[0])
    {
        return Some(format!(
            "The agent is stuck: it repeated the same action 4 times with the same result ({}).",
            describe(&window[0])
        ));
    }
    if let Some(window) = last(3)
        && let Step::Act { action: first, .. } = &window[0]
        && window
            .iter()
            .all(|s| matches!(s, Step::Act { action, failed: true, .. } if action == first))
    {
        return Some(format!(
            "The agent is stuck: the same action failed 3 times in a row ({}).",
            describe(&window[0])
        ));
    }
    if let Some(window) = last(3)
        && window.iter().all(|s| *s == Step::Talk)
    {
        return Some(
            "The agent is stuck: it sent 3 messages in a row without doing anything.".to_string(),
        );
    }
    if let Some(window) = last(6)
        && window.iter().all(|s| matches!(s, Step::Act { .. }))
        && window[0] != window[1]
        && (0..4).all(|i| window[i] == window[i + 2])
    {
        return Some(format!(
            "The agent is stuck: it alternated between two actions for 6 steps ({} / {}).",
            describe(&window[0]),
            describe(&window[1])
        ));
    }
    None
}

fn describe(step: &Step) -> String {
    match step {
        Step::Act { action, .. } => {
            let short: String = action.chars().take(120).collect();
            if short.len() < action.len() {
                format!("{short}…")
            } else {
                short
            }
        }
        Step::Talk => "a message".to_string(),
    }
}

/// The current task's steps: each tool call with its result, and each message of the agent.
fn steps(history: &History) -> Vec<Step> {
    let items = &history.items[history.task_start()..];
    let mut results: HashMap<&str, (String, bool)> = HashMap::new();
    for item in items {
        if let Item::Observation {
            name,
            content,
            call: Some(call),
            exit_code,
            ..
        } = item
        {
            let failed = name == "error" || exit_code.is_some_and(|c| c != 0 && c != -1);
            results.insert(
                call.tool_call_id.as_str(),
                (format!("{exit_code:?}:{content}"), failed),
            );
        }
    }
    let mut steps = Vec::new();
    let mut seen_calls = std::collections::HashSet::new();
    for item in items {
        let call = match item {
            Item::AgentMessage { .. } => {
                steps.push(Step::Talk);
                continue;
            }
            Item::Action { call, .. }
            | Item::Observation {
                call: Some(call), ..
            } => call,
            _ => continue,
        };
        if call.function_name == FINISH || !seen_calls.insert(call.tool_call_id.as_str()) {
            continue;
        }
        let (result, failed) = results
            .get(call.tool_call_id.as_str())
            .cloned()
            .unwrap_or_default();
        steps.push(Step::Act {
            action: format!("{} {}", call.function_name, normalise(&call.arguments)),
            result,
            failed,
        });
    }
    steps
}

/// Arguments compared by value, not by spacing or key order.
fn normalise(arguments: &str) -> String {
    serde_json::from_str::<serde_json::Value>(arguments)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| arguments.trim().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::agent::events::{self, Draft, ToolCallMeta};
    use crate::storage::Event;
    use serde_json::json;

    struct Log {
        history: History,
        calls: u32,
    }

    impl Log {
        fn new() -> Log {
            let mut log = Log {
                history: History::default(),
                calls: 0,
            };
            log.push(events::user_message("fix it", false, json!({})));
            log
        }

        fn push(&mut self, draft: Draft) -> i64 {
            let id = self.history.last_id + 1;
            self.history.extend(&[Event {
                conversation_id: "c".into(),
                id,
                created_at: 0,
                source: draft.source.into(),
                kind: draft.kind,
                payload: draft.doc.to_string(),
            }]);
            id
        }

        fn act(&mut self, command: &str, output: &str, exit_code: i64) {
            self.calls += 1;
            let meta = ToolCallMeta {
                function_name: "execute_bash".into(),
                tool_call_id: format!("call_{}", self.calls),
                arguments: json!({"command": command}).to_string(),
                response_id: format!("r{}", self.calls),
            };
            let id = self.push(events::action(
                "run",
                json!({"command": command}),
                String::new(),
                &meta,
            ));
            self.push(events::observation(
                "run",
                output,
                json!({"exit_code": exit_code}),
                String::new(),
                id,
                Some(&meta),
            ));
        }

        fn talk(&mut self) {
            self.push(events::agent_message("hmm", None, "r"));
        }
    }

    #[test]
    fn progress_is_not_stuck() {
        let mut log = Log::new();
        for n in 0..10 {
            log.act(&format!("echo {n}"), &n.to_string(), 0);
        }
        assert_eq!(check(&log.history), None);
    }

    #[test]
    fn the_same_action_and_result_four_times() {
        let mut log = Log::new();
        for _ in 0..3 {
            log.act("ls", "a", 0);
        }
        assert_eq!(check(&log.history), None);
        log.act("ls", "a", 0);
        assert!(check(&log.history).unwrap().contains("4 times"));
    }

    #[test]
    fn the_same_action_failing_three_times() {
        let mut log = Log::new();
        log.act("make", "error 1", 2);
        log.act("make", "error 2", 2);
        assert_eq!(check(&log.history), None);
        log.act("make", "error 3", 2);
        assert!(check(&log.history).unwrap().contains("failed 3 times"));
    }

    #[test]
    fn three_messages_in_a_row() {
        let mut log = Log::new();
        log.talk();
        log.talk();
        assert_eq!(check(&log.history), None);
        log.push(events::user_message("please continue", true, json!({})));
        log.talk();
        assert!(check(&log.history).unwrap().contains("3 messages"));
    }

    #[test]
    fn a_message_from_the_user_starts_a_new_task() {
        let mut log = Log::new();
        for _ in 0..3 {
            log.act("ls", "a", 0);
        }
        log.push(events::user_message("try again", false, json!({})));
        log.act("ls", "a", 0);
        assert_eq!(check(&log.history), None);
    }

    #[test]
    fn ping_pong_over_six_steps() {
        let mut log = Log::new();
        for _ in 0..2 {
            log.act("cat a", "A", 0);
            log.act("cat b", "B", 0);
        }
        log.act("cat a", "A", 0);
        assert_eq!(check(&log.history), None);
        log.act("cat b", "B", 0);
        assert!(check(&log.history).unwrap().contains("alternated"));
    }
}
