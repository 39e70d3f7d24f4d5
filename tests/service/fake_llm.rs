//! The scripted fake LLM driven through the real client in both wire formats: its answers, its
//! records, and that its tool-call discipline checks do fail when they should.

use crate::support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use openhands::agent::llm::{ChatMessage, LlmClient, LlmError, RetryPolicy, ToolSpec};
use openhands::setting::Secret;
use serde_json::{Value, json};
use support::fake_llm::{
    Answer, CACHED_TOKENS, COMPLETION_TOKENS, FakeLlm, Format, PROMPT_TOKENS, Turn,
};

const MODELS: [&str; 2] = ["openai/gpt-test", "anthropic/claude-test"];

fn client(fake: &FakeLlm, model: &str) -> LlmClient {
    LlmClient::new(
        model,
        Some("sk-test".parse::<Secret>().unwrap()),
        Some(&fake.base_url()),
    )
    .unwrap()
    .with_retry(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    })
}

/// The id the fake gives its `n`th tool call in the model's format.
fn id(model: &str, n: usize) -> String {
    if model.starts_with("anthropic/") {
        format!("toolu_{n}")
    } else {
        format!("call_{n}")
    }
}

fn tools() -> Vec<ToolSpec> {
    let tool = |name: &str| ToolSpec {
        name: name.into(),
        description: format!("the {name} tool"),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}}),
    };
    vec![tool("execute_bash"), tool("finish")]
}

fn start() -> Vec<ChatMessage> {
    vec![ChatMessage::system("sys"), ChatMessage::user("list files")]
}

fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[tokio::test]
async fn a_tool_call_answered_once_is_clean() {
    for model in MODELS {
        let fake = FakeLlm::start(vec![
            Turn::call("execute_bash", json!({"command": "ls"})).with_text("Looking."),
            Turn::call("finish", json!({})),
        ])
        .await;
        let llm = client(&fake, model);
        let mut history = start();
        let first = llm.complete(&history, &tools()).await.unwrap();
        assert_eq!(first.message.content, "Looking.");
        let call = first.message.tool_calls[0].clone();
        assert_eq!(
            (call.id.as_str(), call.name.as_str()),
            (id(model, 1).as_str(), "execute_bash")
        );
        let arguments: Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(arguments["command"], "ls");
        assert_eq!(first.usage.prompt_tokens, PROMPT_TOKENS);
        assert_eq!(first.usage.completion_tokens, COMPLETION_TOKENS);
        assert_eq!(first.usage.cached_tokens, CACHED_TOKENS);
        assert_eq!(fake.unanswered_after_last_request(), vec![call.id.clone()]);

        history.push(first.message.clone());
        history.push(ChatMessage::tool_result(call.id.clone(), "a b c"));
        let second = llm.complete(&history, &tools()).await.unwrap();
        assert_eq!(second.message.tool_calls[0].id, id(model, 2));
        fake.assert_each_tool_call_answered_once();
        assert_eq!(fake.unanswered_after_last_request(), vec![id(model, 2)]);
        assert_eq!(fake.unanswered(), vec![id(model, 2)]);
        assert_eq!(
            (
                fake.tool_requests(),
                fake.summary_requests(),
                fake.remaining()
            ),
            (2, 0, 0)
        );

        let requests = fake.requests();
        let second = &requests[1];
        let anthropic = model.starts_with("anthropic/");
        assert_eq!(
            second.format,
            if anthropic {
                Format::Anthropic
            } else {
                Format::OpenAi
            }
        );
        assert_eq!(
            second.path,
            if anthropic {
                "/v1/messages"
            } else {
                "/chat/completions"
            }
        );
        assert_eq!(second.tools, vec!["execute_bash", "finish"]);
        let roles: Vec<&str> = second.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, vec!["system", "user", "assistant", "tool"]);
        assert_eq!(
            second.messages[2].calls,
            vec![(call.id.clone(), "execute_bash".to_string())]
        );
        assert_eq!(
            second.messages[3].result_for.as_deref(),
            Some(call.id.as_str())
        );
        assert_eq!(second.messages[3].text, "a b c");
        assert_eq!(
            requests[0].answer,
            Answer::Reply {
                text: Some("Looking.".into()),
                calls: vec![(call.id.clone(), "execute_bash".into())]
            }
        );
        if anthropic {
            assert_eq!(second.x_api_key.as_deref(), Some("sk-test"));
        } else {
            assert_eq!(second.authorization.as_deref(), Some("Bearer sk-test"));
        }
    }

    // OpenAI-compatible base URLs ending in /v1 are served too.
    let fake = FakeLlm::start(vec![Turn::text("hi")]).await;
    let llm = LlmClient::new(
        "openai/gpt-test",
        None,
        Some(&format!("{}/v1", fake.base_url())),
    )
    .unwrap();
    assert_eq!(
        llm.complete(&start(), &tools())
            .await
            .unwrap()
            .message
            .content,
        "hi"
    );
    assert_eq!(fake.requests()[0].path, "/v1/chat/completions");
    assert_eq!(fake.requests()[0].authorization, None);
    fake.assert_each_tool_call_answered_once();
}

#[tokio::test]
async fn a_missing_tool_result_is_a_violation() {
    for model in MODELS {
        let fake = FakeLlm::start(vec![
            Turn::call("execute_bash", json!({"command": "ls"})),
            Turn::text("done"),
        ])
        .await;
        let llm = client(&fake, model);
        let mut history = start();
        history.push(llm.complete(&history, &tools()).await.unwrap().message);
        llm.complete(&history, &tools()).await.unwrap();
        let violations = fake.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("request 2"), "{violations:?}");
        assert!(violations[0].contains(&id(model, 1)), "{violations:?}");
        assert!(violations[0].contains("no result"), "{violations:?}");
        assert!(panics(|| fake.assert_each_tool_call_answered_once()));
        assert_eq!(fake.unanswered(), vec![id(model, 1)]);
    }
}

