//! The sandbox image: built offline from Debian's packages (debootstrap, imported into Docker),
//! or on top of a base image where a registry is reachable.
//!
//! Either way the image runs as the non-root user `openhands` (uid/gid 1000) in `/workspace`,
//! has bash, git, python3 with venv, curl and the usual command-line tools, and a system git
//! configuration that trusts every directory and names the committer.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, RemoveImageOptionsBuilder,
};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use super::SandboxError;
use super::docker::connect_engine;

#[derive(Debug, Clone, Args)]
pub struct BuildImageArgs {
    /// Name of the image to build (default: SANDBOX_IMAGE).
    #[arg(long)]
    pub tag: Option<String>,
    /// Build on top of this image (pulled if missing) instead of a debootstrapped Debian.
    /// It must be Debian or Ubuntu based (apt-get, useradd).
    #[arg(long)]
    pub base: Option<String>,
    /// Rebuild even when the image already exists.
    #[arg(long)]
    pub force: bool,
    /// Debian mirror for debootstrap (default: the first one in /etc/apt that serves --suite,
    /// else http://deb.debian.org/debian).
    #[arg(long)]
    pub mirror: Option<String>,
    /// Debian release to debootstrap.
    #[arg(long, default_value = DEFAULT_SUITE)]
    pub suite: String,
    /// Network of the build's containers with --base (default: the engine's); `none` when the
    /// base has every package already.
    #[arg(long, requires = "base")]
    pub network: Option<String>,
}

/// The Debian release the image is made of unless `--suite` says otherwise.
const DEFAULT_SUITE: &str = "bookworm";

impl BuildImageArgs {
    /// The defaults of `openhands sandbox build-image --tag TAG`.
    pub fn for_tag(tag: &str) -> Self {
        Self {
            tag: Some(tag.to_string()),
            base: None,
            force: false,
            mirror: None,
            suite: DEFAULT_SUITE.to_string(),
            network: None,
        }
    }
}

/// Where `build_image` tells of its progress, a line at a time: the terminal for the command,
/// the log (and the dashboard's banner) for a build the service starts itself.
pub type Report<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// What `build_image` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    pub tag: String,
    /// `sha256:…`
    pub id: String,
    /// Bytes, as the engine reports them.
    pub size: u64,
    /// The image existed already and was kept.
    pub reused: bool,
}

/// Every package of the image (Debian names). debootstrap's minbase adds the essential system.
pub const PACKAGES: &[&str] = &[
    "bash",
    "git",
    "python3",
    "python3-venv",
    "coreutils",
    "grep",
    "sed",
    "findutils",
    "curl",
    "ca-certificates",
    "patch",
    "procps",
    "less",
];

/// Marks images built here.
pub const IMAGE_LABEL: &str = "openhands.sandbox-image";

const USER: &str = "openhands";
const UID: u32 = 1000;
const HOME: &str = "/home/openhands";
use super::WORKSPACE;
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// `/etc/gitconfig` of the image.
pub const GITCONFIG: &str = "[safe]\n\tdirectory = *\n[user]\n\tname = OpenHands\n\temail = openhands@localhost\n[init]\n\tdefaultBranch = main\n";

/// Keeps documentation, manual pages and translations out of the image, also for packages
/// installed later (as Debian's slim images do).
const DPKG_EXCLUDES: &str = "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/groff/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/lintian/*\npath-exclude /usr/share/locale/*\n";

/// Connects to the Docker engine named by DOCKER_HOST (default: the local socket), with room
/// for imports and builds, which answer only when they are done.
pub async fn connect_docker() -> anyhow::Result<Docker> {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    let docker = match tokio::time::timeout(Duration::from_secs(15), connect_engine()).await {
        Ok(Ok(docker)) => docker,
        Ok(Err(SandboxError::EngineUnavailable(cause))) => {
            return Err(SandboxError::EngineUnavailable(format!("{host}: {cause}")).into());
        }
        Ok(Err(other)) => return Err(other.into()),
        Err(_) => {
            return Err(
                SandboxError::EngineUnavailable(format!("{host}: no answer within 15 s")).into(),
            );
        }
    };
    Ok(docker.with_timeout(Duration::from_secs(3600)))
}

/// Whether the engine holds an image of this name.
pub async fn image_exists(docker: &Docker, tag: &str) -> anyhow::Result<bool> {
    match docker.inspect_image(tag).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(error) => Err(anyhow!("cannot inspect the image {tag}: {error}")),
    }
}

