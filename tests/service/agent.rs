//! The agent loop end to end: the real queue and run job, a real Docker sandbox, the event
//! log on PostgreSQL (and SQLite), and a scripted fake LLM in both wire formats that checks
//! every tool call is answered exactly once.

use crate::support;

use std::time::Duration;

use openhands::agent::events::{self, to_v0};
use openhands::agent::llm::{PriceTable, RetryPolicy};
use openhands::agent::settings::AgentSettings;
use openhands::integrations::Providers;
use openhands::integrations::github::GithubApp;
use openhands::queue;
use openhands::storage::{Conversation, NewConversation, NewEvent, UserLimits};
use serde_json::{Value, json};
use support::fake_llm::{FakeLlm, Turn};
use support::service::Service;
use support::{Kind, TestDb, wait_for};

/// A service with workers, a fake LLM and sandboxes of its own.
struct Agent {
    t: TestDb,
    fake: FakeLlm,
    bus: openhands::live::EventBus,
    owner: String,
    service: Service,
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

async fn start(kind: Kind, model: &str, script: Vec<Turn>, settings: AgentSettings) -> Agent {
    start_with_prices(kind, model, script, settings, PriceTable::default()).await
}

async fn start_with_prices(
    kind: Kind,
    model: &str,
    script: Vec<Turn>,
    settings: AgentSettings,
    prices: PriceTable,
) -> Agent {
    start_with(kind, model, script, settings, prices, Providers::default()).await
}

async fn start_with(
    kind: Kind,
    model: &str,
    script: Vec<Turn>,
    settings: AgentSettings,
    prices: PriceTable,
    providers: Providers,
) -> Agent {
    let t = TestDb::new(kind).await;
    let service = Service::builder(&t.db)
        .providers(providers)
        .agent(script)
        .model(model)
        .llm(|llm| llm.with_retry(fast_retries()).with_prices(prices))
        .agent_settings(settings)
        .start()
        .await;
    Agent {
        fake: service.llm().clone(),
        bus: service.bus.clone(),
        owner: service.owner().to_string(),
        t,
        service,
    }
}

impl Agent {
    /// A conversation started with `text` from `trigger`, and its run enqueued.
    async fn ask(&self, trigger: &str, text: &str) -> String {
        let mut tx = self.t.db.begin().await.unwrap();
        let login = format!("user-{}", ulid::Ulid::new());
        let user = tx.create_user(&login, None, false).await.unwrap();
        let conversation = tx
            .create_conversation(&NewConversation {
                owner_id: &user.id,
                title: "test",
                trigger_kind: trigger,
                ..Default::default()
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        self.say(&conversation.id, text).await;
        conversation.id
    }

    /// A message from the user, as intake records it, and a run.
    async fn say(&self, conversation_id: &str, text: &str) {
        let mut tx = self.t.db.begin().await.unwrap();
        let message = events::user_message(text, false, json!({}));
        tx.append_event(
            conversation_id,
            &NewEvent {
                source: message.source,
                kind: &message.kind,
                payload: &message.doc,
            },
        )
        .await
        .unwrap();
        queue::enqueue(
            &mut tx,
            &openhands::agent::RunConversation {
                conversation_id: conversation_id.to_string(),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// A conversation started on GitHub about `repository`, with its request context, as
    /// intake records it (the request itself follows with `say`).
    async fn github_conversation(&self, repository: &str, context: &Value) -> Conversation {
        let mut tx = self.t.db.begin().await.unwrap();
        let user = tx.create_user("github:mona", None, false).await.unwrap();
        let conversation = tx
            .create_conversation(&NewConversation {
                owner_id: &user.id,
                title: context["title"].as_str().unwrap_or("from GitHub"),
                trigger_kind: "github",
                repository: Some(repository),
                ..Default::default()
            })
            .await
            .unwrap();
        tx.append_event(
            &conversation.id,
            &NewEvent {
                source: "environment",
                kind: "request_context",
                payload: context,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        conversation
    }

    async fn owner_of(&self, conversation_id: &str) -> String {
        self.t
            .db
            .conversation(conversation_id)
            .await
            .unwrap()
            .owner_id
    }

    /// Waits until the agent rests after event `after`; returns its state and reason.
    async fn rest_after(&self, conversation_id: &str, after: i64) -> (String, String) {
        wait_for("the agent to rest", Duration::from_secs(90), || async {
            self.events(conversation_id)
                .await
                .into_iter()
                .rev()
                .find_map(|e| {
                    let at_rest = e["observation"] == "agent_state_changed"
                        && !["loading", "running"]
                            .contains(&e["extras"]["agent_state"].as_str().unwrap());
                    (at_rest && e["id"].as_i64().unwrap() > after).then(|| {
                        (
                            e["extras"]["agent_state"].as_str().unwrap().to_string(),
                            e["extras"]["reason"].as_str().unwrap().to_string(),
                        )
                    })
                })
        })
        .await
    }

    /// Waits until the first command of the conversation is recorded (it then runs).
    async fn first_command_started(&self, conversation_id: &str) {
        wait_for(
            "the first command to start",
            Duration::from_secs(60),
            || async {
                self.events(conversation_id)
                    .await
                    .iter()
                    .any(|e| e["action"] == "run")
                    .then_some(())
            },
        )
        .await;
    }

    async fn rest(&self, conversation_id: &str) -> (String, String) {
        self.rest_after(conversation_id, 0).await
    }

    async fn events(&self, conversation_id: &str) -> Vec<Value> {
        self.t
            .db
            .events_after(conversation_id, 0, 10_000)
            .await
            .unwrap()
            .iter()
            .map(to_v0)
            .collect()
    }
}

fn observations<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["observation"] == name).collect()
}

fn create(path: &str, text: &str) -> Turn {
    Turn::call(
        "str_replace_editor",
        json!({"command": "create", "path": path, "file_text": text}),
    )
}

fn bash(command: &str) -> Turn {
    Turn::call("execute_bash", json!({"command": command}))
}

fn finish(message: &str) -> Turn {
    Turn::call("finish", json!({"message": message}))
}

/// Create a file, run it, edit it, run it again, think, finish: the happy path, checked
/// event by event.
async fn create_run_edit_finish(kind: Kind, model: &str) {
    let script = vec![
        create("/workspace/hello.py", "print('hello')\n").with_text("I will write the script."),
        bash("python3 /workspace/hello.py"),
        Turn::call(
            "str_replace_editor",
            json!({"command": "str_replace", "path": "/workspace/hello.py", "old_str": "hello", "new_str": "goodbye"}),
        ),
        bash("python3 /workspace/hello.py"),
        Turn::call("think", json!({"thought": "It prints goodbye now."})),
        finish("The script prints goodbye."),
    ];
    let agent = start(kind, model, script, AgentSettings::default()).await;
    let mut live = agent.bus.subscribe();
    let id = agent
        .ask("web", "Write hello.py and make it say goodbye")
        .await;
    assert_eq!(
        agent.rest(&id).await,
        ("finished".to_string(), String::new())
    );
    agent.fake.assert_each_tool_call_answered_once();

    let events = agent.events(&id).await;
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "ids without gaps"
    );
    for event in &events {
        assert!(
            event["timestamp"].as_str().unwrap().ends_with('Z'),
            "{event}"
        );
        assert!(["user", "agent", "environment"].contains(&event["source"].as_str().unwrap()));
    }
    assert_eq!(events[0]["action"], "message");
    assert_eq!(events[0]["source"], "user");
    let runs = observations(&events, "run");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["content"].as_str().unwrap().trim(), "hello");
    assert_eq!(runs[1]["content"].as_str().unwrap().trim(), "goodbye");
    assert_eq!(runs[1]["extras"]["exit_code"], 0);
    assert_eq!(runs[1]["extras"]["metadata"]["exit_code"], 0);
    let cause = runs[1]["cause"].as_i64().unwrap();
    let action = &events[cause as usize - 1];
    assert_eq!(action["action"], "run");
    assert_eq!(action["args"]["command"], "python3 /workspace/hello.py");
    assert_eq!(observations(&events, "edit").len(), 2);
    assert_eq!(observations(&events, "think").len(), 1);
    let first_action = events.iter().find(|e| e["action"] == "edit").unwrap();
    assert_eq!(first_action["args"]["thought"], "I will write the script.");
    assert!(
        first_action["llm_metrics"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let finish = events.iter().find(|e| e["action"] == "finish").unwrap();
    assert_eq!(
        finish["args"]["final_thought"],
        "The script prints goodbye."
    );
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e["observation"] == "agent_state_changed")
        .map(|e| e["extras"]["agent_state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["loading", "running", "finished"]);

    // The model saw each result: the second run's output came back as its tool result.
    let requests = agent.fake.requests();
    assert_eq!(requests.len(), 6);
    let last = &requests[5].messages;
    assert!(
        last.iter()
            .any(|m| m.role == "tool" && m.text.contains("goodbye"))
    );
    assert_eq!(last[0].role, "system");
    assert!(last[1].text.contains("Write hello.py"));

    // Per-conversation statistics.
    let stats = agent.t.db.conversation_stats(&id).await.unwrap();
    assert_eq!(stats.llm_calls, 6);
    assert_eq!(stats.prompt_tokens, 600);
    assert_eq!(stats.completion_tokens, 120);
    assert_eq!(
        agent.t.db.conversation(&id).await.unwrap().status,
        "finished"
    );

    // Live subscribers got the same events, in order.
    let mut seen = Vec::new();
    while let Ok(event) = live.try_recv() {
        if event.conversation_id == id {
            seen.push(event.id);
        }
    }
    let agent_written: Vec<i64> = ids.iter().copied().filter(|i| *i > 1).collect();
    assert_eq!(seen, agent_written);
    agent.service.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_openai_on_postgres() {
    create_run_edit_finish(Kind::Postgres, "openai/gpt-fake").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_anthropic_on_postgres() {
    create_run_edit_finish(Kind::Postgres, "anthropic/claude-fake").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_openai_on_sqlite() {
    create_run_edit_finish(Kind::Sqlite, "openai/gpt-fake").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_unknown_calls_are_errors_the_model_can_correct() {
    let script = vec![
        Turn::raw_call("execute_bash", "{\"command\": \"ls"),
        Turn::call("browse", json!({"url": "http://example.test"})),
        Turn::call("execute_bash", json!({"timeout": 5})),
        Turn::call(
            "str_replace_editor",
            json!({"command": "view", "path": "relative.txt"}),
        ),
        Turn::calls(vec![
            ("execute_bash", json!({"command": "echo fixed"})),
            ("finish", json!({"message": "ok"})),
        ]),
    ];
    let agent = start(
        Kind::Postgres,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "go").await;
    assert_eq!(agent.rest(&id).await.0, "finished");
    agent.fake.assert_each_tool_call_answered_once();
    let events = agent.events(&id).await;
    let errors: Vec<&str> = observations(&events, "error")
        .iter()
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors[0].contains("not valid JSON"), "{}", errors[0]);
    assert!(
        errors[1].contains("Tool `browse` is not available"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("Missing required argument \"command\""),
        "{}",
        errors[2]
    );
    assert!(errors[3].contains("not an absolute path"), "{}", errors[3]);
    // The model was shown each error as the result of its call.
    let requests = agent.fake.requests();
    assert!(
        requests[1]
            .messages
            .iter()
            .any(|m| m.role == "tool" && m.text.contains("not valid JSON"))
    );
    assert_eq!(
        observations(&events, "run")[0]["content"]
            .as_str()
            .unwrap()
            .trim(),
        "fixed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_retried_and_a_rejected_key_is_a_clear_error() {
    let script = vec![
        Turn::rate_limited(0),
        Turn::error(503, "overloaded"),
        finish("done"),
    ];
    let agent = start(
        Kind::Postgres,
        "anthropic/claude-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "go").await;
    assert_eq!(agent.rest(&id).await.0, "finished");
    let events = agent.events(&id).await;
    let finish = events.iter().find(|e| e["action"] == "finish").unwrap();
    assert_eq!(finish["llm_metrics"]["attempts"], 3);

    agent.fake.push(vec![Turn::error(401, "invalid x-api-key")]);
    agent.say(&id, "once more").await;
    let (state, reason) = agent.rest_after(&id, events.len() as i64).await;
    assert_eq!(state, "error");
    assert!(
        reason.contains("the LLM API key was rejected by"),
        "{reason}"
    );
    assert!(reason.contains("invalid x-api-key"), "{reason}");
    assert_eq!(
        agent.fake.requests().len(),
        4,
        "a rejected key is not retried"
    );
    agent.fake.assert_each_tool_call_answered_once();
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_rate_limiting_rests_in_rate_limited() {
    let script = (0..5).map(|_| Turn::rate_limited(0)).collect();
    let agent = start(
        Kind::Postgres,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "go").await;
    let (state, reason) = agent.rest(&id).await;
    assert_eq!(state, "rate_limited");
    assert!(reason.contains("rate-limiting"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn budget_and_step_limits_stop_the_run_and_a_message_extends_them() {
    // 100 prompt + 20 completion tokens at $10 / $50 per million: $0.002 per call.
    let prices = PriceTable::from_json(r#"{"gpt-fake": {"input": 10.0, "output": 50.0}}"#).unwrap();
    let settings = AgentSettings {
        agent_max_budget_usd: Some(0.005),
        ..AgentSettings::default()
    };
    let script = vec![
        bash("echo 1"),
        bash("echo 2"),
        bash("echo 3"),
        bash("echo 4"),
    ];
    let agent =
        start_with_prices(Kind::Postgres, "openai/gpt-fake", script, settings, prices).await;
    let id = agent.ask("web", "count").await;
    let (state, reason) = agent.rest(&id).await;
    assert_eq!(state, "error");
    assert!(reason.contains("budget of $0.01 is used up"), "{reason}");
    assert_eq!(agent.fake.requests().len(), 3);
    let stats = agent.t.db.conversation_stats(&id).await.unwrap();
    assert!((stats.cost_usd - 0.006).abs() < 1e-9, "{}", stats.cost_usd);

    // A user's own step limit; a new message allows as many again.
    let owner = agent.owner_of(&id).await;
    agent
        .t
        .db
        .set_user_limits(
            &owner,
            &UserLimits {
                max_iterations: Some(1),
                max_budget_usd: Some(1.0),
                confirmation_mode: false,
            },
        )
        .await
        .unwrap();
    let seen = agent.events(&id).await.len() as i64;
    agent.say(&id, "go on").await;
    let (state, reason) = agent.rest_after(&id, seen).await;
    assert_eq!(state, "error");
    assert!(reason.contains("limit of 1 steps"), "{reason}");
    assert_eq!(agent.fake.requests().len(), 4);

    agent.fake.push(vec![finish("counted")]);
    let seen = agent.events(&id).await.len() as i64;
    agent.say(&id, "finish up").await;
    assert_eq!(agent.rest_after(&id, seen).await.0, "finished");
    agent.fake.assert_each_tool_call_answered_once();
}

async fn stuck_with(script: Vec<Turn>, trigger: &str) -> String {
    let agent = start(
        Kind::Postgres,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask(trigger, "go").await;
    let (state, reason) = agent.rest(&id).await;
    assert_eq!(state, "error", "{reason}");
    agent.fake.assert_each_tool_call_answered_once();
    assert_eq!(
        agent.fake.remaining(),
        1,
        "the run stopped at the pattern, not at the script's end"
    );
    reason
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_repeating_the_same_action_and_result() {
    let script = (0..5).map(|_| bash("echo same")).collect();
    let reason = stuck_with(script, "web").await;
    assert!(
        reason.contains("repeated the same action 4 times"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_failing_the_same_way() {
    let script = (0..4).map(|_| bash("date +%N; cat /nonexistent")).collect();
    let reason = stuck_with(script, "web").await;
    assert!(reason.contains("failed 3 times"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_talking_without_acting_when_unattended() {
    let script = (0..4).map(|n| Turn::text(format!("I think {n}"))).collect();
    let reason = stuck_with(script, "github").await;
    assert!(reason.contains("3 messages in a row"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_ping_pong() {
    let script = (0..7)
        .map(|n| bash(if n % 2 == 0 { "echo a" } else { "echo b" }))
        .collect();
    let reason = stuck_with(script, "web").await;
    assert!(
        reason.contains("alternated between two actions"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interactive_agent_waits_for_the_user_and_continues() {
    let script = vec![Turn::text("Which file?")];
    let agent = start(
        Kind::Postgres,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("slack", "fix the file").await;
    assert_eq!(agent.rest(&id).await.0, "awaiting_user_input");
    agent
        .fake
        .push(vec![bash("echo README.md"), finish("fixed README.md")]);
    let seen = agent.events(&id).await.len() as i64;
    agent.say(&id, "README.md").await;
    assert_eq!(agent.rest_after(&id, seen).await.0, "finished");
    let last = agent.fake.requests().last().unwrap().messages.clone();
    let texts: Vec<(&str, &str)> = last
        .iter()
        .map(|m| (m.role.as_str(), m.text.as_str()))
        .collect();
    assert!(texts.contains(&("assistant", "Which file?")), "{texts:?}");
    assert!(texts.contains(&("user", "README.md")), "{texts:?}");
    agent.fake.assert_each_tool_call_answered_once();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_history_is_condensed_into_a_summary() {
    let settings = AgentSettings {
        agent_condenser_max_events: 12,
        agent_condenser_keep_first: 2,
        ..AgentSettings::default()
    };
    let mut script: Vec<Turn> = (0..12).map(|n| bash(&format!("echo step {n}"))).collect();
    script.push(finish("done"));
    let agent = start(Kind::Postgres, "openai/gpt-fake", script, settings).await;
    let id = agent.ask("web", "count to twelve").await;
    assert_eq!(agent.rest(&id).await.0, "finished");
    agent.fake.assert_each_tool_call_answered_once();
    assert!(agent.fake.summary_requests() >= 1);
    let events = agent.events(&id).await;
    let condensations: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "condensation")
        .collect();
    assert!(!condensations.is_empty());
    assert_eq!(condensations[0]["args"]["summary"], "SUMMARY 1");
    // The prompt after a condensation: the task, the summary, and only the recent steps.
    let requests = agent.fake.requests();
    let last = &requests.last().unwrap().messages;
    assert!(last[1].text.contains("count to twelve"));
    assert!(last.iter().any(|m| m.text.contains("SUMMARY")), "{last:?}");
    assert!(last.len() <= 14, "{} messages", last.len());
    // The head (the task and the first step) stays; the middle is forgotten.
    assert!(last.iter().any(|m| m.text.trim() == "step 0"), "{last:#?}");
    assert!(!last.iter().any(|m| m.text.trim() == "step 3"), "{last:#?}");
    // The summary's cost counts.
    let stats = agent.t.db.conversation_stats(&id).await.unwrap();
    assert_eq!(stats.llm_calls as usize, 13 + agent.fake.summary_requests());
}

/// A service whose model takes prompts of at most `max_input_tokens`, and whose fake refuses
/// request bodies longer than `window_bytes` as the provider words it.
async fn start_with_window(
    kind: Kind,
    model: &str,
    script: Vec<Turn>,
    max_input_tokens: Option<u64>,
    window_bytes: Option<usize>,
) -> Agent {
    let t = TestDb::new(kind).await;
    let service = Service::builder(&t.db)
        .agent(script)
        .model(model)
        .llm(move |llm| {
            llm.with_retry(fast_retries())
                .with_max_input_tokens(max_input_tokens)
        })
        .start()
        .await;
    if let Some(bytes) = window_bytes {
        service.llm().set_context_window(bytes);
    }
    Agent {
        fake: service.llm().clone(),
        bus: service.bus.clone(),
        owner: service.owner().to_string(),
        t,
        service,
    }
}

/// Outputs of about 3.4 KB each fill the model's window within a few steps: the history is
/// condensed before a prompt reaches it, in both wire formats, and the provider never has to
/// refuse one.
#[tokio::test(flavor = "multi_thread")]
async fn large_observations_keep_the_prompt_under_the_context_window() {
    for model in ["openai/gpt-fake", "anthropic/claude-fake"] {
        let mut script: Vec<Turn> = (0..16)
            .map(|n| bash(&format!("seq {n} {}", n + 900)))
            .collect();
        script.push(finish("done"));
        // The prompt without history is about 20 KB; the fake refuses past 64 KB, and the
        // service is told the model takes 20,000 tokens (about 60 KB by its estimate).
        let agent =
            start_with_window(Kind::Postgres, model, script, Some(20_000), Some(64_000)).await;
        let id = agent.ask("web", "print some long sequences").await;
        assert_eq!(agent.rest(&id).await.0, "finished", "{model}");
        assert_eq!(
            agent.fake.overflows(),
            0,
            "{model}: a prompt passed the window"
        );
        agent.fake.assert_each_tool_call_answered_once();
        let events = agent.events(&id).await;
        assert!(
            events.iter().any(|e| e["action"] == "condensation"),
            "{model}: no condensation"
        );
        let sizes: Vec<usize> = agent
            .fake
            .requests()
            .iter()
            .filter(|r| !r.tools.is_empty())
            .map(|r| r.body.to_string().len())
            .collect();
        assert!(
            sizes.iter().all(|size| *size <= 64_000),
            "{model}: {sizes:?}"
        );
        assert!(
            sizes.iter().any(|size| *size > 40_000),
            "{model}: the window was never near: {sizes:?}"
        );
    }
}

/// The provider says the prompt is too long (OpenAI's `context_length_exceeded`, Anthropic's
/// "prompt is too long"): the history is condensed and the step asked again, and the run goes
/// on to its end instead of stopping in error.
#[tokio::test(flavor = "multi_thread")]
async fn a_context_overflow_from_the_provider_is_recovered_from() {
    use support::fake_llm::{Format, context_overflow};
    for (model, format) in [
        ("openai/gpt-fake", Format::OpenAi),
        ("anthropic/claude-fake", Format::Anthropic),
    ] {
        let mut script: Vec<Turn> = (0..8).map(|n| bash(&format!("echo step {n}"))).collect();
        script.push(context_overflow(format, 130_000, 128_000));
        script.push(finish("done after condensing"));
        let agent = start_with_window(Kind::Sqlite, model, script, None, None).await;
        let id = agent.ask("web", "count to eight").await;
        let (status, _) = agent.rest(&id).await;
        assert_eq!(status, "finished", "{model}");
        assert_eq!(agent.fake.summary_requests(), 1, "{model}");
        agent.fake.assert_each_tool_call_answered_once();
        let events = agent.events(&id).await;
        assert!(
            events.iter().any(|e| e["action"] == "condensation"),
            "{model}: no condensation"
        );
        // The request after the refusal is shorter, and carries the summary.
        let requests: Vec<_> = agent
            .fake
            .requests()
            .into_iter()
            .filter(|r| !r.tools.is_empty())
            .collect();
        let refused = requests.len() - 2;
        let (before, after) = (&requests[refused], &requests[refused + 1]);
        assert!(
            after.messages.len() < before.messages.len(),
            "{model}: {} then {} messages",
            before.messages.len(),
            after.messages.len()
        );
        assert!(
            after.messages.iter().any(|m| m.text.contains("SUMMARY")),
            "{model}"
        );
    }
}

/// A refusal that condensing cannot help (nothing left to forget) ends the run with the
/// provider's words, after a bounded number of tries.
#[tokio::test(flavor = "multi_thread")]
async fn a_context_overflow_that_condensing_cannot_help_ends_the_run() {
    use support::fake_llm::{Format, context_overflow};
    let script = vec![
        context_overflow(Format::OpenAi, 130_000, 128_000),
        context_overflow(Format::OpenAi, 130_000, 128_000),
        context_overflow(Format::OpenAi, 130_000, 128_000),
        context_overflow(Format::OpenAi, 130_000, 128_000),
        context_overflow(Format::OpenAi, 130_000, 128_000),
    ];
    let agent = start_with_window(Kind::Sqlite, "openai/gpt-fake", script, None, None).await;
    let id = agent
        .ask("web", "a first request too long for the model")
        .await;
    let (status, reason) = agent.rest(&id).await;
    assert_eq!(status, "error");
    assert!(reason.contains("context window"), "{reason}");
    assert!(
        agent.fake.remaining() >= 3,
        "asked {} times",
        5 - agent.fake.remaining()
    );
}

/// `fetch` reads a page served inside the sandbox (its own loopback: the page never comes
/// through the worker) as Markdown, in parts, and says plainly what it cannot read.
#[tokio::test(flavor = "multi_thread")]
async fn fetch_reads_a_page_from_the_sandbox_as_markdown_in_parts() {
    let page = "<!DOCTYPE html><html><head><title>Notes</title><style>h1 { color: red }</style></head><body>\
        <h1>Release notes</h1><p>Version <strong>2.1</strong> fixes the <a href=\"/bugs/7\">login bug</a>.</p>\
        <script>var secret = 'kept-out-of-the-prompt';</script>\
        <ul><li>Faster start</li><li>Smaller image</li></ul></body></html>";
    let url = "http://127.0.0.1:8765/notes.html";
    let script = vec![
        create("/workspace/site/notes.html", page),
        bash(
            "cd /workspace/site && (python3 -m http.server 8765 --bind 127.0.0.1 >/tmp/http.log 2>&1 &) \
             && for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8765/ && break; sleep 0.1; done",
        ),
        Turn::call("fetch", json!({"url": url, "max_length": 40})),
        Turn::call("fetch", json!({"url": url, "start_index": 40})),
        Turn::call("fetch", json!({"url": "file:///etc/passwd"})),
        Turn::call(
            "fetch",
            json!({"url": "http://127.0.0.1:9/nothing-listens-here"}),
        ),
        finish("read the notes"),
    ];
    let agent = start(
        Kind::Sqlite,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "read the release notes").await;
    assert_eq!(agent.rest(&id).await.0, "finished");
    agent.fake.assert_each_tool_call_answered_once();
    let events = agent.events(&id).await;
    let fetches: Vec<&Value> = events.iter().filter(|e| e["action"] == "browse").collect();
    assert_eq!(
        fetches.len(),
        3,
        "the file:// call is refused before it runs"
    );
    let pages = observations(&events, "browse");
    assert_eq!(pages.len(), 2, "{pages:#?}");
    let first = pages[0]["content"].as_str().unwrap();
    assert!(first.starts_with("# Release notes"), "{first}");
    assert!(first.contains("start_index=40"), "{first}");
    let second = pages[1]["content"].as_str().unwrap();
    assert!(second.contains("[login bug](/bugs/7)"), "{second}");
    assert!(
        second
            .lines()
            .any(|line| line.starts_with('*') && line.ends_with("Smaller image")),
        "a list item: {second}"
    );
    assert!(!second.contains("start_index="), "{second}");
    for text in [first, second] {
        assert!(
            !text.contains("kept-out-of-the-prompt") && !text.contains("color: red"),
            "{text}"
        );
    }
    assert_eq!(pages[0]["extras"]["url"], url);
    let errors: Vec<&str> = observations(&events, "error")
        .iter()
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("not `file`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("could not be read") && e.contains("curl exit code 7")),
        "{errors:?}"
    );
}

/// Confirmation mode never holds a conversation a provider started: nobody is there to
/// confirm, so its risky command runs.
#[tokio::test(flavor = "multi_thread")]
async fn conversations_started_by_a_provider_never_wait_for_confirmation() {
    let script = vec![
        Turn::call(
            "execute_bash",
            json!({"command": "echo ran-without-asking", "security_risk": "HIGH"}),
        ),
        finish("done"),
    ];
    let agent = start(
        Kind::Sqlite,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let mut tx = agent.t.db.begin().await.unwrap();
    let user = tx.create_user("github:mona", None, false).await.unwrap();
    let conversation = tx
        .create_conversation(&NewConversation {
            owner_id: &user.id,
            title: "from GitHub",
            trigger_kind: "github",
            ..Default::default()
        })
        .await
        .unwrap();
    tx.set_confirmation_mode(&conversation.id, Some(true))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    agent.say(&conversation.id, "run it").await;
    assert_eq!(agent.rest(&conversation.id).await.0, "finished");
    let events = agent.events(&conversation.id).await;
    let output = observations(&events, "run");
    assert!(
        output[0]["content"]
            .as_str()
            .unwrap()
            .contains("ran-without-asking")
    );
    assert!(
        !events
            .iter()
            .any(|e| e["extras"]["agent_state"] == "awaiting_user_confirmation")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_request_ends_the_run() {
    let script = vec![bash("sleep 3"), bash("echo never")];
    let agent = start(
        Kind::Postgres,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "go").await;
    agent.first_command_started(&id).await;
    let stop = events::change_state_request(events::AgentState::Stopped);
    agent
        .t
        .db
        .append_event(
            &id,
            &NewEvent {
                source: stop.source,
                kind: &stop.kind,
                payload: &stop.doc,
            },
        )
        .await
        .unwrap();
    let (state, _) = agent.rest(&id).await;
    assert_eq!(state, "stopped");
    assert_eq!(agent.fake.requests().len(), 1);
    agent.fake.assert_each_tool_call_answered_once();
    let _ = &agent.owner;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_request_works_in_a_clone_of_its_repository() {
    let fakes = support::fakes::FakeProviders::start().await;
    let server = support::git_server::GitServer::start("ghs_installation_4242").await;
    server.create_repo("hello-world");
    fakes.set_github_clone_url("octo-org/hello-world", &server.url("hello-world"));
    let providers = Providers {
        github: Some(
            GithubApp::new(
                &fakes.github_api_url(),
                support::fakes::GITHUB_APP_ID,
                support::fakes::GITHUB_APP_PRIVATE_KEY,
            )
            .unwrap(),
        ),
        ..Providers::default()
    };
    let script = vec![
        bash("cat /workspace/repo/README && git -C /workspace/repo log --format=%s"),
        finish("read it"),
    ];
    let agent = start_with(
        Kind::Postgres,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
        PriceTable::default(),
        providers,
    )
    .await;
    let context = json!({
        "provider": "github",
        "place": {"kind": "github_issue", "installation_id": 4242, "repository": "octo-org/hello-world", "number": 1},
        "title": "Fix the README", "body": "It says hello.", "url": "https://github.com/octo-org/hello-world/issues/1",
        "history": [], "diff": null,
    });
    let conversation = agent
        .github_conversation("octo-org/hello-world", &context)
        .await;
    agent
        .say(&conversation.id, "@openhands fix the README")
        .await;
    assert_eq!(agent.rest(&conversation.id).await.0, "finished");
    let events = agent.events(&conversation.id).await;
    let output = observations(&events, "run")[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        output.contains("hello") && output.contains("initial commit"),
        "{output}"
    );
    // The prompt told the model where it was asked and where the repository is.
    let first = &agent.fake.requests()[0].messages;
    assert!(
        first[0]
            .text
            .contains("octo-org/hello-world is checked out in /workspace/repo")
    );
    assert!(
        first[1]
            .text
            .contains("issue \"Fix the README\" in octo-org/hello-world"),
        "{}",
        first[1].text
    );
    assert!(first[1].text.contains("It says hello."));
    // The token stayed on the worker: it is in no event.
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("ghs_installation_4242"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_repository_is_a_clear_error() {
    let fakes = support::fakes::FakeProviders::start().await;
    fakes.hide_github_repository("octo-org/hidden");
    let providers = Providers {
        github: Some(
            GithubApp::new(
                &fakes.github_api_url(),
                support::fakes::GITHUB_APP_ID,
                support::fakes::GITHUB_APP_PRIVATE_KEY,
            )
            .unwrap(),
        ),
        ..Providers::default()
    };
    let agent = start_with(
        Kind::Sqlite,
        "openai/gpt-fake",
        vec![],
        AgentSettings::default(),
        PriceTable::default(),
        providers,
    )
    .await;
    let context = json!({"place": {"kind": "github_issue", "installation_id": 4242, "repository": "octo-org/hidden", "number": 2}});
    let conversation = agent.github_conversation("octo-org/hidden", &context).await;
    agent.say(&conversation.id, "@openhands go").await;
    let (state, reason) = agent.rest(&conversation.id).await;
    assert_eq!(state, "error");
    assert!(
        reason.contains("The repository octo-org/hidden is not reachable"),
        "{reason}"
    );
    assert!(
        agent.fake.requests().is_empty(),
        "no LLM call without a workspace"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn input_to_a_running_command_and_a_task_list() {
    let plan = json!({"command": "plan", "task_list": [
        {"id": "1", "title": "greet", "status": "in_progress"},
        {"id": "2", "title": "leave", "status": "todo", "notes": "politely"}
    ]});
    let script = vec![
        Turn::call("task_tracker", plan),
        bash("read -p 'name? ' name; echo \"hello $name\""),
        Turn::call(
            "execute_bash",
            json!({"command": "world", "is_input": "true"}),
        ),
        Turn::call("task_tracker", json!({"command": "view"})),
        finish("greeted"),
    ];
    let agent = start(
        Kind::Postgres,
        "anthropic/claude-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "greet the world").await;
    assert_eq!(agent.rest(&id).await.0, "finished");
    agent.fake.assert_each_tool_call_answered_once();
    let events = agent.events(&id).await;
    let runs = observations(&events, "run");
    assert_eq!(
        runs[0]["extras"]["exit_code"], -1,
        "the prompt waits for input: {}",
        runs[0]
    );
    assert!(
        runs[1]["content"].as_str().unwrap().contains("hello world"),
        "{}",
        runs[1]
    );
    assert_eq!(runs[1]["extras"]["exit_code"], 0);
    let input = events
        .iter()
        .filter(|e| e["action"] == "run")
        .nth(1)
        .unwrap();
    assert_eq!(input["args"]["is_input"], true);
    let tasks = observations(&events, "task_tracking");
    let view = tasks[1]["content"].as_str().unwrap();
    assert!(
        view.contains("1. [~] greet") && view.contains("2. [ ] leave (politely)"),
        "{view}"
    );
    assert_eq!(tasks[1]["extras"]["task_list"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_and_resume() {
    let script = vec![bash("sleep 1"), bash("echo resumed"), finish("done")];
    let agent = start(
        Kind::Sqlite,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "go").await;
    agent.first_command_started(&id).await;
    let request = |state| {
        let draft = events::change_state_request(state);
        let db = agent.t.db.clone();
        let id = id.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            tx.append_event(
                &id,
                &NewEvent {
                    source: draft.source,
                    kind: &draft.kind,
                    payload: &draft.doc,
                },
            )
            .await
            .unwrap();
            queue::enqueue(
                &mut tx,
                &openhands::agent::RunConversation {
                    conversation_id: id.clone(),
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    };
    request(events::AgentState::Paused).await;
    assert_eq!(agent.rest(&id).await.0, "paused");
    assert_eq!(agent.fake.requests().len(), 1);
    let seen = agent.events(&id).await.len() as i64;
    request(events::AgentState::Running).await;
    assert_eq!(agent.rest_after(&id, seen).await.0, "finished");
    let events = agent.events(&id).await;
    let runs = observations(&events, "run");
    assert_eq!(runs.len(), 2, "{events:#?}");
    assert_eq!(runs[1]["content"].as_str().unwrap().trim(), "resumed");
    agent.fake.assert_each_tool_call_answered_once();
}

/// The model provider timing out, then failing with 500, then answering: each failed request
/// is retried (LLM_TIMEOUT bounds a request), the run finishes, and the command that ran before
/// the outage ran once.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_timing_out_then_failing_is_retried_without_running_a_tool_twice() {
    let script = vec![
        bash("echo ran-once"),
        finish("too late").after(Duration::from_secs(5)),
        Turn::error(500, "internal error"),
        finish("done after the outage"),
    ];
    let settings = AgentSettings {
        llm_timeout: Duration::from_secs(1),
        ..AgentSettings::default()
    };
    let agent = start(Kind::Postgres, "openai/gpt-fake", script, settings).await;
    let id = agent.ask("web", "go").await;
    let (state, _) = agent.rest(&id).await;
    assert_eq!(state, "finished");
    let events = agent.events(&id).await;
    let runs = events
        .iter()
        .filter(|e| e["action"] == "run" && e["args"]["command"] == "echo ran-once")
        .count();
    assert_eq!(runs, 1, "the command ran once: {events:#?}");
    let finish = events.iter().find(|e| e["action"] == "finish").unwrap();
    assert_eq!(finish["args"]["final_thought"], "done after the outage");
    assert_eq!(
        finish["llm_metrics"]["attempts"], 3,
        "timed out, failed, answered"
    );
    agent.fake.assert_each_tool_call_answered_once();
}

/// A stop asked while the model is still answering takes effect before its command runs: the
/// command is answered as not run, the model is not asked again, and the run ends stopped.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_while_the_model_answers_leaves_its_command_unrun() {
    let script = vec![
        bash("touch /workspace/should-not-exist && echo ran").after(Duration::from_secs(3)),
        finish("never"),
    ];
    let agent = start(
        Kind::Sqlite,
        "openai/gpt-fake",
        script,
        AgentSettings::default(),
    )
    .await;
    let id = agent.ask("web", "go").await;
    wait_for("the model to be asked", Duration::from_secs(60), || async {
        (!agent.fake.requests().is_empty()).then_some(())
    })
    .await;
    let stop = events::change_state_request(events::AgentState::Stopped);
    agent
        .t
        .db
        .append_event(
            &id,
            &NewEvent {
                source: stop.source,
                kind: &stop.kind,
                payload: &stop.doc,
            },
        )
        .await
        .unwrap();
    let (state, reason) = agent.rest(&id).await;
    assert_eq!(state, "stopped", "{reason}");
    let events = agent.events(&id).await;
    assert!(observations(&events, "run").is_empty(), "{events:#?}");
    let action = events.iter().find(|e| e["action"] == "run").unwrap();
    let answer = events
        .iter()
        .find(|e| e["cause"] == action["id"])
        .unwrap_or_else(|| panic!("the command is answered: {events:#?}"));
    assert_eq!(answer["observation"], "error", "{answer}");
    assert!(
        answer["content"].as_str().unwrap().contains("Not run"),
        "{answer}"
    );
    assert_eq!(
        agent.fake.requests().len(),
        1,
        "the model is not asked again"
    );
}
