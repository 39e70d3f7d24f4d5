//! The LLM client against a scripted fake provider on loopback: both wire formats, tool calls,
//! usage and cost, retries on 429/5xx/connection errors, and no retry on a rejected key.

use crate::support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use openhands::agent::llm::{ChatMessage, LlmClient, LlmError, PriceTable, RetryPolicy, ToolSpec};
use openhands::setting::Secret;
use serde_json::{Value, json};

/// One scripted answer: status, extra headers, body.
type Reply = (u16, Vec<(&'static str, String)>, Value);

#[derive(Clone, Default)]
struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

async fn answer(State(fake): State<Fake>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.requests.lock().unwrap().push((headers, body));
    let Some((status, headers, body)) = fake.replies.lock().unwrap().pop_front() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response();
    };
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

async fn serve(replies: Vec<Reply>) -> (String, Fake) {
    let fake = Fake::default();
    fake.replies.lock().unwrap().extend(replies);
    let app = Router::new()
        .route("/v1/chat/completions", post(answer))
        .route("/v1/messages", post(answer))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "execute_bash".into(),
        description: "Run a command".into(),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
    }]
}

fn openai_tool_call() -> Value {
    json!({
        "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "execute_bash", "arguments": "{\"command\":\"ls\"}"}}
        ]}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 1000}}
    })
}

#[tokio::test]
async fn openai_compatible_tool_calls_usage_and_cost() {
    let (url, fake) = serve(vec![(200, vec![], openai_tool_call())]).await;
    let prices = PriceTable::from_json(
        r#"{"gpt-test": {"input": 2.0, "output": 8.0, "cached_input": 0.5}}"#,
    )
    .unwrap();
    let client = LlmClient::new(
        "openai/gpt-test",
        Some("sk-test".parse::<Secret>().unwrap()),
        Some(&format!("{url}/v1")),
    )
    .unwrap()
    .with_prices(prices);
    let completion = client
        .complete(
            &[ChatMessage::system("sys"), ChatMessage::user("list files")],
            &tools(),
        )
        .await
        .unwrap();
    assert_eq!(completion.message.tool_calls.len(), 1);
    assert_eq!(completion.message.tool_calls[0].name, "execute_bash");
    assert_eq!(
        completion.message.tool_calls[0].arguments,
        r#"{"command":"ls"}"#
    );
    assert_eq!(completion.usage.prompt_tokens, 1200);
    assert_eq!(completion.usage.cached_tokens, 1000);
    let expected = (200.0 * 2.0 + 1000.0 * 0.5 + 30.0 * 8.0) / 1_000_000.0;
    assert!(
        (completion.cost - expected).abs() < 1e-12,
        "{}",
        completion.cost
    );
    assert_eq!(completion.attempts, 1);

    let requests = fake.requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert_eq!(headers["authorization"], "Bearer sk-test");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["messages"][1]["content"], "list files");
    assert_eq!(body["tools"][0]["function"]["name"], "execute_bash");
}

#[tokio::test]
async fn anthropic_tool_use_round_trip() {
    let reply = json!({
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "execute_bash", "input": {"command": "ls"}}
        ],
        "usage": {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 950}
    });
    let (url, fake) = serve(vec![(200, vec![], reply)]).await;
    let client = LlmClient::new(
        "anthropic/claude-test",
        Some("ak".parse::<Secret>().unwrap()),
        Some(&url),
    )
    .unwrap();
    let completion = client
        .complete(
            &[ChatMessage::system("sys"), ChatMessage::user("hi")],
            &tools(),
        )
        .await
        .unwrap();
    assert_eq!(completion.message.content, "Let me look.");
    assert_eq!(completion.message.tool_calls[0].id, "toolu_1");
    let arguments: Value =
        serde_json::from_str(&completion.message.tool_calls[0].arguments).unwrap();
    assert_eq!(arguments["command"], "ls");
    assert_eq!(completion.usage.prompt_tokens, 1000);
    assert_eq!(completion.usage.cached_tokens, 950);

    let requests = fake.requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert_eq!(headers["x-api-key"], "ak");
    assert_eq!(body["system"], "sys");
    assert_eq!(body["tools"][0]["input_schema"]["required"][0], "command");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let (url, fake) = serve(vec![
        (
            429,
            vec![("retry-after", "0".into())],
            json!({"error": {"message": "slow down"}}),
        ),
        (503, vec![], json!({"error": "overloaded"})),
        (200, vec![], openai_tool_call()),
    ])
    .await;
    let client = LlmClient::new("openai/gpt-test", None, Some(&format!("{url}/v1")))
        .unwrap()
        .with_retry(fast());
    let completion = client
        .complete(&[ChatMessage::user("hi")], &[])
        .await
        .unwrap();
    assert_eq!(completion.attempts, 3);
    assert_eq!(fake.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_rejected_key_is_not_retried_and_says_so() {
    let (url, fake) = serve(vec![(
        401,
        vec![],
        json!({"error": {"message": "invalid x-api-key"}}),
    )])
    .await;
    let client = LlmClient::new(
        "anthropic/claude-test",
        Some("wrong".parse::<Secret>().unwrap()),
        Some(&url),
    )
    .unwrap()
    .with_retry(fast());
    let error = client
        .complete(&[ChatMessage::user("hi")], &[])
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, LlmError::Rejected { status: 401, .. }),
        "{message}"
    );
    assert!(
        message.contains("the LLM API key was rejected by Anthropic"),
        "{message}"
    );
    assert!(message.contains("invalid x-api-key"), "{message}");
    assert!(
        !message.contains("wrong"),
        "the key never appears: {message}"
    );
    assert_eq!(fake.requests.lock().unwrap().len(), 1);

    let (url, fake) = serve(vec![(
        400,
        vec![],
        json!({"error": {"message": "context too long"}}),
    )])
    .await;
    let client = LlmClient::new("openai/gpt-test", None, Some(&format!("{url}/v1")))
        .unwrap()
        .with_retry(fast());
    let error = client
        .complete(&[ChatMessage::user("hi")], &[])
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::BadRequest { .. }), "{error}");
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_provider_gives_up_after_five_attempts() {
    let port = support::free_port();
    let client = LlmClient::new(
        "openai/gpt-test",
        None,
        Some(&format!("http://127.0.0.1:{port}/v1")),
    )
    .unwrap()
    .with_retry(fast());
    let error = client
        .complete(&[ChatMessage::user("hi")], &[])
        .await
        .unwrap_err();
    assert!(
        matches!(error, LlmError::Unavailable { attempts: 5, .. }),
        "{error}"
    );

    let (url, _fake) = serve(vec![(200, vec![], json!({"nonsense": true}))]).await;
    let client = LlmClient::new("openai/gpt-test", None, Some(&format!("{url}/v1"))).unwrap();
    let error = client
        .complete(&[ChatMessage::user("hi")], &[])
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Malformed { .. }), "{error}");
}
