//! What every request passes through, over real HTTP on loopback: request ids, CORS, rate
//! limits, body limits, cache headers, panics answered with 500, and the metrics and
//! server-info endpoints.

use crate::support;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use openhands::setting::Secret;
use openhands::storage::Db;
use openhands::web::middleware::{self, HttpSettings};
use openhands::web::{AppState, router};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestDb;

const ADMIN_KEY: &str = "http-admin-key";

fn settings() -> HttpSettings {
    HttpSettings {
        permitted_cors_origins: vec!["https://dashboard.example.com".parse().unwrap()],
        ..HttpSettings::default()
    }
}

fn state(t: &TestDb, settings: HttpSettings) -> AppState {
    AppState::new(t.db.clone())
        .with_admin_key(Some(ADMIN_KEY.parse::<Secret>().unwrap()))
        .with_http(settings)
}

/// Serves `app` on loopback with the peer address known, as the service does.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    url
}

async fn user_key(t: &TestDb, login: &str) -> String {
    support::user_with_key(&t.db, login, false).await.1
}

/// All of a user's keys share the user's bucket, and so do the messages the user sends over
/// a WebSocket: each may start a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_keys_and_socket_frames_share_one_rate_limit() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let t = TestDb::sqlite().await;
    let limited = HttpSettings {
        rate_limit_per_user: 4,
        ..settings()
    };
    let url = serve(router(state(&t, limited))).await;
    let client = reqwest::Client::new();
    let first = user_key(&t, "alice").await;
    let alice = t.db.user_by_login("alice").await.unwrap().unwrap();
    let (second, _) = openhands::web::keys::issue_key(&t.db, &alice.id, "second", None)
        .await
        .unwrap();
    let conversation =
        t.db.create_conversation(&openhands::storage::NewConversation {
            owner_id: &alice.id,
            title: "limits",
            trigger_kind: "web",
            ..Default::default()
        })
        .await
        .unwrap();
    let list = |key: &str| {
        client
            .get(format!("{url}/api/conversations"))
            .bearer_auth(key)
            .send()
    };
    // Two requests with each key: the bucket of 4 is spent.
    let mut remaining = Vec::new();
    for key in [&first, &second, &first] {
        let response = list(key).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        remaining.push(
            header(&response, "x-ratelimit-remaining")
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["3", "2", "1"]);
    // The socket's upgrade request takes the last one.
    let mut socket = support::socket::connect(
        &format!(
            "{}/sockets/events/{}",
            url.replace("http://", "ws://"),
            conversation.id
        ),
        Some(&second),
    )
    .await;
    assert_eq!(
        list(&second).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // A message frame over the limit is refused with an error frame; nothing is recorded.
    socket
        .send(Message::text(r#"{"type":"message","content":"one more"}"#))
        .await
        .unwrap();
    let error = loop {
        match socket.next().await.unwrap().unwrap() {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "error" {
                    break frame;
                }
            }
            _ => continue,
        }
    };
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{error}"
    );
    let conversation = t.db.conversation(&conversation.id).await.unwrap();
    assert_eq!(
        conversation.last_event_id, 0,
        "the refused message was not recorded"
    );
}

async fn conversation_count(t: &TestDb) -> i64 {
    let Db::Sqlite(pool) = &t.db else {
        unreachable!()
    };
    sqlx::query_scalar("SELECT COUNT(*) FROM conversations")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn requests_carry_ids_and_api_answers_are_not_cached() {
    let t = TestDb::sqlite().await;
    let url = serve(router(state(&t, settings()))).await;
    let client = reqwest::Client::new();

    let response = client.get(format!("{url}/alive")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = header(&response, "x-request-id").expect("a request id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(header(&response, "cache-control"), Some("no-store"));

    // A caller's own request id is kept, so its logs and ours can be matched.
    let response = client
        .get(format!("{url}/api/conversations"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&response, "x-request-id"), Some("trace-me-42"));
    assert_eq!(header(&response, "cache-control"), Some("no-store"));
}

#[tokio::test]
async fn cors_admits_only_the_permitted_origins() {
    let t = TestDb::sqlite().await;
    let url = serve(router(state(&t, settings()))).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{url}/api/conversations"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://dashboard.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://dashboard.example.com")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials"),
        Some("true")
    );
    let methods = header(&allowed, "access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");

    let refused = preflight("https://evil.example.com").await.unwrap();
    assert_eq!(header(&refused, "access-control-allow-origin"), None);

    // A plain request from the permitted origin can read the answer and its headers.
    let response = client
        .get(format!("{url}/alive"))
        .header("origin", "https://dashboard.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some("https://dashboard.example.com")
    );
    let exposed = header(&response, "access-control-expose-headers").unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(exposed.contains("retry-after"), "{exposed}");
}

#[tokio::test]
async fn each_user_has_a_rate_limit_answered_with_429_and_its_headers() {
    let t = TestDb::sqlite().await;
    let limited = HttpSettings {
        rate_limit_per_user: 3,
        ..settings()
    };
    let url = serve(router(state(&t, limited))).await;
    let client = reqwest::Client::new();
    let alice = user_key(&t, "alice").await;
    let bob = user_key(&t, "bob").await;
    let list = |key: &str| {
        client
            .get(format!("{url}/api/conversations"))
            .bearer_auth(key)
            .send()
    };

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = list(&alice).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-ratelimit-limit"), Some("3"));
        remaining.push(
            header(&response, "x-ratelimit-remaining")
                .unwrap()
                .to_string(),
        );
        let reset: u64 = header(&response, "x-ratelimit-reset")
            .unwrap()
            .parse()
            .unwrap();
        assert!(reset <= 60, "{reset}");
    }
    assert_eq!(remaining, ["2", "1", "0"]);

    let refused = list(&alice).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&refused, "x-ratelimit-limit"), Some("3"));
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{body}"
    );

    // Another user is not held back by alice, and health checks never are.
    assert_eq!(list(&bob).await.unwrap().status(), StatusCode::OK);
    let health = client
        .get(format!("{url}/alive"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn each_address_has_a_rate_limit_that_webhooks_do_not_spend() {
    let t = TestDb::sqlite().await;
    let limited = HttpSettings {
        rate_limit_per_ip: 2,
        ..settings()
    };
    let url = serve(router(state(&t, limited))).await;
    let client = reqwest::Client::new();
    // Wrong keys spend the address's bucket too: guessing keys is slowed down.
    for guess in ["oh_guess1", "oh_guess2"] {
        let response = client
            .get(format!("{url}/api/conversations"))
            .bearer_auth(guess)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = client
        .get(format!("{url}/api/conversations"))
        .bearer_auth("oh_guess3")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&refused, "retry-after").is_some());

    // Webhook deliveries are never refused for rate: providers do not send them again.
    for _ in 0..5 {
        let response = client
            .post(format!("{url}/api/integration/github/events"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_a_json_413() {
    let t = TestDb::sqlite().await;
    let small = HttpSettings {
        api_max_body_bytes: 1024,
        ..settings()
    };
    let url = serve(router(state(&t, small))).await;
    let key = user_key(&t, "alice").await;
    let client = reqwest::Client::new();
    let big = json!({ "initial_user_msg": "x".repeat(4096) }).to_string();
    let response = client
        .post(format!("{url}/api/conversations"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("API_MAX_BODY_BYTES"),
        "{body}"
    );
    assert_eq!(conversation_count(&t).await, 0, "nothing was written");

    // Within the limit, the same request works.
    let response = client
        .post(format!("{url}/api/conversations"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(json!({ "initial_user_msg": "small" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let t = TestDb::sqlite().await;
    let state = state(&t, settings());
    let routes = Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let app = middleware::wrap(routes, &state).with_state(state);
    let url = serve(app).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client.get(format!("{url}/boom")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "error": "internal error" }));
    }
    let response = client.get(format!("{url}/fine")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "fine");
}

#[tokio::test]
async fn metrics_are_for_administrators_and_cover_http_queue_and_llm() {
    let t = TestDb::sqlite().await;
    let url = serve(router(state(&t, settings()))).await;
    let client = reqwest::Client::new();
    let alice = user_key(&t, "alice").await;
    // Work for the figures: a conversation (its run job waits in the queue) with LLM usage.
    let created: Value = client
        .post(format!("{url}/api/conversations"))
        .bearer_auth(&alice)
        .json(&json!({ "initial_user_msg": "count me" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["conversation_id"].as_str().unwrap();
    let Db::Sqlite(pool) = &t.db else {
        unreachable!()
    };
    sqlx::query(
        "UPDATE conversations SET llm_calls = 2, prompt_tokens = 1200, completion_tokens = 300, cost_usd = 0.042 WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();

    let anonymous = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let user = client
        .get(format!("{url}/metrics"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::FORBIDDEN);

    let response = client
        .get(format!("{url}/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    // Requests are counted per route template, never per conversation id.
    assert!(
        text.contains(r#"route="/api/conversations""#) && text.contains(r#"status="201""#),
        "{text}"
    );
    assert!(
        text.contains("openhands_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(id), "no series per conversation: {text}");
    assert!(
        text.contains(r#"openhands_queue_jobs{queue="run",status="Pending"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"openhands_llm_tokens_total{kind="prompt"} 1200"#),
        "{text}"
    );
    assert!(
        text.contains(r#"openhands_llm_tokens_total{kind="completion"} 300"#),
        "{text}"
    );
    assert!(
        text.contains("openhands_llm_cost_usd_total 0.042"),
        "{text}"
    );
    assert!(text.contains("openhands_sandboxes_running 0"), "{text}");
    assert!(
        text.contains("# TYPE openhands_llm_cost_usd_total counter"),
        "{text}"
    );
}

#[tokio::test]
async fn server_info_names_the_version_database_and_providers() {
    let t = TestDb::sqlite().await;
    let url = serve(router(state(&t, settings()))).await;
    let info: Value = reqwest::get(format!("{url}/server_info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], "openhands");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["database"], "sqlite");
    assert_eq!(info["providers"], json!([]));
    assert!(info["uptime_seconds"].as_u64().is_some());
}
