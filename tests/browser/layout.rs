//! The dashboard's layout in a real headless Chromium: no page scrolls sideways at any width
//! from a small phone to a wide desktop, every field has a label and each label sits by its
//! own box; and the controls of the settings, deliveries and integrations pages: Copy, a
//! question before revoking or deleting, the deliveries' filters, Redeliver only where there
//! is something to run again.

use std::time::Duration;

use crate::dashboard::{answer_confirmation, assert_no_script_failures, sign_in};
use crate::support;

use openhands::agent::events::{ToolCallMeta, action, agent_message, observation, user_message};
use openhands::crypto::Keyring;
use openhands::storage::{DeliveryStatus, NewConversation, NewDelivery, NewEvent};
use openhands::web::{AppState, router};
use serde_json::{Value, json};
use support::TestDb;
use support::browser::{Browser, PHONE, WAIT, WebServer};

/// From a small phone to a wide desktop.
const WIDTHS: [u32; 5] = [360, 390, 768, 1280, 1440];

/// What [`assert_fits`] reads from the page: how wide it is, the elements that reach past
/// the window (outside any box that scrolls or clips them), and the fields without a name.
const FITS: &str = r#"
const describe = (el) => {
  let text = el.tagName.toLowerCase();
  if (el.id) text += '#' + el.id;
  if (typeof el.className === 'string' && el.className.trim()) text += '.' + el.className.trim().split(/\s+/).join('.');
  for (const name of ['data-delivery', 'data-provider', 'data-id', 'for', 'type']) {
    if (el.hasAttribute(name)) text += `[${name}=${el.getAttribute(name)}]`;
  }
  return text;
};
const width = window.innerWidth;
const page = document.documentElement.scrollWidth;
const clipped = (el) => {
  for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
    if (getComputedStyle(up).overflowX !== 'visible') return true;
  }
  return false;
};
const wide = [];
if (page > width) {
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= width + 0.5 || clipped(el)) continue;
    wide.push({ element: describe(el), width: Math.round(r.width), right: Math.round(r.right) });
  }
  // Text that overflows its box reaches past the window without its element doing so.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim() || !node.parentElement || clipped(node)) continue;
    range.selectNodeContents(node);
    const r = range.getBoundingClientRect();
    if (r.width === 0 || r.right <= width + 0.5) continue;
    wide.push({ element: `text of ${describe(node.parentElement)}: ${node.textContent.trim().slice(0, 60)}`, width: Math.round(r.width), right: Math.round(r.right) });
  }
  // The widest reach first; of those, the innermost (the narrowest) first.
  wide.sort((a, b) => b.right - a.right || a.width - b.width);
}
const visible = (el) => {
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
};
const named = (el) => {
  if ([...(el.labels || [])].some((label) => label.textContent.trim())) return true;
  if ((el.getAttribute('aria-label') || '').trim()) return true;
  return (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
    .some((id) => ((document.getElementById(id) || {}).textContent || '').trim());
};
const unlabelled = [...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.type !== 'hidden' && visible(el) && !named(el))
  .map(describe);
return { page, window: width, wide: wide.slice(0, 8), unlabelled };
"#;

/// Fails unless the page fits its window (it does not scroll sideways) and every visible
/// input, select and text box has a label (`<label for>`, a wrapping label, `aria-label` or
/// `aria-labelledby`); the failure names the elements that reach past the window, widest
/// first, and the fields without a label.
pub(crate) async fn assert_fits(browser: &Browser, page_name: &str) {
    let found = browser.execute(FITS, vec![]).await;
    let page = found["page"].as_u64().unwrap();
    let window = found["window"].as_u64().unwrap();
    assert!(
        page <= window,
        "{page_name} scrolls sideways in a {window}px window: the page is {page}px wide; \
         reaching past the window: {:#}",
        found["wide"]
    );
    let unlabelled = found["unlabelled"].as_array().unwrap();
    assert!(
        unlabelled.is_empty(),
        "{page_name} ({window}px) has fields without a label: {unlabelled:?}"
    );
}

/// The service with a keyring (so secrets can be kept), on a loopback port.
async fn serve(t: &TestDb) -> WebServer {
    let secret: openhands::setting::Secret =
        "a-layout-test-secret-key-of-32-chars!!".parse().unwrap();
    WebServer::start(router(
        AppState::new(t.db.clone()).with_keyring(Keyring::new(Some(&secret))),
    ))
    .await
}

/// Records a delivery as a webhook leaves it (`request` is what it asked for, if anything),
/// leading to `conversation` if given; its id.
async fn delivery(
    t: &TestDb,
    provider: &str,
    event: &str,
    status: DeliveryStatus,
    reason: Option<&str>,
    request: Option<&str>,
    conversation: Option<&str>,
) -> i64 {
    let mut tx = t.db.begin().await.unwrap();
    let id = tx
        .record_delivery(&NewDelivery {
            provider,
            delivery_id: &format!("{provider}-{event}-{}", status.as_str()),
            event,
            status,
            reason,
            payload: b"{}",
            request,
        })
        .await
        .unwrap()
        .unwrap();
    if conversation.is_some() {
        tx.finish_intake(id, &format!("intake-{id}"), status, reason, conversation)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    id
}

/// Deliveries from every provider, as they come: one that started work (the conversation
/// given), one ignored because it asked for nothing, one from an account not linked, one that
/// failed with a long unbroken reason, and a duplicate.
async fn deliveries(t: &TestDb, conversation: &str) {
    const REQUEST: &str = r#"{"provider":"github","text":"fix the parser"}"#;
    delivery(
        t,
        "github",
        "issue_comment",
        DeliveryStatus::Accepted,
        None,
        Some(REQUEST),
        Some(conversation),
    )
    .await;
    delivery(
        t,
        "slack",
        "app_mention",
        DeliveryStatus::Ignored,
        Some("the message asked for nothing: it does not mention the app"),
        None,
        None,
    )
    .await;
    delivery(
        t,
        "jira",
        "comment_created",
        DeliveryStatus::Unauthorized,
        Some(
            "the account 5b10ac8d82e05b22cc7d4ef5 of https://acme-international-holdings.atlassian.net is not linked to a user",
        ),
        Some(REQUEST),
        None,
    )
    .await;
    delivery(
        t,
        "linear",
        "Comment",
        DeliveryStatus::Failed,
        Some(
            "the repository acme/payments-reconciliation-service-with-an-extraordinarily-long-name-0123456789abcdef could not be cloned",
        ),
        Some(REQUEST),
        None,
    )
    .await;
    delivery(
        t,
        "gitlab",
        "Note Hook",
        DeliveryStatus::Duplicate,
        Some("already received"),
        None,
        None,
    )
    .await;
}

const LONG_TITLE: &str = "Investigate why the nightly reconciliation of the payments ledger fails \
    only on the second Tuesday of each month: reconciliationJobIdentifier_0123456789abcdef0123456789abcdef0123456789abcdef";
const LONG_REPOSITORY: &str = "acme-corporation-international/payments-reconciliation-service-with-an-extraordinarily-long-unbroken-repository-name-0123456789";

/// A conversation with a long title and repository name, and what a run of it shows: a long
/// command, output with a long line, an answer with a long address.
async fn long_conversation(t: &TestDb, owner: &str) -> String {
    let id =
        t.db.create_conversation(&NewConversation {
            owner_id: owner,
            title: LONG_TITLE,
            trigger_kind: "github",
            repository: Some(LONG_REPOSITORY),
            branch: Some("feature/reconcile-the-second-tuesday-of-each-month-without-failing"),
            git_provider: Some("github"),
            external_ref: None,
            trigger_url: Some(
                "https://github.com/acme-corporation-international/payments/issues/4242",
            ),
            title_pending: false,
        })
        .await
        .unwrap()
        .id;
    let call = ToolCallMeta {
        function_name: "execute_bash".into(),
        tool_call_id: "call-1".into(),
        arguments: "{}".into(),
        response_id: "response-1".into(),
    };
    let command = format!(
        "cargo test --manifest-path /workspace/{LONG_REPOSITORY}/Cargo.toml -- --nocapture"
    );
    let output = format!("{}\nok", "0123456789abcdef".repeat(30));
    let drafts = [
        user_message(LONG_TITLE, false, json!({})),
        action(
            "run",
            json!({"command": command}),
            format!("Running {command}"),
            &call,
        ),
    ];
    let mut cause = 0;
    for draft in &drafts {
        cause = append(t, &id, draft).await;
    }
    append(
        t,
        &id,
        &observation(
            "run",
            &output,
            json!({"exit_code": 0, "command": command}),
            "Command finished".into(),
            cause,
            Some(&call),
        ),
    )
    .await;
    append(
        t,
        &id,
        &agent_message(
            "Done: see https://github.com/acme-corporation-international/payments-reconciliation-service-with-an-extraordinarily-long-unbroken-repository-name-0123456789/pull/4243",
            None,
            "response-2",
        ),
    )
    .await;
    id
}

async fn append(t: &TestDb, id: &str, draft: &openhands::agent::events::Draft) -> i64 {
    t.db.append_event(
        id,
        &NewEvent {
            source: draft.source,
            kind: &draft.kind,
            payload: &draft.doc,
        },
    )
    .await
    .unwrap()
}

/// A secret of the user's, through the API.
async fn add_secret(web: &WebServer, key: &str, name: &str) {
    let answer = reqwest::Client::new()
        .post(web.at("/api/secrets"))
        .bearer_auth(key)
        .json(&json!({
            "name": name,
            "value": "s3cr3t",
            "description": "the token the deployment scripts of the staging environment read: https://wiki.example.com/deployment/staging/tokens-and-how-to-rotate-them",
        }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
}

/// An administrator with realistic data (a long title, a long unbroken repository name,
/// deliveries of every kind, API keys, a secret) sees every page fit every width from 360 to
/// 1440 pixels, every field labelled; each is photographed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_every_width_from_a_phone_to_a_desktop() {
    let t = TestDb::sqlite().await;
    let web = serve(&t).await;
    let (ada, key) = support::user_with_key(&t.db, "ada", true).await;
    openhands::web::keys::issue_key(
        &t.db,
        &ada,
        "the-continuous-integration-runner-of-the-payments-reconciliation-service",
        None,
    )
    .await
    .unwrap();
    add_secret(
        &web,
        &key,
        "DEPLOY_TOKEN_FOR_THE_STAGING_ENVIRONMENT_OF_THE_PAYMENTS_RECONCILIATION_SERVICE",
    )
    .await;
    let id = long_conversation(&t, &ada).await;
    deliveries(&t, &id).await;

    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    let conversation = format!("/conversations/{id}");
    let pages = [
        (
            "conversations",
            "/conversations",
            "#conversation-list li[data-id]",
        ),
        ("conversation", conversation.as_str(), "#events li.agent"),
        ("new", "/new", "form#new-form"),
        (
            "deliveries",
            "/deliveries",
            "#delivery-list tr[data-delivery]",
        ),
        ("settings", "/settings", "#secret-list li code"),
        ("integrations", "/integrations", "#main [data-provider]"),
        ("setup", "/setup", "#setup-model-form"),
    ];
    for width in WIDTHS {
        browser
            .resize((width, if width < 768 { 844 } else { 900 }))
            .await;
        for (name, path, ready) in pages {
            browser.goto(&web.at(path)).await;
            browser.wait(ready).await;
            assert_fits(&browser, &format!("{path} ({name})")).await;
            browser.screenshot(&format!("layout-{name}-{width}")).await;
        }
    }
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// The gaps between each `label[for]` in the page's main area and the fields: a label whose
/// own field is not the nearest one (or not shown) is listed.
const MISPLACED_LABELS: &str = r#"
const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
const fields = [...document.querySelectorAll('#main input, #main select, #main textarea')].filter(visible);
const wrong = [];
for (const label of document.querySelectorAll('#main label[for]')) {
  const own = document.getElementById(label.htmlFor);
  const name = label.textContent.trim();
  if (!own || !visible(own)) { wrong.push(`${name}: its field #${label.htmlFor} is not shown`); continue; }
  const l = label.getBoundingClientRect();
  const gap = (r) => Math.hypot(Math.max(0, r.left - l.right, l.left - r.right), Math.max(0, r.top - l.bottom, l.top - r.bottom));
  const mine = gap(own.getBoundingClientRect());
  for (const other of fields) {
    const theirs = gap(other.getBoundingClientRect());
    if (other !== own && theirs <= mine) wrong.push(`${name}: #${other.id} is ${Math.round(theirs)}px away, its own #${own.id} ${Math.round(mine)}px`);
  }
}
return wrong;
"#;

/// Each label on the settings page sits by its own field, on a desktop and on a phone: the
/// secret's "Value" is the password box's label and is nearer to it than to the name box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_sit_by_their_own_fields_in_settings() {
    let t = TestDb::sqlite().await;
    let web = serve(&t).await;
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.click("#nav a[href='/settings']").await;
    browser.wait("form#secret-form").await;

    let value = browser
        .execute(
            "const label = [...document.querySelectorAll('#secret-form label')]
               .find((l) => l.textContent.trim() === 'Value');
             const box = label && document.getElementById(label.htmlFor);
             return box ? box.type : null;",
            vec![],
        )
        .await;
    assert_eq!(
        value, "password",
        "the label \"Value\" names the password box"
    );

    for size in [support::browser::DESKTOP, PHONE] {
        browser.resize(size).await;
        let wrong = browser.execute(MISPLACED_LABELS, vec![]).await;
        assert_eq!(
            wrong,
            json!([]),
            "labels nearer another field than their own at {}px",
            size.0
        );
        let gaps = browser
            .execute(
                "const label = document.querySelector('label[for=secret-value]').getBoundingClientRect();
                 const centre = (r) => [r.left + r.width / 2, r.top + r.height / 2];
                 const [x, y] = centre(label);
                 const away = (id) => {
                   const [fx, fy] = centre(document.getElementById(id).getBoundingClientRect());
                   return Math.hypot(fx - x, fy - y);
                 };
                 return { value: away('secret-value'), name: away('secret-name') };",
                vec![],
            )
            .await;
        assert!(
            gaps["value"].as_f64() < gaps["name"].as_f64(),
            "\"Value\" is nearer the name box than the password box at {}px: {gaps}",
            size.0
        );
        assert_fits(&browser, "/settings").await;
    }
    browser.close().await;
    t.drop_database().await;
}

/// Waits until `script` (a function body) returns true.
async fn wait_until(browser: &Browser, what: &str, script: &str) {
    support::wait_for(what, WAIT, || async {
        (browser.execute(script, vec![]).await == true).then_some(())
    })
    .await;
}

/// A new API key is copied with its Copy button ("Copied" is said); Revoke and Delete ask
/// first, naming what goes: dismissed, the key still opens the API and the secret stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_is_copied_and_revoking_or_deleting_asks_first() {
    let t = TestDb::sqlite().await;
    let web = serve(&t).await;
    let (alice, key) = support::user_with_key(&t.db, "alice", false).await;
    let browser = Browser::start().await;
    let clipboard = browser.grant_clipboard().await;
    sign_in(&browser, &web, &key).await;
    browser.click("#nav a[href='/settings']").await;

    // Created with the keyboard alone: typed, then Enter.
    browser.type_text("#key-name", "laptop\u{e007}").await;
    let created = browser.text("#new-key").await;
    assert!(created.starts_with("oh_"), "{created}");
    browser.click(".copyable button.copy").await;
    browser
        .wait_for_text(".copyable .copy-status", "Copied")
        .await;
    if clipboard.is_ok() {
        let copied = browser
            .execute("return navigator.clipboard.readText();", vec![])
            .await;
        assert_eq!(copied, created.as_str(), "the clipboard holds the new key");
    } else {
        eprintln!("the clipboard cannot be read here ({clipboard:?}); \"Copied\" was said");
    }
    browser.screenshot("settings-key-copied").await;

    let opens = |token: String| {
        let url = web.at("/api/user");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let revoke = "button[aria-label='Revoke the API key laptop']";
    browser.click(revoke).await;
    let asked = answer_confirmation(&browser, false).await;
    assert!(asked.contains("Revoke the API key “laptop”"), "{asked}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(browser.text("#key-list").await.contains("laptop"));
    assert_eq!(opens(created.clone()).await, 200, "a kept key still opens");
    browser.click(revoke).await;
    answer_confirmation(&browser, true).await;
    wait_until(
        &browser,
        "the key to leave the list",
        "return !document.querySelector('#key-list').textContent.includes('laptop');",
    )
    .await;
    assert_eq!(opens(created).await, 401, "a revoked key opens nothing");

    browser.type_text("#secret-name", "DEPLOY_TOKEN").await;
    browser.type_text("#secret-value", "s3cr3t\u{e007}").await;
    browser.wait_for_text("#secret-list", "DEPLOY_TOKEN").await;
    let delete = "button[aria-label='Delete the secret DEPLOY_TOKEN']";
    browser.click(delete).await;
    let asked = answer_confirmation(&browser, false).await;
    assert!(asked.contains("Delete the secret DEPLOY_TOKEN?"), "{asked}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.db.secrets_of(&alice).await.unwrap().len(), 1);
    browser.click(delete).await;
    answer_confirmation(&browser, true).await;
    browser.wait_for_text("#secret-list", "No secrets.").await;
    assert!(t.db.secrets_of(&alice).await.unwrap().is_empty());
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// The listed deliveries' providers and statuses, in order.
async fn listed(browser: &Browser) -> Vec<(String, String)> {
    let rows = browser
        .execute(
            "return [...document.querySelectorAll('#delivery-list tr[data-delivery]')]
               .map((tr) => [tr.dataset.provider, tr.dataset.status]);",
            vec![],
        )
        .await;
    serde_json::from_value(rows).unwrap()
}

/// Waits until the list shows exactly `expected` (provider and status of each row).
async fn wait_for_listed(browser: &Browser, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect();
    let started = std::time::Instant::now();
    loop {
        let now = listed(browser).await;
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "the list shows {now:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Chooses `value` in the select matching `css`.
async fn choose(browser: &Browser, css: &str, value: &str) {
    browser
        .wait(css)
        .await
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("cannot choose {value} in {css}: {e}"));
}

/// The deliveries page: the list is narrowed by provider and by status (kept in the address);
/// Redeliver is offered for a delivery that started work and not for one that asked for
/// nothing; on a phone every delivery's status and reason are in view, under their names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_filtered_and_redelivered_only_where_there_is_something_to_run() {
    let t = TestDb::sqlite().await;
    let web = serve(&t).await;
    let (ada, key) = support::user_with_key(&t.db, "ada", true).await;
    let id = long_conversation(&t, &ada).await;
    deliveries(&t, &id).await;

    // The API says which can be run again.
    let page: Value = reqwest::Client::new()
        .get(web.at("/api/deliveries"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let redeliverable: Vec<(String, bool)> = page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["status"].as_str().unwrap().to_string(),
                d["redeliverable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        redeliverable,
        [
            ("duplicate".to_string(), false),
            ("failed".to_string(), true),
            ("unauthorized".to_string(), true),
            ("ignored".to_string(), false),
            ("accepted".to_string(), true),
        ]
    );

    let browser = Browser::start().await;
    sign_in(&browser, &web, &key).await;
    browser.click("#nav a[href='/deliveries']").await;
    let all = [
        ("gitlab", "duplicate"),
        ("linear", "failed"),
        ("jira", "unauthorized"),
        ("slack", "ignored"),
        ("github", "accepted"),
    ];
    wait_for_listed(&browser, &all).await;

    // A wide window shows a table whose headings, providers, statuses and buttons keep their
    // words whole (only a long reason wraps anywhere).
    for width in [1280, 800] {
        browser.resize((width, 900)).await;
        let broken = browser
            .execute(
                "const range = document.createRange();
                 return [...document.querySelectorAll(
                     '#delivery-list th, #delivery-list td:nth-child(2), #delivery-list .badge, #delivery-list button')]
                   .filter((el) => {
                     range.selectNodeContents(el);
                     const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                     const word = el.textContent.trim();
                     return word && !word.includes(' ') && !el.querySelector('.visually-hidden') && lines.size > 1;
                   })
                   .map((el) => el.textContent.trim());",
                vec![],
            )
            .await;
        assert_eq!(broken, json!([]), "words broken across lines at {width}px");
        assert_fits(&browser, "/deliveries").await;
    }

    // Redeliver where there is a request, not where it asked for nothing.
    let accepted = "#delivery-list tr[data-status=accepted]";
    let ignored = "#delivery-list tr[data-status=ignored]";
    browser.wait(&format!("{accepted} button.redeliver")).await;
    let buttons = browser
        .execute(
            "return [...document.querySelectorAll('#delivery-list tr[data-delivery]')]
               .filter((tr) => tr.querySelector('button'))
               .map((tr) => tr.dataset.status);",
            vec![],
        )
        .await;
    assert_eq!(buttons, json!(["failed", "unauthorized", "accepted"]));
    assert!(
        !browser.text(ignored).await.contains("Redeliver"),
        "an ignored delivery offers nothing to run again"
    );

    choose(&browser, "#filter-provider", "slack").await;
    wait_for_listed(&browser, &[("slack", "ignored")]).await;
    browser.wait_for_path("/deliveries?provider=slack").await;
    choose(&browser, "#filter-provider", "").await;
    choose(&browser, "#filter-status", "accepted").await;
    wait_for_listed(&browser, &[("github", "accepted")]).await;
    browser.wait_for_path("/deliveries?status=accepted").await;
    choose(&browser, "#filter-provider", "jira").await;
    browser
        .wait_for_text("#delivery-list", "No delivery matches these filters.")
        .await;
    browser.screenshot("deliveries-filtered-none").await;
    // The address keeps the filters: opened again, the page shows the same list.
    browser
        .goto(&web.at("/deliveries?provider=jira&status=unauthorized"))
        .await;
    wait_for_listed(&browser, &[("jira", "unauthorized")]).await;
    let chosen = browser
        .execute(
            "return [document.querySelector('#filter-provider').value, document.querySelector('#filter-status').value];",
            vec![],
        )
        .await;
    assert_eq!(chosen, json!(["jira", "unauthorized"]));

    // On a phone, each delivery's status and reason are in view, under their names.
    browser.goto(&web.at("/deliveries")).await;
    wait_for_listed(&browser, &all).await;
    for width in [360, 390] {
        browser.resize((width, 844)).await;
        let out_of_view = browser
            .execute(
                "const width = window.innerWidth;
                 const wrong = [];
                 for (const tr of document.querySelectorAll('#delivery-list tr[data-delivery]')) {
                   const status = tr.querySelector('.badge');
                   const reason = tr.querySelector('td.reason');
                   // Every delivery has a status; the accepted one has no reason to show.
                   const parts = { status: status && status.closest('td'), reason: reason.textContent ? reason : null };
                   if (!parts.status) wrong.push(`${tr.dataset.status}: no status`);
                   if (tr.dataset.status !== 'accepted' && !parts.reason) wrong.push(`${tr.dataset.status}: no reason`);
                   for (const [what, el] of Object.entries(parts)) {
                     if (!el) continue;
                     const r = el.getBoundingClientRect();
                     if (r.width === 0 || r.height === 0 || r.left < 0 || r.right > width) {
                       wrong.push(`${tr.dataset.status}: the ${what} spans ${Math.round(r.left)}..${Math.round(r.right)}px`);
                     }
                     const named = getComputedStyle(el, '::before').content;
                     if (!named.toLowerCase().includes(what)) wrong.push(`${tr.dataset.status}: the ${what} is not named (${named})`);
                   }
                 }
                 return wrong;",
                vec![],
            )
            .await;
        assert_eq!(out_of_view, json!([]), "at {width}px");
        assert_fits(&browser, "/deliveries").await;
        browser
            .screenshot(&format!("deliveries-stacked-{width}"))
            .await;
    }
    assert_no_script_failures(&browser).await;
    browser.close().await;
    t.drop_database().await;
}

/// Each webhook address on the integrations page has a Copy button that says "Copied", and
/// a long address wraps inside its card on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_addresses_are_copied_and_stay_in_their_cards() {
    let t = TestDb::sqlite().await;
    let web = serve(&t).await;
    let (_, key) = support::user_with_key(&t.db, "ada", true).await;
    let browser = Browser::start().await;
    let clipboard = browser.grant_clipboard().await;
    sign_in(&browser, &web, &key).await;
    browser.click("#nav a[href='/integrations']").await;
    let card = "article[data-provider=linear]";
    let url = browser.text(&format!("{card} code.url")).await;
    assert!(url.contains("/api/integration/linear/events"), "{url}");
    browser
        .click(&format!(
            "{card} button[aria-label='Copy the Linear webhook URL']"
        ))
        .await;
    browser
        .wait_for_text(&format!("{card} .copy-status"), "Copied")
        .await;
    if clipboard.is_ok() {
        let copied = browser
            .execute("return navigator.clipboard.readText();", vec![])
            .await;
        assert_eq!(copied, url.as_str(), "the clipboard holds the address");
    } else {
        eprintln!("the clipboard cannot be read here ({clipboard:?}); \"Copied\" was said");
    }

    browser.resize(PHONE).await;
    let outside = browser
        .execute(
            "const out = [];
             for (const card of document.querySelectorAll('article[data-provider]')) {
               const box = card.getBoundingClientRect();
               for (const el of card.querySelectorAll('code, button, h2')) {
                 const r = el.getBoundingClientRect();
                 if (r.right > box.right + 0.5 || r.left < box.left - 0.5) out.push(`${card.dataset.provider}: ${el.tagName}`);
               }
             }
             return out;",
            vec![],
        )
        .await;
    assert_eq!(outside, json!([]), "reaching out of their cards");
    assert_fits(&browser, "/integrations").await;
    browser.close().await;
    t.drop_database().await;
}
