//! Browser sign-in through GitHub OAuth or an OpenID Connect provider (Keycloak, Google,
//! Okta, …): the authorization-code flow with a random state and PKCE, kept between the two
//! legs in a short-lived signed cookie; it ends in the signed session cookie of `session.rs`.
//!
//! A provider account is a user of ours through a link (provider, workspace, account id), the
//! same links that make a GitHub account's webhook requests its user's conversations. An
//! account without a link gets a new user only when `OPENHANDS_ALLOWED_USERS` lets it in;
//! accounts are never matched to existing users by name, so nobody takes over a user by
//! choosing a login.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use cookie::{Cookie, SameSite};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, TokenUrl,
};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{IssuerUrl, Nonce, TokenResponse as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, SESSION_COOKIE};
use super::params::{Body, Query as ApiQuery};
use super::session::SESSION_LIFETIME;
use super::{ApiError, AppState};
use crate::setting::{ConfigError, Secret, check_url};
use crate::storage::{Db, StorageError, User};

/// The cookie that carries a sign-in between its two legs.
const FLOW_COOKIE: &str = "openhands_login";
/// How long a sign-in may take at the provider.
const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How long discovered OpenID metadata (endpoints and signing keys) is used before it is read
/// again, so rotated keys are picked up.
const METADATA_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How long a provider may take to answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

/// Sign-in settings; a provider is enabled by its client id and secret.
#[derive(Debug, Clone, Args)]
pub struct LoginSettings {
    /// Client id of the GitHub OAuth app (or GitHub App) used for browser sign-in.
    #[arg(long, env = "GITHUB_OAUTH_CLIENT_ID", global = true)]
    pub github_oauth_client_id: Option<String>,
    /// Its client secret.
    #[arg(
        long,
        env = "GITHUB_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub github_oauth_client_secret: Option<Secret>,
    /// Where GitHub's sign-in pages are (GitHub Enterprise: `https://HOST`); the account is then
    /// read from GITHUB_API_URL.
    #[arg(
        long,
        env = "GITHUB_OAUTH_URL",
        default_value = "https://github.com",
        global = true
    )]
    pub github_oauth_url: String,
    /// Issuer URL of an OpenID Connect provider (Keycloak: `https://HOST/realms/REALM`).
    #[arg(long, env = "OIDC_ISSUER", global = true)]
    pub oidc_issuer: Option<String>,
    /// This service's client id at the OpenID Connect provider.
    #[arg(long, env = "OIDC_CLIENT_ID", global = true)]
    pub oidc_client_id: Option<String>,
    /// Its client secret.
    #[arg(
        long,
        env = "OIDC_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub oidc_client_secret: Option<Secret>,
    /// The OpenID Connect provider's name on the sign-in page.
    #[arg(
        long,
        env = "OIDC_DISPLAY_NAME",
        default_value = "Single sign-on",
        global = true
    )]
    pub oidc_display_name: String,
    /// Who may sign in without an account linked by an administrator, comma-separated: GitHub
    /// logins, OpenID usernames or verified e-mail addresses, or `*` for anyone the provider
    /// signs in. Unset, only linked accounts may sign in.
    #[arg(
        long,
        env = "OPENHANDS_ALLOWED_USERS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_users: Vec<String>,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            github_oauth_client_id: None,
            github_oauth_client_secret: None,
            github_oauth_url: "https://github.com".into(),
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_display_name: "Single sign-on".into(),
            allowed_users: Vec::new(),
        }
    }
}

impl LoginSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url("GITHUB_OAUTH_URL", &self.github_oauth_url)?;
        match (
            &self.github_oauth_client_id,
            &self.github_oauth_client_secret,
        ) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::new(
                    "GITHUB_OAUTH_CLIENT_ID and GITHUB_OAUTH_CLIENT_SECRET go together: set both to enable GitHub sign-in, or neither",
                ));
            }
            _ => {}
        }
        let oidc = [
            self.oidc_issuer.is_some(),
            self.oidc_client_id.is_some(),
            self.oidc_client_secret.is_some(),
        ];
        if oidc.contains(&true) && oidc.contains(&false) {
            return Err(ConfigError::new(
                "OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET go together: set all three to enable OpenID Connect sign-in, or none",
            ));
        }
        if let Some(issuer) = &self.oidc_issuer {
            check_url("OIDC_ISSUER", issuer)?;
        }
        if self
            .allowed_users
            .iter()
            .any(|entry| entry.trim().is_empty())
        {
            return Err(ConfigError::new(
                "OPENHANDS_ALLOWED_USERS has an empty entry: list logins or e-mail addresses separated by commas, or `*`",
            ));
        }
        Ok(())
    }
}

