//! A scripted fake LLM provider on loopback that speaks both wire formats of the agent's client:
//! OpenAI-compatible chat completions (`/chat/completions`, `/v1/chat/completions`) and
//! Anthropic messages (`/v1/messages`).
//!
//! Each request that offers tools consumes the next scripted [`Turn`]; a request without tools is
//! a history summary and gets `SUMMARY <n>` without consuming one, unless it asks for a
//! conversation's title (the agent's title instructions as its system message), which gets
//! [`TITLE`] (or the title set with [`FakeLlm::set_title`]). Every request is recorded in a
//! neutral form, and each one that offers tools is checked for tool-call discipline: every tool
//! call in its history was issued by the fake and is answered by exactly one tool result,
//! directly after the assistant message that made it, as both providers demand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Usage of every successful answer as the client reports it. Anthropic counts cache reads
/// apart, so there the fake sends `input_tokens = PROMPT_TOKENS - CACHED_TOKENS`.
pub const PROMPT_TOKENS: u64 = 100;
pub const COMPLETION_TOKENS: u64 = 20;
pub const CACHED_TOKENS: u64 = 10;

const TOO_LONG: &str = "refused: longer than the context window";

/// A provider's answer to a prompt longer than the model takes, as published: OpenAI's
/// `context_length_exceeded` and Anthropic's "prompt is too long".
pub fn context_overflow(format: Format, tokens: usize, window: usize) -> Turn {
    let body = match format {
        Format::OpenAi => json!({"error": {
            "message": format!("This model's maximum context length is {window} tokens. However, your messages resulted in {tokens} tokens. Please reduce the length of the messages."),
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }}),
        Format::Anthropic => json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": format!("prompt is too long: {tokens} tokens > {window} maximum"),
        }}),
    };
    Turn::Error {
        status: 400,
        body: body.to_string(),
        retry_after: None,
    }
}

/// The title every title request gets unless a test sets another.
pub const TITLE: &str = "A title from the model";

/// One scripted answer to a request that offers tools.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// An assistant answer: optional text, then tool calls as (name, raw JSON arguments text).
    Reply {
        text: Option<String>,
        calls: Vec<(String, String)>,
    },
    /// An HTTP error status with a body and an optional `Retry-After` (seconds).
    Error {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// Wait, then give the inner turn. Ids are issued only once the wait is over, so a request
    /// abandoned during the wait issues none.
    Delay(Duration, Box<Turn>),
}

impl Turn {
    /// One tool call.
    pub fn call(name: &str, args: Value) -> Turn {
        Turn::calls(vec![(name, args)])
    }

    /// Several tool calls in one answer.
    pub fn calls(calls: Vec<(&str, Value)>) -> Turn {
        Turn::Reply {
            text: None,
            calls: calls
                .into_iter()
                .map(|(name, args)| (name.to_string(), args.to_string()))
                .collect(),
        }
    }

    /// A tool call with arguments given as raw text, malformed JSON included. Anthropic's format
    /// can only carry an object: there the fake sends `{}` and notes it in the request's record.
    pub fn raw_call(name: &str, raw_args: &str) -> Turn {
        Turn::Reply {
            text: None,
            calls: vec![(name.to_string(), raw_args.to_string())],
        }
    }

    /// A text answer without tool calls.
    pub fn text(text: impl Into<String>) -> Turn {
        Turn::Reply {
            text: Some(text.into()),
            calls: Vec::new(),
        }
    }

    /// An error status with the providers' `{"error":{"message":…}}` body.
    pub fn error(status: u16, message: &str) -> Turn {
        Turn::Error {
            status,
            body: json!({"error": {"message": message}}).to_string(),
            retry_after: None,
        }
    }

    /// A 429 with `Retry-After: seconds`.
    pub fn rate_limited(seconds: u64) -> Turn {
        Turn::Error {
            status: 429,
            body: json!({"error": {"message": "rate limited"}}).to_string(),
            retry_after: Some(seconds),
        }
    }

    /// The same reply with text before its tool calls.
    pub fn with_text(self, text: impl Into<String>) -> Turn {
        match self {
            Turn::Reply { calls, .. } => Turn::Reply {
                text: Some(text.into()),
                calls,
            },
            Turn::Delay(wait, inner) => Turn::Delay(wait, Box::new(inner.with_text(text))),
            error => error,
        }
    }

