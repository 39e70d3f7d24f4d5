//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every route, generated from the table
//! below. A test reads the routers' `.route(…)` calls and checks that this table lists
//! exactly those paths and methods, and that each listed route answers.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{AppState, admin, conversations, keys, settings, sockets};

/// Who may call an endpoint.
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

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
}

const fn endpoint(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    access: Access,
    summary: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        tag,
        summary,
        access,
    }
}

use Access::{Admin, Public, Signed, User};

/// Every route of the service.
pub const ENDPOINTS: &[Endpoint] = &[
    endpoint("get", "/alive", "service", Public, "The process is up"),
    endpoint(
        "get",
        "/health",
        "service",
        Public,
        "The process and its database answer (503 when not)",
    ),
    endpoint(
        "get",
        "/server_info",
        "service",
        Public,
        "Version, uptime, database and enabled providers",
    ),
    endpoint("get", "/metrics", "service", Admin, "Prometheus metrics"),
    endpoint(
        "get",
        "/",
        "dashboard",
        Public,
        "The dashboard: conversations",
    ),
    endpoint(
        "get",
        "/login",
        "dashboard",
        Public,
        "The dashboard: sign in",
    ),
    endpoint(
        "get",
        "/conversations",
        "dashboard",
        Public,
        "The dashboard: conversations",
    ),
    endpoint(
        "get",
        "/conversations/{id}",
        "dashboard",
        Public,
        "The dashboard: one conversation, live",
    ),
    endpoint(
        "get",
        "/new",
        "dashboard",
        Public,
        "The dashboard: a new conversation",
    ),
    endpoint(
        "get",
        "/deliveries",
        "dashboard",
        Public,
        "The dashboard: webhook deliveries (administrators)",
    ),
    endpoint(
        "get",
        "/settings",
        "dashboard",
        Public,
        "The dashboard: LLM settings, API keys, secrets",
    ),
    endpoint(
        "get",
        "/integrations",
        "dashboard",
        Public,
        "The dashboard: providers and their webhook URLs (administrators)",
    ),
    endpoint(
        "get",
        "/link/{token}",
        "dashboard",
        Public,
        "The dashboard: follow a one-time link that links a Slack, Jira or Linear account to the signed-in user",
    ),
    endpoint(
        "get",
        "/assets/{version}/{file}",
        "dashboard",
        Public,
        "The dashboard's embedded scripts and styles",
    ),
    endpoint(
        "get",
        "/api/openapi.json",
        "service",
        Public,
        "This document",
    ),
    endpoint(
        "post",
        "/api/integration/{provider}/events",
        "webhooks",
        Signed,
        "A provider's webhook delivery (github, gitlab, slack, jira, linear)",
    ),
    endpoint(
        "post",
        "/api/integration/slack/interactivity",
        "webhooks",
        Signed,
        "Slack's interactivity request URL: a repository picked from the agent's menu",
    ),
    endpoint(
        "get",
        "/api/links/{token}",
        "sign-in",
        User,
        "The provider account a one-time link would link, while it may be followed (410 when used or expired)",
    ),
    endpoint(
        "post",
        "/api/links/{token}",
        "sign-in",
        User,
        "Follow a one-time link: link its account to the caller and run the requests it was refused",
    ),
    endpoint(
        "delete",
        "/api/user/accounts/{provider}/{workspace}/{external_id}",
        "sign-in",
        User,
        "Unlink one of the caller's provider accounts",
    ),
    endpoint(
        "get",
        "/api/slack-channels",
        "admin",
        Admin,
        "The repository of each Slack channel's requests that name none",
    ),
    endpoint(
        "put",
        "/api/slack-channels/{channel}",
        "admin",
        Admin,
        "Set a Slack channel's repository: repository (owner/name, group/project, github: or gitlab: prefix)",
    ),
    endpoint(
        "delete",
        "/api/slack-channels/{channel}",
        "admin",
        Admin,
        "Remove a Slack channel's repository",
    ),
    endpoint(
        "get",
        "/api/conversations",
        "conversations",
        User,
        "Conversations, newest first: limit, page_id, status, repository, trigger",
    ),
    endpoint(
        "post",
        "/api/conversations",
        "conversations",
        User,
        "Start a conversation: initial_user_msg, repository, selected_branch, title",
    ),
    endpoint(
        "get",
        "/api/conversations/{id}",
        "conversations",
        User,
        "A conversation with its trigger, pull requests and statistics",
    ),
    endpoint(
        "patch",
        "/api/conversations/{id}",
        "conversations",
        User,
        "Rename a conversation: title",
    ),
    endpoint(
        "delete",
        "/api/conversations/{id}",
        "conversations",
        User,
        "Delete a conversation at rest",
    ),
    endpoint(
        "post",
        "/api/conversations/{id}/start",
        "conversations",
        User,
        "Resume the agent",
    ),
    endpoint(
        "post",
        "/api/conversations/{id}/stop",
        "conversations",
        User,
        "Stop the agent",
    ),
    endpoint(
        "post",
        "/api/conversations/{id}/message",
        "conversations",
        User,
        "Send a message: message",
    ),
    endpoint(
        "get",
        "/api/conversations/{id}/events",
        "conversations",
        User,
        "Events: start_id, end_id, reverse, limit, event_type, source",
    ),
    endpoint(
        "get",
        "/api/conversations/{id}/trajectory",
        "conversations",
        User,
        "The whole event log",
    ),
    endpoint(
        "get",
        "/sockets/events/{conversation_id}",
        "conversations",
        User,
        "WebSocket: stored events after ?after=N, then live ones",
    ),
    endpoint(
        "get",
        "/ws",
        "conversations",
        User,
        "WebSocket of the legacy OpenDevin protocol: initialize, start, and the user's run, read, write, browse, think, finish; events in the legacy shapes",
    ),
    endpoint(
        "get",
        "/api/settings",
        "settings",
        User,
        "The caller's LLM settings and limits",
    ),
    endpoint(
        "post",
        "/api/settings",
        "settings",
        User,
        "Change llm_model, llm_base_url, llm_api_key, max_iterations, max_budget_per_task",
    ),
    endpoint(
        "get",
        "/api/secrets",
        "settings",
        User,
        "The caller's secrets, without values",
    ),
    endpoint(
        "post",
        "/api/secrets",
        "settings",
        User,
        "Add a secret: name, value, description",
    ),
    endpoint(
        "put",
        "/api/secrets/{name}",
        "settings",
        User,
        "Change a secret's value or description",
    ),
    endpoint(
        "delete",
        "/api/secrets/{name}",
        "settings",
        User,
        "Delete a secret",
    ),
    endpoint(
        "get",
        "/api/options/models",
        "settings",
        User,
        "Model names to offer",
    ),
    endpoint(
        "get",
        "/api/keys",
        "keys",
        User,
        "The caller's API keys: prefix, expiry, last use",
    ),
    endpoint(
        "post",
        "/api/keys",
        "keys",
        User,
        "Create an API key (shown once): name, expires_in_days",
    ),
    endpoint(
        "delete",
        "/api/keys/{id}",
        "keys",
        User,
        "Revoke an API key",
    ),
    endpoint(
        "get",
        "/api/deliveries",
        "admin",
        Admin,
        "Recent webhook deliveries and what became of them",
    ),
    endpoint(
        "get",
        "/api/deliveries/{id}",
        "admin",
        Admin,
        "One delivery with its posts",
    ),
    endpoint(
        "post",
        "/api/deliveries/{id}/redeliver",
        "admin",
        Admin,
        "Run a delivery's intake again",
    ),
    endpoint(
        "get",
        "/auth/providers",
        "sign-in",
        Public,
        "The enabled sign-in providers (github, oidc) and their login URLs",
    ),
    endpoint(
        "get",
        "/auth/{provider}/login",
        "sign-in",
        Public,
        "Start signing in: redirects to the provider (state and PKCE); ?redirect_to=/path returns there",
    ),
    endpoint(
        "get",
        "/auth/{provider}/callback",
        "sign-in",
        Public,
        "Where the provider sends the browser back; sets the session cookie",
    ),
    endpoint(
        "post",
        "/auth/key",
        "sign-in",
        Public,
        "Sign a browser in with an API key ({\"api_key\": …}): sets the session cookie",
    ),
    endpoint(
        "get",
        "/api/integrations",
        "admin",
        Admin,
        "Each provider: configured or not, its webhook URL and events, its last delivery",
    ),
    endpoint(
        "post",
        "/auth/logout",
        "sign-in",
        Public,
        "End the browser session",
    ),
    endpoint(
        "get",
        "/api/user",
        "sign-in",
        User,
        "The signed-in user and their linked provider accounts",
    ),
    endpoint("post", "/api/users", "admin", Admin, "Create a user"),
    endpoint(
        "get",
        "/api/user-links",
        "admin",
        Admin,
        "Links from Slack, Jira and Linear accounts to users",
    ),
    endpoint(
        "post",
        "/api/user-links",
        "admin",
        Admin,
        "Link a provider account to a user",
    ),
    endpoint(
        "delete",
        "/api/user-links/{provider}/{workspace}/{external_id}",
        "admin",
        Admin,
        "Remove a link",
    ),
];

