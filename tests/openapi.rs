//! The OpenAPI document lists exactly the routes the routers declare, and each one answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use openhands::web::openapi::{ENDPOINTS, document};
use openhands::web::{AppState, router};
use support::TestDb;
use tower::ServiceExt;

/// `(method, path)` of every `.route("path", get(..).post(..))` in the web module's source.
fn declared_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let call = balanced(rest);
            let Some(open) = call.find('"') else { continue };
            let Some(close) = call[open + 1..].find('"') else {
                continue;
            };
            let route = &call[open + 1..open + 1 + close];
            let handlers = &call[open + 1 + close + 1..];
            let mut found = false;
            for method in ["get", "post", "put", "patch", "delete"] {
                let mut text = handlers;
                while let Some(i) = text.find(&format!("{method}(")) {
                    let before = text[..i].chars().last();
                    if !matches!(before, Some(c) if c.is_alphanumeric() || c == '_') {
                        routes.insert((method.to_string(), route.to_string()));
                        found = true;
                    }
                    text = &text[i + method.len()..];
                }
            }
            assert!(found, "no method found for {route} in {}", path.display());
        }
    }
    routes
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
    let documented: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
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
        assert!(
            document["paths"][path][method]["summary"].is_string(),
            "{method} {path} in {document}"
        );
    }
}

#[tokio::test]
async fn every_documented_route_answers_and_the_document_is_served() {
    let t = TestDb::sqlite().await;
    let app = router(AppState::new(t.db.clone()));
    for endpoint in ENDPOINTS {
        let path = endpoint
            .path
            .replace("{provider}", "github")
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let request = Request::builder()
            .method(endpoint.method.to_uppercase().as_str())
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {path}",
            endpoint.method
        );
        assert!(
            !is_no_route(status, &body),
            "{} {path} has no route",
            endpoint.method
        );
    }
    // An undeclared route has none: the check above can tell.
    let request = Request::builder()
        .uri("/api/not-a-route")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    assert!(is_no_route(status, &body), "{status} {body:?}");

    let request = Request::builder()
        .uri("/api/openapi.json")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let served: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(served, document());
    assert_eq!(served["openapi"], "3.1.0");
}

/// The answer of the router's fallback: no route serves the path.
fn is_no_route(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND
        && String::from_utf8_lossy(body).contains("nothing is served at")
}

/// What endpoints read is documented from the very lists the handlers check their input
/// against: no handler lists its fields or query parameters anywhere else.
#[test]
fn inputs_are_documented_from_the_lists_the_handlers_check() {
    use openhands::web::openapi::INPUTS;

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for call in ["params.only(", "Fields::new("] {
            let mut rest = source.as_str();
            while let Some(at) = rest.find(call) {
                rest = &rest[at + call.len()..];
                let arguments = balanced(rest);
                assert!(
                    !arguments.contains("&["),
                    "{} lists its input inline in `{call}{arguments})`: name the list and add it to openapi::INPUTS",
                    path.display()
                );
            }
        }
    }
    let documented: BTreeSet<(&str, &str)> = ENDPOINTS.iter().map(|e| (e.method, e.path)).collect();
    let document = document();
    for inputs in INPUTS {
        assert!(
            documented.contains(&(inputs.method, inputs.path)),
            "{} {} is not a route",
            inputs.method,
            inputs.path
        );
        let operation = &document["paths"][inputs.path][inputs.method];
        for name in inputs.query {
            assert!(
                operation["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == *name && p["in"] == "query"),
                "{name} of {} {}: {operation}",
                inputs.method,
                inputs.path
            );
        }
        for name in inputs.body {
            assert!(
                operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
                    .get(*name)
                    .is_some(),
                "{name} of {} {}: {operation}",
                inputs.method,
                inputs.path
            );
        }
    }
    let created = &document["paths"]["/api/conversations"]["post"]["requestBody"];
    assert!(
        created.to_string().contains("initial_user_msg"),
        "{created}"
    );
}
