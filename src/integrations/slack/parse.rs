//! Slack's Events API: the `url_verification` handshake, `app_mention` (a request anywhere)
//! and `message` replies in a thread (a request only where a conversation already runs).

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::integrations::mention::mentions;
use crate::integrations::request::{
    ImageAttachment, Inbound, MAX_ATTACHED_IMAGES, ParseError, ParseSettings, Parsed, Place,
    Provider, Request, Sender, Trigger, unless_unfit,
};

/// The outer envelope every Events API delivery shares.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    challenge: Option<String>,
    team_id: Option<String>,
    event_id: Option<String>,
    event: Option<Value>,
    authorizations: Option<Vec<Authorization>>,
}

/// An installation of the app the event is visible to.
#[derive(Deserialize)]
struct Authorization {
    user_id: Option<String>,
    is_bot: Option<bool>,
}

/// The fields of an `app_mention` or `message` event that a request needs.
#[derive(Deserialize)]
struct Message {
    user: Option<String>,
    text: Option<String>,
    ts: Option<String>,
    thread_ts: Option<String>,
    channel: Option<String>,
    team: Option<String>,
    /// Files shared with the message.
    #[serde(default)]
    files: Vec<SharedFile>,
}

/// A file shared with a message, as the Events API describes it.
#[derive(Deserialize)]
struct SharedFile {
    name: Option<String>,
    mimetype: Option<String>,
    /// Read with the bot token (`files:read`).
    url_private: Option<String>,
}

/// Parses a verified Events API delivery.
pub fn parse(
    _headers: &HeaderMap,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        ParseError::new(format!("the body is not a Slack Events API envelope: {e}"))
    })?;
    match envelope.kind.as_deref() {
        Some("url_verification") => {
            let challenge = envelope.challenge.ok_or_else(|| {
                ParseError::new("the url_verification request has no `challenge`")
            })?;
            Ok(Inbound::Answer(json!({ "challenge": challenge })))
        }
        Some("event_callback") => event_callback(envelope, body, settings),
        Some(_) => Ok(Inbound::Answer(json!({}))),
        None => Err(ParseError::new("the envelope has no `type`")),
    }
}

fn event_callback(
    envelope: Envelope,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    let id = envelope
        .event_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| ParseError::new("the event_callback has no `event_id`"))?;
    let event = envelope
        .event
        .as_ref()
        .filter(|event| event.is_object())
        .ok_or_else(|| ParseError::new("the event_callback has no `event` object"))?;
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ParseError::new("the event has no `type`"))?;
    let parsed = match kind {
        // Slack sends it only for a mention of the app: it always asks.
        "app_mention" => app_mention(&envelope, event, settings)?,
        // A message in a thread may continue a conversation without a mention.
        "message" => unless_unfit(
            message(&envelope, event, settings),
            body,
            settings,
            &["thread_ts", "<@"],
        )?,
        other => Parsed::ignored(format!("the {other} event is not a request")),
    };
    Ok(Inbound::Delivery {
        id,
        event: format!("event_callback:{kind}"),
        parsed,
    })
}

/// The app's own user ids in this workspace: mentions of them ask the agent, and messages from
/// them are the agent's own.
fn bot_user_ids(envelope: &Envelope) -> Vec<&str> {
    envelope
        .authorizations
        .iter()
        .flatten()
        .filter(|a| a.is_bot != Some(false))
        .filter_map(|a| a.user_id.as_deref())
        .filter(|id| !id.is_empty())
        .collect()
}

/// Why an event written by an app is not a request, or `None` for a person's event.
fn bot_author(event: &Value, message: &Message, bots: &[&str]) -> Option<&'static str> {
    if event.get("bot_id").is_some_and(|b| !b.is_null()) {
        return Some("the message was sent by a bot");
    }
    if event.get("subtype").and_then(Value::as_str) == Some("bot_message") {
        return Some("the message was sent by a bot");
    }
    if message.user.as_deref().is_some_and(|u| bots.contains(&u)) {
        return Some("the message was sent by the app itself");
    }
    None
}

