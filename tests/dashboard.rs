//! The dashboard in a real headless Chromium (driven over WebDriver), against the service's
//! router on a loopback port and a real database: signing in with an API key, every page,
//! a user kept to their own conversations, and the strict Content-Security-Policy. Screenshots
//! of each page are kept in `$TEST_OUTPUT_DIR/screenshots/` (`TEST_OUTPUT_DIR` defaults to
//! `target/test-output`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use openhands::storage::NewConversation;
use openhands::web::{AppState, router};
use serde_json::Value;
use support::TestDb;
use support::browser::{Browser, WebServer};

/// The service on a loopback port, over the test's database.
async fn serve(t: &TestDb) -> WebServer {
    WebServer::start(router(AppState::new(t.db.clone()))).await
}

/// A user and their API key.
async fn user(t: &TestDb, login: &str, admin: bool) -> (String, String) {
    let user = t.db.create_user(login, None, admin).await.unwrap();
    let (key, _) = openhands::web::keys::issue_key(&t.db, &user.id, "test", None)
        .await
        .unwrap();
    (user.id, key)
}

async fn conversation(t: &TestDb, owner_id: &str, title: &str) -> String {
    t.db.create_conversation(&NewConversation {
        owner_id,
        title,
        trigger_kind: "web",
        repository: Some("acme/api"),
        branch: Some("main"),
        external_ref: None,
        trigger_url: None,
    })
    .await
    .unwrap()
    .id
}

/// Signs in on `/login` with `key` and lands on the conversations.
async fn sign_in(browser: &Browser, web: &WebServer, key: &str) {
    browser.goto(&web.at("/login")).await;
    browser.type_text("form#key-form #api-key", key).await;
    browser.click("form#key-form button[type=submit]").await;
    browser.wait("#conversation-list").await;
    browser.wait_for_path("/conversations").await;
}

/// Console lines that mean a script was refused or failed: a Content-Security-Policy
/// violation or an uncaught exception. (A refused request, such as the 401 of a visitor who
/// is not signed in, is logged too, and is not one of these.)
fn script_failures(console: &[String]) -> Vec<&String> {
    console
        .iter()
        .filter(|line| {
            line.contains("Content Security Policy")
                || line.contains("Uncaught")
                || line.contains("SyntaxError")
                || line.contains("TypeError")
        })
        .collect()
}

/// The browser reaches the service on loopback and nothing beyond it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_reaches_the_service_and_only_loopback() {
    let t = TestDb::sqlite().await;
    let web = serve(&t).await;
    let browser = Browser::start().await;

    browser.goto(&web.at("/server_info")).await;
    let shown = browser.text("body").await;
    let info: Value = serde_json::from_str(&shown).unwrap_or_else(|e| {
        panic!("/server_info shows no JSON in the browser ({e}): {shown}");
    });
    assert!(info.is_object(), "{info}");

    // A name outside this machine does not resolve.
    let outside = browser.client().goto("http://example.com/").await;
    let error = outside.expect_err("the browser reached a name outside this machine");
    assert!(
        error.to_string().contains("ERR_NAME_NOT_RESOLVED"),
        "unexpected error for a name outside this machine: {error}"
    );

    browser.close().await;
    t.drop_database().await;
}

