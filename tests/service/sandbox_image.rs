//! The sandbox image on the real Docker engine: the image that scripts/test builds offline, an
//! image built on top of it with --base, and the errors of `openhands sandbox build-image`.

use crate::support;

use std::process::{Command, Output, Stdio};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use openhands::sandbox::image::connect_docker;
use support::sandbox::test_image;

async fn docker() -> Docker {
    connect_docker()
        .await
        .unwrap_or_else(|e| panic!("{e:#}; ./scripts/test installs and starts Docker"))
}

/// The test image, which must exist: these tests never skip.
async fn existing_test_image(docker: &Docker) -> String {
    let image = test_image();
    if docker.inspect_image(&image).await.is_err() {
        panic!(
            "the sandbox image {image} is missing: run ./scripts/test, which builds it, or \
             `openhands sandbox build-image --tag {image}` (as root)"
        );
    }
    image
}

/// Runs `script` with bash in a container of `image` without network; returns the exit code
/// and the output (stdout and stderr). The container is removed.
async fn run_in(docker: &Docker, image: &str, script: &str) -> (i64, String) {
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["bash".into(), "-c".into(), script.into()]),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    let run = async {
        docker.start_container(&id, None).await.unwrap();
        // A non-zero exit arrives as an error of the wait stream; the code is read below.
        let _ = docker.wait_container(&id, None).collect::<Vec<_>>().await;
        let code = docker
            .inspect_container(&id, None)
            .await
            .unwrap()
            .state
            .and_then(|s| s.exit_code)
            .unwrap();
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut output = String::new();
        let mut logs = docker.logs(&id, Some(options));
        while let Some(chunk) = logs.next().await {
            output.push_str(&chunk.unwrap().to_string());
        }
        (code, output)
    };
    let result = run.await;
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(&id, Some(remove)).await.unwrap();
    result
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// The binary with a clean environment; DOCKER_HOST passes through unless `docker_host` is set.
fn build_image_command(docker_host: Option<&str>) -> Command {
    let mut command = Command::new(support::binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn")
        .args(["sandbox", "build-image"]);
    match docker_host {
        Some(host) => {
            command.env("DOCKER_HOST", host);
        }
        None => {
            if let Ok(host) = std::env::var("DOCKER_HOST") {
                command.env("DOCKER_HOST", host);
            }
        }
    }
    command
}

#[tokio::test]
async fn the_image_runs_as_openhands_in_the_workspace_with_the_tools() {
    let docker = docker().await;
    let image = existing_test_image(&docker).await;
    let (code, output) = run_in(
        &docker,
        &image,
        "id -u; id -un; id -g; pwd; echo \"home=$HOME\"; \
         for tool in bash git python3 curl patch sed grep find ps less; do \
           command -v \"$tool\" >/dev/null || echo \"missing $tool\"; done; \
         python3 -m venv /tmp/v && /tmp/v/bin/python -c 'import sys; print(\"venv\", sys.prefix)'; \
         stat -c 'workspace %U:%G %a' /workspace; \
         touch /workspace/written && echo workspace-writable; \
         git config --system --get safe.directory; git config --get user.name; \
         git config --get user.email; git config --get init.defaultBranch; \
         cd /workspace && git init -q repo && git -C repo symbolic-ref HEAD; \
         echo done",
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    assert_eq!(
        &lines[..5],
        &[
            "1000",
            "openhands",
            "1000",
            "/workspace",
            "home=/home/openhands"
        ],
        "{output}"
    );
    assert!(!output.contains("missing"), "every tool is there: {output}");
    assert!(lines.contains(&"venv /tmp/v"), "{output}");
    assert!(
        lines.contains(&"workspace openhands:openhands 755"),
        "{output}"
    );
    assert!(lines.contains(&"workspace-writable"), "{output}");
    for expected in [
        "*",
        "OpenHands",
        "openhands@localhost",
        "refs/heads/main",
        "done",
    ] {
        assert!(lines.contains(&expected), "`{expected}` in {output}");
    }
}

#[tokio::test]
async fn the_image_is_labelled_and_small() {
    let docker = docker().await;
    let image = existing_test_image(&docker).await;
    let inspect = docker.inspect_image(&image).await.unwrap();
    let config = inspect.config.unwrap();
    assert_eq!(config.user.as_deref(), Some("openhands"));
    assert_eq!(config.working_dir.as_deref(), Some("/workspace"));
    assert_eq!(
        config
            .labels
            .unwrap_or_default()
            .get("openhands.sandbox-image")
            .map(String::as_str),
        Some("1")
    );
    let env = config.env.unwrap_or_default();
    assert!(env.contains(&"LANG=C.UTF-8".to_string()), "{env:?}");
    let size = inspect.size.unwrap();
    assert!(size < 400_000_000, "the image stays small: {size} bytes");
    // The engine provides these; the build machine's must not be in the image.
    let (code, output) = run_in(
        &docker,
        &image,
        "ls /var/lib/apt/lists | grep -v '^partial$' | wc -l; ls /var/cache/apt | wc -l",
    )
    .await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        output.split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "apt lists and caches are gone: {output}"
    );
}

#[tokio::test]
async fn an_image_built_on_the_test_image_with_base_has_the_user() {
    let docker = docker().await;
    let base = existing_test_image(&docker).await;
    let tag = format!(
        "openhands-sandbox-derived-test:{}",
        uuid::Uuid::new_v4().simple()
    );
    let body = {
        let (docker, base, tag) = (docker.clone(), base.clone(), tag.clone());
        tokio::spawn(async move {
            // The base has every package: the build needs no network and gets none.
            let output = run(build_image_command(None).args([
                "--base",
                &base,
                "--tag",
                &tag,
                "--network",
                "none",
            ]));
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{stdout}\n{stderr}");
            assert!(
                stdout.contains(&format!("built {tag}: sha256:")),
                "{stdout}"
            );
            assert!(
                !stdout.contains("Reading package lists"),
                "nothing installed: {stdout}"
            );

            let (code, output) = run_in(
                &docker,
                &tag,
                "id -u; id -un; pwd; stat -c '%U' /workspace; git config --get user.name",
            )
            .await;
            assert_eq!(code, 0, "{output}");
            assert_eq!(
                output.split_whitespace().collect::<Vec<_>>(),
                ["1000", "openhands", "/workspace", "openhands", "OpenHands"],
                "{output}"
            );

            // Built again without --force: kept.
            let again = run(build_image_command(None).args(["--base", &base, "--tag", &tag]));
            let stdout = String::from_utf8_lossy(&again.stdout);
            assert!(again.status.success(), "{stdout}");
            assert!(stdout.contains("exists"), "{stdout}");
        })
        .await
    };
    let _ = docker
        .remove_image(
            &tag,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
    if let Err(failure) = body {
        std::panic::resume_unwind(failure.into_panic());
    }
}

#[tokio::test]
async fn an_unreachable_engine_is_a_clear_error() {
    let output = run(&mut build_image_command(Some("unix:///nonexistent.sock")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("systemctl start docker"), "{stderr}");
    assert!(stderr.contains("DOCKER_HOST"), "{stderr}");
    assert!(stderr.contains("/nonexistent.sock"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "one error line: {stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_mirror_is_a_clear_error() {
    // Nothing listens on this loopback port.
    let mirror = format!("http://127.0.0.1:{}/debian", support::free_port());
    let tag = format!(
        "openhands-sandbox-unbuilt-test:{}",
        uuid::Uuid::new_v4().simple()
    );
    let output = run(build_image_command(None).args(["--tag", &tag, "--mirror", &mirror]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the Debian mirror {mirror}")),
        "{stderr}"
    );
    assert!(stderr.contains("--mirror"), "{stderr}");
    let docker = docker().await;
    assert!(
        !openhands::sandbox::image::image_exists(&docker, &tag)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_invalid_base_is_refused_before_any_build() {
    let tag = format!(
        "openhands-sandbox-unbuilt-test:{}",
        uuid::Uuid::new_v4().simple()
    );
    let output = run(build_image_command(None).args([
        "--tag",
        &tag,
        "--base",
        "debian:bookworm\nRUN echo injected",
    ]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("invalid --base"), "{stderr}");
}

/// A worker whose engine lacks the sandbox image builds it on first need (here on the test
/// image, so nothing is fetched): the engine's recorded state says so while it builds, and a
/// conversation started meanwhile waits for the image and then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_built_on_first_need_and_runs_wait_for_it() {
    use openhands::agent::SANDBOX_ENGINE;
    use serde_json::json;
    use support::fake_llm::Turn;
    use support::{TestDb, wait_for};

    let docker = docker().await;
    let base = existing_test_image(&docker).await;
    let tag = format!(
        "openhands-sandbox-auto-test:{}",
        uuid::Uuid::new_v4().simple()
    );
    let t = TestDb::sqlite().await;
    let mut sandbox = support::sandbox::settings();
    sandbox.sandbox_image = tag.clone();
    sandbox.sandbox_build_base = Some(base);
    sandbox.sandbox_warm_pool = 0;
    let body = {
        let (db, docker, tag) = (t.db.clone(), docker.clone(), tag.clone());
        tokio::spawn(async move {
            let _service = support::service::Service::builder(&db)
                .agent(vec![
                    Turn::call(
                        "execute_bash",
                        json!({"command": "id -un", "security_risk": "LOW"}),
                    )
                    .with_text("Checking who runs."),
                    Turn::call("finish", json!({"message": "Ran as the sandbox user."})),
                ])
                .sandbox(sandbox)
                .image_auto_build()
                .start()
                .await;
            let id = support::conversation::ask(&db, "Who runs", "Who runs the commands?").await;

            // The first state recorded is the build's, with its fix-free progress.
            let first = wait_for(
                "the engine's state",
                std::time::Duration::from_secs(30),
                || {
                    let db = db.clone();
                    async move {
                        db.dependency_checks(SANDBOX_ENGINE, 0)
                            .await
                            .ok()?
                            .into_iter()
                            .next()
                    }
                },
            )
            .await;
            assert_eq!(first.state, "down");
            assert!(
                first
                    .reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("sandbox image"),
                "{first:?}"
            );

            let finished = wait_for(
                "the run to finish",
                std::time::Duration::from_secs(180),
                || {
                    let db = db.clone();
                    let id = id.clone();
                    async move {
                        let conversation = db.conversation(&id).await.ok()?;
                        (conversation.status == "finished").then_some(conversation)
                    }
                },
            )
            .await;
            assert_eq!(finished.status, "finished");
            let events = support::conversation::events_of(&db, &id).await;
            assert!(
                events.iter().any(|e| e["observation"] == "run"
                    && e["content"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("openhands")),
                "the command ran in a sandbox of the built image: {events:#?}"
            );
            assert!(
                docker.inspect_image(&tag).await.is_ok(),
                "the image was built"
            );
            let up = wait_for(
                "the engine to be up",
                std::time::Duration::from_secs(60),
                || {
                    let db = db.clone();
                    async move {
                        let checks = db.dependency_checks(SANDBOX_ENGINE, 0).await.ok()?;
                        checks.into_iter().find(|c| c.state == "up")
                    }
                },
            )
            .await;
            assert_eq!(up.reason, None);
        })
        .await
    };
    let _ = docker
        .remove_image(
            &tag,
            Some(
                bollard::query_parameters::RemoveImageOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
            None,
        )
        .await;
    if let Err(failure) = body {
        std::panic::resume_unwind(failure.into_panic());
    }
}
