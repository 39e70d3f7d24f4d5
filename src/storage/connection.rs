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

    pub fn is_postgres(&self) -> bool {
        DatabaseKind::of_url(self.database_url.expose()).ok() == Some(DatabaseKind::Postgres)
    }

    /// The directory of the SQLite file (`data/` for the default `sqlite://data/openhands.db`),
    /// where a single-machine service keeps what it generates; `None` on PostgreSQL and for
    /// an in-memory database.
    pub fn data_dir(&self) -> Result<Option<std::path::PathBuf>, ConfigError> {
        let url = self.database_url.expose();
        if DatabaseKind::of_url(url).ok() != Some(DatabaseKind::Sqlite) {
            return Ok(None);
        }
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
            .map_err(|e| ConfigError::new(format!("DATABASE_URL {}: {e}", redact_url(url))))?;
        let file = options.get_filename();
        if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
            return Ok(None);
        }
        Ok(Some(match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        }))
    }

    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.database_max_connections,
            ..ConnectOptions::default()
        }
    }
}