/// What an endpoint reads besides its path: query parameters and the fields of its JSON body.
/// The handlers check their input against these same lists, so the document cannot drift.
pub struct Inputs {
    pub method: &'static str,
    pub path: &'static str,
    pub query: &'static [&'static str],
    pub body: &'static [&'static str],
}

const fn inputs(
    method: &'static str,
    path: &'static str,
    query: &'static [&'static str],
    body: &'static [&'static str],
) -> Inputs {
    Inputs {
        method,
        path,
        query,
        body,
    }
}

/// The inputs of the endpoints that take any.
pub const INPUTS: &[Inputs] = &[
    inputs(
        "post",
        "/api/conversations",
        &[],
        conversations::CREATE_FIELDS,
    ),
    inputs("get", "/api/conversations", conversations::LIST_QUERY, &[]),
    inputs(
        "patch",
        "/api/conversations/{id}",
        &[],
        conversations::TITLE_FIELDS,
    ),
    inputs(
        "post",
        "/api/conversations/{id}/message",
        &[],
        conversations::MESSAGE_FIELDS,
    ),
    inputs(
        "get",
        "/api/conversations/{id}/events",
        conversations::EVENTS_QUERY,
        &[],
    ),
    inputs("post", "/api/keys", &[], keys::NEW_KEY_FIELDS),
    inputs(
        "put",
        "/api/slack-channels/{channel}",
        &[],
        admin::CHANNEL_FIELDS,
    ),
    inputs("post", "/api/settings", &[], settings::SETTINGS_FIELDS),
    inputs("post", "/api/secrets", &[], settings::NEW_SECRET_FIELDS),
    inputs(
        "put",
        "/api/secrets/{name}",
        &[],
        settings::SECRET_UPDATE_FIELDS,
    ),
    inputs(
        "get",
        "/sockets/events/{conversation_id}",
        sockets::SOCKET_QUERY,
        &[],
    ),
];

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi))
}

