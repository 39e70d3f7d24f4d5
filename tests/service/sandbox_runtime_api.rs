//! The Runtime API on the real Docker engine, served in-process on loopback, and the `remote`
//! backend that uses it; plus the `openhands runtime-api` binary with a warm pool.

use crate::support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openhands::sandbox::docker::DockerBackend;
use openhands::sandbox::remote::RemoteBackend;
use openhands::sandbox::runtime_api::router;
use openhands::sandbox::{
    CommandRequest, FileKind, SandboxBackend, SandboxError, SandboxStatus, Sandboxes,
};
use openhands::setting::Secret;
use serde_json::{Value, json};
use support::sandbox::{OwnerCleanup, owner_containers, settings, test_image};
use support::{ChildGuard, free_port, wait_for};

const KEY: &str = "runtime-api-test-key-0123456789";

fn key() -> Secret {
    KEY.parse().unwrap()
}

/// A Runtime API over a fresh owner's Docker sandboxes, on a loopback port of its own.
struct Server {
    url: String,
    owner: String,
    remote: RemoteBackend,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
    _cleanup: OwnerCleanup,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> Server {
        let settings = settings();
        let owner = settings.owner();
        let cleanup = OwnerCleanup(owner.clone());
        let backend: Sandboxes = DockerBackend::connect(&settings).await.unwrap();
        let app = router(backend, key(), &settings.sandbox_image);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            remote: RemoteBackend::new(&url, key()).unwrap(),
            url,
            owner,
            http: reqwest::Client::new(),
            task,
            _cleanup: cleanup,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("X-API-Key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
    (status, value)
}

fn conversation() -> String {
    format!("conv-{}", ulid::Ulid::new().to_string().to_lowercase())
}

#[tokio::test]
async fn start_is_once_per_conversation_and_stop_removes() {
    let server = Server::start().await;
    let conv = conversation();

    let (status, first) = server.post("/start", json!({ "session_id": conv })).await;
    assert_eq!(status, 201, "{first}");
    let id = first["runtime_id"].as_str().unwrap().to_string();
    assert_eq!(first["session_id"], conv.as_str());
    assert_eq!(first["status"], "running");
    assert_eq!(first["image"], test_image().as_str());
    assert_eq!(first["workspace"], "/workspace");
    assert_eq!(first["url"], format!("/runtime/{id}").as_str());

    let (status, again) = server
        .post(
            "/start",
            json!({ "session_id": conv, "image": test_image() }),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["runtime_id"], id.as_str());
    assert_eq!(owner_containers(&server.owner).len(), 1);

    let (status, other_image) = server
        .post(
            "/start",
            json!({ "session_id": conversation(), "image": "someone/else:1" }),
        )
        .await;
    assert_eq!(status, 400, "{other_image}");
    assert_eq!(other_image["kind"], "bad_request");
    assert!(
        other_image["error"]
            .as_str()
            .unwrap()
            .contains("someone/else:1"),
        "{other_image}"
    );

    let (status, malformed) = server.post("/start", json!({ "session": "x" })).await;
    assert_eq!(status, 400, "{malformed}");
    assert_eq!(malformed["kind"], "bad_request");
    assert!(
        malformed["error"].as_str().unwrap().contains("session_id"),
        "{malformed}"
    );

    let (status, by_session) = server.get(&format!("/sessions/{conv}")).await;
    assert_eq!(status, 200, "{by_session}");
    assert_eq!(by_session["runtime_id"], id.as_str());
    let (status, none) = server.get("/sessions/nobody").await;
    assert_eq!(status, 404, "{none}");
    assert_eq!(none["kind"], "not_found");

    let (status, runtime) = server.get(&format!("/runtime/{id}")).await;
    assert_eq!(status, 200, "{runtime}");
    assert_eq!(runtime["session_id"], conv.as_str());

    let (status, list) = server.get("/list").await;
    assert_eq!(status, 200, "{list}");
    let runtimes = list["runtimes"].as_array().unwrap();
    assert_eq!(runtimes.len(), 1, "{list}");
    assert_eq!(runtimes[0]["runtime_id"], id.as_str());

    let (status, stopped) = server.post("/stop", json!({ "runtime_id": id })).await;
    assert_eq!(status, 200, "{stopped}");
    let (status, gone) = server.get(&format!("/runtime/{id}")).await;
    assert_eq!(status, 404, "{gone}");
    assert_eq!(gone["kind"], "not_found");
    let (status, _) = server.get(&format!("/sessions/{conv}")).await;
    assert_eq!(status, 404);
    assert!(owner_containers(&server.owner).is_empty());

    assert!(matches!(
        server.remote.get(&id).await,
        Err(SandboxError::NotFound(missing)) if missing == id
    ));
    assert!(server.remote.find(&conv).await.unwrap().is_none());
    let (status, again) = server.post("/stop", json!({ "runtime_id": id })).await;
    assert_eq!(status, 404, "{again}");
}

#[tokio::test]
async fn commands_stream_their_output_and_keep_the_shell() {
    let server = Server::start().await;
    let remote = &server.remote;
    let conv = conversation();
    let info = remote.start(&conv).await.unwrap();
    assert_eq!(info.conversation_id.as_deref(), Some(conv.as_str()));
    assert_eq!(remote.find(&conv).await.unwrap().unwrap().id, info.id);
    let id = info.id;

    // Output reaches the sink while the command still runs.
    let (sink, mut pieces) = tokio::sync::mpsc::unbounded_channel::<String>();
    let collector = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(piece) = pieces.recv().await {
            seen.push((Instant::now(), piece));
        }
        seen
    });
    let outcome = remote
        .execute(
            &id,
            &CommandRequest::new("echo first; sleep 1.5; echo second"),
            Some(sink),
        )
        .await
        .unwrap();
    let finished = Instant::now();
    assert_eq!(outcome.exit_code, 0, "{outcome:?}");
    assert!(!outcome.still_running);
    assert!(outcome.output.contains("first") && outcome.output.contains("second"));
    let seen = collector.await.unwrap();
    let (first_at, _) = seen
        .iter()
        .find(|(_, piece)| piece.contains("first"))
        .unwrap_or_else(|| panic!("`first` streamed: {seen:?}"));
    assert!(
        finished.duration_since(*first_at) > Duration::from_millis(800),
        "`first` arrived {:?} before the result",
        finished.duration_since(*first_at)
    );

