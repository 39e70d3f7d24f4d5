//! The unsafe `process` backend (development only): the same shell semantics on a local
//! pseudo-terminal, file operations confined to the workspace, and the explicit opt-in.

use crate::support;

use std::time::Duration;

use openhands::sandbox::process::ProcessBackend;
use openhands::sandbox::{
    BackendKind, CommandRequest, SandboxBackend, SandboxError, SandboxSettings,
};

fn settings(root: &std::path::Path) -> SandboxSettings {
    SandboxSettings {
        sandbox_backend: BackendKind::Process,
        sandbox_allow_unsafe_process: true,
        sandbox_process_root: root.to_path_buf(),
        sandbox_no_output_timeout: Duration::from_secs(1),
        ..SandboxSettings::default()
    }
}

#[tokio::test]
async fn commands_and_files_stay_in_the_workspace() {
    let root = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new(&settings(root.path())).unwrap();
    let sandbox = backend.start("conv-local").await.unwrap();

    let out = backend
        .execute(
            &sandbox.id,
            &CommandRequest::new("mkdir sub && cd sub && export X=1"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.output);
    let out = backend
        .execute(
            &sandbox.id,
            &CommandRequest::new("basename \"$PWD\"; echo $X; false"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.output, "sub\n1\n");
    assert_eq!(out.exit_code, 1);

    let quiet = backend
        .execute(&sandbox.id, &CommandRequest::new("sleep 30"), None)
        .await
        .unwrap();
    assert!(quiet.still_running);
    let stopped = backend
        .execute(&sandbox.id, &CommandRequest::input("C-c"), None)
        .await
        .unwrap();
    assert_eq!(stopped.exit_code, 130);

    let blob: Vec<u8> = (0..=255u8).collect();
    backend
        .write_file(&sandbox.id, "/workspace/sub/blob.bin", &blob)
        .await
        .unwrap();
    assert_eq!(
        backend
            .read_file(&sandbox.id, "/workspace/sub/blob.bin")
            .await
            .unwrap(),
        blob
    );
    for outside in ["/etc/passwd", "/workspace/../x", "relative"] {
        let refused = backend.read_file(&sandbox.id, outside).await;
        assert!(
            matches!(refused, Err(SandboxError::BadPath(_))),
            "{outside}: {refused:?}"
        );
    }
    // A symlink that leads out of the workspace is refused too.
    backend
        .execute(
            &sandbox.id,
            &CommandRequest::new("ln -s /etc ../etc-link"),
            None,
        )
        .await
        .unwrap();
    let escaped = backend
        .read_file(&sandbox.id, "/workspace/etc-link/hostname")
        .await;
    assert!(
        matches!(escaped, Err(SandboxError::BadPath(_))),
        "{escaped:?}"
    );

    backend.remove(&sandbox.id).await.unwrap();
    assert!(std::fs::read_dir(root.path()).unwrap().next().is_none());
}

#[test]
fn the_process_backend_needs_an_explicit_opt_in() {
    let output = std::process::Command::new(support::binary())
        .args(["sandbox", "list"])
        .env("SANDBOX_BACKEND", "process")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SANDBOX_ALLOW_UNSAFE_PROCESS"), "{stderr}");
}

#[tokio::test]
async fn a_repository_is_cloned_into_a_process_sandbox() {
    let server = support::git_server::GitServer::start("ghs_token").await;
    server.create_repo("app");
    let root = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new(&settings(root.path())).unwrap();
    let sandbox = backend.start("conv-clone").await.unwrap();
    let remote = openhands::sandbox::git::GitRemote::github(
        server.url("app"),
        Some("ghs_token".parse().unwrap()),
    );
    openhands::sandbox::git::clone_into(&backend, &sandbox.id, &remote, None, "/workspace/repo")
        .await
        .unwrap();
    let out = backend
        .execute(
            &sandbox.id,
            &CommandRequest::new("cat repo/README && git -C repo log --format=%s"),
            None,
        )
        .await
        .unwrap();
    // The shell starts in the workspace (a host directory for this backend).
    assert_eq!(out.output.trim(), "hello\ninitial commit");
}
