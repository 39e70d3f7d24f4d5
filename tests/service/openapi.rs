//! The OpenAPI document against the service itself: it lists exactly the routes the routers
//! declare, each documented by the handler that serves it; each route answers; who may call an
//! operation is who the service lets in; every request built from a body's schema is taken
//! and every value the schema refuses is refused, naming the field; and a path parameter that
//! is not UTF-8 is a JSON 400 naming it, on every route that has one.

use crate::support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use openhands::crypto::Keyring;
use openhands::setting::Secret;
use openhands::web::openapi::{Access, document, operations};
use openhands::web::{AppState, router};
use serde_json::{Map, Value, json};
use support::TestDb;
use tower::ServiceExt;

const ADMIN_KEY: &str = "openapi-admin-key";

/// One `.route("path", get(a).post(b))` call of the web module's source.
struct Declared {
    file: std::path::PathBuf,
    path: String,
    /// `(method, handler)`.
    handlers: Vec<(String, String)>,
}

/// Every `.route(…)` call in the web module's source.
fn declared() -> Vec<Declared> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web");
    let mut found = Vec::new();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut folders = vec![std::path::PathBuf::from(dir)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        if file.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let call = balanced(rest);
            let Some(open) = call.find('"') else { continue };
            let Some(close) = call[open + 1..].find('"') else {
                continue;
            };
            let path = &call[open + 1..open + 1 + close];
            let handlers_text = &call[open + 1 + close + 1..];
            let mut handlers = Vec::new();
            for method in ["get", "post", "put", "patch", "delete"] {
                let mut text = handlers_text;
                while let Some(i) = text.find(&format!("{method}(")) {
                    let before = text[..i].chars().last();
                    if !matches!(before, Some(c) if c.is_alphanumeric() || c == '_') {
                        let handler = balanced(&text[i + method.len() + 1..]).trim();
                        handlers.push((method.to_string(), handler.to_string()));
                    }
                    text = &text[i + method.len()..];
                }
            }
            assert!(
                !handlers.is_empty(),
                "no method found for {path} in {}",
                file.display()
            );
            found.push(Declared {
                file: file.clone(),
                path: path.to_string(),
                handlers,
            });
        }
    }
    found
}

/// `(method, path)` of every declared route.
fn declared_routes() -> BTreeSet<(String, String)> {
    declared()
        .into_iter()
        .flat_map(|d| {
            d.handlers
                .into_iter()
                .map(move |(method, _)| (method, d.path.clone()))
        })
        .collect()
}

/// The text up to the parenthesis that closes the one just opened.
fn balanced(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

#[test]
fn the_document_lists_exactly_the_declared_routes() {
    let declared = declared_routes();
    let documented: BTreeSet<(String, String)> = operations().into_iter().collect();
    assert!(declared.len() > 30, "the routes were found: {declared:?}");
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "documented routes that do not exist: {missing:?}"
    );
    let document = document();
    for (method, path) in &declared {
        let operation = &document["paths"][path][method];
        assert!(operation["summary"].is_string(), "{method} {path}");
        assert!(operation["tags"][0].is_string(), "{method} {path}");
        assert!(
            operation["x-access"]
                .as_str()
                .and_then(Access::parse)
                .is_some(),
            "{method} {path}: {operation}"
        );
        // Every path parameter is described, and only those.
        let mut named: Vec<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        let mut in_path: Vec<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        named.sort();
        in_path.sort();
        assert_eq!(named, in_path, "{method} {path}");
    }
}

