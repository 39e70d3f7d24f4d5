//! Webhook intake end to end, on both databases: signed deliveries through the HTTP router,
//! stored and enqueued, then authorized by the intake job against fake provider APIs on
//! loopback, becoming (or continuing) conversations.

use crate::on_both_backends;
use crate::support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use openhands::integrations::Webhooks;
use openhands::integrations::providers::MAX_DIFF_CHARS;
use openhands::integrations::request::Place;
use openhands::storage::Delivery;
use openhands::web::{AppState, router};
use serde_json::{Value, json};
use support::fakes::{self, FakeProviders};
use support::git_server::GitServer;
use support::service::Service;
use support::signing;
use support::{TestDb, fixture};
use tower::ServiceExt;

on_both_backends! {
    what_is_not_a_valid_delivery_is_refused_and_nothing_is_stored => refused_and_nothing_stored;
    a_github_comment_becomes_a_conversation_and_follow_ups_continue_it => github_comment_and_follow_up;
    github_senders_without_write_permission_are_unauthorized => github_reader_unauthorized;
    gitlab_needs_developer_access => gitlab_access_levels;
    slack_users_must_be_linked_and_redelivery_re_runs => slack_linking_and_redelivery;
    jira_and_linear_need_linked_accounts_of_served_workspaces => jira_and_linear_links;
    ignored_events_and_handshakes_are_answered_200 => ignored_and_handshakes;
    pull_and_merge_requests_come_with_their_diffs => pull_and_merge_request_diffs;
    a_diff_that_cannot_be_read_does_not_refuse_the_request => unreadable_diff;
    repository_remotes_come_with_the_providers_tokens => repository_remotes;
    published_payloads_are_understood_or_refused_naming_the_field => published_payloads;
    a_delivery_no_writer_takes_in_time_is_answered_busy_and_not_stored => busy_and_kept;
    mentions_picked_from_jira_and_linear_menus_ask => mentions_from_menus;
}

const GITHUB_SECRET: &str = "github-secret";
const GITLAB_WEBHOOK_TOKEN: &str = "gitlab-webhook-token";
const SLACK_SECRET: &str = "slack-secret";
const JIRA_SECRET: &str = "jira-secret";
const JIRA_DC_SECRET: &str = "jira-dc-secret";
/// The Jira sites of the fixtures.
const FIXTURE_JIRA_SITE: &str = "https://acme.atlassian.net";
const FIXTURE_JIRA_DC_SITE: &str = "http://localhost:2990/jira";
const LINEAR_SECRET: &str = "linear-secret";
const ADMIN_KEY: &str = "admin-key";

/// The service with every provider enabled and pointed at the fakes, and workers running. The
/// fixtures' Jira sites are moved to the fakes' ([`jira`], [`jira_dc`]).
async fn service(t: &TestDb) -> Service {
    Service::builder(&t.db)
        .fakes()
        .set(
            "--github-webhook-secret",
            format!("old-secret, {GITHUB_SECRET}"),
        )
        .set("--gitlab-webhook-token", GITLAB_WEBHOOK_TOKEN)
        .set("--slack-signing-secret", SLACK_SECRET)
        .set("--jira-webhook-secret", JIRA_SECRET)
        .set("--jira-dc-webhook-secret", JIRA_DC_SECRET)
        .set("--linear-webhook-secret", LINEAR_SECRET)
        .admin_key(ADMIN_KEY)
        .web()
        .workers()
        .start()
        .await
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn post(provider: &str) -> axum::http::request::Builder {
    Request::post(format!("/api/integration/{provider}/events"))
        .header("content-type", "application/json")
}

fn github(event: &str, delivery: &str, body: &[u8]) -> Request<Body> {
    signing::github(GITHUB_SECRET, event, delivery, body).into()
}

fn gitlab(event: &str, uuid: &str, body: &[u8]) -> Request<Body> {
    signing::gitlab(GITLAB_WEBHOOK_TOKEN, event, uuid, body).into()
}

fn slack(body: &[u8]) -> Request<Body> {
    signing::slack(SLACK_SECRET, body).into()
}

/// A Jira Cloud delivery of `body`, its fixture site (`https://acme.atlassian.net`) moved to
/// the fake's.
fn jira(fakes: &FakeProviders, identifier: &str, body: &[u8]) -> Request<Body> {
    let body = String::from_utf8_lossy(body).replace(FIXTURE_JIRA_SITE, &fakes.jira_site_url());
    signing::jira(JIRA_SECRET, identifier, body).into()
}

/// A Jira Data Center delivery of `body`, its fixture site (`http://localhost:2990/jira`)
/// moved to the fake's.
fn jira_dc(fakes: &FakeProviders, body: &[u8]) -> Request<Body> {
    let body =
        String::from_utf8_lossy(body).replace(FIXTURE_JIRA_DC_SITE, &fakes.jira_dc_site_url());
    signing::jira_data_center(JIRA_DC_SECRET, body).into()
}

/// A Linear fixture stamped now (Linear deliveries older than a minute are refused).
fn linear_now(path: &str) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture(path)).unwrap();
    signing::stamp_linear(&mut payload);
    serde_json::to_vec(&payload).unwrap()
}

fn linear(delivery: &str, body: &[u8]) -> Request<Body> {
    signing::linear(LINEAR_SECRET, delivery, body).into()
}

fn admin(method: &str, uri: &str, body: Option<Value>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap()
}

