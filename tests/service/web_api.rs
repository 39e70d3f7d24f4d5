//! The web API and its WebSockets, against real SQLite and PostgreSQL: users see and drive only
//! their own conversations, bad input is named, live events stream without gaps across nodes.

use crate::on_both_backends;
use crate::support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::SinkExt;
use openhands::setting::Secret;
use openhands::storage::NewEvent;
use openhands::web::{AppState, router};
use serde_json::{Value, json};
use support::api_call as call;
use support::service::Service;
use support::socket::{self, Socket, close_code, next_json};
use support::{Kind, TestDb};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

on_both_backends! {
    users_see_and_drive_only_their_own_conversations => own_conversations_only;
    conversations_are_listed_in_pages_with_filters => listed_in_pages;
    events_are_read_by_range_direction_and_type => events_by_range;
    bad_input_is_named_and_changes_nothing => bad_input_named;
    api_keys_are_shown_once_and_can_be_revoked => api_keys;
}

const ADMIN_KEY: &str = "web-api-admin-key";

fn state(t: &TestDb) -> AppState {
    AppState::new(t.db.clone()).with_admin_key(Some(ADMIN_KEY.parse::<Secret>().unwrap()))
}

/// The web API with the fakes as GitHub and GitLab: `acme/api` is reachable through the
/// GitHub App, `group/sub/project` through GitLab. Keep the service alive while testing.
async fn state_with_hosts(t: &TestDb) -> (Service, AppState) {
    let service = Service::builder(&t.db)
        .fakes()
        .web()
        .admin_key(ADMIN_KEY)
        .start()
        .await;
    let fakes = service.fakes();
    fakes.set_github_installation("acme/api", 4242);
    fakes.set_gitlab_project_path("group/sub/project", 77);
    let state = service.state().clone();
    (service, state)
}

/// A user with an API key whose GitHub and GitLab accounts are linked and may push to the
/// repositories of [`state_with_hosts`].
async fn user_with_accounts(t: &TestDb, service: &Service, login: &str, github_id: u64) -> String {
    let (user_id, key) = support::user_with_key(&t.db, login, false).await;
    let fakes = service.fakes();
    let github_login = format!("{login}-gh");
    fakes.set_github_account(github_id, &github_login);
    fakes.set_github_permission("acme/api", &github_login, "write");
    let gitlab_id = (github_id + 1000).to_string();
    fakes.set_gitlab_level(77, &gitlab_id, 30);
    for (provider, api_url, account) in [
        ("github", fakes.github_api_url(), github_id.to_string()),
        ("gitlab", fakes.gitlab_api_url(), gitlab_id),
    ] {
        let host = url::Url::parse(&api_url)
            .unwrap()
            .host_str()
            .unwrap()
            .to_string();
        t.db.link_user(provider, &host, &account, &user_id)
            .await
            .unwrap();
    }
    key
}

/// One request through the router; the answer's status and JSON body.
/// A user with an API key.
async fn user(t: &TestDb, login: &str) -> String {
    support::user_with_key(&t.db, login, false).await.1
}

async fn create(state: &AppState, key: &str, body: Value) -> String {
    let (status, answer) = call(
        state,
        "POST",
        "/api/conversations",
        Some(key),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["status"], "ok");
    answer["conversation_id"].as_str().unwrap().to_string()
}

