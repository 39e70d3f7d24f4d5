//! Git without credentials in the sandbox.
//!
//! The worker, not the sandbox, talks to the git host. It clones with the host's `git` program
//! into a temporary directory, the token given to git only through the child's environment
//! (an `http.extraHeader` set by `GIT_CONFIG_*`), never in a URL, a config file or a command
//! line; it then copies the working tree with its `.git` into the sandbox as a tar owned by the
//! sandbox user. The agent works and commits inside the sandbox without any token. To publish,
//! the worker takes the new commits out as a git bundle (`HEAD ^<base>`), fetches the bundle
//! into its own clone, checks that the result descends from the commit it cloned, and pushes
//! it with the token, again only in the environment.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, anyhow};
use base64::Engine as _;
use tempfile::TempDir;
use tokio::process::Command;

use super::archive::{self, SANDBOX_UID};
use super::paths::sandbox_path;
use super::{ExecOutput, SandboxBackend};
use crate::setting::Secret;

/// Where a repository lives and how the worker authenticates to it.
#[derive(Debug, Clone)]
pub struct GitRemote {
    /// `https://` (or `http://`) URL of the repository, without credentials.
    pub url: String,
    /// A short-lived token; `None` for a public repository.
    pub token: Option<Secret>,
    /// The user name sent with the token: `x-access-token` for GitHub, `oauth2` for GitLab.
    pub username: String,
}

impl GitRemote {
    /// A GitHub repository with an installation (or user) token.
    pub fn github(url: impl Into<String>, token: Option<Secret>) -> Self {
        GitRemote {
            url: url.into(),
            token,
            username: "x-access-token".into(),
        }
    }

    /// A GitLab repository with an OAuth or project access token.
    pub fn gitlab(url: impl Into<String>, token: Option<Secret>) -> Self {
        GitRemote {
            url: url.into(),
            token,
            username: "oauth2".into(),
        }
    }

    fn token(&self) -> Option<&str> {
        self.token
            .as_ref()
            .map(Secret::expose)
            .filter(|t| !t.is_empty())
    }

    /// The value of the `Authorization` header, when there is a token.
    fn authorization(&self) -> Option<String> {
        self.token().map(|token| {
            let pair = format!("{}:{token}", self.username);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        })
    }

    /// `text` with every form of the token replaced by `***`.
    fn redact(&self, text: &str) -> String {
        let Some(token) = self.token() else {
            return text.to_string();
        };
        let pair = format!("{}:{token}", self.username);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
        let encoded_token = base64::engine::general_purpose::STANDARD.encode(token);
        text.replace(&encoded, "***")
            .replace(&encoded_token, "***")
            .replace(token, "***")
    }
}

/// A repository placed in a sandbox: the worker's own clone (kept until this is dropped), where
/// it is in the sandbox, and the commit and branch it started from.
#[derive(Debug)]
pub struct Checkout {
    /// The worker-side temporary directory: `repo/` (the clone) and git's `HOME`.
    dir: TempDir,
    /// The repository's directory in the sandbox.
    pub path: String,
    /// The commit that was cloned; the agent's work is everything after it.
    pub base: String,
    /// The branch that was cloned.
    pub branch: String,
}

impl Checkout {
    /// The worker-side clone.
    pub fn local_repo(&self) -> PathBuf {
        self.dir.path().join(LOCAL_REPO)
    }
}

/// What `push_back` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// Whether anything was pushed (false when the sandbox had no new commits).
    pub pushed: bool,
    /// The branch on the git host.
    pub branch: String,
    /// The commit the branch now points at (the sandbox's HEAD).
    pub head: String,
    /// How many commits the sandbox added on top of the cloned commit.
    pub commits: u32,
}

