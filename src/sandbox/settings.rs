//! Sandbox settings: one clap group, flattened into the service's configuration.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::setting::{ConfigError, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// Hardened containers on the Docker engine of this machine (DOCKER_HOST honoured).
    Docker,
    /// Sandboxes on another machine, through its `openhands runtime-api` (RUNTIME_API_URL).
    Remote,
    /// UNSAFE, development only: commands run on this machine, in a directory, without isolation.
    Process,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkMode {
    /// Docker's default bridge: git clone and package installs work.
    Bridge,
    /// No network at all.
    None,
}

#[derive(Debug, Clone, Args)]
pub struct SandboxSettings {
    /// Where sandboxes run: `docker`, `remote` (RUNTIME_API_URL) or `process` (unsafe, needs
    /// SANDBOX_ALLOW_UNSAFE_PROCESS=true).
    #[arg(
        long,
        global = true,
        env = "SANDBOX_BACKEND",
        value_enum,
        default_value = "docker"
    )]
    pub sandbox_backend: BackendKind,
    /// The sandbox image (`openhands sandbox build-image` builds it).
    #[arg(
        long,
        global = true,
        env = "SANDBOX_IMAGE",
        default_value = "openhands-sandbox:latest"
    )]
    pub sandbox_image: String,
    /// Whether a worker builds the sandbox image when it is missing from the Docker engine
    /// (`true` or `false`). Default: on with SQLite (one machine), off with PostgreSQL, where
    /// images are built where the engines are.
    #[arg(long, global = true, env = "SANDBOX_AUTO_BUILD")]
    pub sandbox_auto_build: Option<bool>,
    /// The image a missing sandbox image is built on (as `build-image --base`) instead of a
    /// debootstrapped Debian: a Debian or Ubuntu image, pulled when missing.
    #[arg(long, global = true, env = "SANDBOX_BUILD_BASE")]
    pub sandbox_build_base: Option<String>,
    /// Started sandboxes kept ready per Docker host, so a run claims one instead of starting one.
    #[arg(long, global = true, env = "SANDBOX_WARM_POOL", default_value_t = 2)]
    pub sandbox_warm_pool: usize,
    /// Name of this process's sandboxes (a label on each container): a restarted process with
    /// the same name re-adopts them; other names' containers are never touched. Default: the
    /// host name.
    #[arg(long, global = true, env = "SANDBOX_OWNER")]
    pub sandbox_owner: Option<String>,
    /// Container network: `bridge` or `none`.
    #[arg(
        long,
        global = true,
        env = "SANDBOX_NETWORK",
        value_enum,
        default_value = "bridge"
    )]
    pub sandbox_network: NetworkMode,
    /// Memory limit per sandbox, in bytes or with a unit (512m, 2g); swap is not allowed on top.
    #[arg(long, global = true, env = "SANDBOX_MEMORY", default_value = "2g", value_parser = parse_bytes)]
    pub sandbox_memory: u64,
    /// CPUs per sandbox (fractions allowed).
    #[arg(long, global = true, env = "SANDBOX_CPUS", default_value_t = 1.0)]
    pub sandbox_cpus: f64,
    /// Most processes (and threads) a sandbox may hold at once.
    #[arg(long, global = true, env = "SANDBOX_PIDS", default_value_t = 512)]
    pub sandbox_pids: i64,
    /// Idle time after which a conversation's sandbox is paused.
    #[arg(long, global = true, env = "SANDBOX_PAUSE_AFTER", default_value = "10m", value_parser = humantime::parse_duration)]
    pub sandbox_pause_after: Duration,
    /// Idle time after which a conversation's sandbox is removed.
    #[arg(long, global = true, env = "SANDBOX_REMOVE_AFTER", default_value = "1h", value_parser = humantime::parse_duration)]
    pub sandbox_remove_after: Duration,
    /// A command that prints nothing new for this long returns with "still running".
    #[arg(long, global = true, env = "SANDBOX_NO_OUTPUT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub sandbox_no_output_timeout: Duration,
    /// The longest one shell call may wait before its command is interrupted.
    #[arg(long, global = true, env = "SANDBOX_COMMAND_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub sandbox_command_timeout: Duration,
    /// The Runtime API that holds the sandboxes, for SANDBOX_BACKEND=remote.
    #[arg(long, global = true, env = "RUNTIME_API_URL")]
    pub runtime_api_url: Option<String>,
    /// The key sent as X-API-Key to RUNTIME_API_URL, and the key `openhands runtime-api` accepts.
    #[arg(long, global = true, env = "RUNTIME_API_KEY", hide_env_values = true)]
    pub runtime_api_key: Option<Secret>,
    /// Address `openhands runtime-api` listens on.
    #[arg(
        long,
        global = true,
        env = "RUNTIME_API_LISTEN",
        default_value = "127.0.0.1:3030"
    )]
    pub runtime_api_listen: String,
    /// Directory holding the workspaces of the process backend.
    #[arg(
        long,
        global = true,
        env = "SANDBOX_PROCESS_ROOT",
        default_value = "data/workspaces"
    )]
    pub sandbox_process_root: PathBuf,
    /// Explicit opt-in to SANDBOX_BACKEND=process, which gives the agent this machine's shell.
    #[arg(
        long,
        global = true,
        env = "SANDBOX_ALLOW_UNSAFE_PROCESS",
        default_value_t = false
    )]
    pub sandbox_allow_unsafe_process: bool,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            sandbox_backend: BackendKind::Docker,
            sandbox_image: "openhands-sandbox:latest".into(),
            sandbox_auto_build: None,
            sandbox_build_base: None,
            sandbox_warm_pool: 2,
            sandbox_owner: None,
            sandbox_network: NetworkMode::Bridge,
            sandbox_memory: 2 << 30,
            sandbox_cpus: 1.0,
            sandbox_pids: 512,
            sandbox_pause_after: Duration::from_secs(600),
            sandbox_remove_after: Duration::from_secs(3600),
            sandbox_no_output_timeout: Duration::from_secs(10),
            sandbox_command_timeout: Duration::from_secs(600),
            runtime_api_url: None,
            runtime_api_key: None,
            runtime_api_listen: "127.0.0.1:3030".into(),
            sandbox_process_root: PathBuf::from("data/workspaces"),
            sandbox_allow_unsafe_process: false,
        }
    }
}

