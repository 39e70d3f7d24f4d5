//! The server's default LLM (a user's own settings override it once the web API stores them).

use clap::Args;

use super::llm::{LlmClient, PriceTable};
use crate::config::{ConfigError, Secret};

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
}

impl LlmSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.llm_base_url {
            crate::config::check_url("LLM_BASE_URL", url)?;
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
        Ok(Some(client.with_prices(self.prices()?)))
    }
}
