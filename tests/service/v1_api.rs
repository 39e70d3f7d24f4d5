//! OpenHands' V1 API as its own clients call it, over HTTP and WebSockets against the served
//! service with the scripted model and a Docker sandbox: the CLI's and the web app's
//! sequence (create, poll the start task, read V1 events, the live socket, a message without
//! a run, run, pause, run), and the session key that opens one conversation and nothing else.

use crate::support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::clients::{Auth, call, python_client};
use support::fake_llm::Turn;
use support::service::Service;
use support::socket::{close_code, connect, next_within, send};
use support::{Kind, TestDb};

/// Polls every half second, as clients do (the CLI every 2 s, the web app every 3 s), until
/// `check` gives a value: well within the per-user rate limit.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn script() -> Vec<Turn> {
    vec![
        Turn::call("execute_bash", json!({"command": "echo hello-v1"})),
        Turn::call("finish", json!({"message": "Said hello."})),
        // After the message sent without a run, then `run`: a step long enough to pause.
        Turn::call("execute_bash", json!({"command": "sleep 6; echo slept"})),
        // After the pause, `run` again.
        Turn::call("finish", json!({"message": "Done after the pause."})),
    ]
}

/// The conversation in the V1 shape, as `GET /api/v1/app-conversations?ids=` gives it.
async fn app_conversation(base: &str, key: &str, id: &str) -> Value {
    let (status, list) = call(
        "GET",
        &format!("{base}/api/v1/app-conversations?ids={id}"),
        Auth::Bearer(key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list[0].clone()
}

/// The conversation's execution status as the V1 API gives it (null unless its sandbox runs).
async fn execution_status(base: &str, key: &str, id: &str) -> Option<String> {
    app_conversation(base, key, id).await["execution_status"]
        .as_str()
        .map(str::to_string)
}

async fn until_status(base: &str, key: &str, id: &str, wanted: &str) {
    poll(
        &format!("the conversation to be {wanted}"),
        Duration::from_secs(150),
        || async {
            (execution_status(base, key, id).await.as_deref() == Some(wanted)).then_some(())
        },
    )
    .await;
}

async fn clients_sequence(kind: Kind) {
    let t = TestDb::new(kind).await;
    let service = Service::builder(&t.db)
        .serve()
        .agent(script())
        .model("openai/gpt-fake")
        .start()
        .await;
    let base = service.url();
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;

    // The web app's first call needs no credentials; the CLI's checks its key.
    let (status, config) = call(
        "GET",
        &format!("{base}/api/options/config"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["APP_MODE"], "oss");
    let (status, _) = call(
        "GET",
        &format!("{base}/api/v1/users/me"),
        Auth::Bearer("oh_wrong"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the CLI's cue to sign in again"
    );
    let (status, me) = call(
        "GET",
        &format!("{base}/api/v1/users/me"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["login"], "alice");
    assert_eq!(me["llm_api_key_set"], false);

    // The web app's body (the CLI's is the same without role and parent).
    let (status, task) = call(
        "POST",
        &format!("{base}/api/v1/app-conversations"),
        Auth::Bearer(&key),
        Some(json!({
            "initial_message": {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
            "parent_conversation_id": null,
            "agent_type": "default",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    let task_id = task["id"].as_str().unwrap().to_string();
    assert!(
        ["WORKING", "READY"].contains(&task["status"].as_str().unwrap()),
        "{task}"
    );
    // Polled as the clients poll, until READY.
    let conversation_id = poll(
        "the start task to be READY",
        Duration::from_secs(150),
        || async {
            let (status, tasks) = call(
                "GET",
                &format!("{base}/api/v1/app-conversations/start-tasks?ids={task_id}&ids=unknown"),
                Auth::Bearer(&key),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{tasks}");
            assert_eq!(tasks[1], Value::Null, "an unknown id is null");
            assert_ne!(tasks[0]["status"], "ERROR", "{tasks}");
            (tasks[0]["status"] == "READY").then(|| {
                tasks[0]["app_conversation_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        },
    )
    .await;
    let conversation = app_conversation(&base, &key, &conversation_id).await;
    let conversation_url = conversation["conversation_url"].as_str().unwrap();
    assert_eq!(
        conversation_url,
        format!("{base}/api/conversations/{conversation_id}")
    );
    let session_key = conversation["session_api_key"]
        .as_str()
        .unwrap()
        .to_string();
    // Clients keep only the origin of the conversation URL.
    let origin = base.clone();
    until_status(&base, &key, &conversation_id, "finished").await;

    // The agent server's events: the first run, in V1 kinds.
    let events_url = format!("{origin}/api/conversations/{conversation_id}/events");
    let (status, page) = call(
        "GET",
        &format!("{events_url}/search?limit=100"),
        Auth::Session(&session_key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap().clone();
    assert!(
        items
            .iter()
            .all(|e| e["id"].is_string() && e["timestamp"].is_string())
    );
    let kinds: Vec<&str> = items.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "MessageEvent", "{kinds:?}");
    let action = items
        .iter()
        .find(|e| e["kind"] == "ActionEvent" && e["action"]["kind"] == "ExecuteBashAction")
        .expect("the command as an ActionEvent");
    assert_eq!(action["tool_name"], "execute_bash");
    assert_eq!(action["action"]["command"], "echo hello-v1");
    let observation = items
        .iter()
        .find(|e| e["kind"] == "ObservationEvent" && e["action_id"] == action["id"])
        .expect("its result as an ObservationEvent");
    assert_eq!(observation["tool_call_id"], action["tool_call_id"]);
    assert!(
        observation["observation"]["output"]
            .as_str()
            .unwrap()
            .contains("hello-v1")
    );
    assert!(
        items
            .iter()
            .any(|e| e["kind"] == "ConversationStateUpdateEvent"
                && e["key"] == "execution_status"
                && e["value"] == "finished")
    );
    // The counts of both servers agree with the search.
    let (_, count) = call(
        "GET",
        &format!("{events_url}/count"),
        Auth::Session(&session_key),
        None,
    )
    .await;
    assert_eq!(count, json!(items.len()));
    let (_, count) = call(
        "GET",
        &format!("{base}/api/v1/events/count?conversation_id__eq={conversation_id}"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(count, json!(items.len()));
    let (_, actions) = call(
        "GET",
        &format!("{base}/api/v1/events/search?conversation_id__eq={conversation_id}&kind__eq=ActionEvent&limit=1"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(actions["items"].as_array().unwrap().len(), 1, "{actions}");
    assert!(
        actions["next_page_id"].is_string(),
        "a second ActionEvent (finish) follows"
    );

    // The web app's socket: the full state, every stored event in order, then live ones.
    let ws = base.replace("http://", "ws://");
    let mut socket = connect(
        &format!(
            "{ws}/sockets/events/{conversation_id}?resend_all=true&session_api_key={session_key}"
        ),
        None,
    )
    .await;
    let first = next_within(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(first["kind"], "ConversationStateUpdateEvent");
    assert_eq!(first["key"], "full_state");
    assert_eq!(first["value"]["execution_status"], "finished");
    for expected in &items {
        let frame = next_within(&mut socket, Duration::from_secs(10)).await;
        assert_eq!(frame["id"], expected["id"]);
        assert_eq!(frame["kind"], expected["kind"]);
    }
    // A bad frame is answered, and the socket stays open.
    send(&mut socket, "{\"role\": \"user\"}").await;
    let error = next_within(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(error["kind"], "ServerErrorEvent", "{error}");

    // A message without a run is recorded, and the agent does not run on it.
    let asked_before = service.llm().requests().len();
    let (status, answer) = call(
        "POST",
        &events_url,
        Auth::Session(&session_key),
        Some(json!({"role": "user", "content": [{"type": "text", "text": "Now sleep a little"}], "run": false})),
    )
    .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    let live = next_within(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(live["kind"], "MessageEvent");
    assert_eq!(
        live["llm_message"]["content"][0]["text"],
        "Now sleep a little"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        service.llm().requests().len(),
        asked_before,
        "no run without `run`"
    );
    assert_eq!(
        execution_status(&base, &key, &conversation_id)
            .await
            .as_deref(),
        Some("finished")
    );

    // Run; while it runs, another run is refused; pause, then run again to the end.
    let (status, answer) = call(
        "POST",
        &format!("{conversation_url}/run"),
        Auth::Session(&session_key),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    poll("the sleep to start", Duration::from_secs(60), || async {
        let (_, page) = call(
            "GET",
            &format!("{events_url}/search?kind=ActionEvent&sort_order=TIMESTAMP_DESC&limit=1"),
            Auth::Session(&session_key),
            None,
        )
        .await;
        (page["items"][0]["action"]["command"] == "sleep 6; echo slept").then_some(())
    })
    .await;
    let (status, _) = call(
        "POST",
        &format!("{conversation_url}/run"),
        Auth::Session(&session_key),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a second run while it runs");
    let (status, answer) = call(
        "POST",
        &format!("{conversation_url}/pause"),
        Auth::Session(&session_key),
        Some(json!({})),
    )
    .await;
    assert!(status.is_success(), "{answer}");
    assert_eq!(answer["success"], true);
    until_status(&base, &key, &conversation_id, "paused").await;
    let (status, answer) = call(
        "POST",
        &format!("{conversation_url}/run"),
        Auth::Session(&session_key),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    until_status(&base, &key, &conversation_id, "finished").await;
    // The socket saw it all live: the pause among them.
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Value| {
        e["kind"] == "ActionEvent"
            && e["action"]["kind"] == "FinishAction"
            && e["action"]["message"] == "Done after the pause."
    }) {
        seen.push(next_within(&mut socket, Duration::from_secs(20)).await);
    }
    assert!(seen.iter().any(|e| e["kind"] == "PauseEvent"), "{seen:#?}");
    service.llm().assert_each_tool_call_answered_once();

    // Searches list it (by part of its title, in any case); the count agrees.
    let title = app_conversation(&base, &key, &conversation_id).await["title"]
        .as_str()
        .unwrap()
        .to_string();
    let part: String = title
        .chars()
        .skip(1)
        .take(4)
        .collect::<String>()
        .to_uppercase();
    let (_, found) = call(
        "GET",
        &format!("{base}/api/v1/app-conversations/search?title__contains={part}"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(
        found["items"][0]["id"],
        json!(conversation_id),
        "{title}: {found}"
    );
    let (_, none) = call(
        "GET",
        &format!("{base}/api/v1/app-conversations/search?title__contains=no%25such_title"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(none["items"], json!([]));
    let (_, count) = call(
        "GET",
        &format!("{base}/api/v1/app-conversations/count"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(count, json!(1));
    let (_, tasks) = call(
        "GET",
        &format!("{base}/api/v1/app-conversations/start-tasks/search"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(tasks["items"][0]["id"], json!(task_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_sequence_on_sqlite() {
    clients_sequence(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_sequence_on_postgres() {
    clients_sequence(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_key_opens_its_conversation_and_nothing_else() {
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db).serve().start().await;
    let base = service.url();
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let start = |text: &'static str| {
        let (base, key) = (base.clone(), key.clone());
        async move {
            let (status, task) = call(
                "POST",
                &format!("{base}/api/v1/app-conversations"),
                Auth::Bearer(&key),
                Some(json!({"initial_message": {"content": [{"type": "text", "text": text}]}})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{task}");
            let id = task["app_conversation_id"].as_str().unwrap().to_string();
            let shown = app_conversation(&base, &key, &id).await;
            (id, shown["session_api_key"].as_str().unwrap().to_string())
        }
    };
    let (mine, my_key) = start("first").await;
    let (other, other_key) = start("second").await;
    assert_ne!(my_key, other_key);
    // The V0 view tells OpenHands' web app to switch to V1, and where.
    let (_, shown) = call(
        "GET",
        &format!("{base}/api/conversations/{mine}"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(shown["conversation_version"], "V1");
    assert_eq!(
        shown["url"],
        json!(format!("{base}/api/conversations/{mine}"))
    );
    assert_eq!(shown["session_api_key"], json!(my_key));

    let (status, _) = call(
        "GET",
        &format!("{base}/api/conversations/{mine}/events/count"),
        Auth::Session(&my_key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        "GET",
        &format!("{base}/api/conversations/{mine}"),
        Auth::Session(&my_key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the conversation's own routes");
    for (method, path) in [
        ("GET", format!("/api/conversations/{other}/events/search")),
        ("GET", format!("/api/conversations/{other}")),
        ("POST", format!("/api/conversations/{other}/run")),
        ("GET", "/api/conversations".to_string()),
        ("GET", "/api/v1/users/me".to_string()),
        ("GET", "/api/v1/settings".to_string()),
        ("GET", format!("/api/v1/app-conversations?ids={mine}")),
        ("GET", "/api/keys".to_string()),
    ] {
        let (status, answer) = call(
            method,
            &format!("{base}{path}"),
            Auth::Session(&my_key),
            None,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
        let (status, _) = call(
            method,
            &format!("{base}{path}"),
            Auth::Bearer(&my_key),
            None,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} as a bearer"
        );
    }
    // A key that is not one, shaped as one.
    // Its last hex digit changed (to another one, whatever it was).
    let last = if my_key.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &my_key[..my_key.len() - 1]);
    assert_ne!(forged, my_key);
    let (status, _) = call(
        "GET",
        &format!("{base}/api/conversations/{mine}/events/count"),
        Auth::Session(&forged),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The socket: a wrong key at the handshake is a 403, as the agent server answers.
    let ws = base.replace("http://", "ws://");
    let refused = tokio_tungstenite::connect_async(format!(
        "{ws}/sockets/events/{other}?resend_all=true&session_api_key={my_key}"
    ))
    .await
    .expect_err("the handshake is refused");
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    // A wrong key in a first auth frame closes with 4001; an unknown conversation with 4004.
    let mut socket = connect(&format!("{ws}/sockets/events/{other}"), None).await;
    send(
        &mut socket,
        &json!({"type": "auth", "session_api_key": my_key}).to_string(),
    )
    .await;
    assert_eq!(u16::from(close_code(&mut socket).await), 4001);
    let mut socket = connect(
        &format!("{ws}/sockets/events/{}?resend_all=true", "0".repeat(32)),
        Some(&key),
    )
    .await;
    assert_eq!(u16::from(close_code(&mut socket).await), 4004);
    // The right key in a first auth frame opens it, in V1.
    let mut socket = connect(&format!("{ws}/sockets/events/{other}"), None).await;
    send(
        &mut socket,
        &json!({"type": "auth", "session_api_key": other_key}).to_string(),
    )
    .await;
    let first = next_within(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(first["key"], "full_state", "{first}");
}

/// Runs OpenHands' CLI (`openhands cloud -t TASK --server-url URL`) in `dir`, with the user's
/// key in its key file, as a user who signed in before would. Its other traffic is sent to a
/// closed loopback port: the tests reach nothing but loopback.
async fn openhands_cloud(
    dir: &std::path::Path,
    base: &str,
    key: &str,
    task: &str,
) -> std::process::Output {
    let persistence = dir.join(".openhands");
    std::fs::create_dir_all(persistence.join("cloud")).unwrap();
    std::fs::write(persistence.join("cloud/api_key.txt"), key).unwrap();
    let run = python_client("OPENHANDS_CLI", "openhands-cli.sh", dir)
        .args(["cloud", "-t", task, "--server-url", base])
        .env("OPENHANDS_PERSISTENCE_DIR", &persistence)
        .output();
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the CLI ends within 180 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn openhands_cli_starts_a_conversation_that_runs_and_prints_its_link() {
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db)
        .serve()
        .agent(vec![Turn::call(
            "finish",
            json!({"message": "Done, from the CLI's task."}),
        )])
        .model("openai/gpt-fake")
        .start()
        .await;
    let base = service.url();
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let dir = tempfile::tempdir().unwrap();

    let output = openhands_cloud(dir.path(), &base, &key, "Write the release notes").await;
    let printed = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{printed}");
    let listed =
        t.db.list_conversations(&openhands::storage::ConversationFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{printed}");
    let id = &listed[0].id;
    assert!(
        printed.contains(&format!("{base}/conversations/{id}")),
        "{printed}"
    );
    // The dashboard serves the link it printed; the task runs to the end.
    let (status, _) = call(
        "GET",
        &format!("{base}/conversations/{id}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    until_status(&base, &key, id, "finished").await;
    let messages = support::conversation::events_of(&t.db, id).await;
    assert!(
        messages
            .iter()
            .any(|e| e["args"]["content"] == "Write the release notes")
    );

    // In a clone of a repository this server cannot reach, the CLI asks for it; the start
    // task ends in ERROR with the reason, and the CLI fails.
    let clone = dir.path().join("clone");
    std::fs::create_dir_all(&clone).unwrap();
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec![
            "remote",
            "add",
            "origin",
            "https://github.com/octo-org/hello-world.git",
        ],
    ] {
        let done = std::process::Command::new("git")
            .args(&args)
            .current_dir(&clone)
            .status()
            .unwrap();
        assert!(done.success());
    }
    let output = openhands_cloud(&clone, &base, &key, "Fix the bug").await;
    let printed = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains("Detected repository: octo-org/hello-world"),
        "{printed}"
    );
    let (_, tasks) = call(
        "GET",
        &format!("{base}/api/v1/app-conversations/start-tasks/search?limit=1"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    let task = &tasks["items"][0];
    assert_eq!(task["status"], "ERROR", "{tasks}");
    assert_eq!(
        task["request"]["selected_repository"],
        "octo-org/hello-world"
    );
    assert!(
        task["detail"]
            .as_str()
            .unwrap()
            .contains("no repository host is configured"),
        "{task}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_settings_take_the_nested_and_the_flat_shape_and_never_show_the_key() {
    let t = TestDb::sqlite().await;
    let secret: openhands::setting::Secret =
        "v1-settings-secret-key-of-enough-length".parse().unwrap();
    let service = Service::builder(&t.db)
        .serve()
        .state(move |state| state.with_keyring(openhands::crypto::Keyring::new(Some(&secret))))
        .start()
        .await;
    let base = service.url();
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let settings = format!("{base}/api/v1/settings");
    // As OpenHands' clients save it: nested LLM settings, and fields this service does not keep.
    let (status, saved) = call(
        "POST",
        &settings,
        Auth::Bearer(&key),
        Some(json!({
            "agent_settings": {"agent": "CodeActAgent", "llm": {"model": "anthropic/claude-sonnet-4-5", "api_key": "sk-ant-secret-value"}},
            "language": "de",
            "confirmation_mode": true,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        saved["ignored_fields"],
        json!(["agent_settings.agent", "language"])
    );
    let (status, shown) = call("GET", &settings, Auth::Bearer(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shown["agent_settings"]["llm"]["model"],
        "anthropic/claude-sonnet-4-5"
    );
    assert_eq!(shown["llm_model"], "anthropic/claude-sonnet-4-5");
    assert_eq!(shown["llm_api_key_set"], true);
    assert_eq!(shown["confirmation_mode"], true);
    assert!(
        !shown.to_string().contains("sk-ant-secret-value"),
        "{shown}"
    );
    // The form's empty key field sent back keeps the key; the flat shape works too.
    let (status, _) = call(
        "POST",
        &settings,
        Auth::Bearer(&key),
        Some(json!({"llm_model": "openai/gpt-5", "llm_api_key": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, me) = call(
        "GET",
        &format!("{base}/api/v1/users/me"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(me["llm_model"], "openai/gpt-5");
    assert_eq!(me["llm_api_key_set"], true);
    // A wrong type is refused, naming the field.
    let (status, answer) = call(
        "POST",
        &settings,
        Auth::Bearer(&key),
        Some(json!({"agent_settings": {"llm": {"model": 7}}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"].as_str().unwrap().contains("llm_model"),
        "{answer}"
    );
}

/// Posts to the device flow's token endpoint as RFC 8628 has it: a form.
async fn device_token(base: &str, device_code: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/oauth/device/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_device_flow_answers_as_rfc_8628_says() {
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db).serve().start().await;
    let base = service.url();
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let start = || async {
        let (status, codes) = call(
            "POST",
            &format!("{base}/oauth/device/authorize"),
            Auth::None,
            Some(json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{codes}");
        codes
    };
    let codes = start().await;
    let user_code = codes["user_code"].as_str().unwrap().to_string();
    assert_eq!(codes["verification_uri"], json!(format!("{base}/device")));
    assert_eq!(
        codes["verification_uri_complete"],
        json!(format!("{base}/device?user_code={user_code}"))
    );
    let device_code = codes["device_code"].as_str().unwrap().to_string();
    let (status, answer) = device_token(&base, &device_code).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("authorization_pending"))
    );
    let (_, answer) = device_token(&base, &device_code).await;
    assert_eq!(answer["error"], "slow_down", "polled at once again");
    let (_, answer) = device_token(&base, "not-a-code").await;
    assert_eq!(answer["error"], "invalid_grant");
    // The page's calls: the code typed in lower case, without its dash.
    let typed = user_code.to_lowercase().replace('-', "");
    let (status, shown) = call(
        "GET",
        &format!("{base}/api/oauth/device/{typed}"),
        Auth::Bearer(&key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["status"], "pending");
    let (status, _) = call(
        "GET",
        &format!("{base}/api/oauth/device/{typed}"),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, decided) = call(
        "POST",
        &format!("{base}/api/oauth/device/{typed}"),
        Auth::Bearer(&key),
        Some(json!({"approve": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let (status, _) = call(
        "POST",
        &format!("{base}/api/oauth/device/{typed}"),
        Auth::Bearer(&key),
        Some(json!({"approve": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, token) = device_token(&base, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    let issued = token["access_token"].as_str().unwrap();
    let (_, me) = call(
        "GET",
        &format!("{base}/api/v1/users/me"),
        Auth::Bearer(issued),
        None,
    )
    .await;
    assert_eq!(me["login"], "alice");
    let (_, again) = device_token(&base, &device_code).await;
    assert_eq!(again["error"], "invalid_grant", "the key is given once");
    // A denied code.
    let codes = start().await;
    let code = codes["user_code"].as_str().unwrap();
    let (status, _) = call(
        "POST",
        &format!("{base}/api/oauth/device/{code}"),
        Auth::Bearer(&key),
        Some(json!({"approve": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = device_token(&base, codes["device_code"].as_str().unwrap()).await;
    assert_eq!(answer["error"], "access_denied");
    let (status, _) = call(
        "POST",
        &format!("{base}/api/oauth/device/BCDF-GHJK"),
        Auth::Bearer(&key),
        Some(json!({"approve": true})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown code");
}

#[tokio::test(flavor = "multi_thread")]
async fn openhands_cli_signs_in_through_the_device_flow_approved_by_its_user() {
    use tokio::io::AsyncBufReadExt;
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db).serve().start().await;
    let base = service.url();
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let dir = tempfile::tempdir().unwrap();
    let persistence = dir.path().join(".openhands");
    // No key file: `openhands login` goes through the device flow. BROWSER opens nothing.
    let mut login = python_client("OPENHANDS_CLI", "openhands-cli.sh", dir.path())
        .args(["login", "--server-url", &base])
        .env("OPENHANDS_PERSISTENCE_DIR", &persistence)
        .env("BROWSER", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(login.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let user_code = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if let Some((_, code)) = line.split_once(&format!("{base}/device?user_code=")) {
                return code.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("the CLI ended without showing the page: {printed:#?}")
    })
    .await
    .expect("the CLI shows the page within 120 s");
    // Its user approves the code it shows, signed in to the dashboard.
    let (status, decided) = call(
        "POST",
        &format!("{base}/api/oauth/device/{user_code}"),
        Auth::Bearer(&key),
        Some(json!({"approve": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line);
        }
        login.wait().await.unwrap()
    })
    .await
    .expect("the CLI ends within 60 s of the approval");
    assert!(rest.success(), "{printed:#?}");
    let stored = std::fs::read_to_string(persistence.join("cloud/api_key.txt")).unwrap();
    let stored = stored.trim();
    assert!(
        stored.starts_with("oh_"),
        "the CLI keeps the key it was given"
    );
    let (status, me) = call(
        "GET",
        &format!("{base}/api/v1/users/me"),
        Auth::Bearer(stored),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["login"], "alice");
    let (_, keys) = call("GET", &format!("{base}/api/keys"), Auth::Bearer(&key), None).await;
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "OpenHands CLI (device sign-in)"),
        "{keys}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_risky_action_waits_until_it_is_confirmed_on_the_agent_server_surface() {
    let t = TestDb::sqlite().await;
    let service = Service::builder(&t.db)
        .serve()
        .agent(vec![
            Turn::call(
                "execute_bash",
                json!({"command": "echo confirmed-run", "security_risk": "HIGH"}),
            ),
            Turn::call("finish", json!({"message": "Ran it."})),
        ])
        .model("openai/gpt-fake")
        .start()
        .await;
    let base = service.url();
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let (status, _) = call(
        "POST",
        &format!("{base}/api/v1/settings"),
        Auth::Bearer(&key),
        Some(json!({"confirmation_mode": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, task) = call(
        "POST",
        &format!("{base}/api/v1/app-conversations"),
        Auth::Bearer(&key),
        Some(json!({"initial_message": {"content": [{"type": "text", "text": "Run it"}]}})),
    )
    .await;
    let id = task["app_conversation_id"].as_str().unwrap().to_string();
    until_status(&base, &key, &id, "waiting_for_confirmation").await;
    let session_key = app_conversation(&base, &key, &id).await["session_api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let respond = format!("{base}/api/conversations/{id}/events/respond_to_confirmation");
    let (status, answer) = call(
        "POST",
        &respond,
        Auth::Session(&session_key),
        Some(json!({"accept": true, "reason": "looks fine"})),
    )
    .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"success": true})));
    until_status(&base, &key, &id, "finished").await;
    let (_, page) = call(
        "GET",
        &format!("{base}/api/conversations/{id}/events/search?kind=ObservationEvent"),
        Auth::Session(&session_key),
        None,
    )
    .await;
    assert!(
        page["items"][0]["observation"]["output"]
            .as_str()
            .unwrap()
            .contains("confirmed-run"),
        "{page}"
    );
    // Nothing waits now.
    let (status, _) = call(
        "POST",
        &respond,
        Auth::Session(&session_key),
        Some(json!({"accept": false})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}
