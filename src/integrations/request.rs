//! The one provider-neutral shape of "someone asked the agent for something", and what each
//! provider's parser turns a verified delivery into.

use serde::{Deserialize, Serialize};

/// The providers whose webhooks the service accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Github,
    Gitlab,
    Slack,
    /// Jira Cloud.
    Jira,
    /// Jira Data Center (and Server): its own webhook, account and REST API v2.
    #[serde(rename = "jira-dc")]
    JiraDc,
    Linear,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Self::Github,
        Self::Gitlab,
        Self::Slack,
        Self::Jira,
        Self::JiraDc,
        Self::Linear,
    ];

    /// The provider's name in URLs, the database and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Slack => "slack",
            Self::Jira => "jira",
            Self::JiraDc => "jira-dc",
            Self::Linear => "linear",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// How long a delivery of this provider may wait to be stored before it is answered 503
    /// (retry later): a little under the time the provider waits for an answer (GitHub and
    /// GitLab 10 s, Slack 3 s, Linear 5 s; Jira's is not published, so GitHub's is used), so
    /// that an overloaded service says so instead of timing out.
    pub fn answer_within(self) -> std::time::Duration {
        let millis = match self {
            Self::Github | Self::Gitlab | Self::Jira | Self::JiraDc => 8_000,
            Self::Slack => 2_500,
            Self::Linear => 4_000,
        };
        std::time::Duration::from_millis(millis)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What parsers need to know to recognise a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSettings {
    /// The mention that asks the agent, with its `@` (default `@openhands`).
    pub mention_handle: String,
    /// The label that asks the agent when added (default `openhands`).
    pub label: String,
    /// How the service's own accounts appear in text when a user picks them from a mention
    /// menu instead of typing the handle: Jira's `[~accountid:…]`, a Linear profile link. Each
    /// one in a comment's prose asks as the handle does.
    pub account_mentions: Vec<String>,
}

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            mention_handle: "@openhands".to_string(),
            label: "openhands".to_string(),
            account_mentions: Vec::new(),
        }
    }
}

impl ParseSettings {
    /// The handle without its `@`: an account of this name is the agent itself.
    pub fn bot_name(&self) -> &str {
        self.mention_handle.trim_start_matches('@')
    }

    /// Whether `text` asks the agent: the handle, or one of its accounts picked from a mention
    /// menu, outside quotes and code.
    pub fn is_mentioned_in(&self, text: &str) -> bool {
        crate::integrations::mention::mentions(text, &self.mention_handle)
            || crate::integrations::mention::names_any(text, &self.account_mentions)
    }

    /// Whether `label` is the configured trigger label (labels compare case-insensitively).
    pub fn is_trigger_label(&self, label: &str) -> bool {
        label.trim().eq_ignore_ascii_case(self.label.trim())
    }
}

/// What a verified delivery is.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A handshake answered at once with this JSON and not stored (Slack's `url_verification`).
    Answer(serde_json::Value),
    /// A delivery to store under the provider's delivery id.
    Delivery {
        /// The provider's id of this delivery; a second delivery with the same id is a duplicate.
        id: String,
        /// The provider's event name (with the action where there is one), for the admin view.
        event: String,
        parsed: Parsed,
    },
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Request(Box<Request>),
    /// Nothing to do; the reason is stored with the delivery.
    Ignored(String),
}

impl Parsed {
    pub fn ignored(reason: impl Into<String>) -> Self {
        Self::Ignored(reason.into())
    }
}

/// A delivery whose signature is valid but whose body or headers cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// `T` read from `input` (the body, or a part of it), or an error naming where it does not fit
/// (`user.id`, `object_attributes.iid`) and what `what` is.
pub fn fit<'de, T, D>(input: D, what: &str) -> Result<T, ParseError>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(input).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            ParseError::new(format!("the {what} is not valid: {inner}"))
        } else {
            ParseError::new(format!("the {what} is not valid at `{path}`: {inner}"))
        }
    })
}

/// A delivery whose payload does not fit what its parser reads (a field missing or of another
/// type, as older, self-hosted or newer provider versions send them) is refused only when it
/// could ask for something; otherwise it is ignored, with the reason, so that the provider does
/// not count a failed delivery (GitLab disables webhooks that keep failing). It could ask when
/// the body holds the mention handle, the trigger label as a JSON string, or one of the
/// provider's own `asking` markers (a Slack thread, say).
pub fn unless_unfit(
    parsed: Result<Parsed, ParseError>,
    body: &[u8],
    settings: &ParseSettings,
    asking: &[&str],
) -> Result<Parsed, ParseError> {
    let error = match parsed {
        Ok(parsed) => return Ok(parsed),
        Err(error) => error,
    };
    let text = String::from_utf8_lossy(body).to_lowercase();
    let label = format!("\"{}\"", settings.label.trim().to_lowercase());
    let could_ask = text.contains(&settings.mention_handle.to_lowercase())
        || text.contains(&label)
        || settings
            .account_mentions
            .iter()
            .any(|account| text.contains(&account.to_lowercase()))
        || asking
            .iter()
            .any(|marker| text.contains(&marker.to_lowercase()));
    if could_ask {
        return Err(error);
    }
    Ok(Parsed::Ignored(format!(
        "{error}; it mentions neither {} nor the label `{}`, so it asks for nothing",
        settings.mention_handle, settings.label
    )))
}

