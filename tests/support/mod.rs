//! Test support: fresh databases of both kinds, the built binary, and waiting for facts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openhands::storage::{ConnectOptions, Db};

pub mod browser;
pub mod clients;
pub mod conversation;
pub mod fake_llm;
pub mod fake_login;
pub mod fakes;
pub mod git_server;
pub mod linear;
pub mod mcp;
pub mod mcp_tools;
pub mod outage;
pub mod sandbox;
pub mod service;
pub mod signing;
pub mod socket;

/// The tests' pools wait longer for a connection than the service's 5 s: the tests share two
/// cores with worker processes, sandboxes and browsers, and a slow moment is not a failure.
fn test_connect_options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(30),
        ..ConnectOptions::default()
    }
}

/// A database of its own for one test: an SQLite file in a temporary directory, or a new
/// database on the PostgreSQL server named by `TEST_DATABASE_URL` (dropped afterwards).
pub struct TestDb {
    pub db: Db,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_DATABASE_URL is not set: run the tests through ./scripts/test, which installs and \
             starts PostgreSQL, or set it to a postgres:// URL of a role that may create databases"
        )
    })
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        match kind {
            Kind::Sqlite => Self::sqlite().await,
            Kind::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("openhands.db").display());
        let db = Db::connect(&url, &test_connect_options()).await.unwrap();
        db.migrate().await.unwrap();
        TestDb {
            db,
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin_url = postgres_admin_url();
        let name = format!("openhands_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at TEST_DATABASE_URL ({e}); start it with ./scripts/test"
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        let url = url.to_string();
        let db = Db::connect(&url, &test_connect_options()).await.unwrap();
        db.migrate().await.unwrap();
        TestDb {
            db,
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        }
    }

    pub fn kind(&self) -> Kind {
        match self.cleanup {
            Cleanup::Sqlite(_) => Kind::Sqlite,
            Cleanup::Postgres { .. } => Kind::Postgres,
        }
    }

    /// Closes the pool and removes the database.
    pub async fn drop_database(self) {
        self.db.close().await;
        if let Cleanup::Postgres { admin_url, name } = self.cleanup
            && let Ok(admin) = sqlx::PgPool::connect(&admin_url).await
        {
            {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&admin)
                .await;
                admin.close().await;
            }
        }
    }
}

/// Defines `mod $name { sqlite, postgres }`: the async test body `$body(TestDb)` run once on
/// each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let test_db = $crate::support::TestDb::new($crate::support::Kind::Sqlite).await;
                    super::$body(&test_db).await;
                    test_db.drop_database().await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let test_db = $crate::support::TestDb::new($crate::support::Kind::Postgres).await;
                    super::$body(&test_db).await;
                    test_db.drop_database().await;
                }
            }
        )+
    };
}

/// Waits until `check` returns `Some`, polling; fails the test with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new user `login` (an administrator or not) and an API key of theirs: the user's id and
/// the key.
pub async fn user_with_key(db: &Db, login: &str, admin: bool) -> (String, String) {
    let user = db.create_user(login, None, admin).await.unwrap();
    let (key, _) = openhands::web::keys::issue_key(db, &user.id, "test", None)
        .await
        .unwrap();
    (user.id, key)
}

/// The bytes of `tests/fixtures/{path}`.
pub fn fixture(path: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `openhands` binary that cargo built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openhands"))
}

/// A command for the binary with a clean environment apart from `DATABASE_URL`.
pub fn openhands(database_url: &str) -> Command {
    let mut command = Command::new(binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        // PostgreSQL requires the key shared by every process; SQLite would make its own.
        .env(
            "OPENHANDS_SECRET_KEY",
            "the-test-processes-shared-secret-key-0123",
        )
        .env(
            "LOG_LEVEL",
            std::env::var("TEST_LOG_LEVEL").unwrap_or("info,apalis_core=warn".into()),
        )
        .stdin(Stdio::null());
    command
}

/// A child process that is killed when the test ends, however it ends.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(command: &mut Command) -> ChildGuard {
        ChildGuard(command.spawn().expect("the openhands binary starts"))
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > timeout {
                panic!("process {} did not exit within {timeout:?}", self.pid());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request to the web API of `state` in-process, with an API key: its status and JSON body
/// (`null` when the body is not JSON).
pub async fn api_call(
    state: &openhands::web::AppState,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (axum::http::StatusCode, serde_json::Value) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(
            body.map(|b| axum::body::Body::from(b.to_string()))
                .unwrap_or_default(),
        )
        .unwrap();
    let response = openhands::web::router(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}
