//! The service assembled inside the test process, the way the binary assembles its roles: the
//! web router (`AppState` + `router`), optionally served on a loopback port and fed by the
//! NOTIFY listener, and the job workers (`openhands::app::run_workers` with a
//! `JobContext { db, providers, bus }` and, for run jobs, an agent runtime on real Docker
//! sandboxes driven by the scripted LLM). Provider settings are the command line's flags,
//! pointed at the provider fakes when the test asks for them. Everything started stops when
//! the [`Service`] is dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use clap::Parser;
use openhands::agent::AgentRuntime;
use openhands::agent::llm::LlmClient;
use openhands::agent::settings::AgentSettings;
use openhands::config::Cli;
use openhands::crypto::Keyring;
use openhands::integrations::state::{ProviderState, Role};
use openhands::integrations::{Providers, Webhooks};
use openhands::live::{self, EventBus};
use openhands::queue::{JobContext, WorkerSettings};
use openhands::sandbox::SandboxSettings;
use openhands::sandbox::docker::DockerBackend;
use openhands::storage::Db;
use openhands::web::{AppState, router};
use tokio_util::sync::CancellationToken;

use super::fake_llm::{FakeLlm, Turn};
use super::fakes::{self, FakeProviders};
use super::sandbox::OwnerCleanup;

/// The model name the scripted LLM is reached under unless a test names another.
pub const FAKE_MODEL: &str = "openai/gpt-fake";

/// Workers that poll and retry quickly, four jobs of a kind at once.
pub fn fast_workers() -> WorkerSettings {
    WorkerSettings {
        concurrency: 4,
        poll_interval: Duration::from_millis(20),
        retry_base_delay: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(200),
        ..WorkerSettings::default()
    }
}

type Customize<T> = Box<dyn FnOnce(T) -> T + Send>;

/// The agent runtime the workers get.
struct AgentSpec {
    /// The scripted model's turns; `None`: the server has no model (users bring their own).
    script: Option<Vec<Turn>>,
    model: String,
    llm: Option<Customize<LlmClient>>,
    settings: AgentSettings,
    sandbox: Option<SandboxSettings>,
    keyring: Option<Keyring>,
    /// Connect the sandboxes on first need, building a missing image, as a worker does.
    image_auto_build: bool,
}

/// What to start; see [`Service::builder`].
pub struct ServiceBuilder {
    db: Db,
    fakes: bool,
    settings: Vec<(String, String)>,
    providers: Option<Providers>,
    admin_key: Option<String>,
    state: Option<Customize<AppState>>,
    web: bool,
    serve: bool,
    live: bool,
    workers: Option<WorkerSettings>,
    agent: Option<AgentSpec>,
}