/// The enabled sign-in providers and what a sign-in needs.
#[derive(Debug)]
pub struct Login {
    github: Option<GithubLogin>,
    oidc: Option<OidcLogin>,
    /// Lower-cased entries of OPENHANDS_ALLOWED_USERS.
    allowed: Vec<String>,
    /// Where the providers send the browser back: `{public_url}/auth/{provider}/callback`.
    public_url: String,
    /// Cookies are marked Secure when the service is reached over https.
    secure_cookies: bool,
    http: reqwest::Client,
    /// GITHUB_API_URL: where a GitHub App made from its manifest is created.
    github_api_url: String,
}

#[derive(Debug)]
struct GithubLogin {
    client_id: String,
    client_secret: Secret,
    oauth_url: String,
    api_url: String,
    /// The host accounts are linked under, as the GitHub webhooks link them.
    workspace: String,
}

#[derive(Debug)]
struct OidcLogin {
    issuer: String,
    client_id: String,
    client_secret: Secret,
    display_name: String,
    /// Discovered on first use (the service starts while the provider is down), read again
    /// after [`METADATA_LIFETIME`].
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

/// Who a provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    /// `github` or `oidc`: the link's provider.
    provider: &'static str,
    /// The GitHub host or the OpenID issuer.
    workspace: String,
    /// The provider's id of the account, which never changes.
    subject: String,
    /// The account's name, for a new user's login and the allow-list.
    name: String,
    /// A verified e-mail address.
    email: Option<String>,
}

/// GitHub's OAuth client with its authorization and token endpoints set.
type GithubClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// An OpenID client made from the discovered metadata, its redirect URL set.
type OidcClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// What the flow cookie holds between the two legs.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    provider: String,
    state: String,
    verifier: String,
    nonce: Option<String>,
    /// The page to return to.
    redirect: String,
    expires: i64,
}

impl Login {
    pub fn disabled() -> Self {
        Self::new(&LoginSettings::default(), "http://localhost:3000", "")
    }

    /// `public_url` is OPENHANDS_PUBLIC_URL; `github_api_url` is GITHUB_API_URL.
    pub fn new(settings: &LoginSettings, public_url: &str, github_api_url: &str) -> Self {
        let github = match (
            &settings.github_oauth_client_id,
            &settings.github_oauth_client_secret,
        ) {
            (Some(client_id), Some(client_secret)) => Some(GithubLogin {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                oauth_url: settings.github_oauth_url.trim_end_matches('/').to_string(),
                api_url: github_api_url.to_string(),
                workspace: crate::intake::github_workspace(github_api_url),
            }),
            _ => None,
        };
        let oidc = match (
            &settings.oidc_issuer,
            &settings.oidc_client_id,
            &settings.oidc_client_secret,
        ) {
            (Some(issuer), Some(client_id), Some(client_secret)) => Some(OidcLogin {
                issuer: issuer.trim_end_matches('/').to_string(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                display_name: settings.oidc_display_name.clone(),
                metadata: Mutex::new(None),
            }),
            _ => None,
        };
        // Following redirects from a provider's token endpoint would be a way to make this
        // service call arbitrary addresses.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            github,
            oidc,
            allowed: settings
                .allowed_users
                .iter()
                .map(|entry| entry.trim().to_lowercase())
                .collect(),
            public_url: public_url.trim_end_matches('/').to_string(),
            secure_cookies: public_url.starts_with("https://"),
            http,
            github_api_url: github_api_url.trim_end_matches('/').to_string(),
        }
    }

    /// GITHUB_API_URL, without a trailing slash.
    pub(super) fn github_api_url(&self) -> &str {
        &self.github_api_url
    }