    // The shell session persists between calls.
    let cd = remote
        .execute(
            &id,
            &CommandRequest::new("mkdir -p /workspace/sub && cd /workspace/sub"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(cd.exit_code, 0, "{cd:?}");
    let pwd = remote
        .execute(&id, &CommandRequest::new("pwd"), None)
        .await
        .unwrap();
    assert!(pwd.output.contains("/workspace/sub"), "{pwd:?}");
    let failed = remote
        .execute(&id, &CommandRequest::new("false"), None)
        .await
        .unwrap();
    assert_eq!(failed.exit_code, 1);

    // Busy and NoRunningCommand survive the hop.
    let long = remote
        .execute(&id, &CommandRequest::new("sleep 20"), None)
        .await
        .unwrap();
    assert!(long.still_running, "{long:?}");
    let busy = remote
        .execute(&id, &CommandRequest::new("echo hi"), None)
        .await;
    assert!(matches!(busy, Err(SandboxError::Busy)), "{busy:?}");
    let interrupted = remote
        .execute(&id, &CommandRequest::input("C-c"), None)
        .await
        .unwrap();
    assert!(!interrupted.still_running, "{interrupted:?}");
    let no_command = remote.execute(&id, &CommandRequest::input("y"), None).await;
    assert!(
        matches!(no_command, Err(SandboxError::NoRunningCommand)),
        "{no_command:?}"
    );

    // A program outside the shell.
    let argv: Vec<String> = ["bash", "-c", "echo out; echo err >&2; pwd; exit 3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ran = remote.exec(&id, &argv, "/tmp").await.unwrap();
    assert_eq!(ran.exit_code, 3);
    assert_eq!(ran.stdout, "out\n/tmp\n");
    assert_eq!(ran.stderr, "err\n");
    let (status, empty) = server
        .post(
            &format!("/runtime/{id}/exec"),
            json!({ "argv": [], "workdir": "/" }),
        )
        .await;
    assert_eq!(status, 400, "{empty}");

    let unknown = remote
        .execute("nope", &CommandRequest::new("true"), None)
        .await;
    assert!(
        matches!(&unknown, Err(SandboxError::NotFound(id)) if id == "nope"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn files_and_archives_round_trip() {
    let server = Server::start().await;
    let remote = &server.remote;
    let id = remote.start(&conversation()).await.unwrap().id;

    let every_byte: Vec<u8> = (0..=255u8).collect();
    remote
        .write_file(&id, "/workspace/data/all.bin", &every_byte)
        .await
        .unwrap();
    assert_eq!(
        remote
            .read_file(&id, "/workspace/data/all.bin")
            .await
            .unwrap(),
        every_byte
    );
    let listed = remote.list_files(&id, "/workspace/data").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].path, "/workspace/data/all.bin");
    assert_eq!(listed[0].kind, FileKind::File);
    assert_eq!(listed[0].size, 256);

    // Larger than axum's default body limit.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    remote
        .write_file(&id, "/workspace/big.bin", &big)
        .await
        .unwrap();
    assert_eq!(
        remote.read_file(&id, "/workspace/big.bin").await.unwrap(),
        big
    );

    let missing = remote.read_file(&id, "/workspace/missing.txt").await;
    assert!(
        matches!(&missing, Err(SandboxError::FileNotFound(path)) if path == "/workspace/missing.txt"),
        "{missing:?}"
    );
    let relative = remote.read_file(&id, "notes.txt").await;
    assert!(
        matches!(relative, Err(SandboxError::BadPath(_))),
        "{relative:?}"
    );
    let no_dir = remote.list_files(&id, "/workspace/nope").await;
    assert!(
        matches!(no_dir, Err(SandboxError::FileNotFound(_))),
        "{no_dir:?}"
    );
    let (status, no_path) = server.get(&format!("/runtime/{id}/file")).await;
    assert_eq!(status, 400, "{no_path}");
    assert!(no_path["error"].as_str().unwrap().contains("path"));

    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in [("a.txt", &b"alpha"[..]), ("dir/b.txt", &b"beta"[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, content).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    remote
        .put_archive(&id, "/workspace/unpacked", tar)
        .await
        .unwrap();
    assert_eq!(
        remote
            .read_file(&id, "/workspace/unpacked/dir/b.txt")
            .await
            .unwrap(),
        b"beta"
    );
    let fetched = remote
        .get_archive(&id, "/workspace/unpacked")
        .await
        .unwrap();
    let mut archive = tar::Archive::new(fetched.as_slice());
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.trim_end_matches('/') == "unpacked/a.txt" {
            let mut content = String::new();
            std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
            assert_eq!(content, "alpha");
        }
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "unpacked/dir/b.txt"), "{names:?}");
    let no_archive = remote.get_archive(&id, "/workspace/none").await;
    assert!(
        matches!(no_archive, Err(SandboxError::FileNotFound(_))),
        "{no_archive:?}"
    );
}

#[tokio::test]
async fn pause_resume_and_stop_keeping_files() {
    let server = Server::start().await;
    let remote = &server.remote;
    let id = remote.start(&conversation()).await.unwrap().id;
    let before = remote
        .execute(&id, &CommandRequest::new("echo before"), None)
        .await
        .unwrap();
    assert_eq!(before.exit_code, 0);

    assert_eq!(
        remote.pause(&id).await.unwrap().status,
        SandboxStatus::Paused
    );
    let (_, shown) = server.get(&format!("/runtime/{id}")).await;
    assert_eq!(shown["status"], "paused");
    assert_eq!(
        remote.resume(&id).await.unwrap().status,
        SandboxStatus::Running
    );
    let after = remote
        .execute(&id, &CommandRequest::new("echo after"), None)
        .await
        .unwrap();
    assert!(after.output.contains("after"), "{after:?}");

    remote
        .write_file(&id, "/workspace/kept.txt", b"kept")
        .await
        .unwrap();
    assert_eq!(
        remote.stop(&id).await.unwrap().status,
        SandboxStatus::Stopped
    );
    assert_eq!(owner_containers(&server.owner).len(), 1);
    assert_eq!(
        remote.resume(&id).await.unwrap().status,
        SandboxStatus::Running
    );
    assert_eq!(
        remote.read_file(&id, "/workspace/kept.txt").await.unwrap(),
        b"kept"
    );
    let again = remote
        .execute(&id, &CommandRequest::new("cat /workspace/kept.txt"), None)
        .await
        .unwrap();
    assert!(again.output.contains("kept"), "{again:?}");

    remote.remove(&id).await.unwrap();
    assert!(owner_containers(&server.owner).is_empty());
}

#[tokio::test]
async fn every_endpoint_but_health_needs_the_key() {
    let server = Server::start().await;
    let http = &server.http;

    let health = http
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let (status, missing) = answer(
        http.get(format!("{}/list", server.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(missing["error"].as_str().unwrap().contains("X-API-Key"));
    let (status, wrong) = answer(
        http.post(format!("{}/start", server.url))
            .header("X-API-Key", "not-the-key")
            .json(&json!({ "session_id": "c" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{wrong}");
    assert!(wrong["error"].is_string());
    let prefix = &KEY[..KEY.len() - 1];
    let status = http
        .get(format!("{}/list", server.url))
        .header("X-API-Key", prefix)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert!(owner_containers(&server.owner).is_empty());

    let intruder = RemoteBackend::new(&server.url, "wrong".parse().unwrap()).unwrap();
    assert!(matches!(
        intruder.list().await,
        Err(SandboxError::RemoteUnauthorized)
    ));
    assert!(matches!(
        intruder.start("c").await,
        Err(SandboxError::RemoteUnauthorized)
    ));
    assert!(matches!(
        intruder
            .execute("x", &CommandRequest::new("true"), None)
            .await,
        Err(SandboxError::RemoteUnauthorized)
    ));
    assert!(server.remote.list().await.unwrap().is_empty());

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let unreachable = RemoteBackend::new(&nowhere, key()).unwrap();
    match unreachable.list().await {
        Err(SandboxError::RemoteUnavailable { url, reason }) => {
            assert_eq!(url, nowhere);
            assert!(!reason.is_empty());
        }
        other => panic!("expected RemoteUnavailable, got {other:?}"),
    }
}

async fn wait_healthy(http: &reqwest::Client, url: &str) {
    wait_for(
        "the Runtime API to answer /health",
        Duration::from_secs(30),
        || async move {
            let response = http.get(format!("{url}/health")).send().await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;
}

fn runtime_api_command(owner: &str, port: u16) -> Command {
    let mut command = Command::new(support::binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUNTIME_API_LISTEN", format!("127.0.0.1:{port}"))
        .env("SANDBOX_OWNER", owner)
        .env("SANDBOX_IMAGE", test_image())
        .env("SANDBOX_MEMORY", "256m")
        .env("LOG_LEVEL", "info")
        .arg("runtime-api")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    command
}

#[tokio::test]
async fn the_binary_serves_a_warm_pool_and_a_killed_one_is_re_adopted() {
    let owner = settings().owner();
    let _cleanup = OwnerCleanup(owner.clone());
    let port = free_port();
    let mut command = runtime_api_command(&owner, port);
    command
        .env("RUNTIME_API_KEY", KEY)
        .env("SANDBOX_WARM_POOL", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut command);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    wait_healthy(&http, &url).await;

    let warm = wait_for("one warm runtime", Duration::from_secs(40), || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http
                .get(format!("{url}/list"))
                .header("X-API-Key", KEY)
                .send()
                .await
                .ok()?;
            let list: Value = response.json().await.ok()?;
            let runtimes = list["runtimes"].as_array()?.clone();
            (runtimes.len() == 1 && runtimes[0]["session_id"].is_null())
                .then(|| runtimes[0]["runtime_id"].as_str().map(str::to_string))
                .flatten()
        }
    })
    .await;

    let conv = conversation();
    let (status, started) = answer(
        http.post(format!("{url}/start"))
            .header("X-API-Key", KEY)
            .json(&json!({ "session_id": conv }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(
        started["runtime_id"],
        warm.as_str(),
        "the warm one is assigned"
    );
    assert_eq!(started["session_id"], conv.as_str());

    let remote = RemoteBackend::new(&url, key()).unwrap();
    let echoed = remote
        .execute(&warm, &CommandRequest::new("echo warm"), None)
        .await
        .unwrap();
    assert!(echoed.output.contains("warm"), "{echoed:?}");
    remote
        .write_file(&warm, "/workspace/state.txt", b"kept")
        .await
        .unwrap();
    // The pool refills behind the claim.
    wait_for("the pool to refill", Duration::from_secs(40), || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http
                .get(format!("{url}/list"))
                .header("X-API-Key", KEY)
                .send()
                .await
                .ok()?;
            let list: Value = response.json().await.ok()?;
            (list["runtimes"].as_array()?.len() == 2).then_some(())
        }
    })
    .await;

    // Killed without a chance to clean up: its containers stay, and the next process with the
    // same owner adopts them instead of starting new ones.
    child.signal("KILL");
    child.wait_exit(Duration::from_secs(20));
    let port = free_port();
    let mut command = runtime_api_command(&owner, port);
    command
        .env("RUNTIME_API_KEY", KEY)
        .env("SANDBOX_WARM_POOL", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut command);
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&http, &url).await;
    let (status, adopted) = answer(
        http.get(format!("{url}/sessions/{conv}"))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{adopted}");
    assert_eq!(adopted["runtime_id"], warm.as_str());
    let remote = RemoteBackend::new(&url, key()).unwrap();
    assert_eq!(
        remote
            .read_file(&warm, "/workspace/state.txt")
            .await
            .unwrap(),
        b"kept"
    );
    let (_, list) = answer(
        http.get(format!("{url}/list"))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let runtimes = list["runtimes"].as_array().unwrap();
    assert_eq!(
        runtimes.len(),
        2,
        "the claimed one and the warm one: {list}"
    );
    assert_eq!(
        owner_containers(&owner).len(),
        2,
        "no container started anew"
    );

    child.signal("TERM");
    let status = child.wait_exit(Duration::from_secs(40));
    assert!(status.success(), "exits cleanly on SIGTERM: {status:?}");
}

#[test]
fn the_binary_needs_a_key() {
    let owner = settings().owner();
    let _cleanup = OwnerCleanup(owner.clone());
    let output = runtime_api_command(&owner, free_port()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "must fail: {stderr}");
    assert!(stderr.contains("RUNTIME_API_KEY"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(owner_containers(&owner).is_empty());
}
