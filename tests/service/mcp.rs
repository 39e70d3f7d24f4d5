//! MCP tools in the agent loop: servers of the official Rust SDK over streamable HTTP, an
//! HTTP+SSE server, one that never answers, and a stdio server started inside the Docker
//! sandbox; configured by the service (MCP_CONFIG), by a user's settings and by an
//! administrator, with secrets sealed and never shown or recorded.

use crate::support;

use std::time::Duration;

use axum::http::StatusCode;
use openhands::agent::settings::AgentSettings;
use openhands::crypto::Keyring;
use openhands::setting::Secret;
use openhands::web::AppState;
use serde_json::{Value, json};
use support::conversation::{ask, events_of, say};
use support::fake_llm::Turn;
use support::service::Service;
use support::{Kind, TestDb, wait_for};

const API_KEY: &str = "mcp-api-key-0123456789";
const TEAM_HEADER: &str = "team-secret-abcdef";

/// Waits until the conversation rests after event `after`; its state.
async fn rest_after(db: &openhands::storage::Db, id: &str, after: i64) -> String {
    wait_for("the agent to rest", Duration::from_secs(120), || async {
        events_of(db, id).await.into_iter().rev().find_map(|e| {
            let state = e["extras"]["agent_state"].as_str().unwrap_or_default();
            (e["observation"] == "agent_state_changed"
                && !["loading", "running", ""].contains(&state)
                && e["id"].as_i64().unwrap() > after)
                .then(|| state.to_string())
        })
    })
    .await
}

