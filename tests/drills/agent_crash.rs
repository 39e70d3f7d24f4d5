//! A worker killed with SIGKILL in the middle of a run: another worker process picks the run
//! up from the event log, re-attaches to the sandbox (or starts a new one and says so), tells
//! the model what was lost, and finishes — with every tool call answered exactly once.

use crate::support;
use crate::support::outage;

use std::time::Duration;

use serde_json::{Value, json};
use support::conversation::{ask, events_of};
use support::fake_llm::{FakeLlm, Turn};
use support::sandbox::{OwnerCleanup, agent_process, owner_containers, remove_owner_containers};
use support::{ChildGuard, Kind, TestDb, wait_for};

fn worker(database_url: &str, fake: &FakeLlm, owner: &str) -> ChildGuard {
    ChildGuard::spawn(
        agent_process(database_url, "worker", fake, owner)
            .env("SANDBOX_NO_OUTPUT_TIMEOUT", "2s")
            .env("JOB_LEASE", "3s"),
    )
}

fn edit(args: Value) -> Turn {
    Turn::call("str_replace_editor", args)
}

fn bash(command: &str) -> Turn {
    Turn::call("execute_bash", json!({"command": command}))
}

/// Runs the script with a worker that is killed while `sleep 30` runs, then lets a second
/// worker finish. `between` runs after the kill. Returns the final events.
async fn killed_mid_run(fake: &FakeLlm, owner: &str, between: impl FnOnce()) -> Vec<Value> {
    let t = TestDb::new(Kind::Postgres).await;
    let id = ask(&t.db, "crash", "edit notes.txt").await;
    let mut first = worker(&t.url, fake, owner);
    wait_for(
        "the long command to start",
        Duration::from_secs(90),
        || async {
            events_of(&t.db, &id)
                .await
                .iter()
                .any(|e| e["action"] == "run" && e["args"]["command"] == "sleep 30")
                .then_some(())
        },
    )
    .await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    between();
    let _second = worker(&t.url, fake, owner);
    wait_for(
        "the run to finish on the second worker",
        Duration::from_secs(120),
        || async {
            let events = events_of(&t.db, &id).await;
            let last = events
                .iter()
                .rev()
                .find(|e| e["observation"] == "agent_state_changed")?;
            let state = last["extras"]["agent_state"].as_str()?.to_string();
            (state == "finished" || state == "error").then_some(())
        },
    )
    .await;
    events_of(&t.db, &id).await
}

