//! Every entry point reaches code, end to end on PostgreSQL with a real Docker sandbox, the
//! stateful provider fakes, a loopback git host and the scripted model: a Slack request works on
//! the repository it names and ends in a pull request linked in its thread, or gets a menu of
//! repositories whose signed choice starts the run; an unlinked member follows a one-time link
//! and their request runs; tickets name their repository or are asked for one; the repository's
//! own instructions, knowledge and scripts reach the agent.

use crate::support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use openhands::agent::settings::AgentSettings;
use openhands::storage::Conversation;
use serde_json::{Value, json};
use support::fake_llm::{FakeLlm, TITLE, Turn};
use support::fakes::{self, FakeProviders};
use support::git_server::GitServer;
use support::signing;
use support::{Kind, TestDb, fixture, wait_for};
use tower::ServiceExt;

const REPO: &str = "Codertocat/Hello-World";
const ROUTED_REPO: &str = "octo-org/hello-world";
const PUBLIC_URL: &str = "https://openhands.example.test";
const GITHUB_SECRET: &str = "reach-github-secret";
const SLACK_SECRET: &str = "reach-slack-secret";
const JIRA_SECRET: &str = "reach-jira-secret";
const LINEAR_SECRET: &str = "reach-linear-secret";
const GITHUB_TOKEN: &str = "ghs_installation_4242";
const ADMIN_KEY: &str = "reach-admin-key";
/// Alice's GitHub account, which may push to [`REPO`].
const ALICE_GITHUB_ID: u64 = 583231;
const ALICE_GITHUB: &str = "alice-gh";
const ALICE_SLACK: &str = "U0ALICE01";
const THREAD: &str = "1714567890.123456";

/// The service with GitHub, Slack, Jira and Linear pointed at the fakes, the scripted LLM
/// and Docker sandboxes; repositories are served by a loopback git host.
struct Service {
    _roles: support::service::Service,
    t: TestDb,
    app: Router,
    fakes: FakeProviders,
    fake_llm: FakeLlm,
    git: GitServer,
    alice: String,
    _skills: tempfile::TempDir,
}

/// What a test's repository holds besides its README, and what the service's own skills
/// directory holds.
#[derive(Default)]
struct Setup<'a> {
    files: &'a [(&'a str, &'a str)],
    owner_files: Option<&'a [(&'a str, &'a str)]>,
    skills: &'a [(&'a str, &'a str)],
}

async fn service(script: Vec<Turn>, setup: Setup<'_>) -> Service {
    let t = TestDb::new(Kind::Postgres).await;
    let skills = tempfile::tempdir().unwrap();
    for (path, contents) in setup.skills {
        std::fs::write(skills.path().join(path), contents).unwrap();
    }
    let roles = support::service::Service::builder(&t.db)
        .fakes()
        .set("--github-webhook-secret", GITHUB_SECRET)
        .set("--public-url", PUBLIC_URL)
        .unset("--gitlab-token")
        .unset("--gitlab-api-url")
        .set("--slack-signing-secret", SLACK_SECRET)
        .set("--jira-webhook-secret", JIRA_SECRET)
        .set("--linear-webhook-secret", LINEAR_SECRET)
        .set("--ticket-repositories", format!("ENG={ROUTED_REPO}"))
        .admin_key(ADMIN_KEY)
        .state(|state| state.with_public_url(PUBLIC_URL))
        .web()
        .agent(script)
        .agent_settings(AgentSettings {
            skills_dir: Some(skills.path().to_path_buf()),
            ..AgentSettings::default()
        })
        .start()
        .await;
    let fakes = roles.fakes().clone();
    let git = GitServer::start(GITHUB_TOKEN).await;
    git.create_repo_with("hello-world", setup.files);
    fakes.set_github_clone_url(REPO, &git.url("hello-world"));
    fakes.set_github_installation(REPO, 4242);
    git.create_repo("routed");
    fakes.set_github_clone_url(ROUTED_REPO, &git.url("routed"));
    fakes.set_github_installation(ROUTED_REPO, 4242);
    if let Some(files) = setup.owner_files {
        git.create_repo_with("owner-openhands", files);
        fakes.set_github_clone_url("Codertocat/.openhands", &git.url("owner-openhands"));
        fakes.set_github_installation("Codertocat/.openhands", 4242);
    }
    fakes.set_github_account(ALICE_GITHUB_ID, ALICE_GITHUB);
    fakes.set_github_permission(REPO, ALICE_GITHUB, "write");
    fakes.set_github_permission(REPO, "mona", "write");
    // Alice: her Slack, Jira, Linear and GitHub accounts are linked.
    let alice = t.db.create_user("alice", None, false).await.unwrap();
    for (provider, workspace, account) in [
        ("slack", "T0001".to_string(), ALICE_SLACK.to_string()),
        (
            "jira",
            fakes.jira_site_url(),
            fakes::JIRA_ACCOUNT_ID.to_string(),
        ),
        (
            "linear",
            "org-1".to_string(),
            "e5a3c1f0-6b2d-4c8e-9f7a-1d2e3f4a5b6c".to_string(),
        ),
        (
            "github",
            host_of(&fakes.github_api_url()),
            ALICE_GITHUB_ID.to_string(),
        ),
    ] {
        t.db.link_user(provider, &workspace, &account, &alice.id)
            .await
            .unwrap();
    }
    Service {
        t,
        app: roles.app(),
        fakes,
        fake_llm: roles.llm().clone(),
        git,
        alice: alice.id,
        _skills: skills,
        _roles: roles,
    }
}