    /// An HTTP client that follows no redirects, for calls to providers.
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The enabled providers, as the sign-in page lists them.
    pub fn providers(&self) -> Vec<Value> {
        let mut providers = Vec::new();
        if self.github.is_some() {
            providers.push(json!({
                "id": "github", "name": "GitHub", "login_url": "/auth/github/login",
            }));
        }
        if let Some(oidc) = &self.oidc {
            providers.push(json!({
                "id": "oidc", "name": oidc.display_name, "login_url": "/auth/oidc/login",
            }));
        }
        providers
    }

    fn redirect_url(&self, provider: &str) -> Result<RedirectUrl, ApiError> {
        RedirectUrl::new(format!("{}/auth/{provider}/callback", self.public_url))
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("OPENHANDS_PUBLIC_URL: {e}")))
    }

    /// Whether an account without a link may have a user made for it.
    fn allows(&self, identity: &Identity) -> bool {
        self.allowed.iter().any(|entry| {
            entry == "*"
                || *entry == identity.name.to_lowercase()
                || identity
                    .email
                    .as_ref()
                    .is_some_and(|email| *entry == email.to_lowercase())
        })
    }

    pub(super) fn cookie(
        &self,
        name: &'static str,
        value: String,
        path: &'static str,
        max_age: Duration,
    ) -> HeaderValue {
        let cookie = Cookie::build((name, value))
            .path(path)
            .http_only(true)
            // Lax: the provider's redirect back is a top-level navigation from another site.
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies)
            .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
            .build();
        HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
    }
}

impl GithubLogin {
    fn client(&self, redirect: RedirectUrl) -> Result<GithubClient, ApiError> {
        let bad = |e: oauth2::url::ParseError| {
            ApiError::Internal(anyhow::anyhow!("GITHUB_OAUTH_URL: {e}"))
        };
        Ok(BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.client_secret.expose().to_string()))
            .set_auth_uri(
                AuthUrl::new(format!("{}/login/oauth/authorize", self.oauth_url)).map_err(bad)?,
            )
            .set_token_uri(
                TokenUrl::new(format!("{}/login/oauth/access_token", self.oauth_url))
                    .map_err(bad)?,
            )
            .set_redirect_uri(redirect))
    }

    /// Exchanges the code for a token and reads the account it belongs to.
    async fn identify(
        &self,
        login: &Login,
        code: String,
        verifier: String,
    ) -> Result<Identity, ApiError> {
        let token = self
            .client(login.redirect_url("github")?)?
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&login.http)
            .await
            .map_err(|e| upstream("GitHub", "did not accept the sign-in code", &e))?;
        let github = octocrab::Octocrab::builder()
            .base_uri(self.api_url.as_str())
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("GITHUB_API_URL: {e}")))?
            .personal_token(token.access_token().secret().to_string())
            .build()
            .map_err(|e| ApiError::Internal(e.into()))?;
        let account = github
            .current()
            .user()
            .await
            .map_err(|e| upstream("GitHub", "did not say who signed in", &e))?;
        Ok(Identity {
            provider: "github",
            workspace: self.workspace.clone(),
            subject: account.id.to_string(),
            name: account.login,
            // GitHub shows only public, verified addresses on the profile.
            email: account.email,
        })
    }
}

impl OidcLogin {
    async fn metadata(&self, http: &reqwest::Client) -> Result<CoreProviderMetadata, ApiError> {
        let mut cached = self.metadata.lock().await;
        if let Some((read_at, metadata)) = cached.as_ref()
            && read_at.elapsed() < METADATA_LIFETIME
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("OIDC_ISSUER: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| {
                upstream(
                    &self.display_name,
                    "could not be reached for its configuration",
                    &e,
                )
            })?;
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    async fn client(&self, login: &Login) -> Result<OidcClient, ApiError> {
        Ok(CoreClient::from_provider_metadata(
            self.metadata(&login.http).await?,
            openidconnect::ClientId::new(self.client_id.clone()),
            Some(openidconnect::ClientSecret::new(
                self.client_secret.expose().to_string(),
            )),
        )
        .set_redirect_uri(login.redirect_url("oidc")?))
    }