/// An administrator signs in with an API key and sees every page; each is photographed, on a
/// desktop window and for some on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_signs_in_with_a_key_and_sees_every_page() {
    let t = TestDb::sqlite().await;
    let (_, key) = user(&t, "ada", true).await;
    let web = serve(&t).await;
    let browser = Browser::start().await;
    let mut console = Vec::new();

    // Not signed in: any page shows the sign-in form.
    browser.goto(&web.at("/conversations")).await;
    browser.wait("form#key-form #api-key").await;
    browser.screenshot("login").await;
    browser.phone_screenshot("login-phone").await;

    // A wrong key is refused on the page.
    browser
        .type_text("form#key-form #api-key", "oh_not-a-key")
        .await;
    browser.click("form#key-form button[type=submit]").await;
    browser
        .wait_for_text("#main .notice.error", "That key is not valid.")
        .await;
    browser.screenshot("login-wrong-key").await;
    console.extend(browser.console().await);

    sign_in(&browser, &web, &key).await;
    browser
        .wait_for_text("#conversation-list", "No conversations yet")
        .await;
    assert!(browser.wait("#nav").await.is_displayed().await.unwrap());
    browser.screenshot("conversations-empty").await;
    browser.phone_screenshot("conversations-empty-phone").await;

    // Through the navigation, without reloading the page.
    browser.click("#nav a[href='/new']").await;
    browser.wait("form#new-form").await;
    browser.wait_for_path("/new").await;
    browser.wait_for_text("#main h1", "New conversation").await;
    browser.screenshot("new").await;
    browser.phone_screenshot("new-phone").await;

    browser.click("#nav a[href='/settings']").await;
    browser.wait("form#llm-form").await;
    browser.wait_for_text("#main h1", "Settings").await;
    browser.screenshot("settings").await;

    browser.click("#nav a[href='/deliveries']").await;
    browser
        .wait_for_text("#delivery-list", "No webhook has arrived yet")
        .await;
    browser.screenshot("deliveries").await;

    browser.click("#nav a[href='/integrations']").await;
    browser.wait_for_text("#main h1", "Integrations").await;
    browser.wait("#main [data-provider='github']").await;
    browser.screenshot("integrations").await;

    // The same pages opened directly.
    for (path, ready) in [
        ("/new", "form#new-form"),
        ("/settings", "form#llm-form"),
        ("/deliveries", "#delivery-list"),
        ("/integrations", "#main [data-provider]"),
        ("/conversations", "#conversation-list"),
    ] {
        browser.goto(&web.at(path)).await;
        browser.wait(ready).await;
    }
    console.extend(browser.console().await);
    let failures = script_failures(&console);
    assert!(
        failures.is_empty(),
        "the pages' scripts failed: {failures:#?}"
    );

    browser.close().await;
    t.drop_database().await;
}

/// A user sees only their own conversations: another user's is in neither their list nor
/// reachable by its address, and the administrators' pages are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_reaches_only_their_own_conversations() {
    let t = TestDb::sqlite().await;
    let (alice, alice_key) = user(&t, "alice", false).await;
    let (bob, _) = user(&t, "bob", false).await;
    let own = conversation(&t, &alice, "Fix the flaky parser test").await;
    let others = conversation(&t, &bob, "Rotate the payroll credentials").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;

    sign_in(&browser, &web, &alice_key).await;
    let list = browser
        .wait_for_text("#conversation-list", "Fix the flaky parser test")
        .await;
    assert!(!list.contains("Rotate the payroll"), "{list}");
    let rows = browser
        .execute(
            "return [...document.querySelectorAll('#conversation-list li[data-id]')].map(li => li.dataset.id);",
            vec![],
        )
        .await;
    assert_eq!(rows, serde_json::json!([own]));
    browser.screenshot("conversations-own").await;

    // Bob's conversation by its address: an error, and nothing of it.
    browser
        .goto(&web.at(&format!("/conversations/{others}")))
        .await;
    browser
        .wait_for_text("#main .notice.error", "conversation not found")
        .await;
    let page = browser.text("body").await;
    assert!(!page.contains("Rotate the payroll"), "{page}");
    assert!(
        browser.text_of("#events").await.is_none(),
        "the conversation view was built for another user's conversation"
    );
    browser.screenshot("conversation-not-found").await;

    // Her own opens.
    browser
        .goto(&web.at(&format!("/conversations/{own}")))
        .await;
    browser
        .wait_for_text("#conversation-header h1", "Fix the flaky parser test")
        .await;
    browser.wait("form#message-form textarea#message").await;
    browser.screenshot("conversation").await;

    // Not an administrator.
    for path in ["/deliveries", "/integrations"] {
        browser.goto(&web.at(path)).await;
        browser
            .wait_for_text("#main .notice.error", "This page is for administrators.")
            .await;
    }
    let admin_links = browser
        .execute(
            "return [...document.querySelectorAll('#nav [data-admin]')].filter(a => !a.hidden).length;",
            vec![],
        )
        .await;
    assert_eq!(admin_links, 0, "administrators' links shown to a user");

    browser.close().await;
    t.drop_database().await;
}

