//! Turning a verified GitHub delivery into a request: an issue or pull request labeled with the
//! trigger label, or a new issue, comment or review that mentions the handle.

use axum::http::HeaderMap;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

use super::images;
use crate::integrations::mention::mentions;
use crate::integrations::request::{
    Inbound, ParseError, ParseSettings, Parsed, Place, Provider, Request, ReviewThread, Sender,
    Trigger, fit, required_header, unless_unfit,
};

pub const EVENT_HEADER: &str = "X-GitHub-Event";
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

/// Why a delivery without an installation cannot be answered.
const NO_INSTALLATION: &str = "the payload has no installation: the webhook must come from the \
     GitHub App's installation, not from a repository or organization webhook, so that the agent \
     can answer";

/// Reads a delivery whose signature has been verified.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Inbound, ParseError> {
    let event = required_header(headers, EVENT_HEADER)?;
    let id = required_header(headers, DELIVERY_HEADER)?;
    let envelope = envelope(headers, body)?;
    let action = envelope
        .action
        .as_ref()
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|action| !action.is_empty());
    let name = match action {
        Some(action) => format!("{event}.{action}"),
        None => event.to_string(),
    };
    let parsed = unless_unfit(
        classify(event, action, &name, body, settings),
        body,
        settings,
        &[],
    )?;
    Ok(Inbound::Delivery {
        id: id.to_string(),
        event: name,
        parsed,
    })
}

/// What the event asks for; `name` is the event with its action.
fn classify(
    event: &str,
    action: Option<&str>,
    name: &str,
    body: &[u8],
    settings: &ParseSettings,
) -> Result<Parsed, ParseError> {
    let parsed = match (event, action.unwrap_or_default()) {
        ("ping", _) => Parsed::ignored("ping: the webhook is set up"),
        ("issues", "labeled") => issue_labeled(payload(event, body)?, settings),
        ("issues", "opened") => issue_opened(payload(event, body)?, settings),
        ("pull_request", "labeled") => pull_request_labeled(payload(event, body)?, settings),
        ("issue_comment", "created") => issue_comment(payload(event, body)?, settings),
        ("pull_request_review", "submitted") => review(payload(event, body)?, settings),
        ("pull_request_review_comment", "created") => {
            review_comment(payload(event, body)?, settings)
        }
        (
            "issues"
            | "pull_request"
            | "issue_comment"
            | "pull_request_review"
            | "pull_request_review_comment",
            _,
        ) => Parsed::Ignored(format!("`{name}` does not ask the agent for anything")),
        _ => Parsed::Ignored(format!(
            "event `{event}` does not ask the agent for anything"
        )),
    };
    Ok(parsed)
}

/// What every delivery is read for first: its action. The rest of the body is only checked to
/// be JSON here, not kept, since most deliveries ask for nothing.
#[derive(Deserialize)]
struct Envelope {
    action: Option<Value>,
}

/// The body's envelope, when the body is a JSON object. GitHub can also send the payload
/// form-encoded, which is refused with what to change.
fn envelope(headers: &HeaderMap, body: &[u8]) -> Result<Envelope, ParseError> {
    let form_encoded = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
        || body.trim_ascii_start().starts_with(b"payload=");
    if form_encoded {
        return Err(ParseError::new(
            "the body is form-encoded (application/x-www-form-urlencoded): set the webhook's \
             content type to application/json",
        ));
    }
    if body.trim_ascii().is_empty() {
        return Err(ParseError::new("the body is empty"));
    }
    // A JSON array would also fill a struct, field by field.
    let is_object = body.trim_ascii_start().starts_with(b"{");
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) if is_object => Ok(envelope),
        Ok(_) => Err(ParseError::new("the body is JSON but not an object")),
        Err(error) if error.is_syntax() || error.is_eof() || !is_object => {
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Err(ParseError::new("the body is JSON but not an object")),
                Err(error) => Err(ParseError::new(format!(
                    "the body is not valid JSON: {error}"
                ))),
            }
        }
        // `action` of another type: read as no action.
        Err(_) => Ok(Envelope { action: None }),
    }
}

/// The body as the event's payload. Read in two passes, the common part and the event's own,
/// each skipping what it does not need: cheaper than buffering the whole body to split it.
fn payload<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<Delivery<T>, ParseError> {
    let what = format!("{event} payload");
    let common: Common = fit(&mut serde_json::Deserializer::from_slice(body), &what)?;
    let event: T = fit(&mut serde_json::Deserializer::from_slice(body), &what)?;
    Ok(Delivery {
        repository: common.repository,
        sender: common.sender,
        installation: common.installation,
        event,
    })
}

/// What every payload that can ask carries.
#[derive(Deserialize)]
struct Common {
    repository: Repository,
    sender: Account,
    installation: Option<Installation>,
}

