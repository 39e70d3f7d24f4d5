//! Storage: the only place that writes SQL.
//!
//! One body of queries serves both backends: every statement is written once with `$N`
//! placeholders (which SQLite understands too) and run through [`on_backend!`], which expands
//! it for the PostgreSQL and the SQLite connection alike. Only the DDL in `migrations/` is
//! written per backend.

mod channels;
mod checks;
pub mod connection;
mod conversations;
mod deliveries;
pub mod device_grants;
mod jobs;
mod keys;
mod link_tokens;
mod links;
pub mod mcp;
mod metrics;
mod outbox;
mod probes;
mod provider_settings;
mod runs;
mod settings;
mod sign_in;
pub mod start_tasks;
mod users;
mod workspace;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

pub use channels::ChannelRepository;
pub use checks::DependencyCheck;
pub use conversations::{
    Conversation, ConversationFilter, Event, EventRange, NewConversation, NewEvent,
};
pub use deliveries::{Delivery, DeliveryStatus, NewDelivery};
pub use jobs::{JobRecord, JobStatusCount};
pub use keys::ApiKey;
pub use link_tokens::{LinkToken, NewLinkToken};
pub use links::UserLink;
pub use metrics::{LlmTotals, StatusCount};
pub use outbox::{NewOutboxPost, OutboxPost};
pub use probes::ProbeCompletion;
pub use runs::{ConversationStats, UserLimits};
pub use settings::{SecretInfo, UserLlm};
pub use users::User;
pub use workspace::WorkspaceRead;

/// How long a statement may wait for SQLite's one connection before it fails.
const SQLITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one expression against whichever backend `$value` holds, binding the connection,
/// pool or transaction to `$conn`. The expression is written once and compiled for both.
macro_rules! on_backend {
    ($value:expr, $conn:ident => $body:expr) => {
        match $value {
            $crate::storage::Backend::Postgres($conn) => $body,
            $crate::storage::Backend::Sqlite($conn) => $body,
        }
    };
}
pub(crate) use on_backend;

/// A value held for one of the two supported databases.
#[derive(Debug)]
pub enum Backend<P, S> {
    Postgres(P),
    Sqlite(S),
}

impl<P: Clone, S: Clone> Clone for Backend<P, S> {
    fn clone(&self) -> Self {
        match self {
            Backend::Postgres(p) => Backend::Postgres(p.clone()),
            Backend::Sqlite(s) => Backend::Sqlite(s.clone()),
        }
    }
}

/// The connection pool of the service's database.
pub type Db = Backend<PgPool, SqlitePool>;

/// An open transaction; dropped without [`Tx::commit`], it rolls back.
pub type Tx = Backend<Transaction<'static, Postgres>, Transaction<'static, Sqlite>>;

/// Migrations of the service's own tables, kept in a history table of their own so that they
/// never mix with the job queue's migrations.
const MIGRATIONS_TABLE: &str = "openhands_migrations";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("DATABASE_URL is not valid: {0}")]
    InvalidUrl(String),
    #[error(
        "cannot open the database at {url}: {cause}; check DATABASE_URL and that the database server is running"
    )]
    Connect { url: String, cause: String },
    #[error(
        "cannot create the directory {path} for the SQLite database: {cause}; check DATABASE_URL"
    )]
    CreateDir { path: String, cause: std::io::Error },
    #[error("database migration failed (the database was left as it was): {0}")]
    Migrate(#[from] MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// How to open the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Which database a `DATABASE_URL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

impl DatabaseKind {
    pub fn of_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
        match scheme {
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "sqlite" => Ok(Self::Sqlite),
            _ => Err(StorageError::InvalidUrl(format!(
                "`{}` is neither a postgres:// nor a sqlite: URL (e.g. postgres://user:password@localhost/openhands or sqlite://data/openhands.db)",
                redact_url(url)
            ))),
        }
    }
}

/// The URL with any password replaced by `***`, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot carry one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL we can parse: show only the scheme, in case the rest holds a secret.
        Err(_) => match url.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:…"),
            None => "(unparseable)".to_string(),
        },
    }
}

/// `value` fit for a text column: PostgreSQL rejects NUL characters, which JSON payloads may
/// carry (`\u0000`), so they are dropped.
pub(crate) fn text(value: &str) -> String {
    value.replace('\0', "")
}

