//! Repositories reach a sandbox without credentials: the worker clones from a git host (here a
//! smart-HTTP server on loopback that demands a token), copies the tree into a Docker sandbox
//! that has no network, and pushes the sandbox's commits back; the token never enters the
//! sandbox or an error message.

use crate::support;

use std::sync::Arc;

use openhands::sandbox::docker::DockerBackend;
use openhands::sandbox::git::{self, GitRemote};
use openhands::sandbox::{CommandRequest, NetworkMode, SandboxBackend, SandboxSettings};
use openhands::setting::Secret;
use support::git_server::GitServer;
use support::sandbox::OwnerCleanup;

const REPO: &str = "project";
const DEST: &str = "/workspace/repo";

struct Fixture {
    server: GitServer,
    token: String,
    seed: String,
    backend: Arc<DockerBackend>,
    sandbox: String,
    _cleanup: OwnerCleanup,
}

impl Fixture {
    /// A git server with one repository and a running sandbox without network.
    async fn new() -> Fixture {
        let token = format!("ghs_{}", uuid::Uuid::new_v4().simple());
        let server = GitServer::start(&token).await;
        let seed = server.create_repo(REPO);
        let settings = SandboxSettings {
            sandbox_network: NetworkMode::None,
            ..support::sandbox::settings()
        };
        let cleanup = OwnerCleanup(settings.owner());
        let backend = DockerBackend::connect(&settings).await.unwrap();
        let sandbox = backend.start("conversation-git").await.unwrap().id;
        Fixture {
            server,
            token,
            seed,
            backend,
            sandbox,
            _cleanup: cleanup,
        }
    }

    fn remote(&self) -> GitRemote {
        GitRemote::github(self.server.url(REPO), Some(secret(&self.token)))
    }

    async fn clone(&self) -> git::Checkout {
        git::clone_into(
            self.backend.as_ref(),
            &self.sandbox,
            &self.remote(),
            Some("main"),
            DEST,
        )
        .await
        .unwrap_or_else(|e| panic!("clone failed: {e:#}; server saw {:?}", self.server.log()))
    }

    /// Runs a shell command in the sandbox's session; it must succeed.
    async fn shell(&self, command: &str) -> String {
        let outcome = self
            .backend
            .execute(&self.sandbox, &CommandRequest::new(command), None)
            .await
            .unwrap();
        assert_eq!(
            outcome.exit_code, 0,
            "`{command}` failed: {}",
            outcome.output
        );
        outcome.output
    }

    /// Runs a program in the sandbox (no shell).
    async fn exec(&self, argv: &[&str]) -> openhands::sandbox::ExecOutput {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        self.backend.exec(&self.sandbox, &argv, "/").await.unwrap()
    }

    async fn sandbox_head(&self) -> String {
        let head = self.exec(&["git", "-C", DEST, "rev-parse", "HEAD"]).await;
        assert_eq!(head.exit_code, 0, "{}", head.stderr);
        head.stdout.trim().to_string()
    }
}

