//! `openhands doctor` against providers and a model that answer, and against ones that refuse:
//! one line per check, the fix beside each failure, and the exit status.

use crate::support;
use crate::support::outage;

use std::process::{Output, Stdio};
use std::time::Duration;

use support::fake_llm::FakeLlm;
use support::fakes::{self, FakeProviders};
use support::{ChildGuard, free_port, wait_for};

/// Every provider pointed at the fakes with the credentials they know, the model at `llm`,
/// the sandbox image the tests build, and `public_url`.
fn configured(
    fakes: &FakeProviders,
    llm: &FakeLlm,
    public_url: &str,
) -> Vec<(&'static str, String)> {
    let key_path = format!(
        "{}/tests/fixtures/github-app/private-key.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let image = std::env::var("SANDBOX_TEST_IMAGE").unwrap_or("openhands-sandbox:test".into());
    vec![
        ("OPENHANDS_PUBLIC_URL", public_url.to_string()),
        ("GITHUB_APP_ID", fakes::GITHUB_APP_ID.to_string()),
        ("GITHUB_APP_PRIVATE_KEY", key_path),
        ("GITHUB_API_URL", fakes.github_api_url()),
        ("GITHUB_WEBHOOK_SECRET", "github-secret".into()),
        ("GITLAB_TOKEN", fakes::GITLAB_TOKEN.into()),
        ("GITLAB_API_URL", fakes.gitlab_api_url()),
        ("GITLAB_WEBHOOK_TOKEN", "gitlab-secret".into()),
        ("SLACK_BOT_TOKEN", fakes::SLACK_BOT_TOKEN.into()),
        ("SLACK_API_URL", fakes.slack_api_url()),
        ("SLACK_TEAM_ID", "T0001".into()),
        ("SLACK_SIGNING_SECRET", "slack-secret".into()),
        ("JIRA_BASE_URL", fakes.jira_site_url()),
        ("JIRA_EMAIL", fakes::JIRA_EMAIL.into()),
        ("JIRA_API_TOKEN", fakes::JIRA_API_TOKEN.into()),
        ("JIRA_WEBHOOK_SECRET", "jira-secret".into()),
        ("JIRA_DC_BASE_URL", fakes.jira_dc_site_url()),
        ("JIRA_DC_TOKEN", fakes::JIRA_DC_TOKEN.into()),
        ("JIRA_DC_WEBHOOK_SECRET", "jira-dc-secret".into()),
        ("LINEAR_API_KEY", fakes::LINEAR_API_KEY.into()),
        ("LINEAR_API_URL", fakes.linear_api_url()),
        ("LINEAR_ORGANIZATION_ID", "org-1".into()),
        ("LINEAR_WEBHOOK_SECRET", "linear-secret".into()),
        ("LLM_MODEL", "openai/gpt-doctor".into()),
        ("LLM_API_KEY", "sk-doctor".into()),
        ("LLM_BASE_URL", llm.base_url()),
        ("SANDBOX_IMAGE", image),
    ]
}

/// `openhands doctor`, waited for off the runtime's threads: the fakes answer on them.
async fn doctor(database_url: &str, settings: &[(&str, String)]) -> (Output, String) {
    let mut command = support::openhands(database_url);
    command
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("doctor")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, printed)
}

