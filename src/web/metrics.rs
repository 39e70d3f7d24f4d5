//! `GET /metrics` in Prometheus' text format and `GET /server_info`.
//!
//! Two kinds of figures: this process's own (HTTP requests, and in `serve` the sandboxes and
//! LLM calls of its workers) kept by the `metrics` crate's recorder, and figures of the whole
//! service (queue, conversations, LLM tokens and cost, running sandboxes) read from the
//! database at each scrape, so any web process reports them.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use super::auth::Admin;
use super::{ApiError, AppState};
use crate::storage::DatabaseKind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/server_info", get(server_info))
}

/// Seconds buckets for request and sandbox durations.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Installs the process's metrics recorder (once; later calls do nothing). Without it the
/// `metrics` macros record nothing.
pub fn install_recorder() -> Option<&'static PrometheusHandle> {
    STARTED.get_or_init(Instant::now);
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&DURATION_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Serves this process's own metrics (a worker's, which has no other HTTP) at `/metrics` to
/// `Authorization: Bearer KEY`, until `shutdown`.
pub async fn serve_process_metrics(
    listener: tokio::net::TcpListener,
    key: crate::setting::Secret,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let recorder = install_recorder();
    let app = Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| async move {
            let presented = super::auth::presented_key(&headers);
            if !presented.is_some_and(|k| key.matches(k)) {
                return ApiError::Unauthorized.into_response();
            }
            let mut response = recorder
                .map(PrometheusHandle::render)
                .unwrap_or_default()
                .into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }),
    );
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::warn!(%error, "the metrics listener stopped");
    }
}

/// Administrators only: the figures tell who uses the service how much.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    summary = "Prometheus metrics",
    extensions(("x-access" = json!("admin"))),
    responses((status = 200, description = "The Prometheus text format", content_type = "text/plain", body = String)),
)]
pub(super) async fn metrics(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let mut text = install_recorder()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    service_figures(&state, &mut text).await?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Appends the figures of the whole service, read from the database.
async fn service_figures(state: &AppState, out: &mut String) -> Result<(), ApiError> {
    let jobs = state.db.job_status_counts().await?;
    let conversations = state.db.conversation_status_counts().await?;
    let sandboxes = state.db.running_sandboxes().await?;
    let llm = state.db.llm_totals().await?;

    family(
        out,
        "openhands_queue_jobs",
        "gauge",
        "Jobs in the queue by kind and status.",
    );
    for row in &jobs {
        let _ = writeln!(
            out,
            "openhands_queue_jobs{{queue=\"{}\",status=\"{}\"}} {}",
            label(&row.queue),
            label(&row.status),
            row.count
        );
    }
    family(
        out,
        "openhands_conversations",
        "gauge",
        "Conversations by status.",
    );
    for row in &conversations {
        let _ = writeln!(
            out,
            "openhands_conversations{{status=\"{}\"}} {}",
            label(&row.status),
            row.count
        );
    }
    family(
        out,
        "openhands_sandboxes_running",
        "gauge",
        "Sandboxes of running conversations.",
    );
    let _ = writeln!(out, "openhands_sandboxes_running {sandboxes}");
    family(
        out,
        "openhands_llm_calls_total",
        "counter",
        "LLM calls made by all runs.",
    );
    let _ = writeln!(out, "openhands_llm_calls_total {}", llm.calls);
    family(
        out,
        "openhands_llm_tokens_total",
        "counter",
        "LLM tokens by kind.",
    );
    for (kind, value) in [
        ("prompt", llm.prompt_tokens),
        ("completion", llm.completion_tokens),
        ("cached", llm.cached_tokens),
    ] {
        let _ = writeln!(out, "openhands_llm_tokens_total{{kind=\"{kind}\"}} {value}");
    }
    family(
        out,
        "openhands_llm_cost_usd_total",
        "counter",
        "LLM cost in US dollars.",
    );
    let _ = writeln!(out, "openhands_llm_cost_usd_total {}", llm.cost_usd);
    family(
        out,
        "openhands_llm_latency_seconds_total",
        "counter",
        "Time spent waiting for the LLM.",
    );
    let _ = writeln!(
        out,
        "openhands_llm_latency_seconds_total {}",
        llm.latency_ms as f64 / 1000.0
    );
    Ok(())
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with Prometheus' escapes.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What this process is: version, uptime, database, enabled providers. Nothing secret.
#[utoipa::path(
    get,
    path = "/server_info",
    tag = "service",
    summary = "Version, uptime, database, enabled providers and the sandbox engine's state",
    extensions(("x-access" = json!("public"))),
    responses((status = 200, description = "What this process is", body = Object)),
)]
pub(super) async fn server_info(State(state): State<AppState>) -> Json<serde_json::Value> {
    let database = match state.db.kind() {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    };
    let uptime = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    Json(json!({
        "name": "openhands",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": uptime,
        "database": database,
        "providers": state.providers.webhooks().enabled_providers().iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "llm_configured": state.server_llm,
        "sandbox_engine": sandbox_engine(&state.db).await,
    }))
}

/// A worker's check older than this says nothing about the engine now.
const CHECK_FRESH_MS: i64 = 60_000;

/// The sandbox engine as the workers last saw it: `up` when one of them can start sandboxes,
/// `down` (with why) when none can, `unknown` when no worker checked lately.
async fn sandbox_engine(db: &crate::storage::Db) -> serde_json::Value {
    let since = crate::storage::now_millis() - CHECK_FRESH_MS;
    match db
        .dependency_checks(crate::agent::SANDBOX_ENGINE, since)
        .await
    {
        Ok(checks) if checks.iter().any(|c| c.state == "up") => {
            json!({"state": "up", "reason": null})
        }
        Ok(checks) => match checks.first() {
            Some(latest) => json!({"state": "down", "reason": latest.reason}),
            None => {
                json!({"state": "unknown", "reason": "no worker has checked the sandbox engine in the last minute"})
            }
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read the sandbox engine's state");
            json!({"state": "unknown", "reason": "the database did not answer"})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