/// The pages run under the strict Content-Security-Policy: the modules render, and inline
/// script and inline event handlers are refused (and reported as violations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_content_security_policy_holds() {
    let t = TestDb::sqlite().await;
    let (_, key) = user(&t, "carol", false).await;
    let web = serve(&t).await;
    let browser = Browser::start().await;

    sign_in(&browser, &web, &key).await;
    browser
        .wait_for_text("#conversation-list", "No conversations yet")
        .await;
    // The modules ran: `#main` holds what they rendered, not the shell's placeholder.
    let main = browser.text("#main").await;
    assert!(!main.contains("Loading…"), "{main}");
    let console = browser.console().await;
    let failures = script_failures(&console);
    assert!(
        failures.is_empty(),
        "the pages' scripts failed: {failures:#?}"
    );

    // Inline script does not run, nor does an inline event handler.
    let inline = browser
        .execute(
            "const s = document.createElement('script');
             s.textContent = 'window.inlineRan = true;';
             document.body.appendChild(s);
             return window.inlineRan === true;",
            vec![],
        )
        .await;
    assert_eq!(inline, false, "an inline script ran");
    let inline_handler = browser
        .execute(
            "const b = document.createElement('button');
             b.setAttribute('onclick', 'window.handlerRan = true;');
             document.body.appendChild(b);
             b.click();
             return window.handlerRan === true;",
            vec![],
        )
        .await;
    assert_eq!(inline_handler, false, "an inline event handler ran");
    let console = browser.console().await;
    assert!(
        console
            .iter()
            .any(|line| line.contains("Content Security Policy")),
        "the refused inline script is not reported: {console:#?}"
    );

    browser.close().await;
    t.drop_database().await;
}

/// A whole run watched and steered from the dashboard: a new conversation started in the
/// browser runs against the scripted model in a real Docker sandbox, its command and answer
/// appear live, a message sent from the page continues it, and Stop ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_is_started_watched_answered_and_stopped_in_the_browser() {
    use openhands::agent::AgentRuntime;
    use openhands::agent::llm::LlmClient;
    use openhands::agent::settings::AgentSettings;
    use openhands::live::EventBus;
    use openhands::queue::{self, JobContext, WorkerSettings};
    use openhands::sandbox::docker::DockerBackend;
    use serde_json::json;
    use std::time::Duration;
    use support::fake_llm::{FakeLlm, Turn};
    use support::sandbox::{OwnerCleanup, settings as sandbox_settings};
    use tokio_util::sync::CancellationToken;

    let t = TestDb::sqlite().await;
    let fake = FakeLlm::start(vec![
        Turn::call(
            "execute_bash",
            json!({"command": "echo hello-from-the-sandbox"}),
        ),
        Turn::text("The sandbox says hello. Anything else?"),
        Turn::call("execute_bash", json!({"command": "sleep 4"})),
        Turn::call("execute_bash", json!({"command": "echo never-run"})),
    ])
    .await;
    let llm = LlmClient::new(
        "openai/gpt-fake",
        Some("sk-test".parse().unwrap()),
        Some(&fake.base_url()),
    )
    .unwrap();
    let sandbox = sandbox_settings();
    let _cleanup = OwnerCleanup(sandbox.sandbox_owner.clone().unwrap());
    let backend = DockerBackend::connect(&sandbox).await.unwrap();
    let bus = EventBus::default();
    let stop = CancellationToken::new();
    let runtime = AgentRuntime::new(AgentSettings::default(), Some(llm), sandbox, stop.clone())
        .unwrap()
        .with_sandboxes(backend)
        .with_bus(bus.clone());
    let ctx = JobContext {
        agent: Some(std::sync::Arc::new(runtime)),
        ..JobContext::new(t.db.clone())
    };
    let workers = WorkerSettings {
        poll_interval: Duration::from_millis(20),
        ..WorkerSettings::default()
    };
    tokio::spawn(queue::run_workers(
        ctx,
        workers,
        stop.clone().cancelled_owned(),
    ));
    let web = WebServer::start(router(AppState::new(t.db.clone()).with_bus(bus))).await;
    let (_, key) = user(&t, "alice", false).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;

    browser.click("a[href='/new']").await;
    browser
        .type_text("#task", "Say hello from the sandbox")
        .await;
    browser.click("form#new-form button[type=submit]").await;
    browser.wait("#events").await;
    let id = browser
        .path()
        .await
        .strip_prefix("/conversations/")
        .unwrap()
        .to_string();

    // The command, its exit code and the agent's answer arrive live.
    browser
        .wait_for_text("#events", "$ echo hello-from-the-sandbox")
        .await;
    browser.wait_for_text("#events", "exit code 0").await;
    browser
        .wait_for_text("#events", "The sandbox says hello. Anything else?")
        .await;
    browser.wait_for_text("#connection", "Live").await;
    browser.screenshot("conversation-live").await;

    // A message from the page continues the run; Stop ends it after the running command.
    browser.type_text("#message", "Now take a short nap").await;
    browser.click("form#message-form button[type=submit]").await;
    browser
        .wait_for_text("#events", "Now take a short nap")
        .await;
    browser.wait_for_text("#events", "$ sleep 4").await;
    browser.click("#stop").await;
    browser.wait_for_text("#events", "State: stopped").await;
    browser
        .wait_for_text("#conversation-header", "stopped")
        .await;
    browser.screenshot("conversation-stopped").await;
    let header = browser.text("#conversation-header").await;
    assert!(
        !header.contains("null") && !header.contains("undefined"),
        "{header}"
    );
    let stored = t.db.conversation(&id).await.unwrap();
    assert_eq!(stored.status, "stopped");
    assert_eq!(
        fake.requests().len(),
        3,
        "the step after the stop never ran"
    );
    assert!(!browser.text("#events").await.contains("never-run"));
    let failures = script_failures(&browser.console().await)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert!(failures.is_empty(), "{failures:#?}");
    stop.cancel();
}

