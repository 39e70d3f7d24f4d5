//! The provider fakes through the real clients: what is posted is held and read back in the
//! providers' own shapes, and injected faults reach the clients as the providers' failures.

use crate::support;

use octocrab::Octocrab;
use octocrab::models::CommentId;
use octocrab::models::reactions::ReactionContent;
use octocrab::service::middleware::retry::RetryConfig;
use openhands::integrations::github::GithubApp;
use openhands::integrations::gitlab::GitlabApi;
use openhands::integrations::request::PriorMessage;
use openhands::integrations::slack::{MenuOption, REPOSITORY_ACTION, SlackApi, repository_menu};
use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use support::fakes::{self, FakeProviders};

const REPO: &str = "octo-org/hello-world";

/// A client of the installation's token, without octocrab's retries unless asked.
fn octocrab(fakes: &FakeProviders, token: &str, retry: RetryConfig) -> Octocrab {
    Octocrab::builder()
        .base_uri(fakes.github_api_url())
        .unwrap()
        .personal_token(token.to_string())
        .add_retry_config(retry)
        .build()
        .unwrap()
}

fn github_status(error: &octocrab::Error) -> u16 {
    match error {
        octocrab::Error::GitHub { source, .. } => source.status_code.as_u16(),
        other => panic!("not an answer of GitHub: {other:?}"),
    }
}

fn prior(author: &str, text: &str) -> PriorMessage {
    PriorMessage {
        author: author.into(),
        text: text.into(),
    }
}

