//! Where each outbox post goes, as types: one enum per provider, one variant per shape of
//! target. A post's target is written as the variant's plain JSON object (the stored shape is
//! the same as it ever was) and read back by its row's provider and kind, so a missing or
//! misspelt field is a compile error here and a clear permanent failure for an odd stored row.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PostError, kind};
use crate::integrations::github::ReactionSubject;
use crate::storage::OutboxPost;

/// The posts a follow-up depends on: the one it must come `after` (the acknowledgement in a
/// Slack thread or a ticket's comments), and the pull/merge request post (`change_request`,
/// a post key) whose link it carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_request: Option<String>,
}

/// A new text for the status comment posted under `status`, which was posted at `place`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate<P> {
    pub status: String,
    pub place: P,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_request: Option<String>,
}

/// A GitHub issue or pull request, through the App's installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubIssue {
    pub installation_id: u64,
    pub repository: String,
    pub number: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubReaction {
    pub installation_id: u64,
    pub repository: String,
    pub subject: ReactionSubject,
}

/// A reply in the review thread of the review comment `reply_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubReviewReply {
    #[serde(flatten)]
    pub pull: GithubIssue,
    pub reply_to: String,
}

/// A pull request from `head` into `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubPull {
    pub installation_id: u64,
    pub repository: String,
    pub head: String,
    pub base: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum GithubTarget {
    Reaction(GithubReaction),
    /// The status comment.
    Comment(GithubIssue),
    StatusUpdate(StatusUpdate<GithubIssue>),
    ReviewReply(GithubReviewReply),
    ChangeRequest(GithubPull),
}

/// A GitLab issue or merge request (`noteable`: `issues/7`, `merge_requests/3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitlabNoteable {
    pub project_id: u64,
    pub noteable: String,
}

/// An award on `subject`: a noteable, or one of its notes (`issues/7/notes/12`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitlabAward {
    pub project_id: u64,
    pub subject: String,
}

/// A reply in the discussion `reply_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitlabDiscussionReply {
    #[serde(flatten)]
    pub noteable: GitlabNoteable,
    pub reply_to: String,
}

/// A merge request from `head` into `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitlabMergeRequest {
    pub project_id: u64,
    pub head: String,
    pub base: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum GitlabTarget {
    Award(GitlabAward),
    /// The status note.
    Note(GitlabNoteable),
    StatusUpdate(StatusUpdate<GitlabNoteable>),
    DiscussionReply(GitlabDiscussionReply),
    ChangeRequest(GitlabMergeRequest),
}

/// A message in a Slack thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackThread {
    pub channel: String,
    pub thread_ts: String,
    #[serde(flatten)]
    pub links: Links,
}

/// A reaction on the message `ts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackReaction {
    pub channel: String,
    pub ts: String,
}

/// A message in a thread that only `user` sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackEphemeral {
    pub channel: String,
    pub thread_ts: String,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SlackTarget {
    Reaction(SlackReaction),
    /// The acknowledgement and each summary: replies of their own.
    Thread(SlackThread),
    Ephemeral(SlackEphemeral),
}

/// A comment on a Jira issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTarget {
    /// The site, which names the Jira (Cloud or Data Center) to post to; posts stored before
    /// there were two have none and go to Cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub issue_key: String,
    #[serde(flatten)]
    pub links: Links,
}

/// A comment on a Linear issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearTarget {
    pub issue_id: String,
    #[serde(flatten)]
    pub links: Links,
}

/// Where a post goes; the variant names the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Github(GithubTarget),
    Gitlab(GitlabTarget),
    Slack(SlackTarget),
    Jira(JiraTarget),
    Linear(LinearTarget),
}

