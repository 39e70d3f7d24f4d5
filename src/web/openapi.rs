//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every route. utoipa derives it from
//! each handler's `#[utoipa::path]` and from the types the handler reads and answers (request
//! bodies and query parameters are checked against those same schemas by `params.rs`). A last
//! pass here adds what every operation shares: who may call it (from its `x-access`), the JSON
//! error answers, stable operation ids, and the dashboard's pages, which share one handler.
//! Tests check that the document lists exactly the routes the routers declare.

use std::sync::OnceLock;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::{
    AppState, admin, conversations, dashboard, device, github_app, keys, legacy_ws, links,
};
use super::{login, metrics};
use super::{
    mcp, provider_settings, repositories, settings, setup, sockets, v1, webhooks, workspace,
};

/// Who may call an endpoint: each operation's `x-access` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A signed-in user: API key or browser session.
    User,
    /// An administrator.
    Admin,
    /// The provider's webhook signature.
    Signed,
}

impl Access {
    pub const ALL: [Access; 4] = [Self::Public, Self::User, Self::Admin, Self::Signed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::User => "user",
            Self::Admin => "admin",
            Self::Signed => "signed",
        }
    }

    pub fn parse(name: &str) -> Option<Access> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The operation's security requirements: any one of the three credentials, for
    /// administrators with the `admin` role (OpenAPI 3.1 lets non-OAuth schemes name roles).
    fn security(self) -> Value {
        let roles = match self {
            Self::Public | Self::Signed => return json!([]),
            Self::User => json!([]),
            Self::Admin => json!(["admin"]),
        };
        json!([
            { "bearer": roles },
            { "sessionApiKey": roles },
            { "session": roles },
        ])
    }

    fn note(self) -> Option<&'static str> {
        match self {
            Self::Public | Self::User => None,
            Self::Admin => Some("Administrators only."),
            Self::Signed => Some(
                "Signed by the provider with its own scheme (GitHub's X-Hub-Signature-256, \
                 GitLab's X-Gitlab-Token, Slack's X-Slack-Signature, Jira's and Linear's \
                 signatures), checked against the secret configured for it.",
            ),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "openhands",
        description = "Conversations with the coding agent, started from providers' webhooks or from this API. Errors are JSON objects {\"error\": \"…\"} naming what is wrong."
    ),
    paths(
        super::alive,
        super::health,
        metrics::metrics,
        metrics::server_info,
        openapi,
        dashboard::asset,
        dashboard::integrations,
        provider_settings::change,
        mcp::show,
        mcp::change,
        webhooks::receive,
        webhooks::slack_interactivity,
        links::show_link,
        links::follow_link,
        links::unlink,
        admin::list_channels,
        admin::set_channel,
        admin::delete_channel,
        admin::list_deliveries,
        admin::show_delivery,
        admin::redeliver,
        admin::list_users,
        admin::create_user,
        admin::list_links,
        admin::create_link,
        admin::delete_link,
        conversations::list_conversations,
        conversations::create_conversation,
        conversations::show_conversation,
        conversations::rename_conversation,
        conversations::delete_conversation,
        conversations::start_conversation,
        conversations::stop_conversation,
        conversations::pause_conversation,
        conversations::confirm_actions,
        conversations::reject_actions,
        conversations::send_message,
        conversations::list_events,
        conversations::trajectory,
        repositories::list_repositories,
        workspace::workspace_changes,
        workspace::workspace_files,
        workspace::workspace_file,
        sockets::events_socket,
        legacy_ws::legacy_socket,
        settings::show_settings,
        setup::setup,
        github_app::start,
        github_app::finish,
        setup::test_model,
        settings::save_settings,
        settings::list_secrets,
        settings::create_secret,
        settings::update_secret,
        settings::delete_secret,
        settings::models,
        keys::list_keys,
        keys::create_key,
        keys::delete_key,
        login::providers,
        login::start,
        login::finish,
        login::key_sign_in,
        login::token_sign_in,
        login::logout,
        login::current_user,
        v1::client_config,
        v1::users_me,
        v1::show_settings,
        v1::save_settings,
        v1::start_app_conversation,
        v1::app_conversations,
        v1::search_app_conversations,
        v1::count_app_conversations,
        v1::start_tasks,
        v1::search_start_tasks,
        v1::search_events,
        v1::count_events,
        v1::pause_sandbox,
        v1::resume_sandbox,
        v1::agent_server::search_events,
        v1::agent_server::count_events,
        v1::agent_server::send_event,
        v1::agent_server::run,
        v1::agent_server::respond_to_confirmation,
        v1::web_client_config,
        v1::byor_key,
        device::authorize,
        device::token,
        device::show_grant,
        device::decide_grant,
    )
)]
struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi))
}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "service",
    summary = "This document",
    extensions(("x-access" = json!("public"))),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub(super) async fn openapi() -> Json<Value> {
    Json(document().clone())
}

