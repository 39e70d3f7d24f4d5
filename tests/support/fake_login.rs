//! A fake sign-in provider on loopback: GitHub's OAuth endpoints and `GET /user` (under
//! `/github`), and an OpenID Connect provider with discovery, a key set and RS256-signed ID
//! tokens (under `/oidc`). Like the real ones it checks the client's credentials, the
//! registered redirect URL, the PKCE verifier against the challenge, and that a code is used
//! once; the test plays the browser and chooses who signs in next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const GITHUB_CLIENT_ID: &str = "Iv1.fake-client";
pub const GITHUB_CLIENT_SECRET: &str = "github-oauth-secret";
pub const OIDC_CLIENT_ID: &str = "openhands";
pub const OIDC_CLIENT_SECRET: &str = "oidc-client-secret";
const SIGNING_KEY: &str = include_str!("../fixtures/github-app/private-key.pem");
const KEY_ID: &str = "fake-key-1";

/// Someone who can sign in at the fake.
#[derive(Clone, Debug)]
pub struct Account {
    /// GitHub's numeric id, or the OpenID subject.
    pub id: String,
    pub login: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

impl Account {
    pub fn new(id: &str, login: &str) -> Self {
        Self {
            id: id.into(),
            login: login.into(),
            email: None,
            email_verified: false,
        }
    }

    pub fn with_email(mut self, email: &str, verified: bool) -> Self {
        self.email = Some(email.into());
        self.email_verified = verified;
        self
    }
}

struct Grant {
    provider: &'static str,
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    account: Account,
}

#[derive(Default)]
struct Inner {
    /// Who signs in at the next authorization; `None`: the user declines.
    next: Option<Account>,
    grants: HashMap<String, Grant>,
    /// Access token → account.
    tokens: HashMap<String, Account>,
    /// The next ID token's payload is altered after signing.
    tamper_next_id_token: bool,
    /// What each token request carried, for the test to check (secrets left out).
    token_requests: Vec<Value>,
    counter: u64,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    base_url: String,
    /// The service's OPENHANDS_PUBLIC_URL: callbacks must go there.
    public_url: Arc<Mutex<String>>,
}

pub struct FakeLogin {
    pub base_url: String,
    shared: Shared,
}

impl FakeLogin {
    /// Serves on a free loopback port; `public_url` is the service's OPENHANDS_PUBLIC_URL.
    pub async fn start(public_url: &str) -> FakeLogin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared {
            inner: Arc::default(),
            base_url: base_url.clone(),
            public_url: Arc::new(Mutex::new(public_url.trim_end_matches('/').to_string())),
        };
        let app = Router::new()
            .route("/github/login/oauth/authorize", get(github_authorize))
            .route("/github/login/oauth/access_token", post(github_token))
            .route("/github/api/user", get(github_user))
            .route(
                "/oidc/.well-known/openid-configuration",
                get(oidc_discovery),
            )
            .route("/oidc/jwks", get(oidc_keys))
            .route("/oidc/authorize", get(oidc_authorize))
            .route("/oidc/token", post(oidc_token))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeLogin { base_url, shared }
    }

    pub fn github_oauth_url(&self) -> String {
        format!("{}/github", self.base_url)
    }

    pub fn github_api_url(&self) -> String {
        format!("{}/github/api", self.base_url)
    }

    pub fn oidc_issuer(&self) -> String {
        format!("{}/oidc", self.base_url)
    }

    /// Where the service is reached, when it is known only after the fake started.
    pub fn set_public_url(&self, public_url: &str) {
        *self.shared.public_url.lock().unwrap() = public_url.trim_end_matches('/').to_string();
    }

    /// Who signs in next (`None`: the user declines at the provider).
    pub fn sign_in_as(&self, account: Option<Account>) {
        self.shared.inner.lock().unwrap().next = account;
    }

    /// The next ID token is changed after it is signed, so its signature no longer holds.
    pub fn tamper_next_id_token(&self) {
        self.shared.inner.lock().unwrap().tamper_next_id_token = true;
    }

    pub fn token_requests(&self) -> Vec<Value> {
        self.shared.inner.lock().unwrap().token_requests.clone()
    }
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "error": code }))).into_response()
}