fn observation_of<'a>(events: &'a [Value], command: &str) -> &'a Value {
    let action = events
        .iter()
        .find(|e| e["action"] == "run" && e["args"]["command"] == command)
        .unwrap_or_else(|| panic!("no action {command}"));
    events
        .iter()
        .find(|e| e["cause"] == action["id"])
        .unwrap_or_else(|| panic!("no observation of {command}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_run_resumes_on_another_worker_in_the_same_sandbox() {
    let _outage = outage::shared().await;
    let script = vec![
        edit(json!({"command": "create", "path": "/workspace/notes.txt", "file_text": "one\n"})),
        edit(
            json!({"command": "str_replace", "path": "/workspace/notes.txt", "old_str": "one", "new_str": "two"}),
        ),
        bash("sleep 30"),
        edit(json!({"command": "undo_edit", "path": "/workspace/notes.txt"})),
        bash("cat /workspace/notes.txt"),
        Turn::call("finish", json!({"message": "restored"})),
    ];
    let fake = FakeLlm::start(script).await;
    let owner = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
    let _cleanup = OwnerCleanup(owner.clone());
    let events = killed_mid_run(&fake, &owner, || {}).await;
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e["observation"] == "agent_state_changed")
        .map(|e| e["extras"]["agent_state"].as_str().unwrap())
        .collect();
    assert_eq!(states.last(), Some(&"finished"), "{states:?}");
    fake.assert_each_tool_call_answered_once();

    // The interrupted command was not run again; the model was told its result was lost.
    let lost = observation_of(&events, "sleep 30");
    assert_eq!(lost["observation"], "error");
    assert!(
        lost["content"]
            .as_str()
            .unwrap()
            .contains("restarted while this was running")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "run" && e["args"]["command"] == "sleep 30")
            .count(),
        1
    );
    assert_eq!(events.iter().filter(|e| e["action"] == "edit").count(), 3);

    // Same sandbox, and the undo history survived the crash: undo restored "one".
    assert!(!events.iter().any(|e| {
        e["content"]
            .as_str()
            .unwrap_or("")
            .contains("earlier sandbox")
    }));
    assert_eq!(
        observation_of(&events, "cat /workspace/notes.txt")["content"]
            .as_str()
            .unwrap()
            .trim(),
        "one"
    );
    assert_eq!(owner_containers(&owner).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_sandbox_is_replaced_and_the_model_is_told() {
    let _outage = outage::shared().await;
    let script = vec![
        edit(json!({"command": "create", "path": "/workspace/notes.txt", "file_text": "one\n"})),
        bash("sleep 30"),
        bash("cat /workspace/notes.txt"),
        Turn::call("finish", json!({"message": "the file is gone"})),
    ];
    let fake = FakeLlm::start(script).await;
    let owner = format!("t{}", ulid::Ulid::new().to_string().to_lowercase());
    let _cleanup = OwnerCleanup(owner.clone());
    let removed = owner.clone();
    let events = killed_mid_run(&fake, &owner, move || remove_owner_containers(&removed)).await;
    fake.assert_each_tool_call_answered_once();
    let note = events
        .iter()
        .find(|e| {
            e["content"]
                .as_str()
                .unwrap_or("")
                .contains("earlier sandbox")
        })
        .expect("a note about the lost sandbox");
    assert_eq!(note["observation"], "error");
    let cat = observation_of(&events, "cat /workspace/notes.txt");
    assert!(
        cat["content"].as_str().unwrap().contains("No such file"),
        "{cat}"
    );
    // The model saw the note before its next call.
    let last = fake.requests().last().unwrap().messages.clone();
    assert!(last.iter().any(|m| m.text.contains("earlier sandbox")));
}

/// A worker that delivers posts to the fake GitHub.
fn github_worker(database_url: &str, fakes: &support::fakes::FakeProviders) -> ChildGuard {
    let mut command = support::openhands(database_url);
    command
        .arg("worker")
        .env("GITHUB_APP_ID", support::fakes::GITHUB_APP_ID.to_string())
        .env(
            "GITHUB_APP_PRIVATE_KEY",
            format!(
                "{}/tests/fixtures/github-app/private-key.pem",
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .env("GITHUB_API_URL", fakes.github_api_url())
        .env("JOB_LEASE", "3s")
        .env("QUEUE_POLL_INTERVAL", "50ms");
    ChildGuard::spawn(&mut command)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_between_posting_and_recording_does_not_post_twice() {
    let _outage = outage::shared().await;
    let t = TestDb::new(Kind::Postgres).await;
    let fakes = support::fakes::FakeProviders::start().await;
    let repository = "octo-org/hello-world";
    let mut tx = t.db.begin().await.unwrap();
    openhands::results::add_post(
        &mut tx,
        &openhands::storage::NewOutboxPost {
            conversation_id: None,
            provider: "github",
            kind: openhands::results::kind::STATUS,
            target: &json!({"installation_id": 4242, "repository": repository, "number": 17}),
            body: &json!({"text": "I'm on it!"}),
            idempotency_key: "crash-test:status",
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The comment is made, but its answer never reaches the first worker.
    fakes.stall_next("github", 1, Duration::from_secs(60));
    let mut first = github_worker(&t.url, &fakes);
    wait_for(
        "the comment to be made",
        Duration::from_secs(60),
        || async { (!fakes.github_comments(repository, 17).is_empty()).then_some(()) },
    )
    .await;
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    let _second = github_worker(&t.url, &fakes);
    let post = wait_for(
        "the post to be recorded as sent by the second worker",
        Duration::from_secs(60),
        || async {
            let post =
                t.db.outbox_post_by_key("crash-test:status")
                    .await
                    .unwrap()?;
            (post.status == "sent").then_some(post)
        },
    )
    .await;
    let comments = fakes.github_comments(repository, 17);
    assert_eq!(comments.len(), 1, "{comments:#?}\n{:#?}", fakes.mutations());
    assert!(
        comments[0]
            .1
            .contains("<!-- openhands:crash-test:status -->")
    );
    let result: Value = serde_json::from_str(post.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["comment_id"], comments[0].0);
    let creates = fakes
        .mutations()
        .iter()
        .filter(|m| m.starts_with("POST /github/repos/octo-org/hello-world/issues/17/comments"))
        .count();
    assert!(creates <= 1, "{:#?}", fakes.mutations());
}
