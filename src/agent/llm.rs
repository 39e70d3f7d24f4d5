//! The LLM client: providers chosen by model prefix, as in OpenHands' routing — OpenAI-compatible
//! `POST {base}/chat/completions` with `tools` (openai/, openrouter/, ollama/, litellm_proxy/,
//! vLLM or Azure-style base URLs) and Anthropic `POST {base}/v1/messages` with `tool_use`
//! (anthropic/) — with retries, usage and cost per call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::setting::Secret;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of the conversation with the model, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The tools the assistant asked for (assistant messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call this message answers (tool messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images the user attached (user messages): http(s) addresses or `data:image/…;base64,`
    /// URLs. A model that cannot see images gets a note instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self::plain(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(Role::User, content)
    }

    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            tool_call_id: Some(call_id.into()),
            ..Self::plain(Role::Tool, content)
        }
    }

    fn plain(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }
}

/// A tool call as the model made it; `arguments` is the raw JSON text, which may be malformed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the parameters.
    pub parameters: Value,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
}

/// One answer of the model with what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub message: ChatMessage,
    pub usage: Usage,
    /// From the request to the full answer, retries included.
    pub latency: Duration,
    /// In US dollars, from the price table; 0 for models it does not list.
    pub cost: f64,
    /// Attempts it took (1 without retries).
    pub attempts: u32,
}

/// Why a call failed for good.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM API key was rejected by {provider} ({status}): {message}")]
    Rejected {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("{provider} refused the request (400): {message}")]
    BadRequest { provider: String, message: String },
    /// The prompt is longer than the model takes: the history must be shortened.
    #[error(
        "{provider} refused the request: the conversation is longer than the model's context window ({message})"
    )]
    ContextWindowExceeded { provider: String, message: String },
    #[error("{provider} did not answer after {attempts} attempts: {last}")]
    Unavailable {
        provider: String,
        attempts: u32,
        last: String,
    },
    #[error("{provider} answered something that is not a completion: {detail}")]
    Malformed { provider: String, detail: String },
    #[error("{0}")]
    Config(String),
}

impl LlmError {
    /// The prompt was too long for the model: condensing the history may help.
    pub fn is_context_overflow(&self) -> bool {
        matches!(self, LlmError::ContextWindowExceeded { .. })
    }

    /// The provider kept answering 429 until the retries ran out.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, LlmError::Unavailable { last, .. } if last.starts_with("429"))
    }
}

/// Which wire format, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    OpenAiCompatible { base_url: String },
    Anthropic { base_url: String },
}

/// Retry policy: exponential backoff with full jitter, `Retry-After` honoured.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        // Full jitter: uniformly in [ceiling/2, ceiling].
        let fraction = 0.5 + 0.5 * (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        ceiling.mul_f64(fraction)
    }
}

/// Dollars per million tokens of a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cached prompt tokens; the input price when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

/// Prices by model name (without the provider prefix), configurable as JSON
/// `{"model": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTable(pub HashMap<String, Price>);

impl PriceTable {
    pub fn from_json(text: &str) -> Result<PriceTable, String> {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "the price table is not JSON of the form {{\"model\": {{\"input\": 3.0, \"output\": 15.0}}}}: {e}"
            )
        })
    }

    pub fn cost(&self, model: &str, usage: &Usage) -> f64 {
        let Some(price) = self.0.get(model) else {
            return 0.0;
        };
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let fresh = usage.prompt_tokens - cached;
        (fresh as f64 * price.input
            + cached as f64 * price.cached_input.unwrap_or(price.input)
            + usage.completion_tokens as f64 * price.output)
            / 1_000_000.0
    }
}

