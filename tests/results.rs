//! Results back on GitHub, end to end: a signed webhook in, the 👀 reaction and one status
//! comment, a run on a real Docker sandbox with the repository cloned from a loopback git
//! server and the scripted LLM, then the status comment edited to the agent's summary —
//! exactly once, also when GitHub fails for a while or loses an answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Parser;
use hmac::{Hmac, Mac};
use openhands::agent::AgentRuntime;
use openhands::agent::llm::LlmClient;
use openhands::agent::settings::AgentSettings;
use openhands::config::Cli;
use openhands::intake::IntakeSettings;
use openhands::integrations::Webhooks;
use openhands::queue::{self, JobContext, WorkerSettings};
use openhands::sandbox::docker::DockerBackend;
use openhands::web::{AppState, router};
use serde_json::json;
use sha2::Sha256;
use support::fake_llm::{FakeLlm, Turn};
use support::fakes::{self, FakeProviders};
use support::git_server::GitServer;
use support::sandbox::{OwnerCleanup, settings as sandbox_settings};
use support::{Kind, TestDb, wait_for};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const SECRET: &str = "results-secret";
const REPO: &str = "octo-org/hello-world";
const PUBLIC_URL: &str = "https://openhands.example.test";
const SLACK_SECRET: &str = "slack-results-secret";
const GITLAB_WEBHOOK_TOKEN: &str = "gitlab-results-token";

struct Service {
    t: TestDb,
    app: Router,
    fakes: FakeProviders,
    fake_llm: FakeLlm,
    _git: GitServer,
    stop: CancellationToken,
    _cleanup: OwnerCleanup,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn service(script: Vec<Turn>) -> Service {
    let t = TestDb::new(Kind::Postgres).await;
    let fakes = FakeProviders::start().await;
    fakes.set_github_permission(REPO, "mona", "write");
    let git = GitServer::start("ghs_installation_4242").await;
    git.create_repo("hello-world");
    fakes.set_github_clone_url(REPO, &git.url("hello-world"));
    let key_path = format!(
        "{}/tests/fixtures/github-app/private-key.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let cli = Cli::try_parse_from([
        "openhands",
        "--github-webhook-secret",
        SECRET,
        "--github-app-id",
        &fakes::GITHUB_APP_ID.to_string(),
        "--github-app-private-key",
        &key_path,
        "--github-api-url",
        &fakes.github_api_url(),
        "--public-url",
        PUBLIC_URL,
        "--gitlab-webhook-token",
        GITLAB_WEBHOOK_TOKEN,
        "--gitlab-token",
        fakes::GITLAB_TOKEN,
        "--gitlab-api-url",
        &fakes.gitlab_api_url(),
        "--slack-signing-secret",
        SLACK_SECRET,
        "--slack-team-id",
        "T0001",
        "--slack-bot-token",
        fakes::SLACK_BOT_TOKEN,
        "--slack-api-url",
        &fakes.slack_api_url(),
        "serve",
    ])
    .unwrap();
    cli.config.validate().unwrap();
    let fake_llm = FakeLlm::start(script).await;
    let llm = LlmClient::new(
        "openai/gpt-fake",
        Some("sk-test".parse().unwrap()),
        Some(&fake_llm.base_url()),
    )
    .unwrap();
    let sandbox = sandbox_settings();
    let owner = sandbox.sandbox_owner.clone().unwrap();
    let backend = DockerBackend::connect(&sandbox).await.unwrap();
    let stop = CancellationToken::new();
    let runtime = AgentRuntime::new(AgentSettings::default(), Some(llm), sandbox, stop.clone())
        .unwrap()
        .with_sandboxes(backend);
    let ctx = JobContext {
        db: t.db.clone(),
        intake: Arc::new(IntakeSettings::from_config(&cli.config.providers).unwrap()),
        agent: Some(Arc::new(runtime)),
    };
    let workers = WorkerSettings {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        retry_base_delay: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(200),
        ..WorkerSettings::default()
    };
    tokio::spawn(queue::run_workers(
        ctx,
        workers,
        stop.clone().cancelled_owned(),
    ));
    let state =
        AppState::new(t.db.clone()).with_webhooks(Webhooks::from_config(&cli.config.providers));
    Service {
        t,
        app: router(state),
        fakes,
        fake_llm,
        _git: git,
        stop,
        _cleanup: OwnerCleanup(owner),
    }
}

