//! The dashboard in a real headless Chromium (driven over WebDriver), against the service's
//! router on a loopback port and a real database: signing in with an API key, every page,
//! a user kept to their own conversations, and the strict Content-Security-Policy. Screenshots
//! of each page are kept in `$TEST_OUTPUT_DIR/screenshots/` (`TEST_OUTPUT_DIR` defaults to
//! `target/test-output`).

use crate::support;

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
pub(crate) async fn user(t: &TestDb, login: &str, admin: bool) -> (String, String) {
    support::user_with_key(&t.db, login, admin).await
}

pub(crate) async fn conversation(t: &TestDb, owner_id: &str, title: &str) -> String {
    t.db.create_conversation(&NewConversation {
        owner_id,
        title,
        trigger_kind: "web",
        repository: Some("acme/api"),
        branch: Some("main"),
        git_provider: Some("github"),
        external_ref: None,
        trigger_url: None,
        title_pending: false,
    })
    .await
    .unwrap()
    .id
}

/// A conversation started from `trigger`, with a link back to where it was asked.
async fn triggered_conversation(
    t: &TestDb,
    owner_id: &str,
    title: &str,
    trigger: &str,
    trigger_url: Option<&str>,
) -> String {
    t.db.create_conversation(&NewConversation {
        owner_id,
        title,
        trigger_kind: trigger,
        repository: Some("acme/api"),
        branch: Some("main"),
        git_provider: Some("github"),
        external_ref: None,
        trigger_url,
        title_pending: false,
    })
    .await
    .unwrap()
    .id
}

/// Intake jobs ever queued, whatever became of them.
async fn intake_jobs(t: &TestDb) -> i64 {
    t.db.job_status_counts()
        .await
        .unwrap()
        .iter()
        .filter(|row| row.queue.contains("intake"))
        .map(|row| row.count)
        .sum()
}

/// Appends an event to a conversation's log, as a worker would.
pub(crate) async fn append(t: &TestDb, id: &str, draft: &openhands::agent::events::Draft) -> i64 {
    t.db.append_event(
        id,
        &openhands::storage::NewEvent {
            source: draft.source,
            kind: &draft.kind,
            payload: &draft.doc,
        },
    )
    .await
    .unwrap()
}

/// Sets a conversation's status, as a run would.
pub(crate) async fn set_status(t: &TestDb, id: &str, status: &str) {
    let mut tx = t.db.begin().await.unwrap();
    tx.set_conversation_status(id, status).await.unwrap();
    tx.commit().await.unwrap();
}

/// The ids of the conversations the list shows, in order.
async fn listed_ids(browser: &Browser) -> Vec<String> {
    let ids = browser
        .execute(
            "return [...document.querySelectorAll('#conversation-list li[data-id]')].map(li => li.dataset.id);",
            vec![],
        )
        .await;
    serde_json::from_value(ids).unwrap()
}

/// Signs in on `/login` with `key` and lands on the conversations.
pub(crate) async fn sign_in(browser: &Browser, web: &WebServer, key: &str) {
    browser.goto(&web.at("/login")).await;
    browser.type_text("form#key-form #api-key", key).await;
    browser.click("form#key-form button[type=submit]").await;
    browser.wait("#conversation-list").await;
    browser.wait_for_path("/conversations").await;
}

/// Console lines that mean a script was refused or failed: a Content-Security-Policy
/// violation or an uncaught exception. (A refused request, such as the 401 of a visitor who
/// is not signed in, is logged too, and is not one of these.)
pub(crate) fn script_failures(console: &[String]) -> Vec<&String> {
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

/// Fails listing the page's script failures, if it had any.
pub(crate) async fn assert_no_script_failures(browser: &Browser) {
    let console = browser.console().await;
    let failures = script_failures(&console);
    assert!(failures.is_empty(), "{failures:#?}");
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
    browser.phone_screenshot("settings-phone").await;

    browser.click("#nav a[href='/deliveries']").await;
    browser
        .wait_for_text("#delivery-list", "No webhook has arrived yet")
        .await;
    browser.screenshot("deliveries").await;
    browser.phone_screenshot("deliveries-phone").await;

    browser.click("#nav a[href='/integrations']").await;
    browser.wait_for_text("#main h1", "Integrations").await;
    browser.wait("#main [data-provider='github']").await;
    browser.screenshot("integrations").await;
    browser.phone_screenshot("integrations-phone").await;

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
    browser.phone_screenshot("conversation-phone").await;

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
    assert_no_script_failures(&browser).await;

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
    use openhands::queue::WorkerSettings;
    use serde_json::json;
    use std::time::Duration;
    use support::fake_llm::Turn;
    use support::service::Service;

    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db)
        .web()
        .agent(vec![
            Turn::call(
                "execute_bash",
                json!({"command": "echo hello-from-the-sandbox"}),
            ),
            Turn::text("The sandbox says hello. Anything else?"),
            // Slow enough to press Stop while the model is still answering.
            Turn::call(
                "execute_bash",
                json!({"command": "printf done > /workspace/ran.txt && echo the-command-ran"}),
            )
            .after(Duration::from_secs(4)),
            Turn::call("execute_bash", json!({"command": "echo never-asked"})),
        ])
        .worker_settings(WorkerSettings {
            poll_interval: Duration::from_millis(20),
            ..WorkerSettings::default()
        })
        .start()
        .await;
    let fake = service.llm();
    let web = WebServer::start(service.app()).await;
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

    // A message continues the run; Stop, pressed while the model is still answering, takes
    // effect before its command runs: the command is answered as not run.
    browser.type_text("#message", "Now write the file").await;
    browser.click("form#message-form button[type=submit]").await;
    browser.wait_for_text("#events", "Now write the file").await;
    browser.wait_for_text("#working", "thinking").await;
    browser.screenshot("conversation-thinking").await;
    browser.click("#stop").await;
    browser.wait_for_text("#events", "Stop requested").await;
    browser.wait_for_text("#events", "State: stopped").await;
    browser
        .wait_for_text("#conversation-header", "stopped")
        .await;
    browser
        .wait_for_text("#events", "Not run: the user stopped the agent")
        .await;
    browser
        .wait_for_text("#terminal-log", "Not run: the user stopped the agent")
        .await;
    browser.screenshot("conversation-stopped").await;
    let header = browser.text("#conversation-header").await;
    assert!(
        !header.contains("null") && !header.contains("undefined"),
        "{header}"
    );
    let stored = t.db.conversation(&id).await.unwrap();
    assert_eq!(stored.status, "stopped");
    assert_eq!(fake.tool_requests(), 3, "the model was not asked again");
    let outputs =
        t.db.events_after(&id, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "run" && e.source == "environment")
            .count();
    assert_eq!(outputs, 1, "only the first command ran");
    assert_no_script_failures(&browser).await;
    service.stop();
}