    /// This turn, given after `wait`.
    pub fn after(self, wait: Duration) -> Turn {
        Turn::Delay(wait, Box::new(self))
    }
}

/// Which wire format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    Anthropic,
}

/// One message of a request, provider-neutral. Anthropic's user turns are split at their blocks:
/// each `tool_result` becomes a `tool` message, runs of text a `user` message, in their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub text: String,
    /// Tool calls made in this (assistant) message, as (id, name).
    pub calls: Vec<(String, String)>,
    /// The call this (tool) message answers.
    pub result_for: Option<String>,
}

/// How the fake answered a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not yet: a delayed turn still waiting, or a request abandoned during the wait.
    Pending,
    /// A scripted reply; its tool calls as (id, name).
    Reply {
        text: Option<String>,
        calls: Vec<(String, String)>,
    },
    /// A scripted error status.
    Error(u16),
    /// `SUMMARY <n>` to a request without tools.
    Summary(usize),
    /// The title, to a request for one.
    Title,
    /// 400: the script had no turn left.
    Exhausted,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// 1-based, in order of arrival.
    pub number: usize,
    pub format: Format,
    pub path: String,
    pub model: String,
    /// Names of the tools offered.
    pub tools: Vec<String>,
    pub messages: Vec<Message>,
    /// The raw request body (`null` if it was not JSON).
    pub body: Value,
    pub authorization: Option<String>,
    pub x_api_key: Option<String>,
    pub answer: Answer,
    /// Remarks on the answer, such as arguments Anthropic's format could not carry.
    pub notes: Vec<String>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Turn>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    /// Tool call ids issued so far, by id → tool name, and in order.
    issued: HashMap<String, String>,
    issued_order: Vec<String>,
    /// Ids that some request carried a tool result for.
    answered: HashSet<String>,
    /// Ids issued by the latest reply.
    last_issued: Vec<String>,
    summaries: usize,
    titles: usize,
    title: Option<String>,
    responses: usize,
    /// The longest request body taken, in bytes; a longer one is refused as too long for the
    /// model, as each provider words it, without using a turn of the script.
    context_window: Option<usize>,
}

/// The fake provider, listening on a loopback port for as long as the test's runtime lives.
#[derive(Clone)]
pub struct FakeLlm {
    base_url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeLlm {
    pub async fn start(script: Vec<Turn>) -> FakeLlm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeLlm {
            base_url: format!("http://{}", listener.local_addr().unwrap()),
            inner: Arc::new(Mutex::new(Inner {
                script: script.into(),
                ..Inner::default()
            })),
        };
        let app = Router::new()
            .route("/chat/completions", post(openai))
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .fallback(unexpected)
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Refuses requests whose body is longer than `bytes` with the provider's "context length
    /// exceeded" error (a window measured in bytes, where a real one counts tokens).
    pub fn set_context_window(&self, bytes: usize) {
        self.lock().context_window = Some(bytes);
    }

    /// How many requests were refused as too long for the window.
    pub fn overflows(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.notes.iter().any(|n| n == TOO_LONG))
            .count()
    }

    /// `http://127.0.0.1:PORT`, for `LlmClient::new(model, key, Some(base_url))`; an OpenAI
    /// client may also be given `{base_url}/v1`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Appends turns to the script.
    pub fn push(&self, turns: Vec<Turn>) {
        self.lock().script.extend(turns);
    }

    /// Turns not yet consumed.
    pub fn remaining(&self) -> usize {
        self.lock().script.len()
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests that offered tools.
    pub fn tool_requests(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| !r.tools.is_empty())
            .count()
    }

    /// Requests without tools, answered `SUMMARY <n>`.
    pub fn summary_requests(&self) -> usize {
        self.lock().summaries
    }

    /// Requests for a conversation's title.
    pub fn title_requests(&self) -> usize {
        self.lock().titles
    }

    /// The answer to title requests from now on.
    pub fn set_title(&self, title: &str) {
        self.lock().title = Some(title.to_string());
    }

    /// What went wrong so far, one line each, naming the request and the tool call id.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Panics listing the violations, if any.
    pub fn assert_each_tool_call_answered_once(&self) {
        let violations = self.violations();
        if !violations.is_empty() {
            panic!(
                "the fake LLM saw {} violation(s):\n  {}",
                violations.len(),
                violations.join("\n  ")
            );
        }
    }