#[tokio::test]
async fn github_comments_are_posted_edited_and_listed() {
    let fakes = FakeProviders::start().await;
    let github = octocrab(&fakes, "ghs_installation_1", RetryConfig::None);
    let issues = github.issues("octo-org", "hello-world");

    let posted = issues.create_comment(7, "Working on it…").await.unwrap();
    assert_eq!(posted.user.login, fakes::GITHUB_BOT_LOGIN);
    assert_eq!(posted.user.r#type, "Bot");
    assert_eq!(posted.body.as_deref(), Some("Working on it…"));
    assert!(
        posted
            .html_url
            .as_str()
            .ends_with(&format!("/issues/7#issuecomment-{}", posted.id)),
        "{}",
        posted.html_url
    );

    // GitHub documents PATCH; octocrab edits with POST, which GitHub also accepts.
    let patched = reqwest::Client::new()
        .patch(format!(
            "{}/repos/{REPO}/issues/comments/{}",
            fakes.github_api_url(),
            posted.id
        ))
        .bearer_auth("ghs_installation_1")
        .json(&json!({"body": "Still working…"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let edited = issues
        .update_comment(posted.id, "Done: opened a pull request.")
        .await
        .unwrap();
    assert_eq!(edited.id, posted.id);
    assert_eq!(edited.body.as_deref(), Some("Done: opened a pull request."));
    assert_eq!(
        fakes.github_comments(REPO, 7),
        vec![(posted.id.0, "Done: opened a pull request.".to_string())]
    );
    assert!(fakes.github_comments(REPO, 8).is_empty());

    // The seeded comment comes first, in the full shape, then the app's.
    let listed = issues.list_comments(7).send().await.unwrap().items;
    let listed: Vec<(String, Option<String>)> =
        listed.into_iter().map(|c| (c.user.login, c.body)).collect();
    assert_eq!(
        listed,
        vec![
            (
                "octocat".to_string(),
                Some("The test fails on main since yesterday.".to_string())
            ),
            (
                fakes::GITHUB_BOT_LOGIN.to_string(),
                Some("Done: opened a pull request.".to_string())
            ),
        ]
    );
    // The service's own client reads the same through an installation token.
    let app = GithubApp::new(
        &fakes.github_api_url(),
        fakes::GITHUB_APP_ID,
        fakes::GITHUB_APP_PRIVATE_KEY,
    )
    .unwrap();
    assert_eq!(
        app.comments(1, REPO, 7).await.unwrap(),
        vec![
            prior("octocat", "The test fails on main since yesterday."),
            prior(fakes::GITHUB_BOT_LOGIN, "Done: opened a pull request."),
        ]
    );

    // Someone else's comment and unknown ones cannot be edited.
    let error = issues.update_comment(CommentId(1), "x").await.unwrap_err();
    assert_eq!(github_status(&error), 404);

    let stranger = octocrab(&fakes, "ghp_personal", RetryConfig::None);
    let error = stranger
        .issues("octo-org", "hello-world")
        .create_comment(7, "hi")
        .await
        .unwrap_err();
    assert_eq!(github_status(&error), 401);
    assert_eq!(fakes.github_comments(REPO, 7).len(), 1);

    assert_eq!(
        fakes.mutations(),
        vec![
            format!("POST /github/repos/{REPO}/issues/7/comments -> 201"),
            format!(
                "PATCH /github/repos/{REPO}/issues/comments/{} -> 200",
                posted.id
            ),
            format!(
                "POST /github/repos/{REPO}/issues/comments/{} -> 200",
                posted.id
            ),
            format!("POST /github/repos/{REPO}/issues/comments/1 -> 404"),
            format!("POST /github/repos/{REPO}/issues/7/comments -> 401"),
        ]
    );
}

#[tokio::test]
async fn github_reactions_are_created_once() {
    let fakes = FakeProviders::start().await;
    let github = octocrab(&fakes, "ghs_installation_1", RetryConfig::None);
    let issues = github.issues("octo-org", "hello-world");

    let eyes = issues
        .create_reaction(7, ReactionContent::Eyes)
        .await
        .unwrap();
    assert_eq!(eyes.content, ReactionContent::Eyes);
    assert_eq!(eyes.user.login, fakes::GITHUB_BOT_LOGIN);
    let again = issues
        .create_reaction(7, ReactionContent::Eyes)
        .await
        .unwrap();
    assert_eq!(again.id, eyes.id);
    issues
        .create_comment_reaction(555u64, ReactionContent::PlusOne)
        .await
        .unwrap();
    github
        .pulls("octo-org", "hello-world")
        .create_comment_reaction(777u64, ReactionContent::Rocket)
        .await
        .unwrap();

    assert_eq!(fakes.github_reactions(REPO, "issues/7"), vec!["eyes"]);
    assert_eq!(
        fakes.github_reactions(REPO, "issues/comments/555"),
        vec!["+1"]
    );
    assert_eq!(
        fakes.github_reactions(REPO, "pulls/comments/777"),
        vec!["rocket"]
    );
    // The first reaction is created (201), the same one again is found (200).
    let statuses: Vec<String> = fakes
        .mutations()
        .iter()
        .map(|m| m.rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(statuses, vec!["201", "200", "201", "201"]);

    let http = reqwest::Client::new();
    let refused = http
        .post(format!(
            "{}/repos/{REPO}/issues/7/reactions",
            fakes.github_api_url()
        ))
        .bearer_auth("ghs_installation_1")
        .json(&json!({"content": "thumbsup"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
}

#[tokio::test]
async fn github_pull_requests_are_opened_once_per_branch_and_found_by_head() {
    let fakes = FakeProviders::start().await;
    let github = octocrab(&fakes, "ghs_installation_1", RetryConfig::None);
    let pulls = github.pulls("octo-org", "hello-world");

    let repository = github.repos("octo-org", "hello-world").get().await.unwrap();
    assert_eq!(repository.default_branch.as_deref(), Some("main"));
    assert_eq!(repository.full_name.as_deref(), Some(REPO));
    assert_eq!(repository.private, Some(true));
    fakes.set_github_default_branch(REPO, "trunk");
    let repository = github.repos("octo-org", "hello-world").get().await.unwrap();
    assert_eq!(repository.default_branch.as_deref(), Some("trunk"));

    let opened = pulls
        .create("Round half to even", "openhands/fix-rounding", "trunk")
        .body("Fixes #7")
        .draft(true)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.number, 101);
    assert_eq!(opened.state, Some(octocrab::models::IssueState::Open));
    assert_eq!(opened.title.as_deref(), Some("Round half to even"));
    assert_eq!(opened.body.as_deref(), Some("Fixes #7"));
    assert_eq!(opened.draft, Some(true));
    assert_eq!(opened.head.ref_field, "openhands/fix-rounding");
    assert_eq!(
        opened.head.label.as_deref(),
        Some("octo-org:openhands/fix-rounding")
    );
    assert_eq!(opened.head.sha.len(), 40);
    assert_eq!(opened.base.ref_field, "trunk");
    assert_eq!(
        opened.html_url.as_ref().unwrap().as_str(),
        "https://github.com/octo-org/hello-world/pull/101"
    );
    assert_eq!(opened.user.as_ref().unwrap().login, fakes::GITHUB_BOT_LOGIN);

    // One open pull request per head branch.
    let error = pulls
        .create("Again", "octo-org:openhands/fix-rounding", "trunk")
        .send()
        .await
        .unwrap_err();
    let octocrab::Error::GitHub { source, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(source.status_code, 422);
    assert_eq!(source.message, "Validation Failed");
    assert!(
        format!("{:?}", source.errors)
            .contains("A pull request already exists for octo-org:openhands/fix-rounding."),
        "{:?}",
        source.errors
    );

    let found = pulls
        .list()
        .head("octo-org:openhands/fix-rounding")
        .state(octocrab::params::State::Open)
        .send()
        .await
        .unwrap()
        .items;
    assert_eq!(
        found.iter().map(|p| p.number).collect::<Vec<_>>(),
        vec![101]
    );
    let none = pulls
        .list()
        .head("octo-org:other")
        .send()
        .await
        .unwrap()
        .items;
    assert!(none.is_empty());
    assert_eq!(pulls.get(101).await.unwrap().number, 101);
    let error = pulls.get(5).await.unwrap_err();
    assert_eq!(github_status(&error), 404);

    // The diff media type still answers the diff, of any pull request.
    let app = GithubApp::new(
        &fakes.github_api_url(),
        fakes::GITHUB_APP_ID,
        fakes::GITHUB_APP_PRIVATE_KEY,
    )
    .unwrap();
    assert_eq!(
        app.pull_request_diff(1, REPO, 101).await.unwrap(),
        fakes::GITHUB_DIFF
    );

    // Once closed, the branch may have a new pull request.
    fakes.close_github_pull(REPO, 101);
    assert!(
        pulls
            .list()
            .head("octo-org:openhands/fix-rounding")
            .send()
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let reopened = pulls
        .create("Round half to even", "openhands/fix-rounding", "trunk")
        .send()
        .await
        .unwrap();
    assert_eq!(reopened.number, 102);
    let pulls_held = fakes.github_pulls(REPO);
    assert_eq!(pulls_held.len(), 2);
    assert_eq!(pulls_held[0]["state"], "closed");
    assert_eq!(pulls_held[1]["state"], "open");
    assert_eq!(pulls_held[1]["draft"], false);
}

#[tokio::test]
async fn github_review_comments_are_replied_to() {
    let fakes = FakeProviders::start().await;
    let github = octocrab(&fakes, "ghs_installation_1", RetryConfig::None);
    let reply = github
        .pulls("octo-org", "hello-world")
        .reply_to_comment(22, CommentId(4242), "Renamed it.")
        .await
        .unwrap();
    assert_eq!(reply.in_reply_to_id, Some(CommentId(4242)));
    assert_eq!(reply.body, "Renamed it.");
    assert_eq!(reply.user.as_ref().unwrap().login, fakes::GITHUB_BOT_LOGIN);
    assert!(reply.pull_request_url.ends_with("/pulls/22"));
    assert_eq!(
        fakes.github_review_replies(REPO, 22),
        vec![(4242, "Renamed it.".to_string())]
    );
}

#[tokio::test]
async fn github_faults_refuse_without_change_or_change_and_lose_the_answer() {
    let fakes = FakeProviders::start().await;
    let github = octocrab(&fakes, "ghs_installation_1", RetryConfig::None);
    let issues = github.issues("octo-org", "hello-world");

    fakes.fail_next("github", 2, 502);
    // Reads pass and leave the faults for the next mutations.
    issues.list_comments(7).send().await.unwrap();
    for _ in 0..2 {
        let error = issues
            .create_comment(7, "Working on it…")
            .await
            .unwrap_err();
        assert_eq!(github_status(&error), 502);
    }
    assert!(fakes.github_comments(REPO, 7).is_empty());
    let posted = issues.create_comment(7, "Working on it…").await.unwrap();
    assert_eq!(fakes.github_comments(REPO, 7).len(), 1);

    fakes.fail_after_commit_next("github", 1);
    let error = issues.update_comment(posted.id, "Done.").await.unwrap_err();
    assert_eq!(github_status(&error), 500);
    assert_eq!(
        fakes.github_comments(REPO, 7),
        vec![(posted.id.0, "Done.".to_string())]
    );

    fakes.fail_next("github", 1, 403);
    let error = github
        .pulls("octo-org", "hello-world")
        .create("Fix", "fix", "main")
        .send()
        .await
        .unwrap_err();
    assert_eq!(github_status(&error), 403);
    assert!(fakes.github_pulls(REPO).is_empty());

    let comments = format!("POST /github/repos/{REPO}/issues/7/comments");
    assert_eq!(
        fakes.mutations(),
        vec![
            format!("{comments} -> 502"),
            format!("{comments} -> 502"),
            format!("{comments} -> 201"),
            format!(
                "POST /github/repos/{REPO}/issues/comments/{} -> 500",
                posted.id
            ),
            format!("POST /github/repos/{REPO}/pulls -> 403"),
        ]
    );
}

/// octocrab retries a 5xx by default, POSTs included: a comment whose answer was lost is
/// posted again.
#[tokio::test]
async fn octocrab_default_retries_repost_a_comment_whose_answer_was_lost() {
    let fakes = FakeProviders::start().await;
    let github = octocrab(&fakes, "ghs_installation_1", RetryConfig::Simple(3));
    fakes.fail_after_commit_next("github", 1);
    github
        .issues("octo-org", "hello-world")
        .create_comment(7, "Working on it…")
        .await
        .unwrap();
    assert_eq!(fakes.github_comments(REPO, 7).len(), 2);
}

fn github_app(fakes: &FakeProviders) -> GithubApp {
    GithubApp::new(
        &fakes.github_api_url(),
        fakes::GITHUB_APP_ID,
        fakes::GITHUB_APP_PRIVATE_KEY,
    )
    .unwrap()
}

#[tokio::test]
async fn github_installations_list_their_repositories_across_pages() {
    let fakes = FakeProviders::start().await;
    // 150 repositories: 120 of one installation (two pages), 30 of another.
    let mut expected: Vec<String> = Vec::new();
    for i in 0..120 {
        let name = format!("acme/service-{i:03}");
        fakes.set_github_installation(&name, 11);
        expected.push(name);
    }
    for i in 0..30 {
        let name = format!("globex/tool-{i:02}");
        fakes.set_github_installation(&name, 22);
        expected.push(name);
    }
    // A repository the installation cannot see is not listed.
    fakes.set_github_installation("globex/secret", 22);
    fakes.hide_github_repository("globex/secret");

    let app = github_app(&fakes);
    assert_eq!(app.installations().await.unwrap(), vec![11, 22]);
    let mut listed = app.installation_repositories(11).await.unwrap();
    assert_eq!(listed.len(), 120);
    listed.extend(app.installation_repositories(22).await.unwrap());
    assert_eq!(listed, expected);
    // One token per installation, reused across pages.
    assert_eq!(
        fakes.recorded(|r| r.installation_tokens.clone()),
        vec![11, 22]
    );

    // The pages in GitHub's shape, linked as GitHub links them.
    let http = reqwest::Client::new();
    let url = format!("{}/installation/repositories", fakes.github_api_url());
    let first = http
        .get(&url)
        .query(&[("per_page", "100")])
        .bearer_auth("ghs_installation_11")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let link = first.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        link,
        format!(
            "<{url}?per_page=100&page=2>; rel=\"next\", <{url}?per_page=100&page=2>; rel=\"last\""
        )
    );
    let page: Value = first.json().await.unwrap();
    assert_eq!(page["total_count"], 120);
    assert_eq!(page["repositories"].as_array().unwrap().len(), 100);
    let repository = &page["repositories"][0];
    assert_eq!(repository["full_name"], "acme/service-000");
    assert_eq!(repository["name"], "service-000");
    assert_eq!(repository["owner"]["login"], "acme");
    assert_eq!(repository["private"], true);
    assert_eq!(repository["default_branch"], "main");
    assert_eq!(
        repository["html_url"],
        "https://github.com/acme/service-000"
    );
    assert!(
        repository["clone_url"]
            .as_str()
            .unwrap()
            .ends_with("/git/acme/service-000.git")
    );
    assert_ne!(repository["id"], page["repositories"][1]["id"]);
    let second = http
        .get(&url)
        .query(&[("per_page", "100"), ("page", "2")])
        .bearer_auth("ghs_installation_11")
        .send()
        .await
        .unwrap();
    let link = second.headers()["link"].to_str().unwrap().to_string();
    assert!(!link.contains("rel=\"next\""), "{link}");
    assert!(link.contains("page=1>; rel=\"prev\""), "{link}");
    let page: Value = second.json().await.unwrap();
    assert_eq!(page["repositories"].as_array().unwrap().len(), 20);
    // A token the fake never issued, or the app's own JWT, lists nothing.
    for token in ["ghs_installation_99", "not-a-token"] {
        let refused = http.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{token}");
    }
}

#[tokio::test]
async fn github_app_installations_are_listed_across_pages() {
    let fakes = FakeProviders::start().await;
    // 205 installations, one repository each: three pages of 100.
    for id in 1..=205u64 {
        fakes.set_github_installation(&format!("org-{id:03}/app"), 5000 + id);
    }
    // A second repository of an installation adds no installation.
    fakes.set_github_installation("org-001/other", 5001);
    let app = github_app(&fakes);
    let ids = app.installations().await.unwrap();
    assert_eq!(ids, (5001..=5205).collect::<Vec<u64>>());

    // The app's answer in GitHub's shape, asked with the app's JWT only.
    let http = reqwest::Client::new();
    let url = format!("{}/app/installations", fakes.github_api_url());
    let refused = http
        .get(&url)
        .bearer_auth("ghs_installation_5001")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn github_listing_failures_say_what_failed_without_a_credential() {
    let fakes = FakeProviders::start().await;
    fakes.set_github_installation(REPO, 7);
    // Another app's id: GitHub refuses the JWT, and no installation token is issued.
    let stranger = GithubApp::new(
        &fakes.github_api_url(),
        fakes::GITHUB_APP_ID + 1,
        fakes::GITHUB_APP_PRIVATE_KEY,
    )
    .unwrap();
    let installations = format!("{:#}", stranger.installations().await.unwrap_err());
    assert!(
        installations.starts_with("cannot list the GitHub App's installations"),
        "{installations}"
    );
    let repositories = format!(
        "{:#}",
        stranger.installation_repositories(7).await.unwrap_err()
    );
    assert!(
        repositories.starts_with("cannot list the repositories of GitHub App installation 7"),
        "{repositories}"
    );
    // Neither an installation token nor the app's JWT (base64 JSON: `eyJ…`) is repeated.
    for error in [installations, repositories] {
        assert!(!error.contains("ghs_") && !error.contains("eyJ"), "{error}");
    }
    assert!(fakes.recorded(|r| r.issued_tokens.is_empty()));
}

fn gitlab_url(fakes: &FakeProviders, path: &str) -> String {
    format!("{}/projects/42/{path}", fakes.gitlab_api_url())
}

async fn gitlab_send(request: reqwest::RequestBuilder, body: Value) -> (u16, Value) {
    let response = request
        .header("PRIVATE-TOKEN", fakes::GITLAB_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn gitlab_notes_discussions_and_award_emoji() {
    let fakes = FakeProviders::start().await;
    let http = reqwest::Client::new();

    let (status, note) = gitlab_send(
        http.post(gitlab_url(&fakes, "issues/7/notes")),
        json!({"body": "Working on it…"}),
    )
    .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["author"]["username"], fakes::GITLAB_BOT_USERNAME);
    assert_eq!(note["noteable_type"], "Issue");
    assert_eq!(note["system"], false);
    let id = note["id"].as_u64().unwrap();

    let (status, edited) = gitlab_send(
        http.put(gitlab_url(&fakes, &format!("issues/7/notes/{id}"))),
        json!({"body": "Done."}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(edited["body"], "Done.");
    let (status, _) = gitlab_send(
        http.put(gitlab_url(&fakes, "issues/7/notes/1")),
        json!({"body": "Not mine"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        fakes.gitlab_notes(42, "issues", 7),
        vec![(id, "Done.".to_string())]
    );

    // The service's client reads the seeded comment, then the posted note.
    let gitlab = GitlabApi::new(
        &fakes.gitlab_api_url(),
        fakes::GITLAB_TOKEN.parse().unwrap(),
    )
    .unwrap();
    assert_eq!(
        gitlab.notes(42, "issues", 7).await.unwrap(),
        vec![
            prior("jdoe", "Seen on CI too."),
            prior(fakes::GITLAB_BOT_USERNAME, "Done.")
        ]
    );
    // Without `sort=asc`, newest first as GitLab answers.
    let (_, newest_first) =
        gitlab_send(http.get(gitlab_url(&fakes, "issues/7/notes")), json!(null)).await;
    assert_eq!(newest_first[0]["body"], "Done.");

    let (status, reply) = gitlab_send(
        http.post(gitlab_url(
            &fakes,
            "merge_requests/15/discussions/6a9c1750b37d513a43987b574953fceb50b03ce7/notes",
        )),
        json!({"body": "Renamed it."}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(reply["type"], "DiscussionNote");
    assert_eq!(reply["noteable_type"], "MergeRequest");
    assert_eq!(
        fakes.gitlab_notes(42, "merge_requests", 15),
        vec![(reply["id"].as_u64().unwrap(), "Renamed it.".to_string())]
    );

    for path in [
        "issues/7/award_emoji",
        "merge_requests/15/award_emoji",
        "merge_requests/15/notes/99/award_emoji",
    ] {
        let (status, award) =
            gitlab_send(http.post(gitlab_url(&fakes, path)), json!({"name": "eyes"})).await;
        assert_eq!(status, 201, "{path}: {award}");
        assert_eq!(award["name"], "eyes");
        assert_eq!(award["user"]["username"], fakes::GITLAB_BOT_USERNAME);
    }
    let (status, again) = gitlab_send(
        http.post(gitlab_url(&fakes, "issues/7/award_emoji")),
        json!({"name": "eyes"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        again["message"],
        "404 Award Emoji Name has already been taken"
    );
    assert_eq!(fakes.gitlab_award_emoji(42, "issues/7"), vec!["eyes"]);
    assert_eq!(
        fakes.gitlab_award_emoji(42, "merge_requests/15/notes/99"),
        vec!["eyes"]
    );

    let refused = http
        .post(gitlab_url(&fakes, "issues/7/notes"))
        .header("PRIVATE-TOKEN", "glpat-other")
        .json(&json!({"body": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(fakes.gitlab_notes(42, "issues", 7).len(), 1);
}

#[tokio::test]
async fn gitlab_merge_requests_are_opened_once_per_source_branch() {
    let fakes = FakeProviders::start().await;
    let http = reqwest::Client::new();
    let open = json!({
        "source_branch": "openhands/fix-rounding",
        "target_branch": "main",
        "title": "Round half to even",
        "description": "Closes #7"
    });
    let (status, created) = gitlab_send(
        http.post(gitlab_url(&fakes, "merge_requests")),
        open.clone(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["iid"], 101);
    assert_eq!(created["state"], "opened");
    assert_eq!(created["description"], "Closes #7");
    assert_eq!(
        created["web_url"],
        format!("{}/acme/widgets/-/merge_requests/101", fakes.url)
    );

    let (status, conflict) = gitlab_send(
        http.post(gitlab_url(&fakes, "merge_requests")),
        open.clone(),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        conflict["message"][0],
        "Another open merge request already exists for this source branch: !101"
    );

    let (status, found) = gitlab_send(
        http.get(gitlab_url(
            &fakes,
            "merge_requests?source_branch=openhands/fix-rounding&state=opened",
        )),
        json!(null),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["iid"], 101);

    let (status, missing) = gitlab_send(
        http.post(gitlab_url(&fakes, "merge_requests")),
        json!({"source_branch": "x", "target_branch": "main"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(missing["error"], "title is missing");

    fakes.close_gitlab_merge_request(42, 101);
    let (status, again) = gitlab_send(http.post(gitlab_url(&fakes, "merge_requests")), open).await;
    assert_eq!(status, 201);
    assert_eq!(again["iid"], 102);
    let held = fakes.gitlab_merge_requests(42);
    assert_eq!(
        held.iter().map(|m| m["state"].clone()).collect::<Vec<_>>(),
        vec![json!("closed"), json!("opened")]
    );
}

#[tokio::test]
async fn gitlab_faults_refuse_without_change_or_change_and_lose_the_answer() {
    let fakes = FakeProviders::start().await;
    let http = reqwest::Client::new();
    let post_note = || {
        gitlab_send(
            http.post(gitlab_url(&fakes, "merge_requests/15/notes")),
            json!({"body": "Working on it…"}),
        )
    };
    fakes.fail_next("gitlab", 1, 503);
    let (status, answer) = post_note().await;
    assert_eq!(status, 503);
    assert_eq!(answer["message"], "503 Service Unavailable");
    assert!(fakes.gitlab_notes(42, "merge_requests", 15).is_empty());

    fakes.fail_after_commit_next("gitlab", 1);
    let (status, _) = post_note().await;
    assert_eq!(status, 500);
    assert_eq!(fakes.gitlab_notes(42, "merge_requests", 15).len(), 1);

    let notes = "POST /gitlab/projects/42/merge_requests/15/notes";
    assert_eq!(
        fakes.mutations(),
        vec![format!("{notes} -> 503"), format!("{notes} -> 500")]
    );
}

#[tokio::test]
async fn gitlab_projects_are_listed_across_pages_and_searched() {
    let fakes = FakeProviders::start().await;
    // 120 projects: 115 services (two pages when searched for), 5 tools.
    for id in 1..=115u64 {
        fakes.set_gitlab_project_path(&format!("acme/Service-{id:03}"), id);
    }
    for id in 116..=120u64 {
        fakes.set_gitlab_project_path(&format!("globex/tool-{id}"), id);
    }
    let gitlab = GitlabApi::new(
        &fakes.gitlab_api_url(),
        fakes::GITLAB_TOKEN.parse().unwrap(),
    )
    .unwrap();

    let all = gitlab.projects(None).await.unwrap();
    assert_eq!(all.len(), 120);
    // Newest first, as GitLab orders them.
    assert_eq!(all[0], (120, "globex/tool-120".to_string()));
    assert_eq!(all[119], (1, "acme/Service-001".to_string()));
    let found = gitlab.projects(Some("service")).await.unwrap();
    let mut expected: Vec<(u64, String)> = (1..=115u64)
        .map(|id| (id, format!("acme/Service-{id:03}")))
        .collect();
    expected.reverse();
    assert_eq!(found, expected);
    assert_eq!(
        gitlab.projects(Some("TOOL-12")).await.unwrap(),
        vec![(120, "globex/tool-120".to_string())]
    );
    assert!(gitlab.projects(Some("nothing")).await.unwrap().is_empty());

    // Every page asked for the projects the account develops in, in the simple shape.
    let listings = fakes.recorded(|r| r.gitlab_project_listings.clone());
    let asked: Vec<(Option<&str>, &str)> = listings
        .iter()
        .map(|q| (q.get("search").map(String::as_str), q["page"].as_str()))
        .collect();
    assert_eq!(
        asked,
        vec![
            (None, "1"),
            (None, "2"),
            (Some("service"), "1"),
            (Some("service"), "2"),
            (Some("TOOL-12"), "1"),
            (Some("nothing"), "1"),
        ]
    );
    for query in &listings {
        assert_eq!(query["membership"], "true");
        assert_eq!(query["min_access_level"], "30");
        assert_eq!(query["simple"], "true");
        assert_eq!(query["per_page"], "100");
    }

    // GitLab's headers and project shape.
    let response = reqwest::Client::new()
        .get(format!("{}/projects", fakes.gitlab_api_url()))
        .query(&[("search", "service"), ("per_page", "100")])
        .header("PRIVATE-TOKEN", fakes::GITLAB_TOKEN)
        .send()
        .await
        .unwrap();
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
    assert_eq!(header("x-page"), "1");
    assert_eq!(header("x-per-page"), "100");
    assert_eq!(header("x-total"), "115");
    assert_eq!(header("x-next-page"), "2");
    assert_eq!(header("x-prev-page"), "");
    assert!(
        header("link").contains("rel=\"next\""),
        "{}",
        header("link")
    );
    let page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(page.len(), 100);
    let project = &page[0];
    assert_eq!(project["id"], 115);
    assert_eq!(project["path_with_namespace"], "acme/Service-115");
    assert_eq!(project["path"], "Service-115");
    assert_eq!(project["name"], "Service-115");
    assert_eq!(project["default_branch"], "main");
    assert_eq!(project["namespace"]["full_path"], "acme");
    assert!(
        project["http_url_to_repo"]
            .as_str()
            .unwrap()
            .ends_with("/git/project-115.git")
    );
    assert!(
        project["web_url"]
            .as_str()
            .unwrap()
            .ends_with("/acme/Service-115")
    );
}

#[tokio::test]
async fn gitlab_listing_failures_say_what_failed_without_the_token() {
    let fakes = FakeProviders::start().await;
    fakes.set_gitlab_project_path("acme/widgets", 42);
    let stranger = GitlabApi::new(
        &fakes.gitlab_api_url(),
        "glpat-someone-elses".parse().unwrap(),
    )
    .unwrap();
    let error = format!(
        "{:#}",
        stranger.projects(Some("widgets")).await.unwrap_err()
    );
    assert!(
        error.starts_with("cannot list the GitLab projects the token's account develops in"),
        "{error}"
    );
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains("glpat-"), "{error}");
}

type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

/// A slack-morphism client of the fake, built as the service builds its own.
fn slack(fakes: &FakeProviders) -> SlackClient<Connector> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .unwrap()
        .https_or_http()
        .enable_http1()
        .build();
    SlackClient::new(
        SlackClientHyperConnector::with_connector(https).with_slack_api_url(&fakes.slack_api_url()),
    )
}

fn slack_token(value: &str) -> SlackApiToken {
    SlackApiToken::new(SlackApiTokenValue::new(value.to_string()))
}

fn api_error_code(error: &SlackClientError) -> &str {
    match error {
        SlackClientError::ApiError(api) => &api.code,
        other => panic!("not an error answer of Slack: {other:?}"),
    }
}

const THREAD: &str = "1714567890.123456";

#[tokio::test]
async fn slack_reactions_messages_updates_and_threads() {
    let fakes = FakeProviders::start().await;
    let client = slack(&fakes);
    let token = slack_token(fakes::SLACK_BOT_TOKEN);
    let session = client.open_session(&token);
    let channel = SlackChannelId::new("C0001".into());

    let react = SlackApiReactionsAddRequest::new(
        channel.clone(),
        SlackReactionName::new("eyes".into()),
        SlackTs::new(THREAD.into()),
    );
    session.reactions_add(&react).await.unwrap();
    let error = session.reactions_add(&react).await.unwrap_err();
    assert_eq!(api_error_code(&error), "already_reacted");
    assert_eq!(fakes.slack_reactions("C0001", THREAD), vec!["eyes"]);

    let metadata = SlackMessageMetadata::new("openhands_status".into()).with_event_payload(
        [("conversation".to_string(), "c-1".to_string())]
            .into_iter()
            .collect(),
    );
    let posted = session
        .chat_post_message(
            &SlackApiChatPostMessageRequest::new(
                channel.clone(),
                SlackMessageContent::new()
                    .with_text("Working on it…".into())
                    .with_metadata(metadata.clone()),
            )
            .with_thread_ts(SlackTs::new(THREAD.into())),
        )
        .await
        .unwrap();
    assert_eq!(posted.channel, channel);
    assert_eq!(
        posted.message.content.text.as_deref(),
        Some("Working on it…")
    );
    assert_eq!(
        posted.message.sender.bot_id,
        Some(SlackBotId::new(fakes::SLACK_BOT_ID.into()))
    );

    let updated = session
        .chat_update(&SlackApiChatUpdateRequest::new(
            channel.clone(),
            SlackMessageContent::new().with_text("Done.".into()),
            posted.ts.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(updated.ts, posted.ts);
    assert_eq!(updated.message.content.text.as_deref(), Some("Done."));
    let error = session
        .chat_update(&SlackApiChatUpdateRequest::new(
            channel.clone(),
            SlackMessageContent::new().with_text("x".into()),
            SlackTs::new(THREAD.into()),
        ))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), "message_not_found");

    // The thread holds its first message, then the bot's, with its metadata.
    let replies = session
        .conversations_replies(&SlackApiConversationsRepliesRequest::new(
            channel.clone(),
            SlackTs::new(THREAD.into()),
        ))
        .await
        .unwrap();
    assert_eq!(replies.messages.len(), 2);
    let mine = &replies.messages[1];
    assert_eq!(mine.origin.ts, posted.ts);
    assert_eq!(mine.origin.thread_ts, Some(SlackTs::new(THREAD.into())));
    assert_eq!(mine.content.text.as_deref(), Some("Done."));
    assert_eq!(mine.content.metadata, Some(metadata));
    assert!(mine.edited.is_some());
    let held = fakes.slack_messages("C0001", THREAD);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["metadata"]["event_type"], "openhands_status");
    assert!(fakes.slack_messages("C0002", THREAD).is_empty());

    // The service's client reads the bot's message as the bot user's.
    let service = SlackApi::new(
        &fakes.slack_api_url(),
        &fakes::SLACK_BOT_TOKEN.parse().unwrap(),
    )
    .unwrap();
    assert_eq!(
        service.thread("C0001", THREAD).await.unwrap(),
        vec![
            prior("U0CAROL03", "the nightly build is red"),
            prior(fakes::SLACK_BOT_USER, "Done.")
        ]
    );

    let stranger = slack_token("xoxb-other");
    let error = client
        .open_session(&stranger)
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            channel,
            SlackMessageContent::new().with_text("hi".into()),
        ))
        .await
        .unwrap_err();
    assert_eq!(api_error_code(&error), "invalid_auth");
    assert_eq!(fakes.slack_messages("C0001", THREAD).len(), 1);
}

#[tokio::test]
async fn slack_faults_are_http_failures() {
    let fakes = FakeProviders::start().await;
    let client = slack(&fakes);
    let token = slack_token(fakes::SLACK_BOT_TOKEN);
    let session = client.open_session(&token);
    let channel = SlackChannelId::new("C0001".into());
    let post = SlackApiChatPostMessageRequest::new(
        channel.clone(),
        SlackMessageContent::new().with_text("Working on it…".into()),
    )
    .with_thread_ts(SlackTs::new(THREAD.into()));
    let replies =
        SlackApiConversationsRepliesRequest::new(channel.clone(), SlackTs::new(THREAD.into()));

    fakes.fail_next("slack", 1, 503);
    // conversations.replies is a read: it passes and leaves the fault.
    assert_eq!(
        session
            .conversations_replies(&replies)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    let error = session.chat_post_message(&post).await.unwrap_err();
    let SlackClientError::HttpError(http) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(http.status_code, 503);
    assert!(fakes.slack_messages("C0001", THREAD).is_empty());

    fakes.fail_after_commit_next("slack", 1);
    let error = session.chat_post_message(&post).await.unwrap_err();
    assert!(
        matches!(&error, SlackClientError::HttpError(http) if http.status_code == 500),
        "{error:?}"
    );
    assert_eq!(fakes.slack_messages("C0001", THREAD).len(), 1);
    assert_eq!(
        session
            .conversations_replies(&replies)
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
    assert_eq!(
        fakes.mutations(),
        vec![
            "POST /slack/chat.postMessage -> 503",
            "POST /slack/chat.postMessage -> 500"
        ]
    );
}

#[tokio::test]
async fn slack_replies_carry_the_repository_menu() {
    let fakes = FakeProviders::start().await;
    let service = SlackApi::new(
        &fakes.slack_api_url(),
        &fakes::SLACK_BOT_TOKEN.parse().unwrap(),
    )
    .unwrap();
    let options: Vec<MenuOption> = ["acme/widgets", "acme/api", "globex/tools"]
        .into_iter()
        .map(|name| MenuOption {
            label: name.to_string(),
            value: name.to_string(),
        })
        .collect();
    let menu = repository_menu("Which repository should I work on?", &options);
    let ts = service
        .post_reply(
            "C0001",
            THREAD,
            "Which repository should I work on?",
            Some(&menu),
            "menu-1",
        )
        .await
        .unwrap();

    let held = fakes.slack_messages("C0001", THREAD);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["ts"], ts.as_str());
    assert_eq!(held[0]["text"], "Which repository should I work on?");
    assert_eq!(held[0]["metadata"]["event_payload"]["key"], "menu-1");
    let section = &held[0]["blocks"][0];
    assert_eq!(section["type"], "section");
    assert_eq!(section["text"]["type"], "mrkdwn");
    let select = &section["accessory"];
    assert_eq!(select["type"], "static_select");
    assert_eq!(select["action_id"], REPOSITORY_ACTION);
    assert_eq!(select["placeholder"]["text"], "Choose a repository");
    let values: Vec<&str> = select["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["acme/widgets", "acme/api", "globex/tools"]);
    // What was posted is the menu as built.
    assert_eq!(held[0]["blocks"], menu);
    assert_eq!(
        service.find_reply("C0001", THREAD, "menu-1").await.unwrap(),
        Some(ts)
    );

    // Without blocks, a plain reply; with blocks that are not a blocks array, nothing is sent.
    service
        .post_reply("C0001", THREAD, "Working on it…", None, "status-1")
        .await
        .unwrap();
    let held = fakes.slack_messages("C0001", THREAD);
    assert_eq!(held.len(), 2);
    assert!(held[1].get("blocks").is_none(), "{}", held[1]);
    let error = service
        .post_reply(
            "C0001",
            THREAD,
            "x",
            Some(&json!({"type": "section"})),
            "bad-1",
        )
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").starts_with("the reply's blocks are not Block Kit blocks"),
        "{error:#}"
    );
    assert_eq!(fakes.slack_messages("C0001", THREAD).len(), 2);
}

fn adf(text: &str) -> Value {
    json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    ]})
}

fn jira_comments_url(fakes: &FakeProviders, key: &str) -> String {
    format!("{}/rest/api/3/issue/{key}/comment", fakes.jira_site_url())
}

#[tokio::test]
async fn jira_comments_in_document_format() {
    let fakes = FakeProviders::start().await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(jira_comments_url(&fakes, "ENG-42"))
            .basic_auth(fakes::JIRA_EMAIL, Some(fakes::JIRA_API_TOKEN))
            .json(&json!({"body": body}))
            .send()
    };

    let response = post(adf("Working on it…")).await.unwrap();
    assert_eq!(response.status(), 201);
    let comment: Value = response.json().await.unwrap();
    assert_eq!(comment["author"]["accountId"], fakes::JIRA_ACCOUNT_ID);
    assert_eq!(comment["body"], adf("Working on it…"));
    let id = comment["id"].as_str().unwrap().to_string();

    let response = http
        .put(format!("{}/{id}", jira_comments_url(&fakes, "ENG-42")))
        .basic_auth(fakes::JIRA_EMAIL, Some(fakes::JIRA_API_TOKEN))
        .json(&json!({"body": adf("Done.")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Version 3 wants a document, not text.
    let response = post(json!("plain text")).await.unwrap();
    assert_eq!(response.status(), 400);

    let listed: Value = http
        .get(jira_comments_url(&fakes, "ENG-42"))
        .basic_auth(fakes::JIRA_EMAIL, Some(fakes::JIRA_API_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["comments"][0]["id"], id.as_str());
    assert_eq!(
        fakes::jira::adf_text(&listed["comments"][0]["body"]),
        "Done."
    );
    assert_eq!(fakes.jira_comments("ENG-42"), vec![(id, adf("Done."))]);

    let response = http
        .post(jira_comments_url(&fakes, "ENG-42"))
        .basic_auth(fakes::JIRA_EMAIL, Some("wrong"))
        .json(&json!({"body": adf("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    fakes.fail_next("jira", 1, 500);
    assert_eq!(post(adf("again")).await.unwrap().status(), 500);
    fakes.fail_after_commit_next("jira", 1);
    assert_eq!(post(adf("lost")).await.unwrap().status(), 500);
    assert_eq!(
        fakes
            .jira_comments("ENG-42")
            .iter()
            .map(|(_, body)| fakes::jira::adf_text(body))
            .collect::<Vec<_>>(),
        vec!["Done.", "lost"]
    );
}

async fn linear(fakes: &FakeProviders, key: &str, query: &str, variables: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(fakes.linear_api_url())
        .header("Authorization", key)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

const COMMENT_CREATE: &str = "mutation CommentCreate($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id body url } }
}";

const ISSUE_COMMENTS: &str = "query IssueComments($id: String!) {
  issue(id: $id) { id comments { nodes { id body createdAt } } }
}";

#[tokio::test]
async fn linear_comments_are_idempotent_by_client_id() {
    let fakes = FakeProviders::start().await;
    let key = fakes::LINEAR_API_KEY;
    let id = "0d1e5f8a-3b0c-4c55-9a57-5a1f0c1e2d3b";
    let input = json!({"input": {"id": id, "issueId": "ENG-42", "body": "Working on it…"}});

    let (status, answer) = linear(&fakes, key, COMMENT_CREATE, input.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["commentCreate"]["success"], true);
    assert_eq!(answer["data"]["commentCreate"]["comment"]["id"], id);

    // The same id again is the same comment.
    let (_, again) = linear(&fakes, key, COMMENT_CREATE, input.clone()).await;
    assert_eq!(again["data"]["commentCreate"]["success"], true);
    assert_eq!(again["data"]["commentCreate"]["comment"]["id"], id);
    assert_eq!(
        fakes.linear_comments("ENG-42"),
        vec![(id.to_string(), "Working on it…".to_string())]
    );

    // Literal arguments, and a server-chosen id.
    let (_, literal) = linear(
        &fakes,
        key,
        r#"mutation { commentCreate(input: {issueId: "ENG-42", body: "Line one\nline \"two\""}) { success comment { id } } }"#,
        json!(null),
    )
    .await;
    let second = literal["data"]["commentCreate"]["comment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, id);

    let (_, updated) = linear(
        &fakes,
        key,
        "mutation($id: String!, $body: String!) { commentUpdate(id: $id, input: {body: $body}) { success } }",
        json!({"id": id, "body": "Done."}),
    )
    .await;
    assert_eq!(updated["data"]["commentUpdate"]["success"], true);

    let (_, listed) = linear(&fakes, key, ISSUE_COMMENTS, json!({"id": "ENG-42"})).await;
    let bodies: Vec<&str> = listed["data"]["issue"]["comments"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["Done.", "Line one\nline \"two\""]);

    let (status, _) = linear(
        &fakes,
        "Bearer nope",
        ISSUE_COMMENTS,
        json!({"id": "ENG-42"}),
    )
    .await;
    assert_eq!(status, 401);
    let (_, invalid) = linear(
        &fakes,
        key,
        COMMENT_CREATE,
        json!({"input": {"id": "not-a-uuid", "issueId": "ENG-42", "body": "x"}}),
    )
    .await;
    assert_eq!(invalid["errors"][0]["extensions"]["code"], "INVALID_INPUT");
}

#[tokio::test]
async fn linear_faults_hit_mutations_and_a_retry_with_the_same_id_posts_once() {
    let fakes = FakeProviders::start().await;
    let key = fakes::LINEAR_API_KEY;
    let input = json!({"input": {
        "id": "7c4f7e0e-8a55-4a8e-bf1d-3b8b4a7c9d10", "issueId": "ENG-7", "body": "Working on it…"
    }});

    fakes.fail_next("linear", 1, 502);
    // Queries pass and leave the fault for the next mutation.
    let (status, _) = linear(&fakes, key, ISSUE_COMMENTS, json!({"id": "ENG-7"})).await;
    assert_eq!(status, 200);
    let (status, answer) = linear(&fakes, key, COMMENT_CREATE, input.clone()).await;
    assert_eq!(status, 502);
    assert_eq!(answer["errors"][0]["message"], "Bad Gateway");
    assert!(fakes.linear_comments("ENG-7").is_empty());

    fakes.fail_after_commit_next("linear", 1);
    let (status, _) = linear(&fakes, key, COMMENT_CREATE, input.clone()).await;
    assert_eq!(status, 500);
    assert_eq!(fakes.linear_comments("ENG-7").len(), 1);
    let (status, _) = linear(&fakes, key, COMMENT_CREATE, input).await;
    assert_eq!(status, 200);
    assert_eq!(fakes.linear_comments("ENG-7").len(), 1);

    assert_eq!(
        fakes.mutations(),
        vec![
            "POST /linear/graphql -> 502",
            "POST /linear/graphql -> 500",
            "POST /linear/graphql -> 200"
        ]
    );
}
