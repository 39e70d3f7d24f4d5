//! Results back on GitHub, end to end: a signed webhook in, the 👀 reaction and one status
//! comment, a run on a real Docker sandbox with the repository cloned from a loopback git
//! server and the scripted LLM, then the status comment edited to the agent's summary —
//! exactly once, also when GitHub fails for a while or loses an answer.

use crate::support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use support::fake_llm::{FakeLlm, Turn};
use support::fakes::{self, FakeProviders, Fault};
use support::fixture as fixture_at;
use support::git_server::GitServer;
use support::signing;
use support::{Kind, TestDb, wait_for};
use tower::ServiceExt;

const SECRET: &str = "results-secret";
const REPO: &str = "octo-org/hello-world";
const PUBLIC_URL: &str = "https://openhands.example.test";
const SLACK_SECRET: &str = "slack-results-secret";
const GITLAB_WEBHOOK_TOKEN: &str = "gitlab-results-token";
const JIRA_SECRET: &str = "jira-results-secret";
const JIRA_DC_SECRET: &str = "jira-dc-results-secret";
const LINEAR_SECRET: &str = "linear-results-secret";
const GITHUB_TOKEN: &str = "ghs_installation_4242";
const ADMIN_KEY: &str = "results-admin-key";

/// The service with every provider pointed at the fakes, the scripted LLM and Docker
/// sandboxes; GitHub's and GitLab's repositories are served by loopback git hosts.
struct Service {
    _roles: support::service::Service,
    t: TestDb,
    app: Router,
    fakes: FakeProviders,
    fake_llm: FakeLlm,
    git: GitServer,
    gitlab_git: GitServer,
}

async fn service(script: Vec<Turn>) -> Service {
    let t = TestDb::new(Kind::Postgres).await;
    let roles = support::service::Service::builder(&t.db)
        .fakes()
        .set("--github-webhook-secret", SECRET)
        .set("--public-url", PUBLIC_URL)
        .set("--gitlab-webhook-token", GITLAB_WEBHOOK_TOKEN)
        .set("--slack-signing-secret", SLACK_SECRET)
        .set("--jira-webhook-secret", JIRA_SECRET)
        .set("--jira-dc-webhook-secret", JIRA_DC_SECRET)
        .set("--linear-webhook-secret", LINEAR_SECRET)
        .set("--ticket-repositories", format!("ENG={REPO}"))
        .admin_key(ADMIN_KEY)
        .web()
        .agent(script)
        .start()
        .await;
    let fakes = roles.fakes().clone();
    fakes.set_github_permission(REPO, "mona", "write");
    let git = GitServer::start(GITHUB_TOKEN).await;
    git.create_repo("hello-world");
    fakes.set_github_clone_url(REPO, &git.url("hello-world"));
    fakes.set_github_installation(REPO, 4242);
    let gitlab_git = GitServer::start_for("oauth2", fakes::GITLAB_TOKEN).await;
    gitlab_git.create_repo("widgets");
    fakes.set_gitlab_repo_url(42, &gitlab_git.url("widgets"));
    Service {
        t,
        app: roles.app(),
        fakes,
        fake_llm: roles.llm().clone(),
        git,
        gitlab_git,
        _roles: roles,
    }
}

fn signed(body: &[u8], delivery: &str) -> Request<Body> {
    signed_event(body, delivery, "issue_comment")
}

fn signed_event(body: &[u8], delivery: &str, event: &str) -> Request<Body> {
    signing::github(SECRET, event, delivery, body).into()
}

