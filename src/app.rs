//! What each subcommand does: open the database, migrate, then serve HTTP, run workers, or both.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::agent::workspace::{ReadWorkspace, RemoveSandbox};
use crate::agent::{self, AgentRuntime, RunConversation};
use crate::config::{Cli, Command, Config, QueueCommand, SandboxCommand, UserCommand};
use crate::crypto::Keyring;
use crate::intake::{self, Intake};
use crate::integrations::state::{ProviderState, Role};
use crate::live::{self, EventBus};
use crate::queue::{self, JobContext, WorkerSettings, Workers, probe::Probe};
use crate::results::{self, DeliverPost};
use crate::storage::Db;
use crate::web::login::Login;
use crate::web::{self, AppState};
use std::sync::Arc;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = cli.config;
    match cli.command {
        Command::Serve | Command::Web | Command::Worker => {
            config.keys.secret_key = crate::crypto::service_key(&config.keys, &config.database)?;
        }
        // Without the key, the doctor checks what the environment configures and says that
        // the stored settings were not read.
        Command::Doctor => {
            if let Ok(key) = crate::crypto::service_key(&config.keys, &config.database) {
                config.keys.secret_key = key;
            }
        }
        _ => {}
    }
    match cli.command {
        Command::Serve => {
            let db = open_database(&config).await?;
            let shutdown = shutdown_on_signal();
            let providers = provider_state(&config, &db, Role::Workers, &shutdown).await?;
            let listener = bind(&config).await?;
            let bus = EventBus::default();
            tokio::spawn(live::listen(db.clone(), bus.clone(), shutdown.clone()));
            let state = app_state(&config, &db, providers.clone()).with_bus(bus.clone());
            offer_first_sign_in(&db, &config).await?;
            let http = serve_http(listener, state, shutdown.clone());
            let workers = start_workers(&config, &db, &shutdown, bus, providers)?;
            let result = tokio::try_join!(http, workers);
            db.close().await;
            result.map(|_| ())
        }
        Command::Web => {
            let db = open_database(&config).await?;
            let shutdown = shutdown_on_signal();
            let providers = provider_state(&config, &db, Role::Web, &shutdown).await?;
            let listener = bind(&config).await?;
            let bus = EventBus::default();
            tokio::spawn(live::listen(db.clone(), bus.clone(), shutdown.clone()));
            let state = app_state(&config, &db, providers).with_bus(bus);
            offer_first_sign_in(&db, &config).await?;
            let result = serve_http(listener, state, shutdown).await;
            db.close().await;
            result
        }
        Command::Worker => {
            let db = open_database(&config).await?;
            let shutdown = shutdown_on_signal();
            let providers = provider_state(&config, &db, Role::Workers, &shutdown).await?;
            if let (Some(address), Some(key)) =
                (config.server.metrics_listen, &config.server.admin_api_key)
            {
                let listener = TcpListener::bind(address).await.with_context(|| {
                    format!("cannot serve metrics on {address} (METRICS_LISTEN)")
                })?;
                tokio::spawn(web::metrics::serve_process_metrics(
                    listener,
                    key.clone(),
                    shutdown.clone(),
                ));
            }
            let result =
                start_workers(&config, &db, &shutdown, EventBus::default(), providers)?.await;
            db.close().await;
            result
        }
        Command::Doctor => crate::doctor::run(&config).await,
        Command::Migrate => {
            open_database(&config).await?.close().await;
            println!(
                "migrations applied to {}",
                config.database.url_for_display()
            );
            Ok(())
        }
        Command::Queue(QueueCommand::Status) => {
            let db = open_database(&config).await?;
            print_queue_status(&db).await
        }
        Command::Queue(QueueCommand::Probe { count, timeout }) => {
            let db = open_database(&config).await?;
            probe_queue(&db, count, timeout).await
        }
        Command::Sandbox(SandboxCommand::BuildImage(args)) => {
            let docker = crate::sandbox::image::connect_docker().await?;
            let tag = args
                .tag
                .clone()
                .unwrap_or_else(|| config.sandbox.sandbox_image.clone());
            crate::sandbox::image::build_image(&docker, &tag, &args, &|line| println!("{line}"))
                .await
                .map(|_| ())
        }
        Command::Sandbox(SandboxCommand::List) => list_sandboxes(&config).await,
        Command::User(UserCommand::Create {
            login,
            admin,
            email,
        }) => {
            let db = open_database(&config).await?;
            let result = create_user(&db, &login, admin, email.as_deref()).await;
            db.close().await;
            result
        }
        Command::RuntimeApi => {
            crate::sandbox::runtime_api::serve(&config.sandbox, shutdown_on_signal()).await
        }
        Command::Bench(_) => {
            anyhow::bail!("benchmarks are run through openhands::bench::run, as the binary does")
        }
    }
}