fn host_of(api_url: &str) -> String {
    url::Url::parse(api_url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string()
}

/// Slack's `app_mention` of the app by `user` at the top of channel C0001, saying `text`.
fn slack_mention(user: &str, text: &str, event_id: &str) -> Request<Body> {
    let mut body: Value = serde_json::from_slice(&fixture("slack/app_mention.json")).unwrap();
    body["event"]["user"] = json!(user);
    body["event"]["text"] = json!(format!("<@U0BOT0001> {text}"));
    body["event_id"] = json!(event_id);
    signing::slack(SLACK_SECRET, serde_json::to_vec(&body).unwrap()).into()
}

/// Slack's `message` reply by `user` in the thread, saying `text` (no mention).
fn slack_thread_reply(user: &str, text: &str, ts: &str) -> Request<Body> {
    let mut body: Value =
        serde_json::from_slice(&fixture("slack/message.thread_reply.json")).unwrap();
    body["event"]["user"] = json!(user);
    body["event"]["text"] = json!(text);
    body["event"]["ts"] = json!(ts);
    body["event"]["thread_ts"] = json!(THREAD);
    body["event"]["channel"] = json!("C0001");
    body["event_id"] = json!(format!("Ev-reply-{ts}"));
    signing::slack(SLACK_SECRET, serde_json::to_vec(&body).unwrap()).into()
}

/// Slack's `block_actions` payload of `user` picking `value` from the agent's menu in the
/// thread, form-encoded and signed with `secret`.
fn slack_choice(user: &str, value: &str, trigger: &str, secret: &str) -> Request<Body> {
    let mut payload: Value =
        serde_json::from_slice(&fixture("slack/block_actions.static_select.thread.json")).unwrap();
    payload["user"]["id"] = json!(user);
    payload["user"]["team_id"] = json!("T0001");
    payload["team"]["id"] = json!("T0001");
    payload["channel"]["id"] = json!("C0001");
    payload["container"]["channel_id"] = json!("C0001");
    payload["container"]["thread_ts"] = json!(THREAD);
    payload["message"]["thread_ts"] = json!(THREAD);
    payload["trigger_id"] = json!(trigger);
    payload["actions"][0]["action_id"] = json!("openhands_repository");
    payload["actions"][0]["selected_option"]["value"] = json!(value);
    signing::slack_interactivity(secret, &payload).into()
}

/// A signed GitHub `issue_comment` by mona on octo-org/hello-world#17 moved to [`REPO`],
/// saying `text`.
fn github_comment(text: &str, delivery: &str) -> Request<Body> {
    let mut body: Value =
        serde_json::from_slice(&fixture("github/issue_comment.created.json")).unwrap();
    body["comment"]["body"] = json!(text);
    body["repository"]["full_name"] = json!(REPO);
    body["repository"]["name"] = json!("Hello-World");
    body["repository"]["owner"]["login"] = json!("Codertocat");
    signing::github(
        GITHUB_SECRET,
        "issue_comment",
        delivery,
        serde_json::to_vec(&body).unwrap(),
    )
    .into()
}

/// A signed Jira `comment_created` on ENG-42 by `account`, saying `text`.
fn jira_comment(site: &str, account: &str, text: &str, delivery: &str) -> Request<Body> {
    let mut body: Value = serde_json::from_str(
        &String::from_utf8(fixture("jira/comment_created.json"))
            .unwrap()
            .replace("https://acme.atlassian.net", site),
    )
    .unwrap();
    body["comment"]["author"]["accountId"] = json!(account);
    body["comment"]["updateAuthor"]["accountId"] = json!(account);
    body["comment"]["id"] = json!(delivery);
    body["comment"]["body"] = json!(text);
    signing::jira(JIRA_SECRET, delivery, serde_json::to_vec(&body).unwrap()).into()
}

/// A signed Linear comment on OPS-7 (a team without a configured repository), saying `text`.
fn linear_comment(text: &str, comment_id: &str) -> Request<Body> {
    let mut body: Value = serde_json::from_slice(&fixture("linear/comment.create.json")).unwrap();
    signing::stamp_linear(&mut body);
    body["data"]["id"] = json!(comment_id);
    body["data"]["body"] = json!(text);
    body["data"]["issue"]["identifier"] = json!("OPS-7");
    body["data"]["issue"]["team"]["key"] = json!("OPS");
    body["data"]["issue"]["url"] = json!("https://linear.app/acme/issue/OPS-7/flaky");
    signing::linear(
        LINEAR_SECRET,
        comment_id,
        serde_json::to_vec(&body).unwrap(),
    )
    .into()
}

impl Service {
    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn accept(&self, request: Request<Body>) {
        let (status, body) = self.send(request).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "{status} {body}"
        );
        assert_eq!(body["status"], "accepted", "{body}");
    }

    async fn conversation(&self, provider: &str, external_ref: &str) -> Option<Conversation> {
        self.t
            .db
            .conversation_by_external_ref(provider, external_ref)
            .await
            .unwrap()
    }

    /// Waits until the conversation of `external_ref` is `status` with at least `posts` posts,
    /// all of them sent.
    async fn settled(
        &self,
        provider: &str,
        external_ref: &str,
        status: &str,
        posts: usize,
    ) -> Conversation {
        wait_for(
            &format!("the {provider} conversation to be {status} with {posts} posts sent"),
            Duration::from_secs(150),
            || async {
                let conversation = self.conversation(provider, external_ref).await?;
                let sent = self.t.db.outbox_posts_of(&conversation.id).await.unwrap();
                (conversation.status == status
                    && sent.len() >= posts
                    && sent.iter().all(|p| p.status == "sent"))
                .then_some(conversation)
            },
        )
        .await
    }

    /// The texts of the bot's messages in the Slack thread, oldest first.
    fn slack_texts(&self) -> Vec<String> {
        self.fakes
            .slack_messages("C0001", THREAD)
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect()
    }

    async fn events(&self, id: &str) -> Vec<Value> {
        support::conversation::events_of(&self.t.db, id).await
    }

    /// An API key of user `user_id`.
    async fn key_of(&self, user_id: &str) -> String {
        openhands::web::keys::issue_key(&self.t.db, user_id, "test", None)
            .await
            .unwrap()
            .0
    }

    async fn call(&self, method: &str, path: &str, key: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }
}

