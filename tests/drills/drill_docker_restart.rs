//! Drill: the Docker engine restarts under a worker process (the binary) while a command runs
//! in a conversation's sandbox. The command is reported lost to the model, the conversation
//! goes on in a sandbox that answers and finishes, and the warm pool refills with live
//! sandboxes. This binary holds only this test, because it restarts the engine every sandbox
//! test uses.

use crate::support;
use crate::support::outage;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::conversation::{ask, events_of};
use support::fake_llm::{FakeLlm, Turn};
use support::sandbox::{OwnerCleanup, agent_process, running_owner_containers};
use support::{ChildGuard, TestDb, wait_for};

/// Whether the engine answers (`docker info`).
fn engine_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_until_engine_answers(timeout: Duration) {
    let started = Instant::now();
    while !engine_answers() {
        assert!(
            started.elapsed() < timeout,
            "the Docker engine did not answer within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn systemd_runs_docker() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
        && Command::new("systemctl")
            .args(["is-active", "--quiet", "docker"])
            .status()
            .is_ok_and(|s| s.success())
}

/// Starts `dockerd` the way `scripts/lib/docker.sh` does: in a session of its own, logging to
/// the same file.
fn start_dockerd() {
    let log = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
        .join(".cache/openhands/dockerd.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    // `setsid --fork` returns at once, leaving dockerd to run on its own.
    let status = Command::new("setsid")
        .args(["--fork", "dockerd"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .expect("setsid dockerd");
    assert!(status.success(), "setsid --fork dockerd: {status}");
}

/// Restarts the Docker engine: through systemd where it runs the engine, else by stopping the
/// `dockerd` of /var/run/docker.pid and starting it again.
fn restart_engine() {
    if systemd_runs_docker() {
        let status = Command::new("systemctl")
            .args(["restart", "docker"])
            .status()
            .unwrap();
        assert!(status.success(), "systemctl restart docker");
    } else {
        let pid: i32 = std::fs::read_to_string("/var/run/docker.pid")
            .expect("dockerd's pid file /var/run/docker.pid")
            .trim()
            .parse()
            .unwrap();
        assert!(pid > 1, "a dockerd pid of {pid}");
        // SAFETY: kill takes plain integers and has no memory effects.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let started = Instant::now();
        // SAFETY: as above; signal 0 only asks whether the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "dockerd did not stop within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        start_dockerd();
    }
    wait_until_engine_answers(Duration::from_secs(60));
}

/// Starts the engine again however the test ends.
struct EngineBack;

impl Drop for EngineBack {
    fn drop(&mut self) {
        if !engine_answers() {
            if systemd_runs_docker() {
                let _ = Command::new("systemctl").args(["start", "docker"]).status();
            } else {
                start_dockerd();
            }
            wait_until_engine_answers(Duration::from_secs(60));
        }
    }
}

fn worker(database_url: &str, fake: &FakeLlm, owner: &str) -> ChildGuard {
    ChildGuard::spawn(
        agent_process(database_url, "worker", fake, owner)
            .env("SANDBOX_WARM_POOL", "2")
            .env("JOB_LEASE", "3s"),
    )
}

fn bash(command: &str) -> Turn {
    Turn::call("execute_bash", json!({"command": command}))
}

/// The observation answering the `run` action of `command`.
fn observation_of<'a>(events: &'a [Value], command: &str) -> &'a Value {
    let action = events
        .iter()
        .find(|e| e["action"] == "run" && e["args"]["command"] == command)
        .unwrap_or_else(|| panic!("no action {command}: {events:#?}"));
    events
        .iter()
        .find(|e| e["cause"] == action["id"])
        .unwrap_or_else(|| panic!("no observation of {command}: {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_restarting_loses_the_running_command_and_the_run_goes_on() {
    let _outage = outage::exclusive().await;
    let _engine_back = EngineBack;
    let owner = format!("drill-engine-{}", std::process::id());
    let _cleanup = OwnerCleanup(owner.clone());
    let fake = FakeLlm::start(vec![
        bash("sleep 60"),
        bash("echo after the restart"),
        Turn::call("finish", json!({"message": "done after the restart"})),
    ])
    .await;
    let t = TestDb::postgres().await;
    let worker = worker(&t.url, &fake, &owner);
    let id = ask(&t.db, "engine restart", "wait a minute").await;

    wait_for(
        "the long command to start",
        Duration::from_secs(90),
        || async {
            events_of(&t.db, &id)
                .await
                .iter()
                .any(|e| e["action"] == "run" && e["args"]["command"] == "sleep 60")
                .then_some(())
        },
    )
    .await;
    // The conversation's sandbox and two warm ones.
    wait_for("the warm pool to fill", Duration::from_secs(60), || async {
        (running_owner_containers(&owner).len() == 3).then_some(())
    })
    .await;
    let before = t.db.conversation_sandbox(&id).await.unwrap();

    restart_engine();

    let state = wait_for(
        "the run to end after the restart",
        Duration::from_secs(120),
        || async {
            let events = events_of(&t.db, &id).await;
            let last = events
                .iter()
                .rev()
                .find(|e| e["observation"] == "agent_state_changed")?;
            let state = last["extras"]["agent_state"].as_str()?.to_string();
            (state == "finished" || state == "error").then_some(state)
        },
    )
    .await;
    let events = events_of(&t.db, &id).await;
    assert_eq!(state, "finished", "the run went on: {events:#?}");

    // The interrupted command is reported lost, not run again.
    let lost = observation_of(&events, "sleep 60");
    let lost_text = lost["content"].as_str().unwrap_or_default();
    assert!(
        lost_text.contains("The sandbox stopped while this ran"),
        "{lost:#?}"
    );
    let runs = events
        .iter()
        .filter(|e| e["action"] == "run" && e["args"]["command"] == "sleep 60")
        .count();
    assert_eq!(runs, 1);
    // The next command ran and answered.
    let after = observation_of(&events, "echo after the restart");
    assert!(
        after["content"]
            .as_str()
            .unwrap_or_default()
            .contains("after the restart"),
        "{after:#?}"
    );
    // The conversation's sandbox was started again (its files kept) or replaced (which the
    // log says); either way the engine runs it.
    let now = t.db.conversation_sandbox(&id).await.unwrap().unwrap();
    let replaced = events.iter().any(|e| {
        e["content"]
            .as_str()
            .is_some_and(|c| c.contains("was lost and a new one was started"))
    });
    assert_eq!(
        replaced,
        before.as_deref() != Some(now.as_str()),
        "{events:#?}"
    );

    // The pool refills with live sandboxes: the conversation's and two warm ones run.
    wait_for(
        "the warm pool to refill",
        Duration::from_secs(60),
        || async { (running_owner_containers(&owner).len() == 3).then_some(()) },
    )
    .await;
    drop(worker);
    t.drop_database().await;
}