#[tokio::test]
async fn a_duplicate_or_unknown_tool_result_is_a_violation() {
    for model in MODELS {
        let fake = FakeLlm::start(vec![
            Turn::call("execute_bash", json!({"command": "ls"})),
            Turn::text("done"),
            Turn::text("again"),
        ])
        .await;
        let llm = client(&fake, model);
        let mut history = start();
        history.push(llm.complete(&history, &tools()).await.unwrap().message);
        history.push(ChatMessage::tool_result(id(model, 1), "first"));
        history.push(ChatMessage::tool_result(id(model, 1), "second"));
        llm.complete(&history, &tools()).await.unwrap();
        let violations = fake.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("more than once"), "{violations:?}");
        assert!(violations[0].contains(&id(model, 1)), "{violations:?}");

        let mut history = start();
        history.push(ChatMessage::tool_result(id(model, 99), "made up"));
        llm.complete(&history, &tools()).await.unwrap();
        let violations = fake.violations();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[1].contains("request 3"), "{violations:?}");
        assert!(violations[1].contains("never issued"), "{violations:?}");
    }
}

#[tokio::test]
async fn a_message_between_a_call_and_its_result_is_a_violation() {
    for model in MODELS {
        let fake = FakeLlm::start(vec![
            Turn::call("execute_bash", json!({"command": "ls"})),
            Turn::text("done"),
        ])
        .await;
        let llm = client(&fake, model);
        let mut history = start();
        history.push(llm.complete(&history, &tools()).await.unwrap().message);
        history.push(ChatMessage::user("also, hurry"));
        history.push(ChatMessage::tool_result(id(model, 1), "a b c"));
        llm.complete(&history, &tools()).await.unwrap();
        let violations = fake.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("comes between"), "{violations:?}");
        assert!(fake.unanswered().is_empty());
    }
}

#[tokio::test]
async fn a_request_without_tools_is_a_summary_and_consumes_no_turn() {
    for model in MODELS {
        let fake = FakeLlm::start(vec![Turn::text("scripted")]).await;
        let llm = client(&fake, model);
        let first = llm.complete(&start(), &[]).await.unwrap();
        assert_eq!(first.message.content, "SUMMARY 1");
        let second = llm.complete(&start(), &[]).await.unwrap();
        assert_eq!(second.message.content, "SUMMARY 2");
        assert_eq!(
            (
                fake.summary_requests(),
                fake.tool_requests(),
                fake.remaining()
            ),
            (2, 0, 1)
        );
        assert_eq!(fake.requests()[1].answer, Answer::Summary(2));
        let third = llm.complete(&start(), &tools()).await.unwrap();
        assert_eq!(third.message.content, "scripted");
        fake.assert_each_tool_call_answered_once();
    }
}

#[tokio::test]
async fn a_rate_limit_is_retried_into_the_next_turn() {
    for model in MODELS {
        let fake = FakeLlm::start(vec![
            Turn::rate_limited(0),
            Turn::call("execute_bash", json!({"command": "ls"})),
        ])
        .await;
        let llm = client(&fake, model);
        let completion = llm.complete(&start(), &tools()).await.unwrap();
        assert_eq!(completion.attempts, 2);
        assert_eq!(completion.message.tool_calls[0].id, id(model, 1));
        let requests = fake.requests();
        assert_eq!(requests[0].answer, Answer::Error(429));
        assert_eq!(fake.tool_requests(), 2);
        fake.assert_each_tool_call_answered_once();
    }
}

#[tokio::test]
async fn an_exhausted_script_is_refused_and_reported() {
    for model in MODELS {
        let fake = FakeLlm::start(Vec::new()).await;
        let error = client(&fake, model)
            .complete(&start(), &tools())
            .await
            .unwrap_err();
        assert!(matches!(error, LlmError::BadRequest { .. }), "{error}");
        assert!(
            error.to_string().contains("fake LLM script exhausted"),
            "{error}"
        );
        assert_eq!(
            fake.violations(),
            vec!["request 1: script exhausted".to_string()]
        );

        fake.push(vec![Turn::text("more")]);
        let completion = client(&fake, model)
            .complete(&start(), &tools())
            .await
            .unwrap();
        assert_eq!(completion.message.content, "more");
    }
}

#[tokio::test]
async fn malformed_arguments_and_delays() {
    let raw = r#"{"command": "ls"#;
    for model in MODELS {
        let fake = FakeLlm::start(vec![
            Turn::raw_call("execute_bash", raw),
            Turn::text("slow").after(Duration::from_millis(200)),
        ])
        .await;
        let llm = client(&fake, model);
        let completion = llm.complete(&start(), &tools()).await.unwrap();
        let arguments = &completion.message.tool_calls[0].arguments;
        if model.starts_with("anthropic/") {
            assert_eq!(arguments, "{}");
            assert_eq!(fake.requests()[0].notes.len(), 1);
        } else {
            assert_eq!(arguments, raw);
            assert!(fake.requests()[0].notes.is_empty());
        }

        let started = Instant::now();
        let completion = llm.complete(&start(), &tools()).await.unwrap();
        assert_eq!(completion.message.content, "slow");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