async fn openapi() -> Json<Value> {
    Json(document())
}

/// The OpenAPI 3.1 document of [`ENDPOINTS`].
pub fn document() -> Value {
    let mut paths = Map::new();
    for endpoint in ENDPOINTS {
        let item = paths
            .entry(endpoint.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(endpoint.method.to_string(), operation(endpoint));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "openhands",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Conversations with the coding agent, started from providers' webhooks or from this API. Errors are JSON objects {\"error\": \"…\"} naming what is wrong.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (oh_…)" },
                "sessionApiKey": { "type": "apiKey", "in": "header", "name": "X-Session-API-Key" },
                "session": { "type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "string" } },
                },
            },
        },
    })
}

fn operation(endpoint: &Endpoint) -> Value {
    let inputs = INPUTS
        .iter()
        .find(|i| i.method == endpoint.method && i.path == endpoint.path);
    let mut parameters: Vec<Value> = path_parameters(endpoint.path)
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let query = inputs.map(|i| i.query).unwrap_or_default();
    parameters.extend(
        query
            .iter()
            .map(|name| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } })),
    );
    let error = json!({ "description": "What is wrong", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let mut responses = Map::new();
    responses.insert("2XX".into(), json!({ "description": "Done" }));
    responses.insert("4XX".into(), error.clone());
    responses.insert("5XX".into(), error);
    let security = match endpoint.access {
        Access::Public | Access::Signed => json!([]),
        Access::User | Access::Admin => {
            json!([{ "bearer": [] }, { "sessionApiKey": [] }, { "session": [] }])
        }
    };
    let mut operation = json!({
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
        "operationId": operation_id(endpoint),
        "parameters": parameters,
        "responses": responses,
        "security": security,
    });
    if endpoint.access == Access::Admin {
        operation["description"] = json!("Administrators only.");
    }
    if let Some(inputs) = inputs.filter(|i| !i.body.is_empty()) {
        let properties: Map<String, Value> = inputs
            .body
            .iter()
            .map(|name| (name.to_string(), json!({})))
            .collect();
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": {
                "type": "object",
                "properties": properties,
                "additionalProperties": false,
            } } },
        });
    }
    operation
}

/// `get /api/conversations/{id}/events` → `get_api_conversations_id_events`.
fn operation_id(endpoint: &Endpoint) -> String {
    let path: String = endpoint
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let parts: Vec<&str> = path.split('_').filter(|p| !p.is_empty()).collect();
    format!("{}_{}", endpoint.method, parts.join("_"))
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_unique_and_parameters_named() {
        let mut ids: Vec<String> = ENDPOINTS.iter().map(operation_id).collect();
        ids.sort();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count, "one operation per method and path");
        let names: Vec<&str> =
            path_parameters("/api/user-links/{provider}/{workspace}/{external_id}").collect();
        assert_eq!(names, ["provider", "workspace", "external_id"]);
    }
}