/// An administrator opens the deliveries page after a signed webhook arrived: the delivery is
/// listed with its provider, event and status, and the integrations page shows it as the
/// provider's last delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_shows_on_the_deliveries_and_integrations_pages() {
    use clap::Parser;
    use openhands::config::Cli;
    use openhands::integrations::Webhooks;

    const SECRET: &str = "dashboard-linear-secret";
    let t = TestDb::sqlite().await;
    let cli = Cli::try_parse_from([
        "openhands",
        "--linear-webhook-secret",
        SECRET,
        "--linear-organization-id",
        "org-1",
        "serve",
    ])
    .unwrap();
    cli.config.validate().unwrap();
    let state =
        AppState::new(t.db.clone()).with_webhooks(Webhooks::from_config(&cli.config.providers));
    let web = WebServer::start(router(state)).await;

    let (body, signature) = support::linear::signed_comment(SECRET, "dashboard-comment-1");
    let answer = reqwest::Client::new()
        .post(web.at("/api/integration/linear/events"))
        .header("content-type", "application/json")
        .header("linear-delivery", "dashboard-delivery-1")
        .header("linear-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);

    let (_, key) = user(&t, "root", true).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.click("#nav a[href='/deliveries']").await;
    let row = browser
        .wait_for_text("#delivery-list tbody tr", "Linear")
        .await;
    assert!(row.contains("Redeliver"), "{row}");
    browser.screenshot("deliveries-after-webhook").await;
    browser.click("#nav a[href='/integrations']").await;
    let card = browser
        .wait_for_text("article[data-provider=linear]", "configured")
        .await;
    assert!(!card.contains("not configured"), "{card}");
    assert!(card.contains("Last delivery:"), "{card}");
    assert!(
        card.contains("http://localhost:3000/api/integration/linear/events"),
        "{card}"
    );
    let github = browser.text("article[data-provider=github]").await;
    assert!(github.contains("not configured"), "{github}");
}