/// A payload that can ask: the common part and the event's own fields.
struct Delivery<T> {
    repository: Repository,
    sender: Account,
    installation: Option<Installation>,
    event: T,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct Account {
    id: u64,
    login: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: Option<String>,
    body: Option<String>,
    html_url: Option<String>,
    updated_at: Option<String>,
    /// Present when the issue is a pull request.
    pull_request: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct PullRequest {
    number: u64,
    title: Option<String>,
    body: Option<String>,
    html_url: Option<String>,
    updated_at: Option<String>,
    head: Option<Head>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    branch: Option<String>,
}

impl PullRequest {
    fn branch(&self) -> Option<String> {
        self.head.as_ref().and_then(|head| head.branch.clone())
    }
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    body: Option<String>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct Review {
    id: u64,
    body: Option<String>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct ReviewComment {
    id: u64,
    body: Option<String>,
    html_url: Option<String>,
    path: String,
    line: Option<u64>,
    original_line: Option<u64>,
    diff_hunk: Option<String>,
    /// The thread's first comment, for a reply; GitHub answers only on a thread's first comment.
    in_reply_to_id: Option<u64>,
}

#[derive(Deserialize)]
struct IssueEvent {
    issue: Issue,
}

#[derive(Deserialize)]
struct IssueLabeledEvent {
    issue: Issue,
    label: Label,
}

#[derive(Deserialize)]
struct PullRequestLabeledEvent {
    pull_request: PullRequest,
    label: Label,
}

#[derive(Deserialize)]
struct IssueCommentEvent {
    issue: Issue,
    comment: Comment,
}

#[derive(Deserialize)]
struct ReviewEvent {
    review: Review,
    pull_request: PullRequest,
}

#[derive(Deserialize)]
struct ReviewCommentEvent {
    comment: ReviewComment,
    pull_request: PullRequest,
}

/// Where in the repository the request was made.
enum Target {
    Issue,
    PullRequest {
        branch: Option<String>,
        review: Option<ReviewThread>,
    },
}

impl Target {
    fn of_issue(issue: &Issue) -> Self {
        if issue.pull_request.is_some() {
            Self::PullRequest {
                branch: None,
                review: None,
            }
        } else {
            Self::Issue
        }
    }
}

/// What an event asks, before the checks every request shares.
struct Asked {
    trigger: Trigger,
    target: Target,
    number: u64,
    text: String,
    title: Option<String>,
    body: Option<String>,
    url: Option<String>,
    source_id: String,
}

/// The request, unless a bot sent it, it does not ask (`ask` says why), or it cannot be
/// answered.
fn request<T>(
    delivery: Delivery<T>,
    settings: &ParseSettings,
    ask: impl FnOnce(T) -> Result<Asked, String>,
) -> Parsed {
    if let Some(reason) = from_bot(&delivery.sender, settings) {
        return Parsed::Ignored(reason);
    }
    let asked = match ask(delivery.event) {
        Ok(asked) => asked,
        Err(reason) => return Parsed::Ignored(reason),
    };
    let Some(installation) = delivery.installation else {
        return Parsed::ignored(NO_INSTALLATION);
    };
    let repository = delivery.repository.full_name;
    let place = match asked.target {
        Target::Issue => Place::GithubIssue {
            installation_id: installation.id,
            repository,
            number: asked.number,
        },
        Target::PullRequest { branch, review } => Place::GithubPullRequest {
            installation_id: installation.id,
            repository,
            number: asked.number,
            branch,
            review,
        },
    };
    let images = images::attached_images(&asked.text);
    Parsed::Request(Box::new(Request {
        provider: Provider::Github,
        trigger: asked.trigger,
        sender: Sender {
            id: delivery.sender.id.to_string(),
            name: delivery.sender.login,
        },
        place,
        text: asked.text,
        title: asked.title,
        body: asked.body,
        url: asked.url,
        images,
        source_id: asked.source_id,
    }))
}

/// How `source_id` begins for a comment, a review comment and a review; it is `issue-N-…` for
/// an issue or pull request itself (opened or labeled).
const ISSUE_COMMENT_SOURCE: &str = "issue-comment-";
const REVIEW_COMMENT_SOURCE: &str = "review-comment-";
const REVIEW_SOURCE: &str = "review-";
const ISSUE_SOURCE: &str = "issue-";

/// The REST route of what asked (the comment, review, issue or pull request whose text it
/// is), from the request's `source_id`: GitHub renders it there, with its images' links.
pub fn rendered_route(repository: &str, number: u64, source_id: &str) -> Option<String> {
    let id_after = |prefix: &str| {
        source_id
            .strip_prefix(prefix)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(id) = id_after(ISSUE_COMMENT_SOURCE) {
        Some(format!("/repos/{repository}/issues/comments/{id}"))
    } else if let Some(id) = id_after(REVIEW_COMMENT_SOURCE) {
        Some(format!("/repos/{repository}/pulls/comments/{id}"))
    } else if let Some(id) = id_after(REVIEW_SOURCE) {
        Some(format!("/repos/{repository}/pulls/{number}/reviews/{id}"))
    } else {
        source_id
            .starts_with(ISSUE_SOURCE)
            .then(|| format!("/repos/{repository}/issues/{number}"))
    }
}

/// Why the agent does not answer `sender`, when it is a bot: its own account or another app's,
/// which would otherwise answer each other in a loop.
fn from_bot(sender: &Account, settings: &ParseSettings) -> Option<String> {
    let login = sender.login.trim();
    let is_bot = sender.kind.as_deref() == Some("Bot")
        || login.to_ascii_lowercase().ends_with("[bot]")
        || login.eq_ignore_ascii_case(settings.bot_name());
    is_bot.then(|| format!("sent by the bot `{login}`; the agent does not answer bots"))
}

fn label_check(label: &Label, settings: &ParseSettings) -> Result<(), String> {
    if settings.is_trigger_label(&label.name) {
        Ok(())
    } else {
        Err(format!(
            "the label `{}` is not the trigger label `{}`",
            label.name, settings.label
        ))
    }
}

fn mention_check(text: &str, what: &str, settings: &ParseSettings) -> Result<(), String> {
    if mentions(text, &settings.mention_handle) {
        Ok(())
    } else {
        Err(format!(
            "{what} without a mention of {}",
            settings.mention_handle
        ))
    }
}

/// The same for every delivery of one labeling, and different when the label is removed and
/// added again later (the item's `updated_at` is the time of the labeling). Pull requests are
/// numbered with issues, so an `issues.labeled` and a `pull_request.labeled` about the same
/// labeling name the same item.
fn labeled_id(number: u64, label: &Label, updated_at: Option<&str>) -> String {
    let label = label.name.trim();
    match updated_at.map(str::trim).filter(|at| !at.is_empty()) {
        Some(at) => format!("{ISSUE_SOURCE}{number}-labeled-{label}-at-{at}"),
        None => format!("{ISSUE_SOURCE}{number}-labeled-{label}"),
    }
}

fn issue_labeled(delivery: Delivery<IssueLabeledEvent>, settings: &ParseSettings) -> Parsed {
    request(delivery, settings, |event| {
        label_check(&event.label, settings)?;
        let issue = event.issue;
        Ok(Asked {
            trigger: Trigger::Label,
            target: Target::of_issue(&issue),
            number: issue.number,
            text: issue.body.clone().unwrap_or_default(),
            source_id: labeled_id(issue.number, &event.label, issue.updated_at.as_deref()),
            title: issue.title,
            body: issue.body,
            url: issue.html_url,
        })
    })
}

fn issue_opened(delivery: Delivery<IssueEvent>, settings: &ParseSettings) -> Parsed {
    request(delivery, settings, |event| {
        let issue = event.issue;
        let text = issue.body.clone().unwrap_or_default();
        mention_check(&text, "a new issue", settings)?;
        Ok(Asked {
            trigger: Trigger::Mention,
            target: Target::of_issue(&issue),
            number: issue.number,
            text,
            source_id: format!("{ISSUE_SOURCE}{}-opened", issue.number),
            title: issue.title,
            body: issue.body,
            url: issue.html_url,
        })
    })
}

fn pull_request_labeled(
    delivery: Delivery<PullRequestLabeledEvent>,
    settings: &ParseSettings,
) -> Parsed {
    request(delivery, settings, |event| {
        label_check(&event.label, settings)?;
        let pull = event.pull_request;
        Ok(Asked {
            trigger: Trigger::Label,
            target: Target::PullRequest {
                branch: pull.branch(),
                review: None,
            },
            number: pull.number,
            text: pull.body.clone().unwrap_or_default(),
            source_id: labeled_id(pull.number, &event.label, pull.updated_at.as_deref()),
            title: pull.title,
            body: pull.body,
            url: pull.html_url,
        })
    })
}

fn issue_comment(delivery: Delivery<IssueCommentEvent>, settings: &ParseSettings) -> Parsed {
    request(delivery, settings, |event| {
        let comment = event.comment;
        let text = comment.body.unwrap_or_default();
        mention_check(&text, "issue_comment", settings)?;
        let issue = event.issue;
        Ok(Asked {
            trigger: Trigger::Mention,
            target: Target::of_issue(&issue),
            number: issue.number,
            text,
            title: issue.title,
            body: issue.body,
            url: comment.html_url.or(issue.html_url),
            source_id: format!("{ISSUE_COMMENT_SOURCE}{}", comment.id),
        })
    })
}

fn review(delivery: Delivery<ReviewEvent>, settings: &ParseSettings) -> Parsed {
    request(delivery, settings, |event| {
        let review = event.review;
        let text = review.body.unwrap_or_default();
        mention_check(&text, "pull_request_review", settings)?;
        let pull = event.pull_request;
        Ok(Asked {
            trigger: Trigger::Mention,
            target: Target::PullRequest {
                branch: pull.branch(),
                review: None,
            },
            number: pull.number,
            text,
            title: pull.title,
            body: pull.body,
            url: review.html_url.or(pull.html_url),
            source_id: format!("{REVIEW_SOURCE}{}", review.id),
        })
    })
}

fn review_comment(delivery: Delivery<ReviewCommentEvent>, settings: &ParseSettings) -> Parsed {
    request(delivery, settings, |event| {
        let comment = event.comment;
        let text = comment.body.unwrap_or_default();
        mention_check(&text, "pull_request_review_comment", settings)?;
        let pull = event.pull_request;
        let thread = ReviewThread {
            path: comment.path,
            line: comment.line.or(comment.original_line),
            diff_hunk: comment.diff_hunk,
            reply_to: comment.in_reply_to_id.unwrap_or(comment.id).to_string(),
        };
        Ok(Asked {
            trigger: Trigger::Mention,
            target: Target::PullRequest {
                branch: pull.branch(),
                review: Some(thread),
            },
            number: pull.number,
            text,
            title: pull.title,
            body: pull.body,
            url: comment.html_url.or(pull.html_url),
            source_id: format!("{REVIEW_COMMENT_SOURCE}{}", comment.id),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_asked_is_read_again_where_github_renders_it() {
        let route = |source: &str| rendered_route("o/r", 7, source);
        assert_eq!(
            route("issue-comment-12").as_deref(),
            Some("/repos/o/r/issues/comments/12")
        );
        assert_eq!(
            route("review-comment-13").as_deref(),
            Some("/repos/o/r/pulls/comments/13")
        );
        assert_eq!(
            route("review-14").as_deref(),
            Some("/repos/o/r/pulls/7/reviews/14")
        );
        assert_eq!(
            route("issue-7-opened").as_deref(),
            Some("/repos/o/r/issues/7")
        );
        assert_eq!(route("review-../x"), None);
        assert_eq!(route("push-1"), None);
    }
    use crate::integrations::test_support::{self as expect, edited, fixture};

    const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const REPOSITORY: &str = "octo-org/hello-world";

    const PING: &[u8] = fixture!("github/ping.json");
    const ISSUES_LABELED: &[u8] = fixture!("github/issues.labeled.json");
    const ISSUES_OPENED: &[u8] = fixture!("github/issues.opened.json");
    const ISSUE_COMMENT: &[u8] = fixture!("github/issue_comment.created.json");
    const PR_COMMENT: &[u8] = fixture!("github/issue_comment.created.pull_request.json");
    const BOT_COMMENT: &[u8] = fixture!("github/issue_comment.created.bot.json");
    const PR_LABELED: &[u8] = fixture!("github/pull_request.labeled.json");
    const REVIEW: &[u8] = fixture!("github/pull_request_review.submitted.json");
    const REVIEW_COMMENT: &[u8] = fixture!("github/pull_request_review_comment.created.json");
    const PUSH: &[u8] = fixture!("github/push.json");

    const ISSUE_17_BODY: &str = "The `parser::tests::handles_empty_input` test fails on `main` \
        since #12:\n\n```\nthread 'parser::tests::handles_empty_input' panicked at \
        src/parser.rs:88:9:\nindex out of bounds: the len is 0 but the index is 0\n```\n\n\
        Steps to reproduce: run `cargo test parser::`.";
    const PR_21_TITLE: &str = "Return an error on empty input instead of panicking";
    const PR_21_BODY: &str = "Fixes #17.\n\n`parse` indexed into the token list without \
        checking that it was non-empty. This returns an error instead and adds a regression \
        test.";

    fn headers(event: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", event.parse().unwrap());
        headers.insert("x-github-delivery", DELIVERY.parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("user-agent", "GitHub-Hookshot/a1b2c3d".parse().unwrap());
        headers
    }

    /// The delivery's event name and what it asks, under `settings`.
    fn delivery_with(event: &str, body: &[u8], settings: &ParseSettings) -> (String, Parsed) {
        expect::delivery(parse(&headers(event), body, settings), DELIVERY)
    }

    fn parsed(event: &str, body: &[u8]) -> Parsed {
        delivery_with(event, body, &ParseSettings::default()).1
    }

    fn request_with(event: &str, body: &[u8], settings: &ParseSettings) -> Request {
        expect::request(delivery_with(event, body, settings).1)
    }

    fn request(event: &str, body: &[u8]) -> Request {
        request_with(event, body, &ParseSettings::default())
    }

    fn ignored_with(event: &str, body: &[u8], settings: &ParseSettings) -> String {
        expect::ignored(delivery_with(event, body, settings).1)
    }

    fn ignored(event: &str, body: &[u8]) -> String {
        ignored_with(event, body, &ParseSettings::default())
    }

    fn error(headers: &HeaderMap, body: &[u8]) -> String {
        expect::error(parse(headers, body, &ParseSettings::default()))
    }

    fn mona() -> Sender {
        Sender {
            id: "5678901".to_string(),
            name: "mona".to_string(),
        }
    }

    fn pull_request_21(review: Option<ReviewThread>) -> Place {
        Place::GithubPullRequest {
            installation_id: 4242,
            repository: REPOSITORY.to_string(),
            number: 21,
            branch: Some("fix/empty-input".to_string()),
            review,
        }
    }

    #[test]
    fn ping_is_acknowledged_and_ignored() {
        let (event, parsed) = delivery_with("ping", PING, &ParseSettings::default());
        assert_eq!(event, "ping");
        assert_eq!(parsed, Parsed::ignored("ping: the webhook is set up"));
    }

    #[test]
    fn the_trigger_label_on_an_issue_asks_with_the_issues_body() {
        let (event, _) = delivery_with("issues", ISSUES_LABELED, &ParseSettings::default());
        assert_eq!(event, "issues.labeled");
        assert_eq!(
            request("issues", ISSUES_LABELED),
            Request {
                provider: Provider::Github,
                trigger: Trigger::Label,
                sender: mona(),
                place: Place::GithubIssue {
                    installation_id: 4242,
                    repository: REPOSITORY.to_string(),
                    number: 17,
                },
                text: ISSUE_17_BODY.to_string(),
                title: Some("Parser panics on empty input".to_string()),
                body: Some(ISSUE_17_BODY.to_string()),
                url: Some("https://github.com/octo-org/hello-world/issues/17".to_string()),
                source_id: "issue-17-labeled-openhands-at-2024-05-02T09:14:03Z".to_string(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn a_new_issue_that_mentions_the_handle_asks() {
        let body = "`cargo test parser::` fails on `main`:\n\n```\nthread \
            'parser::tests::handles_empty_input' panicked at src/parser.rs:88:9:\nindex out of \
            bounds: the len is 0 but the index is 0\n```\n\n@openhands please fix the failing \
            test";
        assert_eq!(
            request("issues", ISSUES_OPENED),
            Request {
                provider: Provider::Github,
                trigger: Trigger::Mention,
                sender: mona(),
                place: Place::GithubIssue {
                    installation_id: 4242,
                    repository: REPOSITORY.to_string(),
                    number: 18,
                },
                text: body.to_string(),
                title: Some("handles_empty_input fails on main".to_string()),
                body: Some(body.to_string()),
                url: Some("https://github.com/octo-org/hello-world/issues/18".to_string()),
                source_id: "issue-18-opened".to_string(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn a_comment_on_an_issue_that_mentions_the_handle_asks() {
        assert_eq!(
            request("issue_comment", ISSUE_COMMENT),
            Request {
                provider: Provider::Github,
                trigger: Trigger::Mention,
                sender: mona(),
                place: Place::GithubIssue {
                    installation_id: 4242,
                    repository: REPOSITORY.to_string(),
                    number: 17,
                },
                text: "@openhands please fix the failing test".to_string(),
                title: Some("Parser panics on empty input".to_string()),
                body: Some(ISSUE_17_BODY.to_string()),
                url: Some(
                    "https://github.com/octo-org/hello-world/issues/17#issuecomment-2090183412"
                        .to_string()
                ),
                source_id: "issue-comment-2090183412".to_string(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn a_comment_on_a_pull_request_asks_on_the_pull_request() {
        assert_eq!(
            request("issue_comment", PR_COMMENT),
            Request {
                provider: Provider::Github,
                trigger: Trigger::Mention,
                sender: mona(),
                place: Place::GithubPullRequest {
                    installation_id: 4242,
                    repository: REPOSITORY.to_string(),
                    number: 21,
                    branch: None,
                    review: None,
                },
                text: "Thanks! CI is still red on the Windows runner.\n\n@openhands please fix \
                       the failing test"
                    .to_string(),
                title: Some(PR_21_TITLE.to_string()),
                body: Some(PR_21_BODY.to_string()),
                url: Some(
                    "https://github.com/octo-org/hello-world/pull/21#issuecomment-2090301877"
                        .to_string()
                ),
                source_id: "issue-comment-2090301877".to_string(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn the_trigger_label_on_a_pull_request_asks_on_its_branch() {
        assert_eq!(
            request("pull_request", PR_LABELED),
            Request {
                provider: Provider::Github,
                trigger: Trigger::Label,
                sender: mona(),
                place: pull_request_21(None),
                text: PR_21_BODY.to_string(),
                title: Some(PR_21_TITLE.to_string()),
                body: Some(PR_21_BODY.to_string()),
                url: Some("https://github.com/octo-org/hello-world/pull/21".to_string()),
                source_id: "issue-21-labeled-openhands-at-2024-05-02T12:05:09Z".to_string(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn a_review_that_mentions_the_handle_asks() {
        assert_eq!(
            request("pull_request_review", REVIEW),
            Request {
                provider: Provider::Github,
                trigger: Trigger::Mention,
                sender: mona(),
                place: pull_request_21(None),
                text: "The fix looks right, but the new test only covers `parse`.\n\n\
                       @openhands please add the same regression test for `parse_all`."
                    .to_string(),
                title: Some(PR_21_TITLE.to_string()),
                body: Some(PR_21_BODY.to_string()),
                url: Some(
                    "https://github.com/octo-org/hello-world/pull/21#pullrequestreview-2031447722"
                        .to_string()
                ),
                source_id: "review-2031447722".to_string(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn a_review_comment_asks_in_its_thread_on_the_diff() {
        let hunk = "@@ -84,8 +84,11 @@ impl Parser {\n     pub fn parse(&mut self, input: &str) \
            -> Result<Ast, ParseError> {\n         let tokens = \
            self.lexer.tokenize(input)?;\n-        let first = &tokens[0];\n+        let \
            Some(first) = tokens.first() else {\n+            return \
            Err(ParseError::Empty);\n+        };";
        assert_eq!(
            request("pull_request_review_comment", REVIEW_COMMENT),
            Request {
                provider: Provider::Github,
                trigger: Trigger::Mention,
                sender: mona(),
                place: pull_request_21(Some(ReviewThread {
                    path: "src/parser.rs".to_string(),
                    line: Some(89),
                    diff_hunk: Some(hunk.to_string()),
                    reply_to: "1587402211".to_string(),
                })),
                text: "@openhands please fix the failing test: `ParseError::Empty` needs a \
                       `Display` arm too."
                    .to_string(),
                title: Some(PR_21_TITLE.to_string()),
                body: Some(PR_21_BODY.to_string()),
                url: Some(
                    "https://github.com/octo-org/hello-world/pull/21#discussion_r1587402211"
                        .to_string()
                ),
                source_id: "review-comment-1587402211".to_string(),
                images: Vec::new(),
            }
        );
    }

    #[test]
    fn an_outdated_review_comment_uses_its_original_line_and_a_reply_answers_the_thread() {
        let body = edited(REVIEW_COMMENT, |value| {
            value["comment"]["line"] = Value::Null;
            value["comment"]["original_line"] = 86.into();
            value["comment"]["in_reply_to_id"] = 1587399000u64.into();
        });
        let Place::GithubPullRequest {
            review: Some(review),
            ..
        } = request("pull_request_review_comment", &body).place
        else {
            panic!("expected a review thread");
        };
        assert_eq!(review.line, Some(86));
        assert_eq!(review.reply_to, "1587399000");
    }

    #[test]
    fn the_trigger_label_on_a_pull_requests_issue_asks_on_the_pull_request() {
        let body = edited(ISSUES_LABELED, |value| {
            value["issue"]["pull_request"] = serde_json::json!({
                "url": "https://api.github.com/repos/octo-org/hello-world/pulls/17",
                "merged_at": null
            });
        });
        assert_eq!(
            request("issues", &body).place,
            Place::GithubPullRequest {
                installation_id: 4242,
                repository: REPOSITORY.to_string(),
                number: 17,
                branch: None,
                review: None,
            }
        );
    }

    #[test]
    fn a_null_issue_body_asks_with_empty_text() {
        let body = edited(ISSUES_LABELED, |value| value["issue"]["body"] = Value::Null);
        let request = request("issues", &body);
        assert_eq!(request.text, "");
        assert_eq!(request.body, None);
    }

    #[test]
    fn labeling_again_later_is_a_new_item_but_a_redelivery_is_not() {
        let first = request("issues", ISSUES_LABELED).source_id;
        assert_eq!(request("issues", ISSUES_LABELED).source_id, first);
        let later = edited(ISSUES_LABELED, |value| {
            value["issue"]["updated_at"] = "2024-05-03T08:00:00Z".into();
        });
        assert_ne!(request("issues", &later).source_id, first);
    }

    #[test]
    fn events_and_actions_that_do_not_ask_are_ignored() {
        let (event, parsed) = delivery_with("push", PUSH, &ParseSettings::default());
        assert_eq!(event, "push");
        assert_eq!(
            parsed,
            Parsed::ignored("event `push` does not ask the agent for anything")
        );
        let closed = edited(ISSUES_LABELED, |value| value["action"] = "closed".into());
        assert_eq!(
            ignored("issues", &closed),
            "`issues.closed` does not ask the agent for anything"
        );
        let edited_comment = edited(ISSUE_COMMENT, |value| value["action"] = "edited".into());
        let (event, parsed) =
            delivery_with("issue_comment", &edited_comment, &ParseSettings::default());
        assert_eq!(event, "issue_comment.edited");
        assert!(matches!(parsed, Parsed::Ignored(_)), "{parsed:?}");
        let unlabeled = edited(PR_LABELED, |value| value["action"] = "unlabeled".into());
        assert!(parsed_ignored("pull_request", &unlabeled).is_some());
        let dismissed = edited(REVIEW, |value| value["action"] = "dismissed".into());
        assert!(parsed_ignored("pull_request_review", &dismissed).is_some());
        // A new issue without a mention does not ask either.
        let plain = edited(ISSUES_OPENED, |value| {
            value["issue"]["body"] = "It fails on main.".into();
        });
        assert_eq!(
            ignored("issues", &plain),
            "a new issue without a mention of @openhands"
        );
        let no_body = edited(ISSUES_OPENED, |value| value["issue"]["body"] = Value::Null);
        assert!(parsed_ignored("issues", &no_body).is_some());
    }

    fn parsed_ignored(event: &str, body: &[u8]) -> Option<String> {
        match parsed(event, body) {
            Parsed::Ignored(reason) => Some(reason),
            Parsed::Request(_) => None,
        }
    }

    #[test]
    fn text_without_a_mention_is_ignored() {
        let body = edited(ISSUE_COMMENT, |value| {
            value["comment"]["body"] = "LGTM, thanks!".into();
        });
        assert_eq!(
            ignored("issue_comment", &body),
            "issue_comment without a mention of @openhands"
        );
        let review = edited(REVIEW, |value| value["review"]["body"] = Value::Null);
        assert_eq!(
            ignored("pull_request_review", &review),
            "pull_request_review without a mention of @openhands"
        );
        let comment = edited(REVIEW_COMMENT, |value| {
            value["comment"]["body"] = "nit: rename this".into();
        });
        assert_eq!(
            ignored("pull_request_review_comment", &comment),
            "pull_request_review_comment without a mention of @openhands"
        );
    }

    #[test]
    fn a_mention_in_a_quote_or_in_code_is_ignored() {
        for text in [
            "> @openhands please fix the failing test\n\nDone in 3f2a1b0.",
            "The bot was asked with:\n\n```\n@openhands please fix the failing test\n```",
            "Type `@openhands fix` in a comment to ask.",
        ] {
            let body = edited(ISSUE_COMMENT, |value| {
                value["comment"]["body"] = text.into()
            });
            assert_eq!(
                ignored("issue_comment", &body),
                "issue_comment without a mention of @openhands",
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_mention_is_case_insensitive() {
        let body = edited(ISSUE_COMMENT, |value| {
            value["comment"]["body"] = "@OpenHands please fix the failing test".into();
        });
        assert_eq!(request("issue_comment", &body).trigger, Trigger::Mention);
    }

    #[test]
    fn another_label_is_ignored() {
        let body = edited(ISSUES_LABELED, |value| {
            value["label"]["name"] = "bug".into();
        });
        assert_eq!(
            ignored("issues", &body),
            "the label `bug` is not the trigger label `openhands`"
        );
        let body = edited(PR_LABELED, |value| {
            value["label"]["name"] = "openhands-x".into()
        });
        assert!(parsed_ignored("pull_request", &body).is_some());
        // Labels compare case-insensitively.
        let body = edited(PR_LABELED, |value| {
            value["label"]["name"] = "OpenHands".into()
        });
        assert_eq!(request("pull_request", &body).trigger, Trigger::Label);
    }

    #[test]
    fn bots_are_ignored() {
        assert_eq!(
            ignored("issue_comment", BOT_COMMENT),
            "sent by the bot `openhands[bot]`; the agent does not answer bots"
        );
        let by_another_app = edited(ISSUE_COMMENT, |value| {
            value["sender"]["login"] = "dependabot[bot]".into();
            value["sender"]["type"] = "Bot".into();
        });
        assert!(parsed_ignored("issue_comment", &by_another_app).is_some());
        let bot_typed = edited(ISSUES_LABELED, |value| {
            value["sender"]["type"] = "Bot".into()
        });
        assert!(parsed_ignored("issues", &bot_typed).is_some());
        let own_account = edited(REVIEW, |value| {
            value["sender"]["login"] = "OpenHands".into()
        });
        assert_eq!(
            ignored("pull_request_review", &own_account),
            "sent by the bot `OpenHands`; the agent does not answer bots"
        );
        let suffix_only = edited(REVIEW_COMMENT, |value| {
            value["sender"]["login"] = "renovate[bot]".into();
        });
        assert!(parsed_ignored("pull_request_review_comment", &suffix_only).is_some());
    }

    #[test]
    fn a_request_without_an_installation_is_ignored_with_why() {
        let body = edited(ISSUE_COMMENT, |value| {
            value.as_object_mut().unwrap().remove("installation");
        });
        let reason = ignored("issue_comment", &body);
        assert!(reason.contains("GitHub App"), "{reason}");
    }

    #[test]
    fn custom_settings_change_the_handle_and_the_label() {
        let settings = ParseSettings {
            mention_handle: "@devbot".to_string(),
            label: "ai-fix".to_string(),
            account_mentions: Vec::new(),
        };
        assert_eq!(
            ignored_with("issue_comment", ISSUE_COMMENT, &settings),
            "issue_comment without a mention of @devbot"
        );
        let asked = edited(ISSUE_COMMENT, |value| {
            value["comment"]["body"] = "@DevBot please fix the failing test".into();
        });
        assert_eq!(
            request_with("issue_comment", &asked, &settings).text,
            "@DevBot please fix the failing test"
        );
        assert!(matches!(
            delivery_with("issues", ISSUES_LABELED, &settings).1,
            Parsed::Ignored(_)
        ));
        let labeled = edited(ISSUES_LABELED, |value| {
            value["label"]["name"] = "AI-Fix".into()
        });
        let request = request_with("issues", &labeled, &settings);
        assert_eq!(request.trigger, Trigger::Label);
        assert_eq!(
            request.source_id,
            "issue-17-labeled-AI-Fix-at-2024-05-02T09:14:03Z"
        );
        let own_account = edited(&asked, |value| value["sender"]["login"] = "devbot".into());
        assert!(matches!(
            delivery_with("issue_comment", &own_account, &settings).1,
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn missing_or_empty_headers_are_errors() {
        let mut no_event = headers("issues");
        no_event.remove("x-github-event");
        assert_eq!(
            error(&no_event, ISSUES_LABELED),
            "the X-GitHub-Event header is missing"
        );
        let mut no_delivery = headers("issues");
        no_delivery.remove("x-github-delivery");
        assert_eq!(
            error(&no_delivery, ISSUES_LABELED),
            "the X-GitHub-Delivery header is missing"
        );
        let mut empty = headers("issues");
        empty.insert("x-github-delivery", " ".parse().unwrap());
        assert_eq!(
            error(&empty, ISSUES_LABELED),
            "the X-GitHub-Delivery header is empty"
        );
        let mut not_text = headers("issues");
        not_text.insert(
            "x-github-event",
            axum::http::HeaderValue::from_bytes(b"issu\xe9s").unwrap(),
        );
        assert_eq!(
            error(&not_text, ISSUES_LABELED),
            "the X-GitHub-Event header is not valid text"
        );
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_errors() {
        let message = error(&headers("issues"), b"{\"action\": \"labeled\"");
        assert!(
            message.starts_with("the body is not valid JSON: "),
            "{message}"
        );
        assert_eq!(error(&headers("issues"), b""), "the body is empty");
        assert_eq!(
            error(&headers("issues"), b"[1, 2]"),
            "the body is JSON but not an object"
        );
        let message = error(&headers("issues"), b"\xff\xfe{}");
        assert!(
            message.starts_with("the body is not valid JSON"),
            "{message}"
        );
    }

    #[test]
    fn a_form_encoded_body_is_an_error_saying_what_to_change() {
        let form = b"payload=%7B%22action%22%3A%22labeled%22%7D";
        let mut form_headers = headers("issues");
        form_headers.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        for headers in [form_headers, headers("issues")] {
            let message = error(&headers, form);
            assert!(message.contains("application/json"), "{message}");
        }
    }

    #[test]
    fn a_payload_of_the_wrong_shape_for_its_event_is_an_error() {
        let no_comment = edited(ISSUE_COMMENT, |value| {
            value.as_object_mut().unwrap().remove("comment");
        });
        let message = error(&headers("issue_comment"), &expect::asking(&no_comment));
        assert!(
            message.starts_with("the issue_comment payload is not valid: missing field `comment`"),
            "{message}"
        );
        // A push payload delivered as an issue comment.
        let pushed = edited(PUSH, |value| value["action"] = "created".into());
        assert!(
            error(&headers("issue_comment"), &expect::asking(&pushed))
                .contains("issue_comment payload")
        );
        let bad_number = edited(ISSUES_LABELED, |value| {
            value["issue"]["number"] = "seventeen".into();
        });
        assert!(
            error(&headers("issues"), &expect::asking(&bad_number))
                .starts_with("the issues payload")
        );
        let no_sender = edited(REVIEW, |value| {
            value.as_object_mut().unwrap().remove("sender");
        });
        assert!(
            error(&headers("pull_request_review"), &expect::asking(&no_sender))
                .contains("`sender`")
        );
        let no_path = edited(REVIEW_COMMENT, |value| {
            value["comment"].as_object_mut().unwrap().remove("path");
        });
        assert!(
            error(
                &headers("pull_request_review_comment"),
                &expect::asking(&no_path)
            )
            .contains("`path`")
        );
    }

    #[test]
    fn no_bytes_make_it_panic() {
        let fixtures = [
            PING,
            ISSUES_LABELED,
            ISSUES_OPENED,
            ISSUE_COMMENT,
            PR_COMMENT,
            BOT_COMMENT,
            PR_LABELED,
            REVIEW,
            REVIEW_COMMENT,
            PUSH,
        ];
        let events = [
            "ping",
            "issues",
            "issue_comment",
            "pull_request",
            "pull_request_review",
            "pull_request_review_comment",
            "push",
        ];
        let mut bodies: Vec<Vec<u8>> = vec![
            b"null".to_vec(),
            b"{}".to_vec(),
            b"{\"action\": 5}".to_vec(),
            b"{\"action\": \"created\", \"comment\": null}".to_vec(),
            "{\"action\": \"opened\", \"issue\": {\"body\": \"\u{1F600}@openhands\"}}"
                .as_bytes()
                .to_vec(),
            vec![b'['; 10_000],
            vec![0xff; 64],
        ];
        for fixture in fixtures {
            for cut in (0..fixture.len()).step_by(fixture.len() / 50 + 1) {
                bodies.push(fixture[..cut].to_vec());
            }
        }
        // Fixed pseudo-random bytes, the same on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for length in [1, 7, 64, 513] {
            bodies.push(
                (0..length)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state.to_le_bytes()[0]
                    })
                    .collect(),
            );
        }
        for event in events {
            for body in &bodies {
                let _ = parse(&headers(event), body, &ParseSettings::default());
            }
        }
    }
}