/// An administrator opens the deliveries page after a signed webhook arrived: the delivery is
/// listed with its provider, event and status, and the integrations page shows it as the
/// provider's last delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_shows_on_the_deliveries_and_integrations_pages() {
    use support::service::Service;

    const SECRET: &str = "dashboard-linear-secret";
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db)
        .set("--linear-webhook-secret", SECRET)
        .set("--linear-organization-id", "org-1")
        .web()
        .start()
        .await;
    let web = WebServer::start(service.app()).await;

    let answer =
        support::linear::signed_comment(SECRET, "dashboard-comment-1", "dashboard-delivery-1")
            .post(&reqwest::Client::new(), &web.url)
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
    // On a phone each delivery is a card of its own; the page does not scroll sideways.
    browser.resize(support::browser::PHONE).await;
    crate::layout::assert_fits(&browser, "deliveries").await;
    browser.screenshot("deliveries-after-webhook-phone").await;
    browser.resize(support::browser::DESKTOP).await;

    // The delivery as its intake leaves it: accepted, leading to a conversation.
    let delivery =
        t.db.deliveries(None, None, None, 1)
            .await
            .unwrap()
            .remove(0);
    let (owner, _) = user(&t, "linear-user", false).await;
    let led_to = conversation(&t, &owner, "From Linear").await;
    let mut tx = t.db.begin().await.unwrap();
    tx.finish_intake(
        delivery.id,
        "intake-1",
        openhands::storage::DeliveryStatus::Accepted,
        None,
        Some(&led_to),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    browser.goto(&web.at("/deliveries")).await;
    let row = browser
        .wait_for_text("#delivery-list tbody tr", "accepted")
        .await;
    assert!(row.contains("Comment"), "the event is shown: {row}");
    // Redelivered: the page says so and the intake is queued again.
    browser.click("#delivery-list tbody tr button").await;
    browser
        .wait_for_text(
            "#main",
            &format!("Delivery {} is being handled again.", delivery.id),
        )
        .await;
    let intake_jobs = intake_jobs(&t).await;
    assert_eq!(intake_jobs, 2, "the first intake and the redelivery");
    // The conversation it led to is one click away.
    browser.click("#delivery-list tbody tr a").await;
    browser
        .wait_for_path(&format!("/conversations/{led_to}"))
        .await;
    browser.wait_for_text("h1", "From Linear").await;

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

/// A user whose GitHub and GitLab accounts are linked, on a service whose GitHub App reaches
/// `acme/api` and `acme/web` (write on both) and `acme/docs` (read only), and whose GitLab
/// reaches `acme/tools/widgets` (Developer).
async fn service_with_repositories(t: &TestDb) -> (support::service::Service, String) {
    use support::service::Service;
    let service = Service::builder(&t.db).fakes().web().start().await;
    let fakes = service.fakes();
    for repository in ["acme/api", "acme/web", "acme/docs"] {
        fakes.set_github_installation(repository, 4242);
    }
    fakes.set_github_account(501, "alice-gh");
    fakes.set_github_permission("acme/api", "alice-gh", "write");
    fakes.set_github_permission("acme/web", "alice-gh", "admin");
    fakes.set_github_permission("acme/docs", "alice-gh", "read");
    fakes.set_gitlab_project_path("acme/tools/widgets", 91);
    fakes.set_gitlab_level(91, "601", 30);
    let (alice, key) = user(t, "alice", false).await;
    for (provider, api_url, account) in [
        ("github", fakes.github_api_url(), "501"),
        ("gitlab", fakes.gitlab_api_url(), "601"),
    ] {
        let host = reqwest::Url::parse(&api_url)
            .unwrap()
            .host_str()
            .unwrap()
            .to_string();
        t.db.link_user(provider, &host, account, &alice)
            .await
            .unwrap();
    }
    (service, key)
}

/// A new conversation: the repository is picked from those the user may push to, searched as
/// they type (one they may only read is not offered); the branch is theirs; Ctrl+Enter starts
/// it; a name typed but not picked is refused on the page; a double click on Start starts one
/// conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_conversation_picks_its_repository_and_branch() {
    let t = TestDb::sqlite().await;
    let (service, key) = service_with_repositories(&t).await;
    let web = WebServer::start(service.app()).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.goto(&web.at("/new")).await;
    browser.type_text("#task", "Fix the flaky test").await;

    // Everything reachable and writable is offered; typing narrows it.
    browser.click("#repository").await;
    browser
        .wait("#repository-options [data-name='acme/tools/widgets']")
        .await;
    let offered = browser
        .execute(
            "return [...document.querySelectorAll('#repository-options [data-name]')].map((o) => o.dataset.name);",
            vec![],
        )
        .await;
    assert_eq!(
        offered,
        serde_json::json!(["", "acme/api", "acme/web", "acme/tools/widgets"]),
        "read-only acme/docs is not offered"
    );
    browser.type_text("#repository", "widgets").await;
    let started = std::time::Instant::now();
    while browser
        .text("#repository-options")
        .await
        .contains("acme/api")
    {
        assert!(
            started.elapsed() < support::browser::WAIT,
            "the search narrows the list"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser
        .wait_for_text("#repository-options", "acme/tools/widgets")
        .await;
    browser.wait_for_text("#repository-options", "GitLab").await;
    browser.screenshot("new-repository-picker").await;
    browser
        .click("#repository-options [data-name='acme/tools/widgets']")
        .await;
    browser
        .wait_for_text(
            "#repository-chosen",
            "Working on acme/tools/widgets (GitLab)",
        )
        .await;
    browser.type_text("#branch", "release-2").await;
    browser.screenshot("new-with-repository").await;
    // Ctrl+Enter in the task starts it.
    browser
        .execute(
            "document.getElementById('task').dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', ctrlKey: true, bubbles: true}));",
            vec![],
        )
        .await;
    browser.wait("#events").await;
    let id = browser
        .path()
        .await
        .strip_prefix("/conversations/")
        .unwrap()
        .to_string();
    let conversation = t.db.conversation(&id).await.unwrap();
    assert_eq!(
        conversation.repository.as_deref(),
        Some("acme/tools/widgets")
    );
    assert_eq!(conversation.git_provider.as_deref(), Some("gitlab"));
    assert_eq!(conversation.branch.as_deref(), Some("release-2"));

    // A name typed and not picked is refused before anything is sent.
    browser.goto(&web.at("/new")).await;
    browser.type_text("#task", "Another task").await;
    browser.type_text("#repository", "acme/docs").await;
    browser.click("#start").await;
    browser
        .wait_for_text(
            "#new-form .notice.error",
            "Pick the repository from the list",
        )
        .await;

    // A double click on Start starts one conversation.
    browser
        .execute(
            "document.getElementById('repository').value = ''; document.getElementById('repository').dispatchEvent(new Event('input'));",
            vec![],
        )
        .await;
    double_click(&browser, "#start").await;
    browser.wait("#events").await;
    let listed =
        t.db.list_conversations(&openhands::storage::ConversationFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "one conversation per start: {listed:#?}");
    assert_no_script_failures(&browser).await;
    browser.close().await;
}

/// When no worker can start sandboxes, the conversation list and the new-conversation page say
/// so with the workers' reason; once one can again, the banner is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_engine_that_is_down_is_said_before_a_run_fails() {
    let t = TestDb::sqlite().await;
    let (_, key) = user(&t, "alice", false).await;
    t.db.record_dependency_check(
        openhands::agent::SANDBOX_ENGINE,
        "worker-1",
        Some("cannot reach the Docker engine at unix:///var/run/docker.sock"),
    )
    .await
    .unwrap();
    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser
        .wait_for_text("#sandbox-warning", "cannot reach the Docker engine")
        .await;
    browser
        .screenshot("conversations-sandbox-engine-down")
        .await;
    browser.goto(&web.at("/new")).await;
    browser
        .wait_for_text("#sandbox-warning", "runs cannot start")
        .await;
    browser.screenshot("new-sandbox-engine-down").await;

    t.db.record_dependency_check(openhands::agent::SANDBOX_ENGINE, "worker-1", None)
        .await
        .unwrap();
    browser.goto(&web.at("/conversations")).await;
    browser.wait("#conversation-list").await;
    assert_eq!(browser.text_of("#sandbox-warning").await, None);
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

/// Signing in through OpenID Connect in the browser, from a page asked for before signing in:
/// the provider sends the browser back to that page, signed in as the account's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_openid_connect_returns_to_the_page_asked_for() {
    use openhands::web::login::{Login, LoginSettings};
    use support::fake_login::{Account, FakeLogin, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET};

    let t = TestDb::sqlite().await;
    let fake = FakeLogin::start("http://127.0.0.1").await;
    let settings = LoginSettings {
        oidc_issuer: Some(fake.oidc_issuer()),
        oidc_client_id: Some(OIDC_CLIENT_ID.into()),
        oidc_client_secret: Some(OIDC_CLIENT_SECRET.parse().unwrap()),
        oidc_display_name: "Keycloak".into(),
        allowed_users: vec!["alice@example.com".into()],
        ..LoginSettings::default()
    };
    let web = WebServer::start_with(|url| {
        fake.set_public_url(url);
        router(
            AppState::new(t.db.clone())
                .with_public_url(url)
                .with_login(Login::new(&settings, url, &fake.github_api_url())),
        )
    })
    .await;
    fake.sign_in_as(Some(
        Account::new("kc-sub-1", "alice").with_email("alice@example.com", true),
    ));

    let browser = Browser::start().await;
    browser.goto(&web.at("/settings")).await;
    browser.wait_for_path("/login?next=%2Fsettings").await;
    browser
        .wait_for_text(
            "a.button[href^='/auth/oidc/login']",
            "Sign in with Keycloak",
        )
        .await;
    browser.screenshot("login-with-openid-connect").await;
    browser.click("a.button[href^='/auth/oidc/login']").await;
    browser.wait_for_path("/settings").await;
    browser.wait_for_text("#who", "oidc:alice").await;
}

/// The conversation list narrows to a title search, and shows a conversation started
/// elsewhere (a webhook, another browser) without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_is_searched_and_updates_by_itself() {
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    conversation(&t, &alice, "Fix the flaky login test").await;
    conversation(&t, &alice, "Upgrade the parser").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser
        .wait_for_text("#conversation-list", "Upgrade the parser")
        .await;
    browser.type_text("#search", "flaky").await;
    let shown = browser
        .wait_for_text("#conversation-list", "Fix the flaky login test")
        .await;
    assert!(!shown.contains("Upgrade the parser"), "{shown}");
    browser.screenshot("conversations-searched").await;
    browser.execute("document.querySelector('#search').value = ''; document.querySelector('#search').dispatchEvent(new Event('input'));", vec![]).await;
    browser
        .wait_for_text("#conversation-list", "Upgrade the parser")
        .await;

    conversation(&t, &alice, "Answer the Slack thread").await;
    browser
        .wait_for_text("#conversation-list", "Answer the Slack thread")
        .await;
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
    let secret: openhands::setting::Secret =
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

    // MCP servers: JSON that does not parse is named in the page; a configuration is stored
    // sealed and shown again with its secret hidden.
    browser.type_text("#mcp-own", "{\"shttp_servers\": [").await;
    browser.click("form#mcp-own-form button[type=submit]").await;
    browser
        .wait_for_text("form#mcp-own-form", "This is not JSON")
        .await;
    browser
        .execute(
            "document.querySelector('#mcp-own').value = arguments[0];",
            vec![serde_json::json!(
                r#"{"shttp_servers": [{"url": "https://tools.example.com/mcp", "api_key": "mcp-key-typed-in-the-browser"}]}"#
            )],
        )
        .await;
    browser.click("form#mcp-own-form button[type=submit]").await;
    browser.wait_for_text("form#mcp-own-form", "Saved.").await;
    assert!(t.db.user_mcp_config(&alice).await.unwrap().is_some());
    let shown_config = browser
        .execute("return document.querySelector('#mcp-own').value;", vec![])
        .await;
    let shown_config = shown_config.as_str().unwrap();
    assert!(
        shown_config.contains("**********") && !shown_config.contains("mcp-key-typed"),
        "{shown_config}"
    );
    assert!(
        browser
            .text("#main")
            .await
            .find("MCP servers of every conversation")
            .is_none(),
        "the service's servers are for administrators"
    );

    browser.type_text("#key-name", "laptop").await;
    browser.click("form#key-form-new button[type=submit]").await;
    let shown = browser.text("#new-key").await;
    assert!(shown.starts_with("oh_"), "{shown}");
    browser.wait_for_text("#key-list", "laptop").await;
    browser.screenshot("settings-key-created").await;
    browser.click("#key-list li:last-child button.danger").await;
    answer_confirmation(&browser, true).await;
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
        !page.contains("s3cr3t-value")
            && !page.contains("sk-typed-in-the-browser")
            && !page.contains("mcp-key-typed-in-the-browser"),
        "{page}"
    );

    // Deleting a secret that is already gone says so, on the page.
    t.db.delete_secret(&alice, "DEPLOY_TOKEN").await.unwrap();
    browser.click("#secret-list li button.danger").await;
    answer_confirmation(&browser, true).await;
    browser
        .wait_for_text("#main .card:last-child .notice.error", "not found")
        .await;
    browser.screenshot("settings-delete-failed").await;
}