fn line<'a>(printed: &'a str, start: &str) -> &'a str {
    printed
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{printed}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_what_answers_and_names_the_fix_for_what_refuses() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let fakes = FakeProviders::start().await;
    fakes.set_github_installation("octo-org/hello-world", 4242);
    let llm = FakeLlm::start(Vec::new()).await;

    // The service itself, answering at the public URL.
    let port = free_port();
    let _web = ChildGuard::spawn(
        support::openhands(&url)
            .env("PORT", port.to_string())
            .env("GITHUB_WEBHOOK_SECRET", "github-secret")
            .arg("web"),
    );
    let public_url = format!("http://127.0.0.1:{port}");
    wait_for("the web process", Duration::from_secs(30), || {
        let alive = format!("{public_url}/alive");
        async move { reqwest::get(alive).await.ok().map(|_| ()) }
    })
    .await;

    let settings = configured(&fakes, &llm, &public_url);
    let (output, printed) = doctor(&url, &settings).await;
    assert!(output.status.success(), "{printed}");
    for (start, says) in [
        ("ok    database:", "migrations applied"),
        ("ok    docker:", "answers"),
        ("ok    sandbox image:", "is present"),
        ("ok    model:", "gpt-doctor answered \"SUMMARY 1\""),
        (
            "ok    GitHub App:",
            "OpenHands Test, installed on 1 account(s)",
        ),
        ("ok    GitLab:", fakes::GITLAB_BOT_USERNAME),
        ("ok    Slack:", "openhands in team T0001"),
        (
            "ok    Jira:",
            &format!("[~accountid:{}]", fakes::JIRA_ACCOUNT_ID),
        ),
        (
            "ok    Jira Data Center:",
            &format!("[~{}]", fakes::JIRA_DC_USERNAME),
        ),
        ("ok    Linear:", fakes::LINEAR_PROFILE_URL),
        ("ok    provider settings:", "what its answers use"),
        ("ok    public URL:", "reaches the webhook endpoint"),
        (
            "ok    webhook secrets:",
            "GitHub, GitLab, Slack, Jira, Jira Data Center, Linear",
        ),
    ] {
        assert!(
            line(&printed, start).contains(says),
            "{start} {says}:\n{printed}"
        );
    }
    assert_eq!(llm.requests().len(), 1, "one tiny completion");

    // Wrong credentials everywhere, a model address that is not an LLM API, a missing image,
    // a public URL where nothing answers, and a provider without its webhook secret.
    let wrong: Vec<(&str, String)> = settings
        .into_iter()
        .filter(|(name, _)| *name != "LINEAR_WEBHOOK_SECRET")
        .map(|(name, value)| {
            let value = match name {
                "GITHUB_APP_ID" => "1".to_string(),
                "GITLAB_TOKEN" | "SLACK_BOT_TOKEN" | "JIRA_API_TOKEN" | "JIRA_DC_TOKEN"
                | "LINEAR_API_KEY" | "LLM_API_KEY" => format!("{value}-wrong"),
                "SANDBOX_IMAGE" => "openhands-sandbox:missing-for-doctor".to_string(),
                "LLM_BASE_URL" => format!("{}/not-an-llm", fakes.url),
                "OPENHANDS_PUBLIC_URL" => format!("http://127.0.0.1:{}", free_port()),
                _ => value,
            };
            (name, value)
        })
        .collect();
    let (output, printed) = doctor(&url, &wrong).await;
    assert_eq!(output.status.code(), Some(1), "{printed}");
    for (start, fix) in [
        (
            "FAIL  sandbox image:",
            "openhands sandbox build-image --tag openhands-sandbox:missing-for-doctor",
        ),
        ("FAIL  model:", "LLM_BASE_URL"),
        ("FAIL  GitHub App:", "GITHUB_APP_ID"),
        ("FAIL  GitLab:", "GITLAB_TOKEN"),
        ("FAIL  Slack:", "SLACK_BOT_TOKEN"),
        ("FAIL  Jira:", "JIRA_API_TOKEN"),
        ("FAIL  Jira Data Center:", "JIRA_DC_TOKEN"),
        ("FAIL  Linear:", "LINEAR_API_KEY"),
        ("FAIL  public URL:", "OPENHANDS_PUBLIC_URL"),
        ("FAIL  webhook secrets:", "LINEAR_WEBHOOK_SECRET"),
    ] {
        let at = printed
            .find(&format!("\n{start}"))
            .unwrap_or_else(|| panic!("no {start:?} in:\n{printed}"));
        let fix_line = printed[at + 1..].lines().nth(1).unwrap_or_default();
        assert!(
            fix_line.trim_start().starts_with("fix:") && printed[at..].contains(fix),
            "{start} names {fix}:\n{printed}"
        );
    }
    assert!(printed.contains("ok    database:"), "{printed}");
    for secret in [
        "sk-doctor-wrong",
        "jira-api-token-wrong",
        fakes::GITLAB_TOKEN,
    ] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(printed.contains("check(s) failed"), "{printed}");
}