/// Each routed handler carries the `#[utoipa::path]` of its own method and path, so the
/// document describes the code that answers, not a neighbour.
#[test]
fn each_route_is_documented_by_the_handler_that_serves_it() {
    let mut checked = 0;
    for route in declared() {
        let source = std::fs::read_to_string(&route.file).unwrap();
        for (method, handler) in &route.handlers {
            // The pages share one handler; the document lists them from `dashboard::PAGES`.
            if handler == "shell" {
                continue;
            }
            // The process-metrics listener of `metrics.rs` is a router of its own, not the API's.
            if !handler
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let name = handler.rsplit("::").next().unwrap();
            let at = source
                .find(&format!("async fn {name}("))
                .unwrap_or_else(|| panic!("{name} in {}", route.file.display()));
            let attribute = source[..at]
                .rfind("#[utoipa::path(")
                .map(|start| balanced(&source[start + "#[utoipa::path(".len()..]))
                .unwrap_or_else(|| panic!("{name} has no #[utoipa::path]"));
            // The attribute belongs to this function: no other function stands between.
            let between = &source[source[..at].rfind("#[utoipa::path(").unwrap()..at];
            assert!(
                !between.contains("fn "),
                "{name}: the nearest #[utoipa::path] is another function's"
            );
            assert!(
                attribute.trim_start().starts_with(&format!("{method},")),
                "{name} serves {method} {}: {attribute}",
                route.path
            );
            assert!(
                attribute.contains(&format!("path = \"{}\"", route.path)),
                "{name} serves {method} {}: {attribute}",
                route.path
            );
            // What the handler reads is what its attribute documents.
            let signature = balanced(&source[at + format!("async fn {name}(").len()..]);
            for (extractor, documented) in [("Body<", "request_body = "), ("Query<", "params(")] {
                if let Some(i) = signature.find(extractor) {
                    let type_name: String = signature[i + extractor.len()..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let said = attribute
                        .find(documented)
                        .map(|j| &attribute[j..])
                        .unwrap_or_default();
                    assert!(
                        said.contains(&type_name),
                        "{name} reads {extractor}{type_name}> but documents {said:?}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked} handlers checked");
}

/// A path with each parameter given a value (a provider's name where one is expected).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{provider}" => "github",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, content_type, body)
}

#[tokio::test]
async fn every_documented_route_answers_and_the_document_is_served() {
    let t = TestDb::sqlite().await;
    let app = router(AppState::new(t.db.clone()));
    for (method, path) in operations() {
        let uri = concrete(&path);
        let (status, _, body) = send(&app, &method, &uri, None, None).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(!is_no_route(status, &body), "{method} {uri} has no route");
    }
    // An undeclared route has none: the check above can tell.
    let (status, _, body) = send(&app, "get", "/api/not-a-route", None, None).await;
    assert!(is_no_route(status, &body), "{status} {body}");

    let (status, content_type, served) = send(&app, "get", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(&served, document());
    assert_eq!(served["openapi"], "3.1.0");
}

/// The answer of the router's fallback: no route serves the path.
fn is_no_route(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::NOT_FOUND
        && body["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing is served at"))
}

/// Whether an operation upgrades to a WebSocket, where credentials are checked after the
/// handshake rather than in the HTTP answer.
fn is_websocket(operation: &Value) -> bool {
    operation["responses"].get("101").is_some()
}

#[tokio::test]
async fn who_may_call_each_operation_is_who_the_document_says() {
    let t = TestDb::sqlite().await;
    let state = AppState::new(t.db.clone()).with_admin_key(Some(ADMIN_KEY.parse().unwrap()));
    let app = router(state);
    let (_, key) = support::user_with_key(&t.db, "someone", false).await;
    let document = document();
    let mut counted = [0; 4];
    for (method, path) in operations() {
        let operation = &document["paths"][&path][&method];
        let access = Access::parse(operation["x-access"].as_str().unwrap()).unwrap();
        if is_websocket(operation) {
            continue;
        }
        let uri = concrete(&path);
        let (anonymous, _, answer) = send(&app, &method, &uri, None, None).await;
        let (as_user, _, _) = send(&app, &method, &uri, Some(&key), None).await;
        let (as_admin, _, _) = send(&app, &method, &uri, Some(ADMIN_KEY), None).await;
        match access {
            Access::User => {
                assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{method} {uri}");
                assert_ne!(as_user, StatusCode::UNAUTHORIZED, "{method} {uri}");
                assert_ne!(as_user, StatusCode::FORBIDDEN, "{method} {uri}");
                assert_eq!(operation["security"].as_array().unwrap().len(), 3);
            }
            Access::Admin => {
                assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{method} {uri}");
                assert_eq!(as_user, StatusCode::FORBIDDEN, "{method} {uri}");
                assert_ne!(as_admin, StatusCode::UNAUTHORIZED, "{method} {uri}");
                assert_ne!(as_admin, StatusCode::FORBIDDEN, "{method} {uri}");
                assert_eq!(operation["security"][0]["bearer"], json!(["admin"]));
            }
            Access::Public | Access::Signed => {
                assert_ne!(
                    anonymous,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri}: {answer}"
                );
                assert_ne!(anonymous, StatusCode::FORBIDDEN, "{method} {uri}: {answer}");
                assert_eq!(operation["security"], json!([]), "{method} {path}");
            }
        }
        counted[Access::ALL.iter().position(|a| *a == access).unwrap()] += 1;
    }
    assert!(
        counted.iter().all(|n| *n > 0),
        "every kind was tried: {counted:?}"
    );
}

/// Resolves a `$ref` into the document's components.
fn resolved(schema: &Value) -> &Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            resolved(&document()["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The JSON types a schema allows, looking into `oneOf`/`anyOf`.
fn types(schema: &Value) -> Vec<String> {
    let schema = resolved(schema);
    let mut found: Vec<String> = match &schema["type"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
        _ => Vec::new(),
    };
    for key in ["oneOf", "anyOf"] {
        for branch in schema[key].as_array().into_iter().flatten() {
            found.extend(types(branch));
        }
    }
    if schema["enum"].is_array() && found.is_empty() {
        found.push("string".into());
    }
    found
}

/// A value the schema allows, other than null: an example, the first of an enum, or one of
/// the declared type within its bounds.
fn valid_value(schema: &Value) -> Value {
    let schema = resolved(schema);
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(first) = schema["examples"].get(0) {
        return first.clone();
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branch) = schema[key]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| types(b) != ["null"])
        {
            return valid_value(branch);
        }
    }
    let kinds = types(schema);
    let kind = kinds.iter().find(|t| *t != "null").unwrap();
    match kind.as_str() {
        "string" => {
            let length = schema["minLength"].as_u64().unwrap_or(1).max(1) as usize;
            json!("x".repeat(length))
        }
        "integer" => json!(schema["minimum"].as_i64().unwrap_or(1)),
        "number" => json!(schema["minimum"].as_f64().unwrap_or(1.0)),
        "boolean" => json!(false),
        "array" => json!([]),
        "object" => json!({}),
        other => panic!("no value for a schema of type {other}: {schema}"),
    }
}

/// A value of a type the schema does not allow.
fn wrong_value(schema: &Value) -> Value {
    let kinds = types(schema);
    if !kinds.iter().any(|t| t == "string") {
        json!("seven")
    } else {
        json!(7)
    }
}

/// The operations that take a JSON object body, with their body's schema.
fn json_bodies() -> Vec<(String, String, Value)> {
    let mut bodies = Vec::new();
    for (method, path) in operations() {
        let operation = &document()["paths"][&path][&method];
        let Some(schema) = operation["requestBody"]["content"]["application/json"].get("schema")
        else {
            continue;
        };
        let schema = resolved(schema).clone();
        // A provider's own payload, documented as any object, is the provider's to define.
        if schema["properties"].is_object() {
            bodies.push((method, path, schema));
        }
    }
    bodies
}

/// The smallest body the schema allows: its required fields, and optional ones while it asks
/// for more properties.
fn minimal_body(schema: &Value) -> Map<String, Value> {
    let properties = schema["properties"].as_object().unwrap();
    let mut body = Map::new();
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap();
        body.insert(name.to_string(), valid_value(&properties[name]));
    }
    let wanted = schema["minProperties"].as_u64().unwrap_or(0) as usize;
    for (name, property) in properties {
        if body.len() >= wanted {
            break;
        }
        body.entry(name.clone())
            .or_insert_with(|| valid_value(property));
    }
    body
}

/// Every JSON body of the API, tried against the service: a body built from the schema is
/// never refused as malformed, and each thing the schema rules out is refused with a 400
/// that names the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_built_from_the_schemas_are_taken_and_what_they_rule_out_is_refused() {
    let t = TestDb::sqlite().await;
    let secret: Secret = "openapi-test-secret-key-of-enough-length".parse().unwrap();
    let state = AppState::new(t.db.clone())
        .with_admin_key(Some(ADMIN_KEY.parse().unwrap()))
        .with_keyring(Keyring::new(Some(&secret)));
    let app = router(state);
    let key = Some(ADMIN_KEY);
    // What the paths name must exist, or the handlers answer 404 before reading the body.
    let (status, _, created) = send(
        &app,
        "post",
        "/api/conversations",
        key,
        Some(&json!({"title": "for the bodies"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let conversation = created["conversation_id"].as_str().unwrap().to_string();
    let (status, _, answer) = send(
        &app,
        "post",
        "/api/secrets",
        key,
        Some(&json!({"name": "EXISTING", "value": "v"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let uri_of = |path: &str| {
        path.replace("{id}", &conversation)
            .replace("{name}", "EXISTING")
            .replace("{channel}", "C0123ABCD")
            .replace("{provider}", "gitlab")
    };

    let bodies = json_bodies();
    assert!(bodies.len() >= 11, "{} bodies", bodies.len());
    let names: Vec<String> = bodies.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    assert!(names.contains(&"post /api/keys".to_string()), "{names:?}");
    for (method, path, schema) in &bodies {
        let uri = uri_of(path);
        let properties = schema["properties"].as_object().unwrap();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r.as_str().unwrap())
            .collect();
        let body = minimal_body(schema);
        let (status, _, answer) =
            send(&app, method, &uri, key, Some(&Value::Object(body.clone()))).await;
        assert!(
            !matches!(
                status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "{method} {path} refused a body its schema allows, {}: {status} {answer}",
            Value::Object(body.clone())
        );

        let refused = |status: StatusCode, answer: &Value, what: &str, field: &str| {
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{method} {path} {what}: {answer}"
            );
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(&format!("`{field}`")),
                "{method} {path} {what}: {error}"
            );
        };
        for (name, property) in properties {
            let mut with = body.clone();
            with.insert(name.clone(), Value::Null);
            let (status, _, answer) =
                send(&app, method, &uri, key, Some(&Value::Object(with))).await;
            if types(property).iter().any(|t| t == "null") {
                assert!(
                    !matches!(
                        status,
                        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
                    ),
                    "{method} {path}: the schema lets `{name}` be null: {status} {answer}"
                );
            } else {
                refused(status, &answer, "with a null", name);
            }
            let mut with = body.clone();
            with.insert(name.clone(), wrong_value(property));
            let (status, _, answer) =
                send(&app, method, &uri, key, Some(&Value::Object(with))).await;
            refused(status, &answer, "with a wrong type", name);
        }
        for name in &required {
            let mut without = body.clone();
            without.remove(*name);
            let (status, _, answer) =
                send(&app, method, &uri, key, Some(&Value::Object(without))).await;
            refused(status, &answer, "without a required field", name);
        }
        if schema["additionalProperties"] == json!(false) {
            let mut with = body.clone();
            with.insert("bogus".into(), json!(1));
            let (status, _, answer) =
                send(&app, method, &uri, key, Some(&Value::Object(with))).await;
            refused(status, &answer, "with an unknown field", "bogus");
        }
        let (status, _, answer) = send(&app, method, &uri, key, Some(&json!([]))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
    }
}

/// The bodies' schemas say what the handlers hold to, field by field, where a mismatch was
/// once possible.
#[test]
fn the_schemas_say_which_fields_are_required_and_nullable() {
    let schema_of = |method: &str, path: &str| {
        json_bodies()
            .into_iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, schema)| schema)
            .unwrap_or_else(|| panic!("{method} {path} has no JSON body"))
    };
    let keys = schema_of("post", "/api/keys");
    assert_eq!(keys["required"], json!(["name"]));
    assert_eq!(keys["properties"]["name"]["type"], "string");
    assert_eq!(keys["additionalProperties"], false);
    assert_eq!(keys["properties"]["expires_in_days"]["maximum"], 3650);
    let users = schema_of("post", "/api/users");
    assert_eq!(users["required"], json!(["login"]));
    assert_eq!(users["additionalProperties"], false);
    let links = schema_of("post", "/api/user-links");
    assert!(types(&links["properties"]["provider"]) == ["string"]);
    assert!(links["properties"]["provider"].to_string().contains("oidc"));
    let settings = schema_of("post", "/api/settings");
    assert!(settings["required"].is_null() || settings["required"] == json!([]));
    assert!(types(&settings["properties"]["llm_model"]).contains(&"null".to_string()));
    let update = schema_of("put", "/api/secrets/{name}");
    assert_eq!(update["minProperties"], 1);
    assert!(!types(&update["properties"]["value"]).contains(&"null".to_string()));
}

/// A path parameter that is not UTF-8 once decoded is the API's JSON 400 naming it, on every
/// route with a parameter: pages, WebSockets and webhooks included.
#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_json_error_naming_it() {
    let t = TestDb::sqlite().await;
    let app = router(AppState::new(t.db.clone()).with_admin_key(Some(ADMIN_KEY.parse().unwrap())));
    let mut tried = 0;
    for (method, path) in operations() {
        let parameters: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for bad in &parameters {
            let uri = concrete(&path.replace(&format!("{{{bad}}}"), "%FF%FE"));
            for key in [None, Some(ADMIN_KEY)] {
                let (status, content_type, answer) = send(&app, &method, &uri, key, None).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {answer}");
                assert_eq!(
                    content_type.as_deref(),
                    Some("application/json"),
                    "{method} {uri}"
                );
                let error = answer["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains(&format!("`{bad}`")) && error.contains("UTF-8"),
                    "{method} {uri}: {error}"
                );
            }
            tried += 1;
        }
    }
    assert!(tried >= 25, "{tried} parameters tried");
    // Escapes that decode to UTF-8 are still taken.
    let (status, _, answer) = send(
        &app,
        "get",
        "/api/conversations/%C3%A9t%C3%A9",
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"], "conversation not found");
}