fn fixture() -> Vec<u8> {
    fixture_at("github/issue_comment.created.json")
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
    // The status comment, delivered back as a webhook (from an account that is no bot), is
    // not a request.
    let mut own: serde_json::Value = serde_json::from_slice(&fixture()).unwrap();
    own["comment"]["id"] = json!(999_001);
    own["comment"]["body"] = json!(format!("@openhands {body}"));
    let own = serde_json::to_vec(&own).unwrap();
    assert_ignored(&s, signed(&own, "gh-results-own")).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_status_comment_is_replaced_by_a_new_one() {
    // The model answers late, so the acknowledgement is out (and deleted) before the run ends.
    let mut late = script();
    late[0] = late[0].clone().after(Duration::from_secs(8));
    let s = service(late).await;
    s.send_mention().await;
    let (acknowledged, text) = wait_for("the status comment", Duration::from_secs(30), || async {
        s.fakes.github_comments(REPO, 17).first().cloned()
    })
    .await;
    assert!(
        text.starts_with("I'm on it!"),
        "the run ended before the status comment could be deleted: {text}"
    );
    s.fakes.delete_github_comment(acknowledged);
    let comments = s.settled_comments().await;
    assert_eq!(comments.len(), 1, "one new status comment: {comments:#?}");
    assert!(comments[0].contains("nothing to fix"), "{}", comments[0]);
    let replacement = s.fakes.github_comments(REPO, 17)[0].0;
    assert_ne!(replacement, acknowledged);
    // The edit was refused once with 404; nothing is failed and the status post now names the
    // new comment, so later edits go to it.
    let mutations = s.fakes.mutations();
    let refused = format!("/issues/comments/{acknowledged} -> 404");
    assert!(
        mutations.iter().any(|m| m.ends_with(&refused)),
        "{mutations:#?}"
    );
    let conversation =
        s.t.db
            .conversation_by_external_ref("github", &format!("{REPO}#17"))
            .await
            .unwrap()
            .unwrap();
    let posts = s.t.db.outbox_posts_of(&conversation.id).await.unwrap();
    assert!(posts.iter().all(|p| p.status == "sent"), "{posts:#?}");
    let status = posts.iter().find(|p| p.kind == "status").unwrap();
    let result: serde_json::Value =
        serde_json::from_str(status.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["comment_id"], replacement, "{posts:#?}");
}

fn slack_mention() -> Request<Body> {
    signing::slack(SLACK_SECRET, fixture_at("slack/app_mention.json")).into()
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

/// Images shared with a Slack mention are read with the bot token and kept with the message
/// as data URLs; a file that is not an image, or another kind of file, is not.
/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

#[tokio::test(flavor = "multi_thread")]
async fn images_shared_with_a_slack_mention_reach_the_conversation() {
    let s = service(vec![Turn::call(
        "finish",
        json!({"message": "Looked at it."}),
    )])
    .await;
    let mut tx = s.t.db.begin().await.unwrap();
    let alice = tx.create_user("alice", None, false).await.unwrap();
    tx.commit().await.unwrap();
    s.t.db
        .link_user("slack", "T0001", "U0ALICE01", &alice.id)
        .await
        .unwrap();
    let screenshot = s.fakes.add_slack_file("T0001-F0SHOT/screenshot.png", PNG);
    let fake_png = s
        .fakes
        .add_slack_file("T0001-F0FAKE/notes.png", b"plain text");
    let pdf = s.fakes.add_slack_file("T0001-F0PDF/spec.pdf", b"%PDF-1.4");
    // The Events API's description of shared files (`files` with `mimetype` and `url_private`).
    let mut delivery: Value =
        serde_json::from_slice(&fixture_at("slack/app_mention.json")).unwrap();
    delivery["event_id"] = json!("Ev0IMAGES1");
    delivery["event"]["files"] = json!([
        {"id": "F0SHOT", "name": "screenshot.png", "mimetype": "image/png", "filetype": "png", "url_private": screenshot},
        {"id": "F0FAKE", "name": "notes.png", "mimetype": "image/png", "filetype": "png", "url_private": fake_png},
        {"id": "F0PDF", "name": "spec.pdf", "mimetype": "application/pdf", "filetype": "pdf", "url_private": pdf},
    ]);
    let request: Request<Body> =
        signing::slack(SLACK_SECRET, serde_json::to_vec(&delivery).unwrap()).into();
    let response = s.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let conversation = wait_for(
        "the Slack conversation to finish",
        Duration::from_secs(150),
        || async {
            let conversation =
                s.t.db
                    .conversation_by_external_ref("slack", "T0001/C0001/1714567890.123456")
                    .await
                    .unwrap()?;
            (conversation.status == "finished").then_some(conversation)
        },
    )
    .await;
    let events =
        s.t.db
            .events_after(&conversation.id, 0, 1000)
            .await
            .unwrap();
    let message: Value = events
        .iter()
        .find(|e| e.kind == "message" && e.source == "user")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .unwrap();
    let images = message["args"]["image_urls"].as_array().unwrap();
    assert_eq!(images.len(), 1, "only the real image: {images:?}");
    use base64::Engine as _;
    let expected = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(PNG)
    );
    assert_eq!(images[0], json!(expected));
    let note = events
        .iter()
        .find(|e| e.payload.contains("could not be read"))
        .map(|e| e.payload.clone())
        .expect("a note about the file that is not an image");
    assert!(
        note.contains("notes.png") && !note.contains("spec.pdf"),
        "{note}"
    );
    // Read with the bot token, which is recorded nowhere.
    let reads = s.fakes.recorded(|r| r.slack_file_reads.clone());
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(
        reads
            .iter()
            .all(|r| r.as_deref() == Some(&format!("Bearer {}", fakes::SLACK_BOT_TOKEN)))
    );
    assert!(
        !events
            .iter()
            .any(|e| e.payload.contains(fakes::SLACK_BOT_TOKEN))
    );
    // The model (one that cannot see images) is told of it.
    assert!(
        s.fake_llm
            .requests()
            .iter()
            .any(|r| r.body.to_string().contains("attached 1 image(s)")),
        "the model is told of the image"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn images_uploaded_to_a_github_comment_reach_the_conversation() {
    let s = service(vec![Turn::call(
        "finish",
        json!({"message": "Looked at it."}),
    )])
    .await;
    let screenshot = s.fakes.add_github_image("1/2-shot.png", PNG);
    let not_an_image = s.fakes.add_github_image("1/3-notes.png", b"plain text");
    // What GitHub's uploader writes into the comment, an older upload, and a picture on
    // another site (not an attachment: it is not read).
    let mut delivery: Value = serde_json::from_slice(&fixture()).unwrap();
    delivery["comment"]["body"] = json!(
        "@openhands the button is cut off:\n\n\
         <img width=\"1031\" height=\"400\" alt=\"image\" src=\"https://github.com/user-attachments/assets/0a1b2c3d-4e5f-6789-abcd-ef0123456789\" />\n\n\
         ![notes.png](https://user-images.githubusercontent.com/583231/99999999-aaaa.png)\n\
         ![logo](https://example.com/logo.png)"
    );
    // GitHub's rendering of it: signed links to its image host (here the fake's).
    s.fakes.set_github_rendering(
        REPO,
        "issues/comments/2090183412",
        &format!(
            "<p>@openhands the button is cut off:</p>\n<p><a href=\"{screenshot}\"><img width=\"1031\" alt=\"image\" src=\"{screenshot}\"></a></p>\n\
             <p><a href=\"{not_an_image}\"><img src=\"{not_an_image}\" alt=\"notes.png\"></a>\n\
             <a href=\"https://camo.githubusercontent.com/abc\"><img src=\"https://camo.example.net/abc\" alt=\"logo\"></a></p>"
        ),
    );
    let response = s
        .app
        .clone()
        .oneshot(signed(
            &serde_json::to_vec(&delivery).unwrap(),
            "gh-images-1",
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let conversation = wait_for(
        "the GitHub conversation to finish",
        Duration::from_secs(150),
        || async {
            let conversation =
                s.t.db
                    .conversation_by_external_ref("github", &format!("{REPO}#17"))
                    .await
                    .unwrap()?;
            (conversation.status == "finished").then_some(conversation)
        },
    )
    .await;
    let events =
        s.t.db
            .events_after(&conversation.id, 0, 1000)
            .await
            .unwrap();
    let message: Value = events
        .iter()
        .find(|e| e.kind == "message" && e.source == "user")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .unwrap();
    use base64::Engine as _;
    let expected = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(PNG)
    );
    assert_eq!(message["args"]["image_urls"], json!([expected]));
    let note = events
        .iter()
        .find(|e| e.payload.contains("could not be read"))
        .map(|e| e.payload.clone())
        .expect("a note about the upload that is not an image");
    assert!(note.contains("notes.png"), "{note}");
    // The images were read without the installation's token, which no event holds.
    let reads = s.fakes.recorded(|r| r.github_image_reads.clone());
    assert_eq!(reads, vec![None, None]);
    assert!(
        !events
            .iter()
            .any(|e| e.payload.contains("ghs_installation"))
    );
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
    s.accept(gitlab_note("gitlab/note.issue.json", "gl-results-1"))
        .await;
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

impl Service {
    /// Waits until the conversation of `external_ref` rests in `status` with `posts` posts,
    /// none of them pending.
    async fn settled(
        &self,
        provider: &str,
        external_ref: &str,
        status: &str,
        posts: usize,
    ) -> openhands::storage::Conversation {
        let started = std::time::Instant::now();
        loop {
            let conversation = self
                .t
                .db
                .conversation_by_external_ref(provider, external_ref)
                .await
                .unwrap();
            let stored = match &conversation {
                Some(c) => self.t.db.outbox_posts_of(&c.id).await.unwrap(),
                None => Vec::new(),
            };
            if let Some(conversation) = &conversation
                && conversation.status == status
                && stored.len() == posts
                && stored.iter().all(|p| p.status != "pending")
            {
                return conversation.clone();
            }
            if started.elapsed() > Duration::from_secs(150) {
                let events = match &conversation {
                    Some(c) => self.event_kinds(&c.id).await,
                    None => Vec::new(),
                };
                panic!(
                    "the {provider} conversation did not rest in {status} with {posts} posts sent: {:?}\nposts: {stored:#?}\nevents: {events:#?}\nmutations: {:#?}",
                    conversation.map(|c| c.status),
                    self.fakes.mutations()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn event_kinds(&self, conversation_id: &str) -> Vec<(String, String)> {
        self.t
            .db
            .events_after(conversation_id, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.payload))
            .collect()
    }
}

impl Service {
    /// Sends a webhook the service must accept.
    async fn accept(&self, request: Request<Body>) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}

/// A signed GitLab note hook.
fn gitlab_note(fixture: &str, uuid: &str) -> Request<Body> {
    signing::gitlab(GITLAB_WEBHOOK_TOKEN, "Note Hook", uuid, fixture_at(fixture)).into()
}

/// How many commits `branch` of `repo` has beyond `base`.
fn commits_since(git: &GitServer, repo: &str, base: &str, branch: &str) -> String {
    let head = git
        .head(repo, branch)
        .unwrap_or_else(|| panic!("{branch} was not pushed: {:#?}", git.log()));
    git.git(repo, &["rev-list", "--count", &format!("{base}..{head}")])
        .trim()
        .to_string()
}

/// A commit of the agent's own, then a change left uncommitted, then the finish.
fn work_script(summary: &str) -> Vec<Turn> {
    vec![
        Turn::call(
            "execute_bash",
            json!({"command": "cd /workspace/repo && printf 'hello, world\\n' > README && git commit -qam 'Greet the world'"}),
        ),
        Turn::call(
            "execute_bash",
            json!({"command": "cd /workspace/repo && echo 'notes' > NOTES.md"}),
        ),
        Turn::call("finish", json!({"message": summary})),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issue_ends_in_a_pushed_branch_and_one_pull_request_linked_in_the_status_comment() {
    let s = service(work_script(
        "Fixed the greeting.\nREADME now greets the world.",
    ))
    .await;
    let base = s.git.head("hello-world", "main").unwrap();
    // GitHub refuses the pull request once, then opens it but loses the answer.
    s.fakes.fault_next_at(
        "github",
        "/pulls",
        vec![Fault::Refuse(502), Fault::LoseAnswer],
    );
    s.send_mention().await;
    let conversation = s
        .settled("github", &format!("{REPO}#17"), "finished", 4)
        .await;

    let branch = "openhands/17-parser-panics-on-empty-input";
    let head = s
        .git
        .head("hello-world", branch)
        .unwrap_or_else(|| panic!("{branch} was not pushed: {:#?}", s.git.log()));
    let subjects = s.git.git(
        "hello-world",
        &["log", "--format=%s", &format!("{base}..{head}")],
    );
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        vec!["Fixed the greeting.", "Greet the world"],
        "the uncommitted change is committed with the summary as its message"
    );
    assert_eq!(
        s.git
            .git("hello-world", &["show", &format!("{branch}:NOTES.md")])
            .trim(),
        "notes"
    );
    assert_eq!(s.git.head("hello-world", "main").unwrap(), base);

    let pulls = s.fakes.github_pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}\n{:#?}", s.fakes.mutations());
    let pull = &pulls[0];
    assert_eq!(pull["head"]["ref"], branch);
    assert_eq!(pull["base"]["ref"], "main");
    assert_eq!(pull["draft"], true);
    assert_eq!(pull["title"], "Fix #17: Parser panics on empty input");
    let body = pull["body"].as_str().unwrap();
    assert!(
        body.contains("Fixed the greeting.") && body.contains("Fixes #17"),
        "{body}"
    );
    assert!(body.contains(&conversation.id), "{body}");
    let mutations = s.fakes.mutations();
    let creates: Vec<&String> = mutations
        .iter()
        .filter(|m| m.starts_with("POST /github/repos/octo-org/hello-world/pulls "))
        .collect();
    assert_eq!(creates.len(), 2, "{mutations:#?}");

    let comments: Vec<String> = s
        .fakes
        .github_comments(REPO, 17)
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(comments.len(), 1, "{comments:#?}");
    let status = &comments[0];
    assert!(status.contains("Fixed the greeting."), "{status}");
    assert!(
        status.contains("Pull request: https://github.com/octo-org/hello-world/pull/101"),
        "{status}"
    );
    for text in [status.as_str(), body] {
        assert!(!text.contains(GITHUB_TOKEN), "no token in posts");
    }
    let events = s.event_kinds(&conversation.id).await;
    let pushed = events
        .iter()
        .find(|(kind, _)| kind == "git_push")
        .expect("a git_push event");
    assert!(pushed.1.contains(branch) && !pushed.1.contains(GITHUB_TOKEN));
    assert!(events.iter().any(|(kind, _)| kind == "repository_checkout"));
    s.fake_llm.assert_each_tool_call_answered_once();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_review_comment_pushes_to_the_pull_requests_branch_and_replies_in_its_thread() {
    let s = service(work_script("Added the Display impl.")).await;
    let base = s.git.head("hello-world", "main").unwrap();
    s.git
        .git("hello-world", &["branch", "fix/empty-input", "main"]);
    s.fakes
        .add_github_pull(REPO, 21, "octo-org", "fix/empty-input", "main");
    let body = fixture_at("github/pull_request_review_comment.created.json");
    s.accept(signed_event(
        &body,
        "gh-review-1",
        "pull_request_review_comment",
    ))
    .await;
    // Reaction, status comment, review reply, status update.
    s.settled("github", &format!("{REPO}#21"), "finished", 4)
        .await;

    assert_eq!(
        commits_since(&s.git, "hello-world", &base, "fix/empty-input"),
        "2"
    );
    assert_eq!(s.fakes.github_pulls(REPO).len(), 1, "no new pull request");
    let replies = s.fakes.github_review_replies(REPO, 21);
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(replies[0].0, 1587402211);
    assert!(
        replies[0].1.contains("Added the Display impl."),
        "{}",
        replies[0].1
    );
    let comments = s.fakes.github_comments(REPO, 21);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0]
            .1
            .contains("The changes are pushed to `fix/empty-input`."),
        "{}",
        comments[0].1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_from_a_fork_says_its_branch_cannot_be_pushed() {
    let s = service(work_script("Added the Display impl.")).await;
    s.git.create_repo("fork");
    s.git.git("fork", &["branch", "fix/empty-input", "main"]);
    let fork_head = s.git.head("fork", "fix/empty-input").unwrap();
    s.fakes
        .set_github_clone_url("contributor/hello-world", &s.git.url("fork"));
    s.fakes
        .add_github_pull(REPO, 21, "contributor", "fix/empty-input", "main");
    let body = fixture_at("github/pull_request_review_comment.created.json");
    s.accept(signed_event(
        &body,
        "gh-review-2",
        "pull_request_review_comment",
    ))
    .await;
    s.settled("github", &format!("{REPO}#21"), "finished", 4)
        .await;
    // The agent worked on the fork's branch; nothing was pushed anywhere.
    assert!(s.fake_llm.requests().len() >= 3);
    assert_eq!(s.git.head("fork", "fix/empty-input").unwrap(), fork_head);
    assert_eq!(s.git.head("hello-world", "fix/empty-input"), None);
    let comments = s.fakes.github_comments(REPO, 21);
    let status = &comments[0].1;
    assert!(
        status.contains("The changes could not be pushed")
            && status.contains("fork contributor/hello-world"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gitlab_issue_ends_in_a_pushed_branch_and_one_merge_request() {
    let s = service(work_script("Rounded the resize.")).await;
    s.fakes.set_gitlab_level(42, "2718", 30);
    let base = s.gitlab_git.head("widgets", "main").unwrap();
    s.accept(gitlab_note("gitlab/note.issue.json", "gl-results-2"))
        .await;
    s.fakes.fault_next_at(
        "gitlab",
        "/merge_requests",
        vec![Fault::Refuse(500), Fault::LoseAnswer],
    );
    let conversation = s.settled("gitlab", "42#7", "finished", 4).await;

    let branch = "openhands/7-resize-test-fails-on-main";
    assert_eq!(commits_since(&s.gitlab_git, "widgets", &base, branch), "2");
    let requests = s.fakes.gitlab_merge_requests(42);
    assert_eq!(
        requests.len(),
        1,
        "{requests:#?}\n{:#?}",
        s.fakes.mutations()
    );
    let request = &requests[0];
    assert_eq!(request["source_branch"], branch);
    assert_eq!(request["target_branch"], "main");
    assert_eq!(request["title"], "Draft: Fix #7: Resize test fails on main");
    let description = request["description"].as_str().unwrap();
    assert!(description.contains("Closes #7") && description.contains(&conversation.id));
    let notes: Vec<String> = s
        .fakes
        .gitlab_notes(42, "issues", 7)
        .into_iter()
        .map(|(_, body)| body)
        .filter(|body| body.contains("<!-- openhands:"))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let web_url = request["web_url"].as_str().unwrap();
    assert!(notes[0].contains("Rounded the resize."), "{}", notes[0]);
    assert!(
        notes[0].contains(&format!("Merge request: {web_url}")),
        "{}",
        notes[0]
    );
    assert!(!notes[0].contains(fakes::GITLAB_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gitlab_diff_note_pushes_to_the_source_branch_and_replies_in_its_discussion() {
    let s = service(work_script("Fixed the rounding.")).await;
    s.fakes.set_gitlab_level(42, "2718", 30);
    s.gitlab_git
        .git("widgets", &["branch", "fix/resize-rounding", "main"]);
    let base = s.gitlab_git.head("widgets", "fix/resize-rounding").unwrap();
    s.fakes
        .add_gitlab_merge_request(42, 15, "fix/resize-rounding", "main");
    s.accept(gitlab_note(
        "gitlab/note.merge_request.diff.json",
        "gl-results-3",
    ))
    .await;
    s.settled("gitlab", "42!15", "finished", 4).await;
    assert_eq!(
        commits_since(&s.gitlab_git, "widgets", &base, "fix/resize-rounding"),
        "2"
    );
    assert_eq!(
        s.fakes.gitlab_merge_requests(42).len(),
        1,
        "no new merge request"
    );
    let in_discussion: Vec<String> = s.fakes.recorded(|r| {
        r.gitlab_notes
            .iter()
            .filter(|n| {
                n.discussion_id.as_deref() == Some("c41f0e7d2b9a8e6f5d4c3b2a1f0e9d8c7b6a5f4e")
            })
            .map(|n| n.body.clone())
            .collect()
    });
    assert_eq!(in_discussion.len(), 1, "{in_discussion:#?}");
    assert!(in_discussion[0].contains("Fixed the rounding."));
}

/// A signed Jira `comment_created` webhook from `site`: "@openhands please fix the flaky test"
/// on ENG-42.
fn jira_comment(site: &str, delivery: &str) -> Request<Body> {
    let body = String::from_utf8(fixture_at("jira/comment_created.json"))
        .unwrap()
        .replace("https://acme.atlassian.net", site);
    signing::jira(JIRA_SECRET, delivery, body).into()
}

/// Linear's comment webhook on ENG-7, sent now.
fn linear_comment_payload() -> serde_json::Value {
    let mut linear: serde_json::Value =
        serde_json::from_slice(&fixture_at("linear/comment.create.json")).unwrap();
    signing::stamp_linear(&mut linear);
    linear
}

fn linear_comment(payload: &serde_json::Value, delivery: &str) -> Request<Body> {
    signing::linear(
        LINEAR_SECRET,
        delivery,
        serde_json::to_vec(payload).unwrap(),
    )
    .into()
}

impl Service {
    /// Alice, whose Jira and Linear accounts are linked.
    async fn link_ticket_accounts(&self) {
        let mut tx = self.t.db.begin().await.unwrap();
        let alice = tx.create_user("alice", None, false).await.unwrap();
        tx.commit().await.unwrap();
        self.t
            .db
            .link_user(
                "jira",
                &self.fakes.jira_site_url(),
                fakes::JIRA_ACCOUNT_ID,
                &alice.id,
            )
            .await
            .unwrap();
        self.t
            .db
            .link_user(
                "linear",
                "org-1",
                "e5a3c1f0-6b2d-4c8e-9f7a-1d2e3f4a5b6c",
                &alice.id,
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_and_linear_tickets_get_an_acknowledgement_and_a_summary_comment_once() {
    let s = service(vec![
        Turn::call("finish", json!({"message": "The flaky test is explained."})),
        Turn::call("finish", json!({"message": "The flaky test is explained."})),
    ])
    .await;
    let site = s.fakes.jira_site_url();
    s.link_ticket_accounts().await;
    // Each fails once, then loses the answer of the next post (which went out).
    s.fakes.fail_next("jira", 1, 503);
    s.fakes.fail_after_commit_next("jira", 1);
    s.fakes.fail_next("linear", 1, 500);
    s.fakes.fail_after_commit_next("linear", 1);

    s.accept(jira_comment(&site, "jira-results-1")).await;
    let jira = s
        .settled("jira", &format!("{site}/ENG-42"), "finished", 2)
        .await;

    let mut linear = linear_comment_payload();
    s.accept(linear_comment(&linear, "linear-results-1")).await;
    let issue_id = "9cfb482a-81e3-4154-b5b9-2c805e70a02d";
    let linear_conversation = s
        .settled("linear", &format!("org-1/{issue_id}"), "finished", 2)
        .await;

    let jira_comments: Vec<String> = s
        .fakes
        .jira_comments("ENG-42")
        .iter()
        .map(|(_, body)| fakes::jira::adf_text(body))
        .collect();
    assert_eq!(
        jira_comments.len(),
        2,
        "{jira_comments:#?}\n{:#?}",
        s.fakes.mutations()
    );
    assert!(jira_comments[0].contains("I'm on it") && jira_comments[0].contains(&jira.id));
    assert!(jira_comments[1].contains("The flaky test is explained."));
    assert!(jira_comments[1].contains(&jira.id));
    let linear_comments: Vec<String> = s
        .fakes
        .linear_comments(issue_id)
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        linear_comments.len(),
        2,
        "{linear_comments:#?}\n{:#?}",
        s.fakes.mutations()
    );
    assert!(linear_comments[0].contains("I'm on it"));
    assert!(linear_comments[1].contains("The flaky test is explained."));
    assert!(linear_comments[1].contains(&linear_conversation.id));
    for text in jira_comments.iter().chain(&linear_comments) {
        assert!(!text.contains(fakes::JIRA_API_TOKEN) && !text.contains(fakes::LINEAR_API_KEY));
    }

    // The service's own comments, delivered back as webhooks, are not requests.
    let (ack_id, _) = s.fakes.linear_comments(issue_id)[0].clone();
    linear["data"]["id"] = json!(ack_id);
    linear["data"]["body"] = json!("@openhands I'm on it!");
    assert_ignored(&s, linear_comment(&linear, "linear-results-own")).await;
    let (jira_ack, _) = s.fakes.jira_comments("ENG-42")[1].clone();
    let mut own: serde_json::Value = serde_json::from_str(
        &String::from_utf8(fixture_at("jira/comment_created.json"))
            .unwrap()
            .replace("https://acme.atlassian.net", &site),
    )
    .unwrap();
    own["comment"]["id"] = json!(jira_ack);
    let request = signing::jira(
        JIRA_SECRET,
        "jira-results-own",
        serde_json::to_vec(&own).unwrap(),
    );
    assert_ignored(&s, request.into()).await;
}

/// A Jira Data Center comment as Data Center sends it (published by the Jenkins JIRA Trigger
/// plugin), moved to `site` and ENG-43, written by the user of key `admin`.
fn jira_data_center_comment(site: &str, event: &str, text: &str) -> Request<Body> {
    let fixture = match event {
        "jira:issue_updated" => {
            "jira-dc/published/issue_updated.jira-trigger-plugin.with_comment.json"
        }
        _ => "jira-dc/published/comment_created.jira-trigger-plugin.no_issue.json",
    };
    let body = String::from_utf8(fixture_at(fixture))
        .unwrap()
        .replace("http://localhost:2990/jira", site)
        .replace("TEST-4", "ENG-43");
    let mut body: serde_json::Value = serde_json::from_str(&body).unwrap();
    body["comment"]["body"] = json!(text);
    signing::jira_data_center(JIRA_DC_SECRET, serde_json::to_vec(&body).unwrap()).into()
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_data_center_tickets_are_answered_in_wiki_markup_with_a_personal_access_token() {
    let summary =
        "The **flaky test** waits for `checkout`; see [the run](https://ci.example.test/7).";
    let s = service(vec![Turn::call("finish", json!({"message": summary}))]).await;
    let site = s.fakes.jira_dc_site_url();
    let mut tx = s.t.db.begin().await.unwrap();
    let alice = tx.create_user("alice", None, false).await.unwrap();
    tx.commit().await.unwrap();
    s.t.db
        .link_user("jira-dc", &site, "admin", &alice.id)
        .await
        .unwrap();
    // The comment's own event names no issue; the issue update that carries it asks.
    let text = format!(
        "[~{}] please explain the flaky test",
        fakes::JIRA_DC_USERNAME
    );
    let answer = answer_to(
        &s,
        jira_data_center_comment(&site, "comment_created", &text),
    )
    .await;
    assert_eq!(answer["status"], "ignored", "{answer}");
    s.accept(jira_data_center_comment(&site, "jira:issue_updated", &text))
        .await;
    let conversation = s
        .settled("jira-dc", &format!("{site}/ENG-43"), "finished", 2)
        .await;
    assert_eq!(conversation.owner_id, alice.id);
    let comments: Vec<String> = s
        .fakes
        .jira_dc_comments("ENG-43")
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        comments.len(),
        2,
        "{comments:#?}\n{:#?}",
        s.fakes.mutations()
    );
    assert!(comments[0].contains("I'm on it") && comments[0].contains(&conversation.id));
    assert!(
        comments[1].contains(
            "The *flaky test* waits for {{checkout}}; see [the run|https://ci.example.test/7]."
        ),
        "{}",
        comments[1]
    );
    assert!(comments[1].contains(&conversation.id));
    assert!(s.fakes.jira_comments("ENG-43").is_empty());
    for text in &comments {
        assert!(!text.contains(fakes::JIRA_DC_TOKEN));
    }
    // Delivered again (no id header: the body names it), the delivery is a duplicate.
    let again = jira_data_center_comment(&site, "jira:issue_updated", &text);
    assert_eq!(answer_to(&s, again).await["status"], "duplicate");
}

/// The service's answer to a delivery it answers 200.
async fn answer_to(s: &Service, request: Request<Body>) -> serde_json::Value {
    let response = s.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_end_in_a_pull_request_on_their_repository_linked_in_the_ticket() {
    let mut script = work_script("Fixed the flaky test.\nThe retry waits for the checkout.");
    script.extend(work_script("Fixed it again."));
    let s = service(script).await;
    let base = s.git.head("hello-world", "main").unwrap();
    let site = s.fakes.jira_site_url();
    s.link_ticket_accounts().await;
    // The pull request is opened, but its answer lost: still one.
    s.fakes
        .fault_next_at("github", "/pulls", vec![Fault::LoseAnswer]);

    s.accept(jira_comment(&site, "jira-ticket-pr")).await;
    let jira = s
        .settled("jira", &format!("{site}/ENG-42"), "finished", 3)
        .await;
    assert_eq!(jira.repository.as_deref(), Some(REPO));
    let jira_branch = "openhands/ENG-42-flaky-test-test-checkout-retries";
    assert_eq!(
        commits_since(&s.git, "hello-world", &base, jira_branch),
        "2"
    );

    s.accept(linear_comment(
        &linear_comment_payload(),
        "linear-ticket-pr",
    ))
    .await;
    let issue_id = "9cfb482a-81e3-4154-b5b9-2c805e70a02d";
    let linear = s
        .settled("linear", &format!("org-1/{issue_id}"), "finished", 3)
        .await;
    assert_eq!(linear.repository.as_deref(), Some(REPO));
    let linear_branch = "openhands/ENG-7-flaky-test-test-checkout-retries";
    assert_eq!(
        commits_since(&s.git, "hello-world", &base, linear_branch),
        "2"
    );
    assert_eq!(s.git.head("hello-world", "main").unwrap(), base);

    let pulls = s.fakes.github_pulls(REPO);
    assert_eq!(pulls.len(), 2, "{pulls:#?}\n{:#?}", s.fakes.mutations());
    let jira_pull = pulls
        .iter()
        .find(|p| p["head"]["ref"] == jira_branch)
        .unwrap();
    assert_eq!(
        jira_pull["title"],
        "ENG-42: Flaky test: test_checkout_retries"
    );
    assert_eq!(jira_pull["base"]["ref"], "main");
    let body = jira_pull["body"].as_str().unwrap();
    assert!(body.contains("Fixed the flaky test."), "{body}");
    assert!(
        body.contains(&format!("Ticket: [ENG-42]({site}/browse/ENG-42)")),
        "{body}"
    );
    assert!(
        body.contains(&jira.id) && !body.contains("Fixes #"),
        "{body}"
    );
    let linear_pull = pulls
        .iter()
        .find(|p| p["head"]["ref"] == linear_branch)
        .unwrap();
    let body = linear_pull["body"].as_str().unwrap();
    assert!(
        body.contains("Ticket: [ENG-7](https://linear.app/acme/issue/ENG-7/"),
        "{body}"
    );

    let link =
        |pull: &serde_json::Value| format!("Pull request: {}", pull["html_url"].as_str().unwrap());
    let jira_comments: Vec<String> = s
        .fakes
        .jira_comments("ENG-42")
        .iter()
        .map(|(_, body)| fakes::jira::adf_text(body))
        .collect();
    assert_eq!(jira_comments.len(), 2, "{jira_comments:#?}");
    let summary = &jira_comments[1];
    assert!(summary.contains("Fixed the flaky test."), "{summary}");
    assert!(summary.contains(&link(jira_pull)), "{summary}");
    let linear_comments: Vec<String> = s
        .fakes
        .linear_comments(issue_id)
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(linear_comments.len(), 2, "{linear_comments:#?}");
    assert!(
        linear_comments[1].contains(&link(linear_pull)),
        "{linear_comments:#?}"
    );
    for text in jira_comments.iter().chain(&linear_comments) {
        assert!(!text.contains(GITHUB_TOKEN), "no token in posts");
    }
    s.fake_llm.assert_each_tool_call_answered_once();
}

/// The delivery ends ignored as a post of the agent: at once when it carries a post's marker,
/// or by its intake job when only the stored posts tell.
async fn assert_ignored(s: &Service, request: Request<Body>) {
    let response = s.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let expected = match status {
        StatusCode::OK => "ignored",
        StatusCode::ACCEPTED => "accepted",
        other => panic!("answered {other}: {answer}"),
    };
    assert_eq!(answer["status"], expected, "{answer}");
    let id = answer["delivery"].as_i64().unwrap();
    let delivery = wait_for(
        &format!("delivery {id} to be decided"),
        Duration::from_secs(30),
        || async {
            let delivery = s.t.db.delivery(id).await.unwrap();
            (delivery.status != "accepted").then_some(delivery)
        },
    )
    .await;
    assert_eq!(delivery.status, "ignored");
    assert_eq!(
        delivery.reason.as_deref(),
        Some("a post of the agent itself")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_the_provider_refuses_fails_at_once_and_shows_with_its_delivery() {
    let s = service(vec![Turn::call(
        "finish",
        json!({"message": "Nothing to do."}),
    )])
    .await;
    // The comment that asked was deleted: GitHub answers 404 to the reaction.
    s.fakes
        .fault_next_at("github", "/reactions", vec![Fault::Refuse(404)]);
    let response = s
        .app
        .clone()
        .oneshot(signed(&fixture(), "gh-results-refused"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let delivery = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["delivery"]
        .as_i64()
        .unwrap();
    s.settled("github", &format!("{REPO}#17"), "finished", 3)
        .await;
    let request = Request::get(format!("/api/deliveries/{delivery}"))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Body::empty())
        .unwrap();
    let response = s.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let view: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(view["status"], "accepted", "{view:#}");
    let posts = view["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 3, "{view:#}");
    let reaction = posts.iter().find(|p| p["kind"] == "reaction").unwrap();
    assert_eq!(reaction["status"], "failed", "{view:#}");
    assert_eq!(reaction["attempts"], 1, "a refusal is not retried");
    assert!(
        reaction["last_error"].as_str().unwrap().contains("404"),
        "{view:#}"
    );
    assert!(
        posts
            .iter()
            .filter(|p| p["kind"] != "reaction")
            .all(|p| p["status"] == "sent"),
        "{view:#}"
    );
    assert!(
        !body
            .windows(GITHUB_TOKEN.len())
            .any(|w| w == GITHUB_TOKEN.as_bytes())
    );
    // The conversation's own view says so too.
    let conversation_id = view["conversation_id"].as_str().unwrap();
    let request = Request::get(format!("/api/conversations/{conversation_id}"))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Body::empty())
        .unwrap();
    let response = s.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let conversation: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let failed = conversation["failed_posts"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{conversation:#}");
    assert_eq!(failed[0]["provider"], "github");
    assert_eq!(failed[0]["kind"], "reaction");
    assert!(
        failed[0]["last_error"].as_str().unwrap().contains("404"),
        "{conversation:#}"
    );
}

/// The script of the web-conversation tests: read the clone's last commit, then finish.
fn last_commit_script() -> Vec<Turn> {
    vec![
        Turn::call(
            "execute_bash",
            json!({"command": "git -C /workspace/repo log --format=%s -1"}),
        ),
        Turn::call("finish", json!({"message": "Read the last commit."})),
    ]
}

/// The host of a provider's API URL: the workspace its accounts are linked under.
fn host_of(api_url: &str) -> String {
    url::Url::parse(api_url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string()
}

impl Service {
    /// A new user `login`, with the provider account `link` (provider, workspace, account id)
    /// when given, asks the web API for a conversation on `repository`; returns its id.
    async fn start_web_conversation(
        &self,
        login: &str,
        link: Option<(&str, &str, &str)>,
        repository: serde_json::Value,
    ) -> String {
        let (status, answer) = self.ask_for_web_conversation(login, link, repository).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["conversation_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"))
            .to_string()
    }

    /// As `start_web_conversation`, but returns the API's status and JSON answer as they are,
    /// after checking that a refused request left no conversation behind.
    async fn ask_for_web_conversation(
        &self,
        login: &str,
        link: Option<(&str, &str, &str)>,
        repository: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let user = self.t.db.create_user(login, None, false).await.unwrap();
        if let Some((provider, workspace, account)) = link {
            self.t
                .db
                .link_user(provider, workspace, account, &user.id)
                .await
                .unwrap();
        }
        let (key, _) = openhands::web::keys::issue_key(&self.t.db, &user.id, "test", None)
            .await
            .unwrap();
        let mut body = json!({"initial_user_msg": "What is the last commit?"});
        if let (Some(body), Some(repository)) = (body.as_object_mut(), repository.as_object()) {
            body.extend(repository.clone());
        }
        let request = Request::post("/api/conversations")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if !status.is_success() {
            let left = self.t.db.conversations_of(&user.id, 10).await.unwrap();
            assert!(left.is_empty(), "a refused request created {left:?}");
        }
        (status, answer)
    }

    /// Waits until conversation `id` is `status`; returns its events.
    async fn rested(&self, id: &str, status: &str) -> Vec<(String, String)> {
        wait_for(
            &format!("conversation {id} to be {status}"),
            Duration::from_secs(120),
            || async {
                let c = self.t.db.conversation(id).await.unwrap();
                (c.status == status).then_some(())
            },
        )
        .await;
        self.event_kinds(id).await
    }
}

/// A conversation started through the web API on a GitHub repository: the worker clones it
/// through the GitHub App when the owner's linked GitHub account may push there, and otherwise
/// stops the run saying why.
#[tokio::test(flavor = "multi_thread")]
async fn a_web_conversation_on_a_repository_clones_it_for_an_owner_who_may_push() {
    let s = service(last_commit_script()).await;
    let last_subject = s
        .git
        .git("hello-world", &["log", "--format=%s", "-1", "main"])
        .trim()
        .to_string();
    let host = host_of(&s.fakes.github_api_url());
    // mona may write to the repository (see `service`); rita may only read.
    s.fakes.set_github_account(1001, "mona");
    s.fakes.set_github_account(1002, "rita");
    s.fakes.set_github_permission(REPO, "rita", "read");
    let on_repo = json!({"repository": REPO});

    let mona = s
        .start_web_conversation("mona-web", Some(("github", &host, "1001")), on_repo.clone())
        .await;
    let events = s.rested(&mona, "finished").await;
    assert!(
        events.iter().any(|(kind, _)| kind == "repository_checkout"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|(kind, payload)| kind == "run"
            && payload.contains("\"observation\"")
            && payload.contains(&last_subject)),
        "the agent saw the cloned repository: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|(_, payload)| !payload.contains(GITHUB_TOKEN))
    );

    for (login, account, why) in [
        ("nolink-web", None, "no GitHub account linked"),
        ("rita-web", Some("1002"), "`read` permission"),
    ] {
        // Refused when asked, rather than accepted and failed at once.
        let link = account.map(|account| ("github", host.as_str(), account));
        let (status, answer) = s
            .ask_for_web_conversation(login, link, on_repo.clone())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{login}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{login}: {error}");
    }
    s.fake_llm.assert_each_tool_call_answered_once();
}

/// A conversation started through the web API on a GitLab project (`git_provider: gitlab`):
/// cloned with GITLAB_TOKEN when the owner's linked GitLab account is a Developer there, and
/// otherwise stopped saying why.
#[tokio::test(flavor = "multi_thread")]
async fn a_web_conversation_on_a_gitlab_project_clones_it_for_a_developer() {
    let s = service(last_commit_script()).await;
    let last_subject = s
        .gitlab_git
        .git("widgets", &["log", "--format=%s", "-1", "main"])
        .trim()
        .to_string();
    let host = host_of(&s.fakes.gitlab_api_url());
    s.fakes.set_gitlab_project_path("acme/widgets", 42);
    s.fakes.set_gitlab_level(42, "7", 30);
    s.fakes.set_gitlab_level(42, "8", 20);
    let on_project = json!({"repository": "acme/widgets", "git_provider": "gitlab"});
    let start = |login: &'static str, account: &'static str| {
        let (s, host, on_project) = (&s, host.clone(), on_project.clone());
        async move {
            let id = s
                .start_web_conversation(login, Some(("gitlab", &host, account)), on_project)
                .await;
            let c = s.t.db.conversation(&id).await.unwrap();
            assert_eq!(c.git_provider.as_deref(), Some("gitlab"));
            id
        }
    };

    let developer = start("dev-web", "7").await;
    let events = s.rested(&developer, "finished").await;
    assert!(
        events.iter().any(|(kind, payload)| kind == "run"
            && payload.contains("\"observation\"")
            && payload.contains(&last_subject)),
        "the agent saw the cloned project: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|(_, payload)| !payload.contains(fakes::GITLAB_TOKEN))
    );

    // A reporter is refused when asking, with the reason, and nothing runs.
    let (status, answer) = s
        .ask_for_web_conversation("reporter-web", Some(("gitlab", &host, "8")), on_project)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("access level 20"), "{error}");
    s.fake_llm.assert_each_tool_call_answered_once();
}
