//! One conversation in a real headless Chromium: the live view follows the newest event
//! unless the reader scrolled up, long outputs are folded, the header names the model, a
//! conversation is renamed and deleted, a double click sends one message, administrators see
//! and filter owners; and the workspace panes (terminal, changes, files) read a real Docker
//! sandbox through a worker, with a clone of a real git repository in it.

use std::time::Duration;

use crate::dashboard::{
    answer_confirmation, append, assert_no_script_failures, conversation, double_click, set_status,
    sign_in, user,
};
use crate::layout::assert_fits;
use crate::support;

use openhands::agent::events::{ToolCallMeta, action, agent_message, observation, user_message};
use serde_json::{Value, json};
use support::TestDb;
use support::browser::{Browser, DESKTOP, PHONE, WebServer};
use support::service::Service;

fn call(n: u32) -> ToolCallMeta {
    ToolCallMeta {
        function_name: "execute_bash".into(),
        tool_call_id: format!("call-{n}"),
        arguments: "{}".into(),
        response_id: format!("response-{n}"),
    }
}

/// Where the events box is scrolled: (top, the most it can be scrolled).
async fn events_scroll(browser: &Browser) -> (f64, f64) {
    let value = browser
        .execute(
            "const e = document.getElementById('events'); return [e.scrollTop, e.scrollHeight - e.clientHeight];",
            vec![],
        )
        .await;
    let [top, most]: [f64; 2] = serde_json::from_value(value).unwrap();
    (top, most)
}

async fn jump_shown(browser: &Browser) -> bool {
    browser
        .execute(
            "return !document.getElementById('jump-latest').hidden;",
            vec![],
        )
        .await
        .as_bool()
        .unwrap()
}

