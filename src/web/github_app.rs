//! A GitHub App made from a manifest, in two clicks: `GET /setup/github/start` shows a page
//! whose button posts the app's manifest (its webhook URL, permissions and events, from
//! OPENHANDS_PUBLIC_URL) to GitHub; GitHub creates the app and sends the browser back to
//! `GET /setup/github/callback` with a code, which is exchanged for the app's id, private key and
//! webhook secret (`POST /app-manifests/{code}/conversions`). Those are stored sealed and in
//! force at once; settings in the environment still win.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use super::auth::Admin;
use super::params::Query;
use super::{ApiError, AppState};

/// The cookie that ties GitHub's redirect back to the page that started it.
const STATE_COOKIE: &str = "openhands_github_app";
const STATE_LIFETIME: Duration = Duration::from_secs(60 * 60);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/setup/github/start", get(start))
        .route("/setup/github/callback", get(finish))
}

/// GitHub's web address for its API's: `https://api.github.com` → `https://github.com`, GitHub
/// Enterprise's `https://HOST/api/v3` → `https://HOST`; any other API address stands for its
/// own site.
pub fn github_web_url(api_url: &str) -> String {
    let api_url = api_url.trim_end_matches('/');
    if api_url == "https://api.github.com" {
        return "https://github.com".into();
    }
    api_url
        .strip_suffix("/api/v3")
        .map(str::to_string)
        .unwrap_or_else(|| match url::Url::parse(api_url) {
            Ok(url) => url.origin().ascii_serialization(),
            Err(_) => api_url.to_string(),
        })
}

/// The app this service needs, as GitHub's manifest describes it.
pub fn manifest(public_url: &str) -> Value {
    let public_url = public_url.trim_end_matches('/');
    json!({
        "name": "OpenHands",
        "url": public_url,
        "description": "An AI software engineer: mention it on an issue or pull request and it works on it in a sandbox.",
        "hook_attributes": {"url": format!("{public_url}/api/integration/github/events"), "active": true},
        "redirect_url": format!("{public_url}/setup/github/callback"),
        "callback_urls": [format!("{public_url}/auth/github/callback")],
        "public": false,
        "default_permissions": {
            "contents": "write",
            "issues": "write",
            "pull_requests": "write",
            "metadata": "read",
        },
        "default_events": [
            "issues",
            "issue_comment",
            "pull_request",
            "pull_request_review",
            "pull_request_review_comment",
        ],
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct StartQuery {
    /// Create the app in this organization instead of the signed-in GitHub user's account.
    organization: Option<String>,
}

/// The page with the button that posts the manifest to GitHub.
#[utoipa::path(
    get,
    path = "/setup/github/start",
    tag = "admin",
    summary = "A page that creates this service's GitHub App from its manifest on GitHub",
    extensions(("x-access" = json!("admin"))),
    params(StartQuery),
    responses((status = 200, description = "The page (HTML)", content_type = "text/html")),
)]
pub(super) async fn start(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let web = github_web_url(state.login.github_api_url());
    let nonce = crate::crypto::one_time_token();
    let action = match query.organization.as_deref().map(str::trim) {
        Some(organization) if !organization.is_empty() => {
            if !organization
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(ApiError::BadRequest(
                    "`organization` must be a GitHub organization's name (letters, digits, -)"
                        .into(),
                ));
            }
            format!("{web}/organizations/{organization}/settings/apps/new?state={nonce}")
        }
        _ => format!("{web}/settings/apps/new?state={nonce}"),
    };
    let manifest = manifest(&state.public_url).to_string();
    let expires = crate::storage::now_millis() + STATE_LIFETIME.as_millis() as i64;
    let cookie = state.login.cookie(
        STATE_COOKIE,
        state
            .sessions
            .sign_token(STATE_COOKIE, &format!("{nonce}:{expires}")),
        "/setup/github/",
        STATE_LIFETIME,
    );
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Create the GitHub App · OpenHands</title></head>\
         <body><main><h1>Create the GitHub App</h1>\
         <p>GitHub asks you to confirm the app's name, then creates it with the webhook URL, permissions and events this service needs, and sends you back here. Its id, private key and webhook secret are stored sealed on this service.</p>\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"manifest\" value=\"{manifest}\"><button type=\"submit\" id=\"create-github-app\">Create the GitHub App on GitHub</button></form>\
         <p><a href=\"/setup\">Back to the set-up</a></p></main></body></html>",
        action = escape_html(&action),
        manifest = escape_html(&manifest),
    );
    let policy = format!(
        "default-src 'none'; form-action {}; base-uri 'none'; frame-ancestors 'none'",
        github_web_url(state.login.github_api_url())
    );
    let mut response = (StatusCode::OK, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::SET_COOKIE, cookie);
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    Ok(response)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CallbackQuery {
    /// The code GitHub gives for the new app.
    code: Option<String>,
    /// The state the start page sent along.
    state: Option<String>,
}

