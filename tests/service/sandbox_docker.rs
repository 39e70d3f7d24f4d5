//! The Docker backend on the real engine: shell semantics, files, isolation, limits, lifecycle,
//! the warm pool, and re-adoption after the owning process is gone.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use openhands::sandbox::docker::DockerBackend;
use openhands::sandbox::{
    CommandRequest, FileKind, SandboxBackend, SandboxError, SandboxSettings, SandboxStatus,
};
use support::sandbox::{OwnerCleanup, owner_containers, settings};

async fn backend(settings: &SandboxSettings) -> (Arc<DockerBackend>, OwnerCleanup) {
    let cleanup = OwnerCleanup(settings.owner());
    let backend = DockerBackend::connect(settings)
        .await
        .unwrap_or_else(|e| panic!("{e} (the test command starts dockerd and builds the image)"));
    (backend, cleanup)
}

async fn run(
    backend: &DockerBackend,
    id: &str,
    command: &str,
) -> openhands::sandbox::CommandOutcome {
    backend
        .execute(id, &CommandRequest::new(command), None)
        .await
        .unwrap_or_else(|e| panic!("`{command}`: {e}"))
}

async fn settle(backend: &DockerBackend, id: &str, command: &str) {
    let out = run(backend, id, command).await;
    assert_eq!(out.exit_code, 0, "`{command}`: {}", out.output);
}

fn inspect(container_filter: &str) -> serde_json::Value {
    let out = std::process::Command::new("docker")
        .args(["inspect", container_filter])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    value[0].clone()
}

