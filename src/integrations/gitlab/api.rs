//! GitLab's REST API (gitlab.com or a self-hosted instance), with an access token.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::integrations::request::PriorMessage;
use crate::sandbox::git::GitRemote;
use crate::setting::Secret;

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

    /// The username of the account GITLAB_TOKEN belongs to.
    pub async fn current_user(&self) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct CurrentUser {
            username: String,
        }
        let user: CurrentUser = self
            .http
            .get(format!("{}/user", self.api_url))
            .header("PRIVATE-TOKEN", self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach GitLab at {}", self.api_url))?
            .error_for_status()
            .context("GitLab refused the token")?
            .json()
            .await
            .context("GitLab's answer about the token's user is not understood")?;
        Ok(user.username)
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

/// Pages of projects read when listing them, of [`PROJECTS_PER_PAGE`] each.
const PROJECT_PAGES: u32 = 10;
const PROJECTS_PER_PAGE: usize = 100;

impl GitlabApi {
    /// The (id, `group/project` path) of each project where the token's account is at least a
    /// Developer, in GitLab's order; with `search`, only those whose name or path contains it.
    /// At most 1000.
    pub async fn projects(&self, search: Option<&str>) -> anyhow::Result<Vec<(u64, String)>> {
        #[derive(Deserialize)]
        struct Listed {
            id: u64,
            path_with_namespace: String,
        }
        let failed = "cannot list the GitLab projects the token's account develops in";
        let mut query = vec![
            ("membership", "true".to_string()),
            ("min_access_level", DEVELOPER.to_string()),
            ("simple", "true".to_string()),
            ("per_page", PROJECTS_PER_PAGE.to_string()),
        ];
        if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
            query.push(("search", search.to_string()));
        }
        let list = self.url("/projects");
        let mut next = NextPage::Number(1);
        let mut projects = Vec::new();
        for _ in 0..PROJECT_PAGES {
            let request = match &next {
                NextPage::Number(page) => {
                    self.http.get(&list).query(&query).query(&[("page", page)])
                }
                NextPage::Url(url) => self.http.get(url),
                NextPage::None => break,
            };
            let response = self
                .send(request, "list the projects")
                .await
                .context(failed)?;
            let following = next_page(response.headers(), &self.api_url);
            let listed: Vec<Listed> = response.json().await.context(failed)?;
            // Without pagination headers, only a full page may have a next one.
            next = match (following, &next) {
                (Some(following), _) => following,
                (None, NextPage::Number(page)) if listed.len() >= PROJECTS_PER_PAGE => {
                    NextPage::Number(page + 1)
                }
                (None, _) => NextPage::None,
            };
            if listed.is_empty() {
                break;
            }
            projects.extend(listed.into_iter().map(|p| (p.id, p.path_with_namespace)));
        }
        Ok(projects)
    }
}

/// Which page of a GitLab list to ask for next.
#[derive(Debug, PartialEq, Eq)]
enum NextPage {
    /// This page number of the same list.
    Number(u64),
    /// The URL GitLab gave (keyset pagination), below the API's own URL.
    Url(String),
    /// The list is complete.
    None,
}

/// The next page as the answer's headers tell it: `x-next-page` (empty on the last page), else
/// the `Link` header's `rel="next"`; `None` when the answer says nothing about pages. A link
/// elsewhere than below `api_url` is not followed (the token would go with it); its page
/// number is asked for instead.
fn next_page(headers: &reqwest::header::HeaderMap, api_url: &str) -> Option<NextPage> {
    if let Some(value) = headers.get("x-next-page") {
        let value = value.to_str().unwrap_or_default().trim();
        return Some(match value.parse() {
            Ok(page) => NextPage::Number(page),
            Err(_) => NextPage::None,
        });
    }
    let links = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    let next = links.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    });
    let Some(next) = next else {
        return Some(NextPage::None);
    };
    if next.starts_with(&format!("{api_url}/")) {
        return Some(NextPage::Url(next.to_string()));
    }
    let page = url::Url::parse(next).ok().and_then(|url| {
        url.query_pairs()
            .find(|(name, _)| name == "page")
            .and_then(|(_, value)| value.parse().ok())
    });
    Some(page.map_or(NextPage::None, NextPage::Number))
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    const API: &str = "https://gitlab.example.com/api/v4";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_next_page_comes_from_x_next_page_first() {
        let next = next_page(&headers(&[("x-next-page", "3"), ("x-page", "2")]), API);
        assert_eq!(next, Some(NextPage::Number(3)));
        // The last page carries the header empty.
        let last = next_page(&headers(&[("x-next-page", ""), ("x-page", "4")]), API);
        assert_eq!(last, Some(NextPage::None));
        assert_eq!(next_page(&headers(&[]), API), None);
    }

    #[test]
    fn without_x_next_page_the_link_header_is_followed_only_below_the_api() {
        let keyset = headers(&[(
            "link",
            "<https://gitlab.example.com/api/v4/projects?id_after=42&membership=true&pagination=keyset&per_page=100>; rel=\"next\"",
        )]);
        assert_eq!(
            next_page(&keyset, API),
            Some(NextPage::Url(
                "https://gitlab.example.com/api/v4/projects?id_after=42&membership=true&pagination=keyset&per_page=100".into()
            ))
        );
        // Another host: only its page number is taken.
        let elsewhere = headers(&[(
            "link",
            "<https://other.example.com/api/v4/projects?page=1&per_page=100>; rel=\"prev\", <https://other.example.com/api/v4/projects?page=2&per_page=100>; rel=\"next\"",
        )]);
        assert_eq!(next_page(&elsewhere, API), Some(NextPage::Number(2)));
        let no_number = headers(&[(
            "link",
            "<https://other.example.com/api/v4/projects?id_after=42>; rel=\"next\"",
        )]);
        assert_eq!(next_page(&no_number, API), Some(NextPage::None));
        let only_first = headers(&[(
            "link",
            "<https://gitlab.example.com/api/v4/projects?page=1>; rel=\"first\"",
        )]);
        assert_eq!(next_page(&only_first, API), Some(NextPage::None));
    }
}