    /// Ids issued by the latest reply that no later request carried a result for.
    pub fn unanswered_after_last_request(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .last_issued
            .iter()
            .filter(|id| !inner.answered.contains(*id))
            .cloned()
            .collect()
    }

    /// All ids issued that no request ever carried a result for, in order of issue.
    pub fn unanswered(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .issued_order
            .iter()
            .filter(|id| !inner.answered.contains(*id))
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn answer(
        &self,
        format: Format,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let model = body["model"].as_str().unwrap_or("fake").to_string();
        let (index, next) = {
            let mut inner = self.lock();
            let number = inner.requests.len() + 1;
            let messages = normalise(format, &body);
            let tools = tool_names(format, &body);
            if body.is_null() {
                inner
                    .violations
                    .push(format!("request {number}: the body is not JSON"));
            }
            for m in &messages {
                if let Some(id) = &m.result_for {
                    inner.answered.insert(id.clone());
                }
            }
            let asks_title = messages.first().is_some_and(|m| {
                m.role == "system"
                    && m.text
                        .starts_with(openhands::agent::title::TITLE_INSTRUCTIONS)
            });
            let next = if tools.is_empty() && asks_title {
                inner.titles += 1;
                Next::Title(inner.title.clone().unwrap_or_else(|| TITLE.to_string()))
            } else if tools.is_empty() {
                inner.summaries += 1;
                Next::Summary(inner.summaries)
            } else if let Some(window) = inner
                .context_window
                .filter(|window| body.to_string().len() > *window)
            {
                Next::TooLong(body.to_string().len(), window)
            } else {
                let found = check(number, &messages, &inner.issued);
                inner.violations.extend(found);
                match inner.script.pop_front() {
                    Some(turn) => Next::Turn(turn),
                    None => {
                        inner
                            .violations
                            .push(format!("request {number}: script exhausted"));
                        Next::Exhausted
                    }
                }
            };
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            inner.requests.push(Recorded {
                number,
                format,
                path: path.to_string(),
                model: model.clone(),
                tools,
                messages,
                body,
                authorization: header("authorization"),
                x_api_key: header("x-api-key"),
                answer: Answer::Pending,
                notes: Vec::new(),
            });
            (number - 1, next)
        };

        let mut turn = match next {
            Next::Summary(n) => {
                let text = format!("SUMMARY {n}");
                return self.reply(
                    index,
                    format,
                    &model,
                    Some(text),
                    Vec::new(),
                    Answer::Summary(n),
                );
            }
            Next::Title(title) => {
                return self.reply(
                    index,
                    format,
                    &model,
                    Some(title),
                    Vec::new(),
                    Answer::Title,
                );
            }
            Next::Exhausted => {
                self.lock().requests[index].answer = Answer::Exhausted;
                let body = json!({"error": {"message": "fake LLM script exhausted"}});
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            Next::TooLong(size, window) => {
                self.lock().requests[index].notes.push(TOO_LONG.to_string());
                context_overflow(format, size, window)
            }
            Next::Turn(turn) => turn,
        };
        loop {
            match turn {
                Turn::Delay(wait, inner) => {
                    tokio::time::sleep(wait).await;
                    turn = *inner;
                }
                Turn::Error {
                    status,
                    body,
                    retry_after,
                } => {
                    self.lock().requests[index].answer = Answer::Error(status);
                    let status =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let kind = if serde_json::from_str::<Value>(&body).is_ok() {
                        "application/json"
                    } else {
                        "text/plain"
                    };
                    let mut response =
                        (status, [(header::CONTENT_TYPE, kind)], body).into_response();
                    if let Some(seconds) = retry_after {
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, seconds.into());
                    }
                    return response;
                }
                Turn::Reply { text, calls } => {
                    return self.reply(index, format, &model, text, calls, Answer::Pending);
                }
            }
        }
    }

    /// A successful answer to request `index`: issues ids for `calls` (name, raw arguments) and
    /// records `answer`, or the reply itself when `answer` is `Pending`.
    fn reply(
        &self,
        index: usize,
        format: Format,
        model: &str,
        text: Option<String>,
        calls: Vec<(String, String)>,
        answer: Answer,
    ) -> Response {
        let mut inner = self.lock();
        inner.responses += 1;
        let response_number = inner.responses;
        let mut issued = Vec::new();
        for (name, args) in calls {
            let n = inner.issued_order.len() + 1;
            let id = match format {
                Format::OpenAi => format!("call_{n}"),
                Format::Anthropic => format!("toolu_{n}"),
            };
            inner.issued.insert(id.clone(), name.clone());
            inner.issued_order.push(id.clone());
            issued.push((id, name, args));
        }
        if answer == Answer::Pending {
            inner.last_issued = issued.iter().map(|(id, _, _)| id.clone()).collect();
        }
        let text = text.filter(|t| !t.is_empty());
        let body = match format {
            Format::OpenAi => {
                let mut message = json!({"role": "assistant", "content": text});
                if !issued.is_empty() {
                    message["tool_calls"] = issued
                        .iter()
                        .map(|(id, name, args)| {
                            json!({"id": id, "type": "function",
                                   "function": {"name": name, "arguments": args}})
                        })
                        .collect();
                }
                json!({
                    "id": format!("chatcmpl-{response_number}"),
                    "object": "chat.completion",
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": message,
                        "finish_reason": if issued.is_empty() { "stop" } else { "tool_calls" },
                    }],
                    "usage": {
                        "prompt_tokens": PROMPT_TOKENS,
                        "completion_tokens": COMPLETION_TOKENS,
                        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
                    },
                })
            }
            Format::Anthropic => {
                let mut content = Vec::new();
                if let Some(text) = &text {
                    content.push(json!({"type": "text", "text": text}));
                }
                for (id, name, args) in &issued {
                    let input = match serde_json::from_str::<Value>(args) {
                        Ok(input) if input.is_object() => input,
                        _ => {
                            inner.requests[index].notes.push(format!(
                                "{id} ({name}): arguments {args:?} are not a JSON object; sent {{}}"
                            ));
                            json!({})
                        }
                    };
                    content
                        .push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
                }
                json!({
                    "id": format!("msg_{response_number}"),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": if issued.is_empty() { "end_turn" } else { "tool_use" },
                    "usage": {
                        "input_tokens": PROMPT_TOKENS - CACHED_TOKENS,
                        "output_tokens": COMPLETION_TOKENS,
                        "cache_read_input_tokens": CACHED_TOKENS,
                    },
                })
            }
        };
        inner.requests[index].answer = match answer {
            Answer::Pending => Answer::Reply {
                text,
                calls: issued.into_iter().map(|(id, name, _)| (id, name)).collect(),
            },
            other => other,
        };
        (StatusCode::OK, axum::Json(body)).into_response()
    }
}

