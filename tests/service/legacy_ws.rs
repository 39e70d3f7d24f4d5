//! The legacy `/ws` protocol against real SQLite and PostgreSQL, Docker sandboxes and the
//! scripted LLM: the README's example as written, the user's own actions run in the sandbox by
//! the worker, authentication and ownership, and wrong frames answered without losing the
//! socket.

use crate::on_both_backends;
use crate::support;

use std::time::Duration;

use futures::SinkExt;
use openhands::queue::WorkerSettings;
use openhands::web::middleware::HttpSettings;
use serde_json::{Value, json};
use support::fake_llm::{FakeLlm, Turn};
use support::sandbox::{OwnerCleanup, agent_process};
use support::service::Service;
use support::socket::{self, Socket, close_code, next_json, next_within, send};
use support::{ChildGuard, Kind, TestDb, wait_for};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

on_both_backends! {
    only_the_callers_own_conversations_after_authentication => authentication_and_ownership;
    wrong_frames_are_answered_and_the_socket_keeps_working => wrong_frames;
}

/// The task of the README's example, and its first frame exactly as the README writes it.
const README_TASK: &str = "write a bash script that prints hello";
const README_FRAME: &str =
    r#"{"action": "start", "args": {"task": "write a bash script that prints hello"}}"#;

/// A web process with these HTTP settings on loopback; stops serving when dropped.
async fn serve(t: &TestDb, http: HttpSettings) -> Service {
    Service::builder(&t.db)
        .state(move |state| state.with_http(http))
        .serve()
        .start()
        .await
}

/// A user with an API key.
async fn user(t: &TestDb, login: &str) -> String {
    support::user_with_key(&t.db, login, false).await.1
}

async fn connect(address: &str, key: Option<&str>) -> Socket {
    socket::connect(&format!("ws://{address}/ws"), key).await
}

/// The next error frame's message.
async fn error_message(socket: &mut Socket) -> String {
    let frame = next_json(socket).await;
    assert_eq!(frame["error"], true, "an error frame: {frame}");
    frame["message"].as_str().unwrap().to_string()
}

