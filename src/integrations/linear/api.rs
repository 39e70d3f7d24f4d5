//! Linear's GraphQL API with an API key: comments on issues. A comment is created with an id
//! of our choosing (derived from its post), so a comment whose answer was lost is found again
//! by that id instead of being posted twice.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::setting::Secret;

#[derive(Debug, Clone)]
pub struct LinearApi {
    http: reqwest::Client,
    api_url: String,
    key: Secret,
}

/// The namespace of comment ids derived from post keys.
const COMMENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f70_656e_6861_6e64_735f_6c69_6e65_6172);

/// The id of the comment that is the post `post_key`: the same key gives the same id.
pub fn comment_id(post_key: &str) -> String {
    uuid::Uuid::new_v5(&COMMENT_ID_NAMESPACE, post_key.as_bytes()).to_string()
}

const ISSUE_COMMENTS: &str = "query IssueComments($id: String!, $after: String) { issue(id: $id) { comments(first: 100, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } } }";
const COMMENT_CREATE: &str = "mutation CommentCreate($input: CommentCreateInput!) { commentCreate(input: $input) { success comment { id url } } }";
/// Pages of comments read when looking for one posted before.
const COMMENT_PAGES: usize = 10;

impl LinearApi {
    pub fn new(api_url: &str, key: Secret) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the Linear client")?;
        Ok(Self {
            http,
            api_url: api_url.to_string(),
            key,
        })
    }

    /// Runs a GraphQL operation; GraphQL errors (answered with 200) are errors too.
    async fn run(&self, query: &str, variables: Value, what: &str) -> anyhow::Result<Value> {
        let answer: Value = self
            .http
            .post(&self.api_url)
            .header("Authorization", self.key.expose())
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .with_context(|| format!("cannot reach Linear at {}", self.api_url))?
            .error_for_status()
            .with_context(|| format!("Linear refused to {what}"))?
            .json()
            .await
            .with_context(|| format!("Linear's answer to {what} is not JSON"))?;
        if let Some(errors) = answer["errors"].as_array().filter(|e| !e.is_empty()) {
            let messages: Vec<&str> = errors
                .iter()
                .map(|e| {
                    e["extensions"]["userPresentableMessage"]
                        .as_str()
                        .or(e["message"].as_str())
                        .unwrap_or("unknown error")
                })
                .collect();
            anyhow::bail!("Linear refused to {what}: {}", messages.join("; "));
        }
        Ok(answer["data"].clone())
    }

    /// The profile URL of the user this key acts as (an app user for an OAuth app): Linear
    /// writes a mention picked from its menu as a link to it.
    pub async fn own_profile_url(&self) -> anyhow::Result<String> {
        let data = self
            .run(
                "query Viewer { viewer { id url } }",
                json!({}),
                "say who the service's user is",
            )
            .await?;
        data["viewer"]["url"]
            .as_str()
            .filter(|url| !url.is_empty())
            .map(str::to_string)
            .context("Linear's viewer has no profile url")
    }

    /// Whether issue `issue_id` has the comment `comment_id`.
    pub async fn has_comment(&self, issue_id: &str, comment_id: &str) -> anyhow::Result<bool> {
        let mut after = Value::Null;
        for _ in 0..COMMENT_PAGES {
            let data = self
                .run(
                    ISSUE_COMMENTS,
                    json!({"id": issue_id, "after": after}),
                    "list the issue's comments",
                )
                .await?;
            let comments = &data["issue"]["comments"];
            if comments["nodes"]
                .as_array()
                .is_some_and(|nodes| nodes.iter().any(|n| n["id"] == comment_id))
            {
                return Ok(true);
            }
            if comments["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = comments["pageInfo"]["endCursor"].clone();
        }
        Ok(false)
    }

    /// Comments `body` (Markdown) on issue `issue_id` with the id `comment_id`.
    pub async fn create_comment(
        &self,
        issue_id: &str,
        comment_id: &str,
        body: &str,
    ) -> anyhow::Result<()> {
        let data = self
            .run(
                COMMENT_CREATE,
                json!({"input": {"id": comment_id, "issueId": issue_id, "body": body}}),
                "post the comment",
            )
            .await?;
        if data["commentCreate"]["success"] != true {
            anyhow::bail!("Linear did not create the comment");
        }
        Ok(())
    }
}
