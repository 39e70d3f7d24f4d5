//! MCP servers for the tests, on 127.0.0.1 only: rmcp's streamable HTTP server, a bridge that
//! speaks the older HTTP+SSE transport (protocol 2024-11-05, which rmcp no longer serves), a
//! server that never answers, and the stdio server built from `examples/mcp_stdio_server.rs`.
//! All of them serve `TestTools` and remember the headers of every request they receive.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::response::sse::{Event, Sse};
use axum::routing::{any, get, post};
use futures::StreamExt;
use futures::channel::mpsc;
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::mcp_tools::TestTools;

/// The headers of every request, in the order they arrived.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// A running test MCP server. Dropping it stops it.
pub struct McpServer {
    pub url: String,
    seen: Seen,
    tools: TestTools,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl McpServer {
    /// Every `Authorization` header received, in order.
    pub fn authorizations(&self) -> Vec<String> {
        self.header_values("authorization")
    }

    /// Every value of the request header `name` received, in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .flat_map(|headers| {
                headers
                    .get_all(name)
                    .iter()
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// How many `tools/call` requests the server handled.
    pub fn tool_calls(&self) -> usize {
        self.tools.calls()
    }

    /// Stops the server and waits (briefly) until it no longer accepts connections.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        // Every server ends its open requests and streams on this token, so the graceful
        // shutdown below it finishes promptly.
        self.stop.cancel();
    }
}

/// rmcp's own streamable HTTP server at `http://127.0.0.1:{port}/mcp`.
pub async fn streamable_http() -> McpServer {
    let tools = TestTools::new();
    let stop = CancellationToken::new();
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    let handler = tools.clone();
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = Router::new().route_service("/mcp", service);
    start(router, "/mcp", tools, stop).await
}

/// MCP's HTTP+SSE transport at `http://127.0.0.1:{port}/sse`: `GET /sse` opens a session whose
/// first event names the URL to `POST` messages to; the answers come back on the event stream.
pub async fn sse() -> McpServer {
    let tools = TestTools::new();
    let stop = CancellationToken::new();
    let state = SseState {
        tools: tools.clone(),
        stop: stop.clone(),
        sessions: Arc::default(),
    };
    let router = Router::new()
        .route("/sse", get(sse_open))
        .route("/message", post(sse_message))
        .with_state(state);
    start(router, "/sse", tools, stop).await
}

/// A server at `http://127.0.0.1:{port}/mcp` that takes every request and never answers: the
/// request stays open until the server stops.
pub async fn silent() -> McpServer {
    let stop = CancellationToken::new();
    let router = Router::new()
        .route("/mcp", any(never_answer))
        .with_state(stop.clone());
    start(router, "/mcp", TestTools::new(), stop).await
}

async fn never_answer(State(stop): State<CancellationToken>) -> StatusCode {
    stop.cancelled().await;
    StatusCode::SERVICE_UNAVAILABLE
}

/// Serves `router` on a free loopback port, recording the headers of each request.
async fn start(router: Router, path: &str, tools: TestTools, stop: CancellationToken) -> McpServer {
    let seen = Seen::default();
    let router = router.layer(middleware::from_fn_with_state(seen.clone(), record_headers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    McpServer {
        url: format!("http://127.0.0.1:{port}{path}"),
        seen,
        tools,
        stop,
        task,
    }
}

async fn record_headers(State(seen): State<Seen>, request: Request, next: Next) -> Response {
    seen.lock().unwrap().push(request.headers().clone());
    next.run(request).await
}

/// The open sessions of the HTTP+SSE bridge: where to deliver the messages POSTed to each.
type Sessions = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<ClientJsonRpcMessage>>>>;

#[derive(Clone)]
struct SseState {
    tools: TestTools,
    stop: CancellationToken,
    sessions: Sessions,
}

/// Ends a session when its event stream is dropped, that is when the client disconnects or
/// the server stops: later POSTs to it get 404 and its rmcp server stops.
struct SessionGuard {
    id: String,
    sessions: Sessions,
    stop: CancellationToken,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.lock().unwrap().remove(&self.id);
        self.stop.cancel();
    }
}

async fn sse_open(
    State(state): State<SseState>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (to_server, from_client) = mpsc::unbounded::<ClientJsonRpcMessage>();
    let (to_client, from_server) = mpsc::unbounded::<ServerJsonRpcMessage>();
    state.sessions.lock().unwrap().insert(id.clone(), to_server);

    // rmcp serves the session over the channel pair; when it stops, `to_client` is dropped and
    // the event stream ends with it.
    let session_stop = state.stop.child_token();
    let tools = state.tools.clone();
    let running_stop = session_stop.clone();
    tokio::spawn(async move {
        if let Ok(running) = tools
            .serve_with_ct((to_client, from_client), running_stop)
            .await
        {
            let _ = running.waiting().await;
        }
    });

    let guard = SessionGuard {
        id: id.clone(),
        sessions: state.sessions.clone(),
        stop: session_stop,
    };
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/message?sessionId={id}"));
    let messages = from_server.map(move |message| {
        // The stream owns the guard, so the session lives exactly as long as the stream.
        let _session = &guard;
        let json = serde_json::to_string(&message).unwrap();
        Ok::<_, Infallible>(Event::default().event("message").data(json))
    });
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(endpoint) })
        .chain(messages)
        .take_until(state.stop.cancelled_owned());
    Sse::new(stream)
}

async fn sse_message(
    State(state): State<SseState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> StatusCode {
    let Some(id) = query.get("sessionId") else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(sender) = state.sessions.lock().unwrap().get(id).cloned() else {
        return StatusCode::NOT_FOUND;
    };
    let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if sender.unbounded_send(message).is_err() {
        return StatusCode::NOT_FOUND;
    }
    StatusCode::ACCEPTED
}

/// Installs rustls' process-wide crypto provider (ring), which rmcp's HTTP client needs: its
/// reqwest is built without a provider of its own and panics when none is installed. The
/// service does the same before it connects to MCP servers.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The stdio MCP server binary, `examples/mcp_stdio_server.rs`, next to this test binary:
/// `target/<profile>/deps/<test>` → `target/<profile>/examples/mcp_stdio_server`. Built with
/// cargo when it is not there yet (`cargo test --test NAME` builds no examples).
pub fn stdio_server_binary() -> PathBuf {
    // Tests running at once would otherwise start several builds.
    static BUILD: Mutex<()> = Mutex::new(());

    let exe = std::env::current_exe().expect("the path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("mcp_stdio_server{}", std::env::consts::EXE_SUFFIX));
    let _building = BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if binary.exists() {
        return binary;
    }

    let target_dir = profile_dir
        .parent()
        .expect("the profile directory is in the target directory");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--example", "mcp_stdio_server", "--target-dir"])
        .arg(target_dir);
    // The dev and test profiles build into `debug`; any other profile into its own name.
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
        None => panic!("unexpected test binary path {}", exe.display()),
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the MCP stdio server: {e}"));
    assert!(
        status.success() && binary.exists(),
        "`cargo build --example mcp_stdio_server` failed ({status}), or did not produce {}",
        binary.display()
    );
    binary
}