/// Why a git operation failed. Messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "the `git` program is not installed on the worker; install git (e.g. `apt-get install git`) where the worker runs"
    )]
    GitMissing,
    #[error(
        "authentication with the git host failed for {url}: the token is missing, expired or may not {action} this repository ({detail})"
    )]
    AuthenticationFailed {
        url: String,
        action: &'static str,
        detail: String,
    },
    #[error("the branch `{branch}` does not exist in {url}")]
    BranchNotFound { url: String, branch: String },
    #[error("the repository {url} does not exist or the token cannot see it ({detail})")]
    RepositoryNotFound { url: String, detail: String },
    #[error(
        "the push to `{branch}` of {url} was rejected: that branch has commits the sandbox does not have; push to a new branch ({detail})"
    )]
    PushRejected {
        url: String,
        branch: String,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

const LOCAL_REPO: &str = "repo";
/// Stalled transfers end after this long below 1 kB/s.
const LOW_SPEED_SECONDS: &str = "60";
/// The longest piece of git's error output quoted in an error.
const MAX_DETAIL: usize = 2000;

/// Clones `remote` on the worker and copies the working tree with its `.git` into the sandbox at
/// `dest` (which must not exist or be empty), owned by the sandbox user.
pub async fn clone_into(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    remote: &GitRemote,
    branch: Option<&str>,
    dest: &str,
) -> anyhow::Result<Checkout> {
    let dest = sandbox_path(dest)?;
    if dest == "/" {
        return Err(GitError::Invalid("cannot clone into / of the sandbox".into()).into());
    }
    check_url(&remote.url)?;
    let dir = tempfile::Builder::new()
        .prefix("openhands-git-")
        .tempdir()
        .context("cannot create a temporary directory for the clone on the worker")?;
    if let Some(branch) = branch {
        check_branch_name(dir.path(), branch).await?;
    }
    ensure_empty(sandboxes, sandbox_id, &dest).await?;

    let local = dir.path().join(LOCAL_REPO);
    let mut args: Vec<OsString> = vec![
        "clone".into(),
        "--quiet".into(),
        "--no-recurse-submodules".into(),
    ];
    if let Some(branch) = branch {
        args.push("--branch".into());
        args.push(branch.into());
    }
    args.push("--".into());
    args.push(remote.url.clone().into());
    args.push(local.clone().into_os_string());
    let cloned = run_git(dir.path(), dir.path(), &args, Some(remote)).await?;
    if !cloned.success {
        return Err(classify(remote, "clone", "read", branch, &cloned.stderr).into());
    }

    let head = run_git(
        dir.path(),
        &local,
        &["rev-parse", "--verify", "-q", "HEAD^{commit}"],
        None,
    )
    .await?;
    if !head.success {
        return Err(GitError::Failed(format!(
            "the repository {} has no commits{}; there is nothing to work on",
            remote.url,
            branch.map(|b| format!(" on `{b}`")).unwrap_or_default()
        ))
        .into());
    }
    let base = head.stdout.trim().to_string();
    let branch = match branch {
        Some(branch) => branch.to_string(),
        None => {
            let symbolic = run_git(
                dir.path(),
                &local,
                &["symbolic-ref", "-q", "--short", "HEAD"],
                None,
            )
            .await?;
            symbolic.stdout.trim().to_string()
        }
    };

    let tree = local.clone();
    let tar = tokio::task::spawn_blocking(move || tree_archive(&tree))
        .await
        .context("the archive of the clone was not built")??;
    sandboxes
        .put_archive(sandbox_id, &dest, tar)
        .await
        .with_context(|| format!("cannot copy the repository into the sandbox at {dest}"))?;
    tracing::info!(url = %remote.url, %branch, %base, sandbox = %sandbox_id, path = %dest, "repository placed in the sandbox");
    Ok(Checkout {
        dir,
        path: dest,
        base,
        branch,
    })
}

/// A shallow copy of `remote`'s default branch on the worker, to read files from (never placed
/// in a sandbox, never run). Returns the temporary directory, which goes when dropped, and the
/// clone's path inside it.
pub async fn shallow_clone(remote: &GitRemote) -> anyhow::Result<(TempDir, PathBuf)> {
    check_url(&remote.url)?;
    let dir = tempfile::Builder::new()
        .prefix("openhands-git-")
        .tempdir()
        .context("cannot create a temporary directory for the clone on the worker")?;
    let local = dir.path().join(LOCAL_REPO);
    let args: Vec<OsString> = vec![
        "clone".into(),
        "--quiet".into(),
        "--depth=1".into(),
        "--no-recurse-submodules".into(),
        "--".into(),
        remote.url.clone().into(),
        local.clone().into_os_string(),
    ];
    let cloned = run_git(dir.path(), dir.path(), &args, Some(remote)).await?;
    if !cloned.success {
        return Err(classify(remote, "clone", "read", None, &cloned.stderr).into());
    }
    Ok((dir, local))
}

/// The worker's side of a checkout made earlier (by a run that ended, or a worker that
/// died): clones `branch` of `remote` again, without a working tree, and makes sure the
/// cloned commit `base` is in it, so that the sandbox's commits can be pushed.
pub async fn reopen(
    remote: &GitRemote,
    branch: &str,
    base: &str,
    path: &str,
) -> anyhow::Result<Checkout> {
    check_url(&remote.url)?;
    if base.len() < 7 || !base.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(GitError::Invalid(format!("`{base}` is not a commit id")).into());
    }
    let dir = tempfile::Builder::new()
        .prefix("openhands-git-")
        .tempdir()
        .context("cannot create a temporary directory for the clone on the worker")?;
    check_branch_name(dir.path(), branch).await?;
    let local = dir.path().join(LOCAL_REPO);
    let args: Vec<OsString> = vec![
        "clone".into(),
        "--quiet".into(),
        "--no-checkout".into(),
        "--branch".into(),
        branch.into(),
        "--".into(),
        remote.url.clone().into(),
        local.clone().into_os_string(),
    ];
    let cloned = run_git(dir.path(), dir.path(), &args, Some(remote)).await?;
    if !cloned.success {
        return Err(classify(remote, "clone", "read", Some(branch), &cloned.stderr).into());
    }
    if !has_commit(dir.path(), &local, base).await? {
        // The branch moved on without it (a force-push): ask for the commit itself.
        let fetched = run_git(
            dir.path(),
            &local,
            &["fetch", "--quiet", "--no-tags", "origin", base],
            Some(remote),
        )
        .await?;
        if !fetched.success || !has_commit(dir.path(), &local, base).await? {
            return Err(GitError::Failed(format!(
                "the commit {base} the work started from is no longer in {}; the sandbox's commits cannot be pushed",
                remote.url
            ))
            .into());
        }
    }
    Ok(Checkout {
        dir,
        path: sandbox_path(path)?,
        base: base.to_string(),
        branch: branch.to_string(),
    })
}

