//! GitLab's REST API (gitlab.com or a self-hosted instance), with an access token.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::config::Secret;
use crate::integrations::request::PriorMessage;
use crate::sandbox::git::GitRemote;

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
struct Project {
    id: u64,
    /// The `https://` URL git clones from.
    http_url_to_repo: String,
}

/// One file of a merge request's diff.
#[derive(Deserialize)]
struct FileDiff {
    old_path: String,
    new_path: String,
    #[serde(default)]
    a_mode: Option<String>,
    #[serde(default)]
    b_mode: Option<String>,
    #[serde(default)]
    diff: Option<String>,
    #[serde(default)]
    new_file: bool,
    #[serde(default)]
    renamed_file: bool,
    #[serde(default)]
    deleted_file: bool,
    #[serde(default)]
    too_large: Option<bool>,
    #[serde(default)]
    collapsed: Option<bool>,
}

/// Files per page of a merge request's diff, and the most pages read.
const DIFF_FILES_PER_PAGE: usize = 100;
const DIFF_PAGES_READ: u32 = 30;

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

impl GitlabApi {
    /// Where to clone project `project_id` from, with the configured token.
    pub async fn project_remote(&self, project_id: u64) -> anyhow::Result<GitRemote> {
        let project = self.project(&project_id.to_string()).await?;
        Ok(GitRemote::gitlab(
            project.http_url_to_repo,
            Some(self.token.clone()),
        ))
    }

    /// The id of the project at `path` (`group/project`) and where to clone it from.
    pub async fn project_by_path(&self, path: &str) -> anyhow::Result<(u64, GitRemote)> {
        let project = self.project(&urlencode(path)).await?;
        Ok((
            project.id,
            GitRemote::gitlab(project.http_url_to_repo, Some(self.token.clone())),
        ))
    }

