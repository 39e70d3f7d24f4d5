//! OpenHands' own clients, for the tests that run them against the service: HTTP calls
//! authenticated as they authenticate, and the environment their Python programs run in.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// `Authorization: Bearer` with a user's API key, as the CLI sends it.
    Bearer(&'a str),
    /// `X-Session-API-Key`, as agent-server clients send it.
    Session(&'a str),
}

/// One call to `url`, answered within 30 s: its status and its body (JSON, else the text).
pub async fn call(
    method: &str,
    url: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), url);
    match auth {
        Auth::None => {}
        Auth::Bearer(key) => request = request.bearer_auth(key),
        Auth::Session(key) => request = request.header("X-Session-API-Key", key),
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = tokio::time::timeout(Duration::from_secs(30), request.send())
        .await
        .expect("an answer within 30 s")
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The program named by the environment variable `variable` (set by the test command's
/// `scripts/lib/<script>`), to run in `dir` as its home, killed when dropped. Whatever it would
/// send beyond loopback goes to a closed loopback port, LiteLLM reads its bundled model list
/// instead of fetching one, and banners are off.
pub fn python_client(
    variable: &str,
    script: &str,
    dir: &std::path::Path,
) -> tokio::process::Command {
    let program = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: source scripts/lib/{script} (the test command does)")
    });
    let mut command = tokio::process::Command::new(program);
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env("OPENHANDS_SUPPRESS_BANNER", "1")
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("COLUMNS", "250")
        .kill_on_drop(true);
    command
}
