//! The run job: drives one conversation's agent until it finishes, waits for the user, or
//! stops. Everything it does is an event in the conversation's log, appended before anyone
//! sees it; the loop's state is rebuilt from that log, so a run killed at any point is
//! continued by another worker without losing or repeating anything unannounced.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::condense;
use super::events::{self, AgentState, Draft, Item, ToolCallMeta};
use super::history::History;
use super::llm::{ChatMessage, Completion, LlmClient, LlmError, ToolCall};
use super::mcp::{self, McpConfig, McpTools};
use super::prompt::REPOSITORY_DIR;
use super::prompt::{PromptContext, Prompts};
use super::scripts::PreCommit;
use super::settings::AgentSettings;
use super::stuck;
use super::tools::{self, Call, ToolFault, Toolbox};
use crate::integrations::request::Place;
use crate::queue::{Job, JobContext};
use crate::sandbox::git;
use crate::sandbox::{SandboxSettings, Sandboxes};
use crate::storage::mcp::SERVICE_MCP_CONFIG;
use crate::storage::{Conversation, ConversationStats, Db, Event, NewEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConversation {
    pub conversation_id: String,
}

impl Job for RunConversation {
    const QUEUE: &'static str = "run";
    const MAX_ATTEMPTS: u32 = 3;
}

/// What an agent left to itself is told when it answers without acting (OpenHands' headless
/// reply): nobody watches an issue or ticket live to answer questions.
const CONTINUE_PROMPT: &str = "Nobody is here to answer questions: go on with the task in the way you judge best.\n\
When it is done, call the finish tool with your summary.\n\
Do not wait for help from a person; decide for yourself.";

/// What the model is told of a call whose sandbox stopped under it. The sandbox is started
/// again for the next call (its files kept), or replaced, which is said in a note of its own.
fn sandbox_lost_note(reason: &str) -> String {
    format!(
        "The sandbox stopped while this ran ({reason}); its result is lost. It is started again for what comes next: programs that were running are gone."
    )
}

/// What a call that waited for confirmation is told when the user did not confirm it.
const NOT_CONFIRMED: &str = "Not run: rejected by the user.";

/// What a call is told when the run stopped while it ran.
const LOST_RESULT: &str = "The service restarted while this was running, so its result was lost: it may or may not have taken effect. \
The shell session was restarted too (working directory and environment variables are back to their defaults). Check the state before repeating it.";

/// Triggers whose conversations run unattended: a question from the agent gets the
/// continue prompt instead of waiting.
fn runs_unattended(trigger_kind: &str) -> bool {
    matches!(
        trigger_kind,
        "github" | "gitlab" | "jira" | "jira-dc" | "linear"
    )
}

/// What the run job needs besides the database.
pub struct AgentRuntime {
    pub settings: AgentSettings,
    /// The server's default model; `None` when LLM_MODEL is unset.
    pub llm: Option<LlmClient>,
    pub prompts: Prompts,
    /// How long a run's hold on its conversation lasts without renewal.
    pub claim: Duration,
    /// Opens the LLM keys and secrets users stored.
    pub keyring: crate::crypto::Keyring,
    sandbox_settings: SandboxSettings,
    sandboxes: OnceCell<Sandboxes>,
    /// While this worker builds the missing sandbox image: what the build is doing. Sandboxes
    /// are not connected (runs wait) until it is `None`.
    image_build: tokio::sync::watch::Sender<Option<String>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime")
            .field("settings", &self.settings)
            .field("llm", &self.llm.as_ref().map(LlmClient::model))
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

impl AgentRuntime {
    pub fn new(
        settings: AgentSettings,
        llm: Option<LlmClient>,
        sandbox_settings: SandboxSettings,
        shutdown: CancellationToken,
    ) -> anyhow::Result<AgentRuntime> {
        let prompts = Prompts::load(settings.agent_prompt_dir.as_deref())?;
        // One place decides the request timeout, for the server's model and users' own.
        let llm = llm.map(|llm| llm.with_timeout(settings.llm_timeout));
        Ok(AgentRuntime {
            settings,
            llm,
            prompts,
            claim: Duration::from_secs(30),
            keyring: crate::crypto::Keyring::new(None),
            sandbox_settings,
            sandboxes: OnceCell::new(),
            image_build: tokio::sync::watch::Sender::new(None),
            shutdown,
        })
    }

    /// Builds the sandbox image on first need when it is missing: runs wait for the build
    /// ([`AgentRuntime::build_missing_image`] must then run).
    pub fn with_image_auto_build(self) -> Self {
        self.image_build.send_replace(Some(
            "checking whether the sandbox image is on the engine".into(),
        ));
        self
    }

    /// Uses these sandboxes instead of connecting to the configured backend.
    pub fn with_sandboxes(self, sandboxes: Sandboxes) -> Self {
        let _ = self.sandboxes.set(sandboxes);
        self
    }

    pub fn with_keyring(mut self, keyring: crate::crypto::Keyring) -> Self {
        self.keyring = keyring;
        self
    }

    pub fn with_claim(mut self, claim: Duration) -> Self {
        self.claim = claim;
        self
    }

    /// The sandbox backend, connected on first use (a worker without Docker still takes other
    /// jobs), once a build of the missing image is over.
    pub(super) async fn sandboxes(&self) -> Result<Sandboxes, String> {
        let mut build = self.image_build.subscribe();
        if build.wait_for(Option::is_none).await.is_err() {
            return Err("the sandbox image build ended with the process".into());
        }
        self.sandboxes
            .get_or_try_init(|| {
                crate::sandbox::connect(&self.sandbox_settings, self.shutdown.clone())
            })
            .await
            .cloned()
            .map_err(|e| e.to_string())
    }
}

impl AgentRuntime {
    /// When [`AgentRuntime::with_image_auto_build`] asked for it: builds the sandbox image if
    /// the Docker engine answers and lacks it, with its progress in the log and in the engine's
    /// recorded state (the dashboard's banner), then lets runs connect. A build that fails is
    /// logged with its fix; runs then fail as without the image.
    pub async fn build_missing_image(self: Arc<Self>) {
        if self.image_build.borrow().is_none() {
            return;
        }
        let image = self.sandbox_settings.sandbox_image.clone();
        if self.sandbox_settings.sandbox_backend == crate::sandbox::BackendKind::Docker {
            self.build_if_missing(&image).await;
        }
        self.image_build.send_replace(None);
    }

    async fn build_if_missing(&self, image: &str) {
        use crate::sandbox::image;
        let docker = match image::connect_docker().await {
            Ok(docker) => docker,
            // The engine's state says why; nothing to build without it.
            Err(_) => return,
        };
        match image::image_exists(&docker, image).await {
            Ok(false) => {}
            Ok(true) | Err(_) => return,
        }
        let started = std::time::Instant::now();
        self.image_build.send_replace(Some(format!(
            "building the sandbox image {image}, which the engine lacks (SANDBOX_AUTO_BUILD): about a minute; runs wait for it"
        )));
        tracing::info!(%image, "the sandbox image is missing: building it (SANDBOX_AUTO_BUILD)");
        let report = |line: &str| {
            tracing::info!(%image, "{line}");
            self.image_build.send_replace(Some(format!(
                "building the sandbox image {image}; runs wait for it: {line}"
            )));
        };
        let args = image::BuildImageArgs {
            base: self.sandbox_settings.sandbox_build_base.clone(),
            ..image::BuildImageArgs::for_tag(image)
        };
        match image::build_image(&docker, image, &args, &report).await {
            Ok(built) => tracing::info!(
                %image,
                id = %built.id,
                seconds = started.elapsed().as_secs(),
                "the sandbox image is built"
            ),
            Err(error) => tracing::error!(
                %image,
                error = format!("{error:#}"),
                "the sandbox image could not be built: build it with `openhands sandbox build-image`"
            ),
        }
    }
}

/// How many times one step condenses and asks again after the provider said the prompt is
/// too long for the model.
const MAX_OVERFLOW_RETRIES: u32 = 3;

/// The dependency name under which workers record whether they can start sandboxes.
pub const SANDBOX_ENGINE: &str = "sandbox_engine";
/// How often a worker checks its sandbox engine.
const ENGINE_CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// How long the engine may take to answer a check.
const ENGINE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

impl AgentRuntime {
    /// Records, every [`ENGINE_CHECK_INTERVAL`] until shutdown, whether this worker
    /// (`instance`) can start sandboxes, for the web processes to report.
    pub async fn watch_sandbox_engine(self: Arc<Self>, db: Db, instance: String) {
        // What was last logged, so that the log says each change once.
        let mut logged: Option<Option<String>> = None;
        loop {
            let building = self.image_build.borrow().clone();
            let check = async {
                if let Some(progress) = building {
                    return Err(progress);
                }
                let sandboxes = self.sandboxes().await?;
                sandboxes.check().await.map_err(|e| e.to_string())
            };
            let down = match tokio::time::timeout(ENGINE_CHECK_TIMEOUT, check).await {
                Ok(Ok(())) => None,
                Ok(Err(reason)) => Some(reason),
                Err(_) => Some(format!(
                    "the sandbox engine did not answer within {} s",
                    ENGINE_CHECK_TIMEOUT.as_secs()
                )),
            };
            // A build logs its own progress.
            let building = self.image_build.borrow().is_some();
            if !building && logged.as_ref() != Some(&down) {
                match &down {
                    Some(reason) => tracing::warn!("runs cannot start sandboxes: {reason}"),
                    None if matches!(logged, Some(Some(_))) => {
                        tracing::info!("the sandbox engine answers again")
                    }
                    None => {}
                }
                logged = Some(down.clone());
            }
            if let Err(error) = db
                .record_dependency_check(SANDBOX_ENGINE, &instance, down.as_deref())
                .await
            {
                tracing::warn!(%error, "cannot record the sandbox engine's state");
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(ENGINE_CHECK_INTERVAL) => {}
            }
        }
    }
}

pub(crate) async fn handle(
    job: RunConversation,
    ctx: Data<JobContext>,
    runtime: Data<Arc<AgentRuntime>>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let runtime: Arc<AgentRuntime> = (*runtime).clone();
    let db = ctx.db.clone();
    let conversation_id = job.conversation_id;
    // The job's id: the same job picked up again after a crash holds the claim already.
    let runner = task_id.to_string();
    let claim_ms = runtime.claim.as_millis() as i64;
    if !db.claim_run(&conversation_id, &runner, claim_ms).await? {
        // The run holding it sees every new event before it lets go.
        tracing::info!(conversation_id, "another run holds the conversation");
        return Ok(());
    }
    let lost = CancellationToken::new();
    let renewer = tokio::spawn(renew_claim(
        db.clone(),
        conversation_id.clone(),
        runner.clone(),
        runtime.claim,
        lost.clone(),
    ));
    let mut run = Run {
        ctx: &ctx,
        runtime: &runtime,
        conversation_id: conversation_id.clone(),
        runner: runner.clone(),
        history: History::default(),
        toolbox: Toolbox::default(),
        sandboxes: None,
        secret_values: Vec::new(),
        confirm_risky: false,
        mcp_connected: false,
        checkout: None,
        changes: None,
        title: String::new(),
    };
    let result = tokio::select! {
        result = run.until_released() => result,
        () = lost.cancelled() => {
            tracing::warn!(conversation_id, "the run lost its hold on the conversation; stopping");
            Ok(())
        }
    };
    renewer.abort();
    if let Err(error) = &result {
        tracing::warn!(conversation_id, %error, "run failed; it will be retried from the event log");
        db.abandon_run(&conversation_id, &runner).await?;
    }
    result.map_err(Into::into)
}

async fn renew_claim(
    db: Db,
    conversation_id: String,
    runner: String,
    claim: Duration,
    lost: CancellationToken,
) {
    let claim_ms = claim.as_millis() as i64;
    loop {
        tokio::time::sleep(claim / 3).await;
        match db.renew_run(&conversation_id, &runner, claim_ms).await {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // A database hiccup: try again; the claim outlasts a few misses.
            Err(error) => tracing::warn!(%error, conversation_id, "cannot renew the run's claim"),
        }
    }
}

/// A fault that ends the run attempt (database trouble): the job is retried from the log.
type Fault = anyhow::Error;

pub(super) struct Run<'a> {
    pub(super) ctx: &'a JobContext,
    pub(super) runtime: &'a AgentRuntime,
    conversation_id: String,
    runner: String,
    pub(super) history: History,
    pub(super) toolbox: Toolbox,
    pub(super) sandboxes: Option<Sandboxes>,
    /// The owner's secret values exported into the sandbox: hidden from every observation.
    pub(super) secret_values: Vec<(String, String)>,
    /// The worker's clone of the repository placed in the sandbox by this run, for pushing.
    pub(super) checkout: Option<git::Checkout>,
    /// What became of the agent's changes, for the report of the rest being recorded.
    changes: Option<crate::results::Changes>,
    /// The conversation's title, for a pull/merge request.
    pub(super) title: String,
    /// Whether risky actions wait for the user (confirmation mode, web conversations only).
    confirm_risky: bool,
    /// Whether this run connected to its MCP servers (once per run, and again when a new
    /// sandbox replaces a lost one, where stdio servers must be started again).
    mcp_connected: bool,
}

/// How a step of the loop ended.
enum Next {
    Continue,
    Rest(AgentState, String),
}

/// How running the user's own pending actions ended.
enum UserActions {
    /// Each was run and answered.
    Done,
    /// The user's `finish` (this event) ends the task; the actions after it wait.
    Finish(i64),
    /// The service could not run one (answered with why); the others wait.
    Failed(String),
}

impl Run<'_> {
    fn db(&self) -> &Db {
        &self.ctx.db
    }

    pub(super) fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    /// Runs while there is work, and lets go of the conversation only when no event arrived
    /// since it last looked.
    async fn until_released(&mut self) -> Result<(), Fault> {
        loop {
            self.refresh().await?;
            if self.history.needs_run() {
                self.drive().await?;
                continue;
            }
            // Actions the user issued to an agent at rest run without asking the LLM. Each
            // pass answers at least one of them, so this ends.
            if !self.history.pending_user_actions().is_empty() {
                self.answer_user_actions().await?;
                continue;
            }
            if self
                .db()
                .release_run(&self.conversation_id, &self.runner, self.history.last_id)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Reads the events appended since the last look.
    async fn refresh(&mut self) -> Result<(), Fault> {
        loop {
            let events = self
                .db()
                .events_after(&self.conversation_id, self.history.last_id, 1000)
                .await?;
            let more = events.len() == 1000;
            self.history.extend(&events);
            if !more {
                return Ok(());
            }
        }
    }

    /// Appends drafts in one transaction (with one LLM call's figures, if given), publishes
    /// them, and returns their ids.
    pub(super) async fn record(
        &mut self,
        drafts: Vec<Draft>,
        usage: Option<ConversationStats>,
    ) -> Result<Vec<i64>, Fault> {
        let mut tx = self.db().begin().await?;
        let mut stored: Vec<Event> = Vec::with_capacity(drafts.len());
        for draft in &drafts {
            let event = tx
                .append(
                    &self.conversation_id,
                    &NewEvent {
                        source: draft.source,
                        kind: &draft.kind,
                        payload: &draft.doc,
                    },
                )
                .await?;
            if let Some((state, reason)) = draft.state_change() {
                tx.set_conversation_status(&self.conversation_id, state)
                    .await?;
                // Where the request was made hears how the run ended, exactly once.
                if let Some(summary) = self.summary(state, reason) {
                    let place = self.place();
                    let repository = self.history.repository();
                    let ticket_url = self.history.context().and_then(|c| c.url.clone());
                    let rest = crate::results::Rest {
                        conversation_id: &self.conversation_id,
                        state_event_id: event.id,
                        summary: &summary,
                        title: &self.title,
                        ticket_url: ticket_url.as_deref(),
                        place: place.as_ref(),
                        repository: repository.as_ref(),
                        changes: self.changes.as_ref(),
                    };
                    crate::results::report_rest(
                        &mut tx,
                        &rest,
                        &self.ctx.providers.clients().public_url,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot record the result post: {e}"))?;
                }
            }
            stored.push(event);
        }
        if let Some(usage) = &usage {
            tx.add_llm_usage(&self.conversation_id, usage).await?;
        }
        tx.commit().await?;
        let ids: Vec<i64> = stored.iter().map(|e| e.id).collect();
        if stored
            .first()
            .is_some_and(|e| e.id == self.history.last_id + 1)
        {
            self.history.extend(&stored);
        } else {
            self.refresh().await?;
        }
        self.ctx.bus.publish(self.db(), stored).await;
        Ok(ids)
    }

    /// Where the request was made, for a conversation a provider started.
    pub(super) fn place(&self) -> Option<Place> {
        self.history.place()
    }

    /// The title work is named after (branches, pull requests): the or ticket's own,
    /// else the conversation's.
    fn work_title(&self, conversation: &Conversation) -> String {
        self.history
            .context()
            .and_then(|c| c.title.as_deref())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(&conversation.title)
            .to_string()
    }

    /// What is posted back when the agent comes to rest in `state`: its final message, its
    /// question, or why it stopped. `None` for states that are not an end (a pause).
    pub(super) fn summary(&self, state: &str, reason: &str) -> Option<String> {
        let state = AgentState::parse(state)?;
        let last_words = || {
            self.history.items.iter().rev().find_map(|item| match item {
                Item::Action { name, args, .. } if name == "finish" => {
                    args["final_thought"].as_str().map(str::to_string)
                }
                Item::AgentMessage { content, .. } => Some(content.clone()),
                _ => None,
            })
        };
        match state {
            AgentState::Finished | AgentState::AwaitingUserInput => Some(
                last_words()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "Done.".to_string()),
            ),
            AgentState::Error | AgentState::RateLimited => Some(format!("I stopped: {reason}")),
            AgentState::Stopped => Some("Stopped at the user's request.".to_string()),
            AgentState::Rejected => Some(format!("Rejected: {reason}")),
            // Confirmation waits only in web conversations, which post nothing back.
            AgentState::Loading
            | AgentState::Running
            | AgentState::Paused
            | AgentState::AwaitingUserConfirmation
            | AgentState::UserConfirmed
            | AgentState::UserRejected => None,
        }
    }

    pub(super) async fn set_state(&mut self, state: AgentState, reason: &str) -> Result<(), Fault> {
        if self.history.state().map(|(_, s)| s) == Some(state) && reason.is_empty() {
            return Ok(());
        }
        self.record(vec![events::state_changed(state, reason)], None)
            .await?;
        Ok(())
    }

    /// The model the conversation's owner chose in their settings, else the server's. `Err`
    /// holds a reason for the user.
    async fn llm_of(&self, owner_id: &str) -> Result<Result<Option<LlmClient>, String>, Fault> {
        let own = self.db().user_llm(owner_id).await?;
        let Some(model) = own.llm_model else {
            return Ok(Ok(self.runtime.llm.clone()));
        };
        let key = match own
            .llm_api_key
            .map(|sealed| self.runtime.keyring.open(&sealed))
        {
            Some(Ok(key)) => {
                let Ok(key) = key.parse::<crate::setting::Secret>();
                Some(key)
            }
            Some(Err(error)) => {
                return Ok(Err(format!(
                    "Your LLM key cannot be read ({error:#}); save it again in the settings."
                )));
            }
            None => None,
        };
        let prices = self
            .runtime
            .llm
            .as_ref()
            .map(|llm| llm.prices().clone())
            .unwrap_or_default();
        Ok(
            match LlmClient::new(&model, key, own.llm_base_url.as_deref()) {
                Ok(client) => Ok(Some(
                    client
                        .with_prices(prices)
                        .with_timeout(self.runtime.settings.llm_timeout),
                )),
                Err(error) => Err(format!("Your LLM settings cannot be used: {error}")),
            },
        )
    }

    /// Puts the owner's secrets in the sandbox's shell environment, without recording them.
    async fn export_secrets(
        &mut self,
        sandboxes: &dyn crate::sandbox::SandboxBackend,
        sandbox_id: &str,
        owner_id: &str,
    ) -> Result<Result<(), String>, Fault> {
        let sealed = self.db().sealed_secrets_of(owner_id).await?;
        if sealed.is_empty() {
            return Ok(Ok(()));
        }
        let mut exports = String::from("set +o history; ");
        let mut opened = Vec::new();
        for (name, value) in &sealed {
            let value = match self.runtime.keyring.open(value) {
                Ok(value) => value,
                Err(error) => {
                    return Ok(Err(format!(
                        "Your secret {name} cannot be read ({error:#}); save it again in the settings."
                    )));
                }
            };
            exports.push_str(&format!(
                "export {name}='{}'; ",
                value.replace('\'', "'\\''")
            ));
            opened.push((name.clone(), value));
        }
        exports.push_str("set -o history");
        self.secret_values = opened;
        let request =
            crate::sandbox::CommandRequest::new(exports).with_timeout(Duration::from_secs(30));
        match sandboxes.execute(sandbox_id, &request, None).await {
            Ok(outcome) if outcome.exit_code == 0 => Ok(Ok(())),
            Ok(_) => Ok(Err("Your secrets could not be set in the sandbox.".into())),
            Err(error) => Ok(Err(format!(
                "Your secrets could not be set in the sandbox: {error}"
            ))),
        }
    }

    /// One run: prepares the sandbox, then steps until the agent rests.
    async fn drive(&mut self) -> Result<(), Fault> {
        let conversation = self.db().conversation(&self.conversation_id).await?;
        self.title = self.work_title(&conversation);
        self.set_state(AgentState::Loading, "").await?;
        let llm = match self.llm_of(&conversation.owner_id).await? {
            Ok(Some(llm)) => llm,
            Ok(None) => {
                return self
                    .set_state(
                        AgentState::Error,
                        "No LLM is configured: choose a model and key in the settings, or set LLM_MODEL and LLM_API_KEY for the workers.",
                    )
                    .await;
            }
            Err(reason) => return self.set_state(AgentState::Error, &reason).await,
        };
        // Nobody watches a conversation started elsewhere to confirm anything.
        self.confirm_risky = !runs_unattended(&conversation.trigger_kind)
            && self.db().confirmation_mode(&conversation.id).await?;
        // Calls that waited for confirmation are run once the sandbox is ready, or answered
        // now as not run; then lost calls are answered: nothing may come between a call and
        // its result.
        let confirmed = match self.history.waiting_calls() {
            Some((waiting, true)) => waiting,
            Some((waiting, false)) => {
                let drafts = waiting
                    .iter()
                    .map(|(id, meta)| {
                        events::error_observation(NOT_CONFIRMED, Some(*id), Some(meta))
                    })
                    .collect();
                self.record(drafts, None).await?;
                Vec::new()
            }
            None => Vec::new(),
        };
        let kept: Vec<i64> = confirmed.iter().map(|(id, _)| *id).collect();
        self.answer_lost_calls(&kept).await?;
        if let Err(reason) = self.prepare_sandbox(&conversation).await? {
            return self.set_state(AgentState::Error, &reason).await;
        }
        if !self.mcp_connected {
            self.connect_mcp(&conversation.owner_id).await?;
        }
        self.rebuild_tools();
        self.recall_workspace(
            conversation.repository.as_deref(),
            conversation.git_provider.as_deref(),
        )
        .await?;
        if conversation.title_pending {
            self.write_title(&llm).await?;
            let renamed = self.db().conversation(&self.conversation_id).await?;
            self.title = self.work_title(&renamed);
        }
        self.set_state(AgentState::Running, "").await?;
        let started = self.history.last_id;
        if !confirmed.is_empty() {
            let calls = confirmed
                .into_iter()
                .map(|(id, meta)| {
                    let call = self.parse_call(&ToolCall {
                        id: meta.tool_call_id.clone(),
                        name: meta.function_name.clone(),
                        arguments: meta.arguments.clone(),
                    });
                    (id, meta, call)
                })
                .collect();
            if let Next::Rest(state, reason) = self.run_calls(&conversation, calls, started).await?
            {
                return self.set_state(state, &reason).await;
            }
        }
        let limits = self.db().user_limits(&conversation.owner_id).await?;
        let max_steps = limits
            .max_iterations
            .filter(|n| *n > 0)
            .map(|n| n as u32)
            .unwrap_or(self.runtime.settings.agent_max_iterations);
        let budget = limits
            .max_budget_usd
            .or(self.runtime.settings.agent_max_budget_usd);
        loop {
            self.refresh().await?;
            if let Some(state) = self.history.stop_request_after(started) {
                return self.set_state(state, "Requested by the user.").await;
            }
            // What the user did themselves comes before the model's next step, which sees it.
            match self.run_user_actions(&conversation, true).await? {
                UserActions::Done => {}
                UserActions::Finish(action_id) => return self.finish_for_user(action_id).await,
                UserActions::Failed(reason) => {
                    return self.set_state(AgentState::Error, &reason).await;
                }
            }
            self.recall_knowledge().await?;
            if let Some(reason) = stuck::check(&self.history) {
                return self.set_state(AgentState::Error, &reason).await;
            }
            let (steps, spent) = self.history.task_usage();
            if steps >= max_steps {
                let reason = format!(
                    "The agent reached its limit of {max_steps} steps for this task. Send a message to let it continue."
                );
                return self.set_state(AgentState::Error, &reason).await;
            }
            if let Some(budget) = budget
                && spent >= budget
            {
                let reason = format!(
                    "The task's budget of ${budget:.2} is used up (${spent:.4} spent). Send a message to let the agent continue."
                );
                return self.set_state(AgentState::Error, &reason).await;
            }
            if let Next::Rest(state, reason) = self.step(&llm, &conversation, started).await? {
                // A stop asked while the model wrote its answer is the state to end in.
                if state == AgentState::AwaitingUserInput {
                    self.refresh().await?;
                    if let Some(asked) = self.history.stop_request_after(started) {
                        return self.set_state(asked, "Requested by the user.").await;
                    }
                }
                if state == AgentState::Finished {
                    let still_failing = match self.pre_commit_gate().await? {
                        PreCommit::Retry => continue,
                        PreCommit::StillFailing(failure) => Some(failure),
                        PreCommit::Passed => None,
                    };
                    self.changes = self.publish().await?;
                    if let Some(changes) = &mut self.changes {
                        changes.pre_commit_failure = still_failing;
                    }
                }
                let recorded = self.set_state(state, &reason).await;
                self.changes = None;
                return recorded;
            }
        }
    }

    /// One LLM call and the tool calls it asks for. A stop or pause asked after event
    /// `started` takes effect before the next tool runs: that call and the rest are answered
    /// as not run, and the model is not called again.
    async fn step(
        &mut self,
        llm: &LlmClient,
        conversation: &Conversation,
        started: i64,
    ) -> Result<Next, Fault> {
        let mut specs = tools::specs();
        specs.extend(self.toolbox.mcp.specs().cloned());
        // The history is condensed when it has too many events, when the prompt comes near
        // the model's context window, and when the provider says it is past it (a few times).
        let mut too_long = false;
        let mut overflows = 0;
        let completion = loop {
            let condensed = match self.condense(llm, too_long).await? {
                Ok(condensed) => condensed,
                Err(rest) => return Ok(rest),
            };
            let messages = self.prompt(conversation)?;
            let budget = llm.context_window().map(|window| {
                (window as f64 * self.runtime.settings.agent_condenser_token_fraction) as u64
            });
            if !too_long
                && budget
                    .is_some_and(|budget| condense::estimated_tokens(&messages, &specs) > budget)
            {
                too_long = true;
                continue;
            }
            match llm.complete(&messages, &specs).await {
                Ok(completion) => break completion,
                Err(error)
                    if error.is_context_overflow()
                        && overflows < MAX_OVERFLOW_RETRIES
                        && (condensed || !too_long) =>
                {
                    overflows += 1;
                    too_long = true;
                    tracing::info!(conversation_id = %self.conversation_id, overflows, "the prompt was too long for the model; condensing and asking again");
                }
                Err(error) => return Ok(llm_failure(&error)),
            }
        };
        let (metrics, usage) = figures(llm, &completion);
        let response_id = ulid::Ulid::new().to_string();
        let text = completion.message.content.trim().to_string();
        if completion.message.tool_calls.is_empty() {
            let mut drafts = vec![events::agent_message(&text, Some(metrics), &response_id)];
            if !runs_unattended(&conversation.trigger_kind) {
                self.record(drafts, Some(usage)).await?;
                return Ok(Next::Rest(AgentState::AwaitingUserInput, String::new()));
            }
            drafts.push(events::user_message(CONTINUE_PROMPT, true, json!({})));
            self.record(drafts, Some(usage)).await?;
            return Ok(Next::Continue);
        }

        // Every call is recorded before any runs; a call the model got wrong is answered
        // with what was wrong.
        let mut drafts = Vec::new();
        let mut calls: Vec<(usize, ToolCallMeta, Result<Call, String>)> = Vec::new();
        let mut waits = false;
        for (at, call) in completion.message.tool_calls.iter().enumerate() {
            let meta = ToolCallMeta {
                function_name: call.name.clone(),
                tool_call_id: call.id.clone(),
                arguments: call.arguments.clone(),
                response_id: response_id.clone(),
            };
            match self.parse_call(call) {
                Ok(parsed) => {
                    let mut action = parsed.action(&meta);
                    if self.confirm_risky && tools::needs_confirmation(call, &parsed) {
                        waits = true;
                        action.doc["args"]["confirmation_state"] = json!("awaiting_confirmation");
                    }
                    drafts.push(action);
                    calls.push((drafts.len() - 1, meta, Ok(parsed)));
                }
                Err(message) => drafts.push(events::error_observation(&message, None, Some(&meta))),
            }
            if at == 0 {
                if let Some(args) = drafts[0].doc.get_mut("args") {
                    args["thought"] = json!(text);
                }
                drafts[0].doc["llm_metrics"] = metrics.clone();
            }
        }
        let ids = self.record(drafts, Some(usage)).await?;
        if waits {
            // Every call of the answer waits, in order, for the user's word.
            return Ok(Next::Rest(
                AgentState::AwaitingUserConfirmation,
                "The agent waits for you to confirm or reject what it wants to do next."
                    .to_string(),
            ));
        }
        let calls = calls
            .into_iter()
            .map(|(at, meta, call)| (ids[at], meta, call))
            .collect();
        self.run_calls(conversation, calls, started).await
    }

    /// Runs recorded calls in order and answers each. A stop or pause asked after event
    /// `started` takes effect before the next one: it and the rest are answered as not run.
    async fn run_calls(
        &mut self,
        conversation: &Conversation,
        calls: Vec<(i64, ToolCallMeta, Result<Call, String>)>,
        started: i64,
    ) -> Result<Next, Fault> {
        let mut finished: Option<String> = None;
        let mut halted: Option<AgentState> = None;
        for (action_id, meta, call) in calls {
            let call = match call {
                Ok(call) => call,
                Err(message) => {
                    self.record(
                        vec![events::error_observation(
                            &message,
                            Some(action_id),
                            Some(&meta),
                        )],
                        None,
                    )
                    .await?;
                    continue;
                }
            };
            if halted.is_none() {
                self.refresh().await?;
                halted = self.history.stop_request_after(started);
            }
            if let Some(state) = halted {
                let note = format!(
                    "Not run: the user {} the agent before this ran.",
                    if state == AgentState::Paused {
                        "paused"
                    } else {
                        "stopped"
                    }
                );
                self.record(
                    vec![events::error_observation(
                        &note,
                        Some(action_id),
                        Some(&meta),
                    )],
                    None,
                )
                .await?;
                continue;
            }
            if finished.is_some() {
                let note = "Not run: the task was finished by an earlier call.";
                self.record(
                    vec![events::error_observation(
                        note,
                        Some(action_id),
                        Some(&meta),
                    )],
                    None,
                )
                .await?;
                continue;
            }
            if let Call::Finish { message, .. } = &call {
                finished = Some(message.clone());
                continue;
            }
            let Some(sandboxes) = self.sandboxes.clone() else {
                return Err(anyhow::anyhow!("the run has no sandbox"));
            };
            match self
                .toolbox
                .execute(Some(sandboxes.as_ref()), &call, action_id, Some(&meta))
                .await
            {
                Ok(Some(mut observation)) => {
                    events::hide_secrets(&mut observation.doc, &self.secret_values);
                    events::hide_secrets(&mut observation.doc, self.toolbox.mcp.secrets());
                    self.record(vec![observation], None).await?;
                }
                Ok(None) => {}
                Err(ToolFault::SandboxLost(reason)) => {
                    let note = sandbox_lost_note(&reason);
                    self.record(
                        vec![events::error_observation(
                            &note,
                            Some(action_id),
                            Some(&meta),
                        )],
                        None,
                    )
                    .await?;
                    if let Err(reason) = self.prepare_sandbox(conversation).await? {
                        return Ok(Next::Rest(AgentState::Error, reason));
                    }
                    // A new sandbox has none of the stdio MCP servers of the old one.
                    if !self.mcp_connected {
                        self.connect_mcp(&conversation.owner_id).await?;
                    }
                }
                Err(ToolFault::Host(reason)) => {
                    let note = format!("The service could not run this: {reason}");
                    self.record(
                        vec![events::error_observation(
                            &note,
                            Some(action_id),
                            Some(&meta),
                        )],
                        None,
                    )
                    .await?;
                    return Ok(Next::Rest(AgentState::Error, reason));
                }
            }
        }
        Ok(match (halted, finished) {
            (Some(state), _) => Next::Rest(state, "Requested by the user.".to_string()),
            (None, Some(_)) => Next::Rest(AgentState::Finished, String::new()),
            (None, None) => Next::Continue,
        })
    }

    /// Runs the user's actions of a conversation at rest; its state stays as it is unless the
    /// user finishes it.
    async fn answer_user_actions(&mut self) -> Result<(), Fault> {
        let conversation = self.db().conversation(&self.conversation_id).await?;
        self.title = self.work_title(&conversation);
        match self.run_user_actions(&conversation, false).await? {
            UserActions::Finish(action_id) => self.finish_for_user(action_id).await,
            // Already answered with why; the agent's state is not the user's command's.
            UserActions::Done | UserActions::Failed(_) => Ok(()),
        }
    }

    /// Runs the actions the user issued that nothing answered yet, oldest first, and records
    /// each one's observation (its `cause` is the action). `sandbox_ready`: this run has
    /// prepared the sandbox already.
    async fn run_user_actions(
        &mut self,
        conversation: &Conversation,
        mut sandbox_ready: bool,
    ) -> Result<UserActions, Fault> {
        let pending: Vec<(i64, Result<Call, String>)> = self
            .history
            .pending_user_actions()
            .into_iter()
            .map(|(id, name, args)| (id, tools::user_call(name, args)))
            .collect();
        for (action_id, call) in pending {
            let call = match call {
                Ok(call) => call,
                Err(problem) => {
                    let answer = events::error_observation(&problem, Some(action_id), None);
                    self.record(vec![answer], None).await?;
                    continue;
                }
            };
            if matches!(call, Call::Finish { .. }) {
                return Ok(UserActions::Finish(action_id));
            }
            if call.needs_sandbox() && !sandbox_ready {
                if let Err(reason) = self.prepare_sandbox(conversation).await? {
                    let answer = events::error_observation(&reason, Some(action_id), None);
                    self.record(vec![answer], None).await?;
                    return Ok(UserActions::Failed(reason));
                }
                self.rebuild_tools();
                sandbox_ready = true;
            }
            let sandboxes = self.sandboxes.clone();
            match self
                .toolbox
                .execute(sandboxes.as_deref(), &call, action_id, None)
                .await
            {
                Ok(Some(mut observation)) => {
                    events::hide_secrets(&mut observation.doc, &self.secret_values);
                    self.record(vec![observation], None).await?;
                }
                Ok(None) => {}
                Err(ToolFault::SandboxLost(reason)) => {
                    let note = sandbox_lost_note(&reason);
                    let answer = events::error_observation(&note, Some(action_id), None);
                    self.record(vec![answer], None).await?;
                    sandbox_ready = false;
                }
                Err(ToolFault::Host(reason)) => {
                    let note = format!("The service could not run this: {reason}");
                    let answer = events::error_observation(&note, Some(action_id), None);
                    self.record(vec![answer], None).await?;
                    return Ok(UserActions::Failed(reason));
                }
            }
        }
        Ok(UserActions::Done)
    }

    /// Ends the task at the user's `finish` (event `action_id`): the work is published as when
    /// the agent finishes, and the finished state names the action as its cause.
    async fn finish_for_user(&mut self, action_id: i64) -> Result<(), Fault> {
        if self.place().is_some() && self.sandboxes.is_none() {
            let conversation = self.db().conversation(&self.conversation_id).await?;
            // Without a sandbox the push reports why it could not happen.
            let _ = self.prepare_sandbox(&conversation).await?;
        }
        self.changes = self.publish().await?;
        let mut finished = events::state_changed(AgentState::Finished, "Finished by the user.");
        finished.doc["cause"] = json!(action_id);
        let recorded = self.record(vec![finished], None).await;
        self.changes = None;
        recorded.map(|_| ())
    }

    /// The messages the model is asked with: the system prompt, the history as it is seen.
    fn prompt(&self, conversation: &Conversation) -> Result<Vec<ChatMessage>, Fault> {
        let context = self.history.context().map(|c| c.doc.clone());
        let prompt_context = PromptContext {
            repository: conversation.repository.as_deref(),
            branch: conversation.branch.as_deref(),
            context: context.as_ref(),
            message: "",
        };
        let system = self.runtime.prompts.system(&prompt_context)?;
        let prompts = &self.runtime.prompts;
        Ok(self.history.messages(system, |message| {
            let context = PromptContext {
                message,
                ..prompt_context.clone()
            };
            prompts
                .first_message(&context)
                .unwrap_or_else(|_| message.to_string())
        }))
    }

    /// Summarises the middle of a long history, or of any history when it is `too_long` for
    /// the model. Whether it condensed; `Err` when the LLM failed for good.
    async fn condense(
        &mut self,
        llm: &LlmClient,
        too_long: bool,
    ) -> Result<Result<bool, Next>, Fault> {
        let settings = &self.runtime.settings;
        let Some(plan) = condense::plan(
            &self.history,
            settings.agent_condenser_max_events,
            settings.agent_condenser_keep_first,
            too_long,
        ) else {
            return Ok(Ok(false));
        };
        let request = condense::summary_request(self.history.summary(), &plan.forgotten);
        let (start, end, forgotten) = (plan.start, plan.end, plan.forgotten.len());
        let completion = match llm.complete(&request, &[]).await {
            Ok(completion) => completion,
            Err(error) => return Ok(Err(llm_failure(&error))),
        };
        let (metrics, usage) = figures(llm, &completion);
        let offset = settings.agent_condenser_keep_first;
        let draft = events::condensation(
            start,
            end,
            completion.message.content.trim(),
            offset,
            Some(metrics),
        );
        self.record(vec![draft], Some(usage)).await?;
        tracing::info!(conversation_id = %self.conversation_id, start, end, forgotten, too_long, "history condensed");
        Ok(Ok(true))
    }

    /// Attaches to the conversation's sandbox (or a new one), telling the model when an
    /// earlier sandbox was lost. `Err` holds a reason for the user.
    async fn prepare_sandbox(
        &mut self,
        conversation: &Conversation,
    ) -> Result<Result<(), String>, Fault> {
        let sandboxes = match self.runtime.sandboxes().await {
            Ok(sandboxes) => sandboxes,
            Err(reason) => return Ok(Err(format!("The sandbox could not be started: {reason}"))),
        };
        let previous = self.db().conversation_sandbox(&conversation.id).await?;
        let started = std::time::Instant::now();
        let info = match sandboxes.start(&conversation.id).await {
            Ok(info) => info,
            Err(error) => {
                metrics::counter!("openhands_sandbox_start_failures_total").increment(1);
                return Ok(Err(format!("The sandbox could not be started: {error}")));
            }
        };
        metrics::histogram!("openhands_sandbox_start_seconds")
            .record(started.elapsed().as_secs_f64());
        self.sandboxes = Some(sandboxes.clone());
        let fresh = previous.as_deref() != Some(info.id.as_str());
        if fresh {
            if let Some(previous) = previous {
                let note = format!(
                    "The earlier sandbox ({previous}) was lost and a new one was started: files and programs from before are gone, and the repository was checked out again."
                );
                self.record(vec![events::environment_note(&note)], None)
                    .await?;
            }
            if let Err(reason) = self
                .checkout(sandboxes.as_ref(), &info.id, conversation)
                .await?
            {
                return Ok(Err(reason));
            }
            self.db()
                .set_conversation_sandbox(&conversation.id, &info.id)
                .await?;
            // A new sandbox has no undo history, and no stdio MCP servers yet.
            self.toolbox.editor = Default::default();
            self.mcp_connected = false;
        }
        if let Err(reason) = self
            .export_secrets(sandboxes.as_ref(), &info.id, &conversation.owner_id)
            .await?
        {
            return Ok(Err(reason));
        }
        if fresh {
            self.run_setup_script(sandboxes.as_ref(), &info.id).await?;
        }
        self.toolbox.sandbox_id = info.id;
        Ok(Ok(()))
    }

    /// Clones the conversation's repository into a new sandbox, with the provider's token
    /// kept on the worker, and records what was cloned. `Err` holds a reason for the user.
    async fn checkout(
        &mut self,
        sandboxes: &dyn crate::sandbox::SandboxBackend,
        sandbox_id: &str,
        conversation: &Conversation,
    ) -> Result<Result<(), String>, Fault> {
        let source = match (
            self.history.repository(),
            conversation.repository.as_deref(),
        ) {
            (Some(repository), _) => self
                .ctx
                .providers
                .clients()
                .checkout_source(self.place().as_ref(), &repository)
                .await
                .map(Some),
            (None, Some(repository)) if conversation.trigger_kind == "web" => self
                .ctx
                .providers
                .clients()
                .web_checkout_source(
                    self.db(),
                    &conversation.owner_id,
                    repository,
                    conversation.git_provider.as_deref(),
                    conversation.branch.as_deref(),
                )
                .await
                .map(Some),
            (None, _) => return Ok(Ok(())),
        };
        let repository = conversation
            .repository
            .as_deref()
            .unwrap_or("the repository");
        let source = match source {
            Ok(Some(source)) => source,
            Ok(None) => return Ok(Ok(())),
            Err(error) => {
                return Ok(Err(format!(
                    "The repository {repository} is not reachable: {error:#}"
                )));
            }
        };
        let branch = source.branch.as_deref().or(conversation.branch.as_deref());
        let checkout = match git::clone_into(
            sandboxes,
            sandbox_id,
            &source.remote,
            branch,
            REPOSITORY_DIR,
        )
        .await
        {
            Ok(checkout) => checkout,
            Err(error) => {
                return Ok(Err(format!(
                    "The repository {repository} could not be cloned: {error:#}"
                )));
            }
        };
        let record = events::repository_checkout(
            conversation.repository.as_deref(),
            &checkout.branch,
            &checkout.base,
            &checkout.path,
            source.fork.as_deref(),
        );
        self.checkout = Some(checkout);
        self.record(vec![record], None).await?;
        Ok(Ok(()))
    }

    /// Calls recorded as started but never answered (the run was killed while they ran) are
    /// answered with what is known: not whether they took effect. Those in `kept` are about to
    /// run (the user confirmed them).
    async fn answer_lost_calls(&mut self, kept: &[i64]) -> Result<(), Fault> {
        let mut lost = self.history.unanswered_calls();
        lost.retain(|(id, _)| !kept.contains(id));
        if lost.is_empty() {
            return Ok(());
        }
        let drafts = lost
            .iter()
            .map(|(id, meta)| events::error_observation(LOST_RESULT, Some(*id), Some(meta)))
            .collect();
        self.record(drafts, None).await?;
        Ok(())
    }

    /// Reads a tool call of the model: an MCP tool's, or a built-in one's.
    fn parse_call(&self, call: &ToolCall) -> Result<Call, String> {
        if self.toolbox.mcp.offers(&call.name) {
            return mcp::arguments_of(call).map(|arguments| Call::Mcp {
                name: call.name.clone(),
                arguments,
            });
        }
        tools::parse(call)
    }

    /// Connects to the MCP servers of the service and of the conversation's owner, and
    /// offers their tools from the next step on. What cannot be used is said in a note.
    async fn connect_mcp(&mut self, owner_id: &str) -> Result<(), Fault> {
        self.mcp_connected = true;
        let (config, mut problems) = self.mcp_config(owner_id).await?;
        if config.is_empty() {
            self.toolbox.mcp = Default::default();
        } else {
            let builtin: Vec<String> = tools::specs().into_iter().map(|s| s.name).collect();
            let builtin: Vec<&str> = builtin.iter().map(String::as_str).collect();
            let place = self
                .sandboxes
                .as_deref()
                .map(|sandboxes| mcp::SandboxPlace {
                    sandboxes,
                    sandbox_id: &self.toolbox.sandbox_id,
                });
            let (connected, unreachable) = McpTools::connect(&config, place, &builtin).await;
            problems.extend(unreachable);
            self.toolbox.mcp = Arc::new(connected);
        }
        if !problems.is_empty() {
            let note = format!(
                "Some MCP tools are not available in this run:\n- {}",
                problems.join("\n- ")
            );
            self.record(vec![events::environment_note(&note)], None)
                .await?;
        }
        Ok(())
    }

    /// The MCP servers of the service (MCP_CONFIG, else the administrators' stored ones) and
    /// of the owner, with what could not be read, in words.
    async fn mcp_config(&self, owner_id: &str) -> Result<(McpConfig, Vec<String>), Fault> {
        let mut problems = Vec::new();
        let keyring = &self.runtime.keyring;
        let read_stored = |sealed: Option<String>, whose: &str| -> Result<McpConfig, String> {
            let Some(sealed) = sealed else {
                return Ok(McpConfig::default());
            };
            keyring
                .open(&sealed)
                .map_err(|e| format!("{e:#}"))
                .and_then(|json| McpConfig::from_json(&json))
                .map_err(|error| {
                    format!("{whose} MCP settings cannot be read ({error}); save them again.")
                })
        };
        let service = match self.runtime.settings.mcp() {
            Ok(Some(config)) => Ok(config),
            Ok(None) => read_stored(
                self.db().service_setting(SERVICE_MCP_CONFIG).await?,
                "The service's",
            ),
            Err(error) => Err(error.to_string()),
        };
        let own = read_stored(self.db().user_mcp_config(owner_id).await?, "Your");
        let [service, own] = [service, own].map(|read| {
            read.unwrap_or_else(|problem| {
                problems.push(problem);
                McpConfig::default()
            })
        });
        Ok((service.joined(&own), problems))
    }

    /// The editor's undo history and the task list, from the log.
    fn rebuild_tools(&mut self) {
        let mut editor = super::editor::FileEditor::new();
        let mut tasks = Vec::new();
        for item in &self.history.items {
            if let Item::Observation { name, extras, .. } = item {
                match name.as_str() {
                    "edit" | "write" => editor.replay(
                        extras.command.as_deref().unwrap_or(""),
                        extras.path.as_deref().unwrap_or(""),
                        extras.old_content.clone(),
                    ),
                    "task_tracking" => {
                        if let Some(list) = &extras.task_list {
                            tasks = list.clone();
                        }
                    }
                    _ => {}
                }
            }
        }
        self.toolbox.editor = editor;
        self.toolbox.tasks = tasks;
    }
}

/// How an LLM failure ends the run, in words for the user.
fn llm_failure(error: &LlmError) -> Next {
    if error.is_rate_limited() {
        return Next::Rest(
            AgentState::RateLimited,
            format!(
                "The LLM provider is rate-limiting requests ({error}). Send a message to try again."
            ),
        );
    }
    Next::Rest(AgentState::Error, error.to_string())
}

/// One call's figures: for the event, and for the conversation's sums.
pub(super) fn figures(llm: &LlmClient, completion: &Completion) -> (Value, ConversationStats) {
    let latency_ms = completion.latency.as_millis() as i64;
    let usage = &completion.usage;
    let metrics = json!({
        "model": llm.model(),
        "cost": completion.cost,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "latency_ms": latency_ms,
        "attempts": completion.attempts,
    });
    let stats = ConversationStats {
        llm_calls: 1,
        prompt_tokens: usage.prompt_tokens as i64,
        completion_tokens: usage.completion_tokens as i64,
        cached_tokens: usage.cached_tokens as i64,
        cost_usd: completion.cost,
        llm_latency_ms: latency_ms,
    };
    (metrics, stats)
}