fn app_mention(
    envelope: &Envelope,
    event: &Value,
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    let message = read_message(event, "app_mention")?;
    let bots = bot_user_ids(envelope);
    if let Some(reason) = bot_author(event, &message, &bots) {
        return Ok(Parsed::ignored(reason));
    }
    let text = message.text.as_deref().unwrap_or_default();
    // Slack reports every mention, also one in a quote; like a quoted `@openhands` elsewhere,
    // that one does not ask again. Where the app's own token cannot be found (no
    // authorizations, or another id for the app), trust Slack.
    let bots = if contains_mention_of(text, &bots) {
        bots
    } else {
        Vec::new()
    };
    if !bots.is_empty() && !mentions_bot(text, &bots, settings) {
        return Ok(Parsed::ignored(
            "the app is mentioned only in quoted text or code",
        ));
    }
    let text = strip_leading_mentions(text, &bots);
    Ok(Parsed::Request(Box::new(request(
        envelope,
        message,
        Trigger::Mention,
        text,
    )?)))
}

fn message(
    envelope: &Envelope,
    event: &Value,
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    let subtype = event.get("subtype").and_then(Value::as_str);
    match subtype {
        // A reply that shares files is one too.
        None | Some("thread_broadcast") | Some("file_share") => {}
        Some("bot_message") => return Ok(Parsed::ignored("the message was sent by a bot")),
        Some("message_changed") => return Ok(Parsed::ignored("an edit of an earlier message")),
        Some("message_deleted") => return Ok(Parsed::ignored("a deleted message")),
        Some(other) => {
            return Ok(Parsed::ignored(format!(
                "a message of subtype {other} is not a request"
            )));
        }
    }
    let message = read_message(event, "message")?;
    let bots = bot_user_ids(envelope);
    if let Some(reason) = bot_author(event, &message, &bots) {
        return Ok(Parsed::ignored(reason));
    }
    let ts = message
        .ts
        .as_deref()
        .ok_or_else(|| ParseError::new("the message event has no `ts`"))?;
    if message.thread_ts.as_deref().is_none_or(|t| t == ts) {
        return Ok(Parsed::ignored("the message is not a reply in a thread"));
    }
    let text = message.text.clone().unwrap_or_default();
    if mentions_bot(&text, &bots, settings) {
        return Ok(Parsed::ignored("handled as app_mention"));
    }
    Ok(Parsed::Request(Box::new(request(
        envelope,
        message,
        Trigger::ThreadReply,
        text,
    )?)))
}

fn read_message(event: &Value, kind: &str) -> Result<Message, ParseError> {
    Message::deserialize(event)
        .map_err(|e| ParseError::new(format!("the {kind} event is malformed: {e}")))
}

fn request(
    envelope: &Envelope,
    message: Message,
    trigger: Trigger,
    text: String,
) -> Result<Request, ParseError> {
    let missing = |field: &str| ParseError::new(format!("the event has no `{field}`"));
    let team_id = envelope
        .team_id
        .clone()
        .or(message.team)
        .ok_or_else(|| missing("team_id"))?;
    let channel = message.channel.ok_or_else(|| missing("channel"))?;
    let ts = message.ts.ok_or_else(|| missing("ts"))?;
    let user = message.user.ok_or_else(|| missing("user"))?;
    let thread_ts = message.thread_ts.unwrap_or_else(|| ts.clone());
    let images = message
        .files
        .into_iter()
        .filter_map(|file| {
            let mime_type = file.mimetype.filter(|m| m.starts_with("image/"))?;
            Some(ImageAttachment {
                url: file.url_private?,
                name: file.name.unwrap_or_default(),
                mime_type,
            })
        })
        .take(MAX_ATTACHED_IMAGES)
        .collect();
    Ok(Request {
        provider: Provider::Slack,
        trigger,
        sender: Sender {
            id: user.clone(),
            name: user,
        },
        source_id: format!("{channel}:{ts}"),
        place: Place::SlackThread {
            team_id,
            channel,
            thread_ts,
        },
        text,
        title: None,
        body: None,
        url: None,
        images,
    })
}

/// The user id in a `<@U123>` or `<@U123|name>` token at the start of `text`, and the rest.
fn leading_mention(text: &str) -> Option<(&str, &str)> {
    let (token, rest) = text.strip_prefix("<@")?.split_once('>')?;
    let id = token.split('|').next().unwrap_or_default();
    Some((id, rest))
}