/// The commits `branch` of the `repo` on the git host has beyond `main`, as subjects.
fn subjects(git: &GitServer, repo: &str, branch: &str) -> Vec<String> {
    let base = git.head(repo, "main").unwrap();
    let head = git
        .head(repo, branch)
        .unwrap_or_else(|| panic!("{branch} was not pushed: {:#?}", git.log()));
    git.git(repo, &["log", "--format=%s", &format!("{base}..{head}")])
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_request_naming_a_repository_ends_in_a_pull_request_linked_in_its_thread() {
    let s = service(
        vec![
            Turn::call(
                "execute_bash",
                json!({"command": "cd /workspace/repo && printf 'echo hello\\n' > hello.sh && git add hello.sh && git commit -qm 'Add a hello script'"}),
            ),
            Turn::call("finish", json!({"message": "Added hello.sh."})),
        ],
        Setup::default(),
    )
    .await;
    s.accept(slack_mention(
        ALICE_SLACK,
        "please add a hello script to Codertocat/Hello-World",
        "Ev-named",
    ))
    .await;
    let conversation = s
        .settled("slack", &format!("T0001/C0001/{THREAD}"), "finished", 4)
        .await;
    assert_eq!(conversation.repository.as_deref(), Some(REPO));
    assert_eq!(conversation.git_provider.as_deref(), Some("github"));
    assert_eq!(conversation.owner_id, s.alice);
    // The model wrote the title, in one call counted with the others.
    assert_eq!(conversation.title, TITLE);
    assert_eq!(s.fake_llm.title_requests(), 1);
    let stats = s.t.db.conversation_stats(&conversation.id).await.unwrap();
    assert_eq!(stats.llm_calls, 3);

    let branch = format!("openhands/{}-a-title-from-the-model", &conversation.id[..8]);
    assert_eq!(
        subjects(&s.git, "hello-world", &branch),
        vec!["Add a hello script"]
    );
    let pulls = s.fakes.github_pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}\n{:#?}", s.fakes.mutations());
    assert_eq!(pulls[0]["head"]["ref"], branch.as_str());
    assert_eq!(pulls[0]["title"], TITLE);
    let body = pulls[0]["body"].as_str().unwrap();
    assert!(
        body.contains("Added hello.sh.") && body.contains("Asked in Slack."),
        "{body}"
    );
    assert!(body.contains(&conversation.id), "{body}");

    let replies = s.slack_texts();
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(
        replies[0].contains("I'm on it, working on `Codertocat/Hello-World`"),
        "{}",
        replies[0]
    );
    assert!(replies[1].contains("Added hello.sh."), "{}", replies[1]);
    let pull_url = pulls[0]["html_url"].as_str().unwrap();
    assert!(
        replies[1].contains(&format!("Pull request: {pull_url}")),
        "{}",
        replies[1]
    );
    for reply in &replies {
        assert!(!reply.contains(GITHUB_TOKEN) && !reply.contains(fakes::SLACK_BOT_TOKEN));
    }

    // The model was told where it works, in whole lines.
    let first = &s.fake_llm.requests()[1];
    assert!(
        first.messages[0]
            .text
            .contains("The repository Codertocat/Hello-World is checked out in /workspace/repo"),
        "{}",
        first.messages[0].text
    );
    assert_eq!(
        first.messages[1].text,
        "You were asked for help in a Slack thread, on the repository Codertocat/Hello-World.\n\n\
         <EARLIER_MESSAGES>\nU0CAROL03: the nightly build is red\n</EARLIER_MESSAGES>\n\n\
         The request:\nplease add a hello script to Codertocat/Hello-World",
    );
    s.fake_llm.assert_each_tool_call_answered_once();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_request_naming_no_repository_gets_a_menu_and_the_askers_signed_choice_starts_it() {
    let s = service(
        vec![
            Turn::call(
                "execute_bash",
                json!({"command": "cat /workspace/repo/README"}),
            ),
            Turn::call("finish", json!({"message": "The README says hello."})),
        ],
        Setup::default(),
    )
    .await;
    // Alice may push to two repositories about "hello" and only read a third.
    s.fakes
        .set_github_installation("Codertocat/hello-docs", 4242);
    s.fakes
        .set_github_permission("Codertocat/hello-docs", ALICE_GITHUB, "admin");
    s.fakes
        .set_github_installation("Codertocat/hello-private", 4343);
    s.fakes
        .set_github_permission("Codertocat/hello-private", ALICE_GITHUB, "read");
    s.fakes
        .set_github_installation("Codertocat/Spoon-Knife", 4343);
    s.fakes
        .set_github_permission("Codertocat/Spoon-Knife", ALICE_GITHUB, "write");
    let bob = s.t.db.create_user("bob", None, false).await.unwrap();
    s.t.db
        .link_user("slack", "T0001", "U0BOB0001", &bob.id)
        .await
        .unwrap();

    s.accept(slack_mention(
        ALICE_SLACK,
        "please fix the hello script",
        "Ev-menu",
    ))
    .await;
    let external_ref = format!("T0001/C0001/{THREAD}");
    let conversation = s
        .settled("slack", &external_ref, "awaiting_user_input", 2)
        .await;
    assert_eq!(conversation.repository, None);
    let question = s.fakes.slack_messages("C0001", THREAD);
    assert_eq!(question.len(), 1, "{question:#?}");
    let text = question[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Which repository should I work on?"),
        "{text}"
    );
    let select = question[0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|block| {
            let accessory = &block["accessory"];
            (accessory["type"] == "static_select").then(|| accessory.clone())
        })
        .unwrap_or_else(|| panic!("no menu in {:#?}", question[0]));
    assert_eq!(select["action_id"], "openhands_repository");
    let values: Vec<&str> = select["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        vec![
            "github:Codertocat/hello-docs",
            "github:Codertocat/Hello-World",
            "none"
        ]
    );
    assert_eq!(
        s.fake_llm.requests().len(),
        0,
        "nothing runs before the choice"
    );

    // A payload not signed with the signing secret is refused, and nothing is stored.
    let (status, body) = s
        .send(slack_choice(
            ALICE_SLACK,
            "github:Codertocat/Hello-World",
            "trigger-forged",
            "not-the-secret",
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("signature"),
        "{body}"
    );
    let stored =
        s.t.db
            .deliveries(None, None, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.delivery_id.contains("trigger-forged"))
            .count();
    assert_eq!(stored, 0);

    // Someone else cannot choose for Alice: they are told so, privately.
    let (status, body) = s
        .send(slack_choice(
            "U0BOB0001",
            "github:Codertocat/hello-docs",
            "trigger-bob",
            SLACK_SECRET,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for("Bob to be told", Duration::from_secs(30), || async {
        let told = s.fakes.recorded(|r| r.slack_ephemeral.clone());
        told.iter()
            .any(|m| {
                m["user"] == "U0BOB0001"
                    && m["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Only the person who asked"))
            })
            .then_some(())
    })
    .await;

    // Alice's choice, signed, is answered at once and starts the run.
    let (status, body) = s
        .send(slack_choice(
            ALICE_SLACK,
            "github:Codertocat/Hello-World",
            "trigger-alice",
            SLACK_SECRET,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "accepted");
    let conversation = s.settled("slack", &external_ref, "finished", 4).await;
    assert_eq!(conversation.repository.as_deref(), Some(REPO));
    let replies = s.slack_texts();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert!(
        replies[1].contains("I'm on it, working on `Codertocat/Hello-World`"),
        "{}",
        replies[1]
    );
    assert!(
        replies[2].contains("The README says hello."),
        "{}",
        replies[2]
    );
    let events = s.events(&conversation.id).await;
    let chosen = events
        .iter()
        .find(|e| e["observation"] == "repository_selected")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(chosen["extras"]["how"], "chosen");
    assert_eq!(chosen["extras"]["name"], REPO);
    let read = events
        .iter()
        .find(|e| {
            e["observation"] == "run" && e["extras"]["command"] == "cat /workspace/repo/README"
        })
        .unwrap();
    assert!(
        read["content"].as_str().unwrap().contains("hello"),
        "{read}"
    );

    // A later click finds the repository chosen and says so.
    s.send(slack_choice(
        ALICE_SLACK,
        "none",
        "trigger-late",
        SLACK_SECRET,
    ))
    .await;
    wait_for("Alice to be told", Duration::from_secs(30), || async {
        let told = s.fakes.recorded(|r| r.slack_ephemeral.clone());
        told.iter()
            .any(|m| {
                m["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("chosen already"))
            })
            .then_some(())
    })
    .await;
    s.fake_llm.assert_each_tool_call_answered_once();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_later_message_in_the_thread_may_name_the_repository() {
    let s = service(
        vec![Turn::call("finish", json!({"message": "Looked at it."}))],
        Setup::default(),
    )
    .await;
    s.accept(slack_mention(
        ALICE_SLACK,
        "please fix the hello script",
        "Ev-later",
    ))
    .await;
    let external_ref = format!("T0001/C0001/{THREAD}");
    s.settled("slack", &external_ref, "awaiting_user_input", 2)
        .await;
    // A reply without a repository keeps it waiting; one naming it starts the run.
    s.accept(slack_thread_reply(
        ALICE_SLACK,
        "thanks!",
        "1714567999.000100",
    ))
    .await;
    s.accept(slack_thread_reply(
        ALICE_SLACK,
        "it is https://github.com/Codertocat/Hello-World",
        "1714567999.000200",
    ))
    .await;
    let conversation = s.settled("slack", &external_ref, "finished", 4).await;
    assert_eq!(conversation.repository.as_deref(), Some(REPO));
    let events = s.events(&conversation.id).await;
    let chosen = events
        .iter()
        .find(|e| e["observation"] == "repository_selected")
        .unwrap();
    assert_eq!(chosen["extras"]["how"], "named");
    assert_eq!(s.fake_llm.tool_requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_default_serves_requests_that_name_no_repository() {
    let s = service(
        vec![Turn::call("finish", json!({"message": "On the default."}))],
        Setup::default(),
    )
    .await;
    let admin = |method: &str, body: Option<Value>| {
        let mut request = Request::builder()
            .method(method)
            .uri("/api/slack-channels/C0001")
            .header("authorization", format!("Bearer {ADMIN_KEY}"));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        request
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap()
    };
    let (status, body) = s
        .send(admin(
            "PUT",
            Some(json!({"repository": "not a repository"})),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .send(admin("PUT", Some(json!({"repository": ROUTED_REPO}))))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["git_provider"], "github");
    s.accept(slack_mention(ALICE_SLACK, "what is in here?", "Ev-default"))
        .await;
    let conversation = s
        .settled("slack", &format!("T0001/C0001/{THREAD}"), "finished", 3)
        .await;
    assert_eq!(conversation.repository.as_deref(), Some(ROUTED_REPO));
    let (status, _) = s.send(admin("DELETE", None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.send(admin("DELETE", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unlinked_member_follows_a_one_time_link_and_their_request_runs() {
    let s = service(
        vec![Turn::call("finish", json!({"message": "Hello, Carol."}))],
        Setup::default(),
    )
    .await;
    s.accept(slack_mention("U0CAROL01", "say hello", "Ev-carol"))
        .await;
    let link = wait_for(
        "Carol to be offered a link",
        Duration::from_secs(30),
        || async {
            let told = s.fakes.recorded(|r| r.slack_ephemeral.clone());
            told.iter().find_map(|m| {
                let text = m["text"].as_str()?;
                (m["user"] == "U0CAROL01").then_some(())?;
                let at = text.find(&format!("{PUBLIC_URL}/link/"))?;
                Some(text[at..].split_whitespace().next().unwrap().to_string())
            })
        },
    )
    .await;
    let token = link.rsplit('/').next().unwrap().to_string();
    assert_eq!(token.len(), 64, "{link}");
    let delivery =
        s.t.db
            .deliveries(None, None, None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.delivery_id == "Ev-carol")
            .unwrap();
    assert_eq!(delivery.status, "unauthorized");
    // The token is kept only as a hash, and reaches no event or log of the delivery.
    assert!(!delivery.reason.unwrap_or_default().contains(&token));

    // The dashboard serves the link's page; the API needs a signed-in user.
    let page = Request::get(format!("/link/{token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        s.app.clone().oneshot(page).await.unwrap().status(),
        StatusCode::OK
    );
    let (status, _) = s
        .call("GET", &format!("/api/links/{token}"), "oh_wrong")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let carol = s.t.db.create_user("carol", None, false).await.unwrap();
    let key = s.key_of(&carol.id).await;
    let (status, shown) = s.call("GET", &format!("/api/links/{token}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["provider"], "slack");
    assert_eq!(shown["external_id"], "U0CAROL01");
    let (status, linked) = s.call("POST", &format!("/api/links/{token}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(linked["requests"], json!([delivery.id]));

    // Her request runs as hers, without being asked again.
    let conversation = s
        .settled("slack", &format!("T0001/C0001/{THREAD}"), "finished", 3)
        .await;
    assert_eq!(conversation.owner_id, carol.id);
    assert!(s.slack_texts().iter().any(|t| t.contains("Hello, Carol.")));

    // The link works once.
    let (status, again) = s.call("POST", &format!("/api/links/{token}"), &key).await;
    assert_eq!(status, StatusCode::GONE, "{again}");
    assert!(again["error"].as_str().unwrap().contains("used already"));
    let (status, _) = s.call("POST", "/api/links/0123456789abcdef", &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Her linked accounts, and Unlink; another's link cannot be removed by her.
    let (_, me) = s.call("GET", "/api/user", &key).await;
    assert_eq!(me["accounts"][0]["external_id"], "U0CAROL01", "{me}");
    let alice_slack = format!("/api/user/accounts/slack/T0001/{ALICE_SLACK}");
    let (status, _) = s.call("DELETE", &alice_slack, &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .call("DELETE", "/api/user/accounts/slack/T0001/U0CAROL01", &key)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, me) = s.call("GET", "/api/user", &key).await;
    assert_eq!(me["accounts"], json!([]), "{me}");

    // An unlinked Jira user is offered a link in a comment; an expired link is refused.
    let site = s.fakes.jira_site_url();
    s.accept(jira_comment(
        &site,
        "dave-account",
        "@openhands please look",
        "jira-dave",
    ))
    .await;
    let comment = wait_for(
        "Dave to be offered a link",
        Duration::from_secs(30),
        || async {
            s.fakes
                .jira_comments("ENG-42")
                .iter()
                .map(|(_, body)| fakes::jira::adf_text(body))
                .find(|text| text.contains(&format!("{PUBLIC_URL}/link/")))
        },
    )
    .await;
    assert!(comment.contains("Jira account is not linked"), "{comment}");
    let at = comment.find("/link/").unwrap() + "/link/".len();
    let dave_token: String = comment[at..].chars().take(64).collect();
    match &s.t.db {
        openhands::storage::Db::Postgres(pool) => {
            sqlx::query("UPDATE link_tokens SET expires_at = 0")
                .execute(pool)
                .await
                .unwrap();
        }
        openhands::storage::Db::Sqlite(_) => unreachable!(),
    }
    let (status, expired) = s
        .call("POST", &format!("/api/links/{dave_token}"), &key)
        .await;
    assert_eq!(status, StatusCode::GONE, "{expired}");
    assert!(expired["error"].as_str().unwrap().contains("expired"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_name_their_repository_or_are_asked_for_one() {
    let work = |summary: &str| {
        vec![
            Turn::call(
                "execute_bash",
                json!({"command": "cd /workspace/repo && echo fixed > FIXED && git add FIXED && git commit -qm 'Fix the flaky test'"}),
            ),
            Turn::call("finish", json!({"message": summary})),
        ]
    };
    let mut script = work("Fixed on Jira's word.");
    script.extend(work("Fixed on Linear's word."));
    let s = service(script, Setup::default()).await;
    let site = s.fakes.jira_site_url();

    // ENG-42 is routed to octo-org/hello-world, but the comment names Alice's repository.
    s.accept(jira_comment(
        &site,
        fakes::JIRA_ACCOUNT_ID,
        "@openhands please fix the flaky test in Codertocat/Hello-World",
        "jira-named",
    ))
    .await;
    let jira = s
        .settled("jira", &format!("{site}/ENG-42"), "finished", 3)
        .await;
    assert_eq!(jira.repository.as_deref(), Some(REPO));
    assert_eq!(jira.title, "ENG-42: Flaky test: test_checkout_retries");
    let pulls = s.fakes.github_pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    assert_eq!(
        pulls[0]["head"]["ref"],
        "openhands/ENG-42-flaky-test-test-checkout-retries"
    );
    assert!(s.fakes.github_pulls(ROUTED_REPO).is_empty());

    // OPS has no repository: the agent asks in a comment, and a reply naming one continues.
    let issue_id = "9cfb482a-81e3-4154-b5b9-2c805e70a02d";
    s.accept(linear_comment(
        "@openhands please fix the flaky test",
        "lin-ask",
    ))
    .await;
    s.settled(
        "linear",
        &format!("org-1/{issue_id}"),
        "awaiting_user_input",
        1,
    )
    .await;
    let asked = s.fakes.linear_comments(issue_id);
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(
        asked[0].1.contains("Which repository should I work on?")
            && asked[0].1.contains("`Codertocat/Hello-World`")
            && asked[0].1.contains("@openhands owner/name"),
        "{}",
        asked[0].1
    );
    s.accept(linear_comment(
        "@openhands Codertocat/Hello-World",
        "lin-answer",
    ))
    .await;
    let linear = s
        .settled("linear", &format!("org-1/{issue_id}"), "finished", 4)
        .await;
    assert_eq!(linear.repository.as_deref(), Some(REPO));
    let pulls = s.fakes.github_pulls(REPO);
    assert_eq!(pulls.len(), 2, "{pulls:#?}");
    let comments = s.fakes.linear_comments(issue_id);
    let last = &comments.last().unwrap().1;
    assert!(
        last.contains("Fixed on Linear's word.") && last.contains("Pull request: "),
        "{last}"
    );
}

/// Every kind of instruction file of the repository, of its owner's `.openhands` repository
/// and of the service's skills directory.
const INSTRUCTED: &[(&str, &str)] = &[
    ("AGENTS.md", "Run `make test` before committing.\n"),
    (".cursorrules", "Prefer small functions.\n"),
    (
        ".openhands/microagents/repo.md",
        "---\nname: repo\ntype: repo\nagent: CodeActAgent\n---\nThis project is a greeting service.\n",
    ),
    (
        ".openhands/microagents/style.md",
        "Indent with four spaces.\n",
    ),
    (
        ".openhands/microagents/knowledge/deploy.md",
        "---\nname: deploy\ntype: knowledge\ntriggers:\n- Deploy\n---\nDeploy with `./deploy.sh staging`.\n",
    ),
    (
        ".openhands/microagents/knowledge/database.md",
        "---\nname: database\ntype: knowledge\ntriggers:\n- postgres\n---\nThe database is PostgreSQL 16.\n",
    ),
    (
        ".openhands/setup.sh",
        "echo 'ready' > /workspace/setup-done\necho setup finished\n",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_repositorys_instructions_knowledge_and_setup_reach_the_model() {
    let s = service(
        vec![
            Turn::call(
                "execute_bash",
                json!({"command": "cat /workspace/setup-done"}),
            ),
            Turn::call(
                "finish",
                json!({"message": "Deployed nothing; read the notes."}),
            ),
        ],
        Setup {
            files: INSTRUCTED,
            owner_files: Some(&[("microagents/signing.md", "Sign your commits.\n")]),
            skills: &[("house.md", "Keep commit messages short.\n")],
        },
    )
    .await;
    s.accept(github_comment(
        "@openhands please deploy the fix",
        "gh-instructed",
    ))
    .await;
    let conversation = s
        .settled("github", &format!("{REPO}#17"), "finished", 3)
        .await;
    assert_eq!(
        conversation.title,
        format!("{REPO}#17: Parser panics on empty input")
    );
    assert_eq!(
        s.fake_llm.title_requests(),
        0,
        "issues keep their own titles"
    );

    let requests = s.fake_llm.requests();
    let first = &requests[0];
    let texts: Vec<&str> = first.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(first.messages.len(), 5, "{texts:#?}");
    assert_eq!(
        texts[2],
        "The repository's setup script (.openhands/setup.sh) ran before you started. Its output:\nsetup finished"
    );
    assert_eq!(
        texts[3],
        "<REPOSITORY_INFO>\n\
         The repository Codertocat/Hello-World is checked out in /workspace/repo on the branch `main`.\n\
         </REPOSITORY_INFO>\n\
         \n\
         <REPOSITORY_INSTRUCTIONS>\n\
         What the repository and its owners ask of work on it; follow it unless the user asks otherwise.\n\
         \n\
         ## AGENTS.md (Codertocat/Hello-World)\n\
         Run `make test` before committing.\n\
         \n\
         ## .cursorrules (Codertocat/Hello-World)\n\
         Prefer small functions.\n\
         \n\
         ## .openhands/microagents/repo.md (Codertocat/Hello-World)\n\
         This project is a greeting service.\n\
         \n\
         ## .openhands/microagents/style.md (Codertocat/Hello-World)\n\
         Indent with four spaces.\n\
         \n\
         ## microagents/signing.md (Codertocat/.openhands)\n\
         Sign your commits.\n\
         \n\
         ## house.md (service)\n\
         Keep commit messages short.\n\
         </REPOSITORY_INSTRUCTIONS>"
    );
    assert_eq!(
        texts[4],
        "<EXTRA_INFO>\n\
         The user's message mentions \"Deploy\", so here is what the microagent deploy knows about it; use it where it helps.\n\
         \n\
         Deploy with `./deploy.sh staging`.\n\
         </EXTRA_INFO>"
    );
    assert!(!texts.iter().any(|t| t.contains("PostgreSQL 16")));
    // The setup script ran in the sandbox before the first command.
    let second = &requests[1];
    let result = second.messages.iter().find(|m| m.role == "tool").unwrap();
    assert!(result.text.contains("ready"), "{}", result.text);

    // What was recalled is in the log as OpenHands' recall observations.
    let events = s.events(&conversation.id).await;
    let recalls: Vec<&Value> = events
        .iter()
        .filter(|e| e["observation"] == "recall")
        .collect();
    assert_eq!(recalls.len(), 2, "{events:#?}");
    assert_eq!(recalls[0]["extras"]["recall_type"], "workspace_context");
    assert_eq!(recalls[0]["extras"]["repo_name"], REPO);
    let loaded: Vec<&str> = recalls[0]["extras"]["instructions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(loaded.len(), 6, "{loaded:?}");
    assert_eq!(recalls[1]["extras"]["recall_type"], "knowledge");
    assert_eq!(
        recalls[1]["extras"]["microagent_knowledge"],
        json!([{"name": "deploy", "trigger": "Deploy", "content": "Deploy with `./deploy.sh staging`."}])
    );
    let setup = events
        .iter()
        .find(|e| e["observation"] == "run" && e["extras"]["script"] == "setup")
        .unwrap();
    assert_eq!(setup["extras"]["exit_code"], 0);
    s.fake_llm.assert_each_tool_call_answered_once();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_commit_script_is_fixed_by_the_agent_before_the_push() {
    let s = service(
        vec![
            Turn::call(
                "execute_bash",
                json!({"command": "cd /workspace/repo && echo change > CHANGE && git add CHANGE && git commit -qm 'Make the change'"}),
            ),
            Turn::call("finish", json!({"message": "Made the change."})),
            Turn::call(
                "execute_bash",
                json!({"command": "cd /workspace/repo && touch CHECKED && git add CHECKED && git commit -qm 'Satisfy the check'"}),
            ),
            Turn::call("finish", json!({"message": "Made the change; the check passes."})),
        ],
        Setup {
            files: &[(
                ".openhands/pre-commit.sh",
                "test -f CHECKED || { echo 'CHECKED is missing' >&2; exit 3; }\necho checked\n",
            )],
            ..Setup::default()
        },
    )
    .await;
    s.accept(github_comment(
        "@openhands please make the change",
        "gh-pre-commit",
    ))
    .await;
    let conversation = s
        .settled("github", &format!("{REPO}#17"), "finished", 4)
        .await;
    let requests = s.fake_llm.requests();
    let told = requests[2]
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .unwrap();
    assert!(
        told.text
            .contains("pre-commit script (.openhands/pre-commit.sh) failed with exit code 3")
            && told.text.contains("CHECKED is missing"),
        "{}",
        told.text
    );
    let branch = "openhands/17-parser-panics-on-empty-input";
    assert_eq!(
        subjects(&s.git, "hello-world", branch),
        vec!["Satisfy the check", "Make the change"]
    );
    let events = s.events(&conversation.id).await;
    let runs: Vec<i64> = events
        .iter()
        .filter(|e| e["observation"] == "run" && e["extras"]["script"] == "pre-commit")
        .map(|e| e["extras"]["exit_code"].as_i64().unwrap())
        .collect();
    assert_eq!(runs, vec![3, 0]);
    let pulls = s.fakes.github_pulls(REPO);
    assert_eq!(pulls.len(), 1);
    assert!(
        !s.fakes
            .github_comments(REPO, 17)
            .iter()
            .any(|(_, body)| body.contains("still fails"))
    );
    s.fake_llm.assert_each_tool_call_answered_once();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pre_commit_script_that_stays_red_is_reported_with_the_work() {
    let mut script = vec![Turn::call(
        "execute_bash",
        json!({"command": "cd /workspace/repo && echo change > CHANGE && git add CHANGE && git commit -qm 'Make the change'"}),
    )];
    for attempt in 1..=3 {
        script.push(Turn::call(
            "finish",
            json!({"message": format!("Made the change (attempt {attempt}).")}),
        ));
    }
    let s = service(
        script,
        Setup {
            files: &[(
                ".openhands/pre-commit.sh",
                "echo 'lint fails' >&2\nexit 1\n",
            )],
            ..Setup::default()
        },
    )
    .await;
    s.accept(github_comment(
        "@openhands please make the change",
        "gh-red",
    ))
    .await;
    let conversation = s
        .settled("github", &format!("{REPO}#17"), "finished", 4)
        .await;
    let events = s.events(&conversation.id).await;
    let runs = events
        .iter()
        .filter(|e| e["observation"] == "run" && e["extras"]["script"] == "pre-commit")
        .count();
    assert_eq!(runs, 3, "three attempts, then the work goes out");
    assert_eq!(
        subjects(
            &s.git,
            "hello-world",
            "openhands/17-parser-panics-on-empty-input"
        ),
        vec!["Make the change"]
    );
    let status = wait_for(
        "the status comment to say so",
        Duration::from_secs(60),
        || async {
            s.fakes
                .github_comments(REPO, 17)
                .into_iter()
                .map(|(_, body)| body)
                .find(|body| body.contains("attempt 3"))
        },
    )
    .await;
    assert!(
        status.contains("pre-commit script (.openhands/pre-commit.sh) still fails (exit code 1)"),
        "{status}"
    );
    assert_eq!(s.fakes.github_pulls(REPO).len(), 1);
}
