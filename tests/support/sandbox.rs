//! Sandboxes on the real Docker engine for tests: a unique owner per test, so tests never see
//! each other's containers, cleanup of that owner's containers when the test ends, and the
//! binary started as a role that runs agents in them.

use std::process::Command;
use std::time::Duration;

use openhands::sandbox::SandboxSettings;

use super::fake_llm::FakeLlm;

/// The image the test command builds once (`scripts/test`): SANDBOX_TEST_IMAGE.
pub fn test_image() -> String {
    std::env::var("SANDBOX_TEST_IMAGE").unwrap_or_else(|_| "openhands-sandbox:test".into())
}

/// Settings for a test's own sandboxes: a fresh owner, the test image, no warm pool, short
/// shell timeouts.
pub fn settings() -> SandboxSettings {
    SandboxSettings {
        sandbox_image: test_image(),
        sandbox_owner: Some(format!("t{}", ulid::Ulid::new().to_string().to_lowercase())),
        sandbox_warm_pool: 0,
        sandbox_memory: 256 << 20,
        sandbox_no_output_timeout: Duration::from_secs(2),
        sandbox_command_timeout: Duration::from_secs(60),
        ..SandboxSettings::default()
    }
}

/// Removes every container of `owner` when dropped (also when the test fails).
pub struct OwnerCleanup(pub String);

impl Drop for OwnerCleanup {
    fn drop(&mut self) {
        remove_owner_containers(&self.0);
    }
}

/// `docker rm -f` of every container labelled with this owner.
pub fn remove_owner_containers(owner: &str) {
    let listed = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=openhands.owner={owner}"))
        .output();
    if let Ok(listed) = listed {
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v"])
                .args(&ids)
                .output();
        }
    }
}

/// The containers (ids) of `owner`, as the engine lists them.
pub fn owner_containers(owner: &str) -> Vec<String> {
    list_owner_containers(owner, "-aq")
}

/// The running containers (ids) of `owner`.
pub fn running_owner_containers(owner: &str) -> Vec<String> {
    list_owner_containers(owner, "-q")
}

fn list_owner_containers(owner: &str, which: &str) -> Vec<String> {
    let listed = std::process::Command::new("docker")
        .args(["ps", which, "--filter"])
        .arg(format!("label=openhands.owner={owner}"))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `openhands ROLE` on `database_url` running agents: the scripted LLM as the server's model,
/// sandboxes of `owner` from the test image without a warm pool, on the tests' Docker engine
/// (`DOCKER_HOST` when set), polling the queue every 50 ms.
pub fn agent_process(database_url: &str, role: &str, llm: &FakeLlm, owner: &str) -> Command {
    let mut command = super::openhands(database_url);
    command
        .arg(role)
        .env("LLM_MODEL", super::service::FAKE_MODEL)
        .env("LLM_API_KEY", "sk-test")
        .env("LLM_BASE_URL", llm.base_url())
        .env("SANDBOX_IMAGE", test_image())
        .env("SANDBOX_OWNER", owner)
        .env("SANDBOX_WARM_POOL", "0")
        .env("QUEUE_POLL_INTERVAL", "50ms");
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    command
}