/// Builds the sandbox image `tag`, or keeps it when it exists and `force` is not set.
pub async fn build_image(
    docker: &Docker,
    tag: &str,
    args: &BuildImageArgs,
    report: Report<'_>,
) -> anyhow::Result<BuildOutcome> {
    let (repo, version) = split_tag(tag)?;
    let previous = match docker.inspect_image(tag).await {
        Ok(image) => image.id,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => None,
        Err(error) => bail!("cannot inspect the image {tag}: {error}"),
    };
    if previous.is_some() && !args.force {
        let outcome = describe(docker, tag, true).await?;
        report(&format!(
            "the image {tag} exists ({}, {}); keeping it (--force rebuilds it)",
            short_id(&outcome.id),
            human_size(outcome.size)
        ));
        return Ok(outcome);
    }

    let started = Instant::now();
    match &args.base {
        Some(base) => build_on_base(docker, tag, base, args.network.as_deref(), report).await?,
        None => build_offline(docker, &repo, &version, args, report).await?,
    }
    let outcome = describe(docker, tag, false).await?;
    if let Some(previous) = previous.filter(|p| *p != outcome.id) {
        // The old image lost its name; remove it unless a container still uses it.
        let options = RemoveImageOptionsBuilder::default().build();
        if docker
            .remove_image(&previous, Some(options), None)
            .await
            .is_ok()
        {
            report(&format!(
                "removed the previous image {}",
                short_id(&previous)
            ));
        }
    }
    report(&format!(
        "built {tag}: {} ({}) in {}",
        outcome.id,
        human_size(outcome.size),
        seconds(started.elapsed())
    ));
    Ok(outcome)
}

async fn describe(docker: &Docker, tag: &str, reused: bool) -> anyhow::Result<BuildOutcome> {
    let image = docker
        .inspect_image(tag)
        .await
        .with_context(|| format!("cannot inspect the image {tag}"))?;
    Ok(BuildOutcome {
        tag: tag.to_string(),
        id: image.id.unwrap_or_default(),
        size: image.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        reused,
    })
}

/// `registry:5000/name:tag` → (`registry:5000/name`, `tag`); the version defaults to `latest`.
fn split_tag(tag: &str) -> anyhow::Result<(String, String)> {
    let valid = !tag.is_empty()
        && !tag.contains('@')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
    if !valid {
        bail!("invalid image name `{tag}`: use name[:tag], e.g. openhands-sandbox:latest");
    }
    let slash = tag.rfind('/').map_or(0, |i| i + 1);
    Ok(match tag[slash..].rfind(':') {
        Some(colon) => {
            let colon = slash + colon;
            (tag[..colon].to_string(), tag[colon + 1..].to_string())
        }
        None => (tag.to_string(), "latest".to_string()),
    })
}

// --- Offline: debootstrap, then an import ---------------------------------------------------

async fn build_offline(
    docker: &Docker,
    repo: &str,
    version: &str,
    args: &BuildImageArgs,
    report: Report<'_>,
) -> anyhow::Result<()> {
    if effective_uid()? != 0 {
        bail!(
            "building the sandbox image with debootstrap needs root: run `sudo openhands sandbox \
             build-image`, or build on an existing image with --base"
        );
    }
    let debootstrap = find_program("debootstrap").ok_or_else(|| {
        anyhow!(
            "debootstrap is not installed: apt-get install debootstrap (or build on an existing \
             image with --base)"
        )
    })?;
    let suite = args.suite.trim();
    if suite.is_empty() || !suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("invalid --suite `{suite}`: use a Debian release name such as bookworm");
    }
    let mirror = match &args.mirror {
        Some(mirror) => mirror.trim_end_matches('/').to_string(),
        None => default_mirror(suite),
    };
    check_mirror(&mirror, suite).await?;

    let rootfs = make_rootfs_dir()?;
    let result = async {
        let started = Instant::now();
        report(&format!(
            "debootstrap {suite} from {mirror} into {} …",
            rootfs.display()
        ));
        debootstrap_rootfs(&debootstrap, &rootfs, suite, &mirror, report).await?;
        report(&format!("debootstrap: {}", seconds(started.elapsed())));

        let started = Instant::now();
        unmount_below(&rootfs).await;
        configure_rootfs(&rootfs).await?;
        report(&format!(
            "user, workspace, git configuration, clean-up: {}",
            seconds(started.elapsed())
        ));

        let started = Instant::now();
        report(&format!("importing into Docker as {repo}:{version} …"));
        import_rootfs(docker, &rootfs, repo, version, suite).await?;
        report(&format!("import: {}", seconds(started.elapsed())));
        anyhow::Ok(())
    }
    .await;
    let started = Instant::now();
    remove_rootfs(&rootfs).await;
    report(&format!(
        "removed the temporary root file system: {}",
        seconds(started.elapsed())
    ));
    result
}