async fn own_conversations_only(t: &TestDb) {
    let (service, s) = state_with_hosts(t).await;
    let alice = user_with_accounts(t, &service, "alice", 101).await;
    let bob = user(t, "bob").await;
    let id = create(
        &s,
        &alice,
        json!({"initial_user_msg": "Fix the parser\nIt panics.", "repository": "acme/api", "selected_branch": "main"}),
    )
    .await;

    let (status, shown) = call(
        &s,
        "GET",
        &format!("/api/conversations/{id}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["title"], "Fix the parser");
    assert_eq!(shown["trigger"], "web");
    assert_eq!(shown["selected_repository"], "acme/api");
    assert_eq!(shown["selected_branch"], "main");
    assert_eq!(shown["status"], "loading");
    assert_eq!(shown["stats"]["llm_calls"], 0);
    assert_eq!(shown["pull_requests"], json!([]));

    // Bob gets 404 for everything about it, as for a conversation that does not exist.
    for (method, path, body) in [
        ("GET", "", None),
        ("PATCH", "", Some(r#"{"title":"mine"}"#)),
        ("DELETE", "", None),
        ("POST", "/start", None),
        ("POST", "/stop", None),
        ("POST", "/message", Some(r#"{"message":"hi"}"#)),
        ("GET", "/events", None),
        ("GET", "/trajectory", None),
    ] {
        let uri = format!("/api/conversations/{id}{path}");
        let (status, answer) = call(&s, method, &uri, Some(&bob), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {answer}");
        assert_eq!(answer["error"], "conversation not found");
        let missing = format!("/api/conversations/0123456789abcdef{path}");
        let (status, _) = call(&s, method, &missing, Some(&alice), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {missing}");
    }
    let (_, listed) = call(&s, "GET", "/api/conversations", Some(&bob), None).await;
    assert_eq!(listed["results"], json!([]));
    // Nothing Bob asked for happened.
    let events = t.db.events_after(&id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        t.db.conversation(&id).await.unwrap().title,
        "Fix the parser"
    );

    // Alice drives it.
    let (status, renamed) = call(
        &s,
        "PATCH",
        &format!("/api/conversations/{id}"),
        Some(&alice),
        Some(r#"{"title":"Parser panic"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["title"], "Parser panic");
    let (status, sent) = call(
        &s,
        "POST",
        &format!("/api/conversations/{id}/message"),
        Some(&alice),
        Some(r#"{"message":"Also add a test."}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["event_id"], 2);
    let (status, _) = call(
        &s,
        "POST",
        &format!("/api/conversations/{id}/stop"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, trajectory) = call(
        &s,
        "GET",
        &format!("/api/conversations/{id}/trajectory"),
        Some(&alice),
        None,
    )
    .await;
    let kinds: Vec<&str> = trajectory["trajectory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "message", "change_agent_state"]);
    assert_eq!(
        trajectory["trajectory"][1]["args"]["content"],
        "Also add a test."
    );
    assert_eq!(trajectory["trajectory"][1]["source"], "user");

    // The administrator sees every conversation.
    let bobs = create(&s, &bob, json!({"initial_user_msg": "Bob's task"})).await;
    let (_, all) = call(&s, "GET", "/api/conversations", Some(ADMIN_KEY), None).await;
    let ids: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [bobs.as_str(), id.as_str()]);
    let (status, _) = call(
        &s,
        "GET",
        &format!("/api/conversations/{id}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A conversation with no message yet is at rest, and can be deleted.
    let empty = create(&s, &alice, json!({})).await;
    let (_, shown) = call(
        &s,
        "GET",
        &format!("/api/conversations/{empty}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(shown["title"], "New conversation");
    let (status, _) = call(
        &s,
        "DELETE",
        &format!("/api/conversations/{empty}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &s,
        "GET",
        &format!("/api/conversations/{empty}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Unauthenticated: 401.
    let (status, _) = call(&s, "GET", "/api/conversations", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&s, "GET", "/api/conversations", Some("oh_not-a-key"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn listed_in_pages(t: &TestDb) {
    let (service, s) = state_with_hosts(t).await;
    let alice = user_with_accounts(t, &service, "alice", 101).await;
    let mut made = Vec::new();
    for n in 0..5 {
        made.push(create(&s, &alice, json!({"initial_user_msg": format!("task {n}")})).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut uri = "/api/conversations?limit=2".to_string();
    loop {
        let (status, page) = call(&s, "GET", &uri, Some(&alice), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let results = page["results"].as_array().unwrap();
        assert!(results.len() <= 2);
        seen.extend(
            results
                .iter()
                .map(|c| c["conversation_id"].as_str().unwrap().to_string()),
        );
        match page["next_page_id"].as_str() {
            Some(next) => uri = format!("/api/conversations?limit=2&page_id={next}"),
            None => break,
        }
    }
    assert_eq!(seen, made, "every conversation once, newest first");

    let (_, web) = call(
        &s,
        "GET",
        "/api/conversations?trigger=web&status=loading",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(web["results"].as_array().unwrap().len(), 5);
    let (_, github) = call(
        &s,
        "GET",
        "/api/conversations?trigger=github",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(github["results"], json!([]));
    let (_, stopped) = call(
        &s,
        "GET",
        "/api/conversations?status=stopped",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(stopped["results"], json!([]));
    create(
        &s,
        &alice,
        json!({"initial_user_msg": "in a repo", "repository": "acme/api"}),
    )
    .await;
    let (_, repo) = call(
        &s,
        "GET",
        "/api/conversations?repository=acme/api",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(repo["results"].as_array().unwrap().len(), 1);
}

async fn events_by_range(t: &TestDb) {
    let s = state(t);
    let alice = user(t, "alice").await;
    let id = create(&s, &alice, json!({"initial_user_msg": "one"})).await;
    for n in 2..=30 {
        let kind = if n % 3 == 0 { "run" } else { "message" };
        let source = if n % 3 == 0 { "agent" } else { "user" };
        t.db.append_event(
            &id,
            &NewEvent {
                source,
                kind,
                payload: &json!({"action": kind, "args": {"n": n}}),
            },
        )
        .await
        .unwrap();
    }
    let ids = |page: &Value| -> Vec<i64> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let get = |query: &str| {
        let uri = format!("/api/conversations/{id}/events{query}");
        let s = s.clone();
        let alice = alice.clone();
        async move {
            let (status, page) = call(&s, "GET", &uri, Some(&alice), None).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {page}");
            page
        }
    };
    let first = get("").await;
    assert_eq!(ids(&first), (1..=20).collect::<Vec<_>>());
    assert_eq!(first["has_more"], true);
    let rest = get("?start_id=21").await;
    assert_eq!(ids(&rest), (21..=30).collect::<Vec<_>>());
    assert_eq!(rest["has_more"], false);
    let window = get("?start_id=5&end_id=8").await;
    assert_eq!(ids(&window), [5, 6, 7, 8]);
    let newest = get("?reverse=true&limit=3").await;
    assert_eq!(ids(&newest), [30, 29, 28]);
    assert_eq!(newest["has_more"], true);
    let runs = get("?event_type=run&limit=100").await;
    assert_eq!(ids(&runs), (1..=10).map(|n| n * 3).collect::<Vec<_>>());
    assert!(
        runs["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "run" && e["source"] == "agent")
    );
    let user_messages = get("?source=user&event_type=message&limit=100").await;
    assert_eq!(ids(&user_messages).len(), 20);
    let one = get("?start_id=3&end_id=3").await;
    assert_eq!(one["events"][0]["args"]["n"], 3);
    assert!(
        one["events"][0]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

async fn bad_input_named(t: &TestDb) {
    let s = state(t);
    let alice = user(t, "alice").await;
    let id = create(&s, &alice, json!({"initial_user_msg": "one"})).await;
    for (method, uri, body, named) in [
        (
            "POST",
            "/api/conversations".to_string(),
            r#"{"initial_user_msg": 5}"#,
            "`initial_user_msg` must be a string",
        ),
        (
            "POST",
            "/api/conversations".to_string(),
            r#"{"initial_msg": "x"}"#,
            "unknown field `initial_msg`",
        ),
        (
            "POST",
            "/api/conversations".to_string(),
            r#"{"repository": "not a repo"}"#,
            "`repository` must be",
        ),
        (
            "POST",
            "/api/conversations".to_string(),
            r#"{"initial_user_msg": "x""#,
            "EOF",
        ),
        (
            "POST",
            "/api/conversations".to_string(),
            r#"[1]"#,
            "must be a JSON object",
        ),
        (
            "GET",
            "/api/conversations?limit=0".to_string(),
            "",
            "`limit` must be a whole number from 1 to 100",
        ),
        (
            "GET",
            "/api/conversations?limit=ten".to_string(),
            "",
            "`limit`",
        ),
        (
            "GET",
            "/api/conversations?status=sleeping".to_string(),
            "",
            "`status` must be one of",
        ),
        (
            "GET",
            "/api/conversations?trigger=email".to_string(),
            "",
            "`trigger` must be one of",
        ),
        (
            "GET",
            "/api/conversations?page_id=zzz".to_string(),
            "",
            "`page_id`",
        ),
        (
            "GET",
            "/api/conversations?colour=red".to_string(),
            "",
            "unknown query parameter `colour`",
        ),
        (
            "GET",
            format!("/api/conversations/{id}/events?limit=101"),
            "",
            "`limit`",
        ),
        (
            "GET",
            format!("/api/conversations/{id}/events?reverse=maybe"),
            "",
            "`reverse` must be true or false",
        ),
        (
            "GET",
            format!("/api/conversations/{id}/events?event_type=drop%20table"),
            "",
            "`event_type`",
        ),
        (
            "GET",
            format!("/api/conversations/{id}/events?start_id=-1"),
            "",
            "`start_id`",
        ),
        (
            "PATCH",
            format!("/api/conversations/{id}"),
            r#"{"title": ""}"#,
            "`title` is required",
        ),
        (
            "PATCH",
            format!("/api/conversations/{id}"),
            r#"{"title": 7}"#,
            "`title` must be a string",
        ),
        (
            "POST",
            format!("/api/conversations/{id}/message"),
            r#"{}"#,
            "`message` is required",
        ),
        (
            "POST",
            "/api/keys".to_string(),
            r#"{"name": "k", "expires_in_days": 0}"#,
            "`expires_in_days`",
        ),
    ] {
        let body = (!body.is_empty()).then_some(body);
        let (status, answer) = call(&s, method, &uri, Some(&alice), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(named), "{method} {uri}: {error}");
        assert!(!error.to_lowercase().contains("sql"), "{error}");
    }
    // Nothing was half-written.
    assert_eq!(t.db.events_after(&id, 0, 100).await.unwrap().len(), 1);
    let (_, listed) = call(&s, "GET", "/api/conversations", Some(&alice), None).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 1);
    assert_eq!(t.db.conversation(&id).await.unwrap().title, "one");
}

async fn api_keys(t: &TestDb) {
    let s = state(t);
    let alice = user(t, "alice").await;
    let (status, made) = call(
        &s,
        "POST",
        "/api/keys",
        Some(&alice),
        Some(r#"{"name": "ci", "expires_in_days": 30}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("oh_") && key.len() > 60);
    assert!(key.starts_with(made["prefix"].as_str().unwrap()));
    assert!(made["expires_at"].is_string());
    let (status, listed) = call(&s, "GET", "/api/keys", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    let keys = listed.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!listed.to_string().contains(&key), "a key is shown once");
    let ci = keys.iter().find(|k| k["name"] == "ci").unwrap();
    assert!(ci["last_used_at"].is_string(), "{ci}");
    // Another user cannot delete it.
    let bob = user(t, "bob").await;
    let uri = format!("/api/keys/{}", made["id"].as_str().unwrap());
    let (status, _) = call(&s, "DELETE", &uri, Some(&bob), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&s, "DELETE", &uri, Some(&alice), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&s, "GET", "/api/keys", Some(&key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An expired key is refused.
    let carol = t.db.create_user("carol", None, false).await.unwrap();
    let expired = "oh_expiredkeyexpiredkeyexpiredkeyexpiredkey";
    t.db.create_api_key(
        &carol.id,
        "old",
        "oh_expired",
        &openhands::crypto::key_hash(expired),
        Some(openhands::storage::now_millis() - 1),
    )
    .await
    .unwrap();
    let (status, _) = call(&s, "GET", "/api/keys", Some(expired), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Keys are stored hashed.
    assert!(
        !format!("{:?}", t.db.api_keys_of(&carol.id).await.unwrap()).contains("expiredkeyexpired")
    );
}

/// A web process on loopback: its router, its own event bus and NOTIFY listener.
async fn node(t: &TestDb) -> Service {
    Service::builder(&t.db)
        .admin_key(ADMIN_KEY)
        .live()
        .serve()
        .start()
        .await
}

async fn connect(node: &Service, path: &str, key: Option<&str>) -> Socket {
    socket::connect(&format!("ws://{}{path}", node.address()), key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_replays_then_streams_live_events_and_takes_messages_and_state_changes() {
    let t = TestDb::new(Kind::Sqlite).await;
    let web = node(&t).await;
    let alice = user(&t, "alice").await;
    let bob = user(&t, "bob").await;
    let id = create(web.state(), &alice, json!({"initial_user_msg": "first"})).await;
    let path = format!("/sockets/events/{id}");

    // Header authentication; the stored event, then a live one.
    let mut socket = connect(&web, &path, Some(&alice)).await;
    let replayed = next_json(&mut socket).await;
    assert_eq!(
        (
            replayed["id"].as_i64(),
            replayed["args"]["content"].as_str()
        ),
        (Some(1), Some("first"))
    );
    let (status, _) = call(
        web.state(),
        "POST",
        &format!("/api/conversations/{id}/message"),
        Some(&alice),
        Some(r#"{"message":"second"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let live = next_json(&mut socket).await;
    assert_eq!(
        (live["id"].as_i64(), live["args"]["content"].as_str()),
        (Some(2), Some("second"))
    );

    // Frames from the client: a message, a bad frame (answered, the socket stays), a stop.
    socket
        .send(Message::Text(
            r#"{"type":"message","content":"third"}"#.into(),
        ))
        .await
        .unwrap();
    let third = next_json(&mut socket).await;
    assert_eq!(
        (third["id"].as_i64(), third["source"].as_str()),
        (Some(3), Some("user"))
    );
    socket.send(Message::Text("not json".into())).await.unwrap();
    let error = next_json(&mut socket).await;
    assert_eq!(error["type"], "error");
    assert!(
        error["error"].as_str().unwrap().contains("not JSON"),
        "{error}"
    );
    socket
        .send(Message::Text(
            r#"{"type":"state","state":"sideways"}"#.into(),
        ))
        .await
        .unwrap();
    let error = next_json(&mut socket).await;
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("stop, pause, resume"),
        "{error}"
    );
    socket
        .send(Message::Text(r#"{"type":"state","state":"stop"}"#.into()))
        .await
        .unwrap();
    let stop = next_json(&mut socket).await;
    assert_eq!(
        (stop["id"].as_i64(), stop["kind"].as_str()),
        (Some(4), Some("change_agent_state"))
    );

    // First-frame authentication, resuming after event 2.
    let mut resumed = connect(&web, &format!("{path}?after=2"), None).await;
    resumed
        .send(Message::Text(
            json!({"type": "auth", "session_api_key": alice})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut resumed).await["id"], 3);
    assert_eq!(next_json(&mut resumed).await["id"], 4);

    // Bad authentication: 4001; another user's or an unknown conversation: 4004.
    let mut bad = connect(&web, &path, None).await;
    bad.send(Message::Text(
        r#"{"type":"auth","session_api_key":"oh_wrong"}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(close_code(&mut bad).await, CloseCode::Library(4001));
    let mut not_json = connect(&web, &path, None).await;
    not_json.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(close_code(&mut not_json).await, CloseCode::Library(4001));
    let mut other = connect(&web, &path, Some(&bob)).await;
    assert_eq!(close_code(&mut other).await, CloseCode::Library(4004));
    let mut unknown = connect(&web, "/sockets/events/doesnotexist", Some(&alice)).await;
    assert_eq!(close_code(&mut unknown).await, CloseCode::Library(4004));
    // Bob's frames changed nothing.
    assert_eq!(t.db.events_after(&id, 0, 100).await.unwrap().len(), 4);
    drop(web);
    t.drop_database().await;
}

/// Two web processes on one PostgreSQL: events written anywhere (here straight into the log,
/// as a worker on a third node would) reach a subscriber of either, in order, with no gap or
/// duplicate at the boundary between replay and live, although it joins mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_on_one_node_stream_to_subscribers_on_another_without_gaps() {
    events_stream_across_nodes(Kind::Postgres).await;
}

/// The same with two processes on one SQLite file (a `web` and a `worker`): the web process
/// polls for what the other writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_events_another_process_writes_stream_too() {
    events_stream_across_nodes(Kind::Sqlite).await;
}

async fn events_stream_across_nodes(kind: Kind) {
    let t = TestDb::new(kind).await;
    let first = node(&t).await;
    let second = node(&t).await;
    let alice = user(&t, "alice").await;
    let id = create(first.state(), &alice, json!({"initial_user_msg": "start"})).await;
    const EVENTS: i64 = 300;
    let writer = {
        let db = t.db.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for n in 2..=EVENTS {
                db.append_event(
                    &id,
                    &NewEvent {
                        source: "agent",
                        kind: "think",
                        payload: &json!({"action": "think", "args": {"n": n}}),
                    },
                )
                .await
                .unwrap();
                if n % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    // Join once the writer is under way.
    support::wait_for("the writer to start", Duration::from_secs(10), || async {
        (t.db.conversation(&id).await.unwrap().last_event_id > 40).then_some(())
    })
    .await;
    let path = format!("/sockets/events/{id}");
    let mut on_second = connect(&second, &path, Some(&alice)).await;
    let mut on_first = connect(&first, &path, Some(&alice)).await;
    for socket in [&mut on_second, &mut on_first] {
        let mut ids = Vec::new();
        while ids.len() < EVENTS as usize {
            ids.push(next_json(socket).await["id"].as_i64().unwrap());
        }
        assert_eq!(ids, (1..=EVENTS).collect::<Vec<_>>());
    }
    writer.await.unwrap();
    // A live event after the burst, written through the other node's API.
    let (status, _) = call(
        first.state(),
        "POST",
        &format!("/api/conversations/{id}/message"),
        Some(&alice),
        Some(r#"{"message":"after"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(next_json(&mut on_second).await["id"], EVENTS + 1);
    drop((first, second));
    t.drop_database().await;
}

/// Settings and secrets through the API, then a conversation started in the browser's way:
/// the run uses the user's own model and key (the server has none), the user's secret is in
/// the sandbox's environment, and neither the key nor the secret is ever returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_llm_and_secrets_drive_a_web_conversation() {
    use openhands::crypto::Keyring;
    use openhands::queue::WorkerSettings;
    use support::fake_llm::{FakeLlm, Turn};

    let t = TestDb::new(Kind::Postgres).await;
    let secret: Secret = "web-api-test-secret-key-0123456789abcdef".parse().unwrap();
    let keyring = Keyring::new(Some(&secret));
    // The web role and workers with no server LLM at all.
    let service = Service::builder(&t.db)
        .admin_key(ADMIN_KEY)
        .state({
            let keyring = keyring.clone();
            move |state| state.with_keyring(keyring)
        })
        .web()
        .agent_without_llm()
        .keyring(keyring)
        .worker_settings(WorkerSettings {
            poll_interval: Duration::from_millis(20),
            ..WorkerSettings::default()
        })
        .start()
        .await;
    let s = service.state().clone();
    let alice = user(&t, "alice").await;
    let fake = FakeLlm::start(vec![
        Turn::call(
            "execute_bash",
            json!({"command": "echo \"token=$DEPLOY_TOKEN\""}),
        ),
        Turn::call("finish", json!({"message": "Printed it."})),
    ])
    .await;

    // Without a key on the server, a key cannot be stored.
    let ephemeral = state(&t);
    let (status, answer) = call(
        &ephemeral,
        "POST",
        "/api/settings",
        Some(&alice),
        Some(r#"{"llm_api_key": "sk-user"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("OPENHANDS_SECRET_KEY")
    );

    let settings = json!({
        "llm_model": "openai/gpt-user",
        "llm_base_url": fake.base_url(),
        "llm_api_key": "sk-user-own-key",
        "max_iterations": 20,
        "max_budget_per_task": 2.5,
    });
    let (status, saved) = call(
        &s,
        "POST",
        "/api/settings",
        Some(&alice),
        Some(&settings.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["llm_api_key_set"], true);
    assert_eq!(saved["max_iterations"], 20);
    assert!(!saved.to_string().contains("sk-user-own-key"));
    let (_, shown) = call(&s, "GET", "/api/settings", Some(&alice), None).await;
    assert_eq!(shown, saved);
    // Bad settings are named and change nothing.
    for (body, named) in [
        (
            r#"{"llm_model": "mystery/model", "llm_base_url": null}"#,
            "`llm_model`",
        ),
        (r#"{"llm_base_url": "ftp://x"}"#, "`llm_base_url`"),
        (r#"{"max_iterations": 0}"#, "`max_iterations`"),
        (
            r#"{"max_budget_per_task": "lots"}"#,
            "`max_budget_per_task`",
        ),
    ] {
        let (status, answer) = call(&s, "POST", "/api/settings", Some(&alice), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(named),
            "{body}: {answer}"
        );
    }
    // Fields of OpenHands' own settings that this service does not keep are ignored, and
    // named in the answer.
    let (status, answer) = call(
        &s,
        "POST",
        "/api/settings",
        Some(&alice),
        Some(r#"{"theme": "dark", "max_iterations": 20}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ignored_fields"], json!(["theme"]));
    assert_eq!(
        call(&s, "GET", "/api/settings", Some(&alice), None).await.1,
        saved
    );

    let (status, made) = call(
        &s,
        "POST",
        "/api/secrets",
        Some(&alice),
        Some(r#"{"name": "DEPLOY_TOKEN", "value": "it's-a-secret", "description": "deploys"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, _) = call(
        &s,
        "POST",
        "/api/secrets",
        Some(&alice),
        Some(r#"{"name": "DEPLOY_TOKEN", "value": "again"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for body in [
        r#"{"name": "1BAD", "value": "x"}"#,
        r#"{"name": "PATH", "value": "x"}"#,
        r#"{"name": "OK"}"#,
    ] {
        let (status, answer) = call(&s, "POST", "/api/secrets", Some(&alice), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, _) = call(
        &s,
        "PUT",
        "/api/secrets/OTHER",
        Some(&alice),
        Some(r#"{"value": "x"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = call(&s, "GET", "/api/secrets", Some(&alice), None).await;
    assert_eq!(listed["secrets"][0]["name"], "DEPLOY_TOKEN");
    assert_eq!(listed["secrets"][0]["description"], "deploys");
    assert!(!listed.to_string().contains("it's-a-secret"));
    let bob = user(&t, "bob").await;
    let (_, bobs) = call(&s, "GET", "/api/secrets", Some(&bob), None).await;
    assert_eq!(bobs["secrets"], json!([]));
    let (status, _) = call(&s, "DELETE", "/api/secrets/DEPLOY_TOKEN", Some(&bob), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, models) = call(&s, "GET", "/api/options/models", Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        models
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().starts_with("anthropic/"))
    );
    // Stored sealed.
    let stored = format!(
        "{:?}{:?}",
        t.db.user_llm(&t.db.user_by_login("alice").await.unwrap().unwrap().id)
            .await
            .unwrap(),
        t.db.sealed_secrets_of(&t.db.user_by_login("alice").await.unwrap().unwrap().id)
            .await
            .unwrap()
    );
    assert!(
        !stored.contains("sk-user-own-key") && !stored.contains("it's-a-secret"),
        "{stored}"
    );

    let id = create(
        &s,
        &alice,
        json!({"initial_user_msg": "Print the deploy token."}),
    )
    .await;
    let finished = support::wait_for(
        "the conversation to finish",
        Duration::from_secs(120),
        || async {
            let c = t.db.conversation(&id).await.unwrap();
            ["finished", "error"]
                .contains(&c.status.as_str())
                .then_some(c)
        },
    )
    .await;
    let (_, trajectory) = call(
        &s,
        "GET",
        &format!("/api/conversations/{id}/trajectory"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(finished.status, "finished", "{trajectory:#}");
    let ran = trajectory["trajectory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["observation"] == "run")
        .unwrap();
    // The secret was in the sandbox's environment, and its value is hidden from the log (and
    // so from the model).
    assert!(
        ran["content"]
            .as_str()
            .unwrap()
            .contains("token=<secret DEPLOY_TOKEN hidden>"),
        "{ran}"
    );
    assert!(!trajectory.to_string().contains("it's-a-secret"));
    let requests = fake.requests();
    assert_eq!(requests[0].model, "gpt-user");
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer sk-user-own-key")
    );
    let (_, shown) = call(
        &s,
        "GET",
        &format!("/api/conversations/{id}"),
        Some(&alice),
        None,
    )
    .await;
    // The title the model wrote, then two steps.
    assert_eq!(shown["stats"]["llm_calls"], 3);
    assert_eq!(fake.title_requests(), 1);
    drop(service);
    t.drop_database().await;
}

/// Workers check their sandbox engine and /server_info reports what they saw: `unknown`
/// before any check, `down` with the reason when no worker can start sandboxes (a Runtime API
/// that does not answer), `up` once one can (the real Docker engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_says_whether_workers_can_start_sandboxes() {
    use openhands::agent::AgentRuntime;
    use openhands::agent::settings::AgentSettings;
    use openhands::sandbox::{BackendKind, SandboxSettings};

    let t = TestDb::new(Kind::Sqlite).await;
    let state = state(&t);
    let engine = || async {
        let (status, info) = call(&state, "GET", "/server_info", None, None).await;
        assert_eq!(status, StatusCode::OK);
        info["sandbox_engine"].clone()
    };
    assert_eq!(engine().await["state"], "unknown");

    let stop = CancellationToken::new();
    let watch = |settings: SandboxSettings, instance: &str| {
        let runtime =
            AgentRuntime::new(AgentSettings::default(), None, settings, stop.clone()).unwrap();
        tokio::spawn(
            std::sync::Arc::new(runtime).watch_sandbox_engine(t.db.clone(), instance.to_string()),
        );
    };
    // Nothing listens on port 9 of loopback.
    watch(
        SandboxSettings {
            sandbox_backend: BackendKind::Remote,
            runtime_api_url: Some("http://127.0.0.1:9".into()),
            runtime_api_key: Some("runtime-key".parse().unwrap()),
            ..SandboxSettings::default()
        },
        "worker-without-engine",
    );
    let down = support::wait_for("a down check", Duration::from_secs(30), || async {
        let engine = engine().await;
        (engine["state"] == "down").then_some(engine)
    })
    .await;
    let reason = down["reason"].as_str().unwrap();
    assert!(reason.contains("127.0.0.1:9"), "{down}");
    assert!(!reason.contains("runtime-key"), "{down}");

    watch(support::sandbox::settings(), "worker-with-docker");
    support::wait_for("an up check", Duration::from_secs(30), || async {
        (engine().await["state"] == "up").then_some(())
    })
    .await;
    stop.cancel();
}

/// Whatever is wrong with a request, the answer is a JSON error saying what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_and_says_what_is_wrong() {
    let t = TestDb::new(Kind::Sqlite).await;
    let (service, state) = state_with_hosts(&t).await;
    let mona = user_with_accounts(&t, &service, "mona", 202).await;
    let cases = [
        (
            "GET",
            "/api/nothing-here",
            StatusCode::NOT_FOUND,
            "/api/nothing-here",
        ),
        ("PUT", "/alive", StatusCode::METHOD_NOT_ALLOWED, "PUT"),
        (
            "DELETE",
            "/api/conversations",
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE",
        ),
        (
            "POST",
            "/api/deliveries/abc/redeliver",
            StatusCode::BAD_REQUEST,
            "must be a number",
        ),
        (
            "GET",
            "/api/deliveries/abc",
            StatusCode::BAD_REQUEST,
            "must be a number",
        ),
        (
            "GET",
            "/sockets/events/some-id",
            StatusCode::BAD_REQUEST,
            "WebSocket",
        ),
        ("GET", "/ws", StatusCode::BAD_REQUEST, "WebSocket"),
    ];
    for (method, uri, expected, says) in cases {
        let (status, body) = call(&state, method, uri, Some(ADMIN_KEY), None).await;
        assert_eq!(status, expected, "{method} {uri}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{method} {uri}: {body}");
    }
    for (body, says) in [
        (
            r#"{"repository": "group/sub/project", "git_provider": "github"}"#,
            "`owner/name`",
        ),
        (
            r#"{"repository": "acme/api", "git_provider": "bitbucket"}"#,
            "`git_provider`",
        ),
        (r#"{"repository": "acme/../api"}"#, "`repository`"),
    ] {
        let (status, answer) = call(
            &state,
            "POST",
            "/api/conversations",
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    // A repository the server does not reach, or one the caller may not push to, is refused
    // before anything is written, saying why.
    for (body, expected, says) in [
        (
            r#"{"repository": "acme/unknown"}"#,
            StatusCode::BAD_REQUEST,
            "not a repository this server reaches",
        ),
        (
            r#"{"repository": "acme/api"}"#,
            StatusCode::FORBIDDEN,
            "no GitHub account linked",
        ),
    ] {
        let (status, answer) = call(
            &state,
            "POST",
            "/api/conversations",
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    // A path of nested groups can only be GitLab's.
    let (status, answer) = call(
        &state,
        "POST",
        "/api/conversations",
        Some(&mona),
        Some(r#"{"repository": "group/sub/project"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let id = answer["conversation_id"].as_str().unwrap();
    let (_, shown) = call(
        &state,
        "GET",
        &format!("/api/conversations/{id}"),
        Some(&mona),
        None,
    )
    .await;
    assert_eq!(shown["git_provider"], "gitlab", "{shown}");
    assert_eq!(shown["owner_login"], "mona", "{shown}");
    let (_, listed) = call(&state, "GET", "/api/conversations", Some(ADMIN_KEY), None).await;
    assert_eq!(
        listed["results"].as_array().unwrap().len(),
        1,
        "nothing written for the refused ones: {listed}"
    );
}

/// One GET through the router: status, `cache-control`, `content-type` and body text.
async fn get_raw(state: &AppState, uri: &str) -> (StatusCode, String, String, String) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (cache, kind) = (header("cache-control"), header("content-type"));
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        cache,
        kind,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A dashboard asset is cached for a year only when it is found: a missing one is the JSON
/// 404 of the rest of the API, and caches must not keep it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_asset_is_not_cached_as_missing() {
    let t = TestDb::new(Kind::Sqlite).await;
    let state = state(&t);
    for uri in ["/assets/0/0", "/assets/0/app.jsx"] {
        let (status, cache, kind, body) = get_raw(&state, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert!(
            !cache.contains("immutable") && !cache.contains("max-age"),
            "{uri}: {cache}"
        );
        assert_eq!(kind, "application/json", "{uri}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"], "asset not found", "{uri}");
    }
    // A found one, of this build's version, still is cached.
    let (_, _, _, page) = get_raw(&state, "/").await;
    let script = page
        .split('"')
        .find(|part| part.starts_with("/assets/") && part.ends_with("/app.js"))
        .unwrap()
        .to_string();
    let (status, cache, _, _) = get_raw(&state, &script).await;
    assert_eq!(status, StatusCode::OK, "{script}");
    assert_eq!(cache, "public, max-age=31536000, immutable");
}

/// The admin API refuses fields and query parameters it does not know, as the rest of the API
/// does, and writes nothing for a refused request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_unknown_fields_and_parameters() {
    let t = TestDb::new(Kind::Sqlite).await;
    let s = state(&t);
    let key = Some(ADMIN_KEY);
    for (method, uri, body, named) in [
        (
            "POST",
            "/api/users",
            Some(r#"{"login": "x", "role": "root"}"#),
            "unknown field `role`",
        ),
        (
            "GET",
            "/api/user-links?bogus=1",
            None,
            "unknown query parameter `bogus`",
        ),
        (
            "POST",
            "/api/user-links",
            Some(
                r#"{"provider": "slack", "workspace": "T1", "external_id": "U1", "user": "admin", "note": "x"}"#,
            ),
            "unknown field `note`",
        ),
        (
            "POST",
            "/api/user-links",
            Some(
                r#"{"provider": "myspace", "workspace": "T1", "external_id": "U1", "user": "admin"}"#,
            ),
            "`provider` must be one of github, gitlab, slack, jira, jira-dc, linear, oidc",
        ),
        (
            "DELETE",
            "/api/user-links/slack/T1/U1?force=true",
            None,
            "unknown query parameter `force`",
        ),
        (
            "PUT",
            "/api/slack-channels/C0123",
            Some(r#"{"repository": "acme/api", "branch": "main"}"#),
            "unknown field `branch`",
        ),
        (
            "GET",
            "/api/slack-channels?all=1",
            None,
            "unknown query parameter `all`",
        ),
        (
            "GET",
            "/api/deliveries?bogus=1",
            None,
            "unknown query parameter `bogus`",
        ),
        (
            "GET",
            "/api/deliveries/1?verbose=1",
            None,
            "unknown query parameter `verbose`",
        ),
        (
            "POST",
            "/api/deliveries/1/redeliver?now=1",
            None,
            "unknown query parameter `now`",
        ),
        (
            "GET",
            "/api/integrations?x=1",
            None,
            "unknown query parameter `x`",
        ),
        (
            "POST",
            "/api/users",
            Some(r#"{"login": "x", "is_admin": "yes"}"#),
            "`is_admin` must be true or false",
        ),
    ] {
        let (status, answer) = call(&s, method, uri, key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(named), "{method} {uri}: {error}");
    }
    assert!(t.db.user_by_login("x").await.unwrap().is_none());
    assert!(t.db.user_links(None).await.unwrap().is_empty());
    assert!(t.db.channel_repositories().await.unwrap().is_empty());
    // What they do know is still taken.
    let (status, answer) = call(
        &s,
        "POST",
        "/api/users",
        key,
        Some(r#"{"login": "x", "email": null, "is_admin": false}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = call(&s, "GET", "/api/user-links?user=x", key, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Sets a conversation's state as a run would leave it.
async fn set_state(t: &TestDb, id: &str, status: &str) {
    let mut tx = t.db.begin().await.unwrap();
    tx.set_conversation_status(id, status).await.unwrap();
    tx.commit().await.unwrap();
}

/// Stop, pause and resume are taken only where the state allows them, the same way over
/// REST and over the WebSocket; a refused one says why and records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_requests_follow_the_state_machine_over_rest_and_the_socket() {
    let t = TestDb::new(Kind::Sqlite).await;
    let web = node(&t).await;
    let alice = user(&t, "alice").await;
    let id = create(web.state(), &alice, json!({})).await;
    // (state, request, taken, what a refusal says)
    let cases = [
        ("finished", "stop", false, "cannot be stopped"),
        ("finished", "start", false, "send a message"),
        ("error", "start", false, "send a message"),
        ("rejected", "stop", false, "cannot be stopped"),
        ("stopped", "stop", false, "already stopped"),
        ("running", "start", false, "already running"),
        ("running", "stop", true, ""),
        ("awaiting_user_input", "start", true, ""),
        ("awaiting_user_input", "stop", true, ""),
        ("paused", "start", true, ""),
        ("paused", "stop", true, ""),
        ("stopped", "start", true, ""),
    ];
    for (status, request, taken, says) in cases {
        set_state(&t, &id, status).await;
        let before = t.db.events_after(&id, 0, 1000).await.unwrap().len();
        let (code, answer) = call(
            web.state(),
            "POST",
            &format!("/api/conversations/{id}/{request}"),
            Some(&alice),
            None,
        )
        .await;
        let after = t.db.events_after(&id, 0, 1000).await.unwrap().len();
        if taken {
            assert_eq!(code, StatusCode::ACCEPTED, "{status} {request}: {answer}");
            assert!(after > before, "{status} {request} was recorded");
        } else {
            assert_eq!(code, StatusCode::CONFLICT, "{status} {request}: {answer}");
            let error = answer["error"].as_str().unwrap();
            assert!(error.contains(says), "{status} {request}: {error}");
            assert_eq!(after, before, "{status} {request} recorded nothing");
        }
    }

    // The socket answers a refused request with an error frame and stays open.
    set_state(&t, &id, "finished").await;
    let before = t.db.events_after(&id, 0, 1000).await.unwrap().len();
    let mut socket = connect(
        &web,
        &format!("/sockets/events/{id}?after={before}"),
        Some(&alice),
    )
    .await;
    for (frame, says) in [
        (r#"{"type":"state","state":"pause"}"#, "cannot be paused"),
        (r#"{"type":"state","state":"resume"}"#, "send a message"),
        (
            r#"{"action":"change_agent_state","args":{"agent_state":"stopped"}}"#,
            "cannot be stopped",
        ),
    ] {
        socket.send(Message::Text(frame.into())).await.unwrap();
        let error = next_json(&mut socket).await;
        assert_eq!(error["type"], "error", "{frame}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains(says),
            "{frame}: {error}"
        );
    }
    assert_eq!(t.db.events_after(&id, 0, 1000).await.unwrap().len(), before);
    set_state(&t, &id, "running").await;
    socket
        .send(Message::Text(r#"{"type":"state","state":"pause"}"#.into()))
        .await
        .unwrap();
    let taken = next_json(&mut socket).await;
    assert_eq!(taken["kind"], "change_agent_state", "{taken}");
    assert_eq!(taken["args"]["agent_state"], "paused", "{taken}");

    // The user's own command over the socket is recorded as their action, for a worker.
    socket
        .send(Message::Text(
            r#"{"action":"run","args":{"command":"ls -la"}}"#.into(),
        ))
        .await
        .unwrap();
    let command = next_json(&mut socket).await;
    assert_eq!(
        (
            command["action"].as_str(),
            command["source"].as_str(),
            command["args"]["command"].as_str()
        ),
        (Some("run"), Some("user"), Some("ls -la")),
        "{command}"
    );
}

/// A retried create with the same Idempotency-Key answers the first conversation; another
/// user's identical key is theirs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_with_the_same_idempotency_key_creates_one_conversation() {
    let t = TestDb::new(Kind::Postgres).await;
    let s = state(&t);
    let alice = user(&t, "alice").await;
    let bob = user(&t, "bob").await;
    let send = |key: String, idempotency: &'static str| {
        let s = s.clone();
        async move {
            let request = Request::builder()
                .method("POST")
                .uri("/api/conversations")
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .header("idempotency-key", idempotency)
                .body(Body::from(r#"{"initial_user_msg":"once"}"#))
                .unwrap();
            let response = router(s).oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            (
                status,
                body["conversation_id"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    // Two at once, as a double click sends them.
    let (first, second) = tokio::join!(
        send(alice.clone(), "click-1"),
        send(alice.clone(), "click-1")
    );
    assert_eq!(first.1, second.1, "one conversation for both");
    let mut codes = [first.0, second.0];
    codes.sort();
    assert_eq!(codes, [StatusCode::OK, StatusCode::CREATED]);
    let again = send(alice.clone(), "click-1").await;
    assert_eq!((again.0, &again.1), (StatusCode::OK, &first.1));
    let other = send(bob.clone(), "click-1").await;
    assert_eq!(other.0, StatusCode::CREATED);
    assert_ne!(other.1, first.1);
    let (_, listed) = call(&s, "GET", "/api/conversations", Some(&alice), None).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 1, "{listed}");
    let events = t.db.events_after(&first.1, 0, 100).await.unwrap();
    assert_eq!(events.len(), 1, "one first message: {events:#?}");
    let jobs: i64 =
        t.db.job_status_counts()
            .await
            .unwrap()
            .iter()
            .filter(|row| row.queue.contains("run"))
            .map(|row| row.count)
            .sum();
    assert_eq!(jobs, 2, "one run for alice's conversation, one for bob's");
    // A key that is not a header value is named.
    let request = Request::builder()
        .method("POST")
        .uri("/api/conversations")
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "x".repeat(300))
        .body(Body::from("{}"))
        .unwrap();
    let response = router(s.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Images attached to a message over REST reach a model that takes them, in both wire formats;
/// an address that cannot be an image is refused with its reason, and nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_attached_over_rest_reach_the_model() {
    use support::fake_llm::Turn;
    const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    const SHOT: &str = "https://example.com/screenshots/failing-build.png";
    for model in ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"] {
        let t = TestDb::new(Kind::Sqlite).await;
        let service = Service::builder(&t.db)
            .web()
            .agent(vec![Turn::call("finish", json!({"message": "Seen."}))])
            .model(model)
            .start()
            .await;
        let s = service.state().clone();
        let alice = user(&t, "alice").await;

        let (status, answer) = call(
            &s,
            "POST",
            "/api/conversations",
            Some(&alice),
            Some(&json!({"initial_user_msg": "Why does it fail?", "image_urls": ["file:///etc/passwd"]}).to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("image_urls"),
            "{answer}"
        );

        let id = create(
            &s,
            &alice,
            json!({"initial_user_msg": "Why does the build fail?", "image_urls": [SHOT, PNG]}),
        )
        .await;
        let fake = service.llm().clone();
        let request = support::wait_for("the model to be asked", Duration::from_secs(60), || {
            let fake = fake.clone();
            async move { fake.requests().into_iter().find(|r| !r.tools.is_empty()) }
        })
        .await;
        let sent = request.body["messages"].to_string();
        assert!(sent.contains(SHOT), "{model}: {sent}");
        match model.split('/').next() {
            Some("openai") => assert!(sent.contains(PNG) && sent.contains("image_url"), "{sent}"),
            _ => assert!(
                sent.contains("\"media_type\":\"image/png\"") && sent.contains("iVBORw0KGgo"),
                "{sent}"
            ),
        }
        assert!(!sent.contains("cannot see"), "{sent}");
        // Shown back as OpenHands' message event carries them.
        let (_, events) = call(
            &s,
            "GET",
            &format!("/api/conversations/{id}/events"),
            Some(&alice),
            None,
        )
        .await;
        let message = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "message")
            .unwrap();
        assert_eq!(message["args"]["image_urls"], json!([SHOT, PNG]));
        t.drop_database().await;
    }
}

/// Confirmation mode: a risky command waits in `awaiting_user_confirmation` until the owner
/// confirms it (REST), a LOW one runs at once, one without a rating waits and is rejected over
/// the socket (answered "rejected by the user"), and the model goes on. Requests the state does
/// not allow are 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risky_actions_wait_for_the_owners_confirmation_over_rest_and_the_socket() {
    use support::fake_llm::Turn;
    let t = TestDb::new(Kind::Sqlite).await;
    let service = Service::builder(&t.db)
        .web()
        .serve()
        .agent(vec![
            Turn::call(
                "execute_bash",
                json!({"command": "printf kept > /workspace/a.txt", "security_risk": "HIGH"}),
            ),
            Turn::call(
                "execute_bash",
                json!({"command": "cat /workspace/a.txt", "security_risk": "LOW"}),
            ),
            Turn::call("execute_bash", json!({"command": "rm /workspace/a.txt"})),
            Turn::call("finish", json!({"message": "Left the file alone."})),
        ])
        .start()
        .await;
    let s = service.state().clone();
    let alice = user(&t, "alice").await;
    let (status, settings) = call(
        &s,
        "POST",
        "/api/settings",
        Some(&alice),
        Some(r#"{"confirmation_mode": true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["confirmation_mode"], true);
    let id = create(&s, &alice, json!({"initial_user_msg": "Write a.txt"})).await;
    let uri = |what: &str| format!("/api/conversations/{id}/{what}");
    let waiting_after = |calls: usize| {
        let t = &t;
        let id = id.clone();
        async move {
            support::wait_for(
                "the agent to wait for confirmation",
                Duration::from_secs(60),
                || async {
                    let conversation = t.db.conversation(&id).await.unwrap();
                    let asked = service_tool_requests(t, &id).await;
                    (conversation.status == "awaiting_user_confirmation" && asked >= calls)
                        .then_some(())
                },
            )
            .await
        }
    };
    waiting_after(1).await;
    let (_, shown) = call(
        &s,
        "GET",
        &format!("/api/conversations/{id}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(shown["confirmation_mode"], true, "{shown}");
    let events = events_of(&t, &id).await;
    let waiting = events.iter().find(|e| e["action"] == "run").unwrap();
    assert_eq!(
        waiting["args"]["confirmation_state"],
        "awaiting_confirmation"
    );
    assert!(
        !events.iter().any(|e| e["observation"] == "run"),
        "nothing ran yet"
    );
    // Resume is not the way out of a wait; confirm is.
    let (status, answer) = call(&s, "POST", &uri("start"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, _) = call(&s, "POST", &uri("confirm"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The confirmed command and the LOW one ran; the unrated one waits.
    waiting_after(3).await;
    let outputs: Vec<String> = events_of(&t, &id)
        .await
        .iter()
        .filter(|e| e["observation"] == "run")
        .map(|e| e["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs[1].contains("kept"), "{outputs:?}");

    let mut socket = connect(&service, &format!("/sockets/events/{id}"), Some(&alice)).await;
    socket
        .send(Message::Text(r#"{"type":"state","state":"reject"}"#.into()))
        .await
        .unwrap();
    support::wait_for("the run to finish", Duration::from_secs(60), || async {
        (t.db.conversation(&id).await.unwrap().status == "finished").then_some(())
    })
    .await;
    let events = events_of(&t, &id).await;
    let rejected = events
        .iter()
        .find(|e| e["observation"] == "error")
        .expect("the rejected call is answered");
    assert!(
        rejected["content"]
            .as_str()
            .unwrap()
            .contains("rejected by the user"),
        "{rejected}"
    );
    assert_eq!(
        events.iter().filter(|e| e["observation"] == "run").count(),
        2,
        "the rejected command never ran"
    );
    let (status, _) = call(&s, "POST", &uri("confirm"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    service.llm().assert_each_tool_call_answered_once();
    t.drop_database().await;
}

/// The model's tool requests recorded in a conversation so far (its actions' responses).
async fn service_tool_requests(t: &TestDb, id: &str) -> usize {
    let events = events_of(t, id).await;
    let mut responses: Vec<String> = events
        .iter()
        .filter_map(|e| {
            e["tool_call_metadata"]["response_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    responses.dedup();
    responses.len()
}

async fn events_of(t: &TestDb, id: &str) -> Vec<Value> {
    t.db.events_after(id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(openhands::agent::events::to_v0)
        .collect()
}
