//! Signing in OpenHands' CLI without a key file: the OAuth 2.0 device flow (RFC 8628). The CLI
//! asks for a code (`POST /oauth/device/authorize`) and shows the person a page of the
//! dashboard (`/device?user_code=…`); signed in there, they approve or deny the code
//! (`POST /api/oauth/device/{user_code}`); meanwhile the CLI polls `POST /oauth/device/token`
//! and, once approved, receives a new API key of that user, once.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::auth::Caller;
use super::conversations::iso;
use super::params::Body;
use super::{ApiError, AppState};
use crate::crypto::key_hash;
use crate::storage::now_millis;

/// How long a code may be approved.
const LIFETIME_MS: i64 = 15 * 60 * 1000;
/// How often the device may ask for its token, in seconds.
const POLL_INTERVAL_S: i64 = 5;
/// User codes are made of these letters: no vowels (no words), none that look alike.
const USER_CODE_LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LENGTH: usize = 8;
/// What the API key a device receives is called in the user's list of keys.
const KEY_NAME: &str = "OpenHands CLI (device sign-in)";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/device/authorize", post(authorize))
        .route("/oauth/device/token", post(token))
        .route(
            "/api/oauth/device/{user_code}",
            get(show_grant).post(decide_grant),
        )
}

/// A new random user code (`BCDF-GHJK` as shown; stored without the dash).
fn new_user_code() -> String {
    let random = uuid::Uuid::new_v4();
    random
        .as_bytes()
        .iter()
        .take(USER_CODE_LENGTH)
        .map(|b| USER_CODE_LETTERS[usize::from(*b) % USER_CODE_LETTERS.len()] as char)
        .collect()
}

/// A code as typed: any case, with or without the dash and spaces.
fn normalized(user_code: &str) -> String {
    user_code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn shown(user_code: &str) -> String {
    let (first, second) = user_code.split_at(user_code.len().min(USER_CODE_LENGTH / 2));
    format!("{first}-{second}")
}

/// The device's codes (RFC 8628 §3.2).
#[utoipa::path(
    post,
    path = "/oauth/device/authorize",
    tag = "sign-in",
    summary = "OAuth device flow: a device asks for a code to show its user",
    extensions(("x-access" = json!("public"))),
    responses((status = 200, description = "`{device_code, user_code, verification_uri, verification_uri_complete, expires_in, interval}`", body = Object)),
)]
pub(super) async fn authorize(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let device_code = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let user_code = new_user_code();
    state
        .db
        .create_device_grant(&key_hash(&device_code), &user_code, LIFETIME_MS)
        .await?;
    let page = format!("{}/device", state.public_url);
    Ok(Json(json!({
        "device_code": device_code,
        "user_code": shown(&user_code),
        "verification_uri": page,
        "verification_uri_complete": format!("{page}?user_code={}", shown(&user_code)),
        "expires_in": LIFETIME_MS / 1000,
        "interval": POLL_INTERVAL_S,
    })))
}

/// An error of the token endpoint, as RFC 8628 §3.5 names them.
fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(
            json!({"error": error, "error_description": description, "interval": POLL_INTERVAL_S}),
        ),
    )
        .into_response()
}

/// The device's API key once its code is approved (RFC 8628 §3.4, §3.5). The body is a form
/// (`device_code=…`, as the RFC has it) or JSON.
#[utoipa::path(
    post,
    path = "/oauth/device/token",
    tag = "sign-in",
    summary = "OAuth device flow: the device's API key, once its user approved the code",
    extensions(("x-access" = json!("public"))),
    responses(
        (status = 200, description = "`{access_token, token_type}`: a new API key of the user who approved", body = Object),
        (status = 400, description = "`{error}`: authorization_pending, slow_down, access_denied, expired_token or invalid_grant", body = Object),
    ),
)]
pub(super) async fn token(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let device_code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["device_code"].as_str().map(str::to_string))
        .or_else(|| {
            url::form_urlencoded::parse(&body)
                .find(|(name, _)| name == "device_code")
                .map(|(_, value)| value.into_owned())
        });
    let Some(device_code) = device_code.filter(|c| !c.is_empty()) else {
        return Ok(token_error("invalid_request", "`device_code` is missing"));
    };
    let hash = key_hash(&device_code);
    let Some(grant) = state.db.poll_device_grant(&hash).await? else {
        return Ok(token_error(
            "invalid_grant",
            "the device code is not known (or was used)",
        ));
    };
    let now = now_millis();
    if grant.expires_at < now {
        return Ok(token_error(
            "expired_token",
            "the code expired: sign in again",
        ));
    }
    if grant.denied {
        return Ok(token_error("access_denied", "the user denied the sign-in"));
    }
    let Some(user_id) = grant.user_id else {
        let too_soon = grant
            .last_polled_at
            .is_some_and(|at| now - at < (POLL_INTERVAL_S - 1) * 1000);
        return Ok(if too_soon {
            token_error("slow_down", "polled faster than the interval")
        } else {
            token_error(
                "authorization_pending",
                "the user has not approved the code yet",
            )
        });
    };
    // Taken once: a second poll with the same code gets nothing.
    if !state.db.take_device_grant(&hash).await? {
        return Ok(token_error("invalid_grant", "the device code was used"));
    }
    let (key, stored) = super::keys::issue_key(&state.db, &user_id, KEY_NAME, None).await?;
    tracing::info!(user_id = %user_id, key_id = %stored.id, "a device signed in");
    Ok(Json(json!({"access_token": key, "token_type": "Bearer"})).into_response())
}

