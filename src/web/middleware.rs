//! What every HTTP request passes through, outermost first: a request id (kept in the log
//! span and sent back as `x-request-id`), a panic guard answering 500, CORS, rate limits,
//! cache headers and, on matched routes, metrics. Body limits are set on the router.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use clap::ArgAction;
use clap::Args;
use clap::builder::BoolishValueParser;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::AppState;
use super::auth;

pub const DEFAULT_RATE_LIMIT_PER_USER: u32 = 600;
pub const DEFAULT_RATE_LIMIT_PER_IP: u32 = 1200;
pub const DEFAULT_API_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the HTTP surface protects itself.
#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://dashboard.example.com`. Unset, only the service's own pages may.
    #[arg(long, env = "PERMITTED_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin, global = true)]
    pub permitted_cors_origins: Vec<HeaderValue>,
    /// Requests per minute per signed-in user (all their keys and sessions together); 0 turns
    /// the limit off.
    #[arg(long, env = "RATE_LIMIT_PER_USER", default_value_t = DEFAULT_RATE_LIMIT_PER_USER, global = true)]
    pub rate_limit_per_user: u32,
    /// Requests per minute per client address; 0 turns the limit off. Webhooks, health and
    /// metrics are never limited.
    #[arg(long, env = "RATE_LIMIT_PER_IP", default_value_t = DEFAULT_RATE_LIMIT_PER_IP, global = true)]
    pub rate_limit_per_ip: u32,
    /// Take the client address from the first `X-Forwarded-For` entry: only behind a reverse
    /// proxy that sets it.
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value = "false", value_parser = BoolishValueParser::new(), action = ArgAction::Set, global = true)]
    pub trust_forwarded_for: bool,
    /// Largest request body the API accepts, in bytes (webhooks allow 25 MB).
    #[arg(long, env = "API_MAX_BODY_BYTES", default_value_t = DEFAULT_API_MAX_BODY_BYTES, global = true)]
    pub api_max_body_bytes: usize,
    /// The user (login) that connections to the legacy `/ws` WebSocket without credentials act
    /// as. For local use: whoever reaches the port drives that user's conversations. Unset,
    /// `/ws` needs credentials like the rest of the API.
    #[arg(long, env = "OPENHANDS_LEGACY_WS_USER", global = true)]
    pub legacy_ws_user: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            permitted_cors_origins: Vec::new(),
            rate_limit_per_user: DEFAULT_RATE_LIMIT_PER_USER,
            rate_limit_per_ip: DEFAULT_RATE_LIMIT_PER_IP,
            trust_forwarded_for: false,
            api_max_body_bytes: DEFAULT_API_MAX_BODY_BYTES,
            legacy_ws_user: None,
        }
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(value: &str) -> Result<HeaderValue, String> {
    let value = value.trim();
    let url = url::Url::parse(value)
        .map_err(|e| format!("`{value}` is not an origin like https://app.example.com: {e}"))?;
    let origin = url.origin();
    if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{value}` is not an http(s) origin"));
    }
    let shown = origin.ascii_serialization();
    if shown != value.trim_end_matches('/') {
        return Err(format!(
            "`{value}` has a path or query; an origin is only `{shown}`"
        ));
    }
    HeaderValue::from_str(&shown).map_err(|e| format!("`{value}`: {e}"))
}

type KeyedLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One rate limit: a bucket of `per_minute` requests per key, refilled evenly.
struct Limit<K: std::hash::Hash + Eq + Clone> {
    per_minute: u32,
    limiter: KeyedLimiter<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Limit<K> {
    fn new(per_minute: u32) -> Option<Self> {
        let per_minute_nz = NonZeroU32::new(per_minute)?;
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute_nz))
            .with_middleware::<StateInformationMiddleware>();
        Some(Self {
            per_minute,
            limiter,
        })
    }

    /// Takes one request from `key`'s bucket.
    fn take(&self, key: &K) -> Verdict {
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Verdict::Allowed(Allowance {
                    limit: self.per_minute,
                    remaining,
                    // Until the bucket is full again.
                    reset_secs: (u64::from(self.per_minute - remaining.min(self.per_minute)) * 60)
                        .div_ceil(u64::from(self.per_minute)),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Verdict::Refused {
                    limit: self.per_minute,
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                }
            }
        }
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// What a request has left of its tightest bucket.
#[derive(Clone, Copy)]
struct Allowance {
    limit: u32,
    remaining: u32,
    reset_secs: u64,
}

enum Verdict {
    Allowed(Allowance),
    Refused { limit: u32, retry_after_secs: u64 },
}

/// The per-user and per-address limits of one process.
pub struct RateLimits {
    per_user: Option<Limit<String>>,
    per_ip: Option<Limit<IpAddr>>,
    trust_forwarded_for: bool,
    /// The user of each API key seen to authenticate (by the key's hash), so that all of a
    /// user's keys share the user's bucket.
    key_owners: std::sync::Mutex<HashMap<String, String>>,
}

/// Keys whose owner is remembered, at most; beyond, the memory starts afresh.
const REMEMBERED_KEYS: usize = 10_000;

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_user", &self.per_user.as_ref().map(|l| l.per_minute))
            .field("per_ip", &self.per_ip.as_ref().map(|l| l.per_minute))
            .finish()
    }
}

/// How often buckets of clients that went quiet are dropped, so memory stays bounded.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

impl RateLimits {
    /// The limits of `settings`, and a task that forgets idle clients while they are in use.
    /// Must be called inside the runtime.
    pub fn start(settings: &HttpSettings) -> Arc<Self> {
        let limits = Arc::new(Self {
            per_user: Limit::new(settings.rate_limit_per_user),
            per_ip: Limit::new(settings.rate_limit_per_ip),
            trust_forwarded_for: settings.trust_forwarded_for,
            key_owners: std::sync::Mutex::default(),
        });
        let weak: Weak<Self> = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_IDLE_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                if let Some(limit) = &limits.per_user {
                    limit.forget_idle();
                }
                if let Some(limit) = &limits.per_ip {
                    limit.forget_idle();
                }
            }
        });
        limits
    }

    /// Notes that the key with this hash is `user_id`'s: its requests count against the user.
    pub fn remember_key_owner(&self, key_hash: String, user_id: &str) {
        let Ok(mut owners) = self.key_owners.lock() else {
            return;
        };
        if owners.len() >= REMEMBERED_KEYS && !owners.contains_key(&key_hash) {
            owners.clear();
        }
        owners.insert(key_hash, user_id.to_string());
    }

    /// The user of the key with this hash, when it authenticated before.
    fn key_owner(&self, key_hash: &str) -> Option<String> {
        self.key_owners
            .lock()
            .ok()
            .and_then(|owners| owners.get(key_hash).cloned())
    }

    /// Takes one action of a signed-in user outside HTTP requests (a WebSocket frame) from the
    /// user's bucket; refused, says when to retry.
    pub fn take_for_user(&self, user_id: &str) -> Result<(), String> {
        let Some(limit) = &self.per_user else {
            return Ok(());
        };
        match limit.take(&format!("user:{user_id}")) {
            Verdict::Allowed(_) => Ok(()),
            Verdict::Refused {
                limit,
                retry_after_secs,
            } => Err(format!(
                "too many requests from this user: at most {limit} a minute; retry in {} s",
                retry_after_secs.max(1)
            )),
        }
    }

    fn client_address(&self, request: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(forwarded) = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Some(forwarded);
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip())
    }
}

/// Paths never limited: providers do not resend a refused webhook, and monitoring must
/// always get through.
fn is_exempt(path: &str) -> bool {
    matches!(path, "/alive" | "/health" | "/metrics") || path.starts_with("/api/integration/")
}

/// Who a request is, for its bucket: the signed-in user of a valid session cookie, or the
/// user of the key it presents (looked up once per key and process), so that all of a user's
/// keys share one bucket. A key no user has is its own bucket (hashed, so keys are not kept in
/// memory), and spends the address's too.
async fn credential_of(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if let Some(key) = auth::presented_key(headers) {
        let hash = crate::crypto::key_hash(key);
        if let Some(user_id) = state.rate_limits.key_owner(&hash) {
            return Some(format!("user:{user_id}"));
        }
        return Some(match state.user_of_key(key).await {
            Ok(Some(user)) => format!("user:{}", user.id),
            // A database fault is the handler's to report.
            _ => format!("key:{hash}"),
        });
    }
    auth::session_cookie(headers)
        .and_then(|cookie| state.sessions.verify(cookie))
        .map(|user_id| format!("user:{user_id}"))
}

async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = &state.rate_limits;
    if is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let mut shown: Option<Allowance> = None;
    if let (Some(limit), Some(address)) = (&limits.per_ip, limits.client_address(&request)) {
        match limit.take(&address) {
            Verdict::Allowed(quota) => shown = Some(quota),
            Verdict::Refused {
                limit,
                retry_after_secs,
            } => return too_many_requests(limit, retry_after_secs, "this address"),
        }
    }
    let credential = match &limits.per_user {
        Some(_) => credential_of(&state, request.headers()).await,
        None => None,
    };
    if let (Some(limit), Some(credential)) = (&limits.per_user, credential) {
        match limit.take(&credential) {
            // The user's bucket is the one a client manages; it is shown when there is one.
            Verdict::Allowed(quota) => shown = Some(quota),
            Verdict::Refused {
                limit,
                retry_after_secs,
            } => return too_many_requests(limit, retry_after_secs, "this user"),
        }
    }
    let mut response = next.run(request).await;
    if let Some(quota) = shown {
        let headers = response.headers_mut();
        headers.insert(LIMIT, HeaderValue::from(quota.limit));
        headers.insert(REMAINING, HeaderValue::from(quota.remaining));
        headers.insert(RESET, HeaderValue::from(quota.reset_secs));
    }
    response
}

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

fn too_many_requests(limit: u32, retry_after_secs: u64, whose: &str) -> Response {
    let retry_after_secs = retry_after_secs.max(1);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({
            "error": format!(
                "too many requests from {whose}: at most {limit} a minute; retry in {retry_after_secs} s"
            )
        })),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    headers.insert(LIMIT, HeaderValue::from(limit));
    headers.insert(REMAINING, HeaderValue::from(0u32));
    headers.insert(RESET, HeaderValue::from(retry_after_secs));
    response
}

/// API answers are never cached; embedded static assets (content-addressed) are kept long,
/// but only those found: a missing one must not stay missing in caches for a year.
async fn cache_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        let value = if is_asset && response.status().is_success() {
            "public, max-age=31536000, immutable"
        } else {
            "no-store"
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}

/// Counts and times requests per route template (never the raw path: ids would make a
/// series per conversation).
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("openhands_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("openhands_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A panicking handler answers 500 like any internal error; the process keeps serving.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({ "error": "internal error" })),
    )
        .into_response()
}

fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-session-api-key"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            LIMIT,
            REMAINING,
            RESET,
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(3600))
}

/// A request's path as logs show it: a one-time link's token is left out.
fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/link/", "/api/links/"] {
        if path.starts_with(prefix) {
            return format!("{prefix}…").into();
        }
    }
    path.into()
}

/// Wraps the routes in the layers above.
pub fn wrap(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .route_layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(cache_headers))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(cors(&state.http.permitted_cors_origins))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // The path only: query strings may carry tokens; so do link paths.
                let path = logged_path(request.uri().path());
                tracing::info_span!("http", method = %request.method(), path = %path, request_id = id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_stay_out_of_logged_paths() {
        assert_eq!(logged_path("/link/abc123"), "/link/…");
        assert_eq!(logged_path("/api/links/abc123"), "/api/links/…");
        assert_eq!(logged_path("/api/conversations/x"), "/api/conversations/x");
    }

    #[test]
    fn origins_are_checked() {
        assert!(parse_origin("https://app.example.com").is_ok());
        assert!(parse_origin("http://localhost:3001").is_ok());
        assert!(parse_origin("https://app.example.com/").is_ok());
        assert!(parse_origin("https://app.example.com/path").is_err());
        assert!(parse_origin("app.example.com").is_err());
        assert!(parse_origin("ftp://files.example.com").is_err());
    }

    #[test]
    fn a_bucket_refuses_with_the_wait() {
        let limit = Limit::<String>::new(2).unwrap();
        let key = "k".to_string();
        assert!(matches!(limit.take(&key), Verdict::Allowed(q) if q.remaining == 1));
        assert!(matches!(limit.take(&key), Verdict::Allowed(q) if q.remaining == 0));
        match limit.take(&key) {
            Verdict::Refused {
                limit,
                retry_after_secs,
            } => {
                assert_eq!(limit, 2);
                assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}");
            }
            Verdict::Allowed(_) => panic!("a third request in the minute"),
        }
        // Other keys have their own bucket.
        assert!(matches!(
            limit.take(&"other".to_string()),
            Verdict::Allowed(_)
        ));
        assert!(Limit::<String>::new(0).is_none());
    }
}