/// A client for one model.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    provider: Provider,
    /// The model name sent to the provider (the prefix removed).
    model: String,
    api_key: Option<Secret>,
    retry: RetryPolicy,
    prices: PriceTable,
    max_tokens: u32,
    /// How long one request may take before it counts as failed (and is retried).
    timeout: Duration,
    /// The most tokens a prompt may have (LLM_MAX_INPUT_TOKENS); `None`: the known figure of
    /// the model, if there is one.
    max_input_tokens: Option<u64>,
    /// Whether the model is given images (LLM_ACCEPTS_IMAGES); `None`: as known for its family.
    accepts_images: Option<bool>,
}

/// Model families that take images in their prompts, by the start of the model's name.
const IMAGE_FAMILIES: &[&str] = &[
    "claude-", "gpt-4o", "gpt-4.1", "gpt-5", "o3", "o4-mini", "gemini-",
];

/// The context windows (input tokens) that model families publish, by the start of the
/// model's name: what the history is kept under when LLM_MAX_INPUT_TOKENS is not set.
const KNOWN_CONTEXT_WINDOWS: &[(&str, u64)] = &[
    ("claude-", 200_000),
    ("gpt-4o", 128_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4-turbo", 128_000),
    ("gpt-5", 272_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4-mini", 200_000),
    ("gemini-2.5", 1_048_576),
];

/// The default of LLM_TIMEOUT.
pub const DEFAULT_LLM_TIMEOUT: Duration = Duration::from_secs(600);

impl LlmClient {
    /// Routes `model` (`anthropic/claude-…`, `openai/gpt-…`, `openrouter/…`, `ollama/…`,
    /// `litellm_proxy/…`, or any name with a `base_url`) to its provider.
    pub fn new(
        model: &str,
        api_key: Option<Secret>,
        base_url: Option<&str>,
    ) -> Result<LlmClient, LlmError> {
        let (prefix, name) = model.split_once('/').unwrap_or(("", model));
        let base = |default: &str| {
            base_url
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_string()
        };
        let (provider, name) = match prefix {
            "anthropic" => (
                Provider::Anthropic {
                    base_url: base("https://api.anthropic.com"),
                },
                name,
            ),
            "openai" => (
                Provider::OpenAiCompatible {
                    base_url: base("https://api.openai.com/v1"),
                },
                name,
            ),
            "openrouter" => (
                Provider::OpenAiCompatible {
                    base_url: base("https://openrouter.ai/api/v1"),
                },
                name,
            ),
            "ollama" => (
                Provider::OpenAiCompatible {
                    base_url: base("http://127.0.0.1:11434/v1"),
                },
                name,
            ),
            _ => match base_url {
                // litellm_proxy/…, vLLM, Azure-style and other OpenAI-compatible servers.
                Some(url) => (
                    Provider::OpenAiCompatible {
                        base_url: url.trim_end_matches('/').to_string(),
                    },
                    if prefix == "litellm_proxy" {
                        name
                    } else {
                        model
                    },
                ),
                None => {
                    return Err(LlmError::Config(format!(
                        "LLM_MODEL `{model}` names no known provider (anthropic/, openai/, openrouter/, ollama/); set LLM_BASE_URL for an OpenAI-compatible server"
                    )));
                }
            },
        };
        if name.is_empty() {
            return Err(LlmError::Config(format!(
                "LLM_MODEL `{model}` has no model name after its provider"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(LlmClient {
            http,
            provider,
            model: name.to_string(),
            api_key,
            retry: RetryPolicy::default(),
            prices: PriceTable::default(),
            max_tokens: 8192,
            timeout: DEFAULT_LLM_TIMEOUT,
            max_input_tokens: None,
            accepts_images: None,
        })
    }

    /// Whether the model is given images, instead of what is known of its family.
    pub fn with_images(mut self, accepts: Option<bool>) -> Self {
        self.accepts_images = accepts;
        self
    }

    /// Whether images attached to user messages are sent to the model: LLM_ACCEPTS_IMAGES, or
    /// else whether its family takes them. Otherwise a note tells the model they were there.
    pub fn accepts_images(&self) -> bool {
        self.accepts_images.unwrap_or_else(|| {
            let name = self.model.rsplit('/').next().unwrap_or(&self.model);
            IMAGE_FAMILIES.iter().any(|family| name.starts_with(family))
        })
    }

    /// The model's context window, in input tokens, instead of the known figure.
    pub fn with_max_input_tokens(mut self, tokens: Option<u64>) -> Self {
        self.max_input_tokens = tokens;
        self
    }

    /// How many tokens a prompt may have: LLM_MAX_INPUT_TOKENS, else the figure published for
    /// the model's family, else `None` (unknown: only the provider's refusal tells).
    pub fn context_window(&self) -> Option<u64> {
        if self.max_input_tokens.is_some() {
            return self.max_input_tokens;
        }
        // `openrouter/anthropic/claude-…` names its model after the last slash.
        let name = self.model.rsplit('/').next().unwrap_or(&self.model);
        KNOWN_CONTEXT_WINDOWS
            .iter()
            .find(|(family, _)| name.starts_with(family))
            .map(|(_, tokens)| *tokens)
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn provider_name(&self) -> String {
        match &self.provider {
            Provider::Anthropic { base_url } => format!("Anthropic at {base_url}"),
            Provider::OpenAiCompatible { base_url } => format!("the LLM API at {base_url}"),
        }
    }

    /// One completion, retried on connection errors, timeouts, 429 and 5xx.
    pub async fn complete(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let provider = self.provider_name();
        let mut last = String::new();
        for attempt in 1..=self.retry.max_attempts.max(1) {
            let request = self.request(messages, tools);
            let (retry_after, reason) = match request.send().await {
                Err(error) => (None, format!("{error}")),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64);
                    let body = response.text().await.unwrap_or_default();
                    match status {
                        200..=299 => {
                            let (message, usage) =
                                self.parse(&body).map_err(|detail| LlmError::Malformed {
                                    provider: provider.clone(),
                                    detail,
                                })?;
                            let cost = self.prices.cost(&self.model, &usage);
                            metrics::histogram!("openhands_llm_call_seconds")
                                .record(started.elapsed().as_secs_f64());
                            return Ok(Completion {
                                message,
                                usage,
                                latency: started.elapsed(),
                                cost,
                                attempts: attempt,
                            });
                        }
                        401 | 403 => {
                            return Err(LlmError::Rejected {
                                provider,
                                status,
                                message: error_message(&body),
                            });
                        }
                        400 | 413 if is_context_overflow(&body) => {
                            return Err(LlmError::ContextWindowExceeded {
                                provider,
                                message: error_message(&body),
                            });
                        }
                        400 => {
                            return Err(LlmError::BadRequest {
                                provider,
                                message: error_message(&body),
                            });
                        }
                        429 | 500..=599 => {
                            (retry_after, format!("{status}: {}", error_message(&body)))
                        }
                        other => {
                            return Err(LlmError::BadRequest {
                                provider,
                                message: format!("{other}: {}", error_message(&body)),
                            });
                        }
                    }
                }
            };
            last = reason;
            if attempt < self.retry.max_attempts {
                let wait = self.retry.delay(attempt, retry_after);
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, reason = %last, "LLM call failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
        Err(LlmError::Unavailable {
            provider,
            attempts: self.retry.max_attempts.max(1),
            last,
        })
    }

    fn request(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> reqwest::RequestBuilder {
        let key = self
            .api_key
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        match &self.provider {
            Provider::OpenAiCompatible { base_url } => {
                let mut request = self
                    .http
                    .post(format!("{base_url}/chat/completions"))
                    .timeout(self.timeout)
                    .json(&openai_body(
                        &self.model,
                        messages,
                        tools,
                        self.accepts_images(),
                    ));
                if !key.is_empty() {
                    request = request.bearer_auth(key).header("api-key", key);
                }
                request
            }
            Provider::Anthropic { base_url } => self
                .http
                .post(format!("{base_url}/v1/messages"))
                .timeout(self.timeout)
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
                .json(&anthropic_body(
                    &self.model,
                    self.max_tokens,
                    messages,
                    tools,
                    self.accepts_images(),
                )),
        }
    }

    fn parse(&self, body: &str) -> Result<(ChatMessage, Usage), String> {
        let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        match self.provider {
            Provider::OpenAiCompatible { .. } => parse_openai(&value),
            Provider::Anthropic { .. } => parse_anthropic(&value),
        }
    }
}

/// The provider's own error message, else the body's start.
/// Whether an error body says the prompt is longer than the model's context window: OpenAI's
/// `context_length_exceeded` code, Anthropic's "prompt is too long", and the wordings of
/// OpenAI-compatible servers (vLLM, Ollama, proxies) for the same.
fn is_context_overflow(body: &str) -> bool {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    if parsed
        .as_ref()
        .is_some_and(|v| v["error"]["code"] == "context_length_exceeded")
    {
        return true;
    }
    let text = error_message(body).to_ascii_lowercase();
    [
        "context length",
        "context window",
        "context_length_exceeded",
        "prompt is too long",
        "input is too long",
        "too many tokens",
        "maximum context",
    ]
    .iter()
    .any(|phrase| text.contains(phrase))
}

fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
            .map(str::to_string)
    });
    message.unwrap_or_else(|| body.chars().take(300).collect())
}

/// A user message's text, with a note naming its images when the model is not given them.
fn text_with_image_note(message: &ChatMessage, images: bool) -> String {
    if images || message.images.is_empty() {
        return message.content.clone();
    }
    let named: Vec<&str> = message
        .images
        .iter()
        .map(|url| {
            if url.starts_with("data:") {
                "an uploaded image"
            } else {
                url.as_str()
            }
        })
        .collect();
    format!(
        "{}\n\n[The user attached {} image(s), which this model cannot see: {}.]",
        message.content,
        named.len(),
        named.join(", ")
    )
}

/// A `data:image/png;base64,…` URL's media type and data.
fn data_url_parts(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (media_type, data) = rest.split_once(";base64,")?;
    Some((media_type, data))
}

fn openai_body(model: &str, messages: &[ChatMessage], tools: &[ToolSpec], images: bool) -> Value {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| match m.role {
            Role::User if images && !m.images.is_empty() => {
                let mut parts = vec![json!({"type": "text", "text": m.content})];
                parts.extend(
                    m.images
                        .iter()
                        .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
                );
                json!({"role": "user", "content": parts})
            }
            Role::User => json!({"role": "user", "content": text_with_image_note(m, images)}),
            Role::Tool => json!({
                "role": "tool",
                "tool_call_id": m.tool_call_id,
                "content": m.content,
            }),
            Role::Assistant if !m.tool_calls.is_empty() => json!({
                "role": "assistant",
                "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
                "tool_calls": m.tool_calls.iter().map(|c| json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })).collect::<Vec<_>>(),
            }),
            role => json!({"role": role, "content": m.content}),
        })
        .collect();
    let mut body = json!({"model": model, "messages": messages});
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                })
            })
            .collect();
    }
    body
}

