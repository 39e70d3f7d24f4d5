//! Linear webhooks: a new comment that mentions the handle, or the trigger label on a new issue
//! or added to an existing one.

use axum::http::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::integrations::request::{
    Inbound, ParseError, ParseSettings, Parsed, Place, Provider, Request, Sender, Trigger, fit,
    required_header, unless_unfit,
};

/// Linear's id of one delivery; retries of it carry the same id.
pub const DELIVERY_HEADER: &str = "Linear-Delivery";

/// What every data-change webhook shares. `data`, `actor` and `updatedFrom` are read by type,
/// only for the events that are requests.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    action: Option<String>,
    actor: Option<Value>,
    data: Option<Value>,
    updated_from: Option<Value>,
    url: Option<String>,
    organization_id: Option<String>,
    webhook_timestamp: Option<i64>,
}

/// Who made the change: a person, or an application acting through the API.
#[derive(Deserialize)]
struct Actor {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommentData {
    id: String,
    body: Option<String>,
    issue_id: Option<String>,
    user_id: Option<String>,
    issue: Option<IssueRef>,
    user: Option<UserRef>,
    bot_actor: Option<Value>,
}

#[derive(Deserialize)]
struct IssueRef {
    id: Option<String>,
    identifier: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct UserRef {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssueData {
    id: String,
    identifier: Option<String>,
    title: Option<String>,
    description: Option<String>,
    label_ids: Option<Vec<String>>,
    labels: Option<Vec<Label>>,
    updated_at: Option<String>,
    url: Option<String>,
    bot_actor: Option<Value>,
}

#[derive(Deserialize)]
struct Label {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatedFrom {
    label_ids: Option<Vec<String>>,
}

/// Parses a verified Linear webhook delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    let id = required_header(headers, DELIVERY_HEADER)?.to_string();
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| ParseError::new(format!("the body is not a Linear webhook: {e}")))?;
    let kind = envelope
        .kind
        .as_deref()
        .ok_or_else(|| ParseError::new("the body has no `type`"))?;
    let action = envelope
        .action
        .as_deref()
        .ok_or_else(|| ParseError::new("the body has no `action`"))?;
    let event = format!("{kind}.{action}");
    let parsed = match (kind, action) {
        ("Comment", "create") => comment_created(&envelope, settings),
        ("Issue", "create" | "update") => issue_labeled(&envelope, action, settings),
        _ => Ok(Parsed::ignored(format!(
            "the {event} event is not a request"
        ))),
    };
    let parsed = unless_unfit(parsed, body, settings, &[])?;
    Ok(Inbound::Delivery { id, event, parsed })
}

/// `value` (a part of the body named `what`) as `T`; absent is an error.
fn read<T: DeserializeOwned>(value: Option<&Value>, what: &str) -> Result<T, ParseError> {
    let value = value
        .filter(|v| !v.is_null())
        .ok_or_else(|| ParseError::new(format!("the body has no `{what}`")))?;
    fit(value, &format!("`{what}`"))
}

fn read_actor(envelope: &Envelope) -> Result<Option<Actor>, ParseError> {
    match envelope.actor.as_ref().filter(|a| !a.is_null()) {
        Some(actor) => read(Some(actor), "actor").map(Some),
        None => Ok(None),
    }
}

/// Why a change was made by an application (possibly the agent itself), or `None` for a person.
fn bot_reason(
    actor: Option<&Actor>,
    bot_actor: Option<&Value>,
    name: Option<&str>,
    settings: &ParseSettings,
) -> Option<String> {
    if let Some(kind) = actor.and_then(|a| a.kind.as_deref())
        && !kind.eq_ignore_ascii_case("user")
    {
        return Some(format!("made by an application (actor type {kind})"));
    }
    if bot_actor.is_some_and(|b| !b.is_null()) {
        return Some("made by an application (botActor)".to_string());
    }
    if name.is_some_and(|n| n.trim().eq_ignore_ascii_case(settings.bot_name())) {
        return Some("made by the agent's own account".to_string());
    }
    None
}

fn organization(envelope: &Envelope) -> Result<String, ParseError> {
    envelope
        .organization_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ParseError::new("the body has no `organizationId`"))
}

fn comment_created(envelope: &Envelope, settings: &ParseSettings) -> Result<Parsed, ParseError> {
    let data: CommentData = read(envelope.data.as_ref(), "data")?;
    let actor = read_actor(envelope)?;
    let user = data.user.as_ref();
    let sender_id = actor
        .as_ref()
        .and_then(|a| a.id.clone())
        .or_else(|| data.user_id.clone())
        .or_else(|| user.and_then(|u| u.id.clone()))
        .filter(|id| !id.is_empty());
    let sender_name = actor
        .as_ref()
        .and_then(|a| a.name.clone())
        .or_else(|| user.and_then(|u| u.name.clone()));
    if let Some(reason) = bot_reason(
        actor.as_ref(),
        data.bot_actor.as_ref(),
        sender_name.as_deref(),
        settings,
    ) {
        return Ok(Parsed::ignored(reason));
    }
    let text = data.body.unwrap_or_default();
    if !settings.is_mentioned_in(&text) {
        return Ok(Parsed::ignored(format!(
            "the comment does not mention {}",
            settings.mention_handle
        )));
    }
    let issue = data.issue.as_ref();
    let Some(issue_id) = data
        .issue_id
        .clone()
        .or_else(|| issue.and_then(|i| i.id.clone()))
    else {
        // Comments also belong to project updates and documents.
        return Ok(Parsed::ignored("the comment is not on an issue"));
    };
    let sender_id = sender_id.ok_or_else(|| ParseError::new("the comment has no author id"))?;
    let identifier = issue
        .and_then(|i| i.identifier.clone())
        .unwrap_or_else(|| issue_id.clone());
    Ok(Parsed::Request(Box::new(Request {
        provider: Provider::Linear,
        trigger: Trigger::Mention,
        sender: Sender {
            name: sender_name.unwrap_or_else(|| sender_id.clone()),
            id: sender_id,
        },
        place: Place::LinearIssue {
            organization_id: organization(envelope)?,
            issue_id,
            identifier,
            repository: None,
        },
        text,
        title: issue.and_then(|i| i.title.clone()),
        body: None,
        url: envelope.url.clone(),
        source_id: format!("comment-{}", data.id),
        images: Vec::new(),
    })))
}

fn issue_labeled(
    envelope: &Envelope,
    action: &str,
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    let data: IssueData = read(envelope.data.as_ref(), "data")?;
    let ours: Vec<&str> = data
        .labels
        .iter()
        .flatten()
        .filter(|label| settings.is_trigger_label(&label.name))
        .map(|label| label.id.as_str())
        .filter(|id| {
            // `labels` and `labelIds` both describe the issue now; trust either.
            data.label_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == id))
        })
        .collect();
    if ours.is_empty() {
        return Ok(Parsed::ignored(format!(
            "the issue does not have the {} label",
            settings.label
        )));
    }
    if action == "update" {
        let updated_from: Option<UpdatedFrom> = match envelope.updated_from.as_ref() {
            Some(value) if !value.is_null() => Some(read(Some(value), "updatedFrom")?),
            _ => None,
        };
        let Some(before) = updated_from.and_then(|u| u.label_ids) else {
            return Ok(Parsed::ignored("the update does not change the labels"));
        };
        if ours.iter().all(|id| before.iter().any(|b| b == id)) {
            return Ok(Parsed::ignored(format!(
                "the issue already had the {} label",
                settings.label
            )));
        }
    }
    let actor = read_actor(envelope)?;
    if let Some(reason) = bot_reason(
        actor.as_ref(),
        data.bot_actor.as_ref(),
        actor.as_ref().and_then(|a| a.name.as_deref()),
        settings,
    ) {
        return Ok(Parsed::ignored(reason));
    }
    let actor = actor.ok_or_else(|| ParseError::new("the body has no `actor`"))?;
    let sender_id = actor
        .id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ParseError::new("the actor has no `id`"))?;
    let at = envelope
        .webhook_timestamp
        .map(|ms| ms.to_string())
        .or(data.updated_at)
        .ok_or_else(|| {
            ParseError::new("the body has neither `webhookTimestamp` nor `updatedAt`")
        })?;
    Ok(Parsed::Request(Box::new(Request {
        provider: Provider::Linear,
        trigger: Trigger::Label,
        sender: Sender {
            name: actor.name.unwrap_or_else(|| sender_id.clone()),
            id: sender_id,
        },
        place: Place::LinearIssue {
            organization_id: organization(envelope)?,
            issue_id: data.id.clone(),
            identifier: data.identifier.unwrap_or_else(|| data.id.clone()),
            repository: None,
        },
        text: data.description.clone().unwrap_or_default(),
        title: data.title,
        body: data.description,
        url: envelope.url.clone().or(data.url),
        source_id: format!("issue-{}-labeled-{at}", data.id),
        images: Vec::new(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::test_support::{self as expect, fixture, json_of, to_bytes};
    use serde_json::json;

    const COMMENT: &[u8] = fixture!("linear/comment.create.json");
    const COMMENT_NO_MENTION: &[u8] = fixture!("linear/comment.create.no_mention.json");
    const COMMENT_BY_APP: &[u8] = fixture!("linear/comment.create.by_app.json");
    const LABEL_ADDED: &[u8] = fixture!("linear/issue.update.label_added.json");
    const LABEL_ALREADY_PRESENT: &[u8] = fixture!("linear/issue.update.label_already_present.json");
    const CREATED_LABELED: &[u8] = fixture!("linear/issue.create.labeled.json");

    const DELIVERY: &str = "3f1c2b8e-5d4a-4e6f-9b0c-7a8d9e0f1a2b";
    const ISSUE_ID: &str = "9cfb482a-81e3-4154-b5b9-2c805e70a02d";
    const DESCRIPTION: &str = "`test_checkout_retries` fails about one run in ten on CI.\n\nIt passes locally every time.";

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("linear-delivery", DELIVERY.parse().unwrap());
        headers
    }

    fn parse_default(body: &[u8]) -> Result<Inbound, ParseError> {
        parse(&headers(), body, &ParseSettings::default())
    }

    fn ignored_with(body: &[u8], settings: &ParseSettings) -> String {
        expect::ignored(expect::parsed(parse(&headers(), body, settings)))
    }

    fn ignored(body: &[u8]) -> String {
        ignored_with(body, &ParseSettings::default())
    }

    fn requested_with(body: &[u8], settings: &ParseSettings) -> Request {
        expect::request(expect::parsed(parse(&headers(), body, settings)))
    }

    fn requested(body: &[u8]) -> Request {
        requested_with(body, &ParseSettings::default())
    }

    fn eng_7() -> Place {
        Place::LinearIssue {
            organization_id: "org-1".into(),
            issue_id: ISSUE_ID.into(),
            identifier: "ENG-7".into(),
            repository: None,
        }
    }

    fn alice() -> Sender {
        Sender {
            id: "e5a3c1f0-6b2d-4c8e-9f7a-1d2e3f4a5b6c".into(),
            name: "Alice Example".into(),
        }
    }

    fn label_request(source_id: &str) -> Request {
        Request {
            provider: Provider::Linear,
            trigger: Trigger::Label,
            sender: alice(),
            place: eng_7(),
            text: DESCRIPTION.into(),
            title: Some("Flaky test: test_checkout_retries".into()),
            body: Some(DESCRIPTION.into()),
            url: Some(
                "https://linear.app/acme/issue/ENG-7/flaky-test-test_checkout_retries".into(),
            ),
            source_id: source_id.into(),
            images: Vec::new(),
        }
    }

    #[test]
    fn a_comment_that_mentions_the_handle_is_a_request() {
        assert_eq!(
            parse_default(COMMENT).unwrap(),
            Inbound::Delivery {
                id: DELIVERY.into(),
                event: "Comment.create".into(),
                parsed: Parsed::Request(Box::new(Request {
                    provider: Provider::Linear,
                    trigger: Trigger::Mention,
                    sender: alice(),
                    place: eng_7(),
                    text: "@openhands please fix the flaky test".into(),
                    title: Some("Flaky test: test_checkout_retries".into()),
                    body: None,
                    url: Some(
                        "https://linear.app/acme/issue/ENG-7/flaky-test-test_checkout_retries#comment-2174add1"
                            .into()
                    ),
                    source_id: "comment-2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9".into(),
                    images: Vec::new(),
                })),
            }
        );
    }

    #[test]
    fn a_comment_without_actor_or_identifier_falls_back_to_its_data() {
        let mut body = json_of(COMMENT);
        body.as_object_mut().unwrap().remove("actor");
        body["data"]["issue"]
            .as_object_mut()
            .unwrap()
            .remove("identifier");
        body["data"].as_object_mut().unwrap().remove("issueId");
        let request = requested(&to_bytes(&body));
        assert_eq!(request.sender, alice());
        assert_eq!(
            request.place,
            Place::LinearIssue {
                organization_id: "org-1".into(),
                issue_id: ISSUE_ID.into(),
                identifier: ISSUE_ID.into(),
                repository: None,
            }
        );

        // Without the user object, the id stands for the name.
        body["data"].as_object_mut().unwrap().remove("user");
        let request = requested(&to_bytes(&body));
        assert_eq!(
            request.sender,
            Sender {
                id: "e5a3c1f0-6b2d-4c8e-9f7a-1d2e3f4a5b6c".into(),
                name: "e5a3c1f0-6b2d-4c8e-9f7a-1d2e3f4a5b6c".into(),
            }
        );
    }

    #[test]
    fn adding_the_label_to_an_issue_is_a_request() {
        assert_eq!(
            parse_default(LABEL_ADDED).unwrap(),
            Inbound::Delivery {
                id: DELIVERY.into(),
                event: "Issue.update".into(),
                parsed: Parsed::Request(Box::new(label_request(&format!(
                    "issue-{ISSUE_ID}-labeled-1714568000456"
                )))),
            }
        );
        // Without a webhook timestamp, the update's time names the labelling.
        let mut body = json_of(LABEL_ADDED);
        body.as_object_mut().unwrap().remove("webhookTimestamp");
        assert_eq!(
            requested(&to_bytes(&body)).source_id,
            format!("issue-{ISSUE_ID}-labeled-2024-05-01T12:53:20.456Z")
        );
    }

    #[test]
    fn a_new_issue_with_the_label_is_a_request() {
        assert_eq!(
            parse_default(CREATED_LABELED).unwrap(),
            Inbound::Delivery {
                id: DELIVERY.into(),
                event: "Issue.create".into(),
                parsed: Parsed::Request(Box::new(label_request(&format!(
                    "issue-{ISSUE_ID}-labeled-1714550400789"
                )))),
            }
        );
    }

    #[test]
    fn issues_that_do_not_gain_the_label_are_ignored() {
        assert_eq!(
            ignored(LABEL_ALREADY_PRESENT),
            "the issue already had the openhands label"
        );
        // An update of something else (here the title) carries no `labelIds` in updatedFrom.
        let mut retitled = json_of(LABEL_ALREADY_PRESENT);
        retitled["updatedFrom"] =
            json!({"updatedAt": "2024-05-01T12:50:00.000Z", "title": "Flaky test"});
        assert_eq!(
            ignored(&to_bytes(&retitled)),
            "the update does not change the labels"
        );
        let mut no_updated_from = json_of(LABEL_ADDED);
        no_updated_from
            .as_object_mut()
            .unwrap()
            .remove("updatedFrom");
        assert_eq!(
            ignored(&to_bytes(&no_updated_from)),
            "the update does not change the labels"
        );
        // The label was removed: `labels` no longer lists it.
        let mut removed = json_of(LABEL_ADDED);
        removed["data"]["labelIds"] = json!(["4b0a2f5e-9c1d-4e7b-8a3f-6d5c4b3a2f1e"]);
        removed["data"]["labels"] = json!([{"id": "4b0a2f5e-9c1d-4e7b-8a3f-6d5c4b3a2f1e", "name": "Flaky test", "color": "#eb5757", "parentId": null}]);
        removed["updatedFrom"]["labelIds"] = json!([
            "4b0a2f5e-9c1d-4e7b-8a3f-6d5c4b3a2f1e",
            "a1d5c3e7-2b4f-4a6c-8e0d-9f1b3d5e7a9c"
        ]);
        assert_eq!(
            ignored(&to_bytes(&removed)),
            "the issue does not have the openhands label"
        );
        let mut created_without = json_of(CREATED_LABELED);
        created_without["data"]["labels"] = json!([]);
        created_without["data"]["labelIds"] = json!([]);
        assert_eq!(
            ignored(&to_bytes(&created_without)),
            "the issue does not have the openhands label"
        );
    }

    #[test]
    fn comments_without_a_prose_mention_are_ignored() {
        assert_eq!(
            ignored(COMMENT_NO_MENTION),
            "the comment does not mention @openhands"
        );
        for text in [
            "> @openhands please fix the flaky test\n\nI agree with this.",
            "```\n@openhands please fix the flaky test\n```",
            "Type `@openhands fix` to start it",
            "see @openhands-agent",
        ] {
            let mut body = json_of(COMMENT);
            body["data"]["body"] = json!(text);
            assert_eq!(
                ignored(&to_bytes(&body)),
                "the comment does not mention @openhands",
                "{text:?}"
            );
        }
        let mut body = json_of(COMMENT);
        body["data"]["body"] = json!("Hey @OpenHands, please fix the flaky test");
        assert_eq!(
            requested(&to_bytes(&body)).text,
            "Hey @OpenHands, please fix the flaky test"
        );
    }

    #[test]
    fn a_comment_that_is_not_on_an_issue_is_ignored() {
        let mut body = json_of(COMMENT);
        let data = body["data"].as_object_mut().unwrap();
        data.remove("issueId");
        data.remove("issue");
        data.insert(
            "projectUpdateId".into(),
            json!("0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a"),
        );
        assert_eq!(ignored(&to_bytes(&body)), "the comment is not on an issue");
    }

    #[test]
    fn changes_made_by_applications_or_the_agent_are_ignored() {
        assert_eq!(
            ignored(COMMENT_BY_APP),
            "made by an application (actor type oauthClient)"
        );
        // Without an actor, the comment's botActor tells.
        let mut bot_actor_only = json_of(COMMENT_BY_APP);
        bot_actor_only.as_object_mut().unwrap().remove("actor");
        assert_eq!(
            ignored(&to_bytes(&bot_actor_only)),
            "made by an application (botActor)"
        );
        let mut named_like_the_agent = json_of(COMMENT);
        named_like_the_agent["actor"]["name"] = json!("OpenHands");
        assert_eq!(
            ignored(&to_bytes(&named_like_the_agent)),
            "made by the agent's own account"
        );
        for kind in ["integration", "application"] {
            let mut labeled_by_app = json_of(LABEL_ADDED);
            labeled_by_app["actor"]["type"] = json!(kind);
            assert_eq!(
                ignored(&to_bytes(&labeled_by_app)),
                format!("made by an application (actor type {kind})")
            );
        }
        let mut created_by_app = json_of(CREATED_LABELED);
        created_by_app["data"]["botActor"] =
            json!({"id": "b07", "type": "oauthClient", "name": "Sentry"});
        assert_eq!(
            ignored(&to_bytes(&created_by_app)),
            "made by an application (botActor)"
        );
    }

    #[test]
    fn other_types_and_actions_are_ignored() {
        for (kind, action) in [
            ("Comment", "update"),
            ("Comment", "remove"),
            ("Issue", "remove"),
            ("Reaction", "create"),
            ("IssueLabel", "create"),
            ("Project", "update"),
        ] {
            let mut body = json_of(COMMENT);
            body["type"] = json!(kind);
            body["action"] = json!(action);
            body["data"] = json!({"id": "x", "shape": ["anything"]});
            assert_eq!(
                parse_default(&to_bytes(&body)).unwrap(),
                Inbound::Delivery {
                    id: DELIVERY.into(),
                    event: format!("{kind}.{action}"),
                    parsed: Parsed::Ignored(format!("the {kind}.{action} event is not a request")),
                }
            );
        }
    }

    #[test]
    fn a_custom_handle_and_label_are_used() {
        let settings = ParseSettings {
            mention_handle: "@DevBot".into(),
            label: "Agent".into(),
            account_mentions: Vec::new(),
        };
        assert_eq!(
            ignored_with(COMMENT, &settings),
            "the comment does not mention @DevBot"
        );
        let mut body = json_of(COMMENT);
        body["data"]["body"] = json!("@devbot fix it");
        assert_eq!(
            requested_with(&to_bytes(&body), &settings).text,
            "@devbot fix it"
        );
        body["actor"]["name"] = json!("devbot");
        assert_eq!(
            ignored_with(&to_bytes(&body), &settings),
            "made by the agent's own account"
        );

        assert_eq!(
            ignored_with(LABEL_ADDED, &settings),
            "the issue does not have the Agent label"
        );
        let mut labeled = json_of(LABEL_ADDED);
        labeled["data"]["labels"][1]["name"] = json!("agent");
        assert_eq!(
            requested_with(&to_bytes(&labeled), &settings).trigger,
            Trigger::Label
        );
    }

    #[test]
    fn missing_headers_and_malformed_bodies_are_errors() {
        assert_eq!(
            parse(&HeaderMap::new(), COMMENT, &ParseSettings::default()),
            Err(ParseError::new("the Linear-Delivery header is missing"))
        );
        let mut blank = HeaderMap::new();
        blank.insert("linear-delivery", "".parse().unwrap());
        assert!(parse(&blank, COMMENT, &ParseSettings::default()).is_err());

        let mut no_org = json_of(COMMENT);
        no_org.as_object_mut().unwrap().remove("organizationId");
        let mut no_data = json_of(COMMENT);
        no_data.as_object_mut().unwrap().remove("data");
        let mut data_is_text = json_of(LABEL_ADDED);
        data_is_text["data"] = json!("issue");
        let mut labels_are_text = json_of(LABEL_ADDED);
        labels_are_text["data"]["labels"] = json!("openhands");
        let mut bad_updated_from = json_of(LABEL_ADDED);
        bad_updated_from["updatedFrom"]["labelIds"] = json!("x");
        let mut actor_is_text = json_of(COMMENT);
        actor_is_text["actor"] = json!("alice");
        let mut no_author = json_of(COMMENT);
        no_author.as_object_mut().unwrap().remove("actor");
        no_author["data"].as_object_mut().unwrap().remove("userId");
        no_author["data"].as_object_mut().unwrap().remove("user");
        let mut no_actor = json_of(LABEL_ADDED);
        no_actor.as_object_mut().unwrap().remove("actor");
        let mut no_time = json_of(LABEL_ADDED);
        no_time.as_object_mut().unwrap().remove("webhookTimestamp");
        no_time["data"].as_object_mut().unwrap().remove("updatedAt");
        let mut no_action = json_of(COMMENT);
        no_action.as_object_mut().unwrap().remove("action");
        for body in [
            to_bytes(&no_org),
            to_bytes(&no_data),
            to_bytes(&data_is_text),
            to_bytes(&labels_are_text),
            to_bytes(&bad_updated_from),
            to_bytes(&actor_is_text),
            to_bytes(&no_author),
            to_bytes(&no_actor),
            to_bytes(&no_time),
            to_bytes(&no_action),
            b"".to_vec(),
            b"\xff\xfe".to_vec(),
            b"null".to_vec(),
            br#"{"type":"Comment"}"#.to_vec(),
            br#"{"type":["Comment"],"action":"create"}"#.to_vec(),
        ] {
            expect::assert_unfit(parse_default, &body);
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        for fixture in [
            COMMENT,
            COMMENT_NO_MENTION,
            COMMENT_BY_APP,
            LABEL_ADDED,
            LABEL_ALREADY_PRESENT,
            CREATED_LABELED,
        ] {
            // Every prefix and every flipped byte would take long on the larger fixtures.
            let step = fixture.len() / 500 + 1;
            for end in (0..fixture.len()).step_by(step) {
                let _ = parse_default(&fixture[..end]);
            }
            for at in (0..fixture.len()).step_by(step) {
                let mut bytes = fixture.to_vec();
                bytes[at] ^= 0xA5;
                let _ = parse_default(&bytes);
            }
        }
    }
}