    /// Project `project_id`: its number, or its URL-encoded path.
    async fn project(&self, project_id: &str) -> anyhow::Result<Project> {
        let url = format!("{}/projects/{project_id}", self.api_url);
        let project: Project = self
            .http
            .get(&url)
            .header("PRIVATE-TOKEN", self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach GitLab at {}", self.api_url))?
            .error_for_status()
            .with_context(|| format!("cannot read project {project_id} from GitLab"))?
            .json()
            .await
            .with_context(|| {
                format!("GitLab's answer about project {project_id} is not understood")
            })?;
        Ok(project)
    }

    /// The changes of merge request `iid` as one unified diff, a `diff --git` header per file.
    pub async fn merge_request_diff(&self, project_id: u64, iid: u64) -> anyhow::Result<String> {
        let url = format!(
            "{}/projects/{project_id}/merge_requests/{iid}/diffs",
            self.api_url
        );
        let failed = || {
            format!(
                "cannot read the diff of merge request !{iid} of project {project_id} from GitLab"
            )
        };
        let per_page = DIFF_FILES_PER_PAGE.to_string();
        let mut text = String::new();
        let mut page = 1;
        loop {
            let response = self
                .http
                .get(&url)
                .query(&[("page", page.to_string().as_str()), ("per_page", &per_page)])
                .header("PRIVATE-TOKEN", self.token.expose())
                .send()
                .await
                .with_context(|| format!("cannot reach GitLab at {}", self.api_url))?
                .error_for_status()
                .with_context(failed)?;
            let next_page = response
                .headers()
                .get("x-next-page")
                .map(|v| v.to_str().is_ok_and(|v| !v.trim().is_empty()));
            let files: Vec<FileDiff> = response.json().await.with_context(failed)?;
            // Without pagination headers, a full page may have a next one.
            let more = next_page.unwrap_or(files.len() >= DIFF_FILES_PER_PAGE);
            for file in &files {
                write_file_diff(&mut text, file);
            }
            if !more || files.is_empty() {
                break;
            }
            if page >= DIFF_PAGES_READ {
                text.push_str(&format!(
                    "[more files changed: only the first {} are shown]\n",
                    DIFF_FILES_PER_PAGE * DIFF_PAGES_READ as usize
                ));
                break;
            }
            page += 1;
        }
        Ok(text)
    }
}

/// Appends one file's diff with the headers `git diff` writes.
fn write_file_diff(text: &mut String, file: &FileDiff) {
    use std::fmt::Write as _;
    let (old, new) = (&file.old_path, &file.new_path);
    let _ = writeln!(text, "diff --git a/{old} b/{new}");
    let a_mode = file.a_mode.as_deref().filter(|m| *m != "0");
    let b_mode = file.b_mode.as_deref().filter(|m| *m != "0");
    if file.new_file {
        if let Some(mode) = b_mode {
            let _ = writeln!(text, "new file mode {mode}");
        }
    } else if file.deleted_file {
        if let Some(mode) = a_mode {
            let _ = writeln!(text, "deleted file mode {mode}");
        }
    } else if let (Some(a), Some(b)) = (a_mode, b_mode)
        && a != b
    {
        let _ = writeln!(text, "old mode {a}\nnew mode {b}");
    }
    if file.renamed_file {
        let _ = writeln!(text, "rename from {old}\nrename to {new}");
    }
    if file.too_large == Some(true) || file.collapsed == Some(true) {
        text.push_str(
            "[the changes of this file are not shown: GitLab holds them back as too large]\n",
        );
        return;
    }
    let diff = file.diff.as_deref().unwrap_or_default();
    if diff.is_empty() {
        return;
    }
    // Hunks get the file headers; a note such as "Binary files … differ" does not.
    if diff.starts_with("@@") {
        let from = if file.new_file {
            "/dev/null".to_string()
        } else {
            format!("a/{old}")
        };
        let to = if file.deleted_file {
            "/dev/null".to_string()
        } else {
            format!("b/{new}")
        };
        let _ = writeln!(text, "--- {from}\n+++ {to}");
    }
    text.push_str(diff);
    if !diff.ends_with('\n') {
        text.push('\n');
    }
}

/// Percent-encodes a path segment.
fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

#[derive(Deserialize)]
struct PostedNote {
    id: u64,
    #[serde(default)]
    body: String,
}

/// Notes read when looking for one posted before.
const NOTE_PAGES: u32 = 10;

impl GitlabApi {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        request
            .header("PRIVATE-TOKEN", self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach GitLab at {}", self.api_url))?
            .error_for_status()
            .with_context(|| format!("GitLab refused to {what}"))
    }

    /// Awards `name` (`eyes`) on `subject`, a path below the project such as `issues/7` or
    /// `merge_requests/3/notes/42`; awarded already is fine.
    pub async fn award_emoji(
        &self,
        project_id: u64,
        subject: &str,
        name: &str,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!("/projects/{project_id}/{subject}/award_emoji"));
        let response = self
            .http
            .post(&url)
            .header("PRIVATE-TOKEN", self.token.expose())
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .with_context(|| format!("cannot reach GitLab at {}", self.api_url))?;
        // GitLab answers 404 "has already been taken" style errors for a repeated award.
        if response.status().is_success() || response.status() == reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if text.contains("already been taken") {
            return Ok(());
        }
        anyhow::bail!("GitLab refused to award an emoji on {subject} ({status})")
    }