fn parse_openai(value: &Value) -> Result<(ChatMessage, Usage), String> {
    let message = &value["choices"][0]["message"];
    if !message.is_object() {
        return Err("no choices[0].message".into());
    }
    let tool_calls = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    name: c["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    arguments: match &c["function"]["arguments"] {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = &value["usage"];
    Ok((
        ChatMessage {
            role: Role::Assistant,
            content: message["content"].as_str().unwrap_or_default().to_string(),
            tool_calls,
            tool_call_id: None,
            images: Vec::new(),
        },
        Usage {
            prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
            cached_tokens: usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
        },
    ))
}

fn anthropic_body(
    model: &str,
    max_tokens: u32,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    images: bool,
) -> Value {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    // Anthropic wants tool results as user content blocks, consecutive ones in one message.
    let mut turns: Vec<Value> = Vec::new();
    for m in messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = match m.role {
            Role::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id,
                    "content": m.content,
                })],
            ),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for call in &m.tool_calls {
                    let input: Value =
                        serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                ("assistant", blocks)
            }
            _ => {
                let mut blocks =
                    vec![json!({"type": "text", "text": text_with_image_note(m, images)})];
                if images {
                    blocks.extend(m.images.iter().map(|url| match data_url_parts(url) {
                        Some((media_type, data)) => json!({"type": "image", "source": {
                            "type": "base64", "media_type": media_type, "data": data,
                        }}),
                        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                    }));
                }
                ("user", blocks)
            }
        };
        match turns.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ => turns.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": turns});
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    body
}

