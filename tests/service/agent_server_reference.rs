//! The agent-server surface compared with the released one: OpenHands' `openhands-agent-server`
//! (from PyPI, in its own Python 3.12 venv) and this service each run a conversation with the
//! same scripted model, and the same client calls go to both. Their answers' status codes and
//! the kinds of the events they record must be the same.

use crate::support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::clients::{Auth, call, python_client};
use support::fake_llm::{FakeLlm, Turn};
use support::service::Service;
use support::{Kind, TestDb};

const REFERENCE_KEY: &str = "reference-session-key";

/// The model's turns, the same for both servers: a thought, a slow answer (so that the
/// conversation is seen running), the end; then, for a second message, the end again.
fn script() -> Vec<Turn> {
    vec![
        Turn::call("think", json!({"thought": "Nothing to run for this."})),
        Turn::call("finish", json!({"message": "Hello."})).after(Duration::from_secs(4)),
        Turn::call("finish", json!({"message": "Hello again."})),
    ]
}

/// One server's agent-server surface: where it is, the conversation, and its key.
struct Surface {
    origin: String,
    conversation: String,
    key: String,
}

impl Surface {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let auth = key.map_or(Auth::None, Auth::Session);
        call(method, &format!("{}{path}", self.origin), auth, body).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(&self.key), None).await
    }

    fn events(&self) -> String {
        format!("/api/conversations/{}/events", self.conversation)
    }

    /// Every event, oldest first.
    async fn all_events(&self) -> Vec<Value> {
        let (status, page) = self
            .get(&format!("{}/search?limit=100", self.events()))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().unwrap().clone()
    }

    /// Waits (polling each half second) until the newest execution status is `wanted`.
    async fn until_status(&self, wanted: &str) {
        let started = std::time::Instant::now();
        loop {
            let newest = self.all_events().await.into_iter().rev().find(|e| {
                e["kind"] == "ConversationStateUpdateEvent" && e["key"] == "execution_status"
            });
            if newest.is_some_and(|e| e["value"] == wanted) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{}: not {wanted} within 120 s: {:#?}",
                self.origin,
                self.all_events().await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The released agent server, started on a free loopback port in `dir`.
struct Reference {
    _child: tokio::process::Child,
    origin: String,
}

async fn start_reference(dir: &std::path::Path) -> Reference {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = python_client("OPENHANDS_AGENT_SERVER", "openhands-agent-server.sh", dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("OH_SESSION_API_KEYS_0", REFERENCE_KEY)
        // A Fernet key (32 bytes, URL-safe base64) for what it stores sealed.
        .env(
            "OH_SECRET_KEY",
            "cmVmZXJlbmNlLXNlY3JldC1rZXktb2YtMzItYnl0ZXM=",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let origin = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    loop {
        let alive = reqwest::get(format!("{origin}/alive")).await;
        if alive.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the agent server did not start within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Reference {
        _child: child,
        origin,
    }
}

const TASK: &str = "Say hello";

/// What the client calls answer on one surface: each call's status code, and the kinds of the
/// events recorded after each run.
#[derive(Debug, PartialEq)]
struct Answers {
    statuses: Vec<(&'static str, StatusCode)>,
    first_run: Vec<String>,
    second_run: Vec<String>,
}

/// The kinds of the events a client reads, state updates and the system prompt aside (each
/// server records its own state changes, and only the reference records its prompt).
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .filter(|kind| kind != "ConversationStateUpdateEvent" && kind != "SystemPromptEvent")
        .collect()
}

/// The same calls on either surface, once its conversation was started with [`TASK`].
async fn drive(surface: &Surface) -> Answers {
    let mut statuses = Vec::new();
    let events = surface.events();
    // Running: a second run is refused.
    surface.until_status("running").await;
    let (status, _) = surface
        .call(
            "POST",
            &format!("/api/conversations/{}/run", surface.conversation),
            Some(&surface.key),
            Some(json!({})),
        )
        .await;
    statuses.push(("run while running", status));
    surface.until_status("finished").await;
    let first = surface.all_events().await;
    let (status, count) = surface.get(&format!("{events}/count")).await;
    statuses.push(("count", status));
    assert_eq!(count, json!(first.len()), "{}", surface.origin);
    let (status, page) = surface.get(&format!("{events}/search?limit=2")).await;
    statuses.push(("search a page", status));
    assert!(page["next_page_id"].is_string(), "{page}");
    let (status, _) = surface
        .get(&format!("{events}/search?kind=MessageEvent"))
        .await;
    statuses.push(("search by kind", status));
    // Wrong or missing credentials, and a conversation that is not there.
    let (status, _) = surface
        .call("GET", &format!("{events}/search"), Some("wrong-key"), None)
        .await;
    statuses.push(("wrong key", status));
    let (status, _) = surface
        .call("GET", &format!("{events}/search"), None, None)
        .await;
    statuses.push(("no key", status));
    // A message recorded without a run, then a run.
    let (status, _) = surface
        .call("POST", &events, Some(&surface.key), Some(json!({"role": "user", "content": [{"type": "text", "text": "Once more"}], "run": false})))
        .await;
    statuses.push(("message without a run", status));
    let (status, _) = surface
        .call(
            "POST",
            &format!("/api/conversations/{}/run", surface.conversation),
            Some(&surface.key),
            Some(json!({})),
        )
        .await;
    statuses.push(("run", status));
    tokio::time::sleep(Duration::from_millis(500)).await;
    surface.until_status("finished").await;
    let second = surface.all_events().await;
    Answers {
        statuses,
        first_run: kinds(&first),
        second_run: kinds(&second[first.len()..]),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_server_surface_answers_as_the_released_agent_server() {
    let dir = tempfile::tempdir().unwrap();
    // The released server, with its own copy of the script.
    let reference_llm = FakeLlm::start(script()).await;
    let reference = start_reference(dir.path()).await;
    let started = reqwest::Client::new()
        .post(format!("{}/api/conversations", reference.origin))
        .header("X-Session-API-Key", REFERENCE_KEY)
        .json(&json!({
            "agent": {
                "llm": {"model": "openai/gpt-fake", "base_url": reference_llm.base_url(), "api_key": "fake-key", "usage_id": "agent"},
                "tools": [],
            },
            "workspace": {"working_dir": dir.path()},
            "initial_message": {"role": "user", "content": [{"type": "text", "text": TASK}], "run": true},
            "autotitle": false,
        }))
        .send()
        .await
        .unwrap();
    let status = started.status();
    let info: Value = started.json().await.unwrap();
    assert!(status.is_success(), "{status}: {info}");
    let theirs = Surface {
        origin: reference.origin.clone(),
        conversation: info["id"].as_str().unwrap().replace('-', ""),
        key: REFERENCE_KEY.to_string(),
    };
    // Each is driven as soon as it starts, while its first run goes on.
    let theirs = drive(&theirs).await;

    // This service, started the way OpenHands' clients start a conversation.
    let t = TestDb::new(Kind::Sqlite).await;
    let service = Service::builder(&t.db)
        .serve()
        .agent(script())
        .model("openai/gpt-fake")
        .start()
        .await;
    let (_, key) = support::user_with_key(&t.db, "alice", false).await;
    let client = reqwest::Client::new();
    let task: Value = client
        .post(format!("{}/api/v1/app-conversations", service.url()))
        .bearer_auth(&key)
        .json(&json!({"initial_message": {"role": "user", "content": [{"type": "text", "text": TASK}]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["app_conversation_id"].as_str().unwrap();
    let listed: Value = client
        .get(format!(
            "{}/api/v1/app-conversations?ids={id}",
            service.url()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = url::Url::parse(listed[0]["conversation_url"].as_str().unwrap()).unwrap();
    let ours = Surface {
        origin: url.origin().ascii_serialization(),
        conversation: id.to_string(),
        key: listed[0]["session_api_key"].as_str().unwrap().to_string(),
    };

    let ours = drive(&ours).await;
    assert_eq!(ours, theirs);
    let unknown = |origin: &str, key: &str| {
        let path = format!(
            "{origin}/api/conversations/{}/events/search",
            "0".repeat(32)
        );
        let key = key.to_string();
        async move {
            reqwest::Client::new()
                .get(path)
                .header("X-Session-API-Key", key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        unknown(&ours_origin(&service), &key).await,
        unknown(&reference.origin, REFERENCE_KEY).await,
        "a conversation that is not there"
    );
}

fn ours_origin(service: &Service) -> String {
    service.url()
}
