//! Browser sign-in through GitHub OAuth and OpenID Connect against a fake provider on
//! loopback: the state, PKCE and flow cookie are checked, accounts map to users only through
//! links or the allow-list, and the session cookie then works like an API key.

use crate::on_both_backends;
use crate::support;

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use openhands::setting::Secret;
use openhands::web::login::{Login, LoginSettings};
use openhands::web::{AppState, router};
use serde_json::{Value, json};
use support::fake_login::{
    Account, FakeLogin, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
};
use support::{Kind, TestDb};
use tower::ServiceExt;

on_both_backends! {
    github_sign_in_makes_a_session_for_the_linked_or_allowed_account => github_sign_in;
    openid_sign_in_verifies_the_id_token_and_uses_verified_emails_only => openid_sign_in;
}

const PUBLIC_URL: &str = "http://localhost:3000";
const ADMIN_KEY: &str = "login-admin-key";

fn secret(value: &str) -> Secret {
    value.parse().unwrap()
}

fn service(t: &TestDb, fake: &FakeLogin, allowed: &[&str]) -> AppState {
    let settings = LoginSettings {
        github_oauth_client_id: Some(GITHUB_CLIENT_ID.into()),
        github_oauth_client_secret: Some(secret(GITHUB_CLIENT_SECRET)),
        github_oauth_url: fake.github_oauth_url(),
        oidc_issuer: Some(fake.oidc_issuer()),
        oidc_client_id: Some(OIDC_CLIENT_ID.into()),
        oidc_client_secret: Some(secret(OIDC_CLIENT_SECRET)),
        oidc_display_name: "Keycloak".into(),
        allowed_users: allowed.iter().map(|s| s.to_string()).collect(),
    };
    settings.validate().unwrap();
    AppState::new(t.db.clone())
        .with_admin_key(Some(secret(ADMIN_KEY)))
        .with_login(Login::new(&settings, PUBLIC_URL, &fake.github_api_url()))
}

/// What a browser keeps: cookies by name, with the attributes they were set with.
struct Browser {
    state: AppState,
    cookies: HashMap<String, cookie::Cookie<'static>>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }
}

