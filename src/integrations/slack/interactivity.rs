//! Slack's interactivity: what a person did with one of the app's interactive messages, and the
//! Block Kit menu that asks which repository to work on.
//!
//! Slack posts interactions to the app's request URL as `application/x-www-form-urlencoded`
//! with one field, `payload`, holding JSON; the request is signed like an Events API delivery
//! (see `verify`). Only `block_actions` from messages is read: a menu option chosen or a button
//! clicked. Every other interaction is named and ignored, never an error; a `block_actions`
//! payload without a field the answer needs is a [`ParseError`] naming that field.

use serde_json::{Value, json};

use crate::integrations::request::ParseError;

/// The `action_id` of the repository menu's static_select.
pub const REPOSITORY_ACTION: &str = "openhands_repository";

/// What a person did with one of the app's interactive messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub team_id: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub channel: String,
    /// The thread the interactive message is in (its own ts when it is not in a thread).
    pub thread_ts: String,
    /// The interactive message's ts.
    pub message_ts: String,
    pub action_id: String,
    /// The chosen option's value (static_select) or the button's value.
    pub value: String,
    /// Unique per interaction (`trigger_id`, else `action_ts`): the delivery id.
    pub id: String,
}

/// An interaction payload, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interactive {
    /// A menu option chosen, or a button clicked, in a message.
    Action(Interaction),
    /// Anything else (view_submission, shortcuts, …), with why it is ignored.
    Ignored(String),
}

/// Reads the form Slack posted to the interactivity request URL (already verified).
pub fn parse_interaction(body: &[u8]) -> Result<Interactive, ParseError> {
    let payload = url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| ParseError::new("the body has no `payload` field"))?;
    let payload: Value = serde_json::from_str(&payload)
        .map_err(|e| ParseError::new(format!("the `payload` field is not JSON: {e}")))?;
    if !payload.is_object() {
        return Err(ParseError::new("the `payload` field is not a JSON object"));
    }
    let kind = text(&payload, &["type"])
        .ok_or_else(|| ParseError::new("the interaction payload has no `type`"))?;
    if kind != "block_actions" {
        return Ok(Interactive::Ignored(format!(
            "a {kind} interaction is not handled"
        )));
    }
    block_actions(&payload)
}

/// The non-empty string at `path` below `value`.
fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |at, name| at.get(name))?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn block_actions(payload: &Value) -> Result<Interactive, ParseError> {
    let missing =
        |field: &str| ParseError::new(format!("the block_actions payload has no `{field}`"));
    // Modals and the App Home hold no thread to answer in; the app does not publish them.
    if text(payload, &["container", "type"]) == Some("view") {
        return Ok(Interactive::Ignored(
            "an action in a view (a modal or the App Home) is not handled".into(),
        ));
    }
    let user_id = text(payload, &["user", "id"]).ok_or_else(|| missing("user.id"))?;
    let user_name = text(payload, &["user", "username"]).or(text(payload, &["user", "name"]));
    // An app installed across an Enterprise Grid organization may get `team: null`.
    let team_id = text(payload, &["team", "id"])
        .or(text(payload, &["user", "team_id"]))
        .ok_or_else(|| missing("team.id"))?;
    let channel = text(payload, &["channel", "id"])
        .or(text(payload, &["container", "channel_id"]))
        .ok_or_else(|| missing("channel.id"))?;
    let message_ts = text(payload, &["container", "message_ts"])
        .or(text(payload, &["message", "ts"]))
        .ok_or_else(|| missing("container.message_ts"))?;
    let thread_ts = text(payload, &["container", "thread_ts"])
        .or(text(payload, &["message", "thread_ts"]))
        .unwrap_or(message_ts);
    // Slack sends every action taken at once, and in practice only one.
    let action = payload
        .get("actions")
        .and_then(Value::as_array)
        .and_then(|actions| actions.first())
        .ok_or_else(|| missing("actions"))?;
    let id = text(payload, &["trigger_id"])
        .or(text(action, &["action_ts"]))
        .ok_or_else(|| missing("trigger_id"))?;
    let action_id = text(action, &["action_id"]).ok_or_else(|| missing("actions[0].action_id"))?;
    let kind = text(action, &["type"]).ok_or_else(|| missing("actions[0].type"))?;
    let value = match kind {
        "static_select" => match action.get("selected_option") {
            // Slack reports a cleared choice as `null`.
            Some(Value::Null) => {
                return Ok(Interactive::Ignored("the menu's choice was cleared".into()));
            }
            Some(option) => text(option, &["value"])
                .ok_or_else(|| missing("actions[0].selected_option.value"))?,
            None => return Err(missing("actions[0].selected_option")),
        },
        "button" => text(action, &["value"]).ok_or_else(|| missing("actions[0].value"))?,
        other => {
            return Ok(Interactive::Ignored(format!(
                "a {other} action is not handled"
            )));
        }
    };
    Ok(Interactive::Action(Interaction {
        team_id: team_id.to_string(),
        user_id: user_id.to_string(),
        user_name: user_name.map(str::to_string),
        channel: channel.to_string(),
        thread_ts: thread_ts.to_string(),
        message_ts: message_ts.to_string(),
        action_id: action_id.to_string(),
        value: value.to_string(),
        id: id.to_string(),
    }))
}

