//! GitLab's REST API (gitlab.com or a self-hosted instance), with an access token.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::config::Secret;
use crate::integrations::request::PriorMessage;

/// GitLab's access level of a Developer: the least that may ask the agent for work.
pub const DEVELOPER: u32 = 30;

#[derive(Debug, Clone)]
pub struct GitlabApi {
    http: reqwest::Client,
    api_url: String,
    token: Secret,
}

#[derive(Deserialize)]
struct Note {
    author: Author,
    body: String,
    #[serde(default)]
    system: bool,
}

#[derive(Deserialize)]
struct Author {
    username: String,
}

#[derive(Deserialize)]
struct Member {
    access_level: u32,
}

impl GitlabApi {
    pub fn new(api_url: &str, token: Secret) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the GitLab client")?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The access level of user `user_id` on project `project_id`, inherited ones included;
    /// 0 when they are not a member.
    pub async fn access_level(&self, project_id: u64, user_id: &str) -> anyhow::Result<u32> {
        let url = format!(
            "{}/projects/{project_id}/members/all/{}",
            self.api_url,
            urlencode(user_id)
        );
        let response = self
            .http
            .get(&url)
            .header("PRIVATE-TOKEN", self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach GitLab at {}", self.api_url))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(0);
        }
        let response = response.error_for_status().with_context(|| {
            format!("GitLab refused to tell user {user_id}'s access to project {project_id}")
        })?;
        let member: Member = response
            .json()
            .await
            .context("GitLab's member answer is not understood")?;
        Ok(member.access_level)
    }
}

impl GitlabApi {
    /// The comments (not system notes) of an issue or merge request, oldest first (the first
    /// 100). `noteable` is `issues` or `merge_requests`.
    pub async fn notes(
        &self,
        project_id: u64,
        noteable: &str,
        iid: u64,
    ) -> anyhow::Result<Vec<PriorMessage>> {
        let url = format!(
            "{}/projects/{project_id}/{noteable}/{iid}/notes",
            self.api_url
        );
        let notes: Vec<Note> = self
            .http
            .get(&url)
            .query(&[
                ("sort", "asc"),
                ("order_by", "created_at"),
                ("per_page", "100"),
            ])
            .header("PRIVATE-TOKEN", self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach GitLab at {}", self.api_url))?
            .error_for_status()
            .with_context(|| format!("GitLab refused the notes of {noteable} {iid}"))?
            .json()
            .await
            .context("GitLab's notes are not understood")?;
        Ok(notes
            .into_iter()
            .filter(|n| !n.system)
            .map(|n| PriorMessage {
                author: n.author.username,
                text: n.body,
            })
            .collect())
    }
}

/// Percent-encodes a path segment.
fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
