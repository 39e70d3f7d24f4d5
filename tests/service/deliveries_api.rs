//! The admin view of webhook deliveries, through the HTTP router, on both databases.

use crate::on_both_backends;
use crate::support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use openhands::setting::Secret;
use openhands::storage::{DeliveryStatus, NewDelivery};
use openhands::web::{AppState, router};
use serde_json::Value;
use support::TestDb;
use tower::ServiceExt;

on_both_backends! {
    deliveries_are_listed_filtered_and_paged_for_admins => listed_filtered_and_paged;
    the_admin_api_needs_the_admin_key => needs_the_admin_key;
    bad_parameters_get_a_clear_400 => bad_parameters;
}

const KEY: &str = "admin-key-for-tests";

fn state(t: &TestDb, key: Option<&str>) -> AppState {
    AppState::new(t.db.clone()).with_admin_key(key.map(|k| k.parse::<Secret>().unwrap()))
}

async fn get(state: AppState, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router(state)
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn store(
    t: &TestDb,
    provider: &str,
    id: &str,
    status: DeliveryStatus,
    reason: Option<&str>,
) -> i64 {
    let mut tx = t.db.begin().await.unwrap();
    let new = NewDelivery {
        provider,
        delivery_id: id,
        event: "issue_comment",
        status,
        reason,
        payload: b"{}",
        request: None,
    };
    let stored = tx.record_delivery(&new).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    stored
}

async fn listed_filtered_and_paged(t: &TestDb) {
    let first = store(t, "github", "d-1", DeliveryStatus::Accepted, None).await;
    let ignored = store(
        t,
        "github",
        "d-2",
        DeliveryStatus::Ignored,
        Some("no mention"),
    )
    .await;
    let slack = store(
        t,
        "slack",
        "Ev1",
        DeliveryStatus::Unauthorized,
        Some("user not linked"),
    )
    .await;

    let (status, page) = get(state(t, Some(KEY)), "/api/deliveries", Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<i64> = page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![slack, ignored, first], "newest first");
    assert!(page["next_before"].is_null());
    assert!(
        page["deliveries"][0].get("payload").is_none(),
        "payloads are not exposed"
    );

    let (_, page) = get(
        state(t, Some(KEY)),
        "/api/deliveries?provider=github&status=ignored",
        Some(KEY),
    )
    .await;
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(page["deliveries"][0]["reason"], "no mention");

    let (_, page) = get(state(t, Some(KEY)), "/api/deliveries?limit=2", Some(KEY)).await;
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_before"], ignored);
    let (_, page) = get(
        state(t, Some(KEY)),
        &format!("/api/deliveries?limit=2&before={ignored}"),
        Some(KEY),
    )
    .await;
    assert_eq!(page["deliveries"][0]["id"], first);
    assert!(page["next_before"].is_null());

    let (status, one) = get(
        state(t, Some(KEY)),
        &format!("/api/deliveries/{slack}"),
        Some(KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (one["provider"].as_str(), one["delivery_id"].as_str()),
        (Some("slack"), Some("Ev1"))
    );
    assert_eq!(one["status"], "unauthorized");
    let (status, missing) = get(state(t, Some(KEY)), "/api/deliveries/999999", Some(KEY)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "delivery not found");
}

async fn needs_the_admin_key(t: &TestDb) {
    store(t, "github", "d-1", DeliveryStatus::Accepted, None).await;
    let (status, body) = get(state(t, Some(KEY)), "/api/deliveries", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = get(
        state(t, Some(KEY)),
        "/api/deliveries",
        Some("admin-key-for-test"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get(state(t, Some(KEY)), "/api/deliveries/1", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Without the bootstrap key, the key is nobody's.
    let (status, _) = get(state(t, None), "/api/deliveries", Some(KEY)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A user's own key is not an administrator's.
    let (_, key) = support::user_with_key(&t.db, "not-admin", false).await;
    let (status, body) = get(state(t, None), "/api/deliveries", Some(&key)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "this needs an administrator");
}

async fn bad_parameters(t: &TestDb) {
    for (uri, expected) in [
        (
            "/api/deliveries?provider=bitbucket",
            "`provider` must be one of github, gitlab",
        ),
        (
            "/api/deliveries?status=lost",
            "`status` must be one of accepted",
        ),
        (
            "/api/deliveries?limit=0",
            "`limit` must be a whole number from 1 to 100",
        ),
        (
            "/api/deliveries?limit=101",
            "`limit` must be a whole number from 1 to 100",
        ),
        (
            "/api/deliveries?before=yesterday",
            "`before` must be a whole number",
        ),
        (
            "/api/deliveries?colour=red",
            "unknown query parameter `colour`",
        ),
        ("/api/deliveries/abc", "delivery id must be a number"),
    ] {
        let (status, body) = get(state(t, Some(KEY)), uri, Some(KEY)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{uri}: {error}");
    }
}