/// A header every delivery of the provider carries, trimmed; missing, empty or not text is a
/// [`ParseError`] naming the header.
pub fn required_header<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &str,
) -> Result<&'a str, ParseError> {
    let value = headers
        .get(name)
        .ok_or_else(|| ParseError::new(format!("the {name} header is missing")))?
        .to_str()
        .map_err(|_| ParseError::new(format!("the {name} header is not valid text")))?
        .trim();
    if value.is_empty() {
        return Err(ParseError::new(format!("the {name} header is empty")));
    }
    Ok(value)
}

/// What made a delivery a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The configured label was added to an issue, pull/merge request or ticket.
    Label,
    /// The mention handle appears in new text (an issue body, comment, review or message).
    Mention,
    /// A new message in a Slack thread; a request only where a conversation already runs.
    ThreadReply,
    /// A repository picked from the menu the agent posted in a Slack thread; the request's
    /// text is the option's value (see [`RepositoryRef::choice_value`]).
    Choice,
}

/// Who asked, as the provider knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The provider's stable account id (GitHub/GitLab numeric id, Slack user id, Jira
    /// accountId, Linear user id), as text.
    pub id: String,
    /// The login or display name, for messages and logs.
    pub name: String,
}

/// A review comment's place in a diff, and how to answer in its thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewThread {
    /// The file the comment is on.
    pub path: String,
    /// The line in the new version of the file, when the comment is on one.
    pub line: Option<u64>,
    /// The diff hunk the comment was made on, when the payload carries it.
    pub diff_hunk: Option<String>,
    /// The provider's id of the comment (GitHub) or discussion (GitLab) to reply in.
    pub reply_to: String,
}

/// Where the request was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    GithubIssue {
        installation_id: u64,
        /// `owner/name`.
        repository: String,
        number: u64,
    },
    GithubPullRequest {
        installation_id: u64,
        repository: String,
        number: u64,
        /// The pull request's head branch, when the payload carries it.
        branch: Option<String>,
        /// Set when asked in a review comment on a line of the diff.
        review: Option<ReviewThread>,
    },
    GitlabIssue {
        project_id: u64,
        /// `group/project`.
        project_path: String,
        iid: u64,
    },
    GitlabMergeRequest {
        project_id: u64,
        project_path: String,
        iid: u64,
        /// The merge request's source branch, when the payload carries it.
        branch: Option<String>,
        review: Option<ReviewThread>,
    },
    SlackThread {
        team_id: String,
        channel: String,
        /// The thread's first message; for a message outside a thread, the message itself.
        thread_ts: String,
    },
    JiraIssue {
        /// The site's base URL, e.g. `https://example.atlassian.net`.
        site: String,
        issue_key: String,
        /// The repository the ticket's work goes to, when one is configured for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<TicketRepository>,
    },
    LinearIssue {
        organization_id: String,
        issue_id: String,
        /// The human identifier, e.g. `ENG-123`.
        identifier: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repository: Option<TicketRepository>,
    },
}

impl Place {
    /// The repository this place is in: an issue's or pull/merge request's own, or the one a
    /// ticket's conversation was given when it started (older conversations recorded it here).
    pub fn repository_ref(&self) -> Option<RepositoryRef> {
        match self {
            Place::GithubIssue {
                installation_id,
                repository,
                ..
            }
            | Place::GithubPullRequest {
                installation_id,
                repository,
                ..
            }
            | Place::JiraIssue {
                repository:
                    Some(TicketRepository {
                        installation_id,
                        repository,
                    }),
                ..
            }
            | Place::LinearIssue {
                repository:
                    Some(TicketRepository {
                        installation_id,
                        repository,
                    }),
                ..
            } => Some(RepositoryRef::Github {
                installation_id: *installation_id,
                repository: repository.clone(),
            }),
            Place::GitlabIssue {
                project_id,
                project_path,
                ..
            }
            | Place::GitlabMergeRequest {
                project_id,
                project_path,
                ..
            } => Some(RepositoryRef::Gitlab {
                project_id: *project_id,
                path: project_path.clone(),
            }),
            _ => None,
        }
    }
}

/// A GitHub repository a Jira or Linear ticket's work is cloned from, pushed to and opened as a
/// pull request on, through the GitHub App's installation on it. Conversations started before
/// repositories were recorded as their own events kept it in the place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRepository {
    pub installation_id: u64,
    /// `owner/name`.
    pub repository: String,
}

/// A repository the agent works on, and how the service reaches it: through the GitHub App's
/// installation on it, or with GITLAB_TOKEN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "host", rename_all = "lowercase")]
pub enum RepositoryRef {
    Github {
        installation_id: u64,
        /// `owner/name`.
        repository: String,
    },
    Gitlab {
        project_id: u64,
        /// `group/subgroup/project`.
        path: String,
    },
}

