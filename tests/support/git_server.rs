//! A git host for tests on 127.0.0.1: smart HTTP through the real `git http-backend` CGI, every
//! request authenticated with `Authorization: Basic x-access-token:<token>`, bare repositories in
//! a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use tokio::io::AsyncWriteExt;

pub const USERNAME: &str = "x-access-token";

struct ServerState {
    root: PathBuf,
    expected: String,
    /// `METHOD path?query -> status` of every request, to show in failed assertions.
    log: Mutex<Vec<String>>,
    /// Every request URL received (to check that no credentials travel in a URL).
    seen_urls: Mutex<Vec<String>>,
}

pub struct GitServer {
    pub addr: SocketAddr,
    root: tempfile::TempDir,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl GitServer {
    /// Starts the server; it accepts only `token` (with GitHub's user name).
    pub async fn start(token: &str) -> GitServer {
        Self::start_for(USERNAME, token).await
    }

    /// Starts the server; it accepts only `username` with `token` (GitLab: `oauth2`).
    pub async fn start_for(username: &str, token: &str) -> GitServer {
        let root = tempfile::tempdir().unwrap();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"))
        );
        let state = Arc::new(ServerState {
            root: root.path().to_path_buf(),
            expected,
            log: Mutex::new(Vec::new()),
            seen_urls: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        GitServer {
            addr,
            root,
            state,
            task,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{repo}.git", self.addr)
    }

    pub fn repo_path(&self, repo: &str) -> PathBuf {
        self.root.path().join(format!("{repo}.git"))
    }

    /// A bare repository `repo` with one commit on `main` (README: "hello\n"); returns the
    /// commit.
    pub fn create_repo(&self, repo: &str) -> String {
        self.create_repo_with(repo, &[])
    }

    /// Like [`Self::create_repo`], with these files (path, contents) in the commit as well.
    pub fn create_repo_with(&self, repo: &str, files: &[(&str, &str)]) -> String {
        let bare = self.repo_path(repo);
        git(self.root.path(), &["init", "-q", "--bare", "-b", "main"])
            .arg(&bare)
            .run();
        git(&bare, &["config", "http.receivepack", "true"]).run();
        let seed = self.root.path().join(format!("seed-{repo}"));
        std::fs::create_dir_all(&seed).unwrap();
        git(&seed, &["init", "-q", "-b", "main"]).run();
        std::fs::write(seed.join("README"), "hello\n").unwrap();
        for (path, contents) in files {
            let file = seed.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, contents).unwrap();
        }
        git(&seed, &["add", "-A"]).run();
        git(&seed, &["commit", "-q", "-m", "initial commit"]).run();
        git(&seed, &["push", "-q"])
            .arg(&bare)
            .arg("main:refs/heads/main")
            .run();
        std::fs::remove_dir_all(&seed).unwrap();
        self.head(repo, "main").unwrap()
    }

    /// The commit `branch` points at in the bare repository, if the branch exists.
    pub fn head(&self, repo: &str, branch: &str) -> Option<String> {
        let output = git(
            &self.repo_path(repo),
            &[
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ],
        )
        .output();
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Runs git in the bare repository and returns its stdout (the command must succeed).
    pub fn git(&self, repo: &str, args: &[&str]) -> String {
        git(&self.repo_path(repo), args).run()
    }

    /// What the server was asked, one line per request.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// Every request URL (path and query) the server received.
    pub fn request_urls(&self) -> Vec<String> {
        self.state.seen_urls.lock().unwrap().clone()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A git command for the test's own bookkeeping, isolated from the user's configuration.
struct GitCommand(std::process::Command);

fn git(dir: &Path, args: &[&str]) -> GitCommand {
    let mut command = std::process::Command::new("git");
    command
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.test")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.test")
        .stdin(Stdio::null());
    GitCommand(command)
}

impl GitCommand {
    fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.0.arg(arg);
        self
    }

    fn output(mut self) -> std::process::Output {
        self.0.output().unwrap()
    }

    fn run(self) -> String {
        let output = self.output();
        assert!(
            output.status.success(),
            "git failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    state
        .seen_urls
        .lock()
        .unwrap()
        .push(request.uri().to_string());
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(state.expected.as_str());
    if !authorized {
        state
            .log
            .lock()
            .unwrap()
            .push(format!("{method} {path}?{query} -> 401"));
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")
            .body(Body::from("authentication required\n"))
            .unwrap();
    }
    let (content_type, content_encoding, git_protocol) = {
        let headers = request.headers();
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (
            text("content-type").unwrap_or_default(),
            text("content-encoding"),
            text("git-protocol"),
        )
    };
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();

    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &state.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("REQUEST_METHOD", &method)
        .env("CONTENT_TYPE", &content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", USERNAME)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(encoding) = content_encoding {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(protocol) = git_protocol {
        command.env("HTTP_GIT_PROTOCOL", protocol);
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
        let _ = stdin.shutdown().await;
    });
    let output = child.wait_with_output().await.unwrap();
    let _ = writer.await;

    let (status, headers, body) = parse_cgi(&output.stdout);
    state
        .log
        .lock()
        .unwrap()
        .push(format!("{method} {path}?{query} -> {status}"));
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(body)).unwrap()
}

/// Splits CGI output into the status (from `Status:`, else 200), the other headers and the body.
fn parse_cgi(output: &[u8]) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let (head_end, body_start) = match find(output, b"\r\n\r\n") {
        Some(i) => (i, i + 4),
        None => match find(output, b"\n\n") {
            Some(i) => (i, i + 2),
            None => (output.len(), output.len()),
        },
    };
    let head = String::from_utf8_lossy(&output[..head_end]);
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else {
            headers.push((name.trim().to_string(), value));
        }
    }
    (status, headers, output[body_start..].to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