fn effective_uid() -> anyhow::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("cannot read /proc/self/status to tell whether this runs as root")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| anyhow!("cannot tell from /proc/self/status whether this runs as root"))
}

/// The program in PATH or in the system directories (which a user's PATH may lack).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The first mirror of this machine's apt sources that serves `suite`; Debian's CDN otherwise.
pub fn default_mirror(suite: &str) -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut parts: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|ext| ext == "list" || ext == "sources")
            })
            .collect();
        parts.sort();
        files.extend(parts);
    }
    files
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            let is_deb822 = file.extension().is_some_and(|ext| ext == "sources");
            mirror_in_sources(&text, is_deb822, suite)
        })
        .next()
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

/// The first `deb` source of `text` (one-line or deb822 format) that serves `suite`.
fn mirror_in_sources(text: &str, deb822: bool, suite: &str) -> Option<String> {
    let usable = |uri: &str| {
        (uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:/"))
            .then(|| uri.trim_end_matches('/').to_string())
    };
    if deb822 {
        for paragraph in text.split("\n\n") {
            let field = |name: &str| {
                paragraph
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .find_map(|l| {
                        let (key, value) = l.split_once(':')?;
                        key.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| value.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let enabled = !field("Enabled").eq_ignore_ascii_case("no");
            let deb = field("Types").split_whitespace().any(|t| t == "deb");
            let serves = field("Suites").split_whitespace().any(|s| s == suite);
            if enabled
                && deb
                && serves
                && let Some(uri) = field("URIs").split_whitespace().find_map(usable)
            {
                return Some(uri);
            }
        }
        None
    } else {
        text.lines().find_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let rest = line.trim().strip_prefix("deb ")?.trim_start();
            // Options in brackets may hold spaces: [arch=amd64 signed-by=…].
            let rest = if let Some(options) = rest.strip_prefix('[') {
                options.split_once(']')?.1
            } else {
                rest
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?;
            (words.next()? == suite).then(|| usable(uri)).flatten()
        })
    }
}

/// Fails early, with the fix, when the mirror cannot be read.
async fn check_mirror(mirror: &str, suite: &str) -> anyhow::Result<()> {
    let release = format!("{mirror}/dists/{suite}/Release");
    if let Some(path) = mirror.strip_prefix("file://") {
        let file = Path::new(path).join("dists").join(suite).join("Release");
        if !file.is_file() {
            bail!(
                "the Debian mirror {mirror} has no {}; pass --mirror with a mirror that holds \
                 {suite}",
                file.display()
            );
        }
        return Ok(());
    }
    if !mirror.starts_with("http://") && !mirror.starts_with("https://") {
        bail!("unsupported --mirror `{mirror}`: use an http://, https:// or file:// URL");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .context("cannot set up an HTTP client")?;
    let unreachable = |cause: String| {
        anyhow!(
            "cannot reach the Debian mirror {mirror} ({cause}); check the network or proxy, or \
             pass --mirror with a reachable mirror"
        )
    };
    let response = client
        .head(&release)
        .send()
        .await
        .map_err(|e| unreachable(format!("{e:#}")))?;
    match response.status() {
        status if status.is_success() => Ok(()),
        reqwest::StatusCode::NOT_FOUND => bail!(
            "the Debian mirror {mirror} has no release {suite} ({release}: 404); check --suite \
             and --mirror"
        ),
        status => Err(unreachable(format!("{release}: HTTP {status}"))),
    }
}

/// A fresh, empty directory for the root file system, on disk (TMPDIR, else /var/tmp).
fn make_rootfs_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::var_os("TMPDIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let dir = base.join(format!(
        "openhands-rootfs-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create {}; set TMPDIR to a writable directory",
            dir.display()
        )
    })?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot set the permissions of {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}

async fn debootstrap_rootfs(
    debootstrap: &Path,
    rootfs: &Path,
    suite: &str,
    mirror: &str,
    report: Report<'_>,
) -> anyhow::Result<()> {
    let mut child = Command::new(debootstrap)
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg("--components=main")
        .arg(suite)
        .arg(rootfs)
        .arg(mirror)
        .env("PATH", SYSTEM_PATH)
        .env("LANG", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", debootstrap.display()))?;
    // Both streams into one short tail, for the error message.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_lines(stdout, tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_lines(stderr, tx));
    }
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut packages = 0usize;
    while let Some(line) = rx.recv().await {
        if line.starts_with("I: Retrieving ") && !line.contains("Release") {
            packages += 1;
            if packages.is_multiple_of(50) {
                report(&format!("debootstrap: {packages} packages retrieved"));
            }
        } else if line.starts_with("I: Installing core packages")
            || line.starts_with("I: Configuring required packages")
            || line.starts_with("I: Base system installed")
        {
            report(&format!("debootstrap: {}", line.trim_start_matches("I: ")));
        }
        tail.push_back(line);
        if tail.len() > 15 {
            tail.pop_front();
        }
    }
    let status = child.wait().await.context("cannot wait for debootstrap")?;
    if status.success() {
        return Ok(());
    }
    let tail: Vec<String> = tail.into_iter().collect();
    let log = rootfs.join("debootstrap/debootstrap.log");
    let mut message = format!("debootstrap failed ({status}):\n{}", tail.join("\n"));
    if tail
        .iter()
        .any(|l| l.contains("Failed getting release file") || l.contains("Couldn't download"))
    {
        message.push_str(&format!(
            "\nthe Debian mirror {mirror} is not reachable or lacks {suite}: check the network, \
             or pass --mirror"
        ));
    }
    if let Ok(text) = tokio::fs::read_to_string(&log).await {
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(15);
        message.push_str(&format!(
            "\nend of {}:\n{}",
            log.display(),
            lines[from..].join("\n")
        ));
    }
    bail!(message)
}

async fn forward_lines(
    reader: impl tokio::io::AsyncRead + Unpin,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let mut lines = tokio::io::BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).is_err() {
            break;
        }
    }
}