impl RepositoryRef {
    /// `owner/name` or `group/project`.
    pub fn name(&self) -> &str {
        match self {
            Self::Github { repository, .. } => repository,
            Self::Gitlab { path, .. } => path,
        }
    }

    /// `github` or `gitlab`, as conversations record it.
    pub fn git_provider(&self) -> &'static str {
        match self {
            Self::Github { .. } => "github",
            Self::Gitlab { .. } => "gitlab",
        }
    }

    /// The value of this repository in a menu of choices: `github:owner/name`.
    pub fn choice_value(&self) -> String {
        format!("{}:{}", self.git_provider(), self.name())
    }
}

/// What a menu choice's value names: a host and a path, or no repository (`None`).
pub fn parse_choice_value(value: &str) -> Result<Option<(&'static str, &str)>, ParseError> {
    if value == NO_REPOSITORY {
        return Ok(None);
    }
    let (host, path) = value
        .split_once(':')
        .ok_or_else(|| ParseError::new(format!("`{value}` is not a repository choice")))?;
    let host = match host {
        "github" => "github",
        "gitlab" => "gitlab",
        other => {
            return Err(ParseError::new(format!(
                "`{other}` is not a repository host (github or gitlab)"
            )));
        }
    };
    if path.is_empty() || !path.contains('/') {
        return Err(ParseError::new(format!(
            "`{path}` is not a repository path"
        )));
    }
    Ok(Some((host, path)))
}

/// The menu value that asks for work without a repository.
pub const NO_REPOSITORY: &str = "none";

/// Someone asked the agent for something, somewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub provider: Provider,
    pub trigger: Trigger,
    pub sender: Sender,
    pub place: Place,
    /// What was asked: the comment, review or message text; for a label, the issue's body.
    pub text: String,
    /// The issue's, pull/merge request's or ticket's title, when the payload has one.
    pub title: Option<String>,
    /// The issue's, pull/merge request's or ticket's description, when the payload has one.
    pub body: Option<String>,
    /// A web link to where it was asked.
    pub url: Option<String>,
    /// The provider's id of the item that asked (comment id, review id, message ts, "issue
    /// 12 labeled at …"): two deliveries about the same item start one run.
    pub source_id: String,
    /// Images attached to what asked (files shared with a Slack message), fetched with the
    /// service's credentials and given to the model with the message. (Absent from requests
    /// stored before images were read.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageAttachment>,
}

/// The most images of one request that are read (as many as one message may carry).
pub const MAX_ATTACHED_IMAGES: usize = 10;

/// An image attached to a request, as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageAttachment {
    /// Where the provider serves it (Slack: the file's `url_private`, read with the bot token).
    pub url: String,
    /// Its MIME type, as the provider says (`image/png`).
    pub mime_type: String,
    pub name: String,
}

impl Request {
    /// The key of the issue, pull/merge request, thread or ticket: a follow-up with the same
    /// key continues the conversation the first request started.
    pub fn external_ref(&self) -> String {
        match &self.place {
            Place::GithubIssue {
                repository, number, ..
            }
            | Place::GithubPullRequest {
                repository, number, ..
            } => format!("{repository}#{number}"),
            Place::GitlabIssue {
                project_id, iid, ..
            } => format!("{project_id}#{iid}"),
            Place::GitlabMergeRequest {
                project_id, iid, ..
            } => format!("{project_id}!{iid}"),
            Place::SlackThread {
                team_id,
                channel,
                thread_ts,
            } => format!("{team_id}/{channel}/{thread_ts}"),
            Place::JiraIssue {
                site, issue_key, ..
            } => format!("{site}/{issue_key}"),
            Place::LinearIssue {
                organization_id,
                issue_id,
                ..
            } => format!("{organization_id}/{issue_id}"),
        }
    }

    /// Where the place's own repository is hosted: `github` or `gitlab`.
    pub fn git_provider(&self) -> Option<&'static str> {
        self.place.repository_ref().map(|r| r.git_provider())
    }

    /// The ticket's key (`ENG-42`), for a Jira or Linear request.
    pub fn ticket_key(&self) -> Option<&str> {
        match &self.place {
            Place::JiraIssue { issue_key, .. } => Some(issue_key),
            Place::LinearIssue { identifier, .. } => Some(identifier),
            _ => None,
        }
    }

    /// The branch to work on, for a pull or merge request.
    pub fn branch(&self) -> Option<&str> {
        match &self.place {
            Place::GithubPullRequest { branch, .. } | Place::GitlabMergeRequest { branch, .. } => {
                branch.as_deref()
            }
            _ => None,
        }
    }

    /// Identifies the asking item across deliveries (Slack sends a mention in a thread both
    /// as `app_mention` and as `message`).
    pub fn request_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.provider,
            self.external_ref(),
            self.source_id
        )
    }
}

/// A message that came before the request, in its issue, pull/merge request or thread: part
/// of what the agent is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorMessage {
    pub author: String,
    pub text: String,
}