async fn link(app: &Router, login: &str, provider: &str, workspace: &str, external_id: &str) {
    let (status, _) = send(
        app,
        admin("POST", "/api/users", Some(json!({"login": login}))),
    )
    .await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::CONFLICT,
        "{status}"
    );
    let (status, body) = send(
        app,
        admin(
            "POST",
            "/api/user-links",
            Some(json!({"provider": provider, "workspace": workspace, "external_id": external_id, "user": login})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Waits until the intake job has handled the delivery (it has left `accepted`, or been
/// given a conversation).
async fn handled(t: &TestDb, id: i64) -> Delivery {
    support::wait_for(
        &format!("delivery {id} to be handled"),
        Duration::from_secs(30),
        || async {
            let delivery = t.db.delivery(id).await.unwrap();
            (delivery.intake_id.is_some()).then_some(delivery)
        },
    )
    .await
}

fn delivery_id(body: &Value) -> i64 {
    body["delivery"]
        .as_i64()
        .unwrap_or_else(|| panic!("no delivery id in {body}"))
}

/// The `request_context` event a new conversation starts with.
async fn request_context(t: &TestDb, conversation: &str) -> Value {
    let events = t.db.events_after(conversation, 0, 1).await.unwrap();
    assert_eq!(events[0].kind, "request_context");
    serde_json::from_str(&events[0].payload).unwrap()
}

/// Sends a delivery and returns the context of the conversation it started.
async fn accepted_context(t: &TestDb, app: &Router, request: Request<Body>) -> Value {
    let (status, answer) = send(app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let delivery = handled(t, delivery_id(&answer)).await;
    assert_eq!(delivery.status, "accepted", "{:?}", delivery.reason);
    request_context(t, delivery.conversation_id.as_deref().unwrap()).await
}

async fn refused_and_nothing_stored(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    let body = fixture("github/issue_comment.created.json");

    let (status, answer) = send(app, post("bitbucket").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    // A provider without a secret is not enabled.
    let plain = router(AppState::new(t.db.clone()));
    let (status, answer) = send(&plain, github("issue_comment", "d-1", &body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(answer["error"].as_str().unwrap().contains("not enabled"));

    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let mut request = github("issue_comment", "d-2", &body);
    *request.body_mut() = Body::from(tampered);
    let (status, answer) = send(app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    let unsigned = post("github")
        .header("x-github-event", "issue_comment")
        .header("x-github-delivery", "d-3")
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, answer) = send(app, unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256")
    );

    let wrong_token = signing::gitlab(
        "not-the-token",
        "Note Hook",
        "u-1",
        fixture("gitlab/note.issue.json"),
    );
    assert_eq!(
        send(app, wrong_token.into()).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Slack and Linear deliveries older than their replay windows.
    let slack_body = fixture("slack/app_mention.json");
    let stale: Request<Body> = signing::slack_at(
        SLACK_SECRET,
        slack_body.clone(),
        signing::now_seconds() - 301,
    )
    .into();
    assert_eq!(send(app, stale).await.0, StatusCode::UNAUTHORIZED);
    let old_linear = fixture("linear/comment.create.json");
    assert_eq!(
        send(app, linear("l-old", &old_linear)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Signed, but not something GitHub would send.
    let (status, answer) = send(app, github("issue_comment", "d-4", b"{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // A comment that mentions the agent but lacks what an answer needs is refused, naming the
    // field (one that asks for nothing is kept as ignored: see the published payloads).
    let (status, answer) = send(
        app,
        github(
            "issue_comment",
            "d-5",
            br#"{"action":"created","comment":{"id":1,"body":"@openhands fix it"}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("missing field `repository`"),
        "{answer}"
    );

    // Over 25 MB, with and without a declared length.
    let huge = vec![b' '; 25 * 1024 * 1024 + 1];
    let (status, _) = send(app, github("issue_comment", "d-6", &huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let chunks =
        futures::stream::iter((0..26).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024])));
    let streamed = post("github")
        .header("x-github-event", "issue_comment")
        .header("x-github-delivery", "d-7")
        .header("x-hub-signature-256", "sha256=00")
        .body(Body::from_stream(chunks))
        .unwrap();
    assert_eq!(send(app, streamed).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    assert!(
        t.db.deliveries(None, None, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(t.db.jobs("intake", None, 10).await.unwrap().is_empty());
}

async fn github_comment_and_follow_up(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    service
        .fakes()
        .set_github_permission("octo-org/hello-world", "mona", "write");
    let body = fixture("github/issue_comment.created.json");

    let (status, answer) = send(app, github("issue_comment", "gh-1", &body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let first = handled(t, delivery_id(&answer)).await;
    assert_eq!(first.status, "accepted", "{:?}", first.reason);
    let conversation_id = first.conversation_id.clone().unwrap();
    let conversation = t.db.conversation(&conversation_id).await.unwrap();
    assert_eq!(conversation.trigger_kind, "github");
    assert_eq!(
        conversation.repository.as_deref(),
        Some("octo-org/hello-world")
    );
    assert_eq!(
        conversation.external_ref.as_deref(),
        Some("octo-org/hello-world#17")
    );
    let owner = t.db.user(&conversation.owner_id).await.unwrap();
    assert_eq!(owner.login, "github:mona");

    // The app authenticated with its JWT, then checked as the installation.
    service.fakes().recorded(|r| {
        assert_eq!(r.installation_tokens, vec![4242]);
        assert_eq!(
            r.permission_checks,
            vec![(
                "ghs_installation_4242".to_string(),
                "octo-org/hello-world/mona".to_string()
            )]
        );
    });
    let events = t.db.events_after(&conversation_id, 0, 10).await.unwrap();
    assert_eq!(events[0].kind, "request_context");
    let context: Value = serde_json::from_str(&events[0].payload).unwrap();
    assert!(context["title"].is_string(), "{context}");
    assert_eq!(
        context["history"],
        json!([{"author": "octocat", "text": "The test fails on main since yesterday."}])
    );
    assert_eq!(context["diff"], Value::Null, "an issue has no diff");
    assert_eq!(events[1].kind, "message");
    let message: Value = serde_json::from_str(&events[1].payload).unwrap();
    assert_eq!(message["action"], "message");
    assert!(
        message["args"]["content"]
            .as_str()
            .unwrap()
            .contains("@openhands")
    );
    assert_eq!(t.db.jobs("run", None, 10).await.unwrap().len(), 1);

    // The same delivery again: nothing new.
    let (status, answer) = send(app, github("issue_comment", "gh-1", &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(t.db.jobs("intake", None, 10).await.unwrap().len(), 1);

    // A follow-up comment on the same issue continues the conversation.
    let mut follow_up: Value = serde_json::from_slice(&body).unwrap();
    follow_up["comment"]["id"] = json!(2090183999u64);
    follow_up["comment"]["body"] = json!("@openhands also update the changelog");
    let follow_up = serde_json::to_vec(&follow_up).unwrap();
    let (status, answer) = send(app, github("issue_comment", "gh-2", &follow_up)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = handled(t, delivery_id(&answer)).await;
    assert_eq!(
        second.conversation_id.as_deref(),
        Some(conversation_id.as_str())
    );
    let messages: Vec<String> =
        t.db.events_after(&conversation_id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "message")
            .map(|e| e.payload)
            .collect();
    assert_eq!(messages.len(), 2);
    assert!(messages[1].contains("also update the changelog"));
    assert_eq!(t.db.conversations_of(&owner.id, 10).await.unwrap().len(), 1);

    // An inline review comment on a pull request starts that pull request's conversation.
    let review = fixture("github/pull_request_review_comment.created.json");
    let (status, answer) = send(app, github("pull_request_review_comment", "gh-3", &review)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let third = handled(t, delivery_id(&answer)).await;
    let pr =
        t.db.conversation(third.conversation_id.as_deref().unwrap())
            .await
            .unwrap();
    assert_ne!(pr.id, conversation_id);
    assert!(pr.branch.is_some());
}

async fn github_reader_unauthorized(t: &TestDb) {
    let service = service(t).await;
    service
        .fakes()
        .set_github_permission("octo-org/hello-world", "mona", "read");
    let body = fixture("github/issue_comment.created.json");
    let (status, answer) = send(&service.app(), github("issue_comment", "gh-r", &body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let delivery = handled(t, delivery_id(&answer)).await;
    assert_eq!(delivery.status, "unauthorized");
    assert!(delivery.reason.as_deref().unwrap().contains("`read`"));
    assert!(delivery.conversation_id.is_none());

    // Someone GitHub does not know as a collaborator at all.
    let mut stranger: Value = serde_json::from_slice(&body).unwrap();
    stranger["sender"]["login"] = json!("eve");
    stranger["comment"]["id"] = json!(1);
    let stranger = serde_json::to_vec(&stranger).unwrap();
    let (_, answer) = send(&service.app(), github("issue_comment", "gh-e", &stranger)).await;
    let delivery = handled(t, delivery_id(&answer)).await;
    assert_eq!(delivery.status, "unauthorized");
    assert!(delivery.reason.as_deref().unwrap().contains("`none`"));
}

async fn gitlab_access_levels(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    service.fakes().set_gitlab_level(42, "2718", 20);
    let (status, answer) = send(
        app,
        gitlab("Note Hook", "g-1", &fixture("gitlab/note.issue.json")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let reporter = handled(t, delivery_id(&answer)).await;
    assert_eq!(reporter.status, "unauthorized");
    assert!(reporter.reason.unwrap().contains("access level 20"));

    service.fakes().set_gitlab_level(42, "2718", 30);
    let (status, answer) = send(
        app,
        gitlab(
            "Note Hook",
            "g-2",
            &fixture("gitlab/note.merge_request.diff.json"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let developer = handled(t, delivery_id(&answer)).await;
    assert_eq!(developer.status, "accepted", "{:?}", developer.reason);
    let conversation =
        t.db.conversation(developer.conversation_id.as_deref().unwrap())
            .await
            .unwrap();
    assert_eq!(conversation.trigger_kind, "gitlab");
    assert_eq!(conversation.repository.as_deref(), Some("acme/widgets"));
    let context = &t.db.events_after(&conversation.id, 0, 1).await.unwrap()[0];
    let context: Value = serde_json::from_str(&context.payload).unwrap();
    assert_eq!(
        context["history"],
        json!([{"author": "jdoe", "text": "Seen on CI too."}]),
        "comments, not system notes"
    );
    assert_eq!(
        service.fakes().recorded(|r| r.gitlab_checks.clone()),
        vec!["42/2718", "42/2718"]
    );
}

async fn slack_linking_and_redelivery(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    let mention = fixture("slack/app_mention.json");

    let (status, answer) = send(app, slack(&mention)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = delivery_id(&answer);
    let unlinked = handled(t, id).await;
    assert_eq!(unlinked.status, "unauthorized");
    // The hint is posted after the delivery is marked; under load it can trail a little.
    let told = support::wait_for("the ephemeral hint", Duration::from_secs(30), || async {
        let told = service.fakes().recorded(|r| r.slack_ephemeral.clone());
        (!told.is_empty()).then_some(told)
    })
    .await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["user"], "U0ALICE01");
    assert_eq!(told[0]["channel"], "C0001");
    assert!(told[0]["text"].as_str().unwrap().contains("not linked"));

    // Slack retries the same event: no second run, no second message.
    let retry = signing::slack(SLACK_SECRET, mention.clone())
        .header("x-slack-retry-num", "1")
        .header("x-slack-retry-reason", "http_timeout")
        .into();
    let (status, answer) = send(app, retry).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    // Linked by an administrator, the request is re-run.
    link(app, "alice", "slack", "T0001", "U0ALICE01").await;
    let (status, answer) = send(
        app,
        admin("POST", &format!("/api/deliveries/{id}/redeliver"), None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let conversation_id = support::wait_for("the redelivery", Duration::from_secs(30), || async {
        t.db.delivery(id).await.unwrap().conversation_id
    })
    .await;
    let conversation = t.db.conversation(&conversation_id).await.unwrap();
    let alice = t.db.user_by_login("alice").await.unwrap().unwrap();
    assert_eq!(conversation.owner_id, alice.id);
    let context = &t.db.events_after(&conversation_id, 0, 1).await.unwrap()[0];
    assert!(
        context.payload.contains("the nightly build is red"),
        "{}",
        context.payload
    );
    assert_eq!(
        conversation.external_ref.as_deref(),
        Some("T0001/C0001/1714567890.123456")
    );
    assert_eq!(service.fakes().recorded(|r| r.slack_ephemeral.len()), 1);

    // A reply in the thread from another linked member continues it.
    link(app, "bob", "slack", "T0001", "U0BOB0002").await;
    let reply = fixture("slack/message.thread_reply.json");
    let (status, answer) = send(app, slack(&reply)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let continued = handled(t, delivery_id(&answer)).await;
    assert_eq!(
        continued.conversation_id.as_deref(),
        Some(conversation_id.as_str())
    );

    // A thread reply where no conversation runs asks for nothing: stored at once, then set
    // aside by its intake job, which reads the conversations.
    let mut elsewhere: Value = serde_json::from_slice(&reply).unwrap();
    elsewhere["event_id"] = json!("Ev-elsewhere");
    elsewhere["event"]["thread_ts"] = json!("1600000000.000001");
    let (status, answer) = send(app, slack(&serde_json::to_vec(&elsewhere).unwrap())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let set_aside = handled(t, delivery_id(&answer)).await;
    assert_eq!(
        (set_aside.status.as_str(), set_aside.reason.as_deref()),
        ("ignored", Some("no conversation runs in this thread"))
    );
    assert_eq!(set_aside.conversation_id, None);

    // A redelivery of something that asked for nothing is refused.
    let mut chatter: Value = serde_json::from_slice(&reply).unwrap();
    chatter["event_id"] = json!("Ev-chatter");
    chatter["event"]["subtype"] = json!("channel_join");
    let (status, answer) = send(app, slack(&serde_json::to_vec(&chatter).unwrap())).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{answer}"
    );
    let ignored = delivery_id(&answer);
    let (status, _) = send(
        app,
        admin(
            "POST",
            &format!("/api/deliveries/{ignored}/redeliver"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn jira_and_linear_links(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    let comment = fixture("jira/comment_created.json");
    let (status, answer) = send(app, jira(service.fakes(), "j-1", &comment)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let unlinked = handled(t, delivery_id(&answer)).await;
    assert_eq!(unlinked.status, "unauthorized");
    assert!(unlinked.reason.unwrap().contains("not linked"));

    // Sites compare without their trailing slash and case.
    let site = service.fakes().jira_site_url().to_uppercase();
    link(
        app,
        "carol",
        "jira",
        &format!("{site}/"),
        "5b10ac8d82e05b22cc7d4ef5",
    )
    .await;
    let mut again: Value = serde_json::from_slice(&comment).unwrap();
    again["comment"]["id"] = json!("99999");
    let again = jira(service.fakes(), "j-2", &serde_json::to_vec(&again).unwrap());
    let (status, answer) = send(app, again).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let linked = handled(t, delivery_id(&answer)).await;
    assert_eq!(linked.status, "accepted", "{:?}", linked.reason);

    let linear_comment = linear_now("linear/comment.create.json");
    let (status, answer) = send(app, linear("l-1", &linear_comment)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        handled(t, delivery_id(&answer)).await.status,
        "unauthorized"
    );
    link(
        app,
        "alice",
        "linear",
        "org-1",
        "e5a3c1f0-6b2d-4c8e-9f7a-1d2e3f4a5b6c",
    )
    .await;
    let label = linear_now("linear/issue.update.label_added.json");
    let (status, answer) = send(app, linear("l-2", &label)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let accepted = handled(t, delivery_id(&answer)).await;
    assert_eq!(accepted.status, "accepted", "{:?}", accepted.reason);

    // An organization that is not served.
    let mut foreign: Value = serde_json::from_slice(&linear_comment).unwrap();
    foreign["organizationId"] = json!("org-other");
    let (_, answer) = send(app, linear("l-3", &serde_json::to_vec(&foreign).unwrap())).await;
    let refused = handled(t, delivery_id(&answer)).await;
    assert!(refused.reason.unwrap().contains("not served"));
}

async fn ignored_and_handshakes(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();

    let (status, answer) = send(app, github("ping", "p-1", &fixture("github/ping.json"))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let (status, answer) = send(app, github("push", "p-2", &fixture("github/push.json"))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let bot = fixture("github/issue_comment.created.bot.json");
    let (status, answer) = send(app, github("issue_comment", "p-3", &bot)).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    let stored = t.db.delivery(delivery_id(&answer)).await.unwrap();
    assert_eq!(stored.status, "ignored");
    assert!(stored.reason.is_some());

    let (status, answer) = send(app, slack(&fixture("slack/url_verification.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["challenge"].is_string(), "{answer}");

    // Ignored deliveries are listed with their reasons; nothing was enqueued.
    let (status, listed) = send(app, admin("GET", "/api/deliveries?status=ignored", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["deliveries"].as_array().unwrap().len(), 3);
    assert!(t.db.jobs("intake", None, 10).await.unwrap().is_empty());
}

async fn pull_and_merge_request_diffs(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    let fakes = service.fakes();
    fakes.set_github_permission("octo-org/hello-world", "mona", "write");
    let review = fixture("github/pull_request_review_comment.created.json");
    let context = accepted_context(
        t,
        app,
        github("pull_request_review_comment", "gh-d1", &review),
    )
    .await;
    assert_eq!(context["diff"], fakes::GITHUB_DIFF);
    assert_eq!(context["diff_error"], Value::Null);
    assert_eq!(
        fakes.recorded(|r| r.diff_requests.clone()),
        vec!["github octo-org/hello-world#21 application/vnd.github.diff"]
    );

    // A diff longer than the agent is given is cut after a whole line, with a note.
    let generated: String = (0..5000)
        .map(|n| format!("+generated line {n} of a long file\n"))
        .collect();
    let long = format!("{}{generated}", fakes::GITHUB_DIFF);
    assert!(long.len() > MAX_DIFF_CHARS);
    fakes.set_github_diff("octo-org/hello-world", 22, &long);
    let mut other: Value = serde_json::from_slice(&review).unwrap();
    other["pull_request"]["number"] = json!(22);
    other["comment"]["id"] = json!(2200);
    let other = serde_json::to_vec(&other).unwrap();
    let context = accepted_context(
        t,
        app,
        github("pull_request_review_comment", "gh-d2", &other),
    )
    .await;
    let diff = context["diff"].as_str().unwrap();
    assert!(diff.chars().count() <= MAX_DIFF_CHARS, "{}", diff.len());
    let (kept, note) = diff.split_once("\n[the diff is cut here").unwrap();
    assert!(long.starts_with(&format!("{kept}\n")));
    assert!(kept.len() > MAX_DIFF_CHARS - 200, "{}", kept.len());
    assert!(note.contains(&long.len().to_string()), "{note}");

    // GitLab's file diffs, read page by page, become one unified diff.
    fakes.set_gitlab_level(42, "2718", 30);
    let mut files = vec![
        json!({"old_path": "app/money.py", "new_path": "app/money.py", "a_mode": "100644", "b_mode": "100644",
               "new_file": false, "renamed_file": false, "deleted_file": false,
               "diff": "@@ -1,2 +1,2 @@\n def round_amount(x):\n-    return round(x)\n+    return round_half_even(x)\n"}),
        json!({"old_path": "tests/test_money.py", "new_path": "tests/test_money.py", "a_mode": "0", "b_mode": "100644",
               "new_file": true, "renamed_file": false, "deleted_file": false,
               "diff": "@@ -0,0 +1 @@\n+assert round_amount(2.5) == 2\n"}),
        json!({"old_path": "old.txt", "new_path": "new.txt", "a_mode": "100644", "b_mode": "100644",
               "new_file": false, "renamed_file": true, "deleted_file": false, "diff": ""}),
        json!({"old_path": "gone.txt", "new_path": "gone.txt", "a_mode": "100644", "b_mode": "0",
               "new_file": false, "renamed_file": false, "deleted_file": true,
               "diff": "@@ -1 +0,0 @@\n-bye\n"}),
    ];
    files.extend((0..100).map(|n| {
        json!({"old_path": format!("gen/{n}.txt"), "new_path": format!("gen/{n}.txt"), "a_mode": "100644",
               "b_mode": "100644", "new_file": false, "renamed_file": false, "deleted_file": false,
               "diff": format!("@@ -1 +1 @@\n-{n}\n+{}\n", n + 1)})
    }));
    fakes.set_gitlab_diffs(42, 15, files);
    let context = accepted_context(
        t,
        app,
        gitlab(
            "Note Hook",
            "g-d1",
            &fixture("gitlab/note.merge_request.diff.json"),
        ),
    )
    .await;
    let diff = context["diff"].as_str().unwrap();
    let expected_start = "\
diff --git a/app/money.py b/app/money.py
--- a/app/money.py
+++ b/app/money.py
@@ -1,2 +1,2 @@
 def round_amount(x):
-    return round(x)
+    return round_half_even(x)
diff --git a/tests/test_money.py b/tests/test_money.py
new file mode 100644
--- /dev/null
+++ b/tests/test_money.py
@@ -0,0 +1 @@
+assert round_amount(2.5) == 2
diff --git a/old.txt b/new.txt
rename from old.txt
rename to new.txt
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
--- a/gone.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/gen/0.txt b/gen/0.txt
";
    assert!(diff.starts_with(expected_start), "{diff}");
    assert_eq!(diff.matches("diff --git ").count(), 104);
    assert!(diff.ends_with("-99\n+100\n"), "{diff}");
    assert_eq!(
        fakes.recorded(|r| r.diff_requests[2..].to_vec()),
        vec!["gitlab 42!15 page=1", "gitlab 42!15 page=2"]
    );

    // A follow-up on the same merge request does not read the diff again.
    let mut follow_up: Value =
        serde_json::from_slice(&fixture("gitlab/note.merge_request.diff.json")).unwrap();
    follow_up["object_attributes"]["id"] = json!(99_001);
    let (status, answer) = send(
        app,
        gitlab(
            "Note Hook",
            "g-d2",
            &serde_json::to_vec(&follow_up).unwrap(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(handled(t, delivery_id(&answer)).await.status, "accepted");
    assert_eq!(fakes.recorded(|r| r.diff_requests.len()), 4);
}

async fn unreadable_diff(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    let fakes = service.fakes();
    fakes.set_github_permission("octo-org/hello-world", "mona", "write");
    fakes.set_gitlab_level(42, "2718", 30);
    fakes.fail_diffs(Some(500));

    let review = fixture("github/pull_request_review_comment.created.json");
    let context = accepted_context(
        t,
        app,
        github("pull_request_review_comment", "gh-f1", &review),
    )
    .await;
    assert_eq!(context["diff"], Value::Null);
    let error = context["diff_error"].as_str().unwrap();
    assert!(
        error.contains("cannot read the diff of octo-org/hello-world#21 from GitHub"),
        "{error}"
    );
    assert!(!error.contains("ghs_installation"), "{error}");
    assert_eq!(
        context["history"],
        json!([{"author": "octocat", "text": "The test fails on main since yesterday."}])
    );

    let context = accepted_context(
        t,
        app,
        gitlab(
            "Note Hook",
            "g-f1",
            &fixture("gitlab/note.merge_request.diff.json"),
        ),
    )
    .await;
    assert_eq!(context["diff"], Value::Null);
    let error = context["diff_error"].as_str().unwrap();
    assert!(
        error.contains("cannot read the diff of merge request !15 of project 42 from GitLab"),
        "{error}"
    );
    assert!(error.contains("500"), "{error}");
    assert!(!error.contains(fakes::GITLAB_TOKEN), "{error}");
}

async fn repository_remotes(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    let fakes = service.fakes();
    fakes.set_github_permission("octo-org/hello-world", "mona", "write");
    fakes.set_gitlab_level(42, "2718", 30);

    // What the worker reads from the conversation's context is enough to clone.
    let context = accepted_context(
        t,
        app,
        github(
            "issue_comment",
            "gh-c1",
            &fixture("github/issue_comment.created.json"),
        ),
    )
    .await;
    let place: Place = serde_json::from_value(context["place"].clone()).unwrap();
    let enterprise = "https://github.example.com/octo-org/hello-world.git";
    fakes.set_github_clone_url("octo-org/hello-world", enterprise);
    let remote = service
        .providers
        .clients()
        .remote_of(&place.repository_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(remote.url, enterprise);
    assert_eq!(remote.username, "x-access-token");
    let token = remote.token.as_ref().unwrap().expose().to_string();
    // The installation's token, issued once and reused.
    assert_eq!(
        fakes.recorded(|r| r.issued_tokens.clone()),
        vec![token.clone()]
    );
    assert!(!format!("{remote:?}").contains(&token));

    // The remote clones from a git host that accepts only that token.
    let server = GitServer::start(&token).await;
    let seed = server.create_repo("hello-world");
    fakes.set_github_clone_url("octo-org/hello-world", &server.url("hello-world"));
    let remote = service
        .providers
        .clients()
        .remote_of(&place.repository_ref().unwrap())
        .await
        .unwrap();
    let credentials = format!("{}:{}", remote.username, token);
    let listed = std::process::Command::new("git")
        .args(["ls-remote", "--", &remote.url, "refs/heads/main"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.extraHeader")
        .env(
            "GIT_CONFIG_VALUE_0",
            format!(
                "Authorization: Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
        )
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with(&seed));

    // Without a clone URL set, the fake's own on loopback.
    let other = Place::GithubIssue {
        installation_id: 5151,
        repository: "octo-org/other".into(),
        number: 1,
    };
    let remote = service
        .providers
        .clients()
        .remote_of(&other.repository_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(remote.url, format!("{}/git/octo-org/other.git", fakes.url));
    assert_eq!(
        remote.token.as_ref().unwrap().expose(),
        "ghs_installation_5151"
    );

    // A repository the installation cannot see, and a name that is not one.
    let hidden = Place::GithubIssue {
        installation_id: 4242,
        repository: "octo-org/hidden".into(),
        number: 1,
    };
    fakes.hide_github_repository("octo-org/hidden");
    let error = format!(
        "{:#}",
        service
            .providers
            .clients()
            .remote_of(&hidden.repository_ref().unwrap())
            .await
            .unwrap_err()
    );
    assert!(
        error.contains("cannot read the repository octo-org/hidden from GitHub"),
        "{error}"
    );
    assert!(!error.contains(&token), "{error}");
    let invalid = Place::GithubIssue {
        installation_id: 4242,
        repository: "octo-org/../admin".into(),
        number: 1,
    };
    let error = service
        .providers
        .clients()
        .remote_of(&invalid.repository_ref().unwrap())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not a GitHub repository name"));

    // GitLab: the project's clone URL and the configured token.
    let context = accepted_context(
        t,
        app,
        gitlab(
            "Note Hook",
            "g-c1",
            &fixture("gitlab/note.merge_request.diff.json"),
        ),
    )
    .await;
    let place: Place = serde_json::from_value(context["place"].clone()).unwrap();
    let remote = service
        .providers
        .clients()
        .remote_of(&place.repository_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(remote.url, format!("{}/git/project-42.git", fakes.url));
    assert_eq!(remote.username, "oauth2");
    assert_eq!(remote.token.as_ref().unwrap().expose(), fakes::GITLAB_TOKEN);
    fakes.set_gitlab_repo_url(42, "https://gitlab.example.com/acme/widgets.git");
    let remote = service
        .providers
        .clients()
        .remote_of(&place.repository_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(remote.url, "https://gitlab.example.com/acme/widgets.git");

    // Places that are not repositories have none.
    let thread = Place::SlackThread {
        team_id: "T0001".into(),
        channel: "C0001".into(),
        thread_ts: "1714567890.123456".into(),
    };
    assert!(thread.repository_ref().is_none());
}

on_both_backends! {
    concurrent_deliveries_are_each_stored_once => concurrent_deliveries_stored_once;
}

/// Many deliveries at once, some of them twice: each id is stored once, with one intake job,
/// and each copy is answered either 202 or 200 duplicate.
async fn concurrent_deliveries_stored_once(t: &TestDb) {
    let app = router(
        AppState::new(t.db.clone()).with_webhooks(Webhooks::default().with(
            openhands::integrations::request::Provider::Github,
            GITHUB_SECRET.parse().unwrap(),
        )),
    );
    let body = fixture("github/issue_comment.created.json");
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..300 {
        let app = app.clone();
        let request = github("issue_comment", &format!("c-{}", n % 200), &body);
        sends.spawn(async move { send(&app, request).await });
    }
    let mut accepted = 0;
    let mut duplicates = 0;
    while let Some(result) = sends.join_next().await {
        let (status, answer) = result.unwrap();
        match (status, answer["status"].as_str()) {
            (StatusCode::ACCEPTED, Some("accepted")) => accepted += 1,
            (StatusCode::OK, Some("duplicate")) => duplicates += 1,
            other => panic!("unexpected answer {other:?}: {answer}"),
        }
    }
    assert_eq!((accepted, duplicates), (200, 100));
    assert_eq!(
        t.db.deliveries(None, None, None, 100).await.unwrap().len(),
        100,
        "a page of them"
    );
    assert_eq!(t.db.job_status_counts().await.unwrap()[0].count, 200);
}

/// One payload of `tests/fixtures/published.tsv`: copied unchanged from an SDK's test data, a
/// provider's documentation or an open-source integration.
struct Published {
    file: String,
    provider: String,
    event_header: String,
    mention_field: Option<String>,
}

fn published() -> Vec<Published> {
    let index = String::from_utf8(fixture("published.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            assert!(columns.len() >= 4, "published.tsv: {line}");
            Published {
                file: columns[0].trim_start_matches("tests/fixtures/").to_string(),
                provider: columns[1].to_string(),
                event_header: columns[2].to_string(),
                mention_field: (columns[3] != "-").then(|| columns[3].to_string()),
            }
        })
        .collect()
}

/// `body` signed as `payload.provider` sends it, under delivery id `id`. Linear refuses
/// deliveries older than a minute, so only its `webhookTimestamp` is brought up to now.
fn published_delivery(
    fakes: &FakeProviders,
    payload: &Published,
    id: &str,
    body: &[u8],
) -> Request<Body> {
    match payload.provider.as_str() {
        "github" => github(&payload.event_header, id, body),
        "gitlab" => gitlab(&payload.event_header, id, body),
        "slack" if payload.event_header == "interactivity" => {
            let value: Value = serde_json::from_slice(body).unwrap();
            signing::slack_interactivity(SLACK_SECRET, &value).into()
        }
        "slack" => slack(body),
        "jira" => jira(fakes, id, body),
        "jira-dc" => jira_dc(fakes, body),
        "linear" => {
            let mut value: Value = serde_json::from_slice(body).unwrap();
            signing::stamp_linear(&mut value);
            linear(id, &serde_json::to_vec(&value).unwrap())
        }
        other => panic!("published.tsv names an unknown provider {other}"),
    }
}

/// Every published payload is answered 200 or 202 and stored, whatever optional fields it
/// lacks. With a mention written into its text, each one either asks (202), is ignored for a
/// reason that is not its shape (a bot's message, an edit), or is refused with 400 naming the
/// field that is missing.
async fn published_payloads(t: &TestDb) {
    let service = service(t).await;
    let app = &service.app();
    let payloads = published();
    assert!(
        payloads.len() >= 30,
        "{} published payloads",
        payloads.len()
    );
    let mut outcomes = Vec::new();
    for (n, payload) in payloads.iter().enumerate() {
        let body = fixture(&payload.file);
        // Slack's Events API and Jira carry their delivery ids in the body.
        let mut value: Value = serde_json::from_slice(&body).unwrap();
        if value.get("event_id").is_some() {
            value["event_id"] = json!(format!("Ev-published-{n}"));
        }
        let id = format!("published-{n}");
        let (status, answer) = send(
            app,
            published_delivery(
                service.fakes(),
                payload,
                &id,
                &serde_json::to_vec(&value).unwrap(),
            ),
        )
        .await;
        assert!(
            status == StatusCode::OK || status == StatusCode::ACCEPTED,
            "{}: {status} {answer}",
            payload.file
        );
        if answer.get("challenge").is_none() && answer["status"] != "ignored" {
            assert!(answer["delivery"].is_i64(), "{}: {answer}", payload.file);
        }
        let Some(field) = &payload.mention_field else {
            continue;
        };
        let Some(text) = value.pointer_mut(field) else {
            panic!("{}: no {field}", payload.file);
        };
        *text = json!("@openhands please fix the typo in the README");
        if value.get("event_id").is_some() {
            value["event_id"] = json!(format!("Ev-published-mention-{n}"));
        }
        let id = format!("published-mention-{n}");
        let (status, answer) = send(
            app,
            published_delivery(
                service.fakes(),
                payload,
                &id,
                &serde_json::to_vec(&value).unwrap(),
            ),
        )
        .await;
        let outcome = match status {
            StatusCode::ACCEPTED => "asks".to_string(),
            StatusCode::OK => {
                let stored = t.db.delivery(delivery_id(&answer)).await.unwrap();
                let reason = stored.reason.unwrap_or_default();
                assert!(
                    !reason.contains("not valid"),
                    "{}: ignored for its shape although it mentions the agent: {reason}",
                    payload.file
                );
                format!("ignored: {reason}")
            }
            StatusCode::BAD_REQUEST => {
                let error = answer["error"].as_str().unwrap_or_default().to_string();
                assert!(error.contains('`'), "{}: {error}", payload.file);
                format!("refused: {error}")
            }
            other => panic!("{}: {other} {answer}", payload.file),
        };
        outcomes.push((payload.file.clone(), outcome));
    }
    let expected = expected_published_outcomes();
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|(file, outcome)| {
            !expected
                .iter()
                .any(|(f, wanted)| f == file && outcome.starts_with(wanted))
        })
        .map(|(file, outcome)| format!("{file}: {outcome}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "unexpected outcomes:\n{}",
        wrong.join("\n")
    );
    assert_eq!(expected.len(), outcomes.len(), "{outcomes:#?}");
}

/// What each published payload with a mention written into its text becomes (the start of
/// the outcome).
fn expected_published_outcomes() -> Vec<(String, &'static str)> {
    [
        (
            "github/published/issue_comment.created.octokit-webhooks.json",
            "ignored: the payload has no installation",
        ),
        (
            "github/published/issue_comment.created.probot.2016_no_author_association.json",
            "ignored: the payload has no installation",
        ),
        (
            "github/published/pull_request_review.submitted.zulip.null_body.json",
            "ignored: the payload has no installation",
        ),
        (
            "github/published/pull_request_review_comment.created.probot.json",
            "asks",
        ),
        (
            "github/published/push.probot.json",
            "ignored: event `push` does not ask the agent for anything",
        ),
        (
            "gitlab/published/issue.go-gitlab.labels_changed.json",
            "asks",
        ),
        (
            "gitlab/published/issue.zulip.2018_null_description.json",
            "refused: the Issue Hook payload is not valid at `user`: missing field `id`",
        ),
        (
            "gitlab/published/merge_request.jenkinsci-gitlab-plugin.system_hook.json",
            "ignored: event `System Hook` does not ask the agent for anything",
        ),
        (
            "gitlab/published/note.gitlab-docs.commit.json",
            "ignored: a note on a Commit does not ask the agent for anything",
        ),
        (
            "gitlab/published/note.gitlab-docs.merge_request.json",
            "asks",
        ),
        ("gitlab/published/note.go-gitlab.issue.json", "asks"),
        (
            "gitlab/published/note.jenkinsci-gitlab-plugin.merge_request.json",
            "refused: the Note Hook payload is not valid at `project`: missing field `id`",
        ),
        (
            "gitlab/published/note.zulip.confidential_note.issue.json",
            "asks",
        ),
        (
            "jira-dc/published/comment_created.jira-trigger-plugin.no_issue.json",
            "ignored: Jira Data Center's comment_created names no issue; the comment is read from the jira:issue_updated delivery that carries it",
        ),
        (
            "jira-dc/published/comment_created.mattermost-plugin-jira.server.json",
            "ignored: Jira Data Center's comment_created names no issue; the comment is read from the jira:issue_updated delivery that carries it",
        ),
        (
            "jira-dc/published/comment_updated.mattermost-plugin-jira.server.json",
            "ignored: the comment_updated event is not a request",
        ),
        (
            "jira-dc/published/issue_created.zulip.legacy_2013.json",
            "ignored: the jira:issue_created event is not a request",
        ),
        (
            "jira-dc/published/issue_updated.jira-trigger-plugin.with_comment.json",
            "asks",
        ),
        (
            "jira/published/comment_created.jira-trigger-plugin.cloud_2018.json",
            "asks",
        ),
        (
            "jira/published/comment_created.mattermost-plugin-jira.cloud_mention.json",
            "asks",
        ),
        (
            "jira/published/comment_created.zulip.account_mention.json",
            "asks",
        ),
        (
            "jira/published/issue_updated.zulip.status_changelog.json",
            "ignored: the update does not add the openhands label",
        ),
        (
            "linear/published/app_user_notification.issue_comment_mention.secret-agents.json",
            "ignored: the AppUserNotification.issueCommentMention event is not a request",
        ),
        (
            "linear/published/comment.create.secret-agents.mention.json",
            "asks",
        ),
        ("linear/published/comment.create.zulip.json", "asks"),
        (
            "linear/published/comment.update.zulip.json",
            "ignored: the Comment.update event is not a request",
        ),
        (
            "linear/published/issue.update.zulip.title_changed.json",
            "ignored: the issue does not have the openhands label",
        ),
        (
            "slack/published/event_callback.app_mention.java-slack-sdk.placeholders.json",
            "ignored: the message was sent by a bot",
        ),
        (
            "slack/published/event_callback.message.bot_message.zulip.json",
            "ignored: the message was sent by a bot",
        ),
        (
            "slack/published/event_callback.message.im.slack-web.json",
            "ignored: the message is not a reply in a thread",
        ),
        (
            "slack/published/event_callback.message.message_changed.slack-morphism.by_bot.json",
            "ignored: an edit of an earlier message",
        ),
        (
            "slack/published/event_callback.message.message_changed.slack-web.json",
            "ignored: an edit of an earlier message",
        ),
        (
            "slack/published/event_callback.message.zulip.user_mentions.json",
            "ignored: the message is not a reply in a thread",
        ),
    ]
    .into_iter()
    .map(|(file, outcome)| (file.to_string(), outcome))
    .collect()
}

/// Holds the database so that no delivery can be written: PostgreSQL's deliveries table locked
/// against inserts, or SQLite's only connection taken. Released when dropped (the fields are
/// only held).
#[allow(dead_code)]
enum WritesHeld {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

async fn hold_writes(t: &TestDb) -> WritesHeld {
    match &t.db {
        openhands::storage::Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            WritesHeld::Postgres(tx)
        }
        openhands::storage::Db::Sqlite(pool) => WritesHeld::Sqlite(pool.acquire().await.unwrap()),
    }
}

/// Slack deliveries that wait for a writer longer than Slack waits (3 s) are answered 503 with
/// Retry-After instead of timing out, and are not stored, so Slack's retry is taken as new;
/// those a writer already took are answered when their transaction ends.
async fn busy_and_kept(t: &TestDb) {
    let service = service(t).await;
    let app = service.app();
    let body = |n: usize| {
        let mut mention: Value =
            serde_json::from_slice(&fixture("slack/app_mention.json")).unwrap();
        mention["event_id"] = json!(format!("Ev-busy-{n}"));
        serde_json::to_vec(&mention).unwrap()
    };

    let held = hold_writes(t).await;
    // Released after a while, whatever the answers: a writer blocked on it holds a delivery.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(held);
    });
    let mut sent = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (app, body) = (app.clone(), body(n));
        sent.spawn(async move {
            let response = app.oneshot(slack(&body)).await.unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (n, response.status(), retry_after)
        });
        // One at a time, so that each free writer takes one and the rest queue.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answers = sent.join_all().await;
    release.await.unwrap();

    let stored: Vec<String> =
        t.db.deliveries(Some("slack"), None, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.delivery_id)
            .collect();
    let mut busy = Vec::new();
    for (n, status, retry_after) in &answers {
        let id = format!("Ev-busy-{n}");
        match *status {
            StatusCode::ACCEPTED => assert!(stored.contains(&id), "{id} answered 202"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(retry_after.as_deref(), Some("2"));
                assert!(!stored.contains(&id), "{id} was answered busy but stored");
                busy.push(*n);
            }
            other => panic!("{id}: {other}"),
        }
    }
    assert!(!busy.is_empty(), "{answers:?}");
    // Slack's retry of a delivery answered busy is a new delivery, accepted once.
    let (status, answer) = send(&app, slack(&body(busy[0]))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, answer) = send(&app, slack(&body(busy[0]))).await;
    assert_eq!(answer["status"], "duplicate", "{status} {answer}");
}

/// Jira Cloud writes a mention picked from its menu as `[~accountid:…]`, Jira Data Center as
/// `[~name]` and Linear as a link to the user's profile; the service learns its own accounts'
/// forms from each Jira's `myself` and Linear's `viewer` when it starts, and such a mention asks
/// as the handle does, except in a quote.
async fn mentions_from_menus(t: &TestDb) {
    let service = Service::builder(&t.db)
        .fakes()
        .set("--jira-webhook-secret", JIRA_SECRET)
        .set("--jira-dc-webhook-secret", JIRA_DC_SECRET)
        .set("--linear-webhook-secret", LINEAR_SECRET)
        .web()
        .start()
        .await;
    let app = &service.app();
    let jira_comment = |n: usize, text: String| {
        let mut body: Value =
            serde_json::from_slice(&fixture("jira/comment_created.json")).unwrap();
        body["comment"]["body"] = json!(text);
        body["comment"]["author"]["accountId"] = json!("557058:0b4c1e2d-alice");
        jira(
            service.fakes(),
            &format!("menu-jira-{n}"),
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let picked = format!("[~accountid:{}]", fakes::JIRA_ACCOUNT_ID);
    let someone_else = "[~accountid:557058:9f9f9f9f-bob]".to_string();
    let data_center_comment = |text: String| {
        let mut body: Value = serde_json::from_slice(&fixture(
            "jira-dc/published/issue_updated.jira-trigger-plugin.with_comment.json",
        ))
        .unwrap();
        body["comment"]["body"] = json!(text);
        jira_dc(service.fakes(), &serde_json::to_vec(&body).unwrap())
    };
    let picked_in_data_center = format!("[~{}]", fakes::JIRA_DC_USERNAME);
    let linear_comment = |n: usize, text: String| {
        let mut body: Value =
            serde_json::from_slice(&linear_now("linear/comment.create.json")).unwrap();
        body["data"]["body"] = json!(text);
        linear(
            &format!("menu-linear-{n}"),
            &serde_json::to_vec(&body).unwrap(),
        )
    };
    let linked = format!(
        "[OpenHands]({}) please fix the typo",
        fakes::LINEAR_PROFILE_URL
    );
    for (n, request, expected) in [
        (
            1,
            jira_comment(1, format!("{picked} please fix the typo")),
            StatusCode::ACCEPTED,
        ),
        (
            2,
            jira_comment(2, format!("{{quote}}{picked} please fix{{quote}}\nthanks")),
            StatusCode::OK,
        ),
        (
            3,
            jira_comment(3, format!("{someone_else} please fix the typo")),
            StatusCode::OK,
        ),
        (4, linear_comment(4, linked.clone()), StatusCode::ACCEPTED),
        (
            5,
            linear_comment(5, format!("> {linked}\n\nthanks")),
            StatusCode::OK,
        ),
        (
            6,
            data_center_comment(format!("{picked_in_data_center} please fix the typo")),
            StatusCode::ACCEPTED,
        ),
        (
            7,
            data_center_comment(format!("bq. {picked_in_data_center} please fix the typo")),
            StatusCode::OK,
        ),
        (
            8,
            data_center_comment("[~alice] please fix the typo".to_string()),
            StatusCode::OK,
        ),
    ] {
        let (status, answer) = send(app, request).await;
        assert_eq!(status, expected, "case {n}: {answer}");
    }
}