/// The smallest memory limit Docker accepts is 6 MB; a shell with git needs more.
const MIN_MEMORY: u64 = 32 << 20;

impl SandboxSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::new(msg));
        if self.sandbox_image.trim().is_empty() {
            return bad("SANDBOX_IMAGE must not be empty".into());
        }
        if let Some(owner) = &self.sandbox_owner
            && !valid_owner(owner)
        {
            return bad(format!(
                "SANDBOX_OWNER `{owner}` may hold only letters, digits, `-` and `_` (at most 40)"
            ));
        }
        if self.sandbox_memory < MIN_MEMORY {
            return bad(format!(
                "SANDBOX_MEMORY must be at least 32m, got {} bytes",
                self.sandbox_memory
            ));
        }
        if !(self.sandbox_cpus.is_finite() && self.sandbox_cpus >= 0.01) {
            return bad(format!(
                "SANDBOX_CPUS must be a number of CPUs of at least 0.01, got {}",
                self.sandbox_cpus
            ));
        }
        if self.sandbox_pids < 16 {
            return bad(format!(
                "SANDBOX_PIDS must be at least 16, got {}",
                self.sandbox_pids
            ));
        }
        if self.sandbox_pause_after > self.sandbox_remove_after {
            return bad("SANDBOX_PAUSE_AFTER must not be longer than SANDBOX_REMOVE_AFTER".into());
        }
        if self.sandbox_no_output_timeout.is_zero() || self.sandbox_command_timeout.is_zero() {
            return bad(
                "SANDBOX_NO_OUTPUT_TIMEOUT and SANDBOX_COMMAND_TIMEOUT must be greater than zero"
                    .into(),
            );
        }
        if let Some(url) = &self.runtime_api_url {
            crate::setting::check_url("RUNTIME_API_URL", url)?;
        }
        match self.sandbox_backend {
            BackendKind::Remote if self.runtime_api_url.is_none() => {
                return bad("SANDBOX_BACKEND=remote needs RUNTIME_API_URL".into());
            }
            BackendKind::Remote if self.runtime_api_key.is_none() => {
                return bad("SANDBOX_BACKEND=remote needs RUNTIME_API_KEY".into());
            }
            BackendKind::Process if !self.sandbox_allow_unsafe_process => {
                return bad("SANDBOX_BACKEND=process runs the agent's commands on this machine without any isolation; set SANDBOX_ALLOW_UNSAFE_PROCESS=true to accept that (development only)".into());
            }
            _ => {}
        }
        Ok(())
    }

    /// The owner label of this process's containers.
    pub fn owner(&self) -> String {
        if let Some(owner) = &self.sandbox_owner {
            return owner.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "openhands".into());
        let cleaned: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        cleaned
    }
}

pub fn valid_owner(owner: &str) -> bool {
    !owner.is_empty()
        && owner.len() <= 40
        && owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `512m`, `2g`, `1048576`, `64k` → bytes.
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let v = value.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (digits, multiplier) = match v.chars().last() {
        Some('k') => (&v[..v.len() - 1], 1u64 << 10),
        Some('m') => (&v[..v.len() - 1], 1 << 20),
        Some('g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("`{value}` is not a size (e.g. 512m, 2g or a number of bytes)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("64kb"), Ok(64 << 10));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn process_backend_needs_opt_in() {
        let settings = SandboxSettings {
            sandbox_backend: BackendKind::Process,
            ..SandboxSettings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("SANDBOX_ALLOW_UNSAFE_PROCESS"), "{error}");
    }

    #[test]
    fn owner_names() {
        assert!(valid_owner("worker-1"));
        assert!(!valid_owner("a b"));
        assert!(!valid_owner(""));
    }
}
