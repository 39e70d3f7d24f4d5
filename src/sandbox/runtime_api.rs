//! The Runtime API: `openhands runtime-api` serves this host's Docker sandboxes over HTTP to
//! workers on other machines (their `remote` backend).
//!
//! The lifecycle endpoints have the shape of OpenHands' remote Runtime API (`/start`, `/stop`,
//! `/pause`, `/resume`, `/sessions/{session_id}`, `/runtime/{runtime_id}`, `/list`); commands and
//! files are this service's extension under `/runtime/{runtime_id}/…`. Every endpoint but
//! `/health` needs the header `X-API-Key` with RUNTIME_API_KEY. Errors are JSON
//! `{"error": message, "kind": …}`; the kind (and `detail`, the variant's own text) lets the
//! client rebuild the same `SandboxError`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::docker::DockerBackend;
use super::{
    CommandOutcome, CommandRequest, ExecOutput, FileEntry, SandboxError, SandboxInfo,
    SandboxSettings, SandboxStatus, Sandboxes,
};
use crate::setting::Secret;

/// The header that carries the key.
pub const KEY_HEADER: &str = "x-api-key";
/// The largest file or archive a PUT may carry.
pub const MAX_UPLOAD: usize = 1 << 30;
/// Output pieces of a running command are joined into lines of at most this many bytes.
const MAX_OUTPUT_LINE: usize = 64 << 10;
/// The longest a session id (conversation id) may be.
const MAX_SESSION_ID: usize = 200;
/// After SIGTERM, how long running requests (a command in progress) may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

/// A sandbox as the Runtime API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeView {
    pub runtime_id: String,
    /// The conversation it belongs to; `null` while it waits in the warm pool.
    pub session_id: Option<String>,
    pub status: SandboxStatus,
    pub image: String,
    pub workspace: String,
    /// This runtime's path on the Runtime API (`/runtime/{runtime_id}`).
    pub url: String,
}

impl From<SandboxInfo> for RuntimeView {
    fn from(info: SandboxInfo) -> Self {
        RuntimeView {
            url: format!("/runtime/{}", info.id),
            runtime_id: info.id,
            session_id: info.conversation_id,
            status: info.status,
            image: info.image,
            workspace: info.workspace,
        }
    }
}

