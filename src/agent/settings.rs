//! The server's default LLM (a user's own settings override it once the web API stores them).

use clap::Args;

use super::llm::{LlmClient, PriceTable};
use super::mcp::McpConfig;
use crate::setting::{ConfigError, Secret};

#[derive(Debug, Clone, Default, Args)]
pub struct LlmSettings {
    /// The model, prefixed by its provider: `anthropic/…`, `openai/…`, `openrouter/…`,
    /// `ollama/…`, `litellm_proxy/…` (with LLM_BASE_URL), or any name with LLM_BASE_URL.
    #[arg(long, global = true, env = "LLM_MODEL")]
    pub llm_model: Option<String>,
    /// The provider's API key.
    #[arg(long, global = true, env = "LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<Secret>,
    /// The provider's base URL (OpenAI-compatible servers, proxies, Azure-style endpoints).
    #[arg(long, global = true, env = "LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Prices per million tokens, as JSON or the path of a JSON file:
    /// `{"model": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}`.
    #[arg(long, global = true, env = "LLM_PRICE_TABLE")]
    pub llm_price_table: Option<String>,
    /// The model's context window in input tokens, when it is not one the service knows (or
    /// to keep prompts shorter): the history is condensed before prompts come near it.
    #[arg(long, global = true, env = "LLM_MAX_INPUT_TOKENS")]
    pub llm_max_input_tokens: Option<u64>,
    /// Whether the server's model is given the images users attach (unset: as known for the
    /// model's family); a model that is not gets a note naming them.
    #[arg(long, global = true, env = "LLM_ACCEPTS_IMAGES", value_parser = clap::builder::BoolishValueParser::new())]
    pub llm_accepts_images: Option<bool>,
}

impl LlmSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.llm_base_url {
            crate::setting::check_url("LLM_BASE_URL", url)?;
        }
        // The client reads the price table too.
        match self.llm_model {
            Some(_) => self.client().map(|_| ()),
            None => self.prices().map(|_| ()),
        }
    }

    /// The price table: inline JSON, or the JSON file it names.
    pub fn prices(&self) -> Result<PriceTable, ConfigError> {
        let Some(value) = self.llm_price_table.as_deref().map(str::trim) else {
            return Ok(PriceTable::default());
        };
        let text = if value.starts_with('{') {
            value.to_string()
        } else {
            std::fs::read_to_string(value).map_err(|e| {
                ConfigError::new(format!("LLM_PRICE_TABLE: cannot read `{value}`: {e}"))
            })?
        };
        PriceTable::from_json(&text).map_err(|e| ConfigError::new(format!("LLM_PRICE_TABLE: {e}")))
    }

    /// The client of the server's default model; `None` when LLM_MODEL is unset.
    pub fn client(&self) -> Result<Option<LlmClient>, ConfigError> {
        let Some(model) = &self.llm_model else {
            return Ok(None);
        };
        let client = LlmClient::new(
            model,
            self.llm_api_key.clone(),
            self.llm_base_url.as_deref(),
        )
        .map_err(|e| ConfigError::new(e.to_string()))?;
        if self.llm_max_input_tokens.is_some_and(|t| t < 1_000) {
            return Err(ConfigError::new(
                "LLM_MAX_INPUT_TOKENS must be at least 1000 (the system prompt and tools alone take about that)",
            ));
        }
        Ok(Some(
            client
                .with_prices(self.prices()?)
                .with_max_input_tokens(self.llm_max_input_tokens)
                .with_images(self.llm_accepts_images),
        ))
    }
}

