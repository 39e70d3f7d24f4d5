//! `POST /api/integration/{provider}/events`: verify on the raw body, parse, submit to intake
//! (which decides what the delivery asks for and stores it with its intake job), answer. `POST /api/integration/slack/interactivity`
//! takes Slack's interactions the same way (a repository picked from the agent's menu).
//!
//! Answers: provider not enabled → 404; body over 25 MB → 413; bad or missing signature → 401;
//! signed but not understood → 400; seen before → 200 (nothing new done); ignored → 200;
//! accepted → 202, once the delivery and its job are committed. Nothing a provider can send
//! gets a 5xx; only a database outage, or more deliveries than can be stored within the time
//! the provider waits for an answer, does (503 with Retry-After), and the provider retries.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::AppState;
use crate::intake::accept::{AcceptError, Stored, Submission};
use crate::intake::classify::{classify, classify_interaction};
use crate::integrations::request::{Inbound, Provider};
use crate::integrations::{parse, slack, verify};
use crate::storage::now_millis;

/// GitHub's own maximum webhook payload, and ours for every provider.
pub const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/integration/{provider}/events", post(receive))
        .route(
            "/api/integration/slack/interactivity",
            post(slack_interactivity),
        )
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({ "error": message.into() }))
}

#[utoipa::path(
    post,
    path = "/api/integration/{provider}/events",
    tag = "webhooks",
    summary = "A provider's webhook delivery",
    extensions(("x-access" = json!("signed"))),
    params(("provider" = String, Path, description = "github, gitlab, slack, jira or linear")),
    request_body(content = Object, description = "The provider's own payload, as it signed it"),
    responses(
        (status = 202, description = "Accepted: stored with its intake job", body = Object),
        (status = 200, description = "Ignored, or received before", body = Object),
        (status = 401, description = "Bad or missing signature"),
        (status = 404, description = "No such provider is enabled"),
        (status = 503, description = "Not stored; the provider should retry"),
    ),
)]
pub(super) async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(provider) = Provider::parse(&provider) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("there is no `{provider}` integration"),
        );
    };
    // The settings in force when the delivery arrived serve it whole.
    let webhooks = state.providers.webhooks();
    let Some(secrets) = webhooks.secrets(provider) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("the {provider} integration is not enabled"),
        );
    };
    let body = match read_body(&headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Err(e) = verify(provider, &headers, &body, secrets, now_millis()) {
        tracing::info!(%provider, reason = %e, "webhook rejected");
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let (delivery_id, event, parsed) = match parse(provider, &headers, &body, &webhooks.parse) {
        Ok(Inbound::Answer(value)) => return answer(StatusCode::OK, value),
        Ok(Inbound::Delivery { id, event, parsed }) => (id, event, parsed),
        Err(e) => {
            tracing::info!(%provider, reason = %e, "webhook not understood");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let submission = Submission {
        provider,
        delivery_id,
        event,
        payload: body,
        outcome: classify(parsed),
    };
    match store(&state, submission).await {
        Ok(Stored::Accepted(id)) => answer(
            StatusCode::ACCEPTED,
            json!({ "status": "accepted", "delivery": id }),
        ),
        Ok(Stored::Ignored(id)) => answer(
            StatusCode::OK,
            json!({ "status": "ignored", "delivery": id }),
        ),
        Ok(Stored::Duplicate) => answer(
            StatusCode::OK,
            json!({ "status": "duplicate", "message": "this delivery was received before" }),
        ),
        Err(response) => response,
    }
}

/// Slack's interactivity request URL. Slack wants a 200 within three seconds: the choice is
/// stored with its intake job and answered at once; the agent's reply follows in the thread.
#[utoipa::path(
    post,
    path = "/api/integration/slack/interactivity",
    tag = "webhooks",
    summary = "Slack's interactivity request URL: a repository picked from the agent's menu",
    extensions(("x-access" = json!("signed"))),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Slack's form with its `payload`"),
    responses(
        (status = 200, description = "Stored, ignored, or received before", body = Object),
        (status = 401, description = "Bad or missing signature"),
        (status = 404, description = "Slack is not enabled"),
    ),
)]
pub(super) async fn slack_interactivity(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let provider = Provider::Slack;
    let webhooks = state.providers.webhooks();
    let Some(secrets) = webhooks.secrets(provider) else {
        return error(
            StatusCode::NOT_FOUND,
            "the slack integration is not enabled",
        );
    };
    let body = match read_body(&headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Err(e) = verify(provider, &headers, &body, secrets, now_millis()) {
        tracing::info!(%provider, reason = %e, "interaction rejected");
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let action = match slack::parse_interaction(&body) {
        Ok(slack::Interactive::Action(action)) => action,
        Ok(slack::Interactive::Ignored(reason)) => {
            return answer(
                StatusCode::OK,
                json!({ "status": "ignored", "reason": reason }),
            );
        }
        Err(e) => {
            tracing::info!(%provider, reason = %e, "interaction not understood");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let event = format!("block_actions:{}", action.action_id);
    let delivery_id = format!("interaction:{}", action.id);
    let outcome = classify_interaction(action);
    let submission = Submission {
        provider,
        delivery_id,
        event,
        payload: body,
        outcome,
    };
    match store(&state, submission).await {
        Ok(Stored::Accepted(id)) => answer(
            StatusCode::OK,
            json!({ "status": "accepted", "delivery": id }),
        ),
        Ok(Stored::Ignored(id)) => answer(
            StatusCode::OK,
            json!({ "status": "ignored", "delivery": id }),
        ),
        Ok(Stored::Duplicate) => answer(StatusCode::OK, json!({ "status": "duplicate" })),
        Err(response) => response,
    }
}

/// Stores `submission` within its provider's answer time. Past it, or when more deliveries
/// wait than can be written in time, the answer is 503 with Retry-After rather than a timeout.
/// A delivery answered busy is not stored, so the provider's retry is taken as new.
async fn store(state: &AppState, submission: Submission) -> Result<Stored, Response> {
    let provider = submission.provider;
    match state
        .deliveries
        .store(submission, provider.answer_within())
        .await
    {
        Ok(stored) => Ok(stored),
        Err(AcceptError::Busy) => Err(busy(provider)),
        Err(AcceptError::Failed(cause)) => Err(unavailable(provider, &cause)),
    }
}

/// Too many deliveries wait to be stored: the provider should retry a little later.
fn busy(provider: Provider) -> Response {
    tracing::warn!(%provider, "webhook answered busy: deliveries wait longer than the provider does");
    retry_later(
        "the service is busy storing other deliveries; retry later",
        "2",
    )
}

/// The database is not answering: nothing was stored, so the provider should retry.
fn unavailable(provider: Provider, cause: &str) -> Response {
    tracing::error!(%provider, %cause, "webhook not stored");
    retry_later("the delivery could not be stored; retry later", "5")
}

/// 503 with `message` and a `Retry-After` of `seconds`: nothing was stored.
fn retry_later(message: &str, seconds: &'static str) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(seconds),
    );
    response
}

/// Reads the body, refusing more than [`MAX_WEBHOOK_BODY`] bytes.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_WEBHOOK_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_WEBHOOK_BODY as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, MAX_WEBHOOK_BODY).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let is_limit = std::error::Error::source(&e)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if is_limit {
                Err(too_large())
            } else {
                Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("the body could not be read: {e}"),
                ))
            }
        }
    }
}
