//! GitLab's REST API (gitlab.com or a self-hosted instance), with an access token.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::config::Secret;

/// GitLab's access level of a Developer: the least that may ask the agent for work.
pub const DEVELOPER: u32 = 30;

#[derive(Debug, Clone)]
pub struct GitlabApi {
    http: reqwest::Client,
    api_url: String,
    token: Secret,
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

/// Percent-encodes a path segment.
fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