/// Error states are said plainly: no model for the agent (the server has none and the user
/// chose none), and why a run stopped in error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_model_and_a_failed_run_are_said_plainly() {
    use openhands::agent::events::{AgentState, state_changed};
    use openhands::storage::NewEvent;

    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "Fix the build").await;
    let stopped = state_changed(
        AgentState::Error,
        "The sandbox could not be started: the Docker engine is not reachable",
    );
    t.db.append_event(
        &id,
        &NewEvent {
            source: stopped.source,
            kind: &stopped.kind,
            payload: &stopped.doc,
        },
    )
    .await
    .unwrap();

    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser
        .wait_for_text("#llm-warning", "No language model is configured")
        .await;
    browser.screenshot("conversations-without-a-model").await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser
        .wait_for_text("#run-error", "the Docker engine is not reachable")
        .await;
    browser.screenshot("conversation-run-error").await;
    drop(browser);

    // With a server model there is nothing to warn about.
    let configured =
        WebServer::start(router(AppState::new(t.db.clone()).with_server_llm(true))).await;
    let second = Browser::start().await;
    sign_in(&second, &configured, &key).await;
    second.wait("#conversation-list li").await;
    assert_eq!(second.text_of("#llm-warning").await, None);
}

/// Signing in through GitHub in the browser: the sign-in page offers it, the (fake) GitHub
/// sends the browser back, and the session shows the account's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_github_in_the_browser() {
    use openhands::web::login::{Login, LoginSettings};
    use support::fake_login::{Account, FakeLogin, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET};

    let t = TestDb::sqlite().await;
    let fake = FakeLogin::start("http://127.0.0.1").await;
    let settings = LoginSettings {
        github_oauth_client_id: Some(GITHUB_CLIENT_ID.into()),
        github_oauth_client_secret: Some(GITHUB_CLIENT_SECRET.parse().unwrap()),
        github_oauth_url: fake.github_oauth_url(),
        allowed_users: vec!["octocat".into()],
        ..LoginSettings::default()
    };
    let web = WebServer::start_with(|url| {
        // The callback comes back to where the service is reached.
        fake.set_public_url(url);
        router(
            AppState::new(t.db.clone())
                .with_public_url(url)
                .with_login(Login::new(&settings, url, &fake.github_api_url())),
        )
    })
    .await;
    fake.sign_in_as(Some(Account::new("583231", "octocat")));

    let browser = Browser::start().await;
    browser.goto(&web.at("/login")).await;
    browser.screenshot("login-with-providers").await;
    browser.click("a.button[href^='/auth/github/login']").await;
    browser.wait("#conversation-list").await;
    browser.wait_for_path("/conversations").await;
    browser.wait_for_text("#who", "github:octocat").await;
}

