//! Where the HTTP surface listens, and the administrators' key.

use clap::Args;

use crate::setting::{ConfigError, Secret};

#[derive(Debug, Clone, Args)]
pub struct ServerSettings {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1", global = true)]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, short, env = "PORT", default_value_t = 3000, global = true)]
    pub port: u16,
    /// A bootstrap bearer key that acts as the administrator `admin`; unset, only the keys of
    /// users made administrators reach the admin API.
    #[arg(
        long,
        env = "OPENHANDS_ADMIN_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub admin_api_key: Option<Secret>,
    /// Where a `worker` process serves its own Prometheus metrics (sandbox start and LLM call
    /// timings), e.g. `127.0.0.1:9464`, to the OPENHANDS_ADMIN_API_KEY only; unset, it serves
    /// none (the web processes' `/metrics` has the rest).
    #[arg(long, env = "METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl ServerSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.metrics_listen.is_some() && self.admin_api_key.is_none() {
            return Err(ConfigError::new(
                "METRICS_LISTEN needs OPENHANDS_ADMIN_API_KEY: a worker serves its metrics to that key only",
            ));
        }
        if self.host.trim().is_empty() {
            return Err(ConfigError::new(
                "HOST must not be empty (e.g. 127.0.0.1, or 0.0.0.0 for every interface)",
            ));
        }
        Ok(())
    }
}