/// More conversations than one page holds: the first page shows the newest, "Load older
/// conversations" reaches the oldest, a refresh keeps every page opened, and the status filter
/// offers `rejected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_conversations_are_reached_page_by_page() {
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let mut ids = Vec::new();
    for n in 1..=105 {
        ids.push(conversation(&t, &alice, &format!("Task {n:03}")).await);
    }
    set_status(&t, &ids[49], "rejected").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;

    // The API's own pages (conversations made in the same millisecond are ordered by id).
    let api_page = |page_id: Option<String>| {
        let (web, key) = (&web, &key);
        async move {
            let mut url = web.at("/api/conversations?limit=100");
            if let Some(page_id) = page_id {
                url.push_str(&format!("&page_id={page_id}"));
            }
            let page: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ids: Vec<String> = page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["conversation_id"].as_str().unwrap().to_string())
                .collect();
            (ids, page["next_page_id"].as_str().map(String::from))
        }
    };
    let (first_page, next) = api_page(None).await;
    let (second_page, after) = api_page(next).await;
    assert_eq!((first_page.len(), second_page.len(), after), (100, 5, None));
    let mut every: Vec<String> = first_page.iter().chain(&second_page).cloned().collect();
    let mut sorted = every.clone();
    sorted.sort();
    let mut created = ids.clone();
    created.sort();
    assert_eq!(sorted, created);

    // The newest hundred first; the five oldest are one click away.
    browser
        .wait_for_text("#conversation-list", "Task 105")
        .await;
    assert_eq!(listed_ids(&browser).await, first_page);
    browser.screenshot("conversations-first-page").await;
    let oldest = second_page.last().unwrap();
    assert!(
        browser
            .text_of(&format!("#conversation-list li[data-id='{oldest}']"))
            .await
            .is_none()
    );
    browser.click("#load-more").await;
    browser
        .wait(&format!("#conversation-list li[data-id='{oldest}']"))
        .await;
    assert_eq!(listed_ids(&browser).await, every);
    let more_shown = browser
        .execute(
            "const b = document.querySelector('#load-more'); return b.offsetParent !== null;",
            vec![],
        )
        .await;
    assert_eq!(more_shown, false, "the button stays after the last page");
    browser.screenshot("conversations-last-page").await;

    // A refresh brings a new conversation and keeps the older page.
    let newer = conversation(&t, &alice, "Task 106").await;
    browser
        .wait(&format!("#conversation-list li[data-id='{newer}']"))
        .await;
    every.insert(0, newer);
    assert_eq!(listed_ids(&browser).await, every);

    // Rejected conversations can be picked out.
    browser
        .wait("#filter-status")
        .await
        .select_by_value("rejected")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while listed_ids(&browser).await != vec![ids[49].clone()] {
        assert!(
            started.elapsed() < support::browser::WAIT,
            "the rejected filter shows {:?}",
            listed_ids(&browser).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        browser
            .text("#conversation-list")
            .await
            .contains("rejected")
    );
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// Where a conversation was started shows as an icon and the source's name, linking back to
/// the issue it came from, in the list and in the conversation's own view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_shows_an_icon_and_links_back_to_the_issue() {
    const ISSUE: &str = "https://github.com/acme/api/issues/42";
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let from_github =
        triggered_conversation(&t, &alice, "Fix the login bug", "github", Some(ISSUE)).await;
    let from_web = conversation(&t, &alice, "Tidy the README").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;

    // An icon the page draws (visible, with a shape), the name beside it, and the link.
    let check = "const [scope, href] = arguments;
        const link = document.querySelector(`${scope} a.trigger-link`);
        const icon = document.querySelector(`${scope} .badge.trigger svg.icon path`);
        const box = icon && icon.closest('svg').getBoundingClientRect();
        return {
          href: link && link.getAttribute('href'),
          label: link && link.getAttribute('aria-label'),
          text: link && link.textContent,
          shape: icon && icon.getAttribute('d').length > 20,
          drawn: Boolean(box && box.width > 0 && box.height > 0),
          hidden_from_readers: icon && icon.closest('svg').getAttribute('aria-hidden'),
        };";
    let row = format!("#conversation-list li[data-id='{from_github}']");
    browser.wait(&format!("{row} a.trigger-link")).await;
    let shown = browser
        .execute(check, vec![row.clone().into(), ISSUE.into()])
        .await;
    assert_eq!(shown["href"], ISSUE, "{shown}");
    assert_eq!(shown["text"], "GitHub", "{shown}");
    assert_eq!(shown["shape"], true, "{shown}");
    assert_eq!(shown["drawn"], true, "{shown}");
    assert_eq!(shown["hidden_from_readers"], "true", "{shown}");
    assert!(
        shown["label"].as_str().unwrap().contains("GitHub issue"),
        "{shown}"
    );
    // A web conversation has its icon and name, and no link.
    let web_row = format!("#conversation-list li[data-id='{from_web}']");
    let web_badge = browser.text(&format!("{web_row} .badge.trigger")).await;
    assert_eq!(web_badge, "Web");
    browser
        .wait(&format!("{web_row} .badge.trigger svg.icon"))
        .await;
    assert_eq!(
        browser.text_of(&format!("{web_row} a.trigger-link")).await,
        None
    );
    browser.screenshot("conversations-triggers").await;

    browser
        .goto(&web.at(&format!("/conversations/{from_github}")))
        .await;
    browser
        .wait("#conversation-header a.trigger-link svg.icon")
        .await;
    let shown = browser
        .execute(check, vec!["#conversation-header".into(), ISSUE.into()])
        .await;
    assert_eq!(shown["href"], ISSUE, "{shown}");
    assert_eq!(shown["drawn"], true, "{shown}");
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// Every button's text against its background, as `(label, contrast ratio)`, with WCAG's
/// relative luminance; a transparent background is the nearest painted one behind it.
async fn button_contrasts(browser: &Browser) -> Vec<(String, f64)> {
    let found = browser
        .execute(
            "const parse = (c) => {
               const m = c.match(/rgba?\\(([^)]+)\\)/);
               if (!m) return null;
               const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
               return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
             };
             const luminance = ({ r, g, b }) => {
               const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
             };
             const behind = (element) => {
               for (let e = element; e; e = e.parentElement) {
                 const c = parse(getComputedStyle(e).backgroundColor);
                 if (c && c.a > 0) return c;
               }
               return { r: 255, g: 255, b: 255, a: 1 };
             };
             return [...document.querySelectorAll('button, .button')]
               .filter((b) => b.offsetParent !== null)
               .map((b) => {
                 const fg = luminance(parse(getComputedStyle(b).color));
                 const bg = luminance(behind(b));
                 const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
                 return [`${b.textContent.trim()} (${b.className || b.tagName})`, ratio];
               });",
            vec![],
        )
        .await;
    serde_json::from_value(found).unwrap()
}