#[tokio::test]
async fn shell_keeps_directory_and_variables_and_reports_exit_codes() {
    let settings = settings();
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-shell").await.unwrap();

    let first = backend
        .execute(
            &sandbox.id,
            &CommandRequest::new(
                "cd /tmp && export GREETING=hello && python3 -m venv /tmp/venv && . /tmp/venv/bin/activate",
            )
            .with_timeout(Duration::from_secs(60)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(first.exit_code, 0, "{}", first.output);
    let state = run(
        &backend,
        &sandbox.id,
        "pwd; echo $GREETING; command -v python3",
    )
    .await;
    assert_eq!(state.output, "/tmp\nhello\n/tmp/venv/bin/python3\n");
    assert_eq!(state.exit_code, 0);

    // Programs cannot read the prompt marker, so they cannot fake the end of a command.
    let env = run(
        &backend,
        &sandbox.id,
        "env | grep '__OH_\\|^PS1=' || echo none",
    )
    .await;
    assert_eq!(env.output, "none\n");

    let failed = run(&backend, &sandbox.id, "ls /does-not-exist").await;
    assert_eq!(failed.exit_code, 2);
    assert!(
        failed.output.contains("No such file or directory"),
        "{}",
        failed.output
    );
    assert_eq!(run(&backend, &sandbox.id, "(exit 42)").await.exit_code, 42);

    let multi = run(
        &backend,
        &sandbox.id,
        "cat > /tmp/note.txt <<'EOF'\nline one\nline two\nEOF\nwc -l < /tmp/note.txt\nfalse",
    )
    .await;
    assert_eq!(multi.output.trim(), "2");
    assert_eq!(
        multi.exit_code, 1,
        "a multi-line command reports its last status"
    );

    // A line longer than a terminal line buffer still runs whole.
    let long = format!("echo {} | wc -c", "x".repeat(10_000));
    assert_eq!(
        run(&backend, &sandbox.id, &long).await.output.trim(),
        "10001"
    );

    // Output streams while the command runs.
    let (sink, mut received) = tokio::sync::mpsc::unbounded_channel();
    let streamed = backend
        .execute(
            &sandbox.id,
            &CommandRequest::new("for i in 1 2 3; do echo step$i; sleep 0.3; done"),
            Some(sink),
        )
        .await
        .unwrap();
    assert_eq!(streamed.output, "step1\nstep2\nstep3\n");
    let mut pieces = Vec::new();
    while let Ok(piece) = received.try_recv() {
        pieces.push(piece);
    }
    assert!(pieces.len() >= 2, "output arrived in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), "step1\nstep2\nstep3\n");

    // `exit` ends the session; the next command gets a new one.
    let exited = run(&backend, &sandbox.id, "exit 3").await;
    assert!(exited.output.contains("shell exited"), "{}", exited.output);
    assert_eq!(
        run(&backend, &sandbox.id, "echo again").await.output,
        "again\n"
    );
}

#[tokio::test]
async fn quiet_commands_return_still_running_and_take_input() {
    let settings = settings(); // no-output timeout: 2 s
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-input").await.unwrap();

    let waiting = run(&backend, &sandbox.id, "read name; echo \"hello $name\"").await;
    assert!(waiting.still_running);
    assert_eq!(waiting.exit_code, -1);
    assert!(
        waiting.output.contains("still running"),
        "{}",
        waiting.output
    );

    // Another command while one runs is refused; input goes to the running one.
    let busy = backend
        .execute(&sandbox.id, &CommandRequest::new("echo no"), None)
        .await;
    assert!(matches!(busy, Err(SandboxError::Busy)), "{busy:?}");
    let answered = backend
        .execute(&sandbox.id, &CommandRequest::input("world"), None)
        .await
        .unwrap();
    assert_eq!(answered.output, "hello world\n");
    assert_eq!(answered.exit_code, 0);

    // C-c interrupts a long command.
    let sleeping = run(&backend, &sandbox.id, "sleep 300").await;
    assert!(sleeping.still_running);
    let waited = backend
        .execute(&sandbox.id, &CommandRequest::new(""), None)
        .await
        .unwrap();
    assert!(waited.still_running, "an empty command keeps waiting");
    let interrupted = backend
        .execute(&sandbox.id, &CommandRequest::input("C-c"), None)
        .await
        .unwrap();
    assert_eq!(interrupted.exit_code, 130);
    assert!(!interrupted.still_running);

    // C-d ends the input of a reading program.
    let cat = run(&backend, &sandbox.id, "cat > /tmp/typed.txt").await;
    assert!(cat.still_running);
    backend
        .execute(&sandbox.id, &CommandRequest::input("typed line"), None)
        .await
        .unwrap();
    let done = backend
        .execute(&sandbox.id, &CommandRequest::input("C-d"), None)
        .await
        .unwrap();
    assert_eq!(done.exit_code, 0, "{}", done.output);
    assert_eq!(
        run(&backend, &sandbox.id, "cat /tmp/typed.txt")
            .await
            .output,
        "typed line\n"
    );

    // Nothing running: input and waiting are refused.
    let nothing = backend
        .execute(&sandbox.id, &CommandRequest::input("hello"), None)
        .await;
    assert!(
        matches!(nothing, Err(SandboxError::NoRunningCommand)),
        "{nothing:?}"
    );

    // A hard timeout interrupts even a command that keeps printing.
    let chatty = backend
        .execute(
            &sandbox.id,
            &CommandRequest::new("while :; do echo tick; sleep 0.2; done")
                .with_timeout(Duration::from_secs(2)),
            None,
        )
        .await
        .unwrap();
    assert!(chatty.timed_out);
    assert!(chatty.output.contains("tick"));
    assert!(
        chatty.output.contains("timed out after 2 seconds"),
        "{}",
        chatty.output
    );
    assert_eq!(
        run(&backend, &sandbox.id, "echo ready").await.output,
        "ready\n"
    );
}

#[tokio::test]
async fn huge_output_is_cut_in_the_middle() {
    let settings = settings();
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-output").await.unwrap();
    let out = run(&backend, &sandbox.id, "seq 1 300000").await;
    assert_eq!(out.exit_code, 0);
    assert!(out.output.starts_with("1\n2\n3\n"));
    assert!(out.output.ends_with("299999\n300000\n"));
    assert!(
        out.output
            .contains("characters of output cut from the middle")
    );
    assert!(out.output.chars().count() < 30_200);
}

#[tokio::test]
async fn files_round_trip_binary_safe_inside_the_sandbox_only() {
    let settings = settings();
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-files").await.unwrap();
    let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    backend
        .write_file(&sandbox.id, "/workspace/deep/dir/blob.bin", &blob)
        .await
        .unwrap();
    assert_eq!(
        backend
            .read_file(&sandbox.id, "/workspace/deep/dir/blob.bin")
            .await
            .unwrap(),
        blob
    );
    let owner = run(
        &backend,
        &sandbox.id,
        "stat -c %U /workspace/deep/dir/blob.bin /workspace/deep",
    )
    .await;
    assert_eq!(owner.output, "openhands\nopenhands\n");
    let listed = backend
        .list_files(&sandbox.id, "/workspace/deep")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].path, "/workspace/deep/dir");
    assert_eq!(listed[0].kind, FileKind::Directory);

    let not_a_directory = backend
        .list_files(&sandbox.id, "/workspace/deep/dir/blob.bin")
        .await;
    assert!(
        matches!(not_a_directory, Err(SandboxError::BadPath(_))),
        "{not_a_directory:?}"
    );
    let root = backend.list_files(&sandbox.id, "/").await.unwrap();
    assert!(root.iter().any(|e| e.path == "/workspace"), "{root:?}");
    for bad in ["workspace/x", "/workspace/../etc/passwd"] {
        let refused = backend.read_file(&sandbox.id, bad).await;
        assert!(
            matches!(refused, Err(SandboxError::BadPath(_))),
            "{bad}: {refused:?}"
        );
    }
    let missing = backend.read_file(&sandbox.id, "/workspace/nope.txt").await;
    assert!(
        matches!(missing, Err(SandboxError::FileNotFound(_))),
        "{missing:?}"
    );
    let directory = backend.read_file(&sandbox.id, "/workspace/deep").await;
    assert!(
        matches!(directory, Err(SandboxError::BadPath(_))),
        "{directory:?}"
    );
    // A symlink to the host's files leads to the sandbox's own /etc, never the host's.
    run(&backend, &sandbox.id, "ln -s /etc/hostname /workspace/link").await;
    let through_link = backend.read_file(&sandbox.id, "/workspace/link").await;
    assert!(!matches!(through_link, Ok(ref b) if String::from_utf8_lossy(b).trim() != "sandbox"));

    let archive = backend
        .get_archive(&sandbox.id, "/workspace/deep")
        .await
        .unwrap();
    backend
        .put_archive(&sandbox.id, "/workspace/copy", archive)
        .await
        .unwrap();
    assert_eq!(
        backend
            .read_file(&sandbox.id, "/workspace/copy/deep/dir/blob.bin")
            .await
            .unwrap(),
        blob
    );
}

#[tokio::test]
async fn containers_are_hardened_and_labelled() {
    let settings = SandboxSettings {
        sandbox_network: openhands::sandbox::NetworkMode::None,
        ..settings()
    };
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-hardened").await.unwrap();
    let checks = run(
        &backend,
        &sandbox.id,
        "id -u; grep CapEff /proc/self/status; test -e /var/run/docker.sock && echo SOCKET; test -e /run/docker.sock && echo SOCKET; grep NoNewPrivs /proc/self/status; ip -o link 2>/dev/null | grep -vc ' lo:' ; cat /proc/net/dev | grep -c eth0",
    )
    .await;
    let lines: Vec<&str> = checks.output.lines().collect();
    assert_eq!(lines[0], "1000", "{}", checks.output);
    assert!(
        lines[1].ends_with("0000000000000000"),
        "no capabilities: {}",
        checks.output
    );
    assert!(!checks.output.contains("SOCKET"));
    assert!(
        checks.output.contains("NoNewPrivs:\t1"),
        "{}",
        checks.output
    );
    assert_eq!(
        lines.last().copied(),
        Some("0"),
        "no network interface besides lo: {}",
        checks.output
    );

    let containers = owner_containers(&settings.owner());
    assert_eq!(containers.len(), 1);
    let inspected = inspect(&containers[0]);
    let host = &inspected["HostConfig"];
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(host["PidsLimit"], settings.sandbox_pids);
    assert_eq!(host["Memory"], settings.sandbox_memory);
    assert_eq!(host["NetworkMode"], "none");
    assert!(host["Binds"].is_null(), "{}", host["Binds"]);
    assert_eq!(inspected["Mounts"], serde_json::json!([]));
    let labels = &inspected["Config"]["Labels"];
    assert_eq!(labels["openhands.owner"], settings.owner());
    assert_eq!(labels["openhands.sandbox"], sandbox.id);
    assert_eq!(labels["openhands.conversation"], "conv-hardened");
    assert_eq!(inspected["Config"]["User"], "openhands");
}

#[tokio::test]
async fn fork_bombs_and_memory_hogs_stay_inside_their_limits() {
    let settings = SandboxSettings {
        sandbox_pids: 64,
        sandbox_memory: 128 << 20,
        ..settings()
    };
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-limits").await.unwrap();
    let bomb = "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(20)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('refused after', n, 'errno', e.errno)";
    settle(
        &backend,
        &sandbox.id,
        &format!("printf '%s' \"{bomb}\" > /tmp/bomb.py"),
    )
    .await;
    let forks = backend
        .execute(
            &sandbox.id,
            &CommandRequest::new("python3 /tmp/bomb.py").with_timeout(Duration::from_secs(60)),
            None,
        )
        .await
        .unwrap();
    assert!(
        forks.output.contains("refused after") && forks.output.contains("errno 11"),
        "{}",
        forks.output
    );
    let alive = run(&backend, &sandbox.id, "pkill -f bomb.py; echo alive").await;
    assert!(alive.output.contains("alive"), "{}", alive.output);

    let hog = run(
        &backend,
        &sandbox.id,
        "python3 -c 'b = bytearray(512 * 1024 * 1024); print(len(b))'",
    )
    .await;
    assert_ne!(hog.exit_code, 0, "{}", hog.output);
    assert!(!hog.output.contains("536870912"));
    // The sandbox (or at least the engine) is still there and answering.
    match backend
        .execute(&sandbox.id, &CommandRequest::new("echo still-here"), None)
        .await
    {
        Ok(out) => assert_eq!(out.output, "still-here\n"),
        Err(SandboxError::Gone { reason, .. }) => assert!(reason.contains("memory"), "{reason}"),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn lifecycle_pause_resume_stop_remove_and_idle_reaping() {
    let settings = SandboxSettings {
        sandbox_pause_after: Duration::from_secs(60),
        sandbox_remove_after: Duration::from_secs(120),
        ..settings()
    };
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-life").await.unwrap();
    run(&backend, &sandbox.id, "echo kept > /workspace/kept.txt").await;
    let container = owner_containers(&settings.owner())[0].clone();

    let paused = backend.pause(&sandbox.id).await.unwrap();
    assert_eq!(paused.status, SandboxStatus::Paused);
    assert_eq!(inspect(&container)["State"]["Status"], "paused");
    // Using a paused sandbox resumes it.
    assert_eq!(
        run(&backend, &sandbox.id, "cat /workspace/kept.txt")
            .await
            .output,
        "kept\n"
    );
    assert_eq!(
        backend.get(&sandbox.id).await.unwrap().status,
        SandboxStatus::Running
    );

    let stopped = backend.stop(&sandbox.id).await.unwrap();
    assert_eq!(stopped.status, SandboxStatus::Stopped);
    assert_eq!(inspect(&container)["State"]["Status"], "exited");
    let resumed = backend.resume(&sandbox.id).await.unwrap();
    assert_eq!(resumed.status, SandboxStatus::Running);
    assert_eq!(
        run(&backend, &sandbox.id, "cat /workspace/kept.txt")
            .await
            .output,
        "kept\n"
    );
    // The same conversation gets the same sandbox back.
    assert_eq!(backend.start("conv-life").await.unwrap().id, sandbox.id);

    let now = tokio::time::Instant::now();
    let early = backend
        .reap_idle(now + Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((early.paused, early.removed), (0, 0));
    let later = backend
        .reap_idle(now + Duration::from_secs(61))
        .await
        .unwrap();
    assert_eq!((later.paused, later.removed), (1, 0));
    assert_eq!(
        backend.get(&sandbox.id).await.unwrap().status,
        SandboxStatus::Paused
    );
    let last = backend
        .reap_idle(now + Duration::from_secs(121))
        .await
        .unwrap();
    assert_eq!(last.removed, 1);
    assert!(owner_containers(&settings.owner()).is_empty());
    assert!(matches!(
        backend.get(&sandbox.id).await,
        Err(SandboxError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_warm_pool_is_claimed_not_started_and_refills() {
    let settings = SandboxSettings {
        sandbox_warm_pool: 2,
        ..settings()
    };
    let (backend, _cleanup) = backend(&settings).await;
    assert_eq!(backend.refill_pool().await.unwrap(), 2);
    assert_eq!(backend.warm_count(), 2);
    let warm: Vec<String> = backend
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();

    let claimed = backend.start("conv-pool").await.unwrap();
    assert!(warm.contains(&claimed.id), "a warm sandbox was assigned");
    assert_eq!(claimed.conversation_id.as_deref(), Some("conv-pool"));
    assert_eq!(
        owner_containers(&settings.owner()).len(),
        2,
        "no container started"
    );
    assert_eq!(backend.warm_count(), 1);
    assert_eq!(
        run(&backend, &claimed.id, "echo warm").await.output,
        "warm\n"
    );

    let done = backend.maintain().await.unwrap();
    assert_eq!(done.started_warm, 1);
    assert_eq!(backend.warm_count(), 2);
    assert_eq!(owner_containers(&settings.owner()).len(), 3);
}

#[tokio::test]
async fn a_restarted_process_re_adopts_its_sandboxes_and_never_touches_others() {
    let settings = SandboxSettings {
        sandbox_warm_pool: 1,
        ..settings()
    };
    let other = support::sandbox::settings();
    let (other_backend, _other_cleanup) = backend(&other).await;
    let foreign = other_backend.start("conv-foreign").await.unwrap();

    let (first, _cleanup) = backend(&settings).await;
    first.refill_pool().await.unwrap();
    let claimed = first.start("conv-adopt").await.unwrap();
    run(&first, &claimed.id, "echo survived > /workspace/state.txt").await;
    first.refill_pool().await.unwrap();
    let paused = first.start("conv-paused").await.unwrap();
    first.pause(&paused.id).await.unwrap();
    // A warm container that died (as with an engine restart) must not be re-used.
    let warm_id = first
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.conversation_id.is_none());
    drop(first); // the process is gone; its containers stay

    if let Some(warm) = &warm_id {
        let name = format!("openhands-{}-{}", settings.owner(), warm.id);
        std::process::Command::new("docker")
            .args(["kill", &name])
            .output()
            .unwrap();
    }

    let second = DockerBackend::connect(&settings).await.unwrap();
    let adopted = second
        .find("conv-adopt")
        .await
        .unwrap()
        .expect("re-adopted");
    assert_eq!(
        adopted.id, claimed.id,
        "claimed from the pool, recognised by its record"
    );
    assert_eq!(
        run(&second, &adopted.id, "cat /workspace/state.txt")
            .await
            .output,
        "survived\n"
    );
    let still_paused = second.find("conv-paused").await.unwrap().unwrap();
    assert_eq!(still_paused.status, SandboxStatus::Paused);
    assert_eq!(second.warm_count(), 0, "the dead warm container was reaped");
    assert_eq!(owner_containers(&settings.owner()).len(), 2);
    assert!(
        second
            .list()
            .await
            .unwrap()
            .iter()
            .all(|s| s.id != foreign.id)
    );

    // Idle reaping removes what the dead process left behind.
    let done = second
        .reap_idle(
            tokio::time::Instant::now() + settings.sandbox_remove_after + Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert_eq!(done.removed, 2);
    assert!(owner_containers(&settings.owner()).is_empty());
    assert_eq!(
        other_backend.get(&foreign.id).await.unwrap().status,
        SandboxStatus::Running
    );
}

#[tokio::test]
async fn a_dead_container_and_a_missing_image_give_clear_errors() {
    let settings = settings();
    let (backend, _cleanup) = backend(&settings).await;
    let sandbox = backend.start("conv-dead").await.unwrap();
    run(&backend, &sandbox.id, "true").await;
    let container = owner_containers(&settings.owner())[0].clone();
    std::process::Command::new("docker")
        .args(["kill", &container])
        .output()
        .unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        backend.execute(&sandbox.id, &CommandRequest::new("echo hi"), None),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, SandboxError::Gone { .. }), "{message}");
    assert!(
        message.contains("exited with code 137") && message.contains("start a new one"),
        "{message}"
    );
    // Started again for its conversation: the same sandbox, its files kept.
    let again = backend.start("conv-dead").await.unwrap();
    assert_eq!(again.id, sandbox.id);
    assert_eq!(run(&backend, &again.id, "echo hi").await.output, "hi\n");
    // A sandbox whose container was removed is reported so, then replaced by a new one.
    std::process::Command::new("docker")
        .args(["rm", "-f", &container])
        .output()
        .unwrap();
    let error = backend
        .execute(&sandbox.id, &CommandRequest::new("echo hi"), None)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("its container was removed"),
        "{error}"
    );
    let replaced = backend.start("conv-dead").await.unwrap();
    assert_ne!(replaced.id, sandbox.id);
    assert_eq!(
        run(&backend, &replaced.id, "echo new").await.output,
        "new\n"
    );
    assert!(matches!(
        backend.get(&sandbox.id).await,
        Err(SandboxError::NotFound(_))
    ));

    let missing = SandboxSettings {
        sandbox_image: "openhands-sandbox:no-such-image".into(),
        ..support::sandbox::settings()
    };
    let error = DockerBackend::connect(&missing)
        .await
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(
        message.contains("openhands sandbox build-image"),
        "{message}"
    );
}

#[test]
fn an_unreachable_engine_names_the_fix() {
    let output = std::process::Command::new(support::binary())
        .args(["sandbox", "list"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("SANDBOX_OWNER", "nobody")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("systemctl start docker") && stderr.contains("DOCKER_HOST"),
        "{stderr}"
    );
}