/// Frames until one satisfies `last` (included), within `wait` in all.
async fn frames_until(
    socket: &mut Socket,
    wait: Duration,
    last: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = next_within(socket, left.max(Duration::from_millis(1))).await;
        let done = last(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

fn is_state(frame: &Value, state: &str) -> bool {
    frame["observation"] == "agent_state_changed" && frame["extras"]["agent_state"] == state
}

/// Every frame of an event has the legacy shape of an action or an observation.
fn assert_legacy_shape(frame: &Value) {
    let action = frame["action"].is_string() && frame["args"].is_object();
    let observation = frame["observation"].is_string()
        && frame["content"].is_string()
        && frame["extras"].is_object();
    assert!(
        (action || observation) && frame["message"].is_string(),
        "a legacy action or observation: {frame}"
    );
}

async fn authentication_and_ownership(t: &TestDb) {
    let alice = user(t, "alice").await;
    let bob = user(t, "bob").await;
    let plain = serve(t, HttpSettings::default()).await;

    // No credentials and no legacy user: told how to authenticate, then 4001.
    let mut socket = connect(plain.address(), None).await;
    send(&mut socket, README_FRAME).await;
    let message = error_message(&mut socket).await;
    assert!(message.contains("Authorization: Bearer"), "{message}");
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4001));

    // A wrong key in `initialize`: 4001.
    let mut socket = connect(plain.address(), None).await;
    send(
        &mut socket,
        r#"{"action": "initialize", "args": {"token": "oh_not_a_key", "LLM_MODEL": "gpt-4o"}}"#,
    )
    .await;
    let message = error_message(&mut socket).await;
    assert!(message.contains("not a valid API key"), "{message}");
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4001));
    let listed =
        t.db.list_conversations(&openhands::storage::ConversationFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.is_empty(), "nothing was recorded: {listed:?}");

    // Alice starts a conversation with her key in the upgrade request.
    let mut socket = connect(plain.address(), Some(&alice)).await;
    send(&mut socket, README_FRAME).await;
    let started = next_json(&mut socket).await;
    assert_eq!(
        (
            &started["action"],
            &started["source"],
            &started["args"]["content"]
        ),
        (&json!("message"), &json!("user"), &json!(README_TASK))
    );
    let conversation_id = wait_for("the conversation", Duration::from_secs(10), || async {
        let alices = t.db.user_by_login("alice").await.unwrap().unwrap();
        t.db.list_conversations(&openhands::storage::ConversationFilter {
            owner_id: Some(&alices.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .first()
        .map(|c| c.id.clone())
    })
    .await;
    let conversation = t.db.conversation(&conversation_id).await.unwrap();
    assert_eq!(
        (
            conversation.title.as_str(),
            conversation.trigger_kind.as_str()
        ),
        (README_TASK, "web")
    );

    // Bob may not follow it, nor may anyone follow one that does not exist: 4004.
    let mut socket = connect(plain.address(), Some(&bob)).await;
    send(
        &mut socket,
        &json!({"action": "initialize", "args": {"conversation_id": conversation_id}}).to_string(),
    )
    .await;
    assert_eq!(error_message(&mut socket).await, "conversation not found");
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4004));
    let mut socket = connect(plain.address(), None).await;
    send(
        &mut socket,
        &json!({"action": "initialize", "args": {"token": bob, "conversation_id": "nope"}})
            .to_string(),
    )
    .await;
    assert_eq!(error_message(&mut socket).await, "conversation not found");
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4004));
    assert_eq!(
        t.db.events_after(&conversation_id, 0, 100)
            .await
            .unwrap()
            .len(),
        1,
        "Bob changed nothing"
    );

    // An administrator may follow it, as over the REST API.
    let root = t.db.create_user("root", None, true).await.unwrap();
    let (root_key, _) = openhands::web::keys::issue_key(&t.db, &root.id, "test", None)
        .await
        .unwrap();
    let mut socket = connect(plain.address(), Some(&root_key)).await;
    send(
        &mut socket,
        &json!({"action": "initialize", "args": {"conversation_id": conversation_id}}).to_string(),
    )
    .await;
    let replayed = next_json(&mut socket).await;
    assert_eq!(replayed["id"].as_i64(), Some(1), "{replayed}");

    // Alice, with her key in `initialize`, follows it again: its log, replayed.
    let mut socket = connect(plain.address(), None).await;
    send(
        &mut socket,
        &json!({"action": "initialize", "args": {"session_api_key": alice, "conversation_id": conversation_id}})
            .to_string(),
    )
    .await;
    let replayed = next_json(&mut socket).await;
    assert_eq!(
        (replayed["id"].as_i64(), &replayed["action"]),
        (Some(1), &json!("message"))
    );
    // A fresh `initialize` is answered as legacy servers did, with the "init" state.
    send(
        &mut socket,
        r#"{"action": "initialize", "args": {"AGENT": "CodeActAgent"}}"#,
    )
    .await;
    assert!(is_state(&next_json(&mut socket).await, "init"));

    // OPENHANDS_LEGACY_WS_USER naming nobody: said on connect, and 4001.
    let ghost = serve(
        t,
        HttpSettings {
            legacy_ws_user: Some("ghost".into()),
            ..HttpSettings::default()
        },
    )
    .await;
    let mut socket = connect(ghost.address(), None).await;
    send(&mut socket, README_FRAME).await;
    let message = error_message(&mut socket).await;
    assert!(
        message.contains("OPENHANDS_LEGACY_WS_USER")
            && message.contains("openhands user create ghost"),
        "{message}"
    );
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4001));

    // Naming Bob: a connection without credentials is Bob's, and sees only Bob's.
    let as_bob = serve(
        t,
        HttpSettings {
            legacy_ws_user: Some("bob".into()),
            ..HttpSettings::default()
        },
    )
    .await;
    let mut socket = connect(as_bob.address(), None).await;
    send(
        &mut socket,
        &json!({"action": "initialize", "args": {"conversation_id": conversation_id}}).to_string(),
    )
    .await;
    assert_eq!(error_message(&mut socket).await, "conversation not found");
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4004));
    let mut socket = connect(as_bob.address(), None).await;
    send(
        &mut socket,
        r#"{"action": "think", "args": {"thought": "mine"}}"#,
    )
    .await;
    let thought = next_json(&mut socket).await;
    assert_eq!(
        (&thought["action"], &thought["source"]),
        (&json!("think"), &json!("user"))
    );
    let bobs = t.db.user_by_login("bob").await.unwrap().unwrap();
    let owned =
        t.db.list_conversations(&openhands::storage::ConversationFilter {
            owner_id: Some(&bobs.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(owned.len(), 1);
    drop((plain, ghost, as_bob));
}

async fn wrong_frames(t: &TestDb) {
    let alice = user(t, "alice").await;
    let web = serve(
        t,
        HttpSettings {
            api_max_body_bytes: 4096,
            ..HttpSettings::default()
        },
    )
    .await;
    let mut socket = connect(web.address(), Some(&alice)).await;
    send(&mut socket, README_FRAME).await;
    let first = next_json(&mut socket).await;
    assert_eq!(first["args"]["content"], README_TASK);
    let filter = openhands::storage::ConversationFilter {
        limit: 1,
        ..Default::default()
    };
    let conversation_id = t.db.list_conversations(&filter).await.unwrap()[0]
        .id
        .clone();

    let cases: Vec<(String, &str)> = vec![
        ("hello".into(), "not JSON"),
        (r#"{"args": {}}"#.into(), "a frame is {\"action\""),
        (
            r#"{"action": "fly", "args": {}}"#.into(),
            "unknown action `fly`",
        ),
        (
            r#"{"action": "run", "args": {}}"#.into(),
            "`run` needs `args.command`",
        ),
        (
            r#"{"action": "run", "args": {"command": 7}}"#.into(),
            "`args.command` of `run` must be a string",
        ),
        (r#"{"action": "read"}"#.into(), "`read` needs `args.path`"),
        (
            r#"{"action": "write", "args": {"path": "a.txt"}}"#.into(),
            "`write` needs `args.content`",
        ),
        (
            r#"{"action": "browse", "args": {"url": "gopher://example.org"}}"#.into(),
            "not `gopher`",
        ),
        (
            r#"{"action": "start", "args": {"task": "  "}}"#.into(),
            "`start` needs `args.task`",
        ),
        (
            r#"{"action": "run", "args": "ls"}"#.into(),
            "`args` must be a JSON object",
        ),
        (
            r#"{"action": "change_agent_state", "args": {"agent_state": "sideways"}}"#.into(),
            "must be stopped, paused, running, user_confirmed or user_rejected",
        ),
        (
            json!({"action": "write", "args": {"path": "big.txt", "content": "x".repeat(5000)}})
                .to_string(),
            "at most 4096 are taken",
        ),
    ];
    for (frame, named) in &cases {
        send(&mut socket, frame).await;
        let message = error_message(&mut socket).await;
        assert!(message.contains(named), "{frame}: {message}");
    }
    socket
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert!(error_message(&mut socket).await.contains("JSON text"));

    // The socket still works, and nothing accepted was lost.
    send(
        &mut socket,
        r#"{"action": "think", "args": {"thought": "still here"}}"#,
    )
    .await;
    let thought = next_json(&mut socket).await;
    assert_legacy_shape(&thought);
    assert_eq!(
        (
            &thought["action"],
            &thought["args"]["thought"],
            &thought["source"]
        ),
        (&json!("think"), &json!("still here"), &json!("user"))
    );
    send(
        &mut socket,
        r#"{"action": "message", "args": {"content": "and this"}}"#,
    )
    .await;
    assert_eq!(next_json(&mut socket).await["args"]["content"], "and this");
    send(
        &mut socket,
        r#"{"action": "change_agent_state", "args": {"agent_state": "stopped"}}"#,
    )
    .await;
    let stop = next_json(&mut socket).await;
    assert_eq!(
        (&stop["action"], &stop["args"]["agent_state"]),
        (&json!("change_agent_state"), &json!("stopped"))
    );
    let kinds: Vec<String> =
        t.db.events_after(&conversation_id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{}:{}", e.source, e.kind))
            .collect();
    assert_eq!(
        kinds,
        [
            "user:message",
            "user:think",
            "user:message",
            "user:change_agent_state"
        ]
    );
    // A request the state does not allow is refused with why, and recorded nowhere.
    let mut tx = t.db.begin().await.unwrap();
    tx.set_conversation_status(&conversation_id, "finished")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for (frame, says) in [
        (
            r#"{"action": "change_agent_state", "args": {"agent_state": "running"}}"#,
            "send a message",
        ),
        (
            r#"{"action": "change_agent_state", "args": {"agent_state": "paused"}}"#,
            "cannot be paused",
        ),
    ] {
        send(&mut socket, frame).await;
        let refused = error_message(&mut socket).await;
        assert!(refused.contains(says), "{frame}: {refused}");
    }
    assert_eq!(
        t.db.events_after(&conversation_id, 0, 100)
            .await
            .unwrap()
            .len(),
        4
    );
    drop(web);
}

/// Sends a user action and returns its action frame and the observation that answers it.
async fn act(socket: &mut Socket, frame: Value) -> (Value, Value) {
    send(socket, &frame.to_string()).await;
    let action = next_json(socket).await;
    assert_eq!(action["action"], frame["action"], "{action}");
    assert_eq!(action["source"], "user");
    let id = action["id"].clone();
    let answer = frames_until(socket, Duration::from_secs(120), |f| f["cause"] == id)
        .await
        .pop()
        .unwrap();
    assert_legacy_shape(&answer);
    (action, answer)
}

/// The user's own actions run in the conversation's sandbox, by the worker, without asking the
/// LLM; later the agent sees what the user did, and an action sent while the agent works runs
/// before its next step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_own_actions_run_in_the_sandbox() {
    let t = TestDb::new(Kind::Postgres).await;
    let alice = user(&t, "alice").await;
    // Workers in this process with a Docker sandbox and the scripted LLM as the server's
    // model, beside the web role.
    let web = Service::builder(&t.db)
        .serve()
        .agent(vec![
            // Slow enough that the user's command arrives while the model thinks.
            Turn::call(
                "execute_bash",
                json!({"command": "cat /workspace/notes/a.txt"}),
            )
            .after(Duration::from_secs(3)),
            Turn::call("finish", json!({"message": "Read the notes."})),
        ])
        .worker_settings(WorkerSettings {
            poll_interval: Duration::from_millis(20),
            ..WorkerSettings::default()
        })
        .start()
        .await;
    let mut socket = connect(web.address(), Some(&alice)).await;

    let (_, ran) = act(
        &mut socket,
        json!({"action": "run", "args": {"command": "echo made-by-$((40 + 2)) && pwd"}}),
    )
    .await;
    assert_eq!(ran["observation"], "run", "{ran}");
    assert!(
        ran["content"].as_str().unwrap().contains("made-by-42"),
        "{ran}"
    );
    assert!(
        ran["content"].as_str().unwrap().contains("/workspace"),
        "{ran}"
    );
    assert_eq!(ran["extras"]["exit_code"], 0);

    let (wrote, written) = act(
        &mut socket,
        json!({"action": "write", "args": {"path": "notes/a.txt", "content": "line one\nline two\n"}}),
    )
    .await;
    assert_eq!(wrote["args"]["path"], "/workspace/notes/a.txt");
    assert_eq!(written["observation"], "write", "{written}");

    let (_, read) = act(
        &mut socket,
        json!({"action": "read", "args": {"path": "/workspace/notes/a.txt"}}),
    )
    .await;
    assert_eq!(read["observation"], "read", "{read}");
    assert!(
        read["content"].as_str().unwrap().contains("line two"),
        "{read}"
    );

    let (_, missing) = act(
        &mut socket,
        json!({"action": "read", "args": {"path": "nowhere.txt"}}),
    )
    .await;
    assert_eq!(missing["observation"], "error", "{missing}");
    assert!(
        missing["content"]
            .as_str()
            .unwrap()
            .contains("/workspace/nowhere.txt")
    );

    let (_, page) = act(
        &mut socket,
        json!({"action": "browse", "args": {"url": "file:///workspace/notes/a.txt"}}),
    )
    .await;
    assert_eq!(page["observation"], "browse", "{page}");
    assert_eq!(page["content"], "line one\nline two\n");
    assert_eq!(page["extras"]["url"], "file:///workspace/notes/a.txt");

    let (_, thought) = act(
        &mut socket,
        json!({"action": "think", "args": {"thought": "the notes are there"}}),
    )
    .await;
    assert_eq!(
        (&thought["observation"], &thought["content"]),
        (&json!("think"), &json!("Your thought has been logged."))
    );
    assert!(
        web.llm().requests().is_empty(),
        "no LLM call for the user's actions"
    );

    // The agent's turn: the user's command sent while the model thinks runs before its next
    // step, and the model sees the user's actions and their results.
    send(
        &mut socket,
        r#"{"action": "start", "args": {"task": "What do the notes say?"}}"#,
    )
    .await;
    frames_until(&mut socket, Duration::from_secs(60), |f| {
        is_state(f, "running")
    })
    .await;
    send(
        &mut socket,
        r#"{"action": "run", "args": {"command": "echo while-you-think"}}"#,
    )
    .await;
    let rest = frames_until(&mut socket, Duration::from_secs(120), |f| {
        is_state(f, "finished") || is_state(f, "error")
    })
    .await;
    for frame in &rest {
        assert_legacy_shape(frame);
    }
    assert!(is_state(rest.last().unwrap(), "finished"), "{rest:#?}");
    let agent_ran = rest
        .iter()
        .find(|f| {
            f["observation"] == "run" && f["extras"]["command"] == "cat /workspace/notes/a.txt"
        })
        .expect("the agent's command");
    assert!(agent_ran["content"].as_str().unwrap().contains("line one"));
    let user_ran = rest
        .iter()
        .find(|f| f["observation"] == "run" && f["extras"]["command"] == "echo while-you-think")
        .expect("the user's command");
    assert!(
        user_ran["content"]
            .as_str()
            .unwrap()
            .contains("while-you-think")
    );
    let requests = web.llm().requests();
    assert_eq!(requests.len(), 2, "two steps of the agent");
    let first: String = requests[0]
        .messages
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(
        first.contains("The user wrote the file /workspace/notes/a.txt"),
        "{first}"
    );
    assert!(first.contains("made-by-42"), "{first}");
    let second: String = requests[1]
        .messages
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(second.contains("while-you-think"), "{second}");
    web.llm().assert_each_tool_call_answered_once();

    // The user's `finish` ends it.
    let (_, finished) = act(&mut socket, json!({"action": "finish", "args": {}})).await;
    assert!(is_state(&finished, "finished"), "{finished}");
    assert_eq!(web.llm().requests().len(), 2, "no LLM call for the finish");
    drop(web);
    t.drop_database().await;
}

/// The README's example, to the letter, against `openhands serve` with its default database
/// kind: a connection without credentials (OPENHANDS_LEGACY_WS_USER), the frame's exact text,
/// and every event of the run in the legacy shapes until the agent finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_works_as_written() {
    let t = TestDb::new(Kind::Sqlite).await;
    t.db.create_user("alice", None, false).await.unwrap();
    let fake = FakeLlm::start(vec![
        Turn::call(
            "str_replace_editor",
            json!({"command": "create", "path": "/workspace/hello.sh", "file_text": "#!/bin/bash\necho hello\n"}),
        ),
        Turn::call("execute_bash", json!({"command": "bash /workspace/hello.sh"})),
        Turn::call("finish", json!({"message": "hello.sh prints hello."})),
    ])
    .await;
    let owner = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
    let _cleanup = OwnerCleanup(owner.clone());
    let port = support::free_port();
    let mut command = agent_process(&t.url, "serve", &fake, &owner);
    command
        .args(["--port", &port.to_string()])
        .env("OPENHANDS_LEGACY_WS_USER", "alice")
        .env("SANDBOX_NO_OUTPUT_TIMEOUT", "2s");
    let _server = ChildGuard::spawn(&mut command);
    let address = format!("127.0.0.1:{port}");
    wait_for("the server to listen", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(&address)
            .await
            .ok()
            .map(|_| ())
    })
    .await;

    let mut socket = connect(&address, None).await;
    send(&mut socket, README_FRAME).await;
    let frames = frames_until(&mut socket, Duration::from_secs(180), |f| {
        is_state(f, "finished") || is_state(f, "error")
    })
    .await;
    for frame in &frames {
        assert_legacy_shape(frame);
    }
    let first = &frames[0];
    assert_eq!(
        (
            &first["action"],
            &first["args"]["content"],
            &first["source"]
        ),
        (&json!("message"), &json!(README_TASK), &json!("user"))
    );
    let names: Vec<String> = frames
        .iter()
        .map(
            |f| match (f["action"].as_str(), f["observation"].as_str()) {
                (Some(action), _) => format!("action:{action}"),
                (_, Some("agent_state_changed")) => {
                    format!("state:{}", f["extras"]["agent_state"].as_str().unwrap())
                }
                (_, Some(observation)) => format!("observation:{observation}"),
                _ => unreachable!(),
            },
        )
        .collect();
    assert_eq!(
        names,
        [
            "action:message",
            "state:loading",
            "state:running",
            "action:edit",
            "observation:edit",
            "action:run",
            "observation:run",
            "action:finish",
            "state:finished",
        ],
        "{frames:#?}"
    );
    let ran = frames.iter().find(|f| f["observation"] == "run").unwrap();
    assert_eq!(ran["content"].as_str().unwrap().trim(), "hello", "{ran}");
    assert_eq!(frames.last().unwrap()["extras"]["agent_state"], "finished");
    drop(socket);
    t.drop_database().await;
}