/// The buttons' text is readable (at least 4.5:1) in the light and the dark colour scheme,
/// the danger buttons too, on the list, the settings and a conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buttons_are_readable_in_the_light_and_dark_schemes() {
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "Fix the flaky parser test").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;

    for scheme in ["light", "dark"] {
        browser.prefer_color_scheme(scheme).await;
        let background = browser
            .execute(
                "return getComputedStyle(document.documentElement).backgroundColor;",
                vec![],
            )
            .await;
        let expected = if scheme == "dark" {
            "rgb(13, 17, 23)"
        } else {
            "rgb(255, 255, 255)"
        };
        assert_eq!(background, expected, "the {scheme} theme is not in use");
        for (path, ready, danger) in [
            ("/conversations", "#conversation-list li", false),
            ("/settings", "#key-list button.danger", true),
            (
                &format!("/conversations/{id}") as &str,
                "#conversation-header h1",
                true,
            ),
        ] {
            browser.goto(&web.at(path)).await;
            browser.wait(ready).await;
            let contrasts = button_contrasts(&browser).await;
            assert!(!contrasts.is_empty(), "no button on {path}");
            if danger {
                assert!(
                    contrasts.iter().any(|(label, _)| label.contains("danger")),
                    "no danger button measured on {path}: {contrasts:?}"
                );
            }
            let poor: Vec<_> = contrasts.iter().filter(|(_, ratio)| *ratio < 4.5).collect();
            assert!(
                poor.is_empty(),
                "buttons under 4.5:1 on {path} ({scheme}): {poor:?}"
            );
        }
        browser.screenshot(&format!("conversation-{scheme}")).await;
        browser.goto(&web.at("/settings")).await;
        browser.wait("form#llm-form").await;
        browser.screenshot(&format!("settings-{scheme}")).await;
    }
    browser.close().await;
    t.drop_database().await;
}