/// One choice of a menu: what it shows, and what the interaction reports when it is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuOption {
    pub label: String,
    pub value: String,
}

/// Slack's limits: options in one static_select, characters of an option's text and value, of
/// a section's text.
const MENU_OPTIONS: usize = 100;
const LABEL_CHARS: usize = 75;
const VALUE_CHARS: usize = 150;
const SECTION_CHARS: usize = 3000;

const PLACEHOLDER: &str = "Choose a repository";

/// A message asking which repository to work on: a section with `prompt` (mrkdwn) and a
/// static_select (action_id [`REPOSITORY_ACTION`]) with the options (at most 100, Slack's
/// limit; labels cut to 75 characters, values must be ≤ 150 characters: longer ones are left
/// out), placeholder "Choose a repository". Returns the `blocks` array. Options with an empty
/// value are left out too; an empty label shows the value. Without any option left the section
/// has no menu, since Slack refuses an empty one: the prompt should then say why.
pub fn repository_menu(prompt: &str, options: &[MenuOption]) -> Value {
    let options: Vec<Value> = options
        .iter()
        .filter(|o| !o.value.is_empty() && o.value.chars().count() <= VALUE_CHARS)
        .take(MENU_OPTIONS)
        .map(|o| {
            let label = if o.label.trim().is_empty() {
                &o.value
            } else {
                &o.label
            };
            json!({
                "text": {"type": "plain_text", "text": cut(label, LABEL_CHARS), "emoji": false},
                "value": o.value,
            })
        })
        .collect();
    // A section's text cannot be empty.
    let prompt = if prompt.trim().is_empty() {
        PLACEHOLDER
    } else {
        prompt
    };
    let mut section = json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(prompt, SECTION_CHARS)},
    });
    if !options.is_empty() {
        section["accessory"] = json!({
            "type": "static_select",
            "action_id": REPOSITORY_ACTION,
            "placeholder": {"type": "plain_text", "text": PLACEHOLDER, "emoji": false},
            "options": options,
        });
    }
    json!([section])
}

