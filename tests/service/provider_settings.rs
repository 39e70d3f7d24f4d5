//! Provider settings entered on the setup page: refused when they could not answer, refused
//! when the environment sets them, stored sealed, in force at once in the process that stored
//! them, and within seconds in another process on the same database.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use openhands::config::Cli;
use openhands::crypto::Keyring;
use openhands::integrations::request::Provider;
use openhands::integrations::state::{ProviderState, Role};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::on_both_backends;
use crate::support::service::Service;
use crate::support::{TestDb, fakes, fixture, signing, wait_for};

on_both_backends! {
    provider_settings_entered_in_the_dashboard_are_checked_stored_sealed_and_in_force_at_once => entered_settings;
    settings_stored_by_one_process_reach_another_within_seconds => another_process;
}

const ADMIN_KEY: &str = "admin-key-for-provider-settings";
const WEBHOOK_TOKEN: &str = "gitlab-webhook-token-from-the-dashboard";

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("content-type", "application/json");
    let body = match body {
        Some(body) => Body::from(body.to_string()),
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn note(app: &Router, uuid: &str) -> StatusCode {
    let request: Request<Body> = signing::gitlab(
        WEBHOOK_TOKEN,
        "Note Hook",
        uuid,
        fixture("gitlab/note.issue.json"),
    )
    .into();
    app.clone().oneshot(request).await.unwrap().status()
}

/// The settings of `provider` as `GET /api/integrations` lists them, by name.
async fn listed(app: &Router, provider: &str) -> (bool, Value) {
    let (status, body) = call(app, "GET", "/api/integrations", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == provider)
        .unwrap()
        .clone();
    let settings = entry["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s.clone()))
        .collect::<serde_json::Map<_, _>>();
    (
        entry["configured"].as_bool().unwrap(),
        Value::Object(settings),
    )
}

async fn entered_settings(t: &TestDb) {
    let service = Service::builder(&t.db)
        .fakes()
        .unset("--gitlab-token")
        .admin_key(ADMIN_KEY)
        .web()
        .workers()
        .start()
        .await;
    let app = service.app();
    service.fakes().set_gitlab_level(42, "2718", 30);

    assert_eq!(note(&app, "gl-settings-1").await, StatusCode::NOT_FOUND);
    let (configured, settings) = listed(&app, "gitlab").await;
    assert!(!configured);
    assert_eq!(settings["GITLAB_TOKEN"]["source"], "unset");
    assert_eq!(settings["GITLAB_WEBHOOK_TOKEN"]["secret"], true);
    let (_, github) = listed(&app, "github").await;
    assert_eq!(github["GITHUB_APP_ID"]["source"], "environment");
    assert_eq!(
        github["GITHUB_APP_ID"]["value"],
        fakes::GITHUB_APP_ID.to_string()
    );
    assert_eq!(github["GITHUB_APP_PRIVATE_KEY"]["value"], Value::Null);

    // A webhook secret without the token that answers would accept work nobody can answer.
    let uri = "/api/integrations/gitlab/settings";
    let (status, body) = call(
        &app,
        "PUT",
        uri,
        Some(json!({"settings": {"GITLAB_WEBHOOK_TOKEN": WEBHOOK_TOKEN}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("GITLAB_TOKEN"),
        "{body}"
    );
    assert!(t.db.stored_provider_settings().await.unwrap().is_empty());
    // What the environment sets wins, and is changed there.
    let (status, body) = call(
        &app,
        "PUT",
        "/api/integrations/github/settings",
        Some(json!({"settings": {"GITHUB_APP_ID": "77"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("environment"),
        "{body}"
    );
    // Another provider's setting is not GitLab's.
    let (status, body) = call(
        &app,
        "PUT",
        uri,
        Some(json!({"settings": {"SLACK_BOT_TOKEN": "xoxb-1"}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = call(
        &app,
        "PUT",
        "/api/integrations/bitbucket/settings",
        Some(json!({"settings": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = call(
        &app,
        "PUT",
        uri,
        Some(json!({"settings": {
            "GITLAB_TOKEN": fakes::GITLAB_TOKEN,
            "GITLAB_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        }})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["configured"], true, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains(fakes::GITLAB_TOKEN) && !text.contains(WEBHOOK_TOKEN),
        "{text}"
    );
    // Sealed at rest.
    let stored = t.db.stored_provider_settings().await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (name, sealed) in &stored {
        assert!(
            !sealed.contains(fakes::GITLAB_TOKEN) && !sealed.contains(WEBHOOK_TOKEN),
            "{name} is stored in clear"
        );
    }
    let (configured, settings) = listed(&app, "gitlab").await;
    assert!(configured);
    assert_eq!(settings["GITLAB_TOKEN"]["source"], "stored");
    assert_eq!(settings["GITLAB_TOKEN"]["value"], Value::Null);

    // In force without a restart: the mention is taken in and acknowledged with the stored
    // token.
    assert_eq!(note(&app, "gl-settings-2").await, StatusCode::ACCEPTED);
    wait_for(
        "the acknowledgement made with the stored token",
        Duration::from_secs(60),
        || async {
            let awards = service
                .fakes()
                .gitlab_award_emoji(42, "issues/7/notes/1241");
            (!awards.is_empty()).then_some(())
        },
    )
    .await;

    // Removing the webhook secret disables the provider again.
    let (status, body) = call(
        &app,
        "PUT",
        uri,
        Some(json!({"settings": {"GITLAB_WEBHOOK_TOKEN": null}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["configured"], false, "{body}");
    assert_eq!(note(&app, "gl-settings-3").await, StatusCode::NOT_FOUND);
    assert_eq!(t.db.stored_provider_settings().await.unwrap().len(), 1);
}

async fn another_process(t: &TestDb) {
    let environment = Cli::try_parse_from(["openhands", "serve"])
        .unwrap()
        .config
        .providers;
    let key = "a-key-every-process-of-this-test-shares-0123"
        .parse()
        .unwrap();
    let keyring = Keyring::new(Some(&key));
    let storing = ProviderState::load(environment.clone(), keyring.clone(), Role::Web, &t.db)
        .await
        .unwrap();
    let other = Arc::new(
        ProviderState::load(environment, keyring, Role::Workers, &t.db)
            .await
            .unwrap(),
    );
    let stop = CancellationToken::new();
    tokio::spawn(
        other
            .clone()
            .watch(t.db.clone(), Duration::from_millis(50), stop.clone()),
    );
    assert!(other.webhooks().secrets(Provider::Gitlab).is_none());

    let seal = |value: &str| Some(storing.seal(value).unwrap());
    t.db.change_provider_settings(&[
        ("GITLAB_TOKEN", seal(fakes::GITLAB_TOKEN)),
        ("GITLAB_WEBHOOK_TOKEN", seal(WEBHOOK_TOKEN)),
    ])
    .await
    .unwrap();
    wait_for(
        "the other process to take the stored GitLab settings in",
        Duration::from_secs(10),
        || async {
            (other.webhooks().secrets(Provider::Gitlab).is_some()
                && other.clients().gitlab.is_some())
            .then_some(())
        },
    )
    .await;

    // Settings that cannot work are not taken in: the ones in force stay.
    t.db.change_provider_settings(&[("GITLAB_TOKEN", None)])
        .await
        .unwrap();
    assert!(!other.reload(&t.db).await.unwrap());
    assert!(other.clients().gitlab.is_some());
    stop.cancel();
}