fn signed(body: &[u8], delivery: &str) -> Request<Body> {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    Request::post("/api/integration/github/events")
        .header("content-type", "application/json")
        .header("x-github-event", "issue_comment")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(Body::from(body.to_vec()))
        .unwrap()
}

fn fixture() -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/github/issue_comment.created.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

impl Service {
    async fn send_mention(&self) {
        let response = self
            .app
            .clone()
            .oneshot(signed(&fixture(), "gh-results-1"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }

    /// Waits until every post of the service is sent; returns the status comment's bodies.
    async fn settled_comments(&self) -> Vec<String> {
        wait_for(
            "every post to be delivered",
            Duration::from_secs(150),
            || async {
                let conversation = self
                    .t
                    .db
                    .conversation_by_external_ref("github", &format!("{REPO}#17"))
                    .await
                    .unwrap()?;
                let posts = self.t.db.outbox_posts_of(&conversation.id).await.unwrap();
                let rested = ["finished", "error", "awaiting_user_input"]
                    .contains(&conversation.status.as_str());
                (rested && posts.len() >= 3 && posts.iter().all(|p| p.status == "sent"))
                    .then_some(())
            },
        )
        .await;
        self.fakes
            .github_comments(REPO, 17)
            .into_iter()
            .map(|(_, body)| body)
            .collect()
    }
}

fn script() -> Vec<Turn> {
    vec![
        Turn::call(
            "execute_bash",
            json!({"command": "cat /workspace/repo/README"}),
        ),
        Turn::call(
            "finish",
            json!({"message": "The README says hello; nothing to fix."}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mention_is_acknowledged_and_answered_in_one_status_comment() {
    let s = service(script()).await;
    s.send_mention().await;
    let comments = s.settled_comments().await;
    assert_eq!(
        comments.len(),
        1,
        "one status comment, edited: {comments:#?}"
    );
    let body = &comments[0];
    assert!(
        body.contains("The README says hello; nothing to fix."),
        "{body}"
    );
    assert!(
        body.contains(&format!("{PUBLIC_URL}/conversations/")),
        "{body}"
    );
    assert!(body.contains("<!-- openhands:"), "{body}");
    assert!(!body.contains("ghs_installation"), "no token in comments");
    assert_eq!(
        s.fakes.github_reactions(REPO, "issues/comments/2090183412"),
        vec!["eyes".to_string()],
        "{:#?}",
        s.fakes.mutations()
    );
    s.fake_llm.assert_each_tool_call_answered_once();
    // The run saw the clone.
    let conversation =
        s.t.db
            .conversation_by_external_ref("github", &format!("{REPO}#17"))
            .await
            .unwrap()
            .unwrap();
    let events =
        s.t.db
            .events_after(&conversation.id, 0, 1000)
            .await
            .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "run" && e.payload.contains("hello"))
    );
    // Posting comments: one create, one edit.
    let mutations = s.fakes.mutations();
    let creates = mutations
        .iter()
        .filter(|m| m.starts_with("POST /github/repos/octo-org/hello-world/issues/17/comments"))
        .count();
    assert_eq!(creates, 1, "{mutations:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn github_failing_for_a_while_and_a_lost_answer_still_post_once() {
    let s = service(script()).await;
    // GitHub is down for the first attempts of the reaction and the status comment; on their
    // second attempts both go out but their answers are lost. The third attempts find them.
    s.fakes.fail_next("github", 2, 502);
    s.fakes.fail_after_commit_next("github", 2);
    s.send_mention().await;
    let comments = s.settled_comments().await;
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(comments[0].contains("nothing to fix"), "{}", comments[0]);
    assert_eq!(
        s.fakes
            .github_reactions(REPO, "issues/comments/2090183412")
            .len(),
        1
    );
    let conversation =
        s.t.db
            .conversation_by_external_ref("github", &format!("{REPO}#17"))
            .await
            .unwrap()
            .unwrap();
    let posts = s.t.db.outbox_posts_of(&conversation.id).await.unwrap();
    assert!(posts.iter().any(|p| p.attempts > 1), "{posts:#?}");
    assert!(posts.iter().all(|p| p.status == "sent"), "{posts:#?}");
    let mutations = s.fakes.mutations();
    let lost = "POST /github/repos/octo-org/hello-world/issues/17/comments -> 500";
    assert!(mutations.iter().any(|m| m == lost), "{mutations:#?}");
}

fn slack_mention() -> Request<Body> {
    let body = std::fs::read(format!(
        "{}/tests/fixtures/slack/app_mention.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let ts = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs())
    .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    for part in [b"v0:".as_slice(), ts.as_bytes(), b":", &body] {
        mac.update(part);
    }
    Request::post("/api/integration/slack/events")
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            format!("v0={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_mention_gets_a_reaction_and_replies_in_its_thread_once() {
    let s = service(vec![Turn::call(
        "finish",
        json!({"message": "Hello from the agent."}),
    )])
    .await;
    let user = s.t.db.begin().await.unwrap();
    let mut tx = user;
    let alice = tx.create_user("alice", None, false).await.unwrap();
    tx.commit().await.unwrap();
    s.t.db
        .link_user("slack", "T0001", "U0ALICE01", &alice.id)
        .await
        .unwrap();
    // Slack fails once, then loses the answers of the next two posts (they went out).
    s.fakes.fail_next("slack", 1, 500);
    s.fakes.fail_after_commit_next("slack", 2);
    let response = s.app.clone().oneshot(slack_mention()).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let thread = "1714567890.123456";
    let conversation = wait_for(
        "the Slack conversation to rest with every post sent",
        Duration::from_secs(150),
        || async {
            let conversation =
                s.t.db
                    .conversation_by_external_ref("slack", &format!("T0001/C0001/{thread}"))
                    .await
                    .unwrap()?;
            let posts = s.t.db.outbox_posts_of(&conversation.id).await.unwrap();
            (conversation.status == "finished"
                && posts.len() == 3
                && posts.iter().all(|p| p.status == "sent"))
            .then_some(conversation)
        },
    )
    .await;
    assert_eq!(
        s.fakes.slack_reactions("C0001", thread),
        vec!["eyes".to_string()]
    );
    let replies: Vec<String> = s
        .fakes
        .slack_messages("C0001", thread)
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(replies.len(), 2, "{replies:#?}\n{:#?}", s.fakes.mutations());
    assert!(
        replies[0].contains("I'm on it") && replies[0].contains(&conversation.id),
        "{}",
        replies[0]
    );
    assert!(
        replies[1].contains("Hello from the agent."),
        "{}",
        replies[1]
    );
    assert!(!replies.iter().any(|r| r.contains(fakes::SLACK_BOT_TOKEN)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gitlab_note_gets_an_award_and_one_status_note_that_says_why_it_stopped() {
    let s = service(vec![]).await;
    s.fakes.set_gitlab_level(42, "2718", 30);
    // The repository cannot be cloned: the run stops, and the note says why.
    s.fakes
        .set_gitlab_repo_url(42, "http://127.0.0.1:9/nowhere.git");
    s.fakes.fail_next("gitlab", 1, 500);
    s.fakes.fail_after_commit_next("gitlab", 2);
    let body = std::fs::read(format!(
        "{}/tests/fixtures/gitlab/note.issue.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let request = Request::post("/api/integration/gitlab/events")
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Note Hook")
        .header("x-gitlab-event-uuid", "gl-results-1")
        .header("x-gitlab-token", GITLAB_WEBHOOK_TOKEN)
        .body(Body::from(body))
        .unwrap();
    let response = s.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let conversation = wait_for(
        "the GitLab conversation to rest with every post sent",
        Duration::from_secs(150),
        || async {
            let conversation =
                s.t.db
                    .conversation_by_external_ref("gitlab", "42#7")
                    .await
                    .unwrap()?;
            let posts = s.t.db.outbox_posts_of(&conversation.id).await.unwrap();
            (conversation.status == "error"
                && posts.len() == 3
                && posts.iter().all(|p| p.status == "sent"))
            .then_some(conversation)
        },
    )
    .await;
    assert_eq!(
        s.fakes.gitlab_award_emoji(42, "issues/7/notes/1241"),
        vec!["eyes".to_string()]
    );
    let notes: Vec<String> = s
        .fakes
        .gitlab_notes(42, "issues", 7)
        .into_iter()
        .map(|(_, body)| body)
        .filter(|body| body.contains("<!-- openhands:"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}\n{:#?}", s.fakes.mutations());
    assert!(
        notes[0].contains("I stopped: The repository"),
        "{}",
        notes[0]
    );
    assert!(notes[0].contains(&conversation.id), "{}", notes[0]);
    assert!(!notes[0].contains(fakes::GITLAB_TOKEN), "no token in notes");
    assert!(s.fake_llm.requests().is_empty());
}