    async fn identify(
        &self,
        login: &Login,
        code: String,
        verifier: String,
        nonce: Option<String>,
    ) -> Result<Identity, ApiError> {
        let name = &self.display_name;
        let client = self.client(login).await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| ApiError::Internal(e.into()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&login.http)
            .await
            .map_err(|e| upstream(name, "did not accept the sign-in code", &e))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| ApiError::Upstream(format!("{name} sent no ID token")))?;
        let nonce = Nonce::new(nonce.unwrap_or_default());
        let claims = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map_err(|e| upstream(name, "sent an ID token that does not verify", &e))?;
        let subject = claims.subject().to_string();
        let email = claims
            .email()
            .filter(|_| claims.email_verified() == Some(true))
            .map(|email| email.to_string());
        let username = claims
            .preferred_username()
            .map(|name| name.to_string())
            .or_else(|| email.clone())
            .unwrap_or_else(|| subject.clone());
        Ok(Identity {
            provider: "oidc",
            workspace: self.issuer.clone(),
            subject,
            name: username,
            email,
        })
    }
}

/// A provider's failure, logged in full and told to the browser in short.
fn upstream(provider: &str, what: &str, error: &dyn std::error::Error) -> ApiError {
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::warn!(provider, error = %detail, "sign-in: {what}");
    ApiError::Upstream(format!("{provider} {what}; try signing in again"))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/providers", get(providers))
        .route("/auth/{provider}/login", get(start))
        .route("/auth/{provider}/callback", get(finish))
        .route("/auth/key", post(key_sign_in))
        .route("/auth/token", post(token_sign_in))
        .route("/auth/logout", post(logout))
        .route("/api/user", get(current_user))
}

/// The enabled sign-in providers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Providers {
    /// Each with its `id`, `name` and `login_url`.
    #[schema(value_type = Vec<Object>)]
    providers: Vec<Value>,
}

#[utoipa::path(
    get,
    path = "/auth/providers",
    tag = "sign-in",
    summary = "The enabled sign-in providers (github, oidc) and their login URLs",
    extensions(("x-access" = json!("public"))),
    responses((status = 200, description = "The providers", body = Providers)),
)]
pub(super) async fn providers(State(state): State<AppState>) -> Json<Providers> {
    Json(Providers {
        providers: state.login.providers(),
    })
}

/// The query of `GET /auth/{provider}/login`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StartQuery {
    /// A path of this service to return to once signed in (`/` by default).
    redirect_to: Option<String>,
}

/// Sends the browser to the provider, with a fresh state, PKCE challenge and nonce.
#[utoipa::path(
    get,
    path = "/auth/{provider}/login",
    tag = "sign-in",
    summary = "Start signing in: redirects to the provider",
    extensions(("x-access" = json!("public"))),
    params(("provider" = String, Path, description = "`github` or `oidc`"), StartQuery),
    responses(
        (status = 303, description = "To the provider's sign-in page"),
        (status = 404, description = "No such provider is enabled"),
    ),
)]
pub(super) async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    ApiQuery(query): ApiQuery<StartQuery>,
) -> Result<Response, ApiError> {
    let redirect = local_path(query.redirect_to.as_deref())?;
    let login = &state.login;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = match provider.as_str() {
        "github" if login.github.is_some() => {
            let Some(github) = &login.github else {
                return Err(ApiError::NotFound("sign-in provider"));
            };
            let (url, csrf) = github
                .client(login.redirect_url("github")?)?
                .authorize_url(CsrfToken::new_random)
                .add_scope(Scope::new("read:user".into()))
                .set_pkce_challenge(challenge)
                .url();
            (url, csrf, None)
        }
        "oidc" if login.oidc.is_some() => {
            let Some(oidc) = &login.oidc else {
                return Err(ApiError::NotFound("sign-in provider"));
            };
            let (url, csrf, nonce) = oidc
                .client(login)
                .await?
                .authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    CsrfToken::new_random,
                    Nonce::new_random,
                )
                .add_scope(openidconnect::Scope::new("email".into()))
                .add_scope(openidconnect::Scope::new("profile".into()))
                .set_pkce_challenge(challenge)
                .url();
            (url, csrf, Some(nonce.secret().clone()))
        }
        _ => return Err(ApiError::NotFound("sign-in provider")),
    };
    let flow = Flow {
        provider,
        state: csrf.secret().clone(),
        verifier: verifier.secret().clone(),
        nonce,
        redirect,
        expires: crate::storage::now_millis() + FLOW_LIFETIME.as_millis() as i64,
    };
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&flow).map_err(|e| ApiError::Internal(e.into()))?);
    let cookie = login.cookie(
        FLOW_COOKIE,
        state.sessions.sign_token(FLOW_COOKIE, &payload),
        "/auth/",
        FLOW_LIFETIME,
    );
    Ok(redirect_to(url.as_str(), [cookie]))
}

