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
            !(status == StatusCode::NOT_FOUND && body.is_empty()),
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
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .is_empty()
    );

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
