//! Jira's REST API as the service's account: comments on issues, each marked with a comment
//! property naming its post so that a comment whose answer was lost is found again. Cloud is
//! reached through API v3 with an account's email and API token, comments written as Atlassian
//! documents; Data Center through API v2 with a personal access token, comments in wiki markup.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Edition;
use super::wiki;
use crate::setting::Secret;

/// The comment property that names the post a comment is.
const POST_PROPERTY: &str = "openhands";
/// Comments read per page when looking for one posted before, and the most pages read.
const COMMENTS_PER_PAGE: usize = 100;
const COMMENT_PAGES: usize = 10;

#[derive(Debug, Clone)]
pub struct JiraApi {
    http: reqwest::Client,
    /// The site, e.g. `https://example.atlassian.net`, without a trailing slash.
    site: String,
    credentials: Credentials,
}

#[derive(Debug, Clone)]
enum Credentials {
    /// Basic authentication with an Atlassian account's email and API token.
    Cloud { email: String, token: Secret },
    /// A Data Center personal access token, sent as a bearer token.
    DataCenter { token: Secret },
}

#[derive(Deserialize)]
struct CommentPage {
    #[serde(default)]
    comments: Vec<Comment>,
    #[serde(default)]
    total: usize,
}

#[derive(Deserialize)]
struct Comment {
    id: String,
    #[serde(default)]
    properties: Vec<Property>,
}

#[derive(Deserialize)]
struct Property {
    key: String,
    #[serde(default)]
    value: Value,
}

impl JiraApi {
    /// A Jira Cloud site, as the account of `email` with its API token.
    pub fn cloud(site: &str, email: &str, token: Secret) -> anyhow::Result<Self> {
        let credentials = Credentials::Cloud {
            email: email.to_string(),
            token,
        };
        Self::new(site, credentials)
    }

    /// A Jira Data Center site, as the account whose personal access token this is.
    pub fn data_center(site: &str, token: Secret) -> anyhow::Result<Self> {
        Self::new(site, Credentials::DataCenter { token })
    }