    /// The id of a note on `noteable/iid` (`issues/7`, `merge_requests/3`) containing `marker`.
    pub async fn find_note(
        &self,
        project_id: u64,
        noteable: &str,
        marker: &str,
    ) -> anyhow::Result<Option<u64>> {
        let url = self.url(&format!("/projects/{project_id}/{noteable}/notes"));
        for page in 1..=NOTE_PAGES {
            let page = page.to_string();
            let request = self.http.get(&url).query(&[
                ("sort", "asc"),
                ("order_by", "created_at"),
                ("per_page", "100"),
                ("page", page.as_str()),
            ]);
            let notes: Vec<PostedNote> = self
                .send(request, "list the notes")
                .await?
                .json()
                .await
                .context("GitLab's notes are not understood")?;
            if let Some(found) = notes.iter().find(|n| n.body.contains(marker)) {
                return Ok(Some(found.id));
            }
            if notes.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// Posts a note on `noteable/iid`; returns its id.
    pub async fn create_note(
        &self,
        project_id: u64,
        noteable: &str,
        body: &str,
    ) -> anyhow::Result<u64> {
        let url = self.url(&format!("/projects/{project_id}/{noteable}/notes"));
        let request = self
            .http
            .post(&url)
            .json(&serde_json::json!({"body": body}));
        let note: PostedNote = self
            .send(request, "post the note")
            .await?
            .json()
            .await
            .context("GitLab's note is not understood")?;
        Ok(note.id)
    }

    /// Replaces the body of note `note_id` on `noteable/iid`.
    pub async fn update_note(
        &self,
        project_id: u64,
        noteable: &str,
        note_id: u64,
        body: &str,
    ) -> anyhow::Result<()> {
        let url = self.url(&format!(
            "/projects/{project_id}/{noteable}/notes/{note_id}"
        ));
        let request = self.http.put(&url).json(&serde_json::json!({"body": body}));
        self.send(request, "edit the note").await?;
        Ok(())
    }
}

/// A merge request's source branch and the project it lives in (another one for a fork).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MergeRequestHead {
    pub source_branch: String,
    pub source_project_id: u64,
}

/// A merge request, as far as a link to it goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct MergeRequestLink {
    pub iid: u64,
    pub web_url: String,
}

impl GitlabApi {
    /// The source branch of merge request `iid` and its project.
    pub async fn merge_request_head(
        &self,
        project_id: u64,
        iid: u64,
    ) -> anyhow::Result<MergeRequestHead> {
        let url = self.url(&format!("/projects/{project_id}/merge_requests/{iid}"));
        self.send(self.http.get(&url), "read the merge request")
            .await?
            .json()
            .await
            .context("GitLab's merge request is not understood")
    }

    /// The open merge request of project `project_id` from `source_branch`.
    pub async fn open_merge_request(
        &self,
        project_id: u64,
        source_branch: &str,
    ) -> anyhow::Result<Option<MergeRequestLink>> {
        let url = self.url(&format!("/projects/{project_id}/merge_requests"));
        let request = self
            .http
            .get(&url)
            .query(&[("state", "opened"), ("source_branch", source_branch)]);
        let found: Vec<MergeRequestLink> = self
            .send(request, "list the merge requests")
            .await?
            .json()
            .await
            .context("GitLab's merge requests are not understood")?;
        Ok(found.into_iter().next())
    }

    /// Opens a merge request from `source_branch` into `target_branch`.
    pub async fn create_merge_request(
        &self,
        project_id: u64,
        source_branch: &str,
        target_branch: &str,
        title: &str,
        description: &str,
    ) -> anyhow::Result<MergeRequestLink> {
        let url = self.url(&format!("/projects/{project_id}/merge_requests"));
        let request = self.http.post(&url).json(&serde_json::json!({
            "source_branch": source_branch,
            "target_branch": target_branch,
            "title": title,
            "description": description,
        }));
        self.send(request, "open the merge request")
            .await?
            .json()
            .await
            .context("GitLab's new merge request is not understood")
    }

    /// Adds a note to discussion `discussion_id` of `noteable/iid`; returns the note's id.
    pub async fn reply_in_discussion(
        &self,
        project_id: u64,
        noteable: &str,
        discussion_id: &str,
        body: &str,
    ) -> anyhow::Result<u64> {
        let url = self.url(&format!(
            "/projects/{project_id}/{noteable}/discussions/{}/notes",
            urlencode(discussion_id)
        ));
        let request = self
            .http
            .post(&url)
            .json(&serde_json::json!({"body": body}));
        let note: PostedNote = self
            .send(request, "reply in the discussion")
            .await?
            .json()
            .await
            .context("GitLab's note is not understood")?;
        Ok(note.id)
    }
}
