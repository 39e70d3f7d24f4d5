//! A newcomer's path in the browser, on the binary as the run command starts it: a fresh data
//! directory, the sign-in link the first start prints, the set-up page, a model typed, tested
//! against the scripted model and saved, then a conversation that runs in a sandbox.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use crate::support;
use support::browser::Browser;
use support::fake_llm::{FakeLlm, Turn};
use support::sandbox::{OwnerCleanup, test_image};
use support::{ChildGuard, free_port, wait_for};

/// `openhands serve` in `dir` with nothing configured but this machine's sandboxes, and the
/// sign-in link it prints.
async fn serve_fresh(dir: &std::path::Path, port: u16, owner: &str) -> (ChildGuard, String) {
    let mut command = Command::new(support::binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("OPENHANDS_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("SANDBOX_IMAGE", test_image())
        .env("SANDBOX_OWNER", owner)
        .env("SANDBOX_WARM_POOL", "0")
        .env("RATE_LIMIT_PER_IP", "0")
        // GitLab is connected from the set-up page; its API is never reached here.
        .env("GITLAB_API_URL", "http://127.0.0.1:9/api/v4")
        .current_dir(dir)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut serve = ChildGuard::spawn(&mut command);
    let (lines, printed) = mpsc::channel();
    let stdout = serve.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let prefix = format!("http://127.0.0.1:{port}/login?token=");
    let link = wait_for("the sign-in link", Duration::from_secs(60), || {
        let found = printed
            .try_iter()
            .find(|line| line.trim().starts_with(&prefix))
            .map(|line| line.trim().to_string());
        async move { found }
    })
    .await;
    (serve, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_signs_in_with_the_printed_link_sets_a_model_and_runs_a_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let owner = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
    let _cleanup = OwnerCleanup(owner.clone());
    let llm = FakeLlm::start(vec![
        Turn::call(
            "execute_bash",
            json!({"command": "echo hello-from-a-first-sandbox", "security_risk": "LOW"}),
        ),
        Turn::call("finish", json!({"message": "The sandbox said hello."})),
    ])
    .await;
    let (_serve, link) = serve_fresh(dir.path(), port, &owner).await;

    let browser = Browser::start().await;
    browser.goto(&link).await;
    // Signed in as the first administrator, on the set-up page, the token gone from the bar.
    browser.wait_for_path("/setup").await;
    assert_eq!(browser.text("#who").await, "admin");
    browser
        .wait_for_text("#setup-checks", "sandbox image")
        .await;
    let docker = browser.text("[data-check='docker']").await;
    assert!(docker.starts_with("ok"), "{docker}");
    // Slack's app manifest is ready to paste, with this service's addresses.
    let manifest = browser
        .wait_for_text("#slack-manifest", "/api/integration/slack/interactivity")
        .await;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["settings"]["event_subscriptions"]["request_url"],
        format!("http://127.0.0.1:{port}/api/integration/slack/events")
    );
    assert_eq!(
        browser.text("#start-github-app").await,
        "Create the GitHub App"
    );
    browser.screenshot("setup").await;
    browser.phone_screenshot("setup-phone").await;

    // A model typed, tested (nothing saved yet), then saved.
    browser
        .type_text("#setup-model", "openai/gpt-newcomer")
        .await;
    browser.type_text("#setup-base-url", &llm.base_url()).await;
    browser.type_text("#setup-key", "sk-newcomer-key").await;
    browser.click("#test-model").await;
    let answer = browser.wait_for_text("#model-test", "answered").await;
    assert!(
        answer.contains("gpt-newcomer") && answer.contains("SUMMARY 1"),
        "{answer}"
    );
    assert_eq!(llm.requests().len(), 1);
    browser.click("#save-model").await;
    browser.wait_for_text("#model-test", "Saved").await;
    assert!(!browser.text("main").await.contains("sk-newcomer-key"));

    // Until a provider is connected, the administrator's home page says where to connect one.
    browser.click("#nav a[href='/conversations']").await;
    browser
        .wait_for_text("#setup-notice", "No provider is connected yet")
        .await;
    browser.click("#setup-notice a[href='/setup']").await;
    browser.wait_for_path("/setup").await;

    // GitLab connected from the set-up page: in force at once, without a restart.
    let gitlab = "#setup-connections article[data-provider=gitlab]";
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let note = |token: &str, uuid: &str| {
        support::signing::gitlab(
            token,
            "Note Hook",
            uuid,
            support::fixture("gitlab/note.issue.json"),
        )
        .post(&http, &base)
    };
    let before = note("newcomer-hook-token", "newcomer-1")
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 404, "GitLab is not enabled yet");
    browser
        .wait_for_text(&format!("{gitlab} h2"), "not configured")
        .await;
    browser
        .type_text("#setting-gitlab-token", "glpat-newcomer-token")
        .await;
    browser
        .type_text("#setting-gitlab-webhook-token", "newcomer-hook-token")
        .await;
    browser
        .click(&format!("{gitlab} button[type=submit]"))
        .await;
    browser
        .wait_for_text(&format!("{gitlab} .result"), "accepted now")
        .await;
    let heading = browser.text(&format!("{gitlab} h2")).await;
    assert!(!heading.contains("not configured"), "{heading}");
    let placeholder = browser
        .execute(
            "return document.querySelector('#setting-gitlab-token').placeholder;",
            vec![],
        )
        .await;
    assert_eq!(placeholder, "stored — type to replace");
    assert!(!browser.text("main").await.contains("glpat-newcomer-token"));
    // Verified with the stored secret token: a wrong one is refused, the right one accepted.
    let wrong = note("another-token", "newcomer-2").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = note("newcomer-hook-token", "newcomer-3")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 202);
    browser.click("#nav a[href='/conversations']").await;
    browser.wait("#conversation-list").await;
    assert_eq!(browser.text_of("#setup-notice").await, None);

    // The first conversation runs in a sandbox of this machine, with that model.
    browser.click("a[href='/new']").await;
    browser
        .type_text("#task", "Say hello from the sandbox")
        .await;
    browser.click("form#new-form button[type=submit]").await;
    browser
        .wait_for_text("#events", "$ echo hello-from-a-first-sandbox")
        .await;
    browser
        .wait_for_text("#events", "The sandbox said hello.")
        .await;
    browser.screenshot("first-conversation").await;
    let asked = llm.requests();
    assert!(asked.len() >= 3, "{} requests", asked.len());
    let console = browser.console().await;
    let failures = crate::dashboard::script_failures(&console);
    assert!(failures.is_empty(), "{failures:?}");

    // The link worked once.
    browser.click("#sign-out").await;
    browser.wait_for_path("/login").await;
    browser.goto(&link).await;
    browser
        .wait_for_text("main", "used already or has expired")
        .await;
    browser.close().await;
}