/// Whether `text` holds a `<@ID>` or `<@ID|name>` token of one of `bots`, wherever it is.
fn contains_mention_of(text: &str, bots: &[&str]) -> bool {
    text.match_indices("<@").any(|(at, _)| {
        text.get(at..)
            .and_then(leading_mention)
            .is_some_and(|(id, _)| bots.contains(&id))
    })
}

/// `text` without the mentions of the app it starts with ("<@UBOT> fix it" → "fix it"). When the
/// app's ids are unknown, every leading mention is taken to be the app's.
fn strip_leading_mentions(text: &str, bots: &[&str]) -> String {
    let mut rest = text.trim();
    while let Some((id, after)) = leading_mention(rest) {
        if !bots.is_empty() && !bots.contains(&id) {
            break;
        }
        rest = after.trim_start();
    }
    rest.trim().to_string()
}

/// Whether `text` mentions the app outside quotes and code, as a person reading it would see:
/// the app's mention tokens read as the configured handle, and Slack's escapes are undone so
/// that a `&gt;` quote is recognised as one.
fn mentions_bot(text: &str, bots: &[&str], settings: &ParseSettings) -> bool {
    if bots.is_empty() {
        return false;
    }
    let handle = settings.mention_handle.as_str();
    let mut readable = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("<@") {
        let (before, token) = rest.split_at(at);
        readable.push_str(before);
        match leading_mention(token) {
            Some((id, after)) if bots.contains(&id) => {
                readable.push(' ');
                readable.push_str(handle);
                readable.push(' ');
                rest = after;
            }
            _ => {
                readable.push_str("<@");
                rest = token.get(2..).unwrap_or_default();
            }
        }
    }
    readable.push_str(rest);
    let readable = readable
        .replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&amp;", "&");
    mentions(&readable, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::test_support::{self as expect, fixture, json_of, to_bytes};

    const URL_VERIFICATION: &[u8] = fixture!("slack/url_verification.json");
    const APP_MENTION: &[u8] = fixture!("slack/app_mention.json");
    const APP_MENTION_THREAD: &[u8] = fixture!("slack/app_mention.thread.json");
    const THREAD_REPLY: &[u8] = fixture!("slack/message.thread_reply.json");
    const THREAD_REPLY_MENTIONS_BOT: &[u8] =
        fixture!("slack/message.thread_reply.mentions_bot.json");
    const CHANNEL_MESSAGE: &[u8] = fixture!("slack/message.channel.json");
    const BOT_MESSAGE: &[u8] = fixture!("slack/message.bot.json");
    const CHANGED_MESSAGE: &[u8] = fixture!("slack/message.changed.json");
    const REACTION_ADDED: &[u8] = fixture!("slack/reaction_added.json");

    fn parse_default(body: &[u8]) -> Result<Inbound, ParseError> {
        parse(&HeaderMap::new(), body, &ParseSettings::default())
    }

    /// The delivery's parsed content, checking its id and event name on the way.
    fn delivered(inbound: Inbound, expected_id: &str, expected_event: &str) -> Parsed {
        let (event, parsed) = expect::delivery(Ok(inbound), expected_id);
        assert_eq!(event, expected_event);
        parsed
    }

    fn ignored(body: &[u8]) -> String {
        expect::ignored(expect::parsed(parse_default(body)))
    }

    fn requested(body: &[u8], settings: &ParseSettings) -> Request {
        expect::request(expect::parsed(parse(&HeaderMap::new(), body, settings)))
    }

    #[test]
    fn images_shared_with_a_message_are_listed_and_other_files_are_not() {
        let mut delivery: Value = serde_json::from_slice(APP_MENTION).unwrap();
        delivery["event"]["files"] = json!([
            {"id": "F1", "name": "shot.png", "mimetype": "image/png", "url_private": "https://files.slack.com/files-pri/T0001-F1/shot.png"},
            {"id": "F2", "name": "spec.pdf", "mimetype": "application/pdf", "url_private": "https://files.slack.com/files-pri/T0001-F2/spec.pdf"},
            {"id": "F3", "name": "hidden.jpg", "mimetype": "image/jpeg"},
        ]);
        let request = requested(
            &serde_json::to_vec(&delivery).unwrap(),
            &ParseSettings::default(),
        );
        assert_eq!(
            request.images,
            vec![ImageAttachment {
                url: "https://files.slack.com/files-pri/T0001-F1/shot.png".into(),
                mime_type: "image/png".into(),
                name: "shot.png".into(),
            }]
        );
    }

    #[test]
    fn url_verification_is_answered_with_its_challenge() {
        assert_eq!(
            parse_default(URL_VERIFICATION).unwrap(),
            Inbound::Answer(
                json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
            )
        );
        let no_challenge = br#"{"token":"x","type":"url_verification"}"#;
        assert!(parse_default(no_challenge).is_err());
    }

    #[test]
    fn other_envelopes_are_acknowledged_without_storing() {
        let rate_limited = br#"{"token":"x","team_id":"T0001","minute_rate_limited":1518467820,"api_app_id":"A0001","type":"app_rate_limited"}"#;
        assert_eq!(
            parse_default(rate_limited).unwrap(),
            Inbound::Answer(json!({}))
        );
    }

    #[test]
    fn an_app_mention_at_the_top_level_starts_a_thread_on_its_message() {
        let parsed = delivered(
            parse_default(APP_MENTION).unwrap(),
            "Ev0PV52K21",
            "event_callback:app_mention",
        );
        assert_eq!(
            parsed,
            Parsed::Request(Box::new(Request {
                provider: Provider::Slack,
                trigger: Trigger::Mention,
                sender: Sender {
                    id: "U0ALICE01".into(),
                    name: "U0ALICE01".into(),
                },
                place: Place::SlackThread {
                    team_id: "T0001".into(),
                    channel: "C0001".into(),
                    thread_ts: "1714567890.123456".into(),
                },
                text: "please fix the flaky test".into(),
                title: None,
                body: None,
                url: None,
                source_id: "C0001:1714567890.123456".into(),
                images: Vec::new(),
            }))
        );
    }

    #[test]
    fn an_app_mention_in_a_thread_belongs_to_that_thread() {
        let request = requested(APP_MENTION_THREAD, &ParseSettings::default());
        assert_eq!(
            request,
            Request {
                provider: Provider::Slack,
                trigger: Trigger::Mention,
                sender: Sender {
                    id: "U0ALICE01".into(),
                    name: "U0ALICE01".into(),
                },
                place: Place::SlackThread {
                    team_id: "T0001".into(),
                    channel: "C0001".into(),
                    thread_ts: "1714567890.123456".into(),
                },
                // Only the leading mention of the app goes; another person's mention stays.
                text: "please fix the flaky test, <@U0BOB0002> saw it too".into(),
                title: None,
                body: None,
                url: None,
                source_id: "C0001:1714567950.654321".into(),
                images: Vec::new(),
            }
        );
        assert_eq!(request.external_ref(), "T0001/C0001/1714567890.123456");
    }

    #[test]
    fn a_reply_in_a_thread_is_a_thread_reply() {
        let parsed = delivered(
            parse_default(THREAD_REPLY).unwrap(),
            "Ev0PV52K33",
            "event_callback:message",
        );
        assert_eq!(
            parsed,
            Parsed::Request(Box::new(Request {
                provider: Provider::Slack,
                trigger: Trigger::ThreadReply,
                sender: Sender {
                    id: "U0BOB0002".into(),
                    name: "U0BOB0002".into(),
                },
                place: Place::SlackThread {
                    team_id: "T0001".into(),
                    channel: "C0001".into(),
                    thread_ts: "1714567890.123456".into(),
                },
                text: "It only fails on CI, the retry in `setup()` hides it locally.".into(),
                title: None,
                body: None,
                url: None,
                source_id: "C0001:1714568000.000200".into(),
                images: Vec::new(),
            }))
        );
    }

    #[test]
    fn a_thread_broadcast_is_a_thread_reply() {
        let mut body = json_of(THREAD_REPLY);
        body["event"]["subtype"] = json!("thread_broadcast");
        let request = requested(&to_bytes(&body), &ParseSettings::default());
        assert_eq!(request.trigger, Trigger::ThreadReply);
        assert_eq!(request.source_id, "C0001:1714568000.000200");
    }

    #[test]
    fn a_reply_that_mentions_the_app_is_left_to_its_app_mention() {
        assert_eq!(ignored(THREAD_REPLY_MENTIONS_BOT), "handled as app_mention");
        // The same mention arrives as an app_mention, with the same request key.
        let mut mention = json_of(THREAD_REPLY_MENTIONS_BOT);
        mention["event"]["type"] = json!("app_mention");
        let request = requested(&to_bytes(&mention), &ParseSettings::default());
        assert_eq!(request.trigger, Trigger::Mention);
        assert_eq!(request.text, "can you also add a regression test?");
        assert_eq!(request.source_id, "C0001:1714568100.000300");
    }

    #[test]
    fn messages_that_are_not_thread_replies_are_ignored() {
        assert_eq!(
            ignored(CHANNEL_MESSAGE),
            "the message is not a reply in a thread"
        );
        // A thread's first message carries `thread_ts` equal to its own `ts`.
        let mut parent = json_of(CHANNEL_MESSAGE);
        parent["event"]["thread_ts"] = parent["event"]["ts"].clone();
        assert_eq!(
            ignored(&to_bytes(&parent)),
            "the message is not a reply in a thread"
        );
        assert_eq!(ignored(CHANGED_MESSAGE), "an edit of an earlier message");
        let mut deleted = json_of(CHANGED_MESSAGE);
        deleted["event"]["subtype"] = json!("message_deleted");
        assert_eq!(ignored(&to_bytes(&deleted)), "a deleted message");
        let mut joined = json_of(THREAD_REPLY);
        joined["event"]["subtype"] = json!("channel_join");
        assert_eq!(
            ignored(&to_bytes(&joined)),
            "a message of subtype channel_join is not a request"
        );
        assert_eq!(
            ignored(REACTION_ADDED),
            "the reaction_added event is not a request"
        );
    }

    #[test]
    fn messages_from_bots_and_from_the_app_itself_are_ignored() {
        assert_eq!(ignored(BOT_MESSAGE), "the message was sent by a bot");

        let mut bot_message = json_of(THREAD_REPLY);
        bot_message["event"]["subtype"] = json!("bot_message");
        assert_eq!(
            ignored(&to_bytes(&bot_message)),
            "the message was sent by a bot"
        );

        // The app's bot user writing without a bot_id (e.g. through a user-style token).
        let mut own = json_of(THREAD_REPLY);
        own["event"]["user"] = json!("U0BOT0001");
        assert_eq!(
            ignored(&to_bytes(&own)),
            "the message was sent by the app itself"
        );

        // Another app mentioning ours does not start a loop either.
        let mut by_bot = json_of(APP_MENTION);
        by_bot["event"]["bot_id"] = json!("B0OTHER01");
        assert_eq!(ignored(&to_bytes(&by_bot)), "the message was sent by a bot");
    }

    #[test]
    fn a_mention_only_in_a_quote_or_code_is_ignored() {
        for text in [
            "&gt; <@U0BOT0001> please fix the flaky test\nI agree with this",
            "```<@U0BOT0001> please fix the flaky test```",
            "Run `<@U0BOT0001> fix` to start it",
        ] {
            let mut body = json_of(APP_MENTION);
            body["event"]["text"] = json!(text);
            assert_eq!(
                ignored(&to_bytes(&body)),
                "the app is mentioned only in quoted text or code",
                "{text:?}"
            );
        }
        // Under a quote, a mention of its own asks.
        let mut body = json_of(APP_MENTION);
        body["event"]["text"] = json!("&gt; the test is flaky\n<@U0BOT0001> please fix it");
        let request = requested(&to_bytes(&body), &ParseSettings::default());
        assert_eq!(
            request.text,
            "&gt; the test is flaky\n<@U0BOT0001> please fix it"
        );

        // A thread reply quoting the app is not an app_mention request, so it is a reply.
        let mut reply = json_of(THREAD_REPLY_MENTIONS_BOT);
        reply["event"]["text"] = json!("&gt; <@U0BOT0001> fix it\nthat was my ask");
        let request = requested(&to_bytes(&reply), &ParseSettings::default());
        assert_eq!(request.trigger, Trigger::ThreadReply);
    }

    #[test]
    fn the_handle_is_matched_whatever_its_case_and_is_configurable() {
        // Slack mentions are user ids; the handle only decides how a quote is read, so any
        // handle (in any case) recognises the app's mention token.
        for handle in ["@openhands", "@OpenHands", "@devbot"] {
            let settings = ParseSettings {
                mention_handle: handle.into(),
                label: "agent".into(),
                account_mentions: Vec::new(),
            };
            let request = requested(APP_MENTION, &settings);
            assert_eq!(request.text, "please fix the flaky test");
            let reply = parse(&HeaderMap::new(), THREAD_REPLY_MENTIONS_BOT, &settings).unwrap();
            assert!(
                matches!(reply, Inbound::Delivery { parsed: Parsed::Ignored(ref r), .. } if r == "handled as app_mention"),
                "{handle}"
            );
        }
    }

    #[test]
    fn without_authorizations_leading_mentions_are_stripped_and_slack_is_trusted() {
        let mut body = json_of(APP_MENTION);
        body.as_object_mut().unwrap().remove("authorizations");
        body["event"]["text"] = json!("<@U0BOT0001|openhands>   please fix the flaky test ");
        let request = requested(&to_bytes(&body), &ParseSettings::default());
        assert_eq!(request.text, "please fix the flaky test");
    }

    #[test]
    fn an_app_mention_of_an_unlisted_bot_id_is_trusted() {
        // The authorization names another id than the token Slack reported the mention for.
        let mut body = json_of(APP_MENTION);
        body["authorizations"][0]["user_id"] = json!("U0BOT9999");
        let request = requested(&to_bytes(&body), &ParseSettings::default());
        assert_eq!(request.trigger, Trigger::Mention);
        assert_eq!(request.text, "please fix the flaky test");
    }

    #[test]
    fn the_team_falls_back_to_the_events_team() {
        let mut body = json_of(APP_MENTION);
        body.as_object_mut().unwrap().remove("team_id");
        body["event"]["team"] = json!("T0002");
        let request = requested(&to_bytes(&body), &ParseSettings::default());
        assert!(
            matches!(request.place, Place::SlackThread { ref team_id, .. } if team_id == "T0002")
        );
    }

    #[test]
    fn malformed_deliveries_are_errors() {
        let mut no_id = json_of(APP_MENTION);
        no_id.as_object_mut().unwrap().remove("event_id");
        let mut no_channel = json_of(APP_MENTION);
        no_channel["event"]
            .as_object_mut()
            .unwrap()
            .remove("channel");
        let mut no_team = json_of(APP_MENTION);
        no_team.as_object_mut().unwrap().remove("team_id");
        no_team["event"].as_object_mut().unwrap().remove("team");
        let mut text_is_a_number = json_of(APP_MENTION);
        text_is_a_number["event"]["text"] = json!(42);
        for body in [
            to_bytes(&no_id),
            to_bytes(&no_channel),
            to_bytes(&no_team),
            to_bytes(&text_is_a_number),
            b"not json".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            br#"{"type":"event_callback","event_id":"Ev1"}"#.to_vec(),
            br#"{"type":"event_callback","event_id":"Ev1","event":"message"}"#.to_vec(),
            br#"{"type":"event_callback","event_id":"Ev1","event":{"text":"hi"}}"#.to_vec(),
            br#"{"type":42}"#.to_vec(),
        ] {
            expect::assert_unfit(parse_default, &body);
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let fixtures = [
            URL_VERIFICATION,
            APP_MENTION,
            APP_MENTION_THREAD,
            THREAD_REPLY,
            THREAD_REPLY_MENTIONS_BOT,
            CHANNEL_MESSAGE,
            BOT_MESSAGE,
            CHANGED_MESSAGE,
            REACTION_ADDED,
        ];
        for fixture in fixtures {
            // Every prefix, and every byte flipped in turn.
            for end in 0..fixture.len() {
                let _ = parse_default(&fixture[..end]);
            }
            for at in 0..fixture.len() {
                let mut bytes = fixture.to_vec();
                bytes[at] ^= 0xA5;
                let _ = parse_default(&bytes);
            }
        }
        for text in [
            "<@",
            "<@>",
            "<@U0BOT0001",
            "<@|>",
            "<@U0BOT0001>",
            "<<@@>>",
            "é<@é>é",
        ] {
            let mut body = json_of(APP_MENTION);
            body["event"]["text"] = json!(text);
            let _ = parse_default(&to_bytes(&body));
            let mut reply = json_of(THREAD_REPLY);
            reply["event"]["text"] = json!(text);
            let _ = parse_default(&to_bytes(&reply));
        }
    }
}