/// The started roles; dropping it stops them.
pub struct Service {
    pub db: Db,
    /// The provider settings and clients in force, shared by the web role and the workers.
    pub providers: Arc<ProviderState>,
    /// Shared by the web role and the workers, as in `openhands serve`.
    pub bus: EventBus,
    state: Option<AppState>,
    app: Option<Router>,
    address: Option<String>,
    fakes: Option<FakeProviders>,
    llm: Option<FakeLlm>,
    owner: Option<String>,
    stop: CancellationToken,
    _cleanup: Option<OwnerCleanup>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Service {
    /// A builder over `db`; nothing runs until [`ServiceBuilder::start`].
    pub fn builder(db: &Db) -> ServiceBuilder {
        ServiceBuilder {
            db: db.clone(),
            fakes: false,
            settings: Vec::new(),
            providers: None,
            admin_key: None,
            state: None,
            web: false,
            serve: false,
            live: false,
            workers: None,
            agent: None,
        }
    }

    /// The web role's state.
    pub fn state(&self) -> &AppState {
        self.state
            .as_ref()
            .expect("the web role was not started: call .web() or .serve()")
    }

    /// The web role's router (a cheap clone).
    pub fn app(&self) -> Router {
        self.app
            .clone()
            .expect("the web role was not started: call .web() or .serve()")
    }

    /// `host:port` where [`ServiceBuilder::serve`] serves the router.
    pub fn address(&self) -> &str {
        self.address
            .as_deref()
            .expect("the router is not served: call .serve()")
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// The provider fakes started by [`ServiceBuilder::fakes`].
    pub fn fakes(&self) -> &FakeProviders {
        self.fakes
            .as_ref()
            .expect("no provider fakes: call .fakes()")
    }

    /// The scripted LLM of [`ServiceBuilder::agent`].
    pub fn llm(&self) -> &FakeLlm {
        self.llm.as_ref().expect("no scripted LLM: call .agent()")
    }

    /// The owner label of this service's sandboxes.
    pub fn owner(&self) -> &str {
        self.owner
            .as_deref()
            .expect("no agent runtime: call .agent()")
    }

    /// Stops every role now (as dropping does).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl ServiceBuilder {
    /// Starts the provider fakes and points every provider's API at them: the GitHub App,
    /// GitLab's token, Slack's workspace and bot, Jira's site and account, Linear's
    /// organization and key. Which providers accept webhooks is up to their secrets
    /// ([`Self::set`]).
    pub fn fakes(mut self) -> Self {
        self.fakes = true;
        self
    }

    /// Sets a command-line setting (`--github-webhook-secret`, `--public-url`, …), replacing
    /// an earlier value of the same flag, the fakes' included.
    pub fn set(mut self, flag: &str, value: impl Into<String>) -> Self {
        self.settings.retain(|(f, _)| f != flag);
        self.settings.push((flag.to_string(), value.into()));
        self
    }

    /// Leaves a setting out, one of the fakes' included.
    pub fn unset(mut self, flag: &str) -> Self {
        self.settings.retain(|(f, _)| f != flag);
        self.settings.push((flag.to_string(), String::new()));
        self
    }

    /// The workers' provider clients, instead of those the settings make.
    pub fn providers(mut self, providers: Providers) -> Self {
        self.providers = Some(providers);
        self
    }

    /// Enables the admin API with this bearer token.
    pub fn admin_key(mut self, key: &str) -> Self {
        self.admin_key = Some(key.to_string());
        self
    }

    /// Changes the web role's state before the router is made (HTTP settings, login, …).
    pub fn state(mut self, change: impl FnOnce(AppState) -> AppState + Send + 'static) -> Self {
        self.state = Some(Box::new(change));
        self
    }

    /// The web role: a router to call in-process ([`Service::app`]).
    pub fn web(mut self) -> Self {
        self.web = true;
        self
    }

    /// The web role served on a free loopback port ([`Service::address`]).
    pub fn serve(mut self) -> Self {
        self.web = true;
        self.serve = true;
        self
    }

    /// The NOTIFY listener that feeds the bus with events other processes commit, as a web
    /// process runs it.
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// The workers, with [`fast_workers`] settings unless [`Self::worker_settings`] says
    /// otherwise.
    pub fn workers(mut self) -> Self {
        self.workers.get_or_insert_with(fast_workers);
        self
    }

    /// The workers, with these settings.
    pub fn worker_settings(mut self, settings: WorkerSettings) -> Self {
        self.workers = Some(settings);
        self
    }

    fn agent_spec(&mut self) -> &mut AgentSpec {
        self.workers.get_or_insert_with(fast_workers);
        self.agent.get_or_insert_with(|| AgentSpec {
            script: None,
            model: FAKE_MODEL.to_string(),
            llm: None,
            settings: AgentSettings::default(),
            sandbox: None,
            keyring: None,
            image_auto_build: false,
        })
    }

    /// Sandboxes connected on first need, as `openhands worker` does, the missing image built
    /// first (SANDBOX_AUTO_BUILD), with the engine's state recorded as instance `worker-1`.
    pub fn image_auto_build(mut self) -> Self {
        self.agent_spec().image_auto_build = true;
        self
    }

    /// Workers that run agents: a runtime on Docker sandboxes of a fresh owner (removed when
    /// the service is dropped), with the scripted LLM answering `script` as the server's model.
    pub fn agent(mut self, script: Vec<Turn>) -> Self {
        self.agent_spec().script = Some(script);
        self
    }

    /// Workers that run agents, with no model on the server: only users' own models.
    pub fn agent_without_llm(mut self) -> Self {
        self.agent_spec().script = None;
        self
    }

    /// The model name the scripted LLM is reached under (which wire format it speaks).
    pub fn model(mut self, model: &str) -> Self {
        self.agent_spec().model = model.to_string();
        self
    }

    /// Changes the server's LLM client (retries, prices).
    pub fn llm(mut self, change: impl FnOnce(LlmClient) -> LlmClient + Send + 'static) -> Self {
        self.agent_spec().llm = Some(Box::new(change));
        self
    }

    pub fn agent_settings(mut self, settings: AgentSettings) -> Self {
        self.agent_spec().settings = settings;
        self
    }

    /// The sandboxes' settings, instead of [`super::sandbox::settings`].
    pub fn sandbox(mut self, settings: SandboxSettings) -> Self {
        self.agent_spec().sandbox = Some(settings);
        self
    }

    /// The agent runtime's keyring (for users' sealed keys and secrets).
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.agent_spec().keyring = Some(keyring);
        self
    }

    /// The command line of the settings, with the fakes' first.
    fn command_line(&self, fakes: Option<&FakeProviders>) -> Vec<String> {
        let mut flags: Vec<(String, String)> = Vec::new();
        if let Some(fakes) = fakes {
            let key_path = format!(
                "{}/tests/fixtures/github-app/private-key.pem",
                env!("CARGO_MANIFEST_DIR")
            );
            for (flag, value) in [
                ("--github-app-id", fakes::GITHUB_APP_ID.to_string()),
                ("--github-app-private-key", key_path),
                ("--github-api-url", fakes.github_api_url()),
                ("--gitlab-token", fakes::GITLAB_TOKEN.to_string()),
                ("--gitlab-api-url", fakes.gitlab_api_url()),
                ("--slack-team-id", "T0001".to_string()),
                ("--slack-bot-token", fakes::SLACK_BOT_TOKEN.to_string()),
                ("--slack-api-url", fakes.slack_api_url()),
                ("--jira-base-url", fakes.jira_site_url()),
                ("--jira-email", fakes::JIRA_EMAIL.to_string()),
                ("--jira-api-token", fakes::JIRA_API_TOKEN.to_string()),
                ("--jira-dc-base-url", fakes.jira_dc_site_url()),
                ("--jira-dc-token", fakes::JIRA_DC_TOKEN.to_string()),
                ("--linear-organization-id", "org-1".to_string()),
                ("--linear-api-key", fakes::LINEAR_API_KEY.to_string()),
                ("--linear-api-url", fakes.linear_api_url()),
            ] {
                flags.push((flag.to_string(), value));
            }
        }
        for (flag, value) in &self.settings {
            flags.retain(|(f, _)| f != flag);
            if !value.is_empty() {
                flags.push((flag.clone(), value.clone()));
            }
        }
        let mut line = vec!["openhands".to_string()];
        for (flag, value) in flags {
            line.push(flag);
            line.push(value);
        }
        line.push("serve".to_string());
        line
    }

    /// Starts the roles asked for. Call inside the test's runtime.
    pub async fn start(self) -> Service {
        let fakes = if self.fakes {
            Some(FakeProviders::start().await)
        } else {
            None
        };
        // Without settings, no provider is enabled: nothing is read from the environment.
        let config = (fakes.is_some() || !self.settings.is_empty()).then(|| {
            let cli = Cli::try_parse_from(self.command_line(fakes.as_ref())).unwrap();
            cli.config.validate().unwrap();
            cli.config
        });
        // As the real roles: workers need what answers use, the web tier does not.
        let role = match self.workers {
            Some(_) => Role::Workers,
            None => Role::Web,
        };
        let providers = Arc::new(match (self.providers, &config) {
            // As the service starts: the accounts' mention forms are asked of Jira and Linear.
            (Some(clients), Some(c)) => {
                let accounts = clients.account_mentions(&c.providers).await;
                let webhooks = Webhooks::from_config(&c.providers).with_account_mentions(accounts);
                ProviderState::fixed(webhooks, clients)
            }
            (Some(clients), None) => ProviderState::fixed(Webhooks::default(), clients),
            (None, Some(c)) => {
                ProviderState::load(c.providers.clone(), Keyring::new(None), role, &self.db)
                    .await
                    .unwrap()
            }
            (None, None) => ProviderState::default(),
        });
        let stop = CancellationToken::new();
        let bus = EventBus::default();

        if self.live {
            tokio::spawn(live::listen(self.db.clone(), bus.clone(), stop.clone()));
        }
        // Bound first, so that the state's public URL is where it is served.
        let listener = match self.serve {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let served_at = listener
            .as_ref()
            .map(|l| l.local_addr().unwrap().to_string());
        let state = self.web.then(|| {
            let mut state = AppState::new(self.db.clone())
                .with_provider_state(providers.clone())
                .with_bus(bus.clone());
            if let Some(address) = &served_at {
                state = state.with_public_url(&format!("http://{address}"));
            }
            if let Some(key) = &self.admin_key {
                state = state.with_admin_key(Some(key.parse().unwrap()));
            }
            match self.state {
                Some(change) => change(state),
                None => state,
            }
        });
        let app = state.as_ref().map(|state| router(state.clone()));
        let address = match (&app, listener) {
            (Some(app), Some(listener)) => {
                let address = listener.local_addr().unwrap().to_string();
                let (app, serving) = (app.clone(), stop.clone());
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(serving.cancelled_owned())
                        .await
                        .unwrap();
                });
                Some(address)
            }
            _ => None,
        };

        let (mut llm, mut owner, mut cleanup) = (None, None, None);
        if let Some(settings) = self.workers {
            let runtime = match self.agent {
                Some(spec) => {
                    let client = match spec.script {
                        Some(script) => {
                            let fake = FakeLlm::start(script).await;
                            let client = LlmClient::new(
                                &spec.model,
                                Some("sk-test".parse().unwrap()),
                                Some(&fake.base_url()),
                            )
                            .unwrap();
                            llm = Some(fake);
                            Some(match spec.llm {
                                Some(change) => change(client),
                                None => client,
                            })
                        }
                        None => None,
                    };
                    let sandbox = spec.sandbox.unwrap_or_else(super::sandbox::settings);
                    let sandbox_owner = sandbox.sandbox_owner.clone().unwrap();
                    cleanup = Some(OwnerCleanup(sandbox_owner.clone()));
                    owner = Some(sandbox_owner);
                    let mut runtime =
                        AgentRuntime::new(spec.settings, client, sandbox.clone(), stop.clone())
                            .unwrap();
                    if spec.image_auto_build {
                        runtime = runtime.with_image_auto_build();
                    } else {
                        let backend = DockerBackend::connect(&sandbox).await.unwrap();
                        runtime = runtime.with_sandboxes(backend);
                    }
                    if let Some(keyring) = spec.keyring {
                        runtime = runtime.with_keyring(keyring);
                    }
                    let runtime = Arc::new(runtime);
                    if spec.image_auto_build {
                        tokio::spawn(runtime.clone().build_missing_image());
                        tokio::spawn(
                            runtime
                                .clone()
                                .watch_sandbox_engine(self.db.clone(), "worker-1".into()),
                        );
                    }
                    Some(runtime)
                }
                None => None,
            };
            let ctx = JobContext {
                db: self.db.clone(),
                providers: providers.clone(),
                bus: bus.clone(),
            };
            tokio::spawn(openhands::app::run_workers(
                ctx,
                runtime,
                settings,
                stop.clone().cancelled_owned(),
            ));
        }

        Service {
            db: self.db,
            state,
            providers,
            bus,
            app,
            address,
            fakes,
            llm,
            owner,
            stop,
            _cleanup: cleanup,
        }
    }
}