/// The user, the workspace, the git configuration; then away with what the image does not need.
async fn configure_rootfs(rootfs: &Path) -> anyhow::Result<()> {
    let uid = UID.to_string();
    chroot(rootfs, &["/usr/sbin/groupadd", "--gid", &uid, USER]).await?;
    chroot(
        rootfs,
        &[
            "/usr/sbin/useradd",
            "--uid",
            &uid,
            "--gid",
            &uid,
            "--create-home",
            "--home-dir",
            HOME,
            "--shell",
            "/bin/bash",
            USER,
        ],
    )
    .await?;
    let rootfs = rootfs.to_path_buf();
    tokio::task::spawn_blocking(move || tidy_rootfs(&rootfs))
        .await
        .context("the file system preparation stopped")?
}

async fn chroot(rootfs: &Path, argv: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("chroot")
        .arg(rootfs)
        .args(argv)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LANG", "C")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run chroot {}", argv.join(" ")))?;
    if !output.status.success() {
        bail!(
            "chroot {} failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn tidy_rootfs(rootfs: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{PermissionsExt, chown};
    let inside = |path: &str| rootfs.join(path.trim_start_matches('/'));
    let write = |path: &str, content: &str| {
        std::fs::write(inside(path), content).with_context(|| format!("cannot write {path}"))
    };

    let workspace = inside(WORKSPACE);
    std::fs::create_dir_all(&workspace).context("cannot create /workspace")?;
    chown(&workspace, Some(UID), Some(UID)).context("cannot chown /workspace")?;
    std::fs::set_permissions(&workspace, std::fs::Permissions::from_mode(0o755))
        .context("cannot set the permissions of /workspace")?;
    write("/etc/gitconfig", GITCONFIG)?;
    write("/etc/dpkg/dpkg.cfg.d/openhands-slim", DPKG_EXCLUDES)?;

    // The engine provides these in each container; debootstrap copied the host's.
    for file in ["/etc/hostname", "/etc/resolv.conf"] {
        remove_if_present(&inside(file))?;
    }
    // Device nodes come from the engine too.
    clear_dir(&inside("/dev"), |_| true)?;
    // Package caches and lists, logs of the installation.
    clear_dir(&inside("/var/cache/apt"), |_| true)?;
    clear_dir(&inside("/var/lib/apt/lists"), |name| name != "partial")?;
    clear_dir(&inside("/var/log"), |_| true)?;
    // What the dpkg excludes keep out of later installations.
    for dir in [
        "/usr/share/man",
        "/usr/share/groff",
        "/usr/share/info",
        "/usr/share/lintian",
        "/usr/share/locale",
    ] {
        clear_dir(&inside(dir), |_| true)?;
    }
    let docs = inside("/usr/share/doc");
    if let Ok(entries) = std::fs::read_dir(&docs) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                clear_dir(&path, |name| name != "copyright")?;
            }
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes the entries of `dir` whose names `remove` accepts (symbolic links are removed,
/// never followed).
fn clear_dir(dir: &Path, remove: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if !remove(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// Streams `tar` of the root file system into the engine's image import.
async fn import_rootfs(
    docker: &Docker,
    rootfs: &Path,
    repo: &str,
    version: &str,
    suite: &str,
) -> anyhow::Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "-cf", "-", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start tar (apt-get install tar)")?;
    let stdout = tar
        .stdout
        .take()
        .ok_or_else(|| anyhow!("tar has no output pipe"))?;
    // The body fails, and so the import, when tar does not finish well.
    let end = futures::stream::once(async move {
        match tar.wait().await {
            Ok(status) if status.success() => None,
            Ok(status) => Some(Err(io::Error::other(format!("tar failed ({status})")))),
            Err(error) => Some(Err(error)),
        }
    })
    .filter_map(futures::future::ready);
    let body = tokio_util::io::ReaderStream::with_capacity(stdout, 256 * 1024).chain(end);

    let changes = [
        format!("USER {USER}"),
        format!("WORKDIR {WORKSPACE}"),
        format!("ENV PATH={SYSTEM_PATH}"),
        format!("ENV HOME={HOME}"),
        "ENV LANG=C.UTF-8".to_string(),
        "CMD [\"/bin/bash\"]".to_string(),
        format!("LABEL {IMAGE_LABEL}=1"),
    ];
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(version)
        .message(&format!("openhands sandbox image (Debian {suite})"))
        .changes(changes.to_vec())
        .build();
    docker
        .create_image(Some(options), Some(bollard::body_try_stream(body)), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| anyhow!("the Docker engine did not import the image: {e}"))?;
    Ok(())
}

/// Mounts left inside the root file system (debootstrap unmounts its own unless interrupted).
async fn unmount_below(rootfs: &Path) {
    let Ok(mounts) = tokio::fs::read_to_string("/proc/self/mounts").await else {
        return;
    };
    let prefix = rootfs.to_string_lossy().to_string();
    let mut below: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&format!("{prefix}/")))
        .collect();
    below.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in below {
        let _ = Command::new("umount")
            .args(["--lazy", mount])
            .stdin(Stdio::null())
            .status()
            .await;
    }
}

async fn remove_rootfs(rootfs: &Path) {
    unmount_below(rootfs).await;
    if let Err(error) = tokio::fs::remove_dir_all(rootfs).await {
        tracing::warn!("cannot remove {}: {error}", rootfs.display());
    }
}

// --- On a base image: a generated Dockerfile -------------------------------------------------

/// The Dockerfile that turns `base` into a sandbox image.
pub fn dockerfile(base: &str) -> String {
    let gitconfig = GITCONFIG.replace('\n', "\\n").replace('\t', "\\t");
    let packages = PACKAGES.join(" ");
    format!(
        r#"FROM {base}
USER root
RUN set -eu; \
    need=""; \
    for tool in bash git python3 curl patch; do command -v "$tool" >/dev/null 2>&1 || need=1; done; \
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need=1; \
    if [ -n "$need" ]; then \
        export DEBIAN_FRONTEND=noninteractive; \
        apt-get update; \
        apt-get install -y --no-install-recommends {packages}; \
        apt-get clean; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    group="$(getent group {UID} | cut -d: -f1)"; \
    if [ -z "$group" ]; then groupadd --gid {UID} {USER}; \
    elif [ "$group" != {USER} ]; then groupmod --new-name {USER} "$group"; fi; \
    user="$(getent passwd {UID} | cut -d: -f1)"; \
    if [ -z "$user" ]; then useradd --uid {UID} --gid {UID} --create-home --home-dir {HOME} --shell /bin/bash {USER}; \
    elif [ "$user" != {USER} ]; then usermod --login {USER} --home {HOME} --move-home --shell /bin/bash "$user"; fi; \
    mkdir -p {HOME} {WORKSPACE}; \
    chown {UID}:{UID} {HOME} {WORKSPACE}; \
    printf '{gitconfig}' > /etc/gitconfig
ENV HOME={HOME} LANG=C.UTF-8
USER {USER}
WORKDIR {WORKSPACE}
CMD ["/bin/bash"]
LABEL {IMAGE_LABEL}=1
"#
    )
}

async fn build_on_base(
    docker: &Docker,
    tag: &str,
    base: &str,
    network: Option<&str>,
    report: Report<'_>,
) -> anyhow::Result<()> {
    if base.is_empty() || base.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("invalid --base `{base}`: give an image name such as debian:bookworm");
    }
    let context = {
        let dockerfile = dockerfile(base);
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        let mut archive = tar::Builder::new(Vec::new());
        archive
            .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
            .context("cannot pack the build context")?;
        archive
            .into_inner()
            .context("cannot pack the build context")?
    };
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true);
    if let Some(network) = network {
        options = options.networkmode(network);
    }
    let options = options.build();
    report(&format!("building {tag} on {base} …"));
    let mut progress = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| anyhow!("the build of {tag} on {base} failed: {e}"))?;
        if let Some(line) = info.stream {
            let line = line.trim_end();
            // The steps repeat the long RUN instruction; its start is enough.
            match line.char_indices().nth(120) {
                Some((end, _)) if line.starts_with("Step ") => {
                    report(&format!("{} …", &line[..end]))
                }
                _ if line.is_empty() => {}
                _ => report(line),
            }
        }
    }
    Ok(())
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