/// Prints, while nobody has signed in yet, a one-time link that signs in as the first
/// administrator (made on the first start), as a notebook server prints its token. It goes to
/// the terminal, not the log: it is a credential.
async fn offer_first_sign_in(db: &Db, config: &Config) -> anyhow::Result<()> {
    // Unless an address was given, the link names where this process listens (`--port`).
    let public_url =
        if config.providers.public_url == crate::integrations::settings::DEFAULT_PUBLIC_URL {
            let host = match config.server.host.as_str() {
                "0.0.0.0" | "::" | "127.0.0.1" => "localhost",
                host => host,
            };
            format!("http://{host}:{}", config.server.port)
        } else {
            config.providers.public_url.clone()
        };
    if let Some(link) = crate::web::login::first_sign_in_link(db, &public_url).await? {
        let minutes = crate::web::login::FIRST_SIGN_IN_LIFETIME.as_secs() / 60;
        println!(
            "\nSign in to the dashboard as its administrator with this link (it works once, within {minutes} minutes;\na new one is printed at each start until someone has signed in):\n\n    {link}\n"
        );
        tracing::info!("a one-time sign-in link for the administrator was printed to the terminal");
    }
    Ok(())
}

/// The provider settings in force: the environment's with those stored from the dashboard,
/// followed as they change (also when another process stores them).
async fn provider_state(
    config: &Config,
    db: &Db,
    role: Role,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<ProviderState>> {
    // The one keyring of the process: what the dashboard seals, this opens.
    let keyring = app_keyring(config);
    let providers =
        Arc::new(ProviderState::load(config.providers.clone(), keyring, role, db).await?);
    tokio::spawn(providers.clone().watch(
        db.clone(),
        PROVIDER_SETTINGS_CHECK_EVERY,
        shutdown.clone(),
    ));
    Ok(providers)
}

/// How often a process looks for provider settings stored by another.
const PROVIDER_SETTINGS_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Connects and applies pending migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let shown = config.database.url_for_display();
    let db = Db::connect(
        config.database.database_url.expose(),
        &config.database.connect_options(),
    )
    .await?;
    db.migrate().await?;
    tracing::info!(database = %shown, "database ready");
    Ok(db)
}

/// The keys of the service; random ones for this process when there is no key, so the
/// keyring made once is shared by everything that seals and opens.
fn app_keyring(config: &Config) -> Keyring {
    Keyring::new(config.keys.secret_key.as_ref())
}

fn app_state(config: &Config, db: &Db, providers: Arc<ProviderState>) -> AppState {
    let keyring = providers
        .keyring()
        .cloned()
        .unwrap_or_else(|| app_keyring(config));
    if !keyring.is_persistent() {
        tracing::warn!(
            "the database is in memory and OPENHANDS_SECRET_KEY is not set: browser sessions end when this process stops, and LLM keys and secrets cannot be stored"
        );
    }
    AppState::new(db.clone())
        .with_provider_state(providers.clone())
        .with_admin_key(config.server.admin_api_key.clone())
        .with_keyring(keyring)
        .with_http(config.http.clone())
        .with_public_url(&config.providers.public_url)
        .with_server_llm(config.llm.llm_model.is_some())
        .with_mcp_from_environment(config.agent.mcp_config.is_some())
        .with_setup_checks(Arc::new(crate::doctor::ServiceChecks {
            config: config.clone(),
            providers,
        }))
        .with_login(Login::new(
            &config.login,
            &config.providers.public_url,
            &config.providers.github_api_url,
        ))
}

/// The job workers of this process, and the watch on its sandbox engine.
fn start_workers(
    config: &Config,
    db: &Db,
    shutdown: &CancellationToken,
    bus: EventBus,
    providers: Arc<ProviderState>,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + use<>> {
    let ctx = JobContext {
        db: db.clone(),
        providers,
        bus,
    };
    let agent = AgentRuntime::new(
        config.agent.clone(),
        config.llm.client()?,
        config.sandbox.clone(),
        shutdown.clone(),
    )?
    .with_claim(config.workers.job_lease)
    .with_keyring(Keyring::new(config.keys.secret_key.as_ref()));
    // One machine builds its own image; several share images built where the engines are.
    let auto_build = config
        .sandbox
        .sandbox_auto_build
        .unwrap_or(!config.database.is_postgres());
    let agent = Arc::new(if auto_build {
        agent.with_image_auto_build()
    } else {
        agent
    });
    let settings = config.workers.worker_settings();
    tokio::spawn(agent.clone().build_missing_image());
    tokio::spawn(
        agent
            .clone()
            .watch_sandbox_engine(db.clone(), settings.instance.clone()),
    );
    Ok(run_workers(
        ctx,
        Some(agent),
        settings,
        shutdown.clone().cancelled_owned(),
    ))
}

/// Runs the workers of every job kind until `shutdown` resolves: the one place where job
/// kinds meet their handlers. Without an agent runtime, run jobs are left to other workers.
pub async fn run_workers(
    ctx: JobContext,
    agent: Option<Arc<AgentRuntime>>,
    settings: WorkerSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let workers = Workers::new(ctx, settings)?;
    let workers = queue::register_job!(workers, Intake, intake::handle);
    let workers = queue::register_job!(workers, DeliverPost, results::handle);
    let workers = match agent {
        Some(agent) => {
            let workers =
                queue::register_job!(workers, RunConversation, agent::handle_run, agent.clone());
            let workers = queue::register_job!(
                workers,
                ReadWorkspace,
                agent::handle_workspace_read,
                agent.clone()
            );
            queue::register_job!(workers, RemoveSandbox, agent::handle_sandbox_removal, agent)
        }
        None => workers,
    };
    workers.run(shutdown).await
}

async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let address = format!("{}:{}", config.server.host, config.server.port);
    TcpListener::bind((config.server.host.as_str(), config.server.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {address}; free the port or choose another with --port / PORT"
            )
        })
}

