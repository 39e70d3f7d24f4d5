//! Jira webhooks, from Cloud and from Data Center (and Server): a new comment that mentions
//! the handle, or the trigger label added to an issue.
//!
//! The two editions send the same events in nearly the same shapes. Data Center names users
//! by `key` and `name` instead of an `accountId`, its `comment_created` carries no issue (the
//! same comment also arrives as a `jira:issue_updated` that has both), and it may leave out
//! the delivery id header.

use axum::http::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::Edition;
use crate::integrations::request::{
    Inbound, ParseError, ParseSettings, Parsed, Place, Request, Sender, Trigger, fit,
    required_header, unless_unfit,
};

/// Jira's id of one delivery; retries of it carry the same id.
pub const DELIVERY_HEADER: &str = "X-Atlassian-Webhook-Identifier";

#[derive(Deserialize)]
struct CommentEvent {
    comment: Comment,
    /// Always there from Cloud; never from Data Center.
    issue: Option<Issue>,
}

#[derive(Deserialize)]
struct IssueUpdatedEvent {
    timestamp: Option<i64>,
    user: Option<User>,
    issue: Issue,
    changelog: Option<Changelog>,
    /// Set when the update is a comment (Data Center sends each new comment this way too).
    comment: Option<Comment>,
    /// `issue_commented`, `issue_comment_edited`, `issue_updated`…; older versions leave it out.
    issue_event_type_name: Option<String>,
}

#[derive(Deserialize)]
struct Comment {
    id: String,
    author: Option<User>,
    /// Wiki markup (REST API v2 shape) or an Atlassian Document Format document.
    body: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    account_id: Option<String>,
    display_name: Option<String>,
    account_type: Option<String>,
    /// Jira Server and Data Center name users instead of giving account ids.
    name: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize)]
struct Issue {
    #[serde(rename = "self")]
    self_url: String,
    key: String,
    #[serde(default)]
    fields: Fields,
}

#[derive(Deserialize, Default)]
struct Fields {
    summary: Option<String>,
    description: Option<Value>,
}

#[derive(Deserialize)]
struct Changelog {
    #[serde(default)]
    items: Vec<ChangeItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeItem {
    field: Option<String>,
    from_string: Option<String>,
    to_string: Option<String>,
}

/// Parses a verified Jira Cloud webhook delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    parse_from(Edition::Cloud, headers, body, settings)
}

/// Parses a verified Jira Data Center (or Server) webhook delivery.
pub fn parse_data_center(
    headers: &HeaderMap,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    parse_from(Edition::DataCenter, headers, body, settings)
}

fn parse_from(
    edition: Edition,
    headers: &HeaderMap,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    let id = delivery_id(edition, headers, body)?;
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError::new(format!("the body is not JSON: {e}")))?;
    let event = payload
        .get("webhookEvent")
        .and_then(Value::as_str)
        .ok_or_else(|| ParseError::new("the body has no `webhookEvent`"))?
        .to_string();
    let parsed = match event.as_str() {
        "comment_created" => {
            read(&payload, &event).and_then(|e| comment_created(edition, e, settings))
        }
        "jira:issue_updated" => {
            read(&payload, &event).and_then(|e| issue_updated(edition, e, settings))
        }
        other => Ok(Parsed::ignored(format!(
            "the {other} event is not a request"
        ))),
    };
    let parsed = unless_unfit(parsed, body, settings, &[])?;
    Ok(Inbound::Delivery { id, event, parsed })
}

/// The delivery's id: Cloud always sends one; a Data Center delivery without one is named by
/// its body, which a retry repeats byte for byte and which differs between events (each
/// carries its own timestamp).
fn delivery_id(edition: Edition, headers: &HeaderMap, body: &[u8]) -> Result<String, ParseError> {
    if edition == Edition::DataCenter && headers.get(DELIVERY_HEADER).is_none() {
        return Ok(format!("body-sha256:{}", hex::encode(Sha256::digest(body))));
    }
    Ok(required_header(headers, DELIVERY_HEADER)?.to_string())
}

fn read<T: DeserializeOwned>(payload: &Value, event: &str) -> Result<T, ParseError> {
    fit(payload, &format!("{event} body"))
}