fn human_size(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1_000_000.0)
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_into_repository_and_version() {
        let split = |t: &str| split_tag(t).unwrap();
        assert_eq!(
            split("openhands-sandbox:test"),
            ("openhands-sandbox".into(), "test".into())
        );
        assert_eq!(
            split("openhands-sandbox"),
            ("openhands-sandbox".into(), "latest".into())
        );
        assert_eq!(
            split("localhost:5000/team/sandbox"),
            ("localhost:5000/team/sandbox".into(), "latest".into())
        );
        assert_eq!(
            split("localhost:5000/sandbox:v2"),
            ("localhost:5000/sandbox".into(), "v2".into())
        );
        assert!(split_tag("bad name").is_err());
        assert!(split_tag("").is_err());
    }

    #[test]
    fn the_mirror_is_the_first_source_that_serves_the_suite() {
        let deb822 = "Types: deb\n# a comment: here\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in_sources(deb822, true, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(mirror_in_sources(deb822, true, "trixie"), None);
        let disabled = "Enabled: no\nTypes: deb\nURIs: http://a/debian\nSuites: bookworm\n";
        assert_eq!(mirror_in_sources(disabled, true, "bookworm"), None);

        let list = "# deb http://old/debian bookworm main\ndeb-src http://src/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] https://mirror.example/debian/ bookworm main\n";
        assert_eq!(
            mirror_in_sources(list, false, "bookworm").as_deref(),
            Some("https://mirror.example/debian")
        );
        assert_eq!(
            mirror_in_sources("deb cdrom:[Debian]/ bookworm main\n", false, "bookworm"),
            None
        );
    }

    #[test]
    fn the_dockerfile_starts_from_the_base_and_ends_as_the_user() {
        let text = dockerfile("debian:bookworm");
        assert!(text.starts_with("FROM debian:bookworm\n"));
        assert!(text.contains("USER openhands\nWORKDIR /workspace\n"));
        assert!(text.contains("LABEL openhands.sandbox-image=1"));
        assert!(text.contains(r"printf '[safe]\n\tdirectory = *\n[user]"));
        // Every line of the RUN instruction but the last continues.
        let run: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("RUN"))
            .take_while(|l| !l.starts_with("ENV"))
            .collect();
        assert!(run[..run.len() - 1].iter().all(|l| l.ends_with('\\')));
    }

    #[test]
    fn sizes_and_ids_read_well() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(human_size(312_400_000), "312 MB");
    }
}