fn contents<'a>(events: &'a [Value], observation: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e["observation"] == observation)
        .map(|e| e["content"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_mcp_tools_are_offered_called_and_recorded() {
    let t = TestDb::new(Kind::Postgres).await;
    let shttp = support::mcp::streamable_http().await;
    let sse = support::mcp::sse().await;
    let silent = support::mcp::silent().await;
    let config = json!({
        "shttp_servers": [
            {"url": shttp.url, "api_key": API_KEY, "timeout": 2},
            {"url": silent.url, "timeout": 1},
        ],
        "sse_servers": [{"url": sse.url, "headers": {"X-Team": TEAM_HEADER}}],
    });
    let script = vec![
        Turn::call("mcp_add", json!({"a": 2, "b": 3})),
        Turn::call("mcp_weather_lookup", json!({"city": "Oslo"})),
        Turn::call("echo", json!({"text": "over sse"})),
        Turn::call("mcp_fail", json!({})),
        Turn::call("mcp_slow", json!({"seconds": 5})),
        Turn::raw_call("mcp_add", "[1, 2]"),
        Turn::call("finish", json!({"message": "used the tools"})),
    ];
    let service = Service::builder(&t.db)
        .agent(script)
        .model("openai/gpt-fake")
        .agent_settings(AgentSettings {
            mcp_config: Some(config.to_string()),
            ..AgentSettings::default()
        })
        .start()
        .await;
    let id = ask(&t.db, "mcp", "use the MCP tools").await;
    assert_eq!(rest_after(&t.db, &id, 0).await, "finished");
    let fake = service.llm();
    fake.assert_each_tool_call_answered_once();

    // Every server's tools are offered beside the built-in ones, under valid, unique names
    // (the SSE server's come first; the same names of the other server take its address's
    // last word); the server that never answered offers nothing.
    let offered = &fake.requests()[0].tools;
    for name in [
        "execute_bash",
        "fetch",
        "add",
        "echo",
        "weather_lookup",
        "mcp_add",
        "mcp_slow",
        "mcp_fail",
        "mcp_weather_lookup",
    ] {
        assert!(offered.iter().any(|t| t == name), "{name}: {offered:?}");
    }
    assert!(
        offered.iter().all(|n| n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))),
        "{offered:?}"
    );
    // A tool list is fetched once per run.
    assert_eq!(fake.requests().len(), 7);

    let events = events_of(&t.db, &id).await;
    let actions: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "call_tool_mcp")
        .collect();
    assert_eq!(
        actions.len(),
        5,
        "the malformed call never becomes an action"
    );
    assert_eq!(actions[0]["args"]["name"], "mcp_add");
    assert_eq!(actions[0]["args"]["arguments"], json!({"a": 2, "b": 3}));
    let answers = contents(&events, "mcp");
    assert_eq!(answers.len(), 4, "{answers:#?}");
    let result: Value = serde_json::from_str(answers[0]).unwrap();
    assert_eq!(result["content"][0]["text"], "5", "{result}");
    assert!(answers[1].contains("sunny in Oslo"), "{}", answers[1]);
    assert!(answers[2].contains("echo: over sse"), "{}", answers[2]);
    let failed: Value = serde_json::from_str(answers[3]).unwrap();
    assert_eq!(failed["isError"], true, "{failed}");
    let observed: Vec<&Value> = events
        .iter()
        .filter(|e| e["observation"] == "mcp")
        .collect();
    assert_eq!(observed[1]["extras"]["name"], "mcp_weather_lookup");
    assert_eq!(observed[1]["extras"]["arguments"], json!({"city": "Oslo"}));

    let errors = contents(&events, "error");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("did not answer `slow` within 2 seconds")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("must be a JSON object")),
        "{errors:?}"
    );
    let notes: Vec<String> = events
        .iter()
        .filter(|e| e.to_string().contains("Some MCP tools are not available"))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(notes.len(), 1, "one note for the silent server");
    assert!(notes[0].contains(&silent.url), "{}", notes[0]);

    // The credentials reached the servers, and nothing recorded holds them.
    assert!(
        shttp
            .authorizations()
            .iter()
            .all(|a| a == &format!("Bearer {API_KEY}")),
        "{:?}",
        shttp.authorizations()
    );
    assert!(!shttp.authorizations().is_empty());
    assert!(sse.header_values("x-team").iter().any(|v| v == TEAM_HEADER));
    assert_eq!(shttp.tool_calls(), 4);
    assert_eq!(sse.tool_calls(), 1);
    let recorded = serde_json::to_string(&events).unwrap();
    assert!(!recorded.contains(API_KEY) && !recorded.contains(TEAM_HEADER));
    t.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_stdio_mcp_server_runs_inside_the_sandbox() {
    let t = TestDb::new(Kind::Sqlite).await;
    let secret: Secret = "mcp-test-secret-key-0123456789abcdef".parse().unwrap();
    let keyring = Keyring::new(Some(&secret));
    let script = vec![
        Turn::call("execute_bash", json!({"command": "true"})),
        Turn::call("finish", json!({"message": "ready"})),
        Turn::call("environment", json!({})),
        Turn::call("finish", json!({"message": "looked"})),
    ];
    let service = Service::builder(&t.db)
        .agent(script)
        .model("anthropic/claude-fake")
        .keyring(keyring.clone())
        .start()
        .await;
    let id = ask(&t.db, "mcp", "get ready").await;
    let owner = t.db.conversation(&id).await.unwrap().owner_id;
    assert_eq!(rest_after(&t.db, &id, 0).await, "finished");

    // The server's program is put into the conversation's sandbox, then the user configures it.
    let containers = support::sandbox::running_owner_containers(service.owner());
    assert_eq!(containers.len(), 1, "{containers:?}");
    let binary = support::mcp::stdio_server_binary();
    let copied = std::process::Command::new("docker")
        .arg("cp")
        .arg(&binary)
        .arg(format!("{}:/tmp/mcp_stdio_server", containers[0]))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{copied:?}");
    // A user's remote server on the service's own network is refused; the stdio one runs.
    let config = json!({
        "stdio_servers": [{
            "name": "probe",
            "command": "/tmp/mcp_stdio_server",
            "env": {"MCP_GREETING": "greeting-value-xyz123"},
        }],
        "shttp_servers": [{"url": "http://127.0.0.1:9/mcp"}],
    });
    t.db.set_user_mcp_config(&owner, Some(&keyring.seal(&config.to_string()).unwrap()))
        .await
        .unwrap();

    let before = events_of(&t.db, &id).await.last().unwrap()["id"]
        .as_i64()
        .unwrap();
    say(&t.db, &id, "now look around").await;
    assert_eq!(rest_after(&t.db, &id, before).await, "finished");
    service.llm().assert_each_tool_call_answered_once();
    let requests = service.llm().requests();
    assert!(!requests[0].tools.iter().any(|t| t == "environment"));
    assert!(requests[2].tools.iter().any(|t| t == "environment"));

    let events = events_of(&t.db, &id).await;
    let answers = contents(&events, "mcp");
    assert_eq!(answers.len(), 1, "{events:#?}");
    // It runs in the sandbox's workspace with the environment it was given, whose value is
    // kept out of the record.
    assert!(answers[0].contains("cwd=/workspace"), "{}", answers[0]);
    assert!(answers[0].contains("workspace=true"), "{}", answers[0]);
    assert!(
        answers[0].contains("greeting=<secret MCP_GREETING hidden>"),
        "{}",
        answers[0]
    );
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("greeting-value-xyz123")
    );
    let note = events
        .iter()
        .find(|e| e.to_string().contains("Some MCP tools are not available"))
        .expect("a note about the refused server")
        .to_string();
    assert!(note.contains("service's own network"), "{note}");
}