async fn serve_http(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    web::legacy_ws::check_legacy_user(&state).await;
    tracing::info!(%address, "listening on http://{address}");
    // Small answers go out at once: with Nagle's algorithm they would wait for the client's
    // delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    // The peer address feeds the per-address rate limit.
    let app = web::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("HTTP server failed")?;
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// A token cancelled on the first SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Jobs per queue and status, then the failed jobs with their errors.
async fn print_queue_status(db: &Db) -> anyhow::Result<()> {
    let counts = db.job_status_counts().await?;
    if counts.is_empty() {
        println!("the queue is empty");
    }
    for row in &counts {
        println!("{:<12} {:<10} {}", row.queue, row.status, row.count);
    }
    const SHOWN_FAILURES: i64 = 20;
    for row in counts.iter().filter(|row| row.status == "Failed") {
        println!("\nfailed {} jobs (at most {SHOWN_FAILURES}):", row.queue);
        for job in db.jobs(&row.queue, Some("Failed"), SHOWN_FAILURES).await? {
            let error = job.last_result.unwrap_or_default();
            println!("  {} after {} attempt(s): {error}", job.id, job.attempts);
        }
    }
    Ok(())
}

/// Enqueues `count` probes and waits until each has completed once.
async fn probe_queue(db: &Db, count: u32, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..count {
        let probe = Probe::new(uuid::Uuid::new_v4().simple().to_string());
        queue::enqueue_now(db, &probe).await?;
        ids.push(probe.id);
    }
    println!("enqueued {count} probe job(s); waiting for workers…");
    for id in &ids {
        loop {
            if !db.probe_completions(id).await?.is_empty() {
                break;
            }
            if started.elapsed() > timeout {
                bail!(
                    "probe {id} was not completed within {}: are workers running (`openhands serve` or `openhands worker`) on this database?",
                    humantime::format_duration(timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "{count} probe job(s) completed in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

/// `openhands user create`: the user and a key for it, printed once.
async fn create_user(db: &Db, login: &str, admin: bool, email: Option<&str>) -> anyhow::Result<()> {
    let login = login.trim();
    if login.is_empty() || login.chars().count() > 100 {
        bail!("the login must be 1 to 100 characters");
    }
    let user = match db.create_user(login, email, admin).await {
        Ok(user) => user,
        Err(crate::storage::StorageError::Conflict(_)) => {
            bail!("a user with the login `{login}` exists already")
        }
        Err(error) => return Err(error.into()),
    };
    let (key, _) =
        crate::web::keys::issue_key(db, &user.id, "created with `openhands user create`", None)
            .await
            .map_err(|e| anyhow::anyhow!("cannot make the API key: {e}"))?;
    println!(
        "created {}user `{}` ({})",
        if admin { "administrator " } else { "" },
        user.login,
        user.id
    );
    println!("API key (shown once; send it as `Authorization: Bearer KEY`):\n{key}");
    Ok(())
}

/// `openhands sandbox list`: this owner's sandboxes on the Docker engine.
async fn list_sandboxes(config: &Config) -> anyhow::Result<()> {
    let backend = crate::sandbox::docker::DockerBackend::connect(&config.sandbox).await?;
    let sandboxes = crate::sandbox::SandboxBackend::list(backend.as_ref()).await?;
    println!("owner {}: {} sandbox(es)", backend.owner(), sandboxes.len());
    for sandbox in sandboxes {
        println!(
            "{}\t{:?}\t{}",
            sandbox.id,
            sandbox.status,
            sandbox.conversation_id.as_deref().unwrap_or("(warm)")
        );
    }
    Ok(())
}