/// `text` in at most `max` characters, an ellipsis marking a cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUTTON: &str = include_str!("../../../tests/fixtures/slack/block_actions.button.json");
    const STATIC_SELECT_IN_THREAD: &str =
        include_str!("../../../tests/fixtures/slack/block_actions.static_select.thread.json");

    /// The body Slack posts for `payload`.
    fn form(payload: &str) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", payload)
            .finish()
            .into_bytes()
    }

    fn json_of(fixture: &str) -> Value {
        serde_json::from_str(fixture).unwrap()
    }

    fn parse_value(payload: &Value) -> Result<Interactive, ParseError> {
        parse_interaction(&form(&payload.to_string()))
    }

    fn action(payload: &Value) -> Interaction {
        match parse_value(payload).unwrap() {
            Interactive::Action(action) => action,
            other => panic!("expected an action, got {other:?}"),
        }
    }

    fn ignored(payload: &Value) -> String {
        match parse_value(payload).unwrap() {
            Interactive::Ignored(reason) => reason,
            other => panic!("expected an ignored interaction, got {other:?}"),
        }
    }

    fn error(payload: &Value) -> String {
        match parse_value(payload) {
            Err(ParseError(message)) => message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn remove(payload: &mut Value, path: &[&str]) {
        let (last, parents) = path.split_last().unwrap();
        let mut at = payload;
        for name in parents {
            at = &mut at[*name];
        }
        at.as_object_mut().unwrap().remove(*last);
    }

    #[test]
    fn a_button_in_a_top_level_message_answers_in_a_thread_on_that_message() {
        assert_eq!(
            parse_interaction(&form(BUTTON)).unwrap(),
            Interactive::Action(Interaction {
                team_id: "T111".into(),
                user_id: "W111".into(),
                user_name: Some("primary-owner".into()),
                channel: "C111".into(),
                thread_ts: "111.222".into(),
                message_ts: "111.222".into(),
                action_id: "a".into(),
                value: "click_me_123".into(),
                id: "111.222.valid".into(),
            })
        );
    }

    #[test]
    fn a_repository_chosen_in_a_thread_belongs_to_that_thread() {
        assert_eq!(
            parse_interaction(&form(STATIC_SELECT_IN_THREAD)).unwrap(),
            Interactive::Action(Interaction {
                team_id: "T03SH7G01GU".into(),
                user_id: "U03STHCA1JM".into(),
                user_name: Some("malte".into()),
                channel: "C0A511MBCUW".into(),
                thread_ts: "1767326125.870439".into(),
                message_ts: "1767326126.896109".into(),
                action_id: REPOSITORY_ACTION.into(),
                value: "acme/widgets".into(),
                id: "10215325802133.3901254001572.staticselect123".into(),
            })
        );
    }

    #[test]
    fn fields_fall_back_where_slack_leaves_them_out() {
        // The thread from the message when the container does not name it.
        let mut payload = json_of(STATIC_SELECT_IN_THREAD);
        remove(&mut payload, &["container", "thread_ts"]);
        assert_eq!(action(&payload).thread_ts, "1767326125.870439");
        // Neither names it: the message starts the thread.
        remove(&mut payload, &["message", "thread_ts"]);
        assert_eq!(action(&payload).thread_ts, "1767326126.896109");
        // The message's own ts, the container's channel, the user's team, the user's name.
        let mut payload = json_of(STATIC_SELECT_IN_THREAD);
        remove(&mut payload, &["container", "message_ts"]);
        payload["channel"] = Value::Null;
        payload["team"] = Value::Null;
        remove(&mut payload, &["user", "username"]);
        let read = action(&payload);
        assert_eq!(read.message_ts, "1767326126.896109");
        assert_eq!(read.channel, "C0A511MBCUW");
        assert_eq!(read.team_id, "T03SH7G01GU");
        assert_eq!(read.user_name.as_deref(), Some("malte"));
        // Without a trigger_id, the action's ts tells deliveries apart.
        let mut payload = json_of(BUTTON);
        remove(&mut payload, &["trigger_id"]);
        assert_eq!(action(&payload).id, "1596530385.194939");
        // Only the first action counts.
        let mut payload = json_of(BUTTON);
        let mut second = payload["actions"][0].clone();
        second["value"] = json!("second");
        payload["actions"].as_array_mut().unwrap().push(second);
        assert_eq!(action(&payload).value, "click_me_123");
    }

    #[test]
    fn other_interactions_are_ignored_with_a_reason() {
        for kind in [
            "view_submission",
            "view_closed",
            "shortcut",
            "message_action",
            "block_suggestion",
            "interactive_message",
        ] {
            assert_eq!(
                ignored(&json!({"type": kind, "user": {"id": "U1"}})),
                format!("a {kind} interaction is not handled")
            );
        }
        let mut in_view = json_of(BUTTON);
        in_view["container"] = json!({"type": "view", "view_id": "V0123"});
        assert_eq!(
            ignored(&in_view),
            "an action in a view (a modal or the App Home) is not handled"
        );
        let mut datepicker = json_of(BUTTON);
        datepicker["actions"][0] = json!({
            "type": "datepicker", "action_id": "when", "block_id": "b",
            "selected_date": "2024-05-01", "action_ts": "1596530385.194939"
        });
        assert_eq!(ignored(&datepicker), "a datepicker action is not handled");
        let mut cleared = json_of(STATIC_SELECT_IN_THREAD);
        cleared["actions"][0]["selected_option"] = Value::Null;
        assert_eq!(ignored(&cleared), "the menu's choice was cleared");
    }

    #[test]
    fn a_block_actions_payload_without_what_is_needed_names_the_field() {
        let cases: [(&str, &[&str], &str); 9] = [
            (BUTTON, &["user", "id"], "user.id"),
            (BUTTON, &["actions"], "actions"),
            (BUTTON, &["trigger_id"], "trigger_id"),
            (STATIC_SELECT_IN_THREAD, &["user", "id"], "user.id"),
            (
                BUTTON,
                &["actions", "0", "action_id"],
                "actions[0].action_id",
            ),
            (BUTTON, &["actions", "0", "type"], "actions[0].type"),
            (BUTTON, &["actions", "0", "value"], "actions[0].value"),
            (
                STATIC_SELECT_IN_THREAD,
                &["actions", "0", "selected_option", "value"],
                "actions[0].selected_option.value",
            ),
            (
                STATIC_SELECT_IN_THREAD,
                &["actions", "0", "selected_option"],
                "actions[0].selected_option",
            ),
        ];
        for (fixture, path, field) in cases {
            let mut payload = json_of(fixture);
            if path == ["trigger_id"] {
                // The action's ts stands in for the trigger: both must be missing.
                remove(&mut payload["actions"][0], &["action_ts"]);
            }
            if path.get(1) == Some(&"0") {
                let action = &mut payload["actions"][0];
                remove(action, &path[2..]);
            } else {
                remove(&mut payload, path);
            }
            assert_eq!(
                error(&payload),
                format!("the block_actions payload has no `{field}`"),
                "{path:?}"
            );
        }

        let mut no_team = json_of(BUTTON);
        remove(&mut no_team, &["team"]);
        remove(&mut no_team, &["user", "team_id"]);
        assert_eq!(
            error(&no_team),
            "the block_actions payload has no `team.id`"
        );
        let mut no_channel = json_of(BUTTON);
        remove(&mut no_channel, &["channel"]);
        remove(&mut no_channel, &["container", "channel_id"]);
        assert_eq!(
            error(&no_channel),
            "the block_actions payload has no `channel.id`"
        );
        let mut no_message = json_of(BUTTON);
        remove(&mut no_message, &["container"]);
        assert_eq!(
            error(&no_message),
            "the block_actions payload has no `container.message_ts`"
        );
        let mut no_actions = json_of(BUTTON);
        no_actions["actions"] = json!([]);
        assert_eq!(
            error(&no_actions),
            "the block_actions payload has no `actions`"
        );
        let mut empty_value = json_of(BUTTON);
        empty_value["actions"][0]["value"] = json!("");
        assert_eq!(
            error(&empty_value),
            "the block_actions payload has no `actions[0].value`"
        );
    }

    #[test]
    fn a_body_without_a_json_payload_is_an_error() {
        for (body, expected) in [
            (b"".to_vec(), "the body has no `payload` field"),
            (
                BUTTON.as_bytes().to_vec(),
                "the body has no `payload` field",
            ),
            (
                b"token=abc&team_id=T111".to_vec(),
                "the body has no `payload` field",
            ),
            (
                b"payload=%5B1%2C2%5D".to_vec(),
                "the `payload` field is not a JSON object",
            ),
            (
                form(r#"{"user":{"id":"U1"}}"#),
                "the interaction payload has no `type`",
            ),
            (
                form(r#"{"type":42}"#),
                "the interaction payload has no `type`",
            ),
        ] {
            assert_eq!(
                parse_interaction(&body),
                Err(ParseError::new(expected)),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        let not_json = parse_interaction(b"payload=%7Bnot+json").unwrap_err();
        assert!(
            not_json.0.starts_with("the `payload` field is not JSON: "),
            "{not_json}"
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        for fixture in [BUTTON, STATIC_SELECT_IN_THREAD] {
            let body = form(fixture);
            for end in 0..body.len() {
                let _ = parse_interaction(&body[..end]);
            }
            for at in 0..body.len() {
                let mut bytes = body.clone();
                bytes[at] ^= 0xA5;
                let _ = parse_interaction(&bytes);
            }
        }
    }

    fn option(label: &str, value: &str) -> MenuOption {
        MenuOption {
            label: label.into(),
            value: value.into(),
        }
    }

    /// The menu's options as (label, value).
    fn options_of(blocks: &Value) -> Vec<(String, String)> {
        blocks[0]["accessory"]["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["text"]["text"].as_str().unwrap().to_string(),
                    o["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn the_repository_menu_is_a_section_with_a_static_select() {
        let blocks = repository_menu(
            "Which repository should I work on?",
            &[
                option("acme/widgets", "acme/widgets"),
                option("acme/api", "acme/api"),
            ],
        );
        assert_eq!(
            blocks,
            json!([{
                "type": "section",
                "text": {"type": "mrkdwn", "text": "Which repository should I work on?"},
                "accessory": {
                    "type": "static_select",
                    "action_id": "openhands_repository",
                    "placeholder": {"type": "plain_text", "text": "Choose a repository", "emoji": false},
                    "options": [
                        {"text": {"type": "plain_text", "text": "acme/widgets", "emoji": false}, "value": "acme/widgets"},
                        {"text": {"type": "plain_text", "text": "acme/api", "emoji": false}, "value": "acme/api"}
                    ]
                }
            }])
        );
        // slack-morphism reads it as Block Kit, and writes it back the same.
        let typed: Vec<slack_morphism::prelude::SlackBlock> =
            serde_json::from_value(blocks.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), blocks);
    }

    #[test]
    fn the_repository_menu_keeps_to_slacks_limits() {
        let many: Vec<MenuOption> = (0..130)
            .map(|i| option(&format!("group/project-{i}"), &format!("group/project-{i}")))
            .collect();
        let blocks = repository_menu("Which one?", &many);
        let options = options_of(&blocks);
        assert_eq!(options.len(), 100);
        assert_eq!(options[99].1, "group/project-99");

        let long_label = "a".repeat(80);
        let longest_value = "v".repeat(150);
        let too_long_value = "w".repeat(151);
        let blocks = repository_menu(
            "Which one?",
            &[
                option(&long_label, "group/long-label"),
                option("too long", &too_long_value),
                option("longest", &longest_value),
                option("", "group/no-label"),
                option("no value", ""),
            ],
        );
        let options = options_of(&blocks);
        assert_eq!(
            options,
            vec![
                (
                    format!("{}…", "a".repeat(74)),
                    "group/long-label".to_string()
                ),
                ("longest".to_string(), longest_value),
                ("group/no-label".to_string(), "group/no-label".to_string()),
            ]
        );
        assert_eq!(options[0].0.chars().count(), 75);

        // With nothing to choose, no menu (Slack refuses an empty one).
        let blocks = repository_menu("No repository is reachable.", &[option("x", "")]);
        assert_eq!(
            blocks,
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": "No repository is reachable."}}])
        );
        assert_eq!(
            repository_menu(" ", &[])[0]["text"]["text"],
            "Choose a repository"
        );
    }
}