/// Answers the page's `window.prompt` with `text`.
async fn answer_prompt(browser: &Browser, text: &str) {
    let started = std::time::Instant::now();
    loop {
        if browser.client().get_alert_text().await.is_ok() {
            browser.client().send_alert_text(text).await.unwrap();
            browser.client().accept_alert().await.unwrap();
            return;
        }
        assert!(
            started.elapsed() < support::browser::WAIT,
            "no prompt was shown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A long conversation is opened at its newest event and follows new ones; a reader who
/// scrolled up stays where they are and is offered "Jump to latest"; a 200-line output shows
/// its first and last lines until asked for all; the header names the model that answered;
/// a double click on Send sends once; rename and delete (asked first) work; the page fits a
/// phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_follows_the_newest_event_and_the_conversation_is_renamed_and_deleted() {
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db).web().live().start().await;
    let web = WebServer::start(service.app()).await;
    let (alice, key) = user(&t, "alice", false).await;
    let id = conversation(&t, &alice, "A long talk").await;
    set_status(&t, &id, "awaiting_user_input").await;
    append(&t, &id, &user_message("Tell me a lot", false, json!({}))).await;
    for n in 0..40 {
        let metrics =
            json!({"model": "openai/gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5});
        append(
            &t,
            &id,
            &agent_message(
                &format!("Part {n} of a long answer."),
                Some(metrics),
                &format!("r{n}"),
            ),
        )
        .await;
    }
    let command = append(
        &t,
        &id,
        &action(
            "run",
            json!({"command": "seq 1 200", "thought": ""}),
            "Running seq".into(),
            &call(1),
        ),
    )
    .await;
    let lines: Vec<String> = (1..=200).map(|n| format!("line {n}")).collect();
    append(
        &t,
        &id,
        &observation(
            "run",
            &lines.join("\n"),
            json!({"command": "seq 1 200", "exit_code": 0}),
            "Ran seq".into(),
            command,
            Some(&call(1)),
        ),
    )
    .await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser.wait_for_text("#connection", "Live").await;
    browser.wait_for_text("#events", "line 200").await;

    // Opened at the newest event; the output folded to its first and last lines.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (top, most) = events_scroll(&browser).await;
    assert!(
        most > 0.0 && top >= most - 2.0,
        "opened at the bottom: {top} of {most}"
    );
    let folded = browser.text(".event.output pre.output").await;
    assert!(
        folded.contains("line 12") && folded.contains("line 193"),
        "{folded}"
    );
    assert!(
        !folded.contains("line 100\n"),
        "the middle is folded: {folded}"
    );
    assert!(folded.contains("180 more lines"), "{folded}");
    let height = browser
        .execute(
            "return document.querySelector('.event.output').getBoundingClientRect().height;",
            vec![],
        )
        .await
        .as_f64()
        .unwrap();
    assert!(height < 700.0, "a 200-line output takes {height}px");
    assert_eq!(browser.text("#stat-model").await, "openai/gpt-4o-mini");

    // Scrolled up, a new event does not move the page; "Jump to latest" brings it back.
    browser
        .execute("document.getElementById('events').scrollTop = 0;", vec![])
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&t, &id, &agent_message("A newer answer.", None, "r-new")).await;
    browser.wait_for_text("#events", "A newer answer.").await;
    assert_eq!(
        events_scroll(&browser).await.0,
        0.0,
        "the reader stays where they were"
    );
    assert!(jump_shown(&browser).await, "Jump to latest is offered");
    browser.screenshot("conversation-scrolled-up").await;
    browser.click("#jump-latest").await;
    let (top, most) = events_scroll(&browser).await;
    assert!(top >= most - 2.0, "jumped to the newest: {top} of {most}");
    assert!(!jump_shown(&browser).await);
    // At the bottom, the next event is followed.
    append(
        &t,
        &id,
        &agent_message("The newest answer.", None, "r-newest"),
    )
    .await;
    browser.wait_for_text("#events", "The newest answer.").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (top, most) = events_scroll(&browser).await;
    assert!(top >= most - 2.0, "followed: {top} of {most}");
    assert!(!jump_shown(&browser).await);

    // The whole output on request.
    browser.click(".event.output .show-all").await;
    browser
        .wait_for_text(".event.output pre.output", "line 100")
        .await;

    // A double click on Send sends the message once.
    browser.type_text("#message", "Only once, please").await;
    double_click(&browser, "#send").await;
    browser.wait_for_text("#events", "Only once, please").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent =
        t.db.events_after(&id, 0, 1000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.payload.contains("Only once, please"))
            .count();
    assert_eq!(sent, 1, "a double click sent it {sent} times");

    // The page fits a phone, with the workspace under the chat.
    browser.resize(PHONE).await;
    assert_fits(&browser, "conversation (long)").await;
    browser.screenshot("conversation-long-phone").await;
    browser.resize(DESKTOP).await;

    // Rename.
    browser.click("#rename").await;
    answer_prompt(&browser, "A shorter talk").await;
    browser
        .wait_for_text("#conversation-title", "A shorter talk")
        .await;
    assert_eq!(
        t.db.conversation(&id).await.unwrap().title,
        "A shorter talk"
    );

    // Delete: asked first; dismissed, nothing changes; accepted, it is gone with its log and
    // its sandbox's removal is queued.
    set_status(&t, &id, "finished").await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser.wait_for_text("#connection", "Live").await;
    browser.click("#delete").await;
    let question = answer_confirmation(&browser, false).await;
    assert!(
        question.contains("A shorter talk") && question.contains("sandbox"),
        "{question}"
    );
    assert!(t.db.conversation(&id).await.is_ok());
    browser.click("#delete").await;
    answer_confirmation(&browser, true).await;
    browser.wait_for_path("/conversations").await;
    assert!(t.db.conversation(&id).await.is_err(), "deleted");
    assert!(t.db.events_after(&id, 0, 10).await.unwrap().is_empty());
    let removals = t.db.jobs("sandbox-removal", None, 10).await.unwrap();
    assert_eq!(removals.len(), 1, "the sandbox's removal is queued");
    assert_no_script_failures(&browser).await;
    browser.close().await;
    service.stop();
}

/// Administrators see whose each conversation is and narrow the list to one owner; a user
/// sees neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_see_and_filter_owners() {
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db).web().start().await;
    let web = WebServer::start(service.app()).await;
    let (_, admin_key) = user(&t, "root", true).await;
    let (alice, alice_key) = user(&t, "alice", false).await;
    let (bob, _) = user(&t, "bob", false).await;
    conversation(&t, &alice, "Alice's task").await;
    conversation(&t, &bob, "Bob's task").await;

    let browser = Browser::start().await;
    sign_in(&browser, &web, &admin_key).await;
    browser.goto(&web.at("/conversations")).await;
    browser.wait_for_text("#conversation-list", "by bob").await;
    browser
        .wait_for_text("#conversation-list", "by alice")
        .await;
    browser.click("#filter-owner option[value=alice]").await;
    browser
        .wait_for_text("#conversation-list", "Alice's task")
        .await;
    let listed = browser.text("#conversation-list").await;
    assert!(!listed.contains("Bob's task"), "{listed}");
    browser.screenshot("conversations-owner-filter").await;
    assert_fits(&browser, "conversations (administrator)").await;
    browser.close().await;

    let browser = Browser::start().await;
    sign_in(&browser, &web, &alice_key).await;
    browser.goto(&web.at("/conversations")).await;
    browser
        .wait_for_text("#conversation-list", "Alice's task")
        .await;
    assert!(browser.text_of("#filter-owner").await.is_none());
    assert!(
        !browser
            .text("#conversation-list")
            .await
            .contains("by alice")
    );
    browser.close().await;
    service.stop();
}