/// The OpenAPI 3.1 document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|error| {
            tracing::error!(%error, "the OpenAPI document cannot be written");
            json!({ "openapi": "3.1.0", "paths": {} })
        });
        finish(&mut document);
        document
    })
}

/// What every operation shares, added to what utoipa derived.
fn finish(document: &mut Value) {
    for (path, summary) in dashboard::PAGES {
        document["paths"][path]["get"] = json!({
            "tags": ["dashboard"],
            "summary": summary,
            "x-access": Access::Public.as_str(),
            "parameters": path_parameters(path)
                .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
                .collect::<Vec<_>>(),
            "responses": { "200": { "description": "The dashboard's page", "content": { "text/html": { "schema": { "type": "string" } } } } },
        });
    }
    let error = json!({ "$ref": "#/components/schemas/Error" });
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                finish_operation(method, path, operation, &error);
            }
        }
    }
    document["components"]["securitySchemes"] = json!({
        "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (oh_…)" },
        "sessionApiKey": { "type": "apiKey", "in": "header", "name": "X-Session-API-Key", "description": "An API key, as OpenHands' clients send it" },
        "session": { "type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE, "description": "The browser session of the dashboard" },
    });
    document["components"]["schemas"]["Error"] = json!({
        "type": "object",
        "required": ["error"],
        "properties": { "error": { "type": "string", "description": "What is wrong" } },
    });
}

fn finish_operation(method: &str, path: &str, operation: &mut Value, error: &Value) {
    operation["operationId"] = json!(operation_id(method, path));
    // An operation without a known access is left without security: a test names it.
    if let Some(access) = operation["x-access"].as_str().and_then(Access::parse) {
        operation["security"] = access.security();
        if let Some(note) = access.note() {
            let description = match operation["description"].as_str() {
                Some(text) if !text.is_empty() => format!("{note}\n\n{text}"),
                _ => note.to_string(),
            };
            operation["description"] = json!(description);
        }
    }
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    // Every error of this API is the same JSON object.
    for (status, response) in responses.iter_mut() {
        if (status.starts_with('4') || status.starts_with('5')) && response.get("content").is_none()
        {
            response["content"] = json!({ "application/json": { "schema": error } });
        }
    }
    for range in ["4XX", "5XX"] {
        responses.entry(range).or_insert_with(|| {
            json!({
                "description": "What is wrong",
                "content": { "application/json": { "schema": error } },
            })
        });
    }
}

/// `get /api/conversations/{id}/events` → `get_api_conversations_id_events`.
fn operation_id(method: &str, path: &str) -> String {
    let path: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let parts: Vec<&str> = path.split('_').filter(|p| !p.is_empty()).collect();
    format!("{method}_{}", parts.join("_"))
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// Every `(method, path)` of the document.
pub fn operations() -> Vec<(String, String)> {
    let empty = Map::new();
    let paths = document()["paths"].as_object().unwrap_or(&empty);
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap_or(&empty).keys() {
            operations.push((method.clone(), path.clone()));
        }
    }
    operations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_unique_and_parameters_named() {
        let mut ids: Vec<String> = operations()
            .iter()
            .map(|(method, path)| operation_id(method, path))
            .collect();
        ids.sort();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count, "one operation per method and path");
        let names: Vec<&str> =
            path_parameters("/api/user-links/{provider}/{workspace}/{external_id}").collect();
        assert_eq!(names, ["provider", "workspace", "external_id"]);
    }

    #[test]
    fn every_operation_says_who_may_call_it() {
        for (method, path) in operations() {
            let operation = &document()["paths"][&path][&method];
            let access = operation["x-access"].as_str().and_then(Access::parse);
            assert!(access.is_some(), "{method} {path}: {operation}");
            assert!(operation["security"].is_array(), "{method} {path}");
            assert!(operation["summary"].is_string(), "{method} {path}");
        }
    }
}
