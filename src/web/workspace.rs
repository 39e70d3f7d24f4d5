//! A conversation's workspace for the dashboard's panes: its changes against the commit the
//! run started from, a directory's entries, and a file to download. The web tier never
//! touches a sandbox: each request is queued for a worker that holds the sandboxes, and
//! answered when the worker has written its answer (or said the sandbox is gone).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::conversations::visible;
use super::params::{NoQuery, Query};
use super::{ApiError, AppState};
use crate::agent::workspace::ReadWorkspace;
use crate::queue;
use crate::sandbox::WORKSPACE;

/// How long a request waits for a worker's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(20);
/// How often the answer is looked for.
const ANSWER_POLL: Duration = Duration::from_millis(100);
/// The longest path accepted.
const MAX_PATH_CHARS: usize = 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/conversations/{id}/workspace/changes",
            get(workspace_changes),
        )
        .route(
            "/api/conversations/{id}/workspace/files",
            get(workspace_files),
        )
        .route(
            "/api/conversations/{id}/workspace/file",
            get(workspace_file),
        )
}

/// The query of the files and file routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PathQuery {
    /// An absolute path in the sandbox (`/workspace` by default).
    path: Option<String>,
}

/// An absolute path without NUL or `..`, as the sandboxes expect; `/workspace` by default.
fn sandbox_path(path: Option<&str>) -> Result<String, ApiError> {
    let path = path
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or(WORKSPACE);
    if !path.starts_with('/')
        || path.contains('\0')
        || path.chars().count() > MAX_PATH_CHARS
        || path.split('/').any(|part| part == "..")
    {
        return Err(ApiError::BadRequest(format!(
            "`path` must be an absolute path in the sandbox (e.g. {WORKSPACE}/README.md), without `..`, of at most {MAX_PATH_CHARS} characters"
        )));
    }
    Ok(path.to_string())
}

#[utoipa::path(
    get,
    path = "/api/conversations/{id}/workspace/changes",
    tag = "conversations",
    summary = "The workspace's changes against the commit the run started from, per file",
    extensions(("x-access" = json!("user"))),
    params(NoQuery, ("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "`files`: each with `path`, `status`, `added`, `removed`, `binary` and `diff`", body = Object),
        (status = 410, description = "The conversation's sandbox is gone"),
        (status = 503, description = "No worker answered in time"),
    ),
)]
pub(super) async fn workspace_changes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _query: Query<NoQuery>,
) -> Result<Response, ApiError> {
    read(&state, &caller, &id, "changes", None).await
}

#[utoipa::path(
    get,
    path = "/api/conversations/{id}/workspace/files",
    tag = "conversations",
    summary = "The entries of a directory in the conversation's sandbox",
    extensions(("x-access" = json!("user"))),
    params(PathQuery, ("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "`path` and `entries`: each with `path`, `kind` and `size`", body = Object),
        (status = 410, description = "The conversation's sandbox is gone"),
        (status = 503, description = "No worker answered in time"),
    ),
)]
pub(super) async fn workspace_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<PathQuery>,
) -> Result<Response, ApiError> {
    let path = sandbox_path(query.path.as_deref())?;
    read(&state, &caller, &id, "files", Some(&path)).await
}

#[utoipa::path(
    get,
    path = "/api/conversations/{id}/workspace/file",
    tag = "conversations",
    summary = "Download a file from the conversation's sandbox (at most 10 MiB)",
    extensions(("x-access" = json!("user"))),
    params(PathQuery, ("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The file's bytes, as an attachment", content_type = "application/octet-stream", body = String),
        (status = 410, description = "The conversation's sandbox is gone"),
        (status = 503, description = "No worker answered in time"),
    ),
)]
pub(super) async fn workspace_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<PathQuery>,
) -> Result<Response, ApiError> {
    let path = sandbox_path(query.path.as_deref())?;
    read(&state, &caller, &id, "file", Some(&path)).await
}

/// Queues the read for a worker and waits for its answer.
async fn read(
    state: &AppState,
    caller: &Caller,
    conversation_id: &str,
    kind: &str,
    path: Option<&str>,
) -> Result<Response, ApiError> {
    let conversation = visible(state, caller, conversation_id).await?;
    let read_id = ulid::Ulid::new().to_string();
    let mut tx = state.db.begin().await?;
    tx.open_workspace_read(&read_id, &conversation.id, kind, path)
        .await?;
    queue::enqueue(
        &mut tx,
        &ReadWorkspace {
            read_id: read_id.clone(),
        },
    )
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot queue the read: {e}")))?;
    tx.commit().await?;
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    let answered = loop {
        match state.db.workspace_read(&read_id).await? {
            Some(read) if read.status != "pending" => break Some(read),
            // Deleted with its conversation meanwhile.
            None => return Err(ApiError::NotFound("conversation")),
            Some(_) if tokio::time::Instant::now() >= deadline => break None,
            Some(_) => tokio::time::sleep(ANSWER_POLL).await,
        }
    };
    state.db.forget_workspace_read(&read_id).await?;
    let Some(read) = answered else {
        return Err(ApiError::Unavailable(format!(
            "no worker answered within {} s: the workspace is read by a worker that runs the agent (`openhands serve` or `openhands worker`); is one running?",
            ANSWER_WAIT.as_secs()
        )));
    };
    let why = read.error.unwrap_or_default();
    match read.status.as_str() {
        "done" => {}
        "gone" => return Err(ApiError::Gone(why)),
        _ => return Err(ApiError::BadRequest(why)),
    }
    let body = read.body.unwrap_or_default();
    let content_type = read
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if kind == "file" {
        // Always a download, never rendered by the browser in this origin.
        let name = path
            .and_then(|p| p.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .unwrap_or("file");
        let ascii: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_absolute_and_stay_put() {
        assert_eq!(sandbox_path(None).unwrap(), WORKSPACE);
        assert_eq!(
            sandbox_path(Some("/workspace/repo/a b.txt")).unwrap(),
            "/workspace/repo/a b.txt"
        );
        for bad in ["repo/a.txt", "/workspace/../etc/passwd", "/a\0b"] {
            assert!(sandbox_path(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