/// What the agent did, as the conversation view shows it: Markdown in its message (with
/// markup in the text shown as text, never run), a file edit as a coloured diff, a thought,
/// the pull request it opened, and the tokens and cost spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_view_shows_markdown_diffs_thoughts_pull_requests_and_cost() {
    use openhands::agent::events::{ToolCallMeta, action, agent_message, user_message};
    use openhands::storage::{ConversationStats, NewOutboxPost};
    use serde_json::json;

    const PULL_REQUEST: &str = "https://github.com/acme/api/pull/7";
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "Fix the off-by-one").await;
    let call = |n: u32| ToolCallMeta {
        function_name: "tool".into(),
        tool_call_id: format!("call-{n}"),
        arguments: "{}".into(),
        response_id: format!("response-{n}"),
    };
    append(
        &t,
        &id,
        &user_message("Fix the off-by-one", false, json!({})),
    )
    .await;
    append(
        &t,
        &id,
        // As the run records a think call the model made without other words: the call's
        // own argument is in its arguments, `args.thought` holds the (empty) words beside it.
        &action(
            "think",
            json!({"thought": ""}),
            "The tokenizer drops the last byte".into(),
            &ToolCallMeta {
                arguments: json!({"thought": "The tokenizer drops the last byte"}).to_string(),
                ..call(1)
            },
        ),
    )
    .await;
    append(
        &t,
        &id,
        &action(
            "edit",
            json!({
                "path": "/workspace/src/parser.rs",
                "command": "str_replace",
                "old_str": "let end = len - 1;",
                "new_str": "let end = len;",
            }),
            "Editing /workspace/src/parser.rs".into(),
            &call(2),
        ),
    )
    .await;
    append(
        &t,
        &id,
        &agent_message(
            "The fix is **ready**: see [the notes](https://example.com/notes) and run `cargo test`.\n\n\
             <script>window.scriptRan = true</script> <img src=x onerror=\"window.imageRan = true\">",
            None,
            "response-3",
        ),
    )
    .await;
    // An MCP tool's call and answer.
    let mcp_call = append(
        &t,
        &id,
        &action(
            "call_tool_mcp",
            json!({"name": "mcp_add", "arguments": {"a": 2, "b": 3}}),
            "Calling the MCP tool mcp_add".into(),
            &call(4),
        ),
    )
    .await;
    append(
        &t,
        &id,
        &openhands::agent::events::observation(
            "mcp",
            r#"{"content":[{"type":"text","text":"5"}],"isError":false}"#,
            json!({"name": "mcp_add", "arguments": {"a": 2, "b": 3}}),
            "The MCP tool mcp_add answered.".into(),
            mcp_call,
            Some(&call(4)),
        ),
    )
    .await;
    let mut tx = t.db.begin().await.unwrap();
    tx.add_llm_usage(
        &id,
        &ConversationStats {
            llm_calls: 3,
            prompt_tokens: 1200,
            completion_tokens: 34,
            cached_tokens: 0,
            cost_usd: 0.0123,
            llm_latency_ms: 900,
        },
    )
    .await
    .unwrap();
    let target = json!({"repository": "acme/api"});
    let body = json!({"title": "Fix the off-by-one"});
    let post = tx
        .add_outbox_post(&NewOutboxPost {
            conversation_id: Some(&id),
            provider: "github",
            kind: openhands::results::kind::CHANGE_REQUEST,
            target: &target,
            body: &body,
            idempotency_key: "change-request:dashboard-test",
        })
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    t.db.record_outbox_attempt(post, Ok(Some(&json!({"url": PULL_REQUEST}))), false)
        .await
        .unwrap();

    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    let message = ".event.agent.message .markdown";
    browser.wait_for_text(message, "The fix is ready").await;

    // Markdown: bold, a link (opened elsewhere, without the referrer), code.
    assert_eq!(browser.text(&format!("{message} strong")).await, "ready");
    let link = browser
        .wait(&format!("{message} a[href='https://example.com/notes']"))
        .await;
    assert_eq!(link.text().await.unwrap(), "the notes");
    assert_eq!(
        link.attr("rel").await.unwrap().as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(browser.text(&format!("{message} code")).await, "cargo test");
    // Markup in the message is text: shown, and neither an element nor run.
    let text = browser.text(message).await;
    assert!(
        text.contains("<script>window.scriptRan = true</script>")
            && text.contains("<img src=x onerror=\"window.imageRan = true\">"),
        "{text}"
    );
    let ran = browser
        .execute(
            "return {
               elements: document.querySelectorAll('#events script, #events img').length,
               script: window.scriptRan === true,
               image: window.imageRan === true,
             };",
            vec![],
        )
        .await;
    assert_eq!(
        ran,
        json!({"elements": 0, "script": false, "image": false}),
        "markup in a message became the page's"
    );

    // The MCP call with its arguments, and its answer.
    browser
        .wait_for_text("#events [data-kind=call_tool_mcp]", "MCP tool mcp_add")
        .await;
    let arguments = browser.text("#events [data-kind=call_tool_mcp] pre").await;
    assert!(arguments.contains("\"a\": 2"), "{arguments}");
    browser
        .wait_for_text("#events [data-kind=mcp]", "mcp_add answered")
        .await;
    assert!(
        browser
            .text("#events [data-kind=mcp]")
            .await
            .contains("\"text\":\"5\""),
        "the answer is shown"
    );

    // The edit as removed and added lines, each in its colour.
    browser
        .wait_for_text(".event.edit", "Edited /workspace/src/parser.rs")
        .await;
    assert_eq!(
        browser.text(".event.edit .diff .line.removed").await,
        "-let end = len - 1;"
    );
    assert_eq!(
        browser.text(".event.edit .diff .line.added").await,
        "+let end = len;"
    );
    let colours = browser
        .execute(
            "const colour = (css) => getComputedStyle(document.querySelector(css)).color;
             return [colour('.event.edit .diff'), colour('.diff .line.removed'), colour('.diff .line.added')];",
            vec![],
        )
        .await;
    let [plain, removed, added] = [&colours[0], &colours[1], &colours[2]];
    assert!(
        removed != added && removed != plain && added != plain,
        "the diff's lines are not coloured: {colours}"
    );

    // The thought, the pull request, and what the run cost.
    browser
        .wait_for_text(
            ".event.thought .thought",
            "The tokenizer drops the last byte",
        )
        .await;
    let pull_request = browser
        .wait(&format!("#pull-requests a[href='{PULL_REQUEST}']"))
        .await;
    assert_eq!(pull_request.text().await.unwrap(), PULL_REQUEST);
    assert_eq!(browser.text("#stat-tokens").await, "1234");
    assert_eq!(browser.text("#stat-cost").await, "$0.0123");
    browser.screenshot("conversation-rendered").await;
    browser
        .phone_screenshot("conversation-rendered-phone")
        .await;
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// The controls follow the state: a conversation waiting for its user may be stopped or
/// resumed but not paused; stopping it changes its state at once and is noted as a request,
/// not as the user speaking; a stopped one may only be resumed, which asks for a run; a
/// running one may be paused or stopped but not resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controls_follow_the_state_of_the_conversation() {
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "Wait for me").await;
    set_status(&t, &id, "awaiting_user_input").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser.wait_for_text("#connection", "Live").await;
    let enabled = || async {
        let value = browser
            .execute(
                "return ['pause', 'resume', 'stop'].map((id) => !document.getElementById(id).disabled);",
                vec![],
            )
            .await;
        serde_json::from_value::<[bool; 3]>(value).unwrap()
    };
    assert_eq!(
        enabled().await,
        [false, true, true],
        "pause, resume, stop while waiting"
    );

    browser.click("#stop").await;
    browser.wait_for_text("#events", "State: stopped").await;
    browser
        .wait_for_text("#conversation-header .badge", "stopped")
        .await;
    let note = browser.text(".event.note-system").await;
    assert_eq!(note, "Stop requested");
    assert!(
        !browser.text("#events").await.contains("You"),
        "a request is not the user speaking"
    );
    let shown = reqwest::Client::new()
        .get(web.at(&format!("/api/conversations/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(shown["status"], "stopped", "{shown}");
    assert_eq!(
        enabled().await,
        [false, true, false],
        "only resume once stopped"
    );
    browser.screenshot("conversation-stopped-controls").await;

    browser.click("#resume").await;
    browser.wait_for_text("#events", "Resume requested").await;
    let events = t.db.events_after(&id, 0, 100).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "change_agent_state");
    let doc: Value = serde_json::from_str(&last.payload).unwrap();
    assert_eq!(doc["args"]["agent_state"], "running", "{doc}");
    use openhands::queue::Job;
    let queued =
        t.db.jobs(openhands::agent::RunConversation::QUEUE, None, 10)
            .await;
    assert_eq!(queued.unwrap().len(), 1, "resuming asked for no run");

    // Running: pause and stop, never resume.
    set_status(&t, &id, "running").await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser.wait_for_text("#connection", "Live").await;
    browser.wait_for_text("#working", "thinking").await;
    assert_eq!(
        enabled().await,
        [true, false, true],
        "pause and stop while running"
    );
    // Finished: nothing.
    set_status(&t, &id, "finished").await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser.wait_for_text("#connection", "Live").await;
    assert_eq!(
        enabled().await,
        [false, false, false],
        "nothing once finished"
    );
    assert!(browser.text_of("#working:not([hidden])").await.is_none());
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// Signing in comes back to the page that was asked for, and only ever to a page of this site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_returns_to_the_page_asked_for_on_this_site_only() {
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "Where was I").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;

    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser.wait("form#key-form #api-key").await;
    browser
        .wait_for_path(&format!("/login?next=%2Fconversations%2F{id}"))
        .await;
    browser.type_text("form#key-form #api-key", &key).await;
    browser.click("form#key-form button[type=submit]").await;
    browser
        .wait_for_text("#conversation-header h1", "Where was I")
        .await;
    browser.wait_for_path(&format!("/conversations/{id}")).await;

    // Elsewhere is never where signing in leads.
    for next in [
        "%2F%2Fexample.com%2Felsewhere",
        "https%3A%2F%2Fexample.com%2F",
        "%2F%5Cexample.com",
        "javascript%3Aalert(1)",
    ] {
        browser.click("#sign-out").await;
        browser.wait("form#key-form #api-key").await;
        browser.goto(&web.at(&format!("/login?next={next}"))).await;
        browser.type_text("form#key-form #api-key", &key).await;
        browser.click("form#key-form button[type=submit]").await;
        browser.wait("#conversation-list").await;
        browser.wait_for_path("/conversations").await;
    }
    browser.close().await;
    t.drop_database().await;
}

/// A one-time link for `account` of `workspace` (`provider`'s), as the intake offers it to an
/// unlinked sender, holding a refused request; its token.
async fn offered_link(
    t: &TestDb,
    provider: openhands::integrations::request::Provider,
    workspace: &str,
    account: &str,
    name: &str,
) -> String {
    use openhands::intake::{LinkOffer, links};
    use openhands::storage::{DeliveryStatus, NewDelivery};

    let mut tx = t.db.begin().await.unwrap();
    let delivery = tx
        .record_delivery(&NewDelivery {
            provider: provider.as_str(),
            delivery_id: &format!("refused-{account}"),
            event: "app_mention",
            status: DeliveryStatus::Unauthorized,
            reason: Some("the account is not linked"),
            payload: b"{}",
            request: None,
        })
        .await
        .unwrap()
        .unwrap();
    let offer = LinkOffer {
        provider,
        workspace: workspace.into(),
        external_id: account.into(),
        account_name: name.into(),
    };
    let url = links::offer(&mut tx, &offer, delivery, "http://localhost:3000")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    url.rsplit('/').next().unwrap().to_string()
}