/// The query of `GET /auth/{provider}/callback`, as the provider sends it. Other parameters
/// (providers add their own, such as `iss` or `session_state`) are let through.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider sends the browser back: check the state, trade the code for who signed in,
/// and start a session.
#[utoipa::path(
    get,
    path = "/auth/{provider}/callback",
    tag = "sign-in",
    summary = "Where the provider sends the browser back; sets the session cookie",
    extensions(("x-access" = json!("public"))),
    params(("provider" = String, Path, description = "`github` or `oidc`"), CallbackQuery),
    responses((status = 303, description = "Signed in: to the page the sign-in started from")),
)]
pub(super) async fn finish(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let login = &state.login;
    let flow = super::auth::cookie_value(&headers, FLOW_COOKIE)
        .and_then(|value| state.sessions.verify_token(FLOW_COOKIE, value))
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<Flow>(&bytes).ok())
        .filter(|flow| flow.expires > crate::storage::now_millis() && flow.provider == provider)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "this sign-in was not started here, or took longer than 10 minutes: start it again"
                    .into(),
            )
        })?;
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        return Err(ApiError::Forbidden(format!(
            "the provider ended the sign-in: {error} {detail}"
        )));
    }
    let returned_state = query.state.unwrap_or_default();
    if !bool::from(returned_state.as_bytes().ct_eq(flow.state.as_bytes())) {
        return Err(ApiError::BadRequest(
            "the sign-in's state does not match the one this browser started: start it again"
                .into(),
        ));
    }
    let code = query
        .code
        .filter(|code| !code.is_empty())
        .ok_or_else(|| ApiError::BadRequest("the provider sent no code".into()))?;
    let identity = match (provider.as_str(), &login.github, &login.oidc) {
        ("github", Some(github), _) => github.identify(login, code, flow.verifier).await?,
        ("oidc", _, Some(oidc)) => {
            oidc.identify(login, code, flow.verifier, flow.nonce)
                .await?
        }
        _ => return Err(ApiError::NotFound("sign-in provider")),
    };
    let user = user_of(&state.db, login, &identity).await?;
    state.db.record_sign_in(&user.id).await?;
    tracing::info!(user_id = %user.id, provider = identity.provider, "signed in");
    let session = login.cookie(
        SESSION_COOKIE,
        state.sessions.sign(&user.id),
        "/",
        SESSION_LIFETIME,
    );
    let clear_flow = login.cookie(FLOW_COOKIE, String::new(), "/auth/", Duration::ZERO);
    Ok(redirect_to(&flow.redirect, [session, clear_flow]))
}

/// The user of a provider account: the linked one, else a new one when the allow-list lets
/// the account in.
async fn user_of(db: &Db, login: &Login, identity: &Identity) -> Result<User, ApiError> {
    let linked = |db: Db| async move {
        let mut tx = db.begin().await?;
        let user = tx
            .linked_user(identity.provider, &identity.workspace, &identity.subject)
            .await?;
        tx.commit().await?;
        Ok::<_, StorageError>(user)
    };
    if let Some(user) = linked(db.clone()).await? {
        return Ok(user);
    }
    if !login.allows(identity) {
        tracing::info!(provider = identity.provider, account = %identity.name, "sign-in refused: not allowed");
        return Err(ApiError::Forbidden(format!(
            "the account {} may not use this service: an administrator can link it to a user, or add it to OPENHANDS_ALLOWED_USERS",
            identity.name
        )));
    }
    match new_user(db, identity).await {
        Ok(user) => Ok(user),
        // Signed in twice at once: the other sign-in made the user.
        Err(StorageError::Conflict(_)) => linked(db.clone()).await?.ok_or(ApiError::Conflict(
            "the account is being signed in elsewhere; try again".into(),
        )),
        Err(error) => Err(error.into()),
    }
}

