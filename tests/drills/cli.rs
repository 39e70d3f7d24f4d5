//! The binary as a user starts it: serving, health, bad configuration, logs.

use crate::support;
use crate::support::outage;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::signing;
use support::{ChildGuard, TestDb, free_port, wait_for};

fn run(command: &mut Command) -> Output {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// A failure as a user should see it: a non-zero exit and one clear line, no panic.
fn assert_clear_failure(output: &Output, expected: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "must fail: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "no panic: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "stderr mentions `{expected}`: {stderr}"
    );
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(error_lines.len(), 1, "one error line: {stderr}");
    stderr
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn wait_until_serving(port: u16) {
    wait_for(
        "the server to answer /alive",
        Duration::from_secs(30),
        || async move {
            reqwest::get(format!("http://127.0.0.1:{port}/alive"))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
}

#[tokio::test]
async fn serve_with_defaults_creates_the_sqlite_database_and_answers() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(support::binary());
    command
        .env_clear()
        .current_dir(dir.path())
        .args(["serve", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = ChildGuard::spawn(&mut command);
    wait_until_serving(port).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/alive")).await,
        (200, serde_json::json!({"status": "ok"}))
    );
    let (status, health) = get(&format!("http://127.0.0.1:{port}/health")).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"]["database"]["status"], "ok");
    assert_eq!(health["checks"]["database"]["backend"], "sqlite");
    assert!(
        dir.path().join("data/openhands.db").exists(),
        "the default database is ./data/openhands.db"
    );
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).success());
}

/// `openhands user create NAME --admin` bootstraps the first administrator: its key, printed
/// once, reaches the administrators' API of the service on the same database; a second user of
/// that name is refused in one line; a plain user's key is not an administrator's.
#[tokio::test]
async fn user_create_admin_makes_a_key_that_administers() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let create = |login: &str, admin: bool| {
        let mut command = Command::new(support::binary());
        command
            .env_clear()
            .current_dir(dir.path())
            .args(["user", "create", login]);
        if admin {
            command.arg("--admin");
        }
        run(&mut command)
    };
    let created = create("root", true);
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(
        created.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(stdout.contains("administrator user `root`"), "{stdout}");
    let admin_key = stdout.lines().last().unwrap().trim().to_string();
    assert!(admin_key.starts_with("oh_"), "{stdout}");
    assert_clear_failure(&create("root", true), "exists already");
    let plain = create("alice", false);
    let plain_key = String::from_utf8_lossy(&plain.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();

    let port = free_port();
    let mut command = Command::new(support::binary());
    command
        .env_clear()
        .current_dir(dir.path())
        .args(["web", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = ChildGuard::spawn(&mut command);
    wait_until_serving(port).await;
    let deliveries = |key: String| async move {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/deliveries"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(deliveries(admin_key).await, 200);
    assert_eq!(deliveries(plain_key).await, 403);
}

#[tokio::test]
async fn health_answers_503_when_postgres_goes_away_and_the_server_keeps_running() {
    let _outage = outage::shared().await;
    let test_db = TestDb::postgres().await;
    let port = free_port();
    let _server = ChildGuard::spawn(
        support::openhands(&test_db.url)
            .args(["web", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until_serving(port).await;
    let (status, health) = get(&format!("http://127.0.0.1:{port}/health")).await;
    assert_eq!(
        (status, health["checks"]["database"]["backend"].as_str()),
        (200, Some("postgres")),
        "{health}"
    );

    let url = test_db.url.clone();
    test_db.drop_database().await;
    let (status, health) = get(&format!("http://127.0.0.1:{port}/health")).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "error");
    assert_eq!(health["checks"]["database"]["status"], "error");
    assert!(
        !health.to_string().contains(&url),
        "no connection details in the answer"
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/alive")).await.0,
        200,
        "still serving"
    );
}

#[test]
fn a_malformed_database_url_is_one_clear_line() {
    let _outage = outage::shared_blocking();
    let output = run(support::openhands("mysql://root@localhost/db").arg("migrate"));
    let stderr = assert_clear_failure(&output, "DATABASE_URL");
    assert!(
        stderr.contains("postgres://"),
        "says what would work: {stderr}"
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn an_unreachable_database_is_one_clear_line_without_the_password() {
    let _outage = outage::shared_blocking();
    let port = free_port(); // nothing listens there
    let url = format!("postgres://someone:hunter2secret@127.0.0.1:{port}/openhands");
    let output = run(support::openhands(&url).arg("migrate"));
    let stderr = assert_clear_failure(&output, "cannot open the database");
    assert!(
        stderr.contains("DATABASE_URL"),
        "says what to check: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2secret"),
        "the password is never printed: {stderr}"
    );
}

#[test]
fn an_unknown_flag_is_rejected_with_usage() {
    let _outage = outage::shared_blocking();
    let output = run(Command::new(support::binary()).args(["serve", "--no-such-flag"]));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_values_are_named() {
    let _outage = outage::shared_blocking();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let output = run(support::openhands(&url)
        .env("LOG_JSON", "perhaps")
        .arg("migrate"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("perhaps"));
    let output = run(support::openhands(&url)
        .env("JOB_LEASE", "1s")
        .arg("worker"));
    assert_clear_failure(&output, "JOB_LEASE");
    let output = run(support::openhands(&url)
        .env("METRICS_LISTEN", "127.0.0.1:9464")
        .arg("worker"));
    assert_clear_failure(&output, "OPENHANDS_ADMIN_API_KEY");
    let output = run(support::openhands(&url)
        .env("METRICS_LISTEN", "nowhere")
        .arg("worker"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere"));
    let output = run(support::openhands(&url).env("PORT", "70000").arg("web"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("70000"));
    let output = run(support::openhands(&url)
        .env("LLM_MODEL", "mystery/model")
        .arg("migrate"));
    assert_clear_failure(&output, "LLM_BASE_URL");
    let output = run(support::openhands(&url)
        .env("LLM_MODEL", "anthropic/claude-test")
        .env(
            "LLM_PRICE_TABLE",
            "{\"claude-test\": {\"input\": \"cheap\"}}",
        )
        .arg("migrate"));
    assert_clear_failure(&output, "LLM_PRICE_TABLE");
    let output = run(support::openhands(&url)
        .env("SANDBOX_MEMORY", "lots")
        .arg("migrate"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lots"));
    for (value, expected) in [
        ("ENG", "has no `=`"),
        ("ENG=acme", "`acme` is not a GitHub repository"),
        ("EN G=acme/api", "`EN G` is not a project or team key"),
    ] {
        let output = run(support::openhands(&url)
            .env(
                "OPENHANDS_TICKET_REPOSITORIES",
                format!("OPS=acme/infra,{value}"),
            )
            .arg("migrate"));
        assert_eq!(output.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{value}: {stderr}");
    }
    for (value, expected) in [
        ("C0123", "has no `=`"),
        ("C 0123=acme/api", "`C 0123` is not a Slack channel id"),
        ("C0123=acme", "`acme` is not a repository path"),
        ("C0123=github:a/b/c", "cannot be a GitHub repository"),
        (
            "C0123=bitbucket:a/b",
            "`bitbucket:` is not a repository host",
        ),
    ] {
        let output = run(support::openhands(&url)
            .env("SLACK_CHANNEL_REPOSITORIES", value)
            .arg("worker"));
        assert_eq!(output.status.code(), Some(2), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{value}: {stderr}");
    }
    // A worker needs the provider that reaches a channel's repository.
    for (value, expected) in [
        ("C0123=gitlab:platform/infra", "GITLAB_TOKEN is needed too"),
        (
            "C0123=acme/api",
            "GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are needed too",
        ),
    ] {
        let output = run(support::openhands(&url)
            .env("SLACK_CHANNEL_REPOSITORIES", value)
            .arg("worker"));
        assert_clear_failure(&output, expected);
    }
    // Nothing is accepted that could not be answered: each provider needs every setting its
    // answers use.
    for (settings, expected) in [
        (
            &[
                ("JIRA_WEBHOOK_SECRET", "s"),
                ("JIRA_BASE_URL", "https://acme.atlassian.net"),
            ][..],
            "JIRA_EMAIL and JIRA_API_TOKEN",
        ),
        (
            &[
                ("JIRA_DC_WEBHOOK_SECRET", "s"),
                ("JIRA_DC_BASE_URL", "https://jira.example.com"),
            ][..],
            "JIRA_DC_TOKEN",
        ),
        (
            &[
                ("LINEAR_WEBHOOK_SECRET", "s"),
                ("LINEAR_ORGANIZATION_ID", "org-1"),
            ][..],
            "LINEAR_API_KEY",
        ),
    ] {
        let output = run(support::openhands(&url)
            .envs(settings.iter().copied())
            .arg("worker"));
        assert_clear_failure(&output, expected);
    }
    let output = run(support::openhands(&url)
        .env("OPENHANDS_SKILLS_DIR", "/nonexistent/skills")
        .arg("migrate"));
    assert_clear_failure(
        &output,
        "OPENHANDS_SKILLS_DIR /nonexistent/skills is not a directory",
    );
}

#[test]
fn a_port_in_use_is_one_clear_line() {
    let _outage = outage::shared_blocking();
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let output = run(support::openhands(&url).args(["serve", "--port", &port.to_string()]));
    let stderr = assert_clear_failure(&output, &format!("cannot listen on 127.0.0.1:{port}"));
    assert!(stderr.contains("--port"), "says how to fix it: {stderr}");
}

#[test]
fn json_logs_are_one_object_per_line_and_hide_secrets() {
    let _outage = outage::shared_blocking();
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        support::openhands(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .env("LOG_JSON", "1")
            .arg("migrate"),
    );
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line["message"].is_string()
                && line["severity"].is_string()
                && line["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| l["message"] == "database ready"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("migrations applied"));
}

#[tokio::test]
async fn the_database_password_never_reaches_the_logs() {
    let _outage = outage::shared().await;
    let test_db = TestDb::postgres().await;
    let admin = url::Url::parse(&test_db.url).unwrap();
    let password = admin.password().unwrap().to_string();
    let output = run(support::openhands(&test_db.url)
        .env("LOG_LEVEL", "debug")
        .arg("migrate"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("***"), "the URL is shown redacted: {all}");
    assert!(
        !all.contains(&format!(":{password}@")),
        "the password never appears"
    );
    test_db.drop_database().await;
}

#[tokio::test]
async fn queue_probe_and_status_work_against_a_running_service() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let port = free_port();
    let _server = ChildGuard::spawn(
        support::openhands(&url)
            .args(["serve", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until_serving(port).await;
    let output =
        run(support::openhands(&url).args(["queue", "probe", "--count", "3", "--timeout", "30s"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("3 probe job(s) completed"), "{stdout}");
    let status = wait_for(
        "the probes to be marked done",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move {
                let output = run(support::openhands(&url).args(["queue", "status"]));
                let stdout = String::from_utf8_lossy(&output.stdout).to_string();
                stdout
                    .lines()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["probe", "Done", "3"])
                    .then_some(stdout)
            }
        },
    )
    .await;
    assert!(!status.contains("Failed"), "{status}");
}

#[test]
fn queue_probe_without_workers_says_what_to_start() {
    let _outage = outage::shared_blocking();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let output = run(support::openhands(&url).args(["queue", "probe", "--timeout", "1s"]));
    assert_clear_failure(&output, "are workers running");
}

#[test]
fn provider_settings_that_cannot_work_are_named() {
    let _outage = outage::shared_blocking();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let output = run(support::openhands(&url)
        .env("GITHUB_WEBHOOK_SECRET", "s")
        .env("GITHUB_APP_ID", "1")
        .env(
            "GITHUB_APP_PRIVATE_KEY",
            "-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----",
        )
        .arg("web"));
    assert_clear_failure(&output, "GITHUB_APP_PRIVATE_KEY");
    assert_eq!(output.status.code(), Some(2));

    let output = run(support::openhands(&url)
        .env("SLACK_API_URL", "slack.com/api")
        .arg("web"));
    assert_clear_failure(&output, "SLACK_API_URL");

    let output = run(support::openhands(&url)
        .env("MENTION_HANDLE", "openhands")
        .arg("web"));
    assert_clear_failure(&output, "MENTION_HANDLE");

    // Sign-in providers need all their settings.
    let output = run(support::openhands(&url)
        .env("GITHUB_OAUTH_CLIENT_ID", "Iv1.abc")
        .arg("web"));
    assert_clear_failure(&output, "GITHUB_OAUTH_CLIENT_SECRET");
    let output = run(support::openhands(&url)
        .env("OIDC_ISSUER", "https://sso.example.com/realms/dev")
        .env("OIDC_CLIENT_ID", "openhands")
        .arg("web"));
    assert_clear_failure(&output, "OIDC_CLIENT_SECRET");

    // Workers act on requests, so they need the provider's API settings.
    let output = run(support::openhands(&url)
        .env("GITLAB_WEBHOOK_TOKEN", "t")
        .arg("worker"));
    assert_clear_failure(&output, "GITLAB_TOKEN");
    let output = run(support::openhands(&url)
        .env("SLACK_SIGNING_SECRET", "s")
        .env("SLACK_BOT_TOKEN", "xoxb-1")
        .arg("worker"));
    assert_clear_failure(&output, "SLACK_TEAM_ID");
    let output = run(support::openhands(&url)
        .env("OPENHANDS_TICKET_REPOSITORIES", "ENG=acme/api")
        .arg("worker"));
    assert_clear_failure(&output, "GITHUB_APP_ID");
}

/// A 202 means stored: the web process killed right after answering loses nothing.
#[tokio::test]
async fn an_accepted_delivery_survives_kill_9_of_the_web_process() {
    let _outage = outage::shared().await;
    let test_db = TestDb::postgres().await;
    let port = free_port();
    let mut server = ChildGuard::spawn(
        support::openhands(&test_db.url)
            .env("GITHUB_WEBHOOK_SECRET", "drill-secret")
            .args(["web", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until_serving(port).await;
    let body = support::fixture("github/issue_comment.created.json");
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    for n in 0..20 {
        let response = signing::github(
            "drill-secret",
            "issue_comment",
            &format!("drill-{n}"),
            body.clone(),
        )
        .post(&client, &format!("http://127.0.0.1:{port}"))
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 202);
        let answer: serde_json::Value = response.json().await.unwrap();
        accepted.push(answer["delivery"].as_i64().unwrap());
    }
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(10));

    for id in accepted {
        let delivery = test_db.db.delivery(id).await.unwrap();
        assert_eq!(delivery.status, "accepted");
        assert_eq!(delivery.payload, body);
    }
    assert_eq!(
        test_db
            .db
            .jobs("intake", Some("Pending"), 100)
            .await
            .unwrap()
            .len(),
        20
    );
    test_db.drop_database().await;
}
