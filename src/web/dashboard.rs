//! The dashboard: plain HTML, CSS and JavaScript modules embedded in the binary (no bundler,
//! nothing fetched from elsewhere), served under a strict Content-Security-Policy. Every page
//! path answers the same shell; the modules route in the browser and talk to the REST API and
//! the events WebSocket with the session cookie.
//!
//! Assets live under `/assets/{version}/…`, where the version is a digest of their contents:
//! they are cached for a year, and a new build is a new path (modules import each other by
//! relative paths, so they stay within one version). A missing asset is a JSON 404 that is
//! not cached.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::Admin;
use super::params::{NoQuery, Query};
use super::{ApiError, AppState};
use crate::integrations::request::Provider;

/// Only this service's own scripts, styles and connections; no inline code, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The embedded files: name, content type, contents.
const ASSETS: [(&str, &str, &str); 16] = [
    ("app.js", JS, include_str!("dashboard/app.js")),
    ("api.js", JS, include_str!("dashboard/api.js")),
    ("dom.js", JS, include_str!("dashboard/dom.js")),
    ("markdown.js", JS, include_str!("dashboard/markdown.js")),
    ("login.js", JS, include_str!("dashboard/login.js")),
    (
        "conversations.js",
        JS,
        include_str!("dashboard/conversations.js"),
    ),
    (
        "conversation.js",
        JS,
        include_str!("dashboard/conversation.js"),
    ),
    ("workspace.js", JS, include_str!("dashboard/workspace.js")),
    ("new.js", JS, include_str!("dashboard/new.js")),
    ("deliveries.js", JS, include_str!("dashboard/deliveries.js")),
    ("settings.js", JS, include_str!("dashboard/settings.js")),
    ("link.js", JS, include_str!("dashboard/link.js")),
    ("device.js", JS, include_str!("dashboard/device.js")),
    ("setup.js", JS, include_str!("dashboard/setup.js")),
    (
        "integrations.js",
        JS,
        include_str!("dashboard/integrations.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";
const SHELL: &str = include_str!("dashboard/index.html");

/// The pages, each answered with the shell, and what each shows. The OpenAPI document lists
/// them from here; a test checks that they are the routes below.
pub(super) const PAGES: [(&str, &str); 11] = [
    ("/", "The dashboard: conversations"),
    ("/login", "The dashboard: sign in"),
    ("/conversations", "The dashboard: conversations"),
    (
        "/conversations/{id}",
        "The dashboard: one conversation, live",
    ),
    ("/new", "The dashboard: a new conversation"),
    (
        "/device",
        "The dashboard: approve a device's sign-in (OpenHands' CLI)",
    ),
    (
        "/deliveries",
        "The dashboard: webhook deliveries (administrators)",
    ),
    (
        "/settings",
        "The dashboard: LLM settings, API keys, secrets",
    ),
    (
        "/integrations",
        "The dashboard: providers and their webhook URLs (administrators)",
    ),
    (
        "/setup",
        "The dashboard: set-up checks, the model and its test (administrators)",
    ),
    (
        "/link/{token}",
        "The dashboard: follow a one-time link that links a Slack, Jira or Linear account to the signed-in user",
    ),
];

/// Every page answers the shell; the modules route in the browser.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(shell))
        .route("/login", get(shell))
        .route("/conversations", get(shell))
        .route("/conversations/{id}", get(shell))
        .route("/new", get(shell))
        .route("/device", get(shell))
        .route("/deliveries", get(shell))
        .route("/settings", get(shell))
        .route("/integrations", get(shell))
        .route("/setup", get(shell))
        .route("/link/{token}", get(shell))
        .route("/assets/{version}/{file}", get(asset))
        .route("/api/integrations", get(integrations))
}

/// A digest of every asset: the path segment that changes when any of them does.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut digest = Sha256::new();
        for (name, _, contents) in ASSETS {
            digest.update(name.as_bytes());
            digest.update(contents.as_bytes());
        }
        hex::encode(&digest.finalize()[..6])
    })
}

