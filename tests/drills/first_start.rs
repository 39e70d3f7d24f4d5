//! A newcomer's first start, with nothing configured: the service makes its own key in the
//! data directory and prints a one-time link that signs in as its first administrator.

use crate::support;
use crate::support::outage;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{ChildGuard, TestDb, free_port, wait_for};

/// `openhands web` in `dir` with the defaults (SQLite in `./data/`, no OPENHANDS_SECRET_KEY),
/// and what it prints on its standard output, line by line.
fn start_web(dir: &std::path::Path, port: u16) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut command = Command::new(support::binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "info")
        .current_dir(dir)
        .args(["web", "--port", &port.to_string()]);
    start_printing(command)
}

/// Starts `command` and hands over what it prints on both outputs, line by line.
fn start_printing(mut command: Command) -> (ChildGuard, mpsc::Receiver<String>) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut web = ChildGuard::spawn(&mut command);
    let (lines, received) = mpsc::channel();
    for stream in [
        Box::new(web.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(web.0.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    (web, received)
}

/// Everything printed until the service listens, and the sign-in link among it, if any. The
/// link goes to standard output, and the log (standard error) says it was printed before it
/// says where the service listens, so both are read until then.
async fn printed_until_serving(
    port: u16,
    lines: &mpsc::Receiver<String>,
) -> (String, Option<String>) {
    let prefix = format!("http://localhost:{port}/login?token=");
    let mut printed: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = lines.recv_timeout(remaining) else {
            panic!(
                "the service did not start listening:\n{}",
                printed.join("\n")
            );
        };
        printed.push(line);
        let listening = printed.iter().any(|l| l.contains("listening on"));
        let announced = printed
            .iter()
            .any(|l| l.contains("sign-in link for the administrator was printed"));
        let link_seen = printed.iter().any(|l| l.trim().starts_with(&prefix));
        if listening && (!announced || link_seen) {
            break;
        }
    }
    wait_for("the web process", Duration::from_secs(30), || async move {
        reqwest::get(format!("http://127.0.0.1:{port}/alive"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let link = printed
        .iter()
        .find_map(|line| line.trim().strip_prefix(&prefix))
        .map(str::to_string);
    (printed.join("\n"), link)
}

async fn token_sign_in(client: &reqwest::Client, port: u16, token: &str) -> reqwest::Response {
    client
        .post(format!("http://127.0.0.1:{port}/auth/token"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_first_start_makes_its_key_and_prints_a_one_time_link_for_the_administrator() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();

    // Before anyone signs in, each start prints a new link.
    let (web, lines) = start_web(dir.path(), port);
    let (printed, first) = printed_until_serving(port, &lines).await;
    let first = first.unwrap_or_else(|| panic!("no sign-in link in:\n{printed}"));
    drop(web);
    let (web, lines) = start_web(dir.path(), port);
    let (printed, token) = printed_until_serving(port, &lines).await;
    let token = token.unwrap_or_else(|| panic!("no new sign-in link in:\n{printed}"));
    assert_ne!(first, token);

    // The key is made once, readable by its owner only, and never printed.
    let key_file = dir.path().join("data/secret-key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.len(), 64, "{key}");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert!(!printed.contains(&key));

    // The link signs in once, as the administrator the first start made.
    let client = reqwest::Client::new();
    assert_eq!(
        token_sign_in(&client, port, "not-a-token").await.status(),
        401
    );
    let signed_in = token_sign_in(&client, port, &token).await;
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me: Value = signed_in.json().await.unwrap();
    assert_eq!(
        (me["login"].as_str(), me["is_admin"].as_bool()),
        (Some("admin"), Some(true))
    );
    assert_eq!(
        token_sign_in(&client, port, &token).await.status(),
        401,
        "used once"
    );

    // With the generated key, a model's key can be stored (no OPENHANDS_SECRET_KEY needed).
    let saved = client
        .post(format!("http://127.0.0.1:{port}/api/settings"))
        .header("cookie", &cookie)
        .json(&json!({"llm_model": "openai/gpt-first", "llm_api_key": "sk-first-start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());

    // After a restart the key is the same, the session holds, the stored key is still there,
    // and no link is printed any more.
    drop(web);
    let (_web, lines) = start_web(dir.path(), port);
    let (printed, link) = printed_until_serving(port, &lines).await;
    assert_eq!(link, None, "{printed}");
    assert!(!printed.contains("sk-first-start"));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    let settings: Value = client
        .get(format!("http://127.0.0.1:{port}/api/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["llm_model"], "openai/gpt-first", "{settings}");
    assert_eq!(settings["llm_api_key_set"], true, "{settings}");
}

/// Several processes share a PostgreSQL database, and so must share the key: none is made.
#[tokio::test]
async fn postgres_requires_the_secret_key_and_says_so() {
    let _outage = outage::shared().await;
    let t = TestDb::postgres().await;
    let output = support::openhands(&t.url)
        .env_remove("OPENHANDS_SECRET_KEY")
        .arg("web")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("OPENHANDS_SECRET_KEY is required with PostgreSQL"),
        "{stderr}"
    );
    t.drop_database().await;
}

/// The README's run command, `./scripts/run`, with the binary these tests built instead of a
/// release build: the Docker engine answers, so nothing is installed and no warning is given;
/// the arguments reach `openhands serve`, which makes its key, prints the first sign-in link and
/// serves.
#[tokio::test]
async fn the_run_command_finds_the_engine_and_serves_with_a_first_sign_in_link() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/run");
    let mut command = Command::new(script);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("LOG_LEVEL", "info")
        .env("OPENHANDS_BINARY", support::binary())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/data/openhands.db", dir.path().display()),
        )
        // The tests' image is there already; nothing is built.
        .env("SANDBOX_IMAGE", support::sandbox::test_image())
        .env("SANDBOX_AUTO_BUILD", "false")
        .env("SANDBOX_WARM_POOL", "0")
        .args(["--port", &port.to_string()]);
    let (_serve, lines) = start_printing(command);
    let (printed, link) = printed_until_serving(port, &lines).await;
    assert!(link.is_some(), "no sign-in link in:\n{printed}");
    assert!(
        !printed.contains("warning") && !printed.contains("==> installing"),
        "{printed}"
    );
    assert!(dir.path().join("data/secret-key").exists());
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