enum Next {
    Summary(usize),
    Title(String),
    Exhausted,
    /// The request's size and the window it passed.
    TooLong(usize, usize),
    Turn(Turn),
}

async fn openai(
    State(fake): State<FakeLlm>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.answer(Format::OpenAi, uri.path(), &headers, &body)
        .await
}

async fn anthropic(
    State(fake): State<FakeLlm>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.answer(Format::Anthropic, uri.path(), &headers, &body)
        .await
}

async fn unexpected(State(fake): State<FakeLlm>, uri: Uri) -> Response {
    fake.lock()
        .violations
        .push(format!("a request to an unexpected path {}", uri.path()));
    StatusCode::NOT_FOUND.into_response()
}

fn tool_names(format: Format, body: &Value) -> Vec<String> {
    let name = |tool: &Value| match format {
        Format::OpenAi => tool["function"]["name"].as_str().map(str::to_string),
        Format::Anthropic => tool["name"].as_str().map(str::to_string),
    };
    body["tools"]
        .as_array()
        .map(|tools| tools.iter().map(|t| name(t).unwrap_or_default()).collect())
        .unwrap_or_default()
}

/// The text of a content that is a string or an array of `{"type":"text","text":…}` parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn message(role: &str, text: String) -> Message {
    Message {
        role: role.to_string(),
        text,
        calls: Vec::new(),
        result_for: None,
    }
}