async fn shell() -> Response {
    let html = SHELL.replace("{{version}}", version());
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[utoipa::path(
    get,
    path = "/assets/{version}/{file}",
    tag = "dashboard",
    summary = "The dashboard's embedded scripts and styles",
    extensions(("x-access" = json!("public"))),
    params(
        ("version" = String, Path, description = "The digest of the assets the page was built with"),
        ("file" = String, Path, description = "The file's name (e.g. app.js)"),
    ),
    responses(
        (status = 200, description = "The file; cached for a year when the version is today's", content_type = "text/javascript", body = String),
        (status = 404, description = "No such asset (not cached)"),
    ),
)]
pub(super) async fn asset(Path((version_asked, file)): Path<(String, String)>) -> Response {
    let Some((_, content_type, contents)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return ApiError::NotFound("asset").into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, *content_type)], *contents).into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if version_asked != version() {
        // An older page asking after an upgrade: serve today's file, but do not let it be
        // cached under the old version's name.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What each provider needs registered, whether it is configured, and what it last sent.
#[utoipa::path(
    get,
    path = "/api/integrations",
    tag = "admin",
    summary = "Each provider: configured or not, its webhook URL and events, its last delivery",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    responses((status = 200, description = "The providers", body = Object)),
)]
pub(super) async fn integrations(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
) -> Result<Json<Value>, ApiError> {
    let enabled = state.providers.webhooks().enabled_providers();
    let mut providers = Vec::new();
    for provider in Provider::ALL {
        let name = provider.as_str();
        let last = state
            .db
            .deliveries(Some(name), None, None, 1)
            .await?
            .into_iter()
            .next();
        providers.push(json!({
            "provider": name,
            "configured": enabled.contains(&provider),
            "webhook_url": format!("{}/api/integration/{name}/events", state.public_url),
            "secret_setting": secret_setting(provider),
            "events": events_to_send(provider),
            "settings": super::provider_settings::settings_of(&state, provider).await?,
            "last_delivery": last.map(|d| json!({
                "id": d.id,
                "event": d.event,
                "status": d.status,
                "reason": d.reason,
                "received_at": d.received_at,
            })),
        }));
    }
    Ok(Json(json!({ "providers": providers })))
}

fn secret_setting(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "GITHUB_WEBHOOK_SECRET",
        Provider::Gitlab => "GITLAB_WEBHOOK_TOKEN",
        Provider::Slack => "SLACK_SIGNING_SECRET",
        Provider::Jira => "JIRA_WEBHOOK_SECRET",
        Provider::JiraDc => "JIRA_DC_WEBHOOK_SECRET",
        Provider::Linear => "LINEAR_WEBHOOK_SECRET",
    }
}

/// The events to subscribe to, as each provider's settings name them.
fn events_to_send(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Github => &[
            "Issues",
            "Issue comments",
            "Pull requests",
            "Pull request reviews",
            "Pull request review comments",
        ],
        Provider::Gitlab => &[
            "Issues events",
            "Confidential issues events",
            "Comments",
            "Confidential comments",
            "Merge request events",
        ],
        Provider::Slack => &["app_mention", "message.channels", "message.groups"],
        Provider::Jira => &["Comment created", "Issue updated"],
        // Data Center tells of each new comment, with its issue, as an issue update.
        Provider::JiraDc => &["Issue updated"],
        Provider::Linear => &["Comments", "Issues"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_names_only_embedded_assets_of_this_version() {
        let html = SHELL.replace("{{version}}", version());
        for part in html.split("/assets/").skip(1) {
            let rest = part.strip_prefix(version()).unwrap();
            let file = rest.trim_start_matches('/').split('"').next().unwrap();
            assert!(ASSETS.iter().any(|(name, _, _)| *name == file), "{file}");
        }
        assert!(!html.contains("<script>") && !html.contains(" style="));
    }
}