/// A device's sign-in request, as the approval page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct GrantView {
    /// As the device shows it (`BCDF-GHJK`).
    user_code: String,
    /// `pending`, `approved` or `denied`.
    status: String,
    /// RFC 3339.
    expires_at: String,
}

/// The code's request, while it may be decided: 404 for a code unknown, expired or taken.
async fn pending(
    state: &AppState,
    user_code: &str,
) -> Result<crate::storage::device_grants::DeviceGrant, ApiError> {
    match state
        .db
        .device_grant_by_user_code(&normalized(user_code))
        .await?
    {
        Some(grant) if grant.expires_at >= now_millis() => Ok(grant),
        _ => Err(ApiError::NotFound("device code")),
    }
}

#[utoipa::path(
    get,
    path = "/api/oauth/device/{user_code}",
    tag = "sign-in",
    summary = "A device's sign-in request, for the page that approves it",
    extensions(("x-access" = json!("user"))),
    params(("user_code" = String, Path, description = "The code the device shows")),
    responses((status = 200, description = "The request", body = GrantView)),
)]
pub(super) async fn show_grant(
    State(state): State<AppState>,
    _caller: Caller,
    Path(user_code): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = pending(&state, &user_code).await?;
    let status = match (&grant.user_id, grant.denied) {
        (_, true) => "denied",
        (Some(_), _) => "approved",
        (None, false) => "pending",
    };
    Ok(Json(GrantView {
        user_code: shown(&grant.user_code),
        status: status.into(),
        expires_at: iso(grant.expires_at),
    }))
}

/// The body of `POST /api/oauth/device/{user_code}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    /// True signs the device in as the caller (it gets an API key of theirs); false refuses.
    approve: bool,
}

#[utoipa::path(
    post,
    path = "/api/oauth/device/{user_code}",
    tag = "sign-in",
    summary = "Approve or deny a device's sign-in as the caller",
    extensions(("x-access" = json!("user"))),
    params(("user_code" = String, Path, description = "The code the device shows")),
    request_body = Decision,
    responses(
        (status = 200, description = "Decided", body = GrantView),
        (status = 409, description = "Already decided"),
    ),
)]
pub(super) async fn decide_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_code): Path<String>,
    Body(decision): Body<Decision>,
) -> Result<Json<GrantView>, ApiError> {
    let grant = pending(&state, &user_code).await?;
    let approver = decision.approve.then_some(caller.0.id.as_str());
    if !state
        .db
        .decide_device_grant(&grant.user_code, approver)
        .await?
    {
        return Err(ApiError::Conflict(
            "this sign-in was already decided".into(),
        ));
    }
    tracing::info!(user_id = %caller.0.id, approved = decision.approve, "a device sign-in was decided");
    Ok(Json(GrantView {
        user_code: shown(&grant.user_code),
        status: if decision.approve {
            "approved"
        } else {
            "denied"
        }
        .into(),
        expires_at: iso(grant.expires_at),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_letters_read_back_in_any_form() {
        let code = new_user_code();
        assert_eq!(code.len(), USER_CODE_LENGTH);
        assert!(code.bytes().all(|b| USER_CODE_LETTERS.contains(&b)));
        let typed = shown(&code).to_lowercase().replace('-', " - ");
        assert_eq!(normalized(&typed), code);
    }
}