async fn new_user(db: &Db, identity: &Identity) -> Result<User, StorageError> {
    let mut tx = db.begin().await?;
    let mut login = format!("{}:{}", identity.provider, identity.name);
    if tx.user_by_login(&login).await?.is_some() {
        // Another account had this name before (accounts can be renamed): keep both apart.
        login = format!("{login}:{}", identity.subject);
    }
    let user = tx
        .create_user(&login, identity.email.as_deref(), false)
        .await?;
    tx.link_user(
        identity.provider,
        &identity.workspace,
        &identity.subject,
        &user.id,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// The body of `POST /auth/key`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct KeySignInBody {
    /// An API key (`oh_…`) or the bootstrap admin key.
    #[schema(min_length = 1)]
    api_key: String,
}

/// The user a browser is signed in as.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SignedIn {
    id: String,
    login: String,
    is_admin: bool,
}

/// Signs a browser in with an API key (`{"api_key": …}`), for a self-hosted service without a
/// sign-in provider: the key is checked as a bearer key would be and the browser gets a session
/// cookie, so the key itself is not kept in the page.
#[utoipa::path(
    post,
    path = "/auth/key",
    tag = "sign-in",
    summary = "Sign a browser in with an API key: sets the session cookie",
    extensions(("x-access" = json!("public"))),
    request_body = KeySignInBody,
    responses(
        (status = 200, description = "Signed in", body = SignedIn),
        (status = 401, description = "The key is not one of this service's"),
    ),
)]
pub(super) async fn key_sign_in(
    State(state): State<AppState>,
    Body(body): Body<KeySignInBody>,
) -> Result<Response, ApiError> {
    let key = Some(body.api_key.trim())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest("`api_key` is required and must not be blank".into())
        })?;
    let user = state
        .user_of_key(key)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    tracing::info!(user_id = %user.id, "signed in with an API key");
    signed_in(&state, user).await
}

/// The answer that signs the browser in as `user`: the session cookie and who it is.
async fn signed_in(state: &AppState, user: User) -> Result<Response, ApiError> {
    state.db.record_sign_in(&user.id).await?;
    let session = state.login.cookie(
        SESSION_COOKIE,
        state.sessions.sign(&user.id),
        "/",
        SESSION_LIFETIME,
    );
    Ok((
        [(header::SET_COOKIE, session)],
        Json(SignedIn {
            id: user.id,
            login: user.login,
            is_admin: user.is_admin,
        }),
    )
        .into_response())
}

/// How long the link printed at a first start signs in.
pub const FIRST_SIGN_IN_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// The login of the administrator a first start makes.
pub const FIRST_ADMIN_LOGIN: &str = "admin";

/// On a service nobody has signed in to yet: a new one-time link that signs in as its first
/// administrator (made now when there are no users), `{public_url}/login?token=…`, usable once
/// within an hour. `None` once someone has signed in, or when users were made some other way.
pub async fn first_sign_in_link(db: &Db, public_url: &str) -> Result<Option<String>, StorageError> {
    if db.anyone_signed_in().await? {
        return Ok(None);
    }
    let token = crate::crypto::one_time_token();
    let hash = crate::crypto::key_hash(&token);
    let lifetime = FIRST_SIGN_IN_LIFETIME.as_millis() as i64;
    let admin = match db.first_start_admin().await? {
        Some(admin) => {
            db.create_sign_in_token(&hash, &admin.id, lifetime).await?;
            admin
        }
        None => match db
            .create_first_admin(FIRST_ADMIN_LOGIN, &hash, lifetime)
            .await?
        {
            Some(admin) => {
                tracing::info!(login = %admin.login, "made the first administrator");
                admin
            }
            None => return Ok(None),
        },
    };
    tracing::debug!(user_id = %admin.id, "a first sign-in link was made");
    Ok(Some(format!(
        "{}/login?token={token}",
        public_url.trim_end_matches('/')
    )))
}

/// The body of `POST /auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenSignInBody {
    /// The token of the link printed at a first start.
    #[schema(min_length = 1)]
    token: String,
}