fn comment_created(
    edition: Edition,
    event: CommentEvent,
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    let CommentEvent { comment, issue } = event;
    let Some(issue) = issue else {
        if edition == Edition::DataCenter {
            return Ok(Parsed::ignored(
                "Jira Data Center's comment_created names no issue; the comment is read from the jira:issue_updated delivery that carries it",
            ));
        }
        return Err(ParseError::new("the comment_created body has no `issue`"));
    };
    comment_request(edition, issue, comment, settings)
}

/// The request of a comment on `issue` that mentions the agent.
fn comment_request(
    edition: Edition,
    issue: Issue,
    comment: Comment,
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    let author = comment
        .author
        .ok_or_else(|| ParseError::new("the comment has no `author`"))?;
    if let Some(reason) = bot_reason(&author, settings) {
        return Ok(Parsed::ignored(reason));
    }
    let body = comment
        .body
        .as_ref()
        .ok_or_else(|| ParseError::new("the comment has no `body`"))?;
    let text = rich_text(body, "comment.body")?;
    if !settings.is_mentioned_in(&wiki_prose(&text)) {
        return Ok(Parsed::ignored(format!(
            "the comment does not mention {}",
            settings.mention_handle
        )));
    }
    let source_id = format!("comment-{}", comment.id);
    request(
        edition,
        issue,
        author,
        Trigger::Mention,
        Some(text),
        source_id,
    )
}

fn issue_updated(
    edition: Edition,
    event: IssueUpdatedEvent,
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    // Data Center tells of a new comment through this event as well; Cloud's own
    // comment_created is what is read there, so that each comment counts once.
    let new_comment = event
        .issue_event_type_name
        .as_deref()
        .is_none_or(|kind| kind == "issue_commented");
    if edition == Edition::DataCenter
        && new_comment
        && let Some(comment) = event.comment
    {
        return comment_request(edition, event.issue, comment, settings);
    }
    let added = event
        .changelog
        .iter()
        .flat_map(|changelog| &changelog.items)
        .filter(|item| item.field.as_deref() == Some("labels"))
        .any(|item| {
            has_label(item.to_string.as_deref(), settings)
                && !has_label(item.from_string.as_deref(), settings)
        });
    if !added {
        return Ok(Parsed::ignored(format!(
            "the update does not add the {} label",
            settings.label
        )));
    }
    let user = event
        .user
        .ok_or_else(|| ParseError::new("the jira:issue_updated body has no `user`"))?;
    if let Some(reason) = bot_reason(&user, settings) {
        return Ok(Parsed::ignored(reason));
    }
    let timestamp = event
        .timestamp
        .ok_or_else(|| ParseError::new("the jira:issue_updated body has no `timestamp`"))?;
    let source_id = format!("issue-{}-labeled-{timestamp}", event.issue.key);
    request(edition, event.issue, user, Trigger::Label, None, source_id)
}

/// Whether a space-separated list of labels, as a changelog writes them, holds the trigger.
fn has_label(labels: Option<&str>, settings: &ParseSettings) -> bool {
    labels
        .unwrap_or_default()
        .split_whitespace()
        .any(|label| settings.is_trigger_label(label))
}

/// Why an account's action is the agent's own (or another app's), or `None` for a person.
fn bot_reason(user: &User, settings: &ParseSettings) -> Option<String> {
    if user.account_type.as_deref() == Some("app") {
        return Some("written by an app account".to_string());
    }
    if user
        .display_name
        .as_deref()
        .is_some_and(|name| name.trim().eq_ignore_ascii_case(settings.bot_name()))
    {
        return Some("written by the agent's own account".to_string());
    }
    None
}

/// The request about `issue`; `text` is the comment, or `None` to use the description.
fn request(
    edition: Edition,
    issue: Issue,
    user: User,
    trigger: Trigger,
    text: Option<String>,
    source_id: String,
) -> Result<Parsed, ParseError> {
    let site = site_of(&issue.self_url)?;
    let description = issue
        .fields
        .description
        .as_ref()
        .map(|d| rich_text(d, "issue.fields.description"))
        .transpose()?;
    // Data Center's `key` stays when a user is renamed; its `name` does not.
    let id = match edition {
        Edition::Cloud => user.account_id.or(user.key).or(user.name),
        Edition::DataCenter => user.key.or(user.name),
    }
    .filter(|id| !id.is_empty())
    .ok_or_else(|| match edition {
        Edition::Cloud => ParseError::new("the user has no `accountId`"),
        Edition::DataCenter => ParseError::new("the user has neither `key` nor `name`"),
    })?;
    let name = user.display_name.unwrap_or_else(|| id.clone());
    Ok(Parsed::Request(Box::new(Request {
        provider: edition.provider(),
        trigger,
        sender: Sender { id, name },
        text: text.or_else(|| description.clone()).unwrap_or_default(),
        title: issue.fields.summary,
        body: description,
        url: Some(format!("{site}/browse/{}", issue.key)),
        source_id,
        place: Place::JiraIssue {
            site,
            issue_key: issue.key,
            repository: None,
        },
        images: Vec::new(),
    })))
}