/// How far the agent may go on its own, and how its history is kept short.
#[derive(Debug, Clone, Args)]
pub struct AgentSettings {
    /// Steps (LLM calls) per task before the agent stops and asks; a user's own limit overrides
    /// it, and each new message from the user allows as many again.
    #[arg(
        long,
        global = true,
        env = "AGENT_MAX_ITERATIONS",
        default_value_t = 100
    )]
    pub agent_max_iterations: u32,
    /// LLM spending per task in USD (unset: no limit); a user's own limit overrides it.
    #[arg(long, global = true, env = "AGENT_MAX_BUDGET_USD")]
    pub agent_max_budget_usd: Option<f64>,
    /// When the history the model sees passes this many events, its middle is summarised.
    #[arg(
        long,
        global = true,
        env = "AGENT_CONDENSER_MAX_EVENTS",
        default_value_t = 120
    )]
    pub agent_condenser_max_events: usize,
    /// Events at the start of the history that are always kept as they are.
    #[arg(
        long,
        global = true,
        env = "AGENT_CONDENSER_KEEP_FIRST",
        default_value_t = 4
    )]
    pub agent_condenser_keep_first: usize,
    /// When the prompt the model would see passes this share of the model's context window
    /// (LLM_MAX_INPUT_TOKENS, or the figure the service knows for the model), the history is
    /// condensed first.
    #[arg(
        long,
        global = true,
        env = "AGENT_CONDENSER_TOKEN_FRACTION",
        default_value_t = 0.75
    )]
    pub agent_condenser_token_fraction: f64,
    /// A directory with `system_prompt.j2` and/or `user_prompt.j2` replacing the built-in
    /// prompt templates.
    #[arg(long, global = true, env = "AGENT_PROMPT_DIR")]
    pub agent_prompt_dir: Option<std::path::PathBuf>,
    /// A directory of the service's own instructions and knowledge microagents (`*.md`, with
    /// `triggers` in the front matter for knowledge), given to the agent in every conversation.
    #[arg(long, global = true, env = "OPENHANDS_SKILLS_DIR")]
    pub skills_dir: Option<std::path::PathBuf>,
    /// How long one LLM request may take before it counts as failed and is retried (the
    /// server's model and users' own alike).
    #[arg(long, global = true, env = "LLM_TIMEOUT", default_value = "600s", value_parser = humantime::parse_duration)]
    pub llm_timeout: std::time::Duration,
    /// MCP servers whose tools every conversation's agent may use, in OpenHands' `mcp_config`
    /// shape, as JSON or the path of a JSON file. Set here, it replaces the one administrators
    /// store in the dashboard; users add their own in their settings.
    #[arg(long, global = true, env = "MCP_CONFIG", hide_env_values = true)]
    pub mcp_config: Option<String>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            agent_max_iterations: 100,
            agent_max_budget_usd: None,
            agent_condenser_max_events: 120,
            agent_condenser_keep_first: 4,
            agent_condenser_token_fraction: 0.75,
            agent_prompt_dir: None,
            skills_dir: None,
            llm_timeout: super::llm::DEFAULT_LLM_TIMEOUT,
            mcp_config: None,
        }
    }
}

impl AgentSettings {
    /// The service's MCP configuration from MCP_CONFIG (inline JSON or the file it names).
    pub fn mcp(&self) -> Result<Option<McpConfig>, ConfigError> {
        let Some(value) = self.mcp_config.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let text = if value.starts_with('{') {
            value.to_string()
        } else {
            std::fs::read_to_string(value)
                .map_err(|e| ConfigError::new(format!("MCP_CONFIG: cannot read `{value}`: {e}")))?
        };
        McpConfig::from_json(&text)
            .map(Some)
            .map_err(|e| ConfigError::new(format!("MCP_CONFIG: {e}")))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mcp()?;
        if self.agent_max_iterations == 0 {
            return Err(ConfigError::new("AGENT_MAX_ITERATIONS must be at least 1"));
        }
        if let Some(budget) = self.agent_max_budget_usd
            && !(budget.is_finite() && budget > 0.0)
        {
            return Err(ConfigError::new(format!(
                "AGENT_MAX_BUDGET_USD must be a positive amount in USD; got {budget}"
            )));
        }
        // The summary replaces the middle: there must be room for the head, the summary and
        // a tail of at least a few events.
        if self.agent_condenser_max_events < self.agent_condenser_keep_first * 2 + 8 {
            return Err(ConfigError::new(format!(
                "AGENT_CONDENSER_MAX_EVENTS ({}) must be at least twice AGENT_CONDENSER_KEEP_FIRST ({}) plus 8",
                self.agent_condenser_max_events, self.agent_condenser_keep_first
            )));
        }
        if !(0.1..=0.95).contains(&self.agent_condenser_token_fraction) {
            return Err(ConfigError::new(format!(
                "AGENT_CONDENSER_TOKEN_FRACTION must be between 0.1 and 0.95; got {}",
                self.agent_condenser_token_fraction
            )));
        }
        if self.llm_timeout.is_zero() {
            return Err(ConfigError::new(
                "LLM_TIMEOUT must be greater than zero (e.g. 120s)",
            ));
        }
        if let Some(dir) = &self.skills_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::new(format!(
                "OPENHANDS_SKILLS_DIR {} is not a directory",
                dir.display()
            )));
        }
        if let Some(dir) = &self.agent_prompt_dir {
            super::prompt::Prompts::load(Some(dir)).map_err(|e| ConfigError::new(e.to_string()))?;
        }
        Ok(())
    }
}