/// A request to the web API with `key`, its body as JSON.
async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    key: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let body = body.map(Value::to_string);
    support::api_call(state, method, uri, Some(key), body.as_deref()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_settings_are_stored_sealed_and_never_shown() {
    let t = TestDb::new(Kind::Postgres).await;
    let secret: Secret = "mcp-test-secret-key-0123456789abcdef".parse().unwrap();
    let keyring = Keyring::new(Some(&secret));
    let state = AppState::new(t.db.clone()).with_keyring(keyring.clone());
    let (alice_id, alice) = support::user_with_key(&t.db, "alice", false).await;
    let (_, admin) = support::user_with_key(&t.db, "root", true).await;

    // A user's own servers: secrets are sealed, shown hidden, and kept when sent back hidden.
    let config = json!({
        "shttp_servers": [{"url": "https://mcp.example.com/mcp", "api_key": API_KEY}],
        "stdio_servers": [{"name": "fetch", "command": "uvx", "args": ["mcp-server-fetch"], "env": {"TOKEN": TEAM_HEADER}}],
    });
    let (status, saved) = call(
        &state,
        "POST",
        "/api/settings",
        &alice,
        Some(&json!({"mcp_config": config})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        saved["mcp_config"]["shttp_servers"][0]["api_key"],
        "**********"
    );
    assert_eq!(
        saved["mcp_config"]["stdio_servers"][0]["env"]["TOKEN"],
        "**********"
    );
    assert_eq!(
        saved["mcp_config"]["stdio_servers"][0]["args"],
        json!(["mcp-server-fetch"])
    );
    let sealed = t.db.user_mcp_config(&alice_id).await.unwrap().unwrap();
    assert!(!sealed.contains(API_KEY) && !sealed.contains(TEAM_HEADER));
    let (_, shown) = call(&state, "GET", "/api/settings", &alice, None).await;
    assert_eq!(shown["mcp_config"], saved["mcp_config"]);
    let mut edited = shown["mcp_config"].clone();
    edited["stdio_servers"][0]["args"] = json!(["mcp-server-fetch", "--verbose"]);
    let (status, _) = call(
        &state,
        "POST",
        "/api/settings",
        &alice,
        Some(&json!({"mcp_config": edited})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stored = keyring
        .open(&t.db.user_mcp_config(&alice_id).await.unwrap().unwrap())
        .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["shttp_servers"][0]["api_key"], API_KEY);
    assert_eq!(stored["stdio_servers"][0]["env"]["TOKEN"], TEAM_HEADER);
    assert_eq!(stored["stdio_servers"][0]["args"][1], "--verbose");

    // Wrong configurations are named and change nothing.
    for (body, named) in [
        (
            json!({"mcp_config": {"shttp_servers": [{"url": "file:///etc"}]}}),
            "shttp_servers[0]: url",
        ),
        (
            json!({"mcp_config": {"shttp_servers": [{"url": "https://other.example.com/mcp", "api_key": "**********"}]}}),
            "nothing is stored",
        ),
        (
            json!({"mcp_config": {"servers": []}}),
            "unknown field `servers`",
        ),
    ] {
        let (status, answer) = call(&state, "POST", "/api/settings", &alice, Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer.to_string().contains(named), "{body}: {answer}");
    }
    let (_, unchanged) = call(&state, "GET", "/api/settings", &alice, None).await;
    assert_eq!(
        unchanged["mcp_config"]["stdio_servers"][0]["args"][1],
        "--verbose"
    );
    let (_, cleared) = call(
        &state,
        "POST",
        "/api/settings",
        &alice,
        Some(&json!({"mcp_config": null})),
    )
    .await;
    assert_eq!(cleared["mcp_config"], Value::Null);
    assert_eq!(t.db.user_mcp_config(&alice_id).await.unwrap(), None);

    // The service's servers are the administrators'.
    let service_config = json!({"sse_servers": [{"url": "https://tools.example.com/sse", "headers": {"X-Team": TEAM_HEADER}}]});
    let (status, _) = call(
        &state,
        "PUT",
        "/api/admin/mcp",
        &alice,
        Some(&json!({"mcp_config": service_config})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, unset) = call(&state, "GET", "/api/admin/mcp", &admin, None).await;
    assert_eq!(unset, json!({"source": "unset", "mcp_config": null}));
    let (status, stored) = call(
        &state,
        "PUT",
        "/api/admin/mcp",
        &admin,
        Some(&json!({"mcp_config": service_config})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["source"], "stored");
    assert_eq!(
        stored["mcp_config"]["sse_servers"][0]["headers"]["X-Team"],
        "**********"
    );
    // MCP_CONFIG in the environment wins over what is stored here.
    let from_environment = state.clone().with_mcp_from_environment(true);
    let (status, answer) = call(
        &from_environment,
        "PUT",
        "/api/admin/mcp",
        &admin,
        Some(&json!({"mcp_config": null})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer.to_string().contains("MCP_CONFIG"), "{answer}");
    let (_, shown) = call(&from_environment, "GET", "/api/admin/mcp", &admin, None).await;
    assert_eq!(shown["source"], "environment");
    t.drop_database().await;
}