/// The site's base URL from an API link: `https://acme.atlassian.net/rest/api/2/10042` →
/// `https://acme.atlassian.net` (a Server/Data Center context path before `/rest/` is kept).
fn site_of(api_url: &str) -> Result<String, ParseError> {
    let invalid = || ParseError::new(format!("the issue's `self` is not a site URL: {api_url:?}"));
    let url = Url::parse(api_url).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid());
    }
    let context = url
        .path()
        .split_once("/rest/")
        .map_or("", |(before, _)| before)
        .trim_end_matches('/');
    Ok(format!("{}{context}", url.origin().ascii_serialization()))
}

/// A text field that is wiki markup (a string), or an Atlassian Document Format document
/// flattened to plain text. Null counts as empty.
fn rich_text(value: &Value, field: &str) -> Result<String, ParseError> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text.clone()),
        Value::Object(_) => Ok(adf::to_text(value)),
        _ => Err(ParseError::new(format!(
            "`{field}` is neither text nor an Atlassian document"
        ))),
    }
}

/// `text` without what wiki markup quotes or sets as code (`{quote}`, `{code}`, `{noformat}`,
/// `{{monospace}}`, `bq.` lines), so that a quoted mention does not ask again.
fn wiki_prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, open_len, closing)) = next_wiki_block(rest) {
        let Some((before, from_open)) = rest.split_at_checked(start) else {
            break;
        };
        let inside = from_open.get(open_len..).unwrap_or_default();
        match find_ascii_ci(inside, closing) {
            Some(end) => {
                out.push_str(before);
                out.push(' ');
                rest = inside.get(end + closing.len()..).unwrap_or_default();
            }
            // An unclosed block is shown as text by Jira.
            None => {
                out.push_str(before);
                out.push_str(from_open.get(..open_len).unwrap_or_default());
                rest = inside;
            }
        }
    }
    out.push_str(rest);
    out.lines()
        .filter(|line| !line.trim_start().starts_with("bq. "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The earliest quote or code opening in `text`: its byte offset, its length and the closing
/// that ends it.
fn next_wiki_block(text: &str) -> Option<(usize, usize, &'static str)> {
    let lower = text.to_ascii_lowercase();
    let mut best: Option<(usize, usize, &'static str)> = None;
    let mut consider = |found: Option<(usize, usize, &'static str)>| {
        if let Some(candidate) = found
            && best.is_none_or(|(at, _, _)| candidate.0 < at)
        {
            best = Some(candidate);
        }
    };
    consider(lower.find("{quote}").map(|at| (at, 7, "{quote}")));
    consider(lower.find("{{").map(|at| (at, 2, "}}")));
    for (macro_name, closing) in [("{code", "{code}"), ("{noformat", "{noformat}")] {
        // `{code}` or `{code:java}`; the opening tag ends at its `}`.
        let opening = lower.match_indices(macro_name).find_map(|(at, _)| {
            let after = lower.get(at + macro_name.len()..)?;
            if !(after.starts_with('}') || after.starts_with(':')) {
                return None;
            }
            let tag_end = after.find('}')?;
            Some((at, macro_name.len() + tag_end + 1, closing))
        });
        consider(opening);
    }
    best
}

/// The byte offset of `needle` (ASCII) in `haystack`, ignoring ASCII case.
fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(needle)
}

/// Atlassian Document Format (the JSON tree Jira Cloud's editor stores) as plain text, with
/// quotes and code kept recognisable (`> `, backticks) for mention checks.
mod adf {
    use serde_json::Value;

    const BLOCKS: &[&str] = &[
        "doc",
        "paragraph",
        "heading",
        "blockquote",
        "codeBlock",
        "bulletList",
        "orderedList",
        "listItem",
        "taskList",
        "taskItem",
        "decisionList",
        "decisionItem",
        "panel",
        "expand",
        "nestedExpand",
        "rule",
        "table",
        "tableRow",
        "tableHeader",
        "tableCell",
        "mediaSingle",
        "mediaGroup",
        "blockCard",
        "embedCard",
    ];

    pub fn to_text(node: &Value) -> String {
        render(node).trim_end().to_string()
    }

    fn kind(node: &Value) -> &str {
        node.get("type").and_then(Value::as_str).unwrap_or_default()
    }

    fn attr<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
        node.get("attrs")?.get(name)?.as_str()
    }

    fn children(node: &Value) -> &[Value] {
        node.get("content")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The children one after another: blocks on lines of their own, inline nodes run together.
    fn render_children(node: &Value, separator: &str) -> String {
        let nodes = children(node);
        if nodes.iter().any(|n| BLOCKS.contains(&kind(n))) {
            nodes.iter().map(render).collect::<Vec<_>>().join(separator)
        } else {
            nodes.iter().map(render).collect()
        }
    }

    fn prefix_lines(text: &str, first: &str, rest: &str) -> String {
        text.lines()
            .enumerate()
            .map(|(i, line)| format!("{}{line}", if i == 0 { first } else { rest }))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn render(node: &Value) -> String {
        match kind(node) {
            "text" => {
                let text = node.get("text").and_then(Value::as_str).unwrap_or_default();
                let is_code = node
                    .get("marks")
                    .and_then(Value::as_array)
                    .is_some_and(|marks| marks.iter().any(|m| kind(m) == "code"));
                if is_code {
                    format!("`{text}`")
                } else {
                    text.to_string()
                }
            }
            "hardBreak" => "\n".to_string(),
            "mention" | "emoji" | "status" => attr(node, "text")
                .or_else(|| attr(node, "shortName"))
                .unwrap_or_default()
                .to_string(),
            "inlineCard" | "blockCard" | "embedCard" => {
                attr(node, "url").unwrap_or_default().to_string()
            }
            "rule" => "---".to_string(),
            "codeBlock" => format!("```\n{}\n```", render_children(node, "\n")),
            "blockquote" => prefix_lines(&render_children(node, "\n"), "> ", "> "),
            "listItem" | "taskItem" | "decisionItem" => {
                prefix_lines(&render_children(node, "\n"), "- ", "  ")
            }
            "tableRow" => children(node)
                .iter()
                .map(|cell| render(cell).replace('\n', " "))
                .collect::<Vec<_>>()
                .join(" | "),
            "doc" => render_children(node, "\n\n"),
            _ => render_children(node, "\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::request::Provider;
    use crate::integrations::test_support::{self as expect, fixture, json_of, to_bytes};
    use serde_json::json;

    const COMMENT_CREATED: &[u8] = fixture!("jira/comment_created.json");
    const COMMENT_CREATED_ADF: &[u8] = fixture!("jira/comment_created.adf.json");
    const COMMENT_NO_MENTION: &[u8] = fixture!("jira/comment_created.no_mention.json");
    const COMMENT_BY_APP: &[u8] = fixture!("jira/comment_created.by_app.json");
    const LABEL_ADDED: &[u8] = fixture!("jira/issue_updated.label_added.json");
    const OTHER_FIELD: &[u8] = fixture!("jira/issue_updated.other_field.json");

    const DESCRIPTION: &str =
        "test_checkout_retries fails about one run in ten on CI.\n\nIt passes locally every time.";

    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-atlassian-webhook-identifier",
            "a5a0e8a3-1f6e-4c7e-9a41-2f3c9b8d7e61".parse().unwrap(),
        );
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

    fn with_comment(text: &str) -> Vec<u8> {
        let mut body = json_of(COMMENT_CREATED);
        body["comment"]["body"] = json!(text);
        to_bytes(&body)
    }

    fn alice() -> Sender {
        Sender {
            id: "5b10ac8d82e05b22cc7d4ef5".into(),
            name: "Alice Example".into(),
        }
    }

    fn eng_42() -> Place {
        Place::JiraIssue {
            site: "https://acme.atlassian.net".into(),
            issue_key: "ENG-42".into(),
            repository: None,
        }
    }

    #[test]
    fn a_comment_that_mentions_the_handle_is_a_request() {
        assert_eq!(
            parse_default(COMMENT_CREATED).unwrap(),
            Inbound::Delivery {
                id: "a5a0e8a3-1f6e-4c7e-9a41-2f3c9b8d7e61".into(),
                event: "comment_created".into(),
                parsed: Parsed::Request(Box::new(Request {
                    provider: Provider::Jira,
                    trigger: Trigger::Mention,
                    sender: alice(),
                    place: eng_42(),
                    text: "@openhands please fix the flaky test".into(),
                    title: Some("Flaky test: test_checkout_retries".into()),
                    body: Some(
                        "test_checkout_retries fails about one run in ten on CI.\n\nIt passes locally every time.\n\n{code:bash}\npytest tests/test_checkout.py -k retries\n{code}"
                            .into()
                    ),
                    url: Some("https://acme.atlassian.net/browse/ENG-42".into()),
                    source_id: "comment-10100".into(),
                    images: Vec::new(),
                })),
            }
        );
    }

    #[test]
    fn an_atlassian_document_description_is_flattened_to_text() {
        let request = requested(COMMENT_CREATED_ADF);
        assert_eq!(
            request,
            Request {
                provider: Provider::Jira,
                trigger: Trigger::Mention,
                sender: alice(),
                place: eng_42(),
                text: "@openhands please fix the flaky test".into(),
                title: Some("Flaky test: test_checkout_retries".into()),
                body: Some(
                    "test_checkout_retries fails about one run in ten on CI.\n\n\
                     It passes locally every time, see `retry_on_timeout`.\n\n\
                     ```\npytest tests/test_checkout.py -k retries\n```\n\n\
                     - Seen on main\n- Seen on release/2.3"
                        .into()
                ),
                url: Some("https://acme.atlassian.net/browse/ENG-42".into()),
                source_id: "comment-10101".into(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn an_atlassian_document_comment_with_a_mention_node_is_a_request() {
        let mut body = json_of(COMMENT_CREATED);
        body["comment"]["body"] = json!({
            "type": "doc",
            "version": 1,
            "content": [{
                "type": "paragraph",
                "content": [
                    {"type": "mention", "attrs": {"id": "712020:bot", "text": "@OpenHands", "accessLevel": ""}},
                    {"type": "text", "text": " please fix the flaky test"}
                ]
            }]
        });
        let request = requested(&to_bytes(&body));
        assert_eq!(request.text, "@OpenHands please fix the flaky test");

        body["comment"]["body"] = json!({
            "type": "doc",
            "version": 1,
            "content": [
                {"type": "blockquote", "content": [{"type": "paragraph", "content": [
                    {"type": "text", "text": "@openhands please fix the flaky test"}
                ]}]},
                {"type": "paragraph", "content": [{"type": "text", "text": "Agreed."}]}
            ]
        });
        assert_eq!(
            ignored(&to_bytes(&body)),
            "the comment does not mention @openhands"
        );
    }

    #[test]
    fn adding_the_label_is_a_request() {
        assert_eq!(
            parse_default(LABEL_ADDED).unwrap(),
            Inbound::Delivery {
                id: "a5a0e8a3-1f6e-4c7e-9a41-2f3c9b8d7e61".into(),
                event: "jira:issue_updated".into(),
                parsed: Parsed::Request(Box::new(Request {
                    provider: Provider::Jira,
                    trigger: Trigger::Label,
                    sender: Sender {
                        id: "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077".into(),
                        name: "Bob Builder".into(),
                    },
                    place: eng_42(),
                    text: DESCRIPTION.into(),
                    title: Some("Flaky test: test_checkout_retries".into()),
                    body: Some(DESCRIPTION.into()),
                    url: Some("https://acme.atlassian.net/browse/ENG-42".into()),
                    source_id: "issue-ENG-42-labeled-1714568000456".into(),
                    images: Vec::new(),
                })),
            }
        );
    }

    #[test]
    fn updates_that_do_not_add_the_label_are_ignored() {
        assert_eq!(
            ignored(OTHER_FIELD),
            "the update does not add the openhands label"
        );
        // The label was already there: another label was added next to it.
        let mut already = json_of(LABEL_ADDED);
        already["changelog"]["items"][0]["fromString"] = json!("openhands");
        already["changelog"]["items"][0]["toString"] = json!("flaky-test openhands");
        assert_eq!(
            ignored(&to_bytes(&already)),
            "the update does not add the openhands label"
        );
        // The label was removed.
        let mut removed = json_of(LABEL_ADDED);
        removed["changelog"]["items"][0]["fromString"] = json!("flaky-test openhands");
        removed["changelog"]["items"][0]["toString"] = json!("flaky-test");
        assert_eq!(
            ignored(&to_bytes(&removed)),
            "the update does not add the openhands label"
        );
        // A label that only contains the name.
        let mut similar = json_of(LABEL_ADDED);
        similar["changelog"]["items"][0]["toString"] = json!("flaky-test openhands-later");
        assert_eq!(
            ignored(&to_bytes(&similar)),
            "the update does not add the openhands label"
        );
        let mut no_changelog = json_of(LABEL_ADDED);
        no_changelog.as_object_mut().unwrap().remove("changelog");
        assert_eq!(
            ignored(&to_bytes(&no_changelog)),
            "the update does not add the openhands label"
        );
    }

    #[test]
    fn comments_without_a_prose_mention_are_ignored() {
        assert_eq!(
            ignored(COMMENT_NO_MENTION),
            "the comment does not mention @openhands"
        );
        for text in [
            "bq. @openhands please fix the flaky test\nI agree with this.",
            "{quote}@openhands please fix the flaky test{quote}\nSame here.",
            "{quote}\n@openhands please fix the flaky test\n{quote}",
            "{code:bash}\n@openhands please fix the flaky test\n{code}",
            "{noformat}@openhands fix{noformat} is what I typed",
            "Type {{@openhands fix}} to start it",
            "> @openhands please fix the flaky test",
            "```\n@openhands please fix the flaky test\n```",
            "mail me at me@openhands.dev",
        ] {
            assert_eq!(
                ignored(&with_comment(text)),
                "the comment does not mention @openhands",
                "{text:?}"
            );
        }
        for text in [
            "{quote}please fix it{quote}\n@openhands do what they said",
            "{code}make test{code} fails; @openhands can you look?",
            "an unclosed {quote} and @openhands",
            "Hey @OPENHANDS, please fix the flaky test",
        ] {
            assert_eq!(requested(&with_comment(text)).text, text, "{text:?}");
        }
    }

    #[test]
    fn comments_by_apps_or_the_agent_are_ignored() {
        assert_eq!(ignored(COMMENT_BY_APP), "written by an app account");
        let mut by_agent = json_of(COMMENT_CREATED);
        by_agent["comment"]["author"]["displayName"] = json!("OpenHands");
        assert_eq!(
            ignored(&to_bytes(&by_agent)),
            "written by the agent's own account"
        );
        let mut label_by_app = json_of(LABEL_ADDED);
        label_by_app["user"]["accountType"] = json!("app");
        assert_eq!(
            ignored(&to_bytes(&label_by_app)),
            "written by an app account"
        );
    }

    #[test]
    fn other_events_are_ignored() {
        for event in [
            "comment_updated",
            "comment_deleted",
            "jira:issue_created",
            "sprint_started",
        ] {
            let mut body = json_of(COMMENT_CREATED);
            body["webhookEvent"] = json!(event);
            assert_eq!(
                parse_default(&to_bytes(&body)).unwrap(),
                Inbound::Delivery {
                    id: "a5a0e8a3-1f6e-4c7e-9a41-2f3c9b8d7e61".into(),
                    event: event.into(),
                    parsed: Parsed::Ignored(format!("the {event} event is not a request")),
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
            requested_with(&with_comment("@devbot fix it"), &settings).text,
            "@devbot fix it"
        );
        assert_eq!(
            ignored_with(COMMENT_CREATED, &settings),
            "the comment does not mention @DevBot"
        );
        let mut by_bot = json_of(COMMENT_CREATED);
        by_bot["comment"]["body"] = json!("@devbot fix it");
        by_bot["comment"]["author"]["displayName"] = json!("devbot");
        assert_eq!(
            ignored_with(&to_bytes(&by_bot), &settings),
            "written by the agent's own account"
        );

        assert_eq!(
            ignored_with(LABEL_ADDED, &settings),
            "the update does not add the Agent label"
        );
        let mut labeled = json_of(LABEL_ADDED);
        labeled["changelog"]["items"][0]["toString"] = json!("flaky-test agent");
        assert_eq!(
            requested_with(&to_bytes(&labeled), &settings).trigger,
            Trigger::Label
        );
    }

    #[test]
    fn the_site_keeps_a_context_path_and_rejects_non_urls() {
        assert_eq!(
            site_of("https://acme.atlassian.net/rest/api/2/10042").unwrap(),
            "https://acme.atlassian.net"
        );
        assert_eq!(
            site_of("https://jira.example.com:8443/jira/rest/api/2/issue/10042").unwrap(),
            "https://jira.example.com:8443/jira"
        );
        for bad in [
            "",
            "acme.atlassian.net/rest/api/2/1",
            "mailto:a@b.c",
            "file:///etc/passwd",
        ] {
            assert!(site_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_headers_and_malformed_bodies_are_errors() {
        assert_eq!(
            parse(
                &HeaderMap::new(),
                COMMENT_CREATED,
                &ParseSettings::default()
            ),
            Err(ParseError::new(
                "the X-Atlassian-Webhook-Identifier header is missing"
            ))
        );
        let mut blank = HeaderMap::new();
        blank.insert("x-atlassian-webhook-identifier", " ".parse().unwrap());
        assert!(parse(&blank, COMMENT_CREATED, &ParseSettings::default()).is_err());

        let mut no_event = json_of(COMMENT_CREATED);
        no_event.as_object_mut().unwrap().remove("webhookEvent");
        let mut no_issue = json_of(COMMENT_CREATED);
        no_issue.as_object_mut().unwrap().remove("issue");
        let mut no_author = json_of(COMMENT_CREATED);
        no_author["comment"]
            .as_object_mut()
            .unwrap()
            .remove("author");
        let mut body_is_a_number = json_of(COMMENT_CREATED);
        body_is_a_number["comment"]["body"] = json!(7);
        let mut bad_self = json_of(COMMENT_CREATED);
        bad_self["issue"]["self"] = json!("not a url");
        let mut description_is_a_list = json_of(COMMENT_CREATED);
        description_is_a_list["issue"]["fields"]["description"] = json!(["a"]);
        let mut no_timestamp = json_of(LABEL_ADDED);
        no_timestamp.as_object_mut().unwrap().remove("timestamp");
        let mut no_user = json_of(LABEL_ADDED);
        no_user.as_object_mut().unwrap().remove("user");
        for body in [
            to_bytes(&no_event),
            to_bytes(&no_issue),
            to_bytes(&no_author),
            to_bytes(&body_is_a_number),
            to_bytes(&bad_self),
            to_bytes(&description_is_a_list),
            to_bytes(&no_timestamp),
            to_bytes(&no_user),
            b"".to_vec(),
            b"<xml/>".to_vec(),
            b"[1,2]".to_vec(),
            br#"{"webhookEvent":5}"#.to_vec(),
            br#"{"webhookEvent":"comment_created","comment":"hi"}"#.to_vec(),
        ] {
            expect::assert_unfit(parse_default, &body);
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        for fixture in [
            COMMENT_CREATED,
            COMMENT_CREATED_ADF,
            COMMENT_NO_MENTION,
            COMMENT_BY_APP,
            LABEL_ADDED,
            OTHER_FIELD,
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
        for text in [
            "{",
            "{{",
            "}}",
            "{code",
            "{code:",
            "{code}",
            "{quote",
            "{noformat:x",
            "é{{é}}é",
            "{CODE:java}x{Code}",
            "bq.",
            "İ{quote}İ{quote}İ",
        ] {
            let _ = parse_default(&with_comment(text));
            let _ = wiki_prose(text);
        }
        // Documents of any shape.
        for doc in [
            json!({}),
            json!({"type": "doc"}),
            json!({"type": "doc", "content": "x"}),
            json!({"type": "doc", "content": [1, null, {"type": 3}, {"type": "text"}]}),
            json!({"type": "tableRow", "content": [{"type": "tableCell"}]}),
            json!({"type": "mention", "attrs": 5}),
        ] {
            let _ = adf::to_text(&doc);
        }
    }

    // Jira Data Center, on payloads published by others (see tests/fixtures/PUBLISHED.md).
    const DC_COMMENTED: &[u8] =
        fixture!("jira-dc/published/issue_updated.jira-trigger-plugin.with_comment.json");
    const DC_COMMENT_CREATED: &[u8] =
        fixture!("jira-dc/published/comment_created.mattermost-plugin-jira.server.json");

    fn dc_commented(text: &str) -> Vec<u8> {
        let mut body = json_of(DC_COMMENTED);
        body["comment"]["body"] = json!(text);
        to_bytes(&body)
    }

    fn dc_parse(body: &[u8], settings: &ParseSettings) -> Parsed {
        expect::parsed(parse_data_center(&HeaderMap::new(), body, settings))
    }

    #[test]
    fn a_data_center_comment_arrives_as_an_issue_update_and_names_users_by_key() {
        let text = "@openhands the {{retry}} test fails, please fix it";
        let request = expect::request(dc_parse(&dc_commented(text), &ParseSettings::default()));
        assert_eq!(
            request,
            Request {
                provider: Provider::JiraDc,
                trigger: Trigger::Mention,
                sender: Sender {
                    id: "admin".into(),
                    name: "admin".into(),
                },
                place: Place::JiraIssue {
                    site: "http://localhost:2990/jira".into(),
                    issue_key: "TEST-4".into(),
                    repository: None,
                },
                text: text.into(),
                title: Some("a".into()),
                body: None,
                url: Some("http://localhost:2990/jira/browse/TEST-4".into()),
                source_id: "comment-10000".into(),
                images: Vec::new(),
            }
        );
        // Unchanged, the published comment asks for nothing; quoted, neither does a mention.
        assert_eq!(
            expect::ignored(dc_parse(DC_COMMENTED, &ParseSettings::default())),
            "the comment does not mention @openhands"
        );
        assert_eq!(
            expect::ignored(dc_parse(
                &dc_commented("{quote}@openhands fix it{quote} was my idea"),
                &ParseSettings::default()
            )),
            "the comment does not mention @openhands"
        );
        // An edit of a comment is not a new request; Cloud reads comments from comment_created.
        let mut edited = json_of(&dc_commented(text));
        edited["issue_event_type_name"] = json!("issue_comment_edited");
        assert_eq!(
            expect::ignored(dc_parse(&to_bytes(&edited), &ParseSettings::default())),
            "the update does not add the openhands label"
        );
        assert_eq!(
            ignored(&dc_commented(text)),
            "the update does not add the openhands label"
        );
    }

    #[test]
    fn a_data_center_mention_picked_from_the_menu_asks() {
        let settings = ParseSettings {
            account_mentions: vec![crate::integrations::jira::mention_of(
                Edition::DataCenter,
                "openhands-bot",
            )],
            ..ParseSettings::default()
        };
        let picked = dc_commented("[~openhands-bot] please fix the flaky test");
        assert_eq!(
            expect::request(dc_parse(&picked, &settings)).text,
            "[~openhands-bot] please fix the flaky test"
        );
        for inert in [
            "[~alice] please fix the flaky test",
            "{code}[~openhands-bot] fix{code}",
            "bq. [~openhands-bot] please fix the flaky test",
        ] {
            assert_eq!(
                expect::ignored(dc_parse(&dc_commented(inert), &settings)),
                "the comment does not mention @openhands",
                "{inert:?}"
            );
        }
    }

    #[test]
    fn a_data_center_comment_created_without_its_issue_is_left_to_the_update() {
        let mut mentioned = json_of(DC_COMMENT_CREATED);
        mentioned["comment"]["body"] = json!("@openhands please fix it");
        for body in [DC_COMMENT_CREATED.to_vec(), to_bytes(&mentioned)] {
            assert!(
                expect::ignored(dc_parse(&body, &ParseSettings::default()))
                    .contains("the comment is read from the jira:issue_updated delivery"),
            );
        }
        // From Cloud the same body lacks what it must carry.
        expect::assert_unfit(parse_default, &to_bytes(&mentioned));
    }

    #[test]
    fn a_data_center_delivery_without_an_id_header_is_named_by_its_body() {
        let first = expect::delivery(
            parse_data_center(&HeaderMap::new(), DC_COMMENTED, &ParseSettings::default()),
            &format!("body-sha256:{}", hex::encode(Sha256::digest(DC_COMMENTED))),
        );
        assert_eq!(first.0, "jira:issue_updated");
        // A header, when Jira sends one, wins; Cloud requires it.
        expect::delivery(
            parse_data_center(&headers(), DC_COMMENTED, &ParseSettings::default()),
            "a5a0e8a3-1f6e-4c7e-9a41-2f3c9b8d7e61",
        );
        assert!(parse(&HeaderMap::new(), DC_COMMENTED, &ParseSettings::default()).is_err());
    }
}
