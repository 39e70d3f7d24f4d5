//! Sandboxes on the real Docker engine for tests: a unique owner per test, so tests never see
//! each other's containers, and cleanup of that owner's containers when the test ends.

use std::time::Duration;

use openhands::sandbox::SandboxSettings;

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