/// The workspace panes over a real sandbox: the terminal shows the agent's command and runs
/// the user's own (recorded as theirs); Changes lists each changed file of the clone with its
/// counts and diff against the commit the run started from; Files browses the sandbox and
/// downloads a file; a conversation with no sandbox says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_panes_read_the_sandbox() {
    use support::fake_llm::Turn;
    use support::git_server::GitServer;

    const REPO: &str = "acme/widgets";
    let t = TestDb::sqlite().await;
    let script = vec![
        Turn::call(
            "execute_bash",
            json!({"command": "cd /workspace/repo && printf 'two\\n' >> README.md && printf 'fresh\\n' > notes.txt && echo edited"}),
        ),
        Turn::text("I changed two files. Anything else?"),
    ];
    let service = Service::builder(&t.db)
        .fakes()
        .web()
        .live()
        .agent(script)
        .start()
        .await;
    let fakes = service.fakes().clone();
    let git = GitServer::start("ghs_installation_4242").await;
    git.create_repo_with("widgets", &[("README.md", "one\n")]);
    fakes.set_github_clone_url(REPO, &git.url("widgets"));
    fakes.set_github_installation(REPO, 4242);
    fakes.set_github_account(701, "alice-gh");
    fakes.set_github_permission(REPO, "alice-gh", "write");
    let (alice, key) = user(&t, "alice", false).await;
    let host = reqwest::Url::parse(&fakes.github_api_url())
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    t.db.link_user("github", &host, "701", &alice)
        .await
        .unwrap();
    let web = WebServer::start(service.app()).await;

    let answer: Value = reqwest::Client::new()
        .post(web.at("/api/conversations"))
        .bearer_auth(&key)
        .json(&json!({"initial_user_msg": "Edit the readme", "repository": REPO}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["conversation_id"].as_str().unwrap().to_string();
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.goto(&web.at(&format!("/conversations/{id}"))).await;
    browser
        .wait_for_text("#events", "I changed two files. Anything else?")
        .await;

    // Terminal: the agent's command and its output; the user's own command runs as theirs.
    browser
        .wait_for_text("#terminal-log", "agent$ cd /workspace/repo")
        .await;
    browser.wait_for_text("#terminal-log", "edited").await;
    browser
        .type_text("#terminal-command", "echo from-the-user-$((6*7))")
        .await;
    browser.click("#terminal-form button[type=submit]").await;
    browser
        .wait_for_text("#terminal-log", "you$ echo from-the-user-$((6*7))")
        .await;
    browser
        .wait_for_text("#terminal-log", "from-the-user-42")
        .await;
    let user_command =
        t.db.events_after(&id, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.kind == "run" && e.source == "user")
            .expect("the user's command is recorded as theirs");
    assert!(user_command.payload.contains("from-the-user"));
    browser.screenshot("workspace-terminal").await;

    // Changes: both files, with their counts and diffs.
    browser.click("#tab-changes").await;
    browser
        .wait_for_text("#changes-summary", "2 files changed")
        .await;
    let readme = browser
        .text("#changes [data-path='README.md'] summary")
        .await;
    assert!(
        readme.contains("modified") && readme.contains("+1") && readme.contains("−0"),
        "{readme}"
    );
    let notes = browser
        .text("#changes [data-path='notes.txt'] summary")
        .await;
    assert!(notes.contains("added") && notes.contains("+1"), "{notes}");
    browser
        .click("#changes [data-path='README.md'] summary")
        .await;
    browser
        .wait_for_text("#changes [data-path='README.md'] .diff .line.added", "+two")
        .await;
    browser.screenshot("workspace-changes").await;

    // Files: the workspace, into the clone, and a download.
    browser.click("#tab-files").await;
    browser
        .wait("#files [data-path='/workspace/repo'] button")
        .await;
    browser
        .click("#files [data-path='/workspace/repo'] button")
        .await;
    browser
        .wait_for_text("#files-path", "/workspace/repo")
        .await;
    let link = browser
        .wait("#files [data-path='/workspace/repo/notes.txt'] a")
        .await;
    let href = link.attr("href").await.unwrap().unwrap();
    assert!(href.contains("/workspace/file?path="), "{href}");
    let downloaded = browser
        .execute(
            "return fetch(arguments[0], {credentials: 'same-origin'}).then(async (r) => [r.status, r.headers.get('content-disposition'), await r.text()]);",
            vec![json!(href)],
        )
        .await;
    assert_eq!(
        downloaded,
        json!([200, "attachment; filename=\"notes.txt\"", "fresh\n"]),
        "{downloaded}"
    );
    browser.screenshot("workspace-files").await;
    browser.resize(PHONE).await;
    assert_fits(&browser, "conversation with the workspace").await;
    browser.phone_screenshot("workspace-files-phone").await;

    // Another user's read is refused as for a conversation that does not exist.
    let (_, bob_key) = user(&t, "bob", false).await;
    let status = reqwest::Client::new()
        .get(web.at(&format!("/api/conversations/{id}/workspace/changes")))
        .bearer_auth(&bob_key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);

    // A conversation that never had a sandbox says so in its panes.
    let empty = conversation(&t, &alice, "No sandbox here").await;
    set_status(&t, &empty, "finished").await;
    browser
        .goto(&web.at(&format!("/conversations/{empty}")))
        .await;
    browser.wait_for_text("#connection", "Live").await;
    browser.click("#tab-changes").await;
    browser.wait_for_text("#changes", "no sandbox").await;
    browser.click("#tab-files").await;
    browser.wait_for_text("#files", "no sandbox").await;
    assert_no_script_failures(&browser).await;
    browser.close().await;
    service.stop();
}
