//! The service as several processes of the built binary on one PostgreSQL: two `web`, two
//! `worker` and a `runtime-api` on the Docker engine. A mention accepted by one web process is
//! run by exactly one worker in a sandbox from the Runtime API, its events stream to a
//! WebSocket client of the other web process, and its status reaches the fake GitHub once.

use crate::support;
use crate::support::outage;

use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::fake_llm::{FakeLlm, Turn};
use support::fakes::{self, FakeProviders};
use support::git_server::GitServer;
use support::sandbox::{OwnerCleanup, test_image};
use support::signing;
use support::socket;
use support::{ChildGuard, TestDb, free_port, wait_for};

const SECRET: &str = "multi-process-secret";
const REPO: &str = "octo-org/hello-world";
const GITHUB_TOKEN: &str = "ghs_installation_4242";
const ADMIN_KEY: &str = "multi-process-admin-key";
const RUNTIME_KEY: &str = "multi-process-runtime-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_web_and_two_worker_processes_share_one_database_and_a_runtime_api() {
    let _outage = outage::shared().await;
    let t = TestDb::postgres().await;
    let fakes = FakeProviders::start().await;
    fakes.set_github_permission(REPO, "mona", "write");
    let git = GitServer::start(GITHUB_TOKEN).await;
    git.create_repo("hello-world");
    fakes.set_github_clone_url(REPO, &git.url("hello-world"));
    fakes.set_github_installation(REPO, 4242);
    let llm = FakeLlm::start(vec![
        Turn::call(
            "execute_bash",
            json!({"command": "cat /workspace/repo/README"}),
        ),
        Turn::call(
            "finish",
            json!({"message": "Read the README across processes."}),
        ),
    ])
    .await;

    // The Docker host's sandboxes, served to the workers.
    let owner = format!("mp{}", ulid::Ulid::new().to_string().to_lowercase());
    let _cleanup = OwnerCleanup(owner.clone());
    let runtime_port = free_port();
    let mut runtime = Command::new(support::binary());
    runtime
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUNTIME_API_LISTEN", format!("127.0.0.1:{runtime_port}"))
        .env("RUNTIME_API_KEY", RUNTIME_KEY)
        .env("SANDBOX_OWNER", &owner)
        .env("SANDBOX_IMAGE", test_image())
        .env("SANDBOX_MEMORY", "256m")
        .env("SANDBOX_WARM_POOL", "0")
        .env("LOG_LEVEL", "warn")
        .arg("runtime-api")
        .stdin(Stdio::null());
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        runtime.env("DOCKER_HOST", host);
    }
    let _runtime = ChildGuard::spawn(&mut runtime);
    let runtime_url = format!("http://127.0.0.1:{runtime_port}");

    let key_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github-app/private-key.pem"
    );
    let role = |name: &str, port: Option<u16>| {
        let mut command = support::openhands(&t.url);
        command
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("GITHUB_APP_ID", fakes::GITHUB_APP_ID.to_string())
            .env("GITHUB_APP_PRIVATE_KEY", key_path)
            .env("GITHUB_API_URL", fakes.github_api_url())
            .env("OPENHANDS_PUBLIC_URL", "https://openhands.example.test")
            .env(
                "OPENHANDS_SECRET_KEY",
                "multi-process-secret-key-of-32-characters",
            )
            .env("OPENHANDS_ADMIN_API_KEY", ADMIN_KEY)
            .env("LLM_MODEL", "openai/gpt-fake")
            .env("LLM_API_KEY", "sk-test")
            .env("LLM_BASE_URL", llm.base_url())
            .env("SANDBOX_BACKEND", "remote")
            .env("RUNTIME_API_URL", &runtime_url)
            .env("RUNTIME_API_KEY", RUNTIME_KEY)
            .env("QUEUE_POLL_INTERVAL", "20ms")
            .env("LOG_LEVEL", "warn")
            .arg(name);
        // A web process listens on `port`; a worker serves its own metrics there.
        match (name, port) {
            ("worker", Some(port)) => {
                command.env("METRICS_LISTEN", format!("127.0.0.1:{port}"));
            }
            (_, Some(port)) => {
                command.env("PORT", port.to_string());
            }
            _ => {}
        }
        ChildGuard::spawn(&mut command)
    };
    let (first, second) = (free_port(), free_port());
    let _webs = [role("web", Some(first)), role("web", Some(second))];
    let metrics_ports = [free_port(), free_port()];
    let _workers = metrics_ports.map(|port| role("worker", Some(port)));
    for port in [first, second] {
        wait_for("a web process", Duration::from_secs(30), || async move {
            reqwest::get(format!("http://127.0.0.1:{port}/alive"))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    // The mention, accepted by the first web process.
    let answer = signing::github(
        SECRET,
        "issue_comment",
        "multi-process-1",
        support::fixture("github/issue_comment.created.json"),
    )
    .post(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{first}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let conversation = wait_for("the conversation", Duration::from_secs(60), || async {
        t.db.conversation_by_external_ref("github", &format!("{REPO}#17"))
            .await
            .unwrap()
    })
    .await;

    // Its events, live on the second web process, until the agent finishes.
    let mut socket = socket::connect(
        &format!("ws://127.0.0.1:{second}/sockets/events/{}", conversation.id),
        Some(ADMIN_KEY),
    )
    .await;
    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("the run did not finish; events: {seen:#?}"))
            .unwrap()
            .unwrap();
        let Ok(text) = frame.to_text() else { continue };
        let event: Value = serde_json::from_str(text).unwrap();
        let finished = event["observation"] == "agent_state_changed"
            && event["extras"]["agent_state"] == "finished";
        seen.push(event);
        if finished {
            break;
        }
    }
    let ids: Vec<i64> = seen.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert!(
        seen.iter()
            .any(|e| e["observation"] == "run"
                && e["content"].as_str().unwrap_or("").contains("hello")),
        "{seen:#?}"
    );

    // One run by one worker: the model was asked twice, each call answered once.
    assert_eq!(llm.requests().len(), 2);
    // The worker that ran it timed its two LLM calls; its metrics are its own, and served to
    // the administrators' key only.
    let client = reqwest::Client::new();
    let mut timed = 0;
    for port in metrics_ports {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let refused = client.get(&url).send().await.unwrap();
        assert_eq!(refused.status().as_u16(), 401);
        let text = client
            .get(&url)
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        timed += text
            .lines()
            .find_map(|line| line.strip_prefix("openhands_llm_call_seconds_count "))
            .map_or(0, |count| count.trim().parse::<u64>().unwrap());
    }
    assert_eq!(
        timed, 2,
        "the LLM calls, timed by the worker that made them"
    );
    llm.assert_each_tool_call_answered_once();
    // The sandbox came from the Runtime API.
    let runtimes: Value = reqwest::Client::new()
        .get(format!("{runtime_url}/list"))
        .header("X-API-Key", RUNTIME_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        runtimes["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["session_id"] == conversation.id.as_str()),
        "{runtimes}"
    );
    // The status comment reached GitHub once, edited to the summary.
    let comments = wait_for("the summary on GitHub", Duration::from_secs(60), || async {
        let comments = fakes.github_comments(REPO, 17);
        comments
            .iter()
            .any(|(_, body)| body.contains("Read the README across processes."))
            .then_some(comments)
    })
    .await;
    assert_eq!(comments.len(), 1, "{comments:#?}");
    t.drop_database().await;
}