fn normalise(format: Format, body: &Value) -> Vec<Message> {
    let empty = Vec::new();
    let raw = body["messages"].as_array().unwrap_or(&empty);
    let mut out = Vec::new();
    match format {
        Format::OpenAi => {
            for m in raw {
                let role = m["role"].as_str().unwrap_or("?");
                let mut neutral = message(role, text_of(&m["content"]));
                if let Some(calls) = m["tool_calls"].as_array() {
                    neutral.calls = calls
                        .iter()
                        .map(|c| {
                            let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
                            (field(&c["id"]), field(&c["function"]["name"]))
                        })
                        .collect();
                }
                if role == "tool" {
                    neutral.result_for =
                        Some(m["tool_call_id"].as_str().unwrap_or_default().to_string());
                }
                out.push(neutral);
            }
        }
        Format::Anthropic => {
            let system = text_of(&body["system"]);
            if !system.is_empty() {
                out.push(message("system", system));
            }
            for m in raw {
                let role = m["role"].as_str().unwrap_or("?");
                let Some(blocks) = m["content"].as_array() else {
                    out.push(message(role, text_of(&m["content"])));
                    continue;
                };
                if role == "assistant" {
                    let mut neutral = message(role, text_of(&m["content"]));
                    neutral.calls = blocks
                        .iter()
                        .filter(|b| b["type"] == "tool_use")
                        .map(|b| {
                            let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
                            (field(&b["id"]), field(&b["name"]))
                        })
                        .collect();
                    out.push(neutral);
                    continue;
                }
                // A user turn: tool results apart, text between them gathered.
                let mut text: Option<String> = None;
                for block in blocks {
                    if block["type"] == "tool_result" {
                        if let Some(text) = text.take() {
                            out.push(message(role, text));
                        }
                        let mut result = message("tool", text_of(&block["content"]));
                        result.result_for = Some(
                            block["tool_use_id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        );
                        out.push(result);
                    } else {
                        text.get_or_insert_default()
                            .push_str(block["text"].as_str().unwrap_or_default());
                    }
                }
                if let Some(text) = text {
                    out.push(message(role, text));
                }
            }
        }
    }
    out
}

/// The tool-call discipline of one request's history (`issued`: ids the fake gave out, by id →
/// name). Message numbers are indices into [`Recorded::messages`].
fn check(number: usize, messages: &[Message], issued: &HashMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    let mut calls_seen = HashSet::new();
    let mut results_seen = HashSet::new();
    // Calls of the latest assistant message still waiting for their result.
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut interrupted = false;
    let missing = |pending: &mut Vec<(String, String)>, found: &mut Vec<String>, when: &str| {
        for (id, name) in pending.drain(..) {
            found.push(format!(
                "request {number}: tool call {id} ({name}) has no result {when}"
            ));
        }
    };
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "assistant" => {
                missing(
                    &mut pending,
                    &mut found,
                    &format!("before the assistant message {i}"),
                );
                interrupted = false;
                for (id, name) in &m.calls {
                    match issued.get(id) {
                        None => found.push(format!(
                            "request {number}: assistant message {i} carries tool call {id} ({name}), which the fake never issued"
                        )),
                        Some(issued_name) if issued_name != name => found.push(format!(
                            "request {number}: assistant message {i} names tool call {id} {name}, but it was issued as {issued_name}"
                        )),
                        Some(_) => {}
                    }
                    if calls_seen.insert(id.clone()) {
                        pending.push((id.clone(), name.clone()));
                    } else {
                        found.push(format!(
                            "request {number}: tool call {id} appears again in assistant message {i}"
                        ));
                    }
                }
            }
            "tool" => {
                let id = m.result_for.clone().unwrap_or_default();
                if !issued.contains_key(&id) {
                    found.push(format!(
                        "request {number}: message {i} is a tool result for {id:?}, which the fake never issued"
                    ));
                } else if !results_seen.insert(id.clone()) {
                    found.push(format!(
                        "request {number}: tool call {id} is answered more than once (again in message {i})"
                    ));
                } else if let Some(at) = pending.iter().position(|(p, _)| *p == id) {
                    pending.remove(at);
                } else {
                    found.push(format!(
                        "request {number}: message {i} answers tool call {id} away from the assistant message that made it"
                    ));
                }
            }
            role => {
                if !pending.is_empty() && !interrupted {
                    interrupted = true;
                    let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
                    found.push(format!(
                        "request {number}: {role} message {i} comes between tool calls {} and their results",
                        ids.join(", ")
                    ));
                }
            }
        }
    }
    missing(&mut pending, &mut found, "by the end of the request");
    found
}