/// What GitHub answers for a manifest's code: the new app and its credentials.
#[derive(Deserialize)]
struct Conversion {
    id: u64,
    slug: String,
    pem: String,
    webhook_secret: Option<String>,
}

/// Where GitHub sends the browser back: the code is exchanged for the app's credentials, which
/// are stored sealed; then to the set-up page, which links to the app's installation.
#[utoipa::path(
    get,
    path = "/setup/github/callback",
    tag = "admin",
    summary = "Where GitHub sends the browser back with the new app's code: stores its credentials",
    extensions(("x-access" = json!("admin"))),
    params(CallbackQuery),
    responses((status = 303, description = "Stored: to the set-up page")),
)]
pub(super) async fn finish(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let started = super::auth::cookie_value(&headers, STATE_COOKIE)
        .and_then(|value| state.sessions.verify_token(STATE_COOKIE, value))
        .and_then(|payload| payload.split_once(':'))
        .filter(|(_, expires)| {
            expires
                .parse::<i64>()
                .is_ok_and(|expires| expires > crate::storage::now_millis())
        })
        .map(|(nonce, _)| nonce.to_string())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "this GitHub App was not started from this browser's set-up page, or took longer than an hour: start it again".into(),
            )
        })?;
    let returned = query.state.unwrap_or_default();
    if !bool::from(returned.as_bytes().ct_eq(started.as_bytes())) {
        return Err(ApiError::BadRequest(
            "GitHub's state does not match the one this browser started: start it again".into(),
        ));
    }
    let code = query
        .code
        .filter(|code| !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| ApiError::BadRequest("GitHub sent no usable code".into()))?;
    if !state.keyring.is_persistent() {
        return Err(ApiError::Conflict(
            "the app's credentials cannot be stored: the server keeps its database in memory and has no OPENHANDS_SECRET_KEY".into(),
        ));
    }
    let url = format!(
        "{}/app-manifests/{code}/conversions",
        state.login.github_api_url()
    );
    let answer = state
        .login
        .http()
        .post(&url)
        .header(header::ACCEPT, "application/vnd.github+json")
        .header(header::USER_AGENT, "openhands")
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("GitHub cannot be reached: {e}")))?;
    let status = answer.status();
    if !status.is_success() {
        let said = answer.text().await.unwrap_or_default();
        return Err(ApiError::Upstream(format!(
            "GitHub did not make the app's credentials ({status}): {}",
            said.chars().take(300).collect::<String>()
        )));
    }
    let app: Conversion = answer
        .json()
        .await
        .map_err(|e| ApiError::Upstream(format!("GitHub's answer is not understood: {e}")))?;
    let webhook_secret = app
        .webhook_secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::Upstream("GitHub made the app without a webhook secret".into()))?;
    let seal = |value: &str| {
        state
            .providers
            .seal(value)
            .map(Some)
            .map_err(ApiError::Internal)
    };
    state
        .db
        .change_provider_settings(&[
            ("GITHUB_APP_ID", seal(&app.id.to_string())?),
            ("GITHUB_APP_PRIVATE_KEY", seal(&app.pem)?),
            ("GITHUB_WEBHOOK_SECRET", seal(&webhook_secret)?),
        ])
        .await?;
    tracing::info!(app_id = app.id, slug = %app.slug, "a GitHub App was made from its manifest");
    super::provider_settings::apply_now(&state).await;
    let clear = state.login.cookie(
        STATE_COOKIE,
        String::new(),
        "/setup/github/",
        Duration::ZERO,
    );
    let slug: String = url::form_urlencoded::byte_serialize(app.slug.as_bytes()).collect();
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/setup?github_app={slug}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_address_follows_the_api_address() {
        assert_eq!(
            github_web_url("https://api.github.com/"),
            "https://github.com"
        );
        assert_eq!(
            github_web_url("https://ghe.example.com/api/v3"),
            "https://ghe.example.com"
        );
        assert_eq!(
            github_web_url("http://127.0.0.1:4000/github"),
            "http://127.0.0.1:4000"
        );
    }

    #[test]
    fn the_manifest_points_github_at_this_service() {
        let manifest = manifest("https://oh.example.com/");
        assert_eq!(
            manifest["hook_attributes"]["url"],
            "https://oh.example.com/api/integration/github/events"
        );
        assert_eq!(
            manifest["redirect_url"],
            "https://oh.example.com/setup/github/callback"
        );
        assert_eq!(manifest["default_permissions"]["pull_requests"], "write");
    }
}