async fn has_commit(home: &Path, local: &Path, commit: &str) -> anyhow::Result<bool> {
    let object = format!("{commit}^{{commit}}");
    Ok(
        run_git(home, local, &["cat-file", "-e", object.as_str()], None)
            .await?
            .success,
    )
}

/// How many commits the sandbox's HEAD has beyond the cloned commit.
pub async fn commits_since_base(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    checkout: &Checkout,
) -> anyhow::Result<u32> {
    let count = sandbox_git(
        sandboxes,
        sandbox_id,
        checkout,
        &["rev-list", "--count", &format!("{}..HEAD", checkout.base)],
    )
    .await?;
    count
        .trim()
        .parse()
        .with_context(|| format!("unexpected output of `git rev-list --count`: {count}"))
}

/// Commits every change of the sandbox's working tree (new files included) with `message`, as
/// the sandbox's git user; returns whether there was anything to commit.
pub async fn commit_pending(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    checkout: &Checkout,
    message: &str,
) -> anyhow::Result<bool> {
    let status = sandbox_git(
        sandboxes,
        sandbox_id,
        checkout,
        &["status", "--porcelain", "--untracked-files=all"],
    )
    .await?;
    if status.trim().is_empty() {
        return Ok(false);
    }
    sandbox_git(sandboxes, sandbox_id, checkout, &["add", "-A"]).await?;
    let message = if message.trim().is_empty() {
        "Changes made by OpenHands"
    } else {
        message
    };
    // The image configures an identity; a repository or image without one still gets a commit.
    let identity = sandbox_exec(
        sandboxes,
        sandbox_id,
        checkout,
        &["config", "--get", "user.email"],
    )
    .await?;
    let mut args: Vec<&str> = Vec::new();
    if identity.exit_code != 0 || identity.stdout.trim().is_empty() {
        args.extend([
            "-c",
            "user.name=OpenHands",
            "-c",
            "user.email=openhands@all-hands.dev",
        ]);
    }
    args.extend(["commit", "-q", "-m", message]);
    sandbox_git(sandboxes, sandbox_id, checkout, &args).await?;
    Ok(true)
}