impl Browser {
    fn new(state: &AppState) -> Self {
        Self {
            state: state.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn request(&mut self, method: &str, uri: &str) -> Answer {
        let cookies: Vec<String> = self
            .cookies
            .values()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        let mut request = Request::builder().method(method).uri(uri);
        if !cookies.is_empty() {
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        let response = router(self.state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all(header::SET_COOKIE) {
            let cookie = cookie::Cookie::parse(value.to_str().unwrap().to_string()).unwrap();
            if cookie.max_age() == Some(cookie::time::Duration::ZERO) {
                self.cookies.remove(cookie.name());
            } else {
                self.cookies.insert(cookie.name().to_string(), cookie);
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.request("GET", uri).await
    }

    /// Starts signing in, lets the provider answer, and follows it back: the callback's answer.
    async fn sign_in(&mut self, provider: &str, redirect_to: &str) -> Answer {
        let start = self
            .get(&format!("/auth/{provider}/login?redirect_to={redirect_to}"))
            .await;
        assert_eq!(start.status, StatusCode::SEE_OTHER, "{:?}", start.body);
        let at_provider = provider_redirect(start.location()).await;
        let callback = at_provider
            .strip_prefix(PUBLIC_URL)
            .unwrap_or_else(|| panic!("the provider sent the browser to {at_provider}"));
        self.get(callback).await
    }
}

/// Follows the service's redirect to the provider: where the provider sends the browser.
async fn provider_redirect(url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(url).send().await.unwrap();
    assert!(
        response.status().is_redirection(),
        "{url}: {} {}",
        response.status(),
        response.text().await.unwrap()
    );
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn link_count(t: &TestDb) -> usize {
    t.db.user_links(None).await.unwrap().len()
}

async fn github_sign_in(t: &TestDb) {
    let fake = FakeLogin::start(PUBLIC_URL).await;
    let state = service(t, &fake, &["Octocat"]);

    // The providers the sign-in page offers.
    let mut browser = Browser::new(&state);
    let providers = browser.get("/auth/providers").await;
    assert_eq!(providers.status, StatusCode::OK);
    let names: Vec<&str> = providers.body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["GitHub", "Keycloak"]);

    // The authorization request carries a state and an S256 challenge, and the flow cookie
    // is HttpOnly and short-lived.
    fake.sign_in_as(Some(Account::new("583231", "octocat")));
    let start = browser
        .get("/auth/github/login?redirect_to=/conversations")
        .await;
    let asked = query_of(start.location());
    assert_eq!(asked["client_id"], GITHUB_CLIENT_ID);
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(
        asked["redirect_uri"],
        format!("{PUBLIC_URL}/auth/github/callback")
    );
    let flow = &browser.cookies["openhands_login"];
    assert_eq!(flow.http_only(), Some(true));
    assert_eq!(flow.same_site(), Some(cookie::SameSite::Lax));
    assert!(flow.max_age().unwrap() <= cookie::time::Duration::minutes(10));
    assert!(
        !flow.value().contains(&asked["state"]),
        "the state is not readable in the cookie"
    );

    let callback_url = provider_redirect(start.location()).await;
    let back = browser
        .get(callback_url.strip_prefix(PUBLIC_URL).unwrap())
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{:?}", back.body);
    assert_eq!(back.location(), "/conversations");
    let session = &browser.cookies["openhands_session"];
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(session.path(), Some("/"));
    assert!(
        !browser.cookies.contains_key("openhands_login"),
        "the flow cookie is spent"
    );
    // The code was traded with the verifier of the challenge (the fake refuses otherwise).
    let requests = fake.token_requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0]["code_verifier"].as_str().unwrap().len() >= 43);

    // The session works like an API key.
    let me = browser.get("/api/user").await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["login"], "github:octocat");
    assert_eq!(me.body["is_admin"], false);
    assert_eq!(me.body["accounts"][0]["provider"], "github");
    assert_eq!(me.body["accounts"][0]["external_id"], "583231");
    let user_id = me.body["id"].as_str().unwrap().to_string();
    let listed = browser.get("/api/conversations").await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);

    // The same account signing in again is the same user.
    let mut second = Browser::new(&state);
    fake.sign_in_as(Some(Account::new("583231", "octocat")));
    assert_eq!(
        second.sign_in("github", "/").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(second.get("/api/user").await.body["id"], user_id.as_str());

    // An account that is neither linked nor allowed gets no user and no session.
    let links_before = link_count(t).await;
    let mut mallory = Browser::new(&state);
    fake.sign_in_as(Some(Account::new("666", "mallory")));
    let refused = mallory.sign_in("github", "/").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let message = refused.body["error"].as_str().unwrap();
    assert!(
        message.contains("mallory") && message.contains("OPENHANDS_ALLOWED_USERS"),
        "{message}"
    );
    assert!(!mallory.cookies.contains_key("openhands_session"));
    assert_eq!(
        mallory.get("/api/user").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(link_count(t).await, links_before);
    // Nor does choosing a login that names an existing user lead into it.
    t.db.create_user("github:eve", None, true).await.unwrap();
    fake.sign_in_as(Some(Account::new("667", "eve")));
    assert_eq!(
        mallory.sign_in("github", "/").await.status,
        StatusCode::FORBIDDEN
    );

    // Once an administrator links the account, it signs in as the linked user.
    let carol = t.db.create_user("carol", None, false).await.unwrap();
    let host = url::Url::parse(&fake.github_api_url())
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    let linked = admin_link(&state, &host, "666", "carol").await;
    assert_eq!(linked, StatusCode::CREATED);
    fake.sign_in_as(Some(Account::new("666", "mallory")));
    assert_eq!(
        mallory.sign_in("github", "/").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(mallory.get("/api/user").await.body["id"], carol.id.as_str());

    // Signing out ends the session in the browser.
    let out = mallory.request("POST", "/auth/logout").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(!mallory.cookies.contains_key("openhands_session"));
    assert_eq!(
        mallory.get("/api/user").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Links a GitHub account to a user through the admin API.
async fn admin_link(
    state: &AppState,
    workspace: &str,
    external_id: &str,
    login: &str,
) -> StatusCode {
    let body = json!({ "provider": "github", "workspace": workspace, "external_id": external_id, "user": login });
    let request = Request::builder()
        .method("POST")
        .uri("/api/user-links")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    if status != StatusCode::CREATED {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        eprintln!("link: {}", String::from_utf8_lossy(&bytes));
    }
    status
}

async fn openid_sign_in(t: &TestDb) {
    let fake = FakeLogin::start(PUBLIC_URL).await;
    let state = service(t, &fake, &["alice@example.com"]);

    // Allowed by her verified address.
    let mut alice = Browser::new(&state);
    fake.sign_in_as(Some(
        Account::new("kc-sub-1", "alice").with_email("alice@example.com", true),
    ));
    let back = alice.sign_in("oidc", "/settings").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{:?}", back.body);
    assert_eq!(back.location(), "/settings");
    let me = alice.get("/api/user").await;
    assert_eq!(me.body["login"], "oidc:alice");
    assert_eq!(me.body["email"], "alice@example.com");
    assert_eq!(me.body["accounts"][0]["provider"], "oidc");
    assert_eq!(me.body["accounts"][0]["workspace"], fake.oidc_issuer());
    assert_eq!(me.body["accounts"][0]["external_id"], "kc-sub-1");

    // The same address, unverified, lets nobody in.
    let mut bob = Browser::new(&state);
    fake.sign_in_as(Some(
        Account::new("kc-sub-2", "bob").with_email("alice@example.com", false),
    ));
    assert_eq!(bob.sign_in("oidc", "/").await.status, StatusCode::FORBIDDEN);

    // An ID token altered after signing is refused, and starts no session.
    let mut forger = Browser::new(&state);
    fake.sign_in_as(Some(
        Account::new("kc-sub-1", "alice").with_email("alice@example.com", true),
    ));
    fake.tamper_next_id_token();
    let forged = forger.sign_in("oidc", "/").await;
    assert_eq!(forged.status, StatusCode::BAD_GATEWAY, "{:?}", forged.body);
    assert!(
        forged.body["error"]
            .as_str()
            .unwrap()
            .contains("does not verify")
    );
    assert!(!forger.cookies.contains_key("openhands_session"));
}

#[tokio::test]
async fn the_flow_is_checked_at_every_step() {
    let t = TestDb::new(Kind::Sqlite).await;
    let fake = FakeLogin::start(PUBLIC_URL).await;
    let state = service(&t, &fake, &["*"]);
    fake.sign_in_as(Some(Account::new("1", "octocat")));

    // A callback without the flow cookie (another browser, or forged) is refused.
    let mut browser = Browser::new(&state);
    let start = browser.get("/auth/github/login").await;
    let callback = provider_redirect(start.location()).await;
    let path = callback.strip_prefix(PUBLIC_URL).unwrap().to_string();
    let mut stranger = Browser::new(&state);
    let refused = stranger.get(&path).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("start it again")
    );

    // A wrong state is refused even with the cookie.
    let forged_state = path.replace("state=", "state=x");
    let refused = browser.get(&forged_state).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body["error"].as_str().unwrap().contains("state"));
    assert!(!browser.cookies.contains_key("openhands_session"));

    // The GitHub flow's cookie does not finish an OpenID sign-in.
    let oidc_path = path.replace("/auth/github/", "/auth/oidc/");
    assert_eq!(
        browser.get(&oidc_path).await.status,
        StatusCode::BAD_REQUEST
    );

    // The right state finishes it once; the code cannot be used twice.
    assert_eq!(browser.get(&path).await.status, StatusCode::SEE_OTHER);
    // A code already spent: the provider refuses it, the service says so.
    let mut late = Browser::new(&state);
    let start = late.get("/auth/github/login").await;
    let fresh = provider_redirect(start.location()).await;
    let fresh_path = fresh.strip_prefix(PUBLIC_URL).unwrap().to_string();
    let code = query_of(&fresh)["code"].clone();
    let spent = fresh_path.replace(&code, "code-github-1");
    let refused = late.get(&spent).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_GATEWAY,
        "{:?}",
        refused.body
    );

    // The user declining at the provider is said plainly.
    fake.sign_in_as(None);
    let mut declined = Browser::new(&state);
    let answer = declined.sign_in("github", "/").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("access_denied")
    );

    // Only local pages are returned to, and only enabled providers exist.
    for bad in ["https://evil.example/", "//evil.example", "evil"] {
        let answer = declined
            .get(&format!(
                "/auth/github/login?redirect_to={}",
                urlencode(bad)
            ))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        declined.get("/auth/gitlab/login").await.status,
        StatusCode::NOT_FOUND
    );
    let bare = AppState::new(t.db.clone());
    let mut browser = Browser::new(&bare);
    assert_eq!(
        browser.get("/auth/github/login").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser.get("/auth/providers").await.body["providers"],
        json!([])
    );

    // A session cookie that was not signed here is nobody.
    let mut forger = Browser::new(&state);
    forger.cookies.insert(
        "openhands_session".into(),
        cookie::Cookie::new("openhands_session", "someone.99999999999999.00"),
    );
    assert_eq!(
        forger.get("/api/user").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_named_and_the_service_keeps_serving() {
    let t = TestDb::new(Kind::Sqlite).await;
    let settings = LoginSettings {
        oidc_issuer: Some(format!(
            "http://127.0.0.1:{}/realms/dev",
            support::free_port()
        )),
        oidc_client_id: Some(OIDC_CLIENT_ID.into()),
        oidc_client_secret: Some(secret(OIDC_CLIENT_SECRET)),
        ..LoginSettings::default()
    };
    let state = AppState::new(t.db.clone()).with_login(Login::new(&settings, PUBLIC_URL, ""));
    let mut browser = Browser::new(&state);
    let answer = browser.get("/auth/oidc/login").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached")
    );
    assert_eq!(browser.get("/alive").await.status, StatusCode::OK);
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn an_api_key_signs_a_browser_in_and_a_wrong_one_does_not() {
    let t = TestDb::new(Kind::Sqlite).await;
    let state = AppState::new(t.db.clone())
        .with_admin_key(Some(secret(ADMIN_KEY)))
        .with_public_url("https://openhands.example.test/");
    let user = t.db.create_user("solo", None, false).await.unwrap();
    let (key, _) = openhands::web::keys::issue_key(&t.db, &user.id, "laptop", None)
        .await
        .unwrap();
    let mut browser = Browser::new(&state);
    let sign_in = |body: Value| {
        Request::builder()
            .method("POST")
            .uri("/auth/key")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for (body, status) in [
        (json!({"api_key": "oh_wrong"}), StatusCode::UNAUTHORIZED),
        (json!({"key": key}), StatusCode::BAD_REQUEST),
    ] {
        let response = router(state.clone()).oneshot(sign_in(body)).await.unwrap();
        assert_eq!(response.status(), status);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
    }
    let response = router(state.clone())
        .oneshot(sign_in(json!({ "api_key": key })))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie::Cookie::parse(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string(),
    )
    .unwrap();
    assert_eq!(cookie.name(), "openhands_session");
    assert_eq!(cookie.http_only(), Some(true));
    assert!(!cookie.value().contains(&key), "the key is not the session");
    browser.cookies.insert(cookie.name().to_string(), cookie);
    assert_eq!(browser.get("/api/user").await.body["login"], "solo");
    // The integrations page is for administrators.
    assert_eq!(
        browser.get("/api/integrations").await.status,
        StatusCode::FORBIDDEN
    );

    let request = Request::builder()
        .uri("/api/integrations")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .body(Body::empty())
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    let providers = body["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 6);
    assert_eq!(
        providers[0]["webhook_url"],
        "https://openhands.example.test/api/integration/github/events"
    );
    assert_eq!(providers[0]["configured"], false);
    assert_eq!(providers[0]["last_delivery"], Value::Null);
}