/// Signs a browser in with the one-time token of the link a first start prints: once, within
/// an hour.
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "sign-in",
    summary = "Sign a browser in with the one-time token printed at a first start",
    extensions(("x-access" = json!("public"))),
    request_body = TokenSignInBody,
    responses(
        (status = 200, description = "Signed in", body = SignedIn),
        (status = 401, description = "The token is unknown, used or expired"),
    ),
)]
pub(super) async fn token_sign_in(
    State(state): State<AppState>,
    Body(body): Body<TokenSignInBody>,
) -> Result<Response, ApiError> {
    let token = body.token.trim();
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "`token` is required and must not be blank".into(),
        ));
    }
    let user = state
        .db
        .use_sign_in_token(&crate::crypto::key_hash(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    tracing::info!(user_id = %user.id, "signed in with a first sign-in link");
    signed_in(&state, user).await
}

/// Ends the browser session.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "sign-in",
    summary = "End the browser session",
    extensions(("x-access" = json!("public"))),
    responses((status = 204, description = "The session cookie is cleared")),
)]
pub(super) async fn logout(State(state): State<AppState>) -> Response {
    let clear = state
        .login
        .cookie(SESSION_COOKIE, String::new(), "/", Duration::ZERO);
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response()
}

/// The signed-in user and the provider accounts linked to them.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CurrentUser {
    id: String,
    login: String,
    email: Option<String>,
    is_admin: bool,
    accounts: Vec<crate::storage::UserLink>,
}

/// The signed-in user and the provider accounts linked to them.
#[utoipa::path(
    get,
    path = "/api/user",
    tag = "sign-in",
    summary = "The signed-in user and their linked provider accounts",
    extensions(("x-access" = json!("user"))),
    responses((status = 200, description = "The user", body = CurrentUser)),
)]
pub(super) async fn current_user(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<CurrentUser>, ApiError> {
    let accounts = state.db.user_links(Some(&user.id)).await?;
    Ok(Json(CurrentUser {
        id: user.id,
        login: user.login,
        email: user.email,
        is_admin: user.is_admin,
        accounts,
    }))
}

/// The page to return to after signing in: a path on this service, never another site.
fn local_path(redirect: Option<&str>) -> Result<String, ApiError> {
    match redirect {
        None | Some("") => Ok("/".into()),
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            Ok(path.to_string())
        }
        Some(_) => Err(ApiError::BadRequest(
            "redirect_to must be a path on this service, such as /conversations".into(),
        )),
    }
}

fn redirect_to<const N: usize>(location: &str, cookies: [HeaderValue; N]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str, email: Option<&str>) -> Identity {
        Identity {
            provider: "github",
            workspace: "api.github.com".into(),
            subject: "1".into(),
            name: name.into(),
            email: email.map(str::to_string),
        }
    }

    #[test]
    fn the_allow_list_matches_names_and_verified_emails_or_everyone() {
        let settings = LoginSettings {
            allowed_users: vec!["Alice".into(), " bob@example.com".into()],
            ..LoginSettings::default()
        };
        let login = Login::new(&settings, "http://localhost:3000", "https://api.github.com");
        assert!(login.allows(&identity("alice", None)));
        assert!(login.allows(&identity("robert", Some("Bob@Example.com"))));
        assert!(!login.allows(&identity("mallory", Some("mallory@example.com"))));
        assert!(!Login::disabled().allows(&identity("alice", None)));
        let everyone = LoginSettings {
            allowed_users: vec!["*".into()],
            ..LoginSettings::default()
        };
        let login = Login::new(&everyone, "http://localhost:3000", "");
        assert!(login.allows(&identity("anyone", None)));
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(local_path(None).unwrap(), "/");
        assert_eq!(
            local_path(Some("/conversations/1?x=y")).unwrap(),
            "/conversations/1?x=y"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "evil",
            "/a\nb",
        ] {
            assert!(local_path(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_name_what_is_missing() {
        let half = LoginSettings {
            github_oauth_client_id: Some("id".into()),
            ..LoginSettings::default()
        };
        assert!(
            half.validate()
                .unwrap_err()
                .to_string()
                .contains("GITHUB_OAUTH_CLIENT_SECRET")
        );
        let half = LoginSettings {
            oidc_issuer: Some("https://sso.example.com/realms/x".into()),
            ..LoginSettings::default()
        };
        assert!(
            half.validate()
                .unwrap_err()
                .to_string()
                .contains("OIDC_CLIENT_ID")
        );
        let bad = LoginSettings {
            oidc_issuer: Some("not a url".into()),
            oidc_client_id: Some("id".into()),
            oidc_client_secret: Some("s".parse().unwrap()),
            ..LoginSettings::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("OIDC_ISSUER")
        );
        LoginSettings::default().validate().unwrap();
    }
}