/// Publishes the sandbox's commits after the cloned one to `target_branch` of `remote`: takes
/// them out as a bundle, fetches it into the worker's clone and pushes from there. Nothing is
/// pushed when there are no new commits. The push is never forced.
pub async fn push_back(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    checkout: &Checkout,
    remote: &GitRemote,
    target_branch: &str,
) -> anyhow::Result<PushOutcome> {
    check_url(&remote.url)?;
    check_branch_name(checkout.dir.path(), target_branch).await?;
    let base = checkout.base.as_str();
    let head = sandbox_git(
        sandboxes,
        sandbox_id,
        checkout,
        &["rev-parse", "--verify", "HEAD^{commit}"],
    )
    .await?
    .trim()
    .to_string();
    let nothing = PushOutcome {
        pushed: false,
        branch: target_branch.to_string(),
        head: head.clone(),
        commits: 0,
    };
    if head == base {
        return Ok(nothing);
    }
    let ancestor = sandbox_exec(
        sandboxes,
        sandbox_id,
        checkout,
        &["merge-base", "--is-ancestor", base, "HEAD"],
    )
    .await?;
    match ancestor.exit_code {
        0 => {}
        1 => {
            return Err(GitError::Invalid(format!(
                "the sandbox's HEAD ({head}) does not descend from the cloned commit {base}: \
                 history was rewritten in the sandbox, so it cannot be pushed"
            ))
            .into());
        }
        _ => {
            return Err(GitError::Failed(format!(
                "`git merge-base` failed in the sandbox: {}",
                detail(&ancestor.stderr)
            ))
            .into());
        }
    }
    let count = sandbox_git(
        sandboxes,
        sandbox_id,
        checkout,
        &["rev-list", "--count", &format!("{base}..HEAD")],
    )
    .await?;
    let count: u32 = count
        .trim()
        .parse()
        .with_context(|| format!("unexpected output of `git rev-list --count`: {count}"))?;
    if count == 0 {
        return Ok(nothing);
    }

    let bundle = take_bundle(sandboxes, sandbox_id, checkout, base).await?;
    let home = checkout.dir.path();
    let local = checkout.local_repo();
    let bundle_file = home.join(format!("sandbox-{}.bundle", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&bundle_file, &bundle)
        .await
        .context("cannot write the bundle on the worker")?;
    let fetched = run_git(
        home,
        &local,
        &[
            OsStr::new("fetch"),
            OsStr::new("--quiet"),
            OsStr::new("--no-tags"),
            bundle_file.as_os_str(),
            OsStr::new(&format!("+HEAD:{PUSH_REF}")),
        ],
        None,
    )
    .await;
    let _ = tokio::fs::remove_file(&bundle_file).await;
    let fetched = fetched?;
    if !fetched.success {
        return Err(GitError::Failed(format!(
            "the sandbox's commits could not be read from their bundle: {}",
            detail(&fetched.stderr)
        ))
        .into());
    }
    let new_head = run_git(
        home,
        &local,
        &["rev-parse", "--verify", &format!("{PUSH_REF}^{{commit}}")],
        None,
    )
    .await?;
    let new_head = new_head.success_stdout("rev-parse")?.trim().to_string();
    let descends = run_git(
        home,
        &local,
        &["merge-base", "--is-ancestor", base, &new_head],
        None,
    )
    .await?;
    if !descends.success {
        return Err(GitError::Invalid(format!(
            "the sandbox's commits ({new_head}) do not descend from the cloned commit {base}; nothing was pushed"
        ))
        .into());
    }
    let counted = run_git(
        home,
        &local,
        &["rev-list", "--count", &format!("{base}..{new_head}")],
        None,
    )
    .await?;
    let commits: u32 = counted
        .success_stdout("rev-list")?
        .trim()
        .parse()
        .context("unexpected output of `git rev-list --count`")?;

    let refspec = format!("{PUSH_REF}:refs/heads/{target_branch}");
    let pushed = run_git(
        home,
        &local,
        &["push", "--quiet", remote.url.as_str(), refspec.as_str()],
        Some(remote),
    )
    .await?;
    if !pushed.success {
        return Err(classify(
            remote,
            "push",
            "push to",
            Some(target_branch),
            &pushed.stderr,
        )
        .into());
    }
    tracing::info!(url = %remote.url, branch = %target_branch, head = %new_head, commits, "pushed the sandbox's commits");
    Ok(PushOutcome {
        pushed: true,
        branch: target_branch.to_string(),
        head: new_head,
        commits,
    })
}

/// The worker-side ref that holds the sandbox's commits between fetch and push (a ref of its
/// own, so pushing to the branch that was cloned — checked out on the worker — works too).
const PUSH_REF: &str = "refs/openhands/sandbox-head";

/// Bundles the sandbox's commits after `base` (HEAD with `base` as prerequisite) and returns the
/// bundle's bytes; the bundle file in the sandbox is removed again.
async fn take_bundle(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    checkout: &Checkout,
    base: &str,
) -> anyhow::Result<Vec<u8>> {
    let file = format!("/tmp/openhands-{}.bundle", uuid::Uuid::new_v4().simple());
    let prerequisite = format!("^{base}");
    let result = async {
        sandbox_git(
            sandboxes,
            sandbox_id,
            checkout,
            &["bundle", "create", &file, "HEAD", &prerequisite],
        )
        .await?;
        let tar = sandboxes
            .get_archive(sandbox_id, &file)
            .await
            .context("cannot copy the bundle out of the sandbox")?;
        Ok::<_, anyhow::Error>(archive::file_content(&tar, &file)?)
    }
    .await;
    let remove: Vec<String> = ["rm", "-f", "--", &file]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let _ = sandboxes.exec(sandbox_id, &remove, "/").await;
    result
}

/// Refuses `dest` when it already holds something.
async fn ensure_empty(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    dest: &str,
) -> anyhow::Result<()> {
    let argv: Vec<String> = [
        "find",
        dest,
        "-mindepth",
        "1",
        "-maxdepth",
        "1",
        "-print",
        "-quit",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // From the workspace: every backend allows it as a working directory.
    let found = sandboxes.exec(sandbox_id, &argv, super::WORKSPACE).await?;
    if found.exit_code == 0 && !found.stdout.trim().is_empty() {
        return Err(GitError::Invalid(format!(
            "{dest} already exists in the sandbox and is not empty; choose another directory"
        ))
        .into());
    }
    Ok(())
}

/// Runs `git -C <checkout> <args>` in the sandbox (as the sandbox user, no shell).
async fn sandbox_exec(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    checkout: &Checkout,
    args: &[&str],
) -> anyhow::Result<ExecOutput> {
    let mut argv: Vec<String> = vec!["git".into(), "-C".into(), checkout.path.clone()];
    argv.extend(args.iter().map(|a| a.to_string()));
    Ok(sandboxes.exec(sandbox_id, &argv, &checkout.path).await?)
}

/// Like `sandbox_exec`, but a failure is an error; returns stdout.
async fn sandbox_git(
    sandboxes: &dyn SandboxBackend,
    sandbox_id: &str,
    checkout: &Checkout,
    args: &[&str],
) -> anyhow::Result<String> {
    let output = sandbox_exec(sandboxes, sandbox_id, checkout, args).await?;
    if output.exit_code != 0 {
        let message = if output.stderr.trim().is_empty() {
            output.stdout.trim()
        } else {
            output.stderr.trim()
        };
        return Err(GitError::Failed(format!(
            "`git {}` failed in the sandbox (exit code {}): {}",
            args.iter()
                .find(|a| !a.starts_with('-') && !a.contains('='))
                .unwrap_or(&""),
            output.exit_code,
            detail(message)
        ))
        .into());
    }
    Ok(output.stdout)
}

/// What a worker-side git command did; stderr is already redacted.
struct GitOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

impl GitOutput {
    fn success_stdout(&self, what: &str) -> anyhow::Result<&str> {
        if self.success {
            Ok(&self.stdout)
        } else {
            Err(GitError::Failed(format!("`git {what}` failed: {}", detail(&self.stderr))).into())
        }
    }
}

/// Runs the worker's `git` with `args` in `cwd`: hooks off, no system or user configuration
/// (`HOME` is `home`), no prompts, none of the worker's own `GIT_*` variables; with `auth`, the
/// token as an HTTP header through the environment only.
async fn run_git<S: AsRef<OsStr>>(
    home: &Path,
    cwd: &Path,
    args: &[S],
    auth: Option<&GitRemote>,
) -> anyhow::Result<GitOutput> {
    let mut command = Command::new("git");
    command
        .arg("-c")
        .arg("core.hooksPath=/dev/null")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            command.env_remove(&key);
        }
    }
    command
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SSH_ASKPASS")
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("GIT_HTTP_LOW_SPEED_LIMIT", "1000")
        .env("GIT_HTTP_LOW_SPEED_TIME", LOW_SPEED_SECONDS);
    if let Some(header) = auth.and_then(GitRemote::authorization) {
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", format!("Authorization: {header}"));
    }
    let output = match command.output().await {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(GitError::GitMissing.into());
        }
        Err(error) => {
            return Err(anyhow!(error).context("cannot run `git` on the worker"));
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (stdout, stderr) = match auth {
        Some(remote) => (remote.redact(&stdout), remote.redact(&stderr)),
        None => (stdout.into_owned(), stderr.into_owned()),
    };
    Ok(GitOutput {
        success: output.status.success(),
        stdout,
        stderr,
    })
}

/// Turns git's (redacted) error output of a clone or push into a clear error.
fn classify(
    remote: &GitRemote,
    operation: &str,
    action: &'static str,
    branch: Option<&str>,
    stderr: &str,
) -> GitError {
    let text = remote.redact(stderr);
    let lower = text.to_lowercase();
    let url = remote.url.clone();
    let detail = detail(&text);
    if lower.contains("authentication failed")
        || lower.contains("could not read username")
        || lower.contains("could not read password")
        || lower.contains("terminal prompts disabled")
        || lower.contains("returned error: 401")
        || lower.contains("returned error: 403")
        || lower.contains("permission to")
        || lower.contains("access denied")
        || lower.contains("not allowed to push")
    {
        return GitError::AuthenticationFailed {
            url,
            action,
            detail,
        };
    }
    if let Some(branch) = branch
        && lower.contains("remote branch")
        && lower.contains("not found")
    {
        return GitError::BranchNotFound {
            url,
            branch: branch.to_string(),
        };
    }
    if lower.contains("repository not found")
        || (lower.contains("repository '") && lower.contains("not found"))
        || lower.contains("returned error: 404")
    {
        return GitError::RepositoryNotFound { url, detail };
    }
    if operation == "push"
        && (lower.contains("[rejected]")
            || lower.contains("non-fast-forward")
            || lower.contains("fetch first"))
    {
        return GitError::PushRejected {
            url,
            branch: branch.unwrap_or_default().to_string(),
            detail,
        };
    }
    GitError::Failed(format!("`git {operation}` of {url} failed: {detail}"))
}

/// Git's error output, trimmed and cut to its last `MAX_DETAIL` characters.
fn detail(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= MAX_DETAIL {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - MAX_DETAIL).collect();
    format!("…{tail}")
}

/// Only `http(s)` URLs without credentials in them.
fn check_url(url: &str) -> Result<(), GitError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| GitError::Invalid(format!("`{url}` is not a repository URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(GitError::Invalid(format!(
            "only https:// repository URLs are supported, not `{}:`",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(GitError::Invalid(
            "the repository URL must not contain credentials; give the token separately".into(),
        ));
    }
    Ok(())
}

/// Refuses anything `git check-ref-format --branch` refuses, and expressions like `@{-1}`.
async fn check_branch_name(home: &Path, branch: &str) -> anyhow::Result<()> {
    let checked = run_git(home, home, &["check-ref-format", "--branch", branch], None).await?;
    if !checked.success || checked.stdout.trim() != branch {
        return Err(GitError::Invalid(format!("`{branch}` is not a valid branch name")).into());
    }
    Ok(())
}

/// A tar of everything under `root` (the working tree and `.git`), paths relative to it, every
/// entry owned by the sandbox user; symbolic links are kept as links.
fn tree_archive(root: &Path) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let directory = root.join(&relative);
        let entries = std::fs::read_dir(&directory)
            .with_context(|| format!("cannot read {}", directory.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", directory.display()))?;
            let path = entry.path();
            let name = relative.join(entry.file_name());
            let metadata = std::fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut header = tar::Header::new_gnu();
            header.set_uid(SANDBOX_UID);
            header.set_gid(SANDBOX_UID);
            header.set_mtime(u64::try_from(metadata.mtime()).unwrap_or(0));
            let kind = metadata.file_type();
            if kind.is_dir() {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, &name, std::io::empty())?;
                pending.push(name);
            } else if kind.is_file() {
                let executable = metadata.permissions().mode() & 0o111 != 0;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if executable { 0o755 } else { 0o644 });
                header.set_size(metadata.len());
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                builder.append_data(&mut header, &name, file)?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &name, &target)?;
            }
            // Sockets and FIFOs are not part of a repository.
        }
    }
    builder
        .into_inner()
        .context("cannot build the archive of the clone")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(token: &str) -> GitRemote {
        GitRemote::github("https://example.test/o/r.git", Some(token.parse().unwrap()))
    }

    #[test]
    fn redacts_every_form_of_the_token() {
        let remote = remote("s3cr3t-token");
        let header = remote.authorization().unwrap();
        let text = format!("a s3cr3t-token b {header} c");
        let redacted = remote.redact(&text);
        assert!(!redacted.contains("s3cr3t-token"));
        assert!(!redacted.contains(header.trim_start_matches("Basic ")));
    }

    #[test]
    fn classifies_failures() {
        let remote = remote("tok");
        let auth = classify(
            &remote,
            "clone",
            "read",
            None,
            "fatal: could not read Username for 'https://example.test': terminal prompts disabled",
        );
        assert!(matches!(auth, GitError::AuthenticationFailed { .. }));
        assert!(auth.to_string().contains("authentication"));
        let branch = classify(
            &remote,
            "clone",
            "read",
            Some("nope"),
            "warning: Could not find remote branch nope to clone.\nfatal: Remote branch nope not found in upstream origin",
        );
        assert!(matches!(branch, GitError::BranchNotFound { .. }));
        let rejected = classify(
            &remote,
            "push",
            "push to",
            Some("main"),
            " ! [rejected]        main -> main (fetch first)",
        );
        assert!(matches!(rejected, GitError::PushRejected { .. }));
    }

    #[test]
    fn urls_without_credentials_only() {
        assert!(check_url("https://github.com/o/r.git").is_ok());
        assert!(check_url("https://x:y@github.com/o/r.git").is_err());
        assert!(check_url("ext::sh -c touch% /tmp/x").is_err());
        assert!(check_url("file:///etc").is_err());
        assert!(check_url("--upload-pack=touch").is_err());
    }

    #[test]
    fn archive_keeps_tree_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("run.sh", dir.path().join("link")).unwrap();
        let tar = tree_archive(dir.path()).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.uid().unwrap(), SANDBOX_UID);
            assert_eq!(header.gid().unwrap(), SANDBOX_UID);
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            if path == "run.sh" {
                assert_eq!(header.mode().unwrap(), 0o755);
            }
            if path == "link" {
                assert_eq!(header.entry_type(), tar::EntryType::Symlink);
            }
            seen.push(path);
        }
        let git = seen.iter().position(|p| p == ".git").unwrap();
        let head = seen.iter().position(|p| p == ".git/HEAD").unwrap();
        assert!(git < head, "directories come before their contents");
        assert!(seen.contains(&".git/objects".to_string()));
    }
}
