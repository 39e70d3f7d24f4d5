//! Which database the service uses, and how many connections it keeps.

use clap::Args;

use super::{ConnectOptions, DatabaseKind, redact_url};
use crate::setting::{ConfigError, Secret};

#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// Database: `sqlite://PATH` (single node, the default) or `postgres://…` (several processes).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/openhands.db",
        global = true,
        hide_env_values = true,
        hide_default_value = false
    )]
    pub database_url: Secret,
    /// Connections in the PostgreSQL pool (SQLite uses one: it writes one transaction at a time).
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,
}

impl DatabaseSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = DatabaseKind::of_url(self.database_url.expose()) {
            return Err(ConfigError::new(e.to_string()));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::new(
                "DATABASE_MAX_CONNECTIONS must be at least 1",
            ));
        }
        Ok(())
    }

    /// The database URL with its password hidden, for logs.
    pub fn url_for_display(&self) -> String {
        redact_url(self.database_url.expose())
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.database_max_connections,
            ..ConnectOptions::default()
        }
    }
}