impl From<RuntimeView> for SandboxInfo {
    fn from(view: RuntimeView) -> Self {
        SandboxInfo {
            id: view.runtime_id,
            conversation_id: view.session_id,
            status: view.status,
            image: view.image,
            workspace: view.workspace,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeList {
    pub runtimes: Vec<RuntimeView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileList {
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartBody {
    pub session_id: String,
    /// Accepted for compatibility with OpenHands' clients: this server has one image.
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopBody {
    pub runtime_id: String,
    /// `true` (the default): end the runtime and delete it. `false`: stop its processes and
    /// keep its files (`/resume` starts it again).
    #[serde(default = "yes")]
    pub remove: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeBody {
    pub runtime_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecBody {
    pub argv: Vec<String>,
    pub workdir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathQuery {
    pub path: String,
}

/// One line of the NDJSON answer of `/runtime/{id}/execute`: output as it arrives, then the
/// result or the error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecuteLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CommandOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StreamError>,
}

/// The error line of a streamed answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamError {
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The error's own text (the sandbox id, the path, the reason…), to rebuild it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What went wrong, as the `kind` of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Gone,
    BadPath,
    FileNotFound,
    Busy,
    NoRunningCommand,
    ImageMissing,
    EngineUnavailable,
    BadRequest,
    Unauthorized,
    Internal,
}

impl ErrorKind {
    const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::Gone,
        ErrorKind::BadPath,
        ErrorKind::FileNotFound,
        ErrorKind::Busy,
        ErrorKind::NoRunningCommand,
        ErrorKind::ImageMissing,
        ErrorKind::EngineUnavailable,
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Gone => "gone",
            ErrorKind::BadPath => "bad_path",
            ErrorKind::FileNotFound => "file_not_found",
            ErrorKind::Busy => "busy",
            ErrorKind::NoRunningCommand => "no_running_command",
            ErrorKind::ImageMissing => "image_missing",
            ErrorKind::EngineUnavailable => "engine_unavailable",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Internal => "internal",
        }
    }

    pub fn parse(kind: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::NotFound | ErrorKind::FileNotFound => StatusCode::NOT_FOUND,
            ErrorKind::Gone => StatusCode::GONE,
            ErrorKind::BadPath | ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Busy | ErrorKind::NoRunningCommand => StatusCode::CONFLICT,
            ErrorKind::ImageMissing | ErrorKind::EngineUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The kind of a sandbox error and its own text (what its variant holds).
pub fn classify(error: &SandboxError) -> (ErrorKind, Option<String>) {
    match error {
        SandboxError::NotFound(id) => (ErrorKind::NotFound, Some(id.clone())),
        SandboxError::Gone { reason, .. } => (ErrorKind::Gone, Some(reason.clone())),
        SandboxError::BadPath(message) => (ErrorKind::BadPath, Some(message.clone())),
        SandboxError::FileNotFound(path) => (ErrorKind::FileNotFound, Some(path.clone())),
        SandboxError::Busy => (ErrorKind::Busy, None),
        SandboxError::NoRunningCommand => (ErrorKind::NoRunningCommand, None),
        SandboxError::ImageMissing(image) => (ErrorKind::ImageMissing, Some(image.clone())),
        SandboxError::EngineUnavailable(reason) => {
            (ErrorKind::EngineUnavailable, Some(reason.clone()))
        }
        SandboxError::Remote { .. }
        | SandboxError::RemoteUnauthorized
        | SandboxError::RemoteUnavailable { .. }
        | SandboxError::Other(_) => (ErrorKind::Internal, None),
    }
}

/// The `SandboxError` an error answer stands for. `sandbox_id` is the sandbox the request was
/// about, if any (the answer of a `gone` sandbox names only the reason).
pub fn sandbox_error(
    status: u16,
    kind: Option<&str>,
    message: String,
    detail: Option<String>,
    sandbox_id: Option<&str>,
) -> SandboxError {
    let text = || detail.clone().unwrap_or_else(|| message.clone());
    match kind.and_then(ErrorKind::parse) {
        Some(ErrorKind::NotFound) => SandboxError::NotFound(
            detail
                .clone()
                .or_else(|| sandbox_id.map(str::to_string))
                .unwrap_or_else(|| message.clone()),
        ),
        Some(ErrorKind::Gone) => SandboxError::Gone {
            id: sandbox_id.unwrap_or_default().to_string(),
            reason: text(),
        },
        Some(ErrorKind::BadPath) => SandboxError::BadPath(text()),
        Some(ErrorKind::FileNotFound) => SandboxError::FileNotFound(text()),
        Some(ErrorKind::Busy) => SandboxError::Busy,
        Some(ErrorKind::NoRunningCommand) => SandboxError::NoRunningCommand,
        Some(ErrorKind::ImageMissing) => SandboxError::ImageMissing(text()),
        Some(ErrorKind::EngineUnavailable) => SandboxError::EngineUnavailable(text()),
        Some(ErrorKind::Unauthorized) => SandboxError::RemoteUnauthorized,
        Some(ErrorKind::BadRequest | ErrorKind::Internal) | None => {
            SandboxError::Remote { status, message }
        }
    }
}

/// An error answer.
#[derive(Debug)]
struct ApiError {
    kind: ErrorKind,
    message: String,
    detail: Option<String>,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorKind::BadRequest,
            message: message.into(),
            detail: None,
        }
    }

    fn unauthorized(message: &str) -> Self {
        ApiError {
            kind: ErrorKind::Unauthorized,
            message: message.into(),
            detail: None,
        }
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.message.clone(),
            kind: Some(self.kind.as_str().into()),
            detail: self.detail.clone(),
        }
    }
}

impl From<SandboxError> for ApiError {
    fn from(error: SandboxError) -> Self {
        let (kind, detail) = classify(&error);
        if kind == ErrorKind::Internal {
            tracing::error!(error = %format!("{error:#}"), "sandbox operation failed");
        }
        ApiError {
            kind,
            message: error.to_string(),
            detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.kind.status(), Json(self.body())).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

struct Api {
    backend: Sandboxes,
    key: Secret,
    image: String,
}

type Shared = Arc<Api>;

/// The Runtime API over `backend`, whose sandboxes run `image`; every endpoint but `/health`
/// needs `api_key` in `X-API-Key`.
pub fn router(backend: Sandboxes, api_key: Secret, image: &str) -> Router {
    let api = Arc::new(Api {
        backend,
        key: api_key,
        image: image.to_string(),
    });
    let uploads = DefaultBodyLimit::max(MAX_UPLOAD);
    let guarded = Router::new()
        .route("/start", post(start))
        .route("/stop", post(stop))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/list", get(list))
        .route("/sessions/{session_id}", get(session))
        .route("/runtime/{runtime_id}", get(runtime))
        .route("/runtime/{runtime_id}/execute", post(execute))
        .route("/runtime/{runtime_id}/exec", post(exec))
        .route(
            "/runtime/{runtime_id}/file",
            get(read_file).put(write_file).layer(uploads),
        )
        .route("/runtime/{runtime_id}/files", get(list_files))
        .route(
            "/runtime/{runtime_id}/archive",
            get(get_archive).put(put_archive).layer(uploads),
        )
        .route_layer(middleware::from_fn_with_state(api.clone(), require_key))
        .with_state(api);
    Router::new()
        .route("/health", get(health))
        .merge(guarded)
        .fallback(no_such_endpoint)
}

/// `openhands runtime-api`: this host's Docker sandboxes (warm pool filled, idle ones paused
/// and removed) served on RUNTIME_API_LISTEN until `shutdown`.
pub async fn serve(settings: &SandboxSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let key = settings
        .runtime_api_key
        .clone()
        .filter(|key| !key.expose().trim().is_empty())
        .context(
            "`openhands runtime-api` needs RUNTIME_API_KEY: the key clients must send as X-API-Key (the same value as RUNTIME_API_KEY of the workers that use SANDBOX_BACKEND=remote)",
        )?;
    if key.expose().len() < 16 {
        tracing::warn!("RUNTIME_API_KEY is shorter than 16 characters; use a long random key");
    }
    let address = &settings.runtime_api_listen;
    let listener = TcpListener::bind(address.as_str()).await.with_context(|| {
        format!("cannot listen on {address}; free the port or choose another RUNTIME_API_LISTEN")
    })?;
    let backend = DockerBackend::connect(settings).await?;
    tracing::info!(
        owner = backend.owner(),
        image = %settings.sandbox_image,
        warm_pool = settings.sandbox_warm_pool,
        "sandboxes ready"
    );
    let maintenance_stop = shutdown.child_token();
    let maintenance = tokio::spawn(
        backend
            .clone()
            .run_maintenance(MAINTENANCE_INTERVAL, maintenance_stop.clone()),
    );
    let app = router(backend, key, &settings.sandbox_image);
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "Runtime API listening on http://{local}");
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    let grace_over = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let result = tokio::select! {
        result = server => result.context("the Runtime API server failed"),
        _ = grace_over => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
            Ok(())
        }
    };
    // A refill in progress finishes, so its sandbox is registered and re-adopted next time.
    maintenance_stop.cancel();
    if tokio::time::timeout(Duration::from_secs(60), maintenance)
        .await
        .is_err()
    {
        tracing::warn!("sandbox maintenance did not stop in time");
    }
    tracing::info!("Runtime API stopped");
    result
}

async fn require_key(State(api): State<Shared>, request: Request, next: Next) -> Response {
    let Some(given) = request.headers().get(KEY_HEADER) else {
        return ApiError::unauthorized(
            "missing X-API-Key header: send the Runtime API's key (RUNTIME_API_KEY)",
        )
        .into_response();
    };
    match given.to_str() {
        Ok(given) if api.key.matches(given) => next.run(request).await,
        _ => ApiError::unauthorized("wrong X-API-Key: it must equal the server's RUNTIME_API_KEY")
            .into_response(),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn no_such_endpoint(request: Request) -> Response {
    let body = ErrorBody {
        error: format!(
            "no endpoint {} {} on the Runtime API",
            request.method(),
            request.uri().path()
        ),
        kind: None,
        detail: None,
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// A JSON body, or a 400 that says what is wrong with it.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

fn path_query(query: Result<Query<PathQuery>, QueryRejection>) -> ApiResult<String> {
    query
        .map(|Query(q)| q.path)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

fn upload(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| ApiError {
        kind: ErrorKind::BadRequest,
        message: rejection.body_text(),
        detail: None,
    })
}

fn check_session_id(session_id: &str) -> ApiResult<()> {
    if session_id.trim().is_empty()
        || session_id.len() > MAX_SESSION_ID
        || session_id.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "`session_id` must be 1 to {MAX_SESSION_ID} characters without control characters"
        )));
    }
    Ok(())
}

async fn start(
    State(api): State<Shared>,
    body: Result<Json<StartBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<RuntimeView>)> {
    let body = json_body(body)?;
    check_session_id(&body.session_id)?;
    if let Some(image) = body.image.as_deref().map(str::trim)
        && !image.is_empty()
        && image != api.image
    {
        return Err(ApiError::bad_request(format!(
            "this Runtime API runs only the image `{}` (its SANDBOX_IMAGE), not `{image}`; leave `image` out or start the server with SANDBOX_IMAGE={image}",
            api.image
        )));
    }
    let existed = api.backend.find(&body.session_id).await?.is_some();
    let info = api.backend.start(&body.session_id).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        tracing::info!(runtime = %info.id, session = %body.session_id, "runtime started");
        StatusCode::CREATED
    };
    Ok((status, Json(info.into())))
}

async fn stop(
    State(api): State<Shared>,
    body: Result<Json<StopBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let body = json_body(body)?;
    if body.remove {
        api.backend.remove(&body.runtime_id).await?;
        tracing::info!(runtime = %body.runtime_id, "runtime removed");
        Ok(Json(
            json!({ "runtime_id": body.runtime_id, "removed": true }),
        ))
    } else {
        let info = api.backend.stop(&body.runtime_id).await?;
        Ok(Json(json!(RuntimeView::from(info))))
    }
}

async fn pause(
    State(api): State<Shared>,
    body: Result<Json<RuntimeBody>, JsonRejection>,
) -> ApiResult<Json<RuntimeView>> {
    let body = json_body(body)?;
    Ok(Json(api.backend.pause(&body.runtime_id).await?.into()))
}

async fn resume(
    State(api): State<Shared>,
    body: Result<Json<RuntimeBody>, JsonRejection>,
) -> ApiResult<Json<RuntimeView>> {
    let body = json_body(body)?;
    Ok(Json(api.backend.resume(&body.runtime_id).await?.into()))
}

async fn list(State(api): State<Shared>) -> ApiResult<Json<RuntimeList>> {
    let runtimes = api
        .backend
        .list()
        .await?
        .into_iter()
        .map(RuntimeView::from)
        .collect();
    Ok(Json(RuntimeList { runtimes }))
}

async fn session(
    State(api): State<Shared>,
    Path(session_id): Path<String>,
) -> ApiResult<Json<RuntimeView>> {
    match api.backend.find(&session_id).await? {
        Some(info) => Ok(Json(info.into())),
        None => Err(ApiError {
            kind: ErrorKind::NotFound,
            message: format!("no runtime for the session `{session_id}`"),
            detail: None,
        }),
    }
}

async fn runtime(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
) -> ApiResult<Json<RuntimeView>> {
    Ok(Json(api.backend.get(&runtime_id).await?.into()))
}

/// Runs one shell call; the answer streams the output as it arrives, then the result.
async fn execute(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
    body: Result<Json<CommandRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let request = json_body(body)?;
    let (lines, receiver) = mpsc::unbounded_channel::<Bytes>();
    // The command runs to its end even if the client goes away, so the shell session stays
    // in a known state (a command left running is reported as such to the next call).
    tokio::spawn(async move {
        let (sink, mut pieces) = mpsc::unbounded_channel::<String>();
        let run = api.backend.execute(&runtime_id, &request, Some(sink));
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                biased;
                Some(piece) = pieces.recv() => send_output(&lines, piece, &mut pieces),
                result = &mut run => break result,
            }
        };
        while let Ok(piece) = pieces.try_recv() {
            send_output(&lines, piece, &mut pieces);
        }
        let last = match result {
            Ok(outcome) => ExecuteLine {
                output: None,
                result: Some(outcome),
                error: None,
            },
            Err(error) => {
                let error = ApiError::from(error);
                ExecuteLine {
                    output: None,
                    result: None,
                    error: Some(StreamError {
                        kind: error.kind.as_str().into(),
                        message: error.message,
                        detail: error.detail,
                    }),
                }
            }
        };
        let _ = lines.send(ndjson(&last));
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|line| (Ok::<_, Infallible>(line), receiver))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Sends `piece`, joined with the pieces already waiting, as `{"output": …}` lines.
fn send_output(
    lines: &mpsc::UnboundedSender<Bytes>,
    mut piece: String,
    pieces: &mut mpsc::UnboundedReceiver<String>,
) {
    while piece.len() < MAX_OUTPUT_LINE {
        match pieces.try_recv() {
            Ok(more) => piece.push_str(&more),
            Err(_) => break,
        }
    }
    let line = ExecuteLine {
        output: Some(piece),
        result: None,
        error: None,
    };
    // A client that went away stops reading; the command still runs to its end.
    let _ = lines.send(ndjson(&line));
}

fn ndjson(line: &ExecuteLine) -> Bytes {
    let mut text = serde_json::to_vec(line).unwrap_or_else(|error| {
        format!(
            r#"{{"error":{{"kind":"internal","message":"cannot encode the answer: {error}"}}}}"#
        )
        .into_bytes()
    });
    text.push(b'\n');
    Bytes::from(text)
}

async fn exec(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
    body: Result<Json<ExecBody>, JsonRejection>,
) -> ApiResult<Json<ExecOutput>> {
    let body = json_body(body)?;
    if body.argv.is_empty() {
        return Err(ApiError::bad_request("`argv` must name the program to run"));
    }
    Ok(Json(
        api.backend
            .exec(&runtime_id, &body.argv, &body.workdir)
            .await?,
    ))
}

async fn read_file(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let path = path_query(query)?;
    let content = api.backend.read_file(&runtime_id, &path).await?;
    Ok(binary(content, "application/octet-stream"))
}

async fn write_file(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
    query: Result<Query<PathQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let path = path_query(query)?;
    let content = upload(body)?;
    api.backend.write_file(&runtime_id, &path, &content).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_files(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> ApiResult<Json<FileList>> {
    let path = path_query(query)?;
    let files = api.backend.list_files(&runtime_id, &path).await?;
    Ok(Json(FileList { files }))
}

async fn get_archive(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let path = path_query(query)?;
    let tar = api.backend.get_archive(&runtime_id, &path).await?;
    Ok(binary(tar, "application/x-tar"))
}

async fn put_archive(
    State(api): State<Shared>,
    Path(runtime_id): Path<String>,
    query: Result<Query<PathQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let path = path_query(query)?;
    let tar = upload(body)?;
    api.backend
        .put_archive(&runtime_id, &path, tar.to_vec())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn binary(content: Vec<u8>, content_type: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        content,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(error: SandboxError) -> SandboxError {
        let api = ApiError::from(error);
        let body = api.body();
        sandbox_error(
            api.kind.status().as_u16(),
            body.kind.as_deref(),
            body.error,
            body.detail,
            Some("s1"),
        )
    }

    #[test]
    fn errors_survive_the_hop() {
        let cases = [
            SandboxError::NotFound("s1".into()),
            SandboxError::Gone {
                id: "s1".into(),
                reason: "its container exited with code 137".into(),
            },
            SandboxError::BadPath("`a` is not an absolute path".into()),
            SandboxError::FileNotFound("/workspace/missing".into()),
            SandboxError::Busy,
            SandboxError::NoRunningCommand,
            SandboxError::ImageMissing("openhands-sandbox:latest".into()),
            SandboxError::EngineUnavailable("connection refused".into()),
        ];
        for error in cases {
            let shown = error.to_string();
            let back = round_trip(error);
            assert_eq!(back.to_string(), shown);
        }
        let internal = round_trip(SandboxError::Other(anyhow::anyhow!("disk full")));
        assert!(
            matches!(&internal, SandboxError::Remote { status: 500, message } if message == "disk full"),
            "{internal:?}"
        );
    }

    #[test]
    fn kinds_and_statuses() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::Busy.status(), StatusCode::CONFLICT);
        assert_eq!(ErrorKind::Gone.status(), StatusCode::GONE);
        assert_eq!(ErrorKind::parse("other"), None);
    }

    #[test]
    fn views_convert_both_ways() {
        let info = SandboxInfo {
            id: "s1".into(),
            conversation_id: None,
            status: SandboxStatus::Paused,
            image: "img".into(),
            workspace: "/workspace".into(),
        };
        let view = RuntimeView::from(info.clone());
        assert_eq!(view.url, "/runtime/s1");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["session_id"], serde_json::Value::Null);
        assert_eq!(json["status"], "paused");
        assert_eq!(SandboxInfo::from(view), info);
    }
}