/// A real double click on the element matching `css`: two presses and releases of the mouse.
pub(crate) async fn double_click(browser: &Browser, css: &str) {
    use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};

    let element = browser.wait(css).await;
    let press = || PointerAction::Down {
        button: MOUSE_BUTTON_LEFT,
    };
    let release = || PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    };
    let mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element,
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(press())
        .then(release())
        .then(press())
        .then(release());
    browser.client().perform_actions(mouse).await.unwrap();
    browser.client().release_actions().await.unwrap();
}

/// The caller's linked accounts, as `GET /api/user` lists them.
async fn accounts_of(web: &WebServer, key: &str) -> Vec<Value> {
    let me = reqwest::Client::new()
        .get(web.at("/api/user"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    me["accounts"].as_array().cloned().unwrap_or_default()
}

/// The one-time link page: followed signed out, it comes back after signing in; it says which
/// account it links to whom; a double click on Link links it once (the refused request is
/// queued again, once); used again, unknown, or for an account linked to someone else, it says
/// so in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_linked_once_from_its_one_time_link() {
    use openhands::integrations::request::Provider;

    let t = TestDb::sqlite().await;
    let (carol, key) = user(&t, "carol", false).await;
    let (bob, _) = user(&t, "bob", false).await;
    t.db.link_user("slack", "T0001", "U0BOB0001", &bob)
        .await
        .unwrap();
    let token = offered_link(&t, Provider::Slack, "T0001", "U0CAROL01", "U0CAROL01").await;
    let web = serve(&t).await;
    let browser = Browser::start().await;

    // Signed out: the sign-in page, which comes back to the link.
    let page = format!("/link/{token}");
    browser.goto(&web.at(&page)).await;
    browser.wait("form#key-form #api-key").await;
    browser
        .wait_for_path(&format!("/login?next=%2Flink%2F{token}"))
        .await;
    browser.type_text("form#key-form #api-key", &key).await;
    browser.click("form#key-form button[type=submit]").await;
    browser.wait_for_path(&page).await;
    browser
        .wait_for_text(
            "#link-question",
            "Link the Slack account U0CAROL01 of the workspace T0001 to your user carol?",
        )
        .await;
    browser.screenshot("link").await;
    browser.phone_screenshot("link-phone").await;

    // A double click posts once: a second post would be refused as used and said on the page.
    double_click(&browser, "#link-account").await;
    browser
        .wait_for_text("#main .notice.info", "is now linked to your user")
        .await;
    browser
        .wait_for_text("#link-done", "The request it was refused runs now.")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(browser.text_of("#link-error").await, None);
    let requests = browser
        .execute(
            "return performance.getEntriesByType('resource')
               .filter((e) => new URL(e.name).pathname === arguments[0]).length;",
            vec![format!("/api/links/{token}").into()],
        )
        .await;
    assert_eq!(
        requests, 2,
        "one GET to show the link and one POST to follow it"
    );
    browser.screenshot("link-linked").await;
    browser.phone_screenshot("link-linked-phone").await;

    let accounts = accounts_of(&web, &key).await;
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(accounts[0]["provider"], "slack");
    assert_eq!(accounts[0]["workspace"], "T0001");
    assert_eq!(accounts[0]["external_id"], "U0CAROL01");
    let used =
        t.db.link_token(&openhands::intake::links::token_hash(&token))
            .await
            .unwrap()
            .unwrap();
    assert!(used.used_at.is_some());
    assert_eq!(used.used_by.as_deref(), Some(carol.as_str()));
    let intake_jobs = intake_jobs(&t).await;
    assert_eq!(intake_jobs, 1, "the refused request is queued again once");

    browser.click("#link-done a[href='/conversations']").await;
    browser.wait_for_path("/conversations").await;
    browser.wait("#conversation-list").await;

    // Used already: the server's words, which say to ask again.
    browser.goto(&web.at(&page)).await;
    let used = browser.wait_for_text("#link-error", "used already").await;
    assert!(used.contains("ask again"), "{used}");
    assert_eq!(browser.text_of("#link-account").await, None);
    browser.screenshot("link-used").await;

    // A token nobody offered.
    browser.goto(&web.at("/link/0123456789abcdef")).await;
    browser
        .wait_for_text("#link-error", "This link is not known")
        .await;
    browser.screenshot("link-unknown").await;

    // Bob's account: shown, but Link says it belongs to another user.
    let bobs = offered_link(&t, Provider::Slack, "T0001", "U0BOB0001", "Bob").await;
    browser.goto(&web.at(&format!("/link/{bobs}"))).await;
    browser
        .wait_for_text("#link-question", "Slack account U0BOB0001 (Bob)")
        .await;
    browser.click("#link-account").await;
    browser
        .wait_for_text("#link-error", "linked to another user already")
        .await;
    browser.screenshot("link-elsewhere").await;
    assert_eq!(accounts_of(&web, &key).await.len(), 1);
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// Waits for the page's confirmation dialog, accepts or dismisses it; its text.
pub(crate) async fn answer_confirmation(browser: &Browser, accept: bool) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Ok(text) = browser.client().get_alert_text().await {
            if accept {
                browser.client().accept_alert().await.unwrap();
            } else {
                browser.client().dismiss_alert().await.unwrap();
            }
            return text;
        }
        assert!(
            started.elapsed() < support::browser::WAIT,
            "no confirmation was asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Settings list the accounts linked to the user; Unlink asks first (dismissed, nothing
/// changes), then removes the account, a Jira site's URL too; one already gone is said on the
/// page; with none left the list says how accounts get linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_accounts_are_listed_and_unlinked_in_settings() {
    const JIRA_SITE: &str = "https://acme.atlassian.net";
    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    t.db.link_user("slack", "T0001", "U0ALICE01", &alice)
        .await
        .unwrap();
    t.db.link_user("jira", JIRA_SITE, "5b10ac8d82e05b22cc7d4ef5", &alice)
        .await
        .unwrap();
    t.db.link_user("linear", "org-1", "linear-alice", &alice)
        .await
        .unwrap();
    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.click("#nav a[href='/settings']").await;

    let slack = "#account-list li[data-provider=slack]";
    let jira = "#account-list li[data-provider=jira]";
    browser.wait_for_text(slack, "U0ALICE01").await;
    let shown = browser
        .wait_for_text(jira, "5b10ac8d82e05b22cc7d4ef5")
        .await;
    assert!(shown.contains(JIRA_SITE), "{shown}");
    let to_accounts = "document.querySelector('#accounts').scrollIntoView();";
    browser.execute(to_accounts, vec![]).await;
    browser.screenshot("settings-accounts").await;
    browser.resize(support::browser::PHONE).await;
    browser.execute(to_accounts, vec![]).await;
    browser.screenshot("settings-accounts-phone").await;
    browser.resize(support::browser::DESKTOP).await;

    // Unlinked elsewhere meanwhile: said on the page, and the list catches up.
    let linear = "#account-list li[data-provider=linear]";
    browser.wait_for_text(linear, "linear-alice").await;
    assert!(
        t.db.unlink_user("linear", "org-1", "linear-alice")
            .await
            .unwrap()
    );
    browser.click(&format!("{linear} button")).await;
    answer_confirmation(&browser, true).await;
    browser
        .wait_for_text(
            "#account-message .notice.error",
            "The Linear account linear-alice of org-1 is no longer linked to you.",
        )
        .await;
    support::wait_for(
        "the Linear account to leave the list",
        support::browser::WAIT,
        || async { browser.text_of(linear).await.is_none().then_some(()) },
    )
    .await;

    // Asked first: dismissed, nothing is unlinked.
    browser.click(&format!("{jira} button")).await;
    let asked = answer_confirmation(&browser, false).await;
    assert!(asked.contains("Unlink the Jira account"), "{asked}");
    assert_eq!(accounts_of(&web, &key).await.len(), 2);
    assert!(browser.text_of(jira).await.is_some());

    // Accepted: the Jira site's URL reaches the server as one part of the path.
    browser.click(&format!("{jira} button")).await;
    answer_confirmation(&browser, true).await;
    support::wait_for(
        "the Jira account to leave the list",
        support::browser::WAIT,
        || async { browser.text_of(jira).await.is_none().then_some(()) },
    )
    .await;
    let left = t.db.user_links(Some(&alice)).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].provider, "slack");

    browser.click(&format!("{slack} button")).await;
    answer_confirmation(&browser, true).await;
    let empty = browser
        .wait_for_text("#account-list", "No accounts are linked to you")
        .await;
    assert!(empty.contains("follow the link the agent sends"), "{empty}");
    assert!(accounts_of(&web, &key).await.is_empty());
    assert_eq!(browser.text_of("#account-message .notice").await, None);
    browser.resize(support::browser::PHONE).await;
    browser.execute(to_accounts, vec![]).await;
    browser.screenshot("settings-accounts-none-phone").await;
    browser.resize(support::browser::DESKTOP).await;
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// What the repository told the agent, in the conversation view: its instructions (the paths,
/// the knowledge it offers, what was left out, the text collapsed), knowledge a message
/// triggered, its setup and pre-commit scripts with their exit codes, and which repository was
/// asked for and chosen; the catalog of knowledge is not shown, and markup from the repository
/// stays text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_view_shows_what_the_repository_told_the_agent() {
    use openhands::agent::events::{
        Draft, ENVIRONMENT, repository_question, repository_selected, user_message,
    };
    use openhands::integrations::request::RepositoryRef;
    use serde_json::json;

    let t = TestDb::sqlite().await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "Deploy the fix").await;
    let api = RepositoryRef::Github {
        installation_id: 1,
        repository: "acme/api".into(),
    };
    let web_app = RepositoryRef::Github {
        installation_id: 1,
        repository: "acme/web".into(),
    };
    let mut drafts = vec![
        user_message("Please deploy the fix", false, json!({})),
        repository_question(
            "Which repository should I work on?",
            &[api.clone(), web_app],
            &["acme/secret cannot be reached by the service".to_string()],
        ),
        repository_selected(Some(&api), "chosen", "U0ALICE01"),
    ];
    // As the run records them (src/agent/recall.rs, src/agent/scripts.rs).
    let catalog = Draft {
        source: ENVIRONMENT,
        kind: "microagent_catalog".into(),
        doc: json!({"knowledge": [{
            "name": "deploy", "source": "acme/api", "path": ".openhands/microagents/deploy.md",
            "triggers": ["deploy", "release"], "content": "Run ./deploy.sh staging first.",
        }]}),
    };
    let workspace = Draft {
        source: ENVIRONMENT,
        kind: "recall".into(),
        doc: json!({
            "observation": "recall",
            "content": "<REPOSITORY_INFO>\nThe repository acme/api is checked out in /workspace/repo.\n</REPOSITORY_INFO>\n\n<REPOSITORY_INSTRUCTIONS>\n## AGENTS.md (acme/api)\nRun cargo test. <img src=x onerror=\"window.repositoryRan = true\">\n</REPOSITORY_INSTRUCTIONS>",
            "extras": {
                "recall_type": "workspace_context",
                "repo_name": "acme/api",
                "repo_directory": "/workspace/repo",
                "repo_branch": "main",
                "repo_instructions": "## AGENTS.md (acme/api)\nRun cargo test.",
                "runtime_hosts": {},
                "additional_agent_instructions": "",
                "date": "2026-01-01",
                "custom_secrets_descriptions": {},
                "conversation_instructions": "",
                "working_dir": "/workspace",
                "microagent_knowledge": [],
                "instructions": [
                    {"name": "AGENTS", "source": "acme/api", "path": "AGENTS.md"},
                    {"name": "repo", "source": "acme/.openhands", "path": ".openhands/microagents/repo.md"},
                ],
                "knowledge_available": [{
                    "name": "deploy", "source": "acme/api",
                    "path": ".openhands/microagents/deploy.md", "triggers": ["deploy", "release"],
                }],
                "notes": ["<b>.cursorrules</b> was cut to 20000 characters"],
            },
            "message": "Added workspace context",
        }),
    };
    let script = |name: &str, path: &str, exit_code: i64, output: &str| Draft {
        source: ENVIRONMENT,
        kind: "run".into(),
        doc: json!({
            "observation": "run",
            "content": output,
            "extras": {
                "command": format!("bash {path}"),
                "exit_code": exit_code,
                "script": name,
                "hidden": false,
                "metadata": {"exit_code": exit_code, "working_dir": "/workspace/repo"},
            },
            "message": format!("Ran {path}"),
        }),
    };
    let knowledge = Draft {
        source: ENVIRONMENT,
        kind: "recall".into(),
        doc: json!({
            "observation": "recall",
            "content": "<EXTRA_INFO>\nRun ./deploy.sh staging first.\n</EXTRA_INFO>",
            "extras": {
                "recall_type": "knowledge",
                "microagent_knowledge": [
                    {"name": "deploy", "trigger": "deploy", "content": "Run ./deploy.sh staging first."},
                ],
            },
            "message": "Added microagent knowledge",
            "cause": 1,
        }),
    };
    drafts.extend([
        catalog,
        workspace,
        script(
            "setup",
            ".openhands/setup.sh",
            0,
            "The repository's setup script (.openhands/setup.sh) ran before you started. Its output:\nInstalled 12 packages",
        ),
        knowledge,
        script(
            "pre-commit",
            ".openhands/pre-commit.sh",
            1,
            "The repository's pre-commit script (.openhands/pre-commit.sh) failed with exit code 1. Its output:\nclippy: 2 warnings",
        ),
    ]);
    for draft in &drafts {
        append(&t, &id, draft).await;
    }

    let web = serve(&t).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser
        .wait_for_text("#events .event.script.failed", "Pre-commit script")
        .await;

    // Which repository: asked, then chosen.
    let question = browser
        .text("#events [data-kind=repository_question]")
        .await;
    assert!(
        question.contains("Asked which repository to work on, offering acme/api, acme/web")
            && question.contains("acme/secret cannot be reached by the service"),
        "{question}"
    );
    assert_eq!(
        browser
            .text("#events [data-kind=repository_selected]")
            .await,
        "Working on acme/api (chosen by U0ALICE01)"
    );

    // The repository's instructions: the paths and what it offers, the text collapsed.
    let workspace = "#events .event.recall.workspace";
    let card = browser
        .wait_for_text(workspace, "Repository instructions")
        .await;
    for expected in [
        "AGENTS.md",
        ".openhands/microagents/repo.md from acme/.openhands",
        "deploy (\"deploy\", \"release\")",
        "<b>.cursorrules</b> was cut to 20000 characters",
    ] {
        assert!(card.contains(expected), "{expected:?} is not in {card}");
    }
    assert!(
        !card.contains("REPOSITORY_INFO"),
        "the text is not collapsed: {card}"
    );
    // Above the composer, which stays at the bottom of the window.
    let summary = format!("{workspace} details summary");
    browser
        .execute(
            "document.querySelector(arguments[0]).scrollIntoView({ block: 'center' });",
            vec![summary.clone().into()],
        )
        .await;
    browser.click(&summary).await;
    browser
        .wait_for_text(&format!("{workspace} details pre"), "<REPOSITORY_INFO>")
        .await;

    // Knowledge a message triggered, its content collapsed.
    let knowledge = "#events .event.recall.knowledge";
    assert_eq!(
        browser.text(&format!("{knowledge} summary")).await,
        "Knowledge: deploy (triggered by \"deploy\")"
    );
    let open = browser
        .execute(
            "return document.querySelector(arguments[0]).open;",
            vec![format!("{knowledge} details").into()],
        )
        .await;
    assert_eq!(open, false);

    // The scripts: which, and how they ended.
    let setup = browser.text("#events .event.script.ok").await;
    assert!(
        setup.contains("Setup script")
            && setup.contains(".openhands/setup.sh")
            && setup.contains("passed · exit code 0"),
        "{setup}"
    );
    let pre_commit = browser.text("#events .event.script.failed").await;
    assert!(
        pre_commit.contains(".openhands/pre-commit.sh")
            && pre_commit.contains("failed · exit code 1"),
        "{pre_commit}"
    );
    let colours = browser
        .execute(
            "const colour = (css) => getComputedStyle(document.querySelector(css)).color;
             return [colour('.event.script.ok .badge'), colour('.event.script.failed .badge')];",
            vec![],
        )
        .await;
    assert_ne!(
        colours[0], colours[1],
        "success and failure look alike: {colours}"
    );

    // The catalog is bookkeeping; markup from the repository is text.
    let shown = browser
        .execute(
            "return {
               kinds: [...document.querySelectorAll('#events > li')].map((li) => li.dataset.kind),
               images: document.querySelectorAll('#events img, #events b').length,
               ran: window.repositoryRan === true,
             };",
            vec![],
        )
        .await;
    assert_eq!(
        shown,
        json!({
            "kinds": ["message", "repository_question", "repository_selected", "recall", "run", "recall", "run"],
            "images": 0,
            "ran": false,
        })
    );
    browser.screenshot("conversation-repository").await;
    browser
        .execute(
            "document.querySelector('.event.script.failed').scrollIntoView({ block: 'center' });",
            vec![],
        )
        .await;
    browser.screenshot("conversation-repository-scripts").await;

    // On a phone the page does not scroll sideways.
    browser.resize(support::browser::PHONE).await;
    let widths = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await;
    browser.screenshot("conversation-repository-phone").await;
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "the page scrolls sideways: {widths}"
    );
    browser.resize(support::browser::DESKTOP).await;
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// An image attached on the new-conversation page reaches a model that takes images, shows in
/// the conversation, and a file that is not an image is named and left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_attached_in_the_browser_reaches_the_model() {
    use serde_json::json;
    use std::time::Duration;
    use support::fake_llm::Turn;
    use support::service::Service;

    // A 1×1 PNG.
    const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let files = tempfile::tempdir().unwrap();
    let image = files.path().join("failing-build.png");
    std::fs::write(&image, base64_decode(PNG)).unwrap();
    let notes = files.path().join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();

    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db)
        .web()
        .agent(vec![Turn::call(
            "finish",
            json!({"message": "I see a red pixel."}),
        )])
        .model("openai/gpt-4o")
        .start()
        .await;
    let fake = service.llm().clone();
    let web = WebServer::start(service.app()).await;
    let (_, key) = user(&t, "alice", false).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;

    browser.click("a[href='/new']").await;
    browser
        .type_text("#task", "What does the screenshot show?")
        .await;
    browser
        .type_text("#task-images", notes.to_str().unwrap())
        .await;
    browser
        .wait_for_text(".attachments-note", "notes.txt is not a PNG")
        .await;
    browser
        .type_text("#task-images", image.to_str().unwrap())
        .await;
    browser
        .wait_for_text("#task-images-list", "failing-build.png")
        .await;
    browser.screenshot("new-with-image").await;
    browser.click("form#new-form button[type=submit]").await;
    browser.wait_for_text("#events", "I see a red pixel.").await;
    browser.wait(".attached-image").await;
    browser.screenshot("conversation-with-image").await;

    let asked = support::wait_for("the model to be asked", Duration::from_secs(30), || {
        let fake = fake.clone();
        async move { fake.requests().into_iter().find(|r| !r.tools.is_empty()) }
    })
    .await;
    let parts = asked.body["messages"].to_string();
    assert!(
        parts.contains(&format!("data:image/png;base64,{PNG}")),
        "{parts}"
    );
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Confirmation mode in the browser: turned on in the settings, a risky command waits with
/// "Run it" and "Reject" offered (Resume not), runs when confirmed, and a rejected one is
/// answered as such while the agent goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risky_actions_wait_for_run_it_or_reject_in_the_browser() {
    use serde_json::json;
    use support::fake_llm::Turn;
    use support::service::Service;

    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db)
        .web()
        .agent(vec![
            Turn::call(
                "execute_bash",
                json!({"command": "echo confirmed-and-ran", "security_risk": "MEDIUM"}),
            ),
            Turn::call("execute_bash", json!({"command": "echo never-confirmed"})),
            Turn::call("finish", json!({"message": "Did what was allowed."})),
        ])
        .start()
        .await;
    let web = WebServer::start(service.app()).await;
    let (_, key) = user(&t, "alice", false).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;

    browser.click("#nav a[href='/settings']").await;
    browser.click("#confirmation-default").await;
    browser.click("form#llm-form button[type=submit]").await;
    browser.wait_for_text("form#llm-form", "Saved.").await;

    browser.click("a[href='/new']").await;
    browser.type_text("#task", "Say something").await;
    browser.click("form#new-form button[type=submit]").await;
    browser
        .wait_for_text("#confirmation", "waits for your confirmation")
        .await;
    browser
        .wait_for_text("#events", "$ echo confirmed-and-ran")
        .await;
    let enabled = |css: &'static str| {
        let browser = &browser;
        async move {
            browser
                .execute(
                    &format!("return !document.querySelector('{css}').disabled;"),
                    vec![],
                )
                .await
        }
    };
    assert_eq!(enabled("#confirm").await, json!(true));
    assert_eq!(enabled("#stop").await, json!(true));
    assert_eq!(enabled("#resume").await, json!(false));
    assert_eq!(
        browser
            .execute(
                "return document.querySelector('#confirmation-mode').checked;",
                vec![]
            )
            .await,
        json!(true)
    );
    browser
        .screenshot("conversation-awaiting-confirmation")
        .await;

    browser.click("#confirm").await;
    browser
        .wait_for_text("#events", "confirmed-and-ran\n")
        .await;
    browser
        .wait_for_text("#events", "$ echo never-confirmed")
        .await;
    browser
        .wait_for_text("#confirmation", "waits for your confirmation")
        .await;
    browser.click("#reject").await;
    browser
        .wait_for_text("#events", "Not run: rejected by the user.")
        .await;
    browser
        .wait_for_text("#events", "Did what was allowed.")
        .await;
    let id = browser
        .path()
        .await
        .strip_prefix("/conversations/")
        .unwrap()
        .to_string();
    let outputs: Vec<String> =
        t.db.events_after(&id, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "run" && e.source == "environment")
            .map(|e| e.payload)
            .collect();
    assert_eq!(
        outputs.len(),
        1,
        "only the confirmed command ran: {outputs:?}"
    );
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// OpenHands' CLI signing in without a key file: it shows a code and the dashboard's /device
/// page; the person signs in there, sees whom the device would act as, and approves the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_sign_in_is_approved_once_on_the_device_page() {
    let t = TestDb::sqlite().await;
    let (_, key) = user(&t, "carol", false).await;
    let web = serve(&t).await;
    let client = reqwest::Client::new();
    let codes: Value = client
        .post(web.at("/oauth/device/authorize"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_code = codes["user_code"].as_str().unwrap().to_string();
    let device_code = codes["device_code"].as_str().unwrap().to_string();
    let token = || {
        client
            .post(web.at("/oauth/device/token"))
            .form(&[("device_code", device_code.as_str())])
            .send()
    };
    let browser = Browser::start().await;

    // Signed out: the sign-in page, which comes back to the device page with its code.
    let page = format!("/device?user_code={user_code}");
    browser.goto(&web.at(&page)).await;
    browser.wait("form#key-form #api-key").await;
    browser.type_text("form#key-form #api-key", &key).await;
    browser.click("form#key-form button[type=submit]").await;
    browser
        .wait_for_text("#device-question", "A device asks to sign in as carol.")
        .await;
    let typed = browser
        .execute(
            "return document.querySelector('#device-code').value;",
            vec![],
        )
        .await;
    assert_eq!(
        typed,
        Value::String(user_code.clone()),
        "the code is filled in"
    );
    browser.screenshot("device").await;
    browser.phone_screenshot("device-phone").await;

    // A double click approves once; the device then gets its key, once.
    double_click(&browser, "#device-approve").await;
    browser
        .wait_for_text("#main .notice.info", "is signed in as you")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(browser.text_of("#device-message .notice.error").await, None);
    browser.screenshot("device-approved").await;
    let granted: Value = token().await.unwrap().json().await.unwrap();
    let issued = granted["access_token"].as_str().expect("an API key");
    let me: Value = client
        .get(web.at("/api/user"))
        .bearer_auth(issued)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["login"], "carol");

    // A code nobody is waiting with.
    browser.goto(&web.at("/device?user_code=BCDF-GHJK")).await;
    browser
        .wait_for_text("#device-message", "No device is waiting with this code")
        .await;
    browser.click("#device-approve").await;
    browser
        .wait_for_text("#device-message", "No device is waiting with this code")
        .await;
}