impl Target {
    /// The provider the post goes to, as the outbox row names it.
    pub fn provider(&self) -> &'static str {
        match self {
            Target::Github(_) => "github",
            Target::Gitlab(_) => "gitlab",
            Target::Slack(_) => "slack",
            Target::Jira(_) => "jira",
            Target::Linear(_) => "linear",
        }
    }

    /// The JSON stored in the outbox row.
    pub fn to_json(&self) -> Value {
        let json = match self {
            Target::Github(target) => serde_json::to_value(target),
            Target::Gitlab(target) => serde_json::to_value(target),
            Target::Slack(target) => serde_json::to_value(target),
            Target::Jira(target) => serde_json::to_value(target),
            Target::Linear(target) => serde_json::to_value(target),
        };
        // Plain structs of strings and numbers always serialize.
        json.unwrap_or(Value::Null)
    }

    /// The target of a stored post, by its provider and kind.
    pub(crate) fn read(post: &OutboxPost) -> Result<Target, PostError> {
        let text = post.target.as_str();
        let kind = post.kind.as_str();
        let unknown =
            || PostError::Permanent(format!("unknown {} post kind `{kind}`", post.provider));
        Ok(match post.provider.as_str() {
            "github" => Target::Github(match kind {
                kind::REACTION => GithubTarget::Reaction(parse(text)?),
                kind::STATUS => GithubTarget::Comment(parse(text)?),
                kind::STATUS_UPDATE => GithubTarget::StatusUpdate(parse(text)?),
                kind::REPLY => GithubTarget::ReviewReply(parse(text)?),
                kind::CHANGE_REQUEST => GithubTarget::ChangeRequest(parse(text)?),
                _ => return Err(unknown()),
            }),
            "gitlab" => Target::Gitlab(match kind {
                kind::REACTION => GitlabTarget::Award(parse(text)?),
                kind::STATUS => GitlabTarget::Note(parse(text)?),
                kind::STATUS_UPDATE => GitlabTarget::StatusUpdate(parse(text)?),
                kind::REPLY => GitlabTarget::DiscussionReply(parse(text)?),
                kind::CHANGE_REQUEST => GitlabTarget::ChangeRequest(parse(text)?),
                _ => return Err(unknown()),
            }),
            "slack" => Target::Slack(match kind {
                kind::REACTION => SlackTarget::Reaction(parse(text)?),
                kind::STATUS | kind::REPLY => SlackTarget::Thread(parse(text)?),
                kind::EPHEMERAL => SlackTarget::Ephemeral(parse(text)?),
                _ => return Err(unknown()),
            }),
            "jira" => match kind {
                kind::STATUS | kind::REPLY => Target::Jira(parse(text)?),
                _ => return Err(unknown()),
            },
            "linear" => match kind {
                kind::STATUS | kind::REPLY => Target::Linear(parse(text)?),
                _ => return Err(unknown()),
            },
            other => {
                return Err(PostError::Permanent(format!("unknown provider `{other}`")));
            }
        })
    }

    /// What follows the status post at this target when a run comes to rest, for places
    /// where posts are not edited (a Slack thread, a ticket): a reply of its own after it.
    /// `None` where the status comment is edited instead.
    pub fn follow_up(&self, links: Links) -> Option<Target> {
        match self {
            Target::Slack(SlackTarget::Thread(thread)) => {
                Some(Target::Slack(SlackTarget::Thread(SlackThread {
                    links,
                    ..thread.clone()
                })))
            }
            Target::Jira(ticket) => Some(Target::Jira(JiraTarget {
                links,
                ..ticket.clone()
            })),
            Target::Linear(ticket) => Some(Target::Linear(LinearTarget {
                links,
                ..ticket.clone()
            })),
            _ => None,
        }
    }

    /// A new text of the status comment posted at this target under `status`, for places
    /// where it is edited (GitHub, GitLab).
    pub fn status_update(&self, status: &str, change_request: Option<String>) -> Option<Target> {
        let status = status.to_string();
        match self {
            Target::Github(GithubTarget::Comment(place)) => {
                Some(Target::Github(GithubTarget::StatusUpdate(StatusUpdate {
                    status,
                    place: place.clone(),
                    change_request,
                })))
            }
            Target::Gitlab(GitlabTarget::Note(place)) => {
                Some(Target::Gitlab(GitlabTarget::StatusUpdate(StatusUpdate {
                    status,
                    place: place.clone(),
                    change_request,
                })))
            }
            _ => None,
        }
    }
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, PostError> {
    serde_json::from_str(text).map_err(|e| {
        PostError::Permanent(format!("the stored post's target is not understood: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(provider: &str, kind: &str, target: &Value) -> OutboxPost {
        OutboxPost {
            id: 1,
            conversation_id: None,
            provider: provider.into(),
            kind: kind.into(),
            target: target.to_string(),
            body: "{}".into(),
            idempotency_key: "k".into(),
            status: "pending".into(),
            attempts: 0,
            last_error: None,
            created_at: 0,
            sent_at: None,
            result: None,
        }
    }

    #[test]
    fn targets_keep_their_stored_shape_and_read_back() {
        let rows = [
            (
                "github",
                kind::STATUS,
                serde_json::json!({"installation_id": 4242, "repository": "o/r", "number": 17}),
            ),
            (
                "github",
                kind::REACTION,
                serde_json::json!({"installation_id": 4242, "repository": "o/r", "subject": {"on": "comment", "id": 5}}),
            ),
            (
                "github",
                kind::STATUS_UPDATE,
                serde_json::json!({"status": "s", "place": {"installation_id": 1, "repository": "o/r", "number": 2}, "change_request": "c"}),
            ),
            (
                "github",
                kind::REPLY,
                serde_json::json!({"installation_id": 1, "repository": "o/r", "number": 2, "reply_to": "99"}),
            ),
            (
                "github",
                kind::CHANGE_REQUEST,
                serde_json::json!({"installation_id": 1, "repository": "o/r", "head": "h", "base": "main"}),
            ),
            (
                "gitlab",
                kind::REACTION,
                serde_json::json!({"project_id": 42, "subject": "issues/7/notes/3"}),
            ),
            (
                "gitlab",
                kind::STATUS,
                serde_json::json!({"project_id": 42, "noteable": "issues/7"}),
            ),
            (
                "gitlab",
                kind::STATUS_UPDATE,
                serde_json::json!({"status": "s", "place": {"project_id": 42, "noteable": "issues/7"}}),
            ),
            (
                "gitlab",
                kind::REPLY,
                serde_json::json!({"project_id": 42, "noteable": "merge_requests/3", "reply_to": "abc"}),
            ),
            (
                "gitlab",
                kind::CHANGE_REQUEST,
                serde_json::json!({"project_id": 42, "head": "h", "base": "main"}),
            ),
            (
                "slack",
                kind::REACTION,
                serde_json::json!({"channel": "C1", "ts": "1.2"}),
            ),
            (
                "slack",
                kind::STATUS,
                serde_json::json!({"channel": "C1", "thread_ts": "1.2"}),
            ),
            (
                "slack",
                kind::REPLY,
                serde_json::json!({"channel": "C1", "thread_ts": "1.2", "after": "a", "change_request": "c"}),
            ),
            (
                "slack",
                kind::EPHEMERAL,
                serde_json::json!({"channel": "C1", "thread_ts": "1.2", "user": "U1"}),
            ),
            (
                "jira",
                kind::STATUS,
                serde_json::json!({"issue_key": "ENG-1"}),
            ),
            (
                "linear",
                kind::REPLY,
                serde_json::json!({"issue_id": "i-1", "after": "a"}),
            ),
        ];
        for (provider, kind, json) in rows {
            let target = Target::read(&stored(provider, kind, &json)).unwrap();
            assert_eq!(target.provider(), provider);
            assert_eq!(target.to_json(), json, "{provider} {kind}");
        }
    }

    #[test]
    fn odd_rows_are_permanent_failures_naming_the_problem() {
        let missing = stored(
            "github",
            kind::STATUS,
            &serde_json::json!({"repository": "o/r"}),
        );
        let Err(PostError::Permanent(message)) = Target::read(&missing) else {
            panic!("a target without its installation must not be read");
        };
        assert!(message.contains("installation_id"), "{message}");
        let unknown = stored(
            "jira",
            kind::REACTION,
            &serde_json::json!({"issue_key": "ENG-1"}),
        );
        assert!(
            matches!(Target::read(&unknown), Err(PostError::Permanent(m)) if m.contains("reaction"))
        );
    }

    #[test]
    fn a_rest_follows_the_status_where_posts_are_not_edited_and_edits_it_elsewhere() {
        let thread = Target::Slack(SlackTarget::Thread(SlackThread {
            channel: "C1".into(),
            thread_ts: "1.2".into(),
            links: Links::default(),
        }));
        let links = Links {
            after: Some("status".into()),
            change_request: None,
        };
        assert_eq!(
            thread.follow_up(links.clone()).unwrap().to_json(),
            serde_json::json!({"channel": "C1", "thread_ts": "1.2", "after": "status"})
        );
        assert!(thread.status_update("status", None).is_none());
        let comment = Target::Github(GithubTarget::Comment(GithubIssue {
            installation_id: 1,
            repository: "o/r".into(),
            number: 2,
        }));
        assert!(comment.follow_up(links).is_none());
        assert_eq!(
            comment
                .status_update("status", Some("pr".into()))
                .unwrap()
                .to_json(),
            serde_json::json!({"status": "status", "place": {"installation_id": 1, "repository": "o/r", "number": 2}, "change_request": "pr"})
        );
    }
}