fn parse_anthropic(value: &Value) -> Result<(ChatMessage, Usage), String> {
    let content = value["content"]
        .as_array()
        .ok_or_else(|| "no content array".to_string())?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_string(),
                name: block["name"].as_str().unwrap_or_default().to_string(),
                arguments: block["input"].to_string(),
            }),
            _ => {}
        }
    }
    let usage = &value["usage"];
    let cached = usage["cache_read_input_tokens"].as_u64().unwrap_or(0);
    Ok((
        ChatMessage {
            role: Role::Assistant,
            content: text,
            tool_calls,
            tool_call_id: None,
            images: Vec::new(),
        },
        Usage {
            // Anthropic counts cached prompt tokens apart from input_tokens.
            prompt_tokens: usage["input_tokens"].as_u64().unwrap_or(0) + cached,
            completion_tokens: usage["output_tokens"].as_u64().unwrap_or(0),
            cached_tokens: cached,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_overflows_are_told_from_other_refusals() {
        // As OpenAI, Anthropic and vLLM word them.
        let openai = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens in the messages.","type":"BadRequestError","code":400}"#;
        for body in [openai, anthropic, vllm] {
            assert!(is_context_overflow(body), "{body}");
        }
        let other = r#"{"error":{"message":"Invalid value for 'tool_choice'","type":"invalid_request_error","code":null}}"#;
        assert!(!is_context_overflow(other));
        assert!(!is_context_overflow("not json"));
    }

    #[test]
    fn the_context_window_is_the_setting_or_the_models_published_figure() {
        let client = |model: &str| LlmClient::new(model, None, Some("http://127.0.0.1:9")).unwrap();
        assert_eq!(
            client("anthropic/claude-sonnet-4-5").context_window(),
            Some(200_000)
        );
        assert_eq!(client("openai/gpt-4o-mini").context_window(), Some(128_000));
        assert_eq!(
            client("openrouter/openai/gpt-4.1").context_window(),
            Some(1_047_576)
        );
        assert_eq!(client("ollama/qwen3").context_window(), None);
        assert_eq!(
            client("ollama/qwen3")
                .with_max_input_tokens(Some(32_000))
                .context_window(),
            Some(32_000)
        );
    }

    #[test]
    fn routes_by_prefix() {
        let c = LlmClient::new("anthropic/claude-sonnet-4", None, None).unwrap();
        assert_eq!(c.model(), "claude-sonnet-4");
        assert!(matches!(c.provider(), Provider::Anthropic { .. }));
        let c = LlmClient::new("openrouter/meta/llama-3", None, None).unwrap();
        assert_eq!(c.model(), "meta/llama-3");
        let c =
            LlmClient::new("litellm_proxy/gpt-4o", None, Some("http://127.0.0.1:4000/")).unwrap();
        assert_eq!(c.model(), "gpt-4o");
        assert_eq!(
            c.provider(),
            &Provider::OpenAiCompatible {
                base_url: "http://127.0.0.1:4000".into()
            }
        );
        let c = LlmClient::new("my-vllm-model", None, Some("http://127.0.0.1:8000/v1")).unwrap();
        assert_eq!(c.model(), "my-vllm-model");
        assert!(LlmClient::new("mystery/model", None, None).is_err());
        assert!(LlmClient::new("anthropic/", None, None).is_err());
    }

    #[test]
    fn cost_from_the_price_table() {
        let prices =
            PriceTable::from_json(r#"{"m": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}"#)
                .unwrap();
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 100_000,
            cached_tokens: 500_000,
        };
        let cost = prices.cost("m", &usage);
        assert!((cost - (1.5 + 0.15 + 1.5)).abs() < 1e-9, "{cost}");
        assert_eq!(prices.cost("other", &usage), 0.0);
        assert!(PriceTable::from_json("[1]").is_err());
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let first = policy.delay(1, None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let fourth = policy.delay(4, None);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(800));
        assert!(policy.delay(10, None) <= Duration::from_secs(1));
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(250))),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn anthropic_groups_tool_results_in_one_user_turn() {
        let assistant = ChatMessage {
            role: Role::Assistant,
            content: String::new(),
            tool_calls: vec![
                ToolCall {
                    id: "a".into(),
                    name: "think".into(),
                    arguments: r#"{"thought":"x"}"#.into(),
                },
                ToolCall {
                    id: "b".into(),
                    name: "think".into(),
                    arguments: "{bad".into(),
                },
            ],
            tool_call_id: None,
            images: Vec::new(),
        };
        let body = anthropic_body(
            "m",
            100,
            &[
                ChatMessage::system("be brief"),
                ChatMessage::user("hi"),
                assistant,
                ChatMessage::tool_result("a", "ok"),
                ChatMessage::tool_result("b", "bad json"),
            ],
            &[],
            false,
        );
        assert_eq!(body["system"], "be brief");
        let turns = body["messages"].as_array().unwrap();
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[1]["content"][0]["input"]["thought"], "x");
        assert_eq!(turns[2]["content"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn images_go_to_models_that_take_them_and_a_note_to_others() {
        let message = ChatMessage {
            images: vec![
                "https://example.com/screen.png".into(),
                "data:image/png;base64,iVBORw0KGgo=".into(),
            ],
            ..ChatMessage::user("what is wrong here?")
        };
        let openai = openai_body("gpt-4o", std::slice::from_ref(&message), &[], true);
        let parts = &openai["messages"][0]["content"];
        assert_eq!(
            parts[0],
            json!({"type": "text", "text": "what is wrong here?"})
        );
        assert_eq!(
            parts[1]["image_url"]["url"],
            "https://example.com/screen.png"
        );
        assert_eq!(
            parts[2]["image_url"]["url"],
            "data:image/png;base64,iVBORw0KGgo="
        );
        let anthropic = anthropic_body("claude", 100, std::slice::from_ref(&message), &[], true);
        let blocks = &anthropic["messages"][0]["content"];
        assert_eq!(
            blocks[1]["source"],
            json!({"type": "url", "url": "https://example.com/screen.png"})
        );
        assert_eq!(
            blocks[2]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
        );
        for body in [
            openai_body("m", std::slice::from_ref(&message), &[], false),
            anthropic_body("m", 100, std::slice::from_ref(&message), &[], false),
        ] {
            let text = body["messages"][0]["content"].to_string();
            assert!(
                text.contains("cannot see") && text.contains("https://example.com/screen.png"),
                "{text}"
            );
            assert!(
                text.contains("an uploaded image") && !text.contains("iVBORw0KGgo"),
                "{text}"
            );
        }
        let client = |model: &str| LlmClient::new(model, None, Some("http://127.0.0.1:9")).unwrap();
        assert!(client("anthropic/claude-sonnet-4-5").accepts_images());
        assert!(!client("openai/gpt-fake").accepts_images());
        assert!(
            client("openai/gpt-fake")
                .with_images(Some(true))
                .accepts_images()
        );
    }
}
