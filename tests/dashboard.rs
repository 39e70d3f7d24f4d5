//! The dashboard in a real headless Chromium (driven over WebDriver), against the service's
//! router on a loopback port and a real database. Screenshots of each page are kept in
//! `$TEST_OUTPUT_DIR` (else `target/test-output/screenshots/`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use openhands::web::{AppState, router};
use serde_json::Value;
use support::TestDb;
use support::browser::{Browser, WebServer};

/// The service on a loopback port, over the test's database.
async fn serve(t: &TestDb) -> WebServer {
    WebServer::start(router(AppState::new(t.db.clone()))).await
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