/// The live view survives the web process going away: events written while it is down appear
/// once it is back, after those already shown, with no gap and no duplicate (PostgreSQL; the
/// events are written by this test, as a worker on another node would write them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_resumes_without_gaps_after_the_web_process_restarts() {
    use openhands::agent::events::user_message;
    use openhands::storage::NewEvent;
    use std::time::Duration;
    use support::ChildGuard;

    let t = TestDb::postgres().await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "Watch me").await;
    let say = |text: String| {
        let t = &t;
        let id = id.clone();
        async move {
            let draft = user_message(&text, false, serde_json::json!({}));
            t.db.append_event(
                &id,
                &NewEvent {
                    source: draft.source,
                    kind: &draft.kind,
                    payload: &draft.doc,
                },
            )
            .await
            .unwrap();
        }
    };
    let port = support::free_port();
    let start_web = || {
        ChildGuard::spawn(
            support::openhands(&t.url)
                .env("PORT", port.to_string())
                // Sessions outlive a restart only with a stable key.
                .env(
                    "OPENHANDS_SECRET_KEY",
                    "a-stable-secret-key-of-at-least-32-chars",
                )
                .arg("web"),
        )
    };
    let alive = || async move {
        support::wait_for(
            "the web process to answer",
            Duration::from_secs(30),
            || async move {
                reqwest::get(format!("http://127.0.0.1:{port}/alive"))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    };
    let mut web = start_web();
    alive().await;
    let base = format!("http://127.0.0.1:{port}");
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/login")).await;
    browser.type_text("form#key-form #api-key", &key).await;
    browser.click("form#key-form button[type=submit]").await;
    browser.wait("#conversation-list").await;
    browser.goto(&format!("{base}/conversations/{id}")).await;
    browser.wait_for_text("#connection", "Live").await;
    say("first, while connected".into()).await;
    browser
        .wait_for_text("#events", "first, while connected")
        .await;

    web.signal("KILL");
    web.wait_exit(Duration::from_secs(10));
    browser.wait_for_text("#connection", "reconnecting").await;
    for n in 1..=3 {
        say(format!("written while the web process was down {n}")).await;
    }
    web = start_web();
    alive().await;
    browser
        .wait_for_text("#events", "written while the web process was down 3")
        .await;
    browser.wait_for_text("#connection", "Live").await;
    say("after the restart".into()).await;
    browser.wait_for_text("#events", "after the restart").await;
    browser.screenshot("conversation-resumed").await;

    let shown = browser
        .execute(
            "return [...document.querySelectorAll('#events li')].map(li => li.dataset.eventId);",
            vec![],
        )
        .await;
    let ids: Vec<i64> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=5).collect::<Vec<i64>>(),
        "every event once, in order"
    );
    drop(web);
    drop(browser);
    t.drop_database().await;
}

/// Settings in the browser: the model and a key saved (the key never shown again), an API key
/// shown once and revoked, a secret added without its value ever coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_keys_and_secrets_are_managed_in_the_browser() {
    use openhands::crypto::Keyring;

    let t = TestDb::sqlite().await;
    let secret: openhands::config::Secret =
        "a-dashboard-test-secret-key-of-32-chars!".parse().unwrap();
    let web = WebServer::start(router(
        AppState::new(t.db.clone()).with_keyring(Keyring::new(Some(&secret))),
    ))
    .await;
    let (alice, key) = user(&t, "alice", false).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.click("#nav a[href='/settings']").await;

    browser.type_text("#llm-model", "openai/gpt-4o").await;
    browser
        .type_text("#llm-api-key", "sk-typed-in-the-browser")
        .await;
    browser.click("form#llm-form button[type=submit]").await;
    browser.wait_for_text("form#llm-form", "Saved.").await;
    let llm = t.db.user_llm(&alice).await.unwrap();
    assert_eq!(llm.llm_model.as_deref(), Some("openai/gpt-4o"));
    assert!(llm.llm_api_key.is_some());
    let field = browser
        .execute(
            "return document.querySelector('#llm-api-key').value;",
            vec![],
        )
        .await;
    assert_eq!(field, "", "the key is not kept in the page");

    browser.type_text("#key-name", "laptop").await;
    browser.click("form#key-form-new button[type=submit]").await;
    let shown = browser.text("#new-key").await;
    assert!(shown.starts_with("oh_"), "{shown}");
    browser.wait_for_text("#key-list", "laptop").await;
    browser.screenshot("settings-key-created").await;
    browser.click("#key-list li:last-child button.danger").await;
    let started = std::time::Instant::now();
    while browser.text("#key-list").await.contains("laptop") {
        assert!(started.elapsed().as_secs() < 20, "the key was not revoked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response = reqwest::Client::new()
        .get(web.at("/api/user"))
        .bearer_auth(&shown)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        401,
        "a revoked key opens nothing"
    );

    browser.type_text("#secret-name", "DEPLOY_TOKEN").await;
    browser.type_text("#secret-value", "s3cr3t-value").await;
    browser.click("form#secret-form button[type=submit]").await;
    browser.wait_for_text("#secret-list", "DEPLOY_TOKEN").await;
    browser.goto(&web.at("/settings")).await;
    browser.wait_for_text("#secret-list", "DEPLOY_TOKEN").await;
    let page = browser.text("#main").await;
    assert!(
        !page.contains("s3cr3t-value") && !page.contains("sk-typed-in-the-browser"),
        "{page}"
    );
}