/// Checks an authorization request and sends the browser back with a code.
fn authorize(
    shared: &Shared,
    provider: &'static str,
    client_id: &str,
    query: &HashMap<String, String>,
) -> Response {
    let redirect_uri = query.get("redirect_uri").cloned().unwrap_or_default();
    let expected = format!(
        "{}/auth/{provider}/callback",
        shared.public_url.lock().unwrap()
    );
    if query.get("client_id").map(String::as_str) != Some(client_id) || redirect_uri != expected {
        return error(StatusCode::BAD_REQUEST, "unknown client or redirect_uri");
    }
    if query.get("response_type").map(String::as_str) != Some("code")
        || query.get("code_challenge_method").map(String::as_str) != Some("S256")
        || query.get("code_challenge").is_none_or(|c| c.len() < 43)
        || query.get("state").is_none_or(|s| s.is_empty())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "code flow with S256 PKCE and a state needed",
        );
    }
    let state = &query["state"];
    if provider == "oidc"
        && (!query
            .get("scope")
            .is_some_and(|s| s.split(' ').any(|s| s == "openid"))
            || query.get("nonce").is_none())
    {
        return error(StatusCode::BAD_REQUEST, "openid scope and a nonce needed");
    }
    let mut inner = shared.inner.lock().unwrap();
    let Some(account) = inner.next.clone() else {
        let url = url::Url::parse_with_params(
            &redirect_uri,
            [
                ("error", "access_denied"),
                ("error_description", "The user declined"),
                ("state", state),
            ],
        )
        .unwrap();
        return Redirect::to(url.as_str()).into_response();
    };
    inner.counter += 1;
    let code = format!("code-{provider}-{}", inner.counter);
    inner.grants.insert(
        code.clone(),
        Grant {
            provider,
            challenge: query["code_challenge"].clone(),
            redirect_uri: redirect_uri.clone(),
            nonce: query.get("nonce").cloned(),
            account,
        },
    );
    let url =
        url::Url::parse_with_params(&redirect_uri, [("code", code.as_str()), ("state", state)])
            .unwrap();
    Redirect::to(url.as_str()).into_response()
}

/// Checks a token request: the client's credentials (basic auth or form), the code (once),
/// the redirect URL and the PKCE verifier. The grant it redeems.
fn redeem(
    shared: &Shared,
    provider: &'static str,
    client: (&str, &str),
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Grant, (StatusCode, &'static str)> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            Some((id.to_string(), secret.to_string()))
        });
    let credentials = from_header.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    let mut inner = shared.inner.lock().unwrap();
    inner.token_requests.push(json!({
        "provider": provider,
        "grant_type": form.get("grant_type"),
        "code": form.get("code"),
        "redirect_uri": form.get("redirect_uri"),
        "code_verifier": form.get("code_verifier"),
    }));
    if credentials != Some((client.0.to_string(), client.1.to_string())) {
        return Err((StatusCode::UNAUTHORIZED, "invalid_client"));
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(grant) = inner.grants.remove(&code) else {
        return Err((StatusCode::BAD_REQUEST, "invalid_grant"));
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if grant.provider != provider
        || form.get("grant_type").map(String::as_str) != Some("authorization_code")
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
        || challenge != grant.challenge
    {
        return Err((StatusCode::BAD_REQUEST, "invalid_grant"));
    }
    Ok(grant)
}

fn issue_access_token(shared: &Shared, account: &Account) -> String {
    let mut inner = shared.inner.lock().unwrap();
    inner.counter += 1;
    let token = format!("access-{}", inner.counter);
    inner.tokens.insert(token.clone(), account.clone());
    token
}

async fn github_authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    authorize(&shared, "github", GITHUB_CLIENT_ID, &query)
}

async fn github_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match redeem(
        &shared,
        "github",
        (GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET),
        &headers,
        &form,
    ) {
        Ok(grant) => {
            let token = issue_access_token(&shared, &grant.account);
            Json(json!({ "access_token": token, "token_type": "bearer", "scope": "read:user" }))
                .into_response()
        }
        Err((status, code)) => error(status, code),
    }
}

async fn github_user(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .unwrap_or_default()
        .to_string();
    let Some(account) = shared.inner.lock().unwrap().tokens.get(&token).cloned() else {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let mut user =
        super::fakes::github::user_json(&account.login, account.id.parse().unwrap(), "User");
    user["email"] = json!(account.email.filter(|_| account.email_verified));
    Json(user).into_response()
}

async fn oidc_discovery(State(shared): State<Shared>) -> Json<Value> {
    let issuer = format!("{}/oidc", shared.base_url);
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

fn signing_key() -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(SIGNING_KEY, Some(JsonWebKeyId::new(KEY_ID.into()))).unwrap()
}

async fn oidc_keys() -> Json<Value> {
    let keys = CoreJsonWebKeySet::new(vec![signing_key().as_verification_key()]);
    Json(serde_json::to_value(keys).unwrap())
}

async fn oidc_authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    authorize(&shared, "oidc", OIDC_CLIENT_ID, &query)
}

async fn oidc_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant = match redeem(
        &shared,
        "oidc",
        (OIDC_CLIENT_ID, OIDC_CLIENT_SECRET),
        &headers,
        &form,
    ) {
        Ok(grant) => grant,
        Err((status, code)) => return error(status, code),
    };
    let access_token = issue_access_token(&shared, &grant.account);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let account = &grant.account;
    let mut claims = json!({
        "iss": format!("{}/oidc", shared.base_url),
        "sub": account.id,
        "aud": [OIDC_CLIENT_ID],
        "iat": now,
        "exp": now + 300,
        "nonce": grant.nonce,
        "preferred_username": account.login,
    });
    if let Some(email) = &account.email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(account.email_verified);
    }
    let header =
        URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "kid": KEY_ID, "typ": "JWT" }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let signature = signing_key()
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            signed.as_bytes(),
        )
        .unwrap();
    let mut id_token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
    let mut inner = shared.inner.lock().unwrap();
    if std::mem::take(&mut inner.tamper_next_id_token) {
        claims["sub"] = json!("someone-else");
        let forged = URL_SAFE_NO_PAD.encode(claims.to_string());
        id_token = id_token.replacen(&payload, &forged, 1);
    }
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}
