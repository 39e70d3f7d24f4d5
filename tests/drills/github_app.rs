//! A GitHub App made from its manifest against a fake GitHub on loopback: the page posts the
//! manifest GitHub needs, the code GitHub sends back is exchanged for the app's credentials,
//! which are stored sealed and in force at once: a webhook signed with the stored secret is
//! verified (and one signed otherwise is not), and still after a restart.

use crate::support;
use crate::support::outage;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::fakes::{FakeProviders, github};
use support::{ChildGuard, free_port, signing, wait_for};

/// `openhands web` on the SQLite database in `dir`, GitHub at the fakes, nothing else set.
async fn web(dir: &std::path::Path, port: u16, fakes: &FakeProviders) -> ChildGuard {
    let web = ChildGuard::spawn(
        Command::new(support::binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("OPENHANDS_PUBLIC_URL", "https://oh.example.test")
            .env("GITHUB_API_URL", fakes.github_api_url())
            .env("RATE_LIMIT_PER_IP", "0")
            .current_dir(dir)
            .arg("web")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for("the web process", Duration::from_secs(30), || async move {
        reqwest::get(format!("http://127.0.0.1:{port}/alive"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    web
}

/// The value of the attribute `name` in the first tag of `html` that has it, unescaped.
fn attribute(html: &str, name: &str) -> String {
    let start = html
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + name.len()
        + 2;
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_made_from_its_manifest_is_stored_sealed_and_verifies_webhooks() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let fakes = FakeProviders::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let first = web(dir.path(), port, &fakes).await;
    // An administrator, with an API key from the command line.
    let created = Command::new(support::binary())
        .env_clear()
        .current_dir(dir.path())
        .args(["user", "create", "root", "--admin"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&created.stdout);
    let key = printed
        .split_whitespace()
        .find(|word| word.starts_with("oh_"))
        .unwrap_or_else(|| panic!("no key in {printed}"))
        .to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The page: a form that posts the manifest to GitHub, allowed by its policy.
    let page = client
        .get(format!("{base}/setup/github/start?organization=acme"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let action = attribute(&html, "action");
    let web_origin = fakes.url.clone();
    assert!(
        action.starts_with(&format!(
            "{web_origin}/organizations/acme/settings/apps/new?state="
        )),
        "{action}"
    );
    assert!(
        policy.contains(&format!("form-action {web_origin}")),
        "{policy}"
    );
    let manifest: Value = serde_json::from_str(&attribute(&html, "value")).unwrap();
    assert_eq!(
        manifest["hook_attributes"]["url"],
        "https://oh.example.test/api/integration/github/events"
    );
    assert_eq!(
        manifest["redirect_url"],
        "https://oh.example.test/setup/github/callback"
    );
    assert_eq!(manifest["default_permissions"]["pull_requests"], "write");
    assert!(
        manifest["default_events"]
            .as_array()
            .unwrap()
            .contains(&"issue_comment".into())
    );
    let state = action.split_once("state=").unwrap().1.to_string();

    // GitHub's redirect back with another state, or without the cookie, is refused.
    for (state, cookie) in [("forged", cookie.as_str()), (state.as_str(), "")] {
        let refused = client
            .get(format!(
                "{base}/setup/github/callback?code={}&state={state}",
                github::MANIFEST_CODE
            ))
            .bearer_auth(&key)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
    }
    // With both, the code is exchanged and the credentials stored.
    let back = client
        .get(format!(
            "{base}/setup/github/callback?code={}&state={state}",
            github::MANIFEST_CODE
        ))
        .bearer_auth(&key)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 303, "{}", back.text().await.unwrap());
    assert_eq!(
        back.headers()["location"],
        format!("/setup?github_app={}", github::MANIFEST_APP_SLUG).as_str()
    );
    let database = std::fs::read(dir.path().join("data/openhands.db")).unwrap();
    let wal = std::fs::read(dir.path().join("data/openhands.db-wal")).unwrap_or_default();
    for stored in [database, wal] {
        let text = String::from_utf8_lossy(&stored);
        assert!(
            !text.contains(github::MANIFEST_WEBHOOK_SECRET),
            "the secret is sealed"
        );
        assert!(!text.contains("BEGIN RSA PRIVATE KEY") && !text.contains("BEGIN PRIVATE KEY"));
    }

    // At once, and from every start on, GitHub's webhooks are verified with the stored secret.
    let ping = std::fs::read(format!(
        "{}/tests/fixtures/github/ping.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    verified_with_the_stored_secret(&client, &base, &ping, "at-once").await;
    drop(first);
    let _second = web(dir.path(), port, &fakes).await;
    verified_with_the_stored_secret(&client, &base, &ping, "restarted").await;
}

/// A ping signed with the stored secret is taken, one signed otherwise refused.
async fn verified_with_the_stored_secret(
    client: &reqwest::Client,
    base: &str,
    ping: &[u8],
    when: &str,
) {
    for (secret, status) in [
        (github::MANIFEST_WEBHOOK_SECRET, 200),
        ("some-other-secret", 401),
    ] {
        let answer = signing::github(
            secret,
            "ping",
            &format!("ping-{when}-{status}"),
            ping.to_vec(),
        )
        .post(client, base)
        .send()
        .await
        .unwrap();
        assert_eq!(answer.status(), status, "{when}, signed with {secret}");
    }
}