/// Milliseconds since the Unix epoch: the one time format of every table.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Opens the database named by `url`, creating an SQLite file (and its directory) when
    /// missing. Fails fast when the server cannot be reached.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Db> {
        let shown = redact_url(url);
        let connect_error = |cause: sqlx::Error| StorageError::Connect {
            url: shown.clone(),
            cause: cause.to_string(),
        };
        match DatabaseKind::of_url(url)? {
            DatabaseKind::Postgres => {
                let connect = PgConnectOptions::from_str(url)
                    .map_err(|e| StorageError::InvalidUrl(format!("{shown}: {e}")))?;
                // One connection first: a pool that cannot connect only says that it timed out,
                // while a single attempt says why (refused, unknown host, bad password, …).
                check_connect::<sqlx::PgConnection>(&connect, options.connect_timeout, &shown)
                    .await?;
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.connect_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                Ok(Db::Postgres(pool))
            }
            DatabaseKind::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StorageError::InvalidUrl(format!("{shown}: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a commit is on disk before it returns, so an accepted job survives
                    // a power cut, not only a process crash.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                if let Some(dir) = Path::new(connect.get_filename()).parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|cause| StorageError::CreateDir {
                        path: dir.display().to_string(),
                        cause,
                    })?;
                }
                check_connect::<sqlx::SqliteConnection>(&connect, options.connect_timeout, &shown)
                    .await?;
                // SQLite runs one write at a time. With one connection, writers queue fairly in
                // the pool instead of sleeping and retrying in SQLite's busy handler, which
                // under load costs far more than the wait itself. That queue is the wait for
                // the disk, which can take seconds on a busy machine: it gets its own, longer
                // limit than connecting does.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(options.connect_timeout.max(SQLITE_QUEUE_TIMEOUT))
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                Ok(Db::Sqlite(pool))
            }
        }
    }

    pub fn kind(&self) -> DatabaseKind {
        match self {
            Db::Postgres(_) => DatabaseKind::Postgres,
            Db::Sqlite(_) => DatabaseKind::Sqlite,
        }
    }

    /// Applies every pending migration: the service's tables, then the job queue's.
    /// Each migration runs in its own transaction, so one that fails changes nothing.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Postgres(_) => {
                self.migrate_with(&own_migrator(sqlx::migrate!("migrations/postgres")))
                    .await?;
                self.migrate_with(&apalis_postgres::PostgresStorage::migrations())
                    .await?;
                // The queue's schema notifies listeners on every inserted job. A NOTIFY takes a
                // lock that serializes all committing transactions, which halves enqueue
                // throughput; workers poll instead (QUEUE_POLL_INTERVAL).
                on_backend!(self, pool => sqlx::query(
                    "DROP TRIGGER IF EXISTS notify_workers ON apalis.jobs"
                )
                .execute(pool)
                .await?
                .rows_affected());
            }
            Db::Sqlite(_) => {
                self.migrate_with(&own_migrator(sqlx::migrate!("migrations/sqlite")))
                    .await?;
                self.migrate_with(&apalis_sqlite::SqliteStorage::migrations())
                    .await?;
            }
        }
        Ok(())
    }

    /// Applies the migrations of `migrator` (which must record its history in a table of its own).
    ///
    /// On PostgreSQL they run on a connection of their own that is closed afterwards: the
    /// migrator holds a session lock, which a failed run would otherwise leave behind in the pool.
    /// SQLite has no such lock, and closing the pool's one connection would drop an in-memory
    /// database with its new tables.
    pub async fn migrate_with(&self, migrator: &Migrator) -> Result<()> {
        match self {
            Db::Postgres(pool) => {
                let mut connection = pool.acquire().await?.detach();
                let result = migrator.run(&mut connection).await;
                // Closing ends the session and with it any lock the migrator still holds.
                let _ = sqlx::Connection::close(connection).await;
                result?;
            }
            Db::Sqlite(pool) => {
                let mut connection = pool.acquire().await?;
                migrator.run(&mut *connection).await?;
            }
        }
        Ok(())
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        on_backend!(self, pool => sqlx::query("SELECT 1").execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
        })
    }

    pub async fn close(&self) {
        on_backend!(self, pool => pool.close().await)
    }
}

/// Opens and closes one connection, to report why the database cannot be reached.
async fn check_connect<C: sqlx::Connection>(
    options: &C::Options,
    timeout: Duration,
    shown_url: &str,
) -> Result<()> {
    let error = |cause: String| StorageError::Connect {
        url: shown_url.to_string(),
        cause,
    };
    match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(cause)) => Err(error(cause.to_string())),
        Err(_) => Err(error(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))),
    }
}

/// Our migrator with its own history table (`sqlx::migrate!` defaults to the table that the
/// queue's migrations use).
pub fn own_migrator(mut migrator: Migrator) -> Migrator {
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        on_backend!(self, tx => tx.commit().await?);
        Ok(())
    }
}

/// Turns a unique-constraint violation into [`StorageError::Conflict`].
fn conflict_on_unique(error: sqlx::Error, what: &str) -> StorageError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StorageError::Conflict(format!("{what} already exists"))
        }
        _ => StorageError::Query(error),
    }
}
