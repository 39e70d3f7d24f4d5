//! The HTTP surface: liveness and health, metrics, webhooks, the REST API and WebSockets,
//! behind the middleware of `middleware.rs`.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;

use std::sync::Arc;

use crate::crypto::Keyring;
use crate::intake::accept::DeliveryWriter;
use crate::integrations::Webhooks;
use crate::integrations::providers::Providers;
use crate::integrations::state::ProviderState;
use crate::live::EventBus;
use crate::setting::Secret;
use crate::storage::{DatabaseKind, Db};
use session::SessionSigner;

mod admin;
pub mod auth;
mod conversations;
mod dashboard;
mod device;
mod error;
mod github_app;
pub mod keys;
pub mod legacy_ws;
mod links;
pub mod login;
mod mcp;
pub mod metrics;
pub mod middleware;
pub mod openapi;
mod params;
mod provider_settings;
mod repositories;
pub mod server;
pub mod session;
mod settings;
pub mod setup;
mod sockets;
mod v1;
mod webhooks;
mod workspace;

pub use error::ApiError;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    /// The admin API's bearer token; `None` disables the admin API.
    pub admin_api_key: Option<Secret>,
    /// Stores accepted deliveries with their intake jobs.
    pub deliveries: DeliveryWriter,
    /// Live events, for WebSocket subscribers.
    pub bus: EventBus,
    pub sessions: SessionSigner,
    pub keyring: Keyring,
    /// CORS, rate-limit and body-size settings.
    pub http: Arc<middleware::HttpSettings>,
    pub rate_limits: Arc<middleware::RateLimits>,
    /// Browser sign-in providers.
    pub login: Arc<login::Login>,
    /// Where people reach the service (OPENHANDS_PUBLIC_URL, no trailing slash): the webhook
    /// URLs the dashboard shows.
    pub public_url: Arc<str>,
    /// Whether the server has a default model (LLM_MODEL): without it, only users who chose
    /// their own can run the agent, and the dashboard says so.
    pub server_llm: bool,
    /// The enabled providers' webhook secrets and how requests are recognised, and the
    /// provider clients (a user's repositories, whether a named one is reachable): those in
    /// force now, which change when the dashboard stores new settings.
    pub providers: Arc<ProviderState>,
    /// The set-up page's checks (`openhands doctor`'s); `None` where the state was built
    /// without them (the page then says so).
    pub setup: Option<Arc<dyn setup::SetupChecks>>,
    /// Whether MCP_CONFIG sets the service's MCP servers (then they are not stored here).
    pub mcp_from_environment: bool,
}

impl AppState {
    /// State with no provider enabled and the admin API disabled. Starts the delivery writer,
    /// so it must be called inside the runtime.
    pub fn new(db: Db) -> Self {
        let keyring = Keyring::new(None);
        Self {
            deliveries: DeliveryWriter::start(db.clone()),
            db,
            admin_api_key: None,
            bus: EventBus::default(),
            sessions: SessionSigner::new(keyring.session_key()),
            keyring,
            rate_limits: middleware::RateLimits::start(&middleware::HttpSettings::default()),
            http: Arc::default(),
            login: Arc::new(login::Login::disabled()),
            public_url: Arc::from("http://localhost:3000"),
            server_llm: false,
            providers: Arc::default(),
            setup: None,
            mcp_from_environment: false,
        }
    }

    /// Whether MCP_CONFIG sets the service's MCP servers.
    pub fn with_mcp_from_environment(mut self, set: bool) -> Self {
        self.mcp_from_environment = set;
        self
    }

    /// Provider settings that follow what the dashboard stores.
    pub fn with_provider_state(mut self, providers: Arc<ProviderState>) -> Self {
        self.providers = providers;
        self
    }

    /// These provider clients, with the webhooks in force now, never reloaded.
    pub fn with_providers(mut self, clients: Providers) -> Self {
        let webhooks = Arc::unwrap_or_clone(self.providers.webhooks());
        self.providers = Arc::new(ProviderState::fixed(webhooks, clients));
        self
    }

    pub fn with_setup_checks(mut self, checks: Arc<dyn setup::SetupChecks>) -> Self {
        self.setup = Some(checks);
        self
    }

    pub fn with_server_llm(mut self, configured: bool) -> Self {
        self.server_llm = configured;
        self
    }

    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = Arc::from(url.trim_end_matches('/'));
        self
    }

    pub fn with_login(mut self, login: login::Login) -> Self {
        self.login = Arc::new(login);
        self
    }

    /// Must be called inside the runtime (it starts the rate limits' upkeep).
    pub fn with_http(mut self, settings: middleware::HttpSettings) -> Self {
        self.rate_limits = middleware::RateLimits::start(&settings);
        self.http = Arc::new(settings);
        self
    }

    /// Shares the event bus of workers in the same process.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = bus;
        self
    }

    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.sessions = SessionSigner::new(keyring.session_key());
        self.keyring = keyring;
        self
    }

    pub fn with_admin_key(mut self, key: Option<Secret>) -> Self {
        self.admin_api_key = key;
        self
    }

    /// These webhooks, with the provider clients in force now, never reloaded.
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        let clients = self.providers.clients();
        self.providers = Arc::new(ProviderState::fixed(webhooks, clients));
        self
    }
}

pub fn router(state: AppState) -> Router {
    metrics::install_recorder();
    let routes = Router::new()
        .route("/alive", get(alive))
        .route("/health", get(health))
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(admin::routes())
        .merge(conversations::routes())
        .merge(workspace::routes())
        .merge(repositories::routes())
        .merge(sockets::routes())
        .merge(legacy_ws::routes())
        .merge(keys::routes())
        .merge(links::routes())
        .merge(login::routes())
        .merge(dashboard::routes())
        .merge(settings::routes())
        .merge(setup::routes())
        .merge(github_app::routes())
        .merge(provider_settings::routes())
        .merge(mcp::routes())
        .merge(v1::routes())
        .merge(device::routes())
        .merge(webhooks::routes())
        // On every route, after routing (it reads the matched template), before any extractor.
        .route_layer(axum::middleware::from_fn(params::path_params_are_utf8))
        // Set before the fallback: in the other order the fallback is not used.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(state.http.api_max_body_bytes));
    middleware::wrap(routes, &state).with_state(state)
}

/// A path no route serves: the same JSON error as every other.
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("nothing is served at {method} {}", uri.path()))
}

/// A path served, but not for this method.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/alive",
    tag = "service",
    summary = "The process is up",
    extensions(("x-access" = json!("public"))),
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)),
)]
pub(super) async fn alive() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// How long a dependency may take to answer before it counts as down.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The process and what it depends on: 200 when all answer, 503 when one does not.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    summary = "The process and its database answer (503 when not)",
    extensions(("x-access" = json!("public"))),
    responses(
        (status = 200, description = "All answer", body = Object),
        (status = 503, description = "A dependency does not answer", body = Object),
    ),
)]
pub(super) async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let backend = match state.db.kind() {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    };
    let database = match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => json!({ "status": "ok", "backend": backend }),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: database unreachable");
            json!({ "status": "error", "backend": backend, "error": "unreachable" })
        }
        Err(_) => json!({ "status": "error", "backend": backend, "error": "timed out" }),
    };
    let healthy = database["status"] == "ok";
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if healthy { "ok" } else { "error" };
    (
        code,
        Json(json!({ "status": status, "checks": { "database": database } })),
    )
}