    fn new(site: &str, credentials: Credentials) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the Jira client")?;
        Ok(Self {
            http,
            site: site.trim_end_matches('/').to_string(),
            credentials,
        })
    }

    pub fn edition(&self) -> Edition {
        match self.credentials {
            Credentials::Cloud { .. } => Edition::Cloud,
            Credentials::DataCenter { .. } => Edition::DataCenter,
        }
    }

    /// The site, without a trailing slash.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The REST API's root: v3 on Cloud (Atlassian documents), v2 on Data Center.
    fn api_root(&self) -> String {
        match self.edition() {
            Edition::Cloud => format!("{}/rest/api/3", self.site),
            Edition::DataCenter => format!("{}/rest/api/2", self.site),
        }
    }

    fn comments_url(&self, issue_key: &str) -> String {
        let key: String = url::form_urlencoded::byte_serialize(issue_key.as_bytes()).collect();
        format!("{}/issue/{key}/comment", self.api_root())
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let request = match &self.credentials {
            Credentials::Cloud { email, token } => request.basic_auth(email, Some(token.expose())),
            Credentials::DataCenter { token } => request.bearer_auth(token.expose()),
        };
        request
            .send()
            .await
            .with_context(|| format!("cannot reach Jira at {}", self.site))?
            .error_for_status()
            .with_context(|| format!("Jira refused to {what}"))
    }

    /// How the account this client signs in as appears in a comment when someone picks it
    /// from the mention menu: `[~accountid:<account id>]` on Cloud, `[~<user name>]` on Data
    /// Center.
    pub async fn own_mention(&self) -> anyhow::Result<String> {
        let request = self.http.get(format!("{}/myself", self.api_root()));
        let me: Value = self
            .send(request, "say who the service's account is")
            .await?
            .json()
            .await
            .context("Jira's answer about the service's account is not understood")?;
        let field = match self.edition() {
            Edition::Cloud => "accountId",
            Edition::DataCenter => "name",
        };
        let id = me[field]
            .as_str()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .with_context(|| format!("Jira's answer about the service's account has no {field}"))?;
        Ok(mention_of(self.edition(), id))
    }

    /// The id of the comment on `issue_key` that is the post `post_key`.
    pub async fn find_comment(
        &self,
        issue_key: &str,
        post_key: &str,
    ) -> anyhow::Result<Option<String>> {
        let url = self.comments_url(issue_key);
        for page in 0..COMMENT_PAGES {
            let start = (page * COMMENTS_PER_PAGE).to_string();
            let request = self.http.get(&url).query(&[
                ("expand", "properties"),
                ("startAt", start.as_str()),
                ("maxResults", &COMMENTS_PER_PAGE.to_string()),
            ]);
            let found: CommentPage = self
                .send(request, "list the comments")
                .await?
                .json()
                .await
                .context("Jira's comments are not understood")?;
            if let Some(comment) = found.comments.iter().find(|c| {
                c.properties
                    .iter()
                    .any(|p| p.key == POST_PROPERTY && p.value["post"] == post_key)
            }) {
                return Ok(Some(comment.id.clone()));
            }
            if found.comments.len() < COMMENTS_PER_PAGE
                || (page + 1) * COMMENTS_PER_PAGE >= found.total
            {
                break;
            }
        }
        Ok(None)
    }

    /// Comments `text` on `issue_key` as the post `post_key`; returns the comment's id.
    pub async fn create_comment(
        &self,
        issue_key: &str,
        text: &str,
        post_key: &str,
    ) -> anyhow::Result<String> {
        let body = match self.edition() {
            Edition::Cloud => adf_document(text),
            Edition::DataCenter => Value::String(wiki::from_markdown(text)),
        };
        let request = self.http.post(self.comments_url(issue_key)).json(&json!({
            "body": body,
            "properties": [{"key": POST_PROPERTY, "value": {"post": post_key}}],
        }));
        let created: Comment = self
            .send(request, "post the comment")
            .await?
            .json()
            .await
            .context("Jira's new comment is not understood")?;
        Ok(created.id)
    }
}

/// How a comment writes a mention of the account `id` (an account id on Cloud, a user name on
/// Data Center).
pub fn mention_of(edition: Edition, id: &str) -> String {
    match edition {
        Edition::Cloud => format!("[~accountid:{id}]"),
        Edition::DataCenter => format!("[~{id}]"),
    }
}

/// Plain text as an Atlassian Document Format document: a paragraph per block of lines, line
/// breaks kept, web addresses as links.
pub fn adf_document(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut content: Vec<Value> = Vec::new();
            for (i, line) in block.lines().enumerate() {
                if i > 0 {
                    content.push(json!({"type": "hardBreak"}));
                }
                content.extend(line_nodes(line));
            }
            json!({"type": "paragraph", "content": content})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": paragraphs})
}

/// The text nodes of one line, each `http(s)://` word a link.
fn line_nodes(line: &str) -> Vec<Value> {
    let mut nodes = Vec::new();
    let mut plain = String::new();
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            plain.push(' ');
        }
        if word.starts_with("https://") || word.starts_with("http://") {
            if !plain.is_empty() {
                nodes.push(json!({"type": "text", "text": std::mem::take(&mut plain)}));
            }
            nodes.push(json!({"type": "text", "text": word, "marks": [{"type": "link", "attrs": {"href": word}}]}));
        } else {
            plain.push_str(word);
        }
    }
    if !plain.is_empty() {
        nodes.push(json!({"type": "text", "text": plain}));
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_paragraphs_with_breaks_and_links() {
        let doc = adf_document("Done.\nAll tests pass.\n\nConversation: https://oh.test/c/1");
        assert_eq!(
            doc,
            json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "Done."},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "All tests pass."}
                ]},
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "Conversation: "},
                    {"type": "text", "text": "https://oh.test/c/1", "marks": [{"type": "link", "attrs": {"href": "https://oh.test/c/1"}}]}
                ]}
            ]})
        );
    }
}