fn secret(value: &str) -> Secret {
    value.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_commit_in_the_sandbox_and_push_back() {
    let f = Fixture::new().await;
    let checkout = f.clone().await;
    assert_eq!(checkout.base, f.seed);
    assert_eq!(checkout.branch, "main");
    assert_eq!(checkout.path, DEST);

    // The tree and its history are in the sandbox, owned by the sandbox user, clean.
    let readme = f
        .backend
        .read_file(&f.sandbox, "/workspace/repo/README")
        .await
        .unwrap();
    assert_eq!(readme, b"hello\n");
    let log = f.shell("cd /workspace/repo && git log --oneline").await;
    assert!(log.contains("initial commit"), "{log}");
    let owner = f
        .exec(&[
            "stat",
            "-c",
            "%u:%g",
            "/workspace/repo/README",
            "/workspace/repo/.git/HEAD",
        ])
        .await;
    assert_eq!(owner.stdout.trim(), "1000:1000\n1000:1000");
    let status = f.exec(&["git", "-C", DEST, "status", "--porcelain"]).await;
    assert_eq!(status.exit_code, 0, "{}", status.stderr);
    assert_eq!(status.stdout, "", "a fresh checkout has no changes");

    // The agent commits inside the sandbox; the worker pushes it to a new branch.
    f.shell("cd /workspace/repo && echo change >> README && git commit -q -am 'agent change'")
        .await;
    let sandbox_head = f.sandbox_head().await;
    let outcome = git::push_back(
        f.backend.as_ref(),
        &f.sandbox,
        &checkout,
        &f.remote(),
        "openhands/fix-1",
    )
    .await
    .unwrap_or_else(|e| panic!("push failed: {e:#}; server saw {:?}", f.server.log()));
    assert!(outcome.pushed);
    assert_eq!(outcome.branch, "openhands/fix-1");
    assert_eq!(outcome.commits, 1);
    assert_eq!(outcome.head, sandbox_head);

    assert_eq!(
        f.server.head(REPO, "openhands/fix-1").as_deref(),
        Some(sandbox_head.as_str())
    );
    let parent = f
        .server
        .git(REPO, &["rev-parse", &format!("{sandbox_head}^")]);
    assert_eq!(parent.trim(), f.seed);
    let subject = f.server.git(
        REPO,
        &["log", "-1", "--format=%s", "refs/heads/openhands/fix-1"],
    );
    assert_eq!(subject.trim(), "agent change");
    let readme = f
        .server
        .git(REPO, &["show", "refs/heads/openhands/fix-1:README"]);
    assert_eq!(readme, "hello\nchange\n");
    assert_eq!(
        f.server.head(REPO, "main").as_deref(),
        Some(f.seed.as_str()),
        "main is untouched"
    );

    // The token is nowhere in the sandbox.
    let grep = f
        .exec(&["grep", "-r", "-l", &f.token, "/workspace", "/home", "/tmp"])
        .await;
    assert_eq!(
        grep.stdout, "",
        "the token is in the sandbox: {}",
        grep.stdout
    );
    assert_eq!(grep.exit_code, 1, "grep found nothing: {}", grep.stderr);
    let config = f
        .backend
        .read_file(&f.sandbox, "/workspace/repo/.git/config")
        .await
        .unwrap();
    let config = String::from_utf8(config).unwrap();
    assert!(!config.contains(&f.token), "{config}");
    assert!(!config.to_lowercase().contains("extraheader"), "{config}");
    assert!(!config.to_lowercase().contains("authorization"), "{config}");
    assert!(
        !config.contains('@'),
        "no credentials in the remote URL: {config}"
    );
    let env = f.shell("env").await;
    assert!(!env.contains(&f.token));
    assert!(!env.contains("GIT_CONFIG"), "{env}");
    // Nor in any URL the git host was asked for.
    assert!(
        f.server
            .request_urls()
            .iter()
            .all(|u| !u.contains(&f.token))
    );
    // The worker's own clone keeps no credentials either.
    let local_config = std::fs::read_to_string(checkout.local_repo().join(".git/config")).unwrap();
    assert!(!local_config.contains(&f.token), "{local_config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_fails_clearly_without_showing_it() {
    let f = Fixture::new().await;
    let wrong = format!("ghs_wrong{}", uuid::Uuid::new_v4().simple());
    for token in [Some(secret(&wrong)), None] {
        let remote = GitRemote::github(f.server.url(REPO), token);
        let error = git::clone_into(f.backend.as_ref(), &f.sandbox, &remote, None, DEST)
            .await
            .expect_err("the clone must fail without the right token");
        let message = format!("{error:#} {error:?}");
        assert!(
            message.to_lowercase().contains("authentication"),
            "the error names authentication: {message}"
        );
        assert!(!message.contains(&wrong), "{message}");
        assert!(!message.contains(&f.token), "{message}");
        let error = error.downcast::<git::GitError>().unwrap();
        assert!(
            matches!(error, git::GitError::AuthenticationFailed { .. }),
            "{error:?}"
        );
    }
    assert!(f.server.log().iter().any(|l| l.ends_with("-> 401")));
    // Nothing reached the sandbox.
    let exists = f.exec(&["test", "-e", DEST]).await;
    assert_ne!(exists.exit_code, 0);

    // A push with a wrong token fails the same way, and the branch is not created.
    let checkout = f.clone().await;
    f.shell("cd /workspace/repo && echo x > new.txt && git add new.txt && git commit -q -m new")
        .await;
    let remote = GitRemote::github(f.server.url(REPO), Some(secret(&wrong)));
    let error = git::push_back(f.backend.as_ref(), &f.sandbox, &checkout, &remote, "fix")
        .await
        .expect_err("the push must fail with a wrong token");
    let message = format!("{error:#}");
    assert!(
        message.to_lowercase().contains("authentication"),
        "{message}"
    );
    assert!(!message.contains(&wrong), "{message}");
    assert_eq!(f.server.head(REPO, "fix"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_commits_means_nothing_pushed_and_bad_names_are_refused() {
    let f = Fixture::new().await;

    let error = git::clone_into(
        f.backend.as_ref(),
        &f.sandbox,
        &f.remote(),
        Some("no-such-branch"),
        DEST,
    )
    .await
    .expect_err("a missing branch fails");
    let message = format!("{error:#}");
    assert!(
        message.contains("no-such-branch") && message.contains("does not exist"),
        "{message}"
    );

    let checkout = f.clone().await;
    let outcome = git::push_back(
        f.backend.as_ref(),
        &f.sandbox,
        &checkout,
        &f.remote(),
        "openhands/fix-1",
    )
    .await
    .unwrap();
    assert!(!outcome.pushed);
    assert_eq!(outcome.commits, 0);
    assert_eq!(outcome.head, f.seed);
    assert_eq!(f.server.head(REPO, "openhands/fix-1"), None);

    for bad in ["bad..name", "-x", "@{-1}", "a b", "HEAD:refs/heads/x"] {
        let error = git::push_back(f.backend.as_ref(), &f.sandbox, &checkout, &f.remote(), bad)
            .await
            .expect_err("an invalid branch name is refused");
        assert!(
            format!("{error:#}").contains("not a valid branch name"),
            "{bad}: {error:#}"
        );
    }

    // The destination must be empty.
    let error = git::clone_into(f.backend.as_ref(), &f.sandbox, &f.remote(), None, DEST)
        .await
        .expect_err("cloning over a repository fails");
    assert!(format!("{error:#}").contains("not empty"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_pending_commits_uncommitted_edits() {
    let f = Fixture::new().await;
    let checkout = f.clone().await;
    assert!(
        !git::commit_pending(f.backend.as_ref(), &f.sandbox, &checkout, "nothing")
            .await
            .unwrap()
    );

    f.shell("cd /workspace/repo && echo more >> README && mkdir -p src && echo 'fn main() {}' > src/main.rs")
        .await;
    assert!(
        git::commit_pending(
            f.backend.as_ref(),
            &f.sandbox,
            &checkout,
            "Fix the bug\n\nDetails."
        )
        .await
        .unwrap()
    );
    let status = f.exec(&["git", "-C", DEST, "status", "--porcelain"]).await;
    assert_eq!(status.stdout, "");
    assert!(
        !git::commit_pending(f.backend.as_ref(), &f.sandbox, &checkout, "again")
            .await
            .unwrap()
    );

    // Pushing to the branch that was cloned (a fast-forward) works too.
    let outcome = git::push_back(
        f.backend.as_ref(),
        &f.sandbox,
        &checkout,
        &f.remote(),
        "main",
    )
    .await
    .unwrap_or_else(|e| panic!("push failed: {e:#}; server saw {:?}", f.server.log()));
    assert!(outcome.pushed);
    assert_eq!(outcome.commits, 1);
    assert_eq!(
        f.server.head(REPO, "main").as_deref(),
        Some(outcome.head.as_str())
    );
    let subject = f.server.git(REPO, &["log", "-1", "--format=%s", "main"]);
    assert_eq!(subject.trim(), "Fix the bug");
    let file = f.server.git(REPO, &["show", "main:src/main.rs"]);
    assert_eq!(file, "fn main() {}\n");
    let parent = f.server.git(REPO, &["rev-parse", "main^"]);
    assert_eq!(parent.trim(), f.seed);
}
