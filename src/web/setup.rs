//! Setting the service up from the browser: `GET /api/setup` (administrators) runs the same
//! checks as `openhands doctor` (which supplies them, as [`SetupChecks`]), and
//! `POST /api/settings/test` makes one tiny request to a model with the caller's settings (or
//! the ones about to be saved) and says what came back.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Json;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Admin, Caller};
use super::params::{Body, NoQuery, Query};
use super::{ApiError, AppState};
use crate::agent::llm::{ChatMessage, LlmClient};
use crate::storage::Db;

/// How long the model test may take, retries included.
const MODEL_TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The checks the setup page runs: `openhands doctor`'s, given by whoever builds the state.
pub trait SetupChecks: Send + Sync + std::fmt::Debug {
    fn run<'a>(&'a self, db: &'a Db) -> futures::future::BoxFuture<'a, Vec<Check>>;
}

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    Ok {
        detail: String,
    },
    Failed {
        detail: String,
        fix: String,
    },
    /// Not configured, so nothing to check.
    Skipped {
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Self {
        Self::new(
            name,
            Outcome::Ok {
                detail: detail.into(),
            },
        )
    }

    pub fn failed(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(
            name,
            Outcome::Failed {
                detail: detail.into(),
                fix: fix.into(),
            },
        )
    }

    pub fn skipped(name: &str, detail: impl Into<String>) -> Self {
        Self::new(
            name,
            Outcome::Skipped {
                detail: detail.into(),
            },
        )
    }

    fn new(name: &str, outcome: Outcome) -> Self {
        Self {
            name: name.to_string(),
            outcome,
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }

    /// The check as one line of text, with its fix on the next when it failed.
    pub fn line(&self) -> String {
        // Errors from elsewhere may span lines: each check keeps to one.
        let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        match &self.outcome {
            Outcome::Ok { detail } => format!("ok    {}: {}", self.name, one_line(detail)),
            Outcome::Skipped { detail } => format!("--    {}: {}", self.name, one_line(detail)),
            Outcome::Failed { detail, fix } => {
                format!(
                    "FAIL  {}: {}\n      fix: {fix}",
                    self.name,
                    one_line(detail)
                )
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/setup", get(setup))
        .route("/api/settings/test", post(test_model))
}

/// What the setup page shows.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SetupView {
    /// Where providers and people reach the service.
    public_url: String,
    /// Each check of `openhands doctor`: `name`, `status` (`ok`, `failed`, `skipped`),
    /// `detail`, and `fix` when it failed.
    #[schema(value_type = Vec<Object>)]
    checks: Vec<Check>,
    /// Whether no check failed.
    complete: bool,
    /// GitHub's web address (GitHub Enterprise's where GITHUB_API_URL names one): where a
    /// GitHub App is installed.
    github_web_url: String,
    /// The Slack app this service needs, to paste into Slack's "From an app manifest".
    #[schema(value_type = Object)]
    slack_manifest: serde_json::Value,
}

/// The checks of `openhands doctor`, run now by this process.
#[utoipa::path(
    get,
    path = "/api/setup",
    tag = "admin",
    summary = "The service's set-up checks (database, Docker, sandbox image, model, providers, public URL, webhook secrets)",
    extensions(("x-access" = json!("admin"))),
    params(NoQuery),
    responses((status = 200, description = "The checks", body = SetupView)),
)]
pub(super) async fn setup(
    State(state): State<AppState>,
    _admin: Admin,
    _query: Query<NoQuery>,
) -> Result<Json<SetupView>, ApiError> {
    let Some(setup) = state.setup.clone() else {
        return Err(ApiError::Unavailable(
            "this process cannot run the set-up checks; run `openhands doctor`".into(),
        ));
    };
    let checks = setup.run(&state.db).await;
    Ok(Json(SetupView {
        public_url: state.public_url.to_string(),
        complete: !checks.iter().any(Check::is_failed),
        checks,
        github_web_url: super::github_app::github_web_url(state.login.github_api_url()),
        slack_manifest: crate::integrations::slack::manifest::app_manifest(&state.public_url),
    }))
}

/// The body of `POST /api/settings/test`: what is left out comes from the caller's saved
/// settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ModelTestBody {
    #[schema(max_length = 200)]
    llm_model: Option<String>,
    #[schema(max_length = 500)]
    llm_base_url: Option<String>,
    #[schema(max_length = 4096)]
    llm_api_key: Option<String>,
}

/// How the model answered.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelTest {
    /// Whether the model answered.
    ok: bool,
    model: String,
    /// The model's words, when it answered.
    answer: Option<String>,
    /// The provider's error as it gave it, when it did not.
    error: Option<String>,
    /// From the request to the answer.
    milliseconds: u64,
}

/// One tiny request to the model (a few tokens), with the settings given or saved; the answer
/// or the provider's error, verbatim. Nothing is saved.
#[utoipa::path(
    post,
    path = "/api/settings/test",
    tag = "settings",
    summary = "Make one tiny request to a model with the given or saved settings",
    extensions(("x-access" = json!("user"))),
    request_body = ModelTestBody,
    responses((status = 200, description = "What the model or its provider said", body = ModelTest)),
)]
pub(super) async fn test_model(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<ModelTestBody>,
) -> Result<Json<ModelTest>, ApiError> {
    let saved = state.db.user_llm(&caller.0.id).await?;
    let given = |value: Option<String>| {
        value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(model) = given(body.llm_model).or(saved.llm_model) else {
        return Ok(Json(ModelTest {
            ok: false,
            model: String::new(),
            answer: None,
            error: Some("no model is given, and none is saved in your settings".into()),
            milliseconds: 0,
        }));
    };
    let base_url = given(body.llm_base_url).or(saved.llm_base_url);
    let key = match given(body.llm_api_key) {
        Some(key) => Some(key),
        None => match saved.llm_api_key {
            Some(sealed) => Some(state.keyring.open(&sealed).map_err(|e| {
                ApiError::Conflict(format!(
                    "your saved key cannot be read ({e:#}); type it again"
                ))
            })?),
            None => None,
        },
    };
    let key = key
        .map(|k| k.parse())
        .transpose()
        .map_err(|_| ApiError::BadRequest("`llm_api_key` is not text".into()))?;
    let client = LlmClient::new(&model, key, base_url.as_deref())
        .map_err(|e| ApiError::BadRequest(format!("`llm_model`: {e}")))?
        .with_timeout(MODEL_TEST_TIMEOUT);
    let started = std::time::Instant::now();
    let answer = client
        .complete(
            &[ChatMessage::user("Reply with the single word: ready")],
            &[],
        )
        .await;
    let milliseconds = started.elapsed().as_millis() as u64;
    Ok(Json(match answer {
        Ok(completion) => ModelTest {
            ok: true,
            model,
            answer: Some(completion.message.content.trim().to_string()),
            error: None,
            milliseconds,
        },
        Err(error) => ModelTest {
            ok: false,
            model,
            answer: None,
            error: Some(error.to_string()),
            milliseconds,
        },
    }))
}
