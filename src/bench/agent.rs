//! `openhands bench agent`: the agent loop's overhead per step — the time between two model
//! requests while a zero-latency scripted model (`model.rs`) asks for `true` — on DATABASE_URL
//! and a Docker sandbox. Prints a table of the step's p50 and p99 in ms beside `true` run in the
//! same session, and their difference.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{percentile, record};
use crate::config::Config;
use crate::queue;
use crate::storage::Db;

/// Agent-loop overhead per step: a zero-latency scripted model on loopback asks for `true`
/// (numbered, so that no stuck pattern fires) `steps` times, then finishes; events go to
/// DATABASE_URL and commands to a Docker sandbox (SANDBOX_IMAGE). A step is the time between
/// two consecutive model requests: prompt building, the LLM round trip, recording the action,
/// running the command, recording the observation, and the checks. It runs twice: as it is, and
/// with an MCP server of five tools configured that the model never calls (its tools are
/// offered in every prompt). The `true` round trip in the same sandbox is measured in the same
/// run as the reference.
pub async fn agent_step_overhead(db: &Db, config: &Config, steps: u32) -> anyhow::Result<()> {
    use crate::sandbox::docker::DockerBackend;
    use crate::sandbox::{CommandRequest, SandboxBackend};

    let steps = steps.clamp(10, 10_000);
    let sandbox_settings = crate::sandbox::SandboxSettings {
        sandbox_owner: Some(format!(
            "bench-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        )),
        sandbox_warm_pool: 0,
        ..config.sandbox.clone()
    };
    let backend = DockerBackend::connect(&sandbox_settings).await?;
    let mcp = super::mcp::serve().await?;
    let result = async {
        let (mut step_ms, conversation_id) =
            run_steps(db, config, &sandbox_settings, &backend, steps, None).await?;
        let mcp_config = serde_json::json!({"shttp_servers": [{"url": mcp.url}]}).to_string();
        let (mut idle_ms, _) = run_steps(
            db,
            config,
            &sandbox_settings,
            &backend,
            steps,
            Some(mcp_config),
        )
        .await?;
        // The reference: `true` in the same sandbox's session.
        let sandbox = backend.start(&conversation_id).await?;
        let request = CommandRequest::new("true");
        let mut true_ms = Vec::new();
        for _ in 0..steps.min(300) {
            let started = Instant::now();
            backend.execute(&sandbox.id, &request, None).await?;
            true_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let (step50, step99) = (
            percentile(&mut step_ms, 50.0),
            percentile(&mut step_ms, 99.0),
        );
        let (idle50, idle99) = (
            percentile(&mut idle_ms, 50.0),
            percentile(&mut idle_ms, 99.0),
        );
        let (true50, true99) = (
            percentile(&mut true_ms, 50.0),
            percentile(&mut true_ms, 99.0),
        );
        println!();
        println!("| figure | p50 ms | p99 ms | samples |");
        println!("|---|---|---|---|");
        println!(
            "| agent step (`true`, zero-latency model) | {step50:.2} | {step99:.2} | {} |",
            step_ms.len()
        );
        println!(
            "| agent step, an idle MCP server of {} tools configured | {idle50:.2} | {idle99:.2} | {} |",
            super::mcp::TOOLS.len(),
            idle_ms.len()
        );
        println!(
            "| reference: `true` in the same session | {true50:.2} | {true99:.2} | {} |",
            true_ms.len()
        );
        println!(
            "| loop overhead (step − command, p50) | {:.2} | — | — |",
            step50 - true50
        );
        record("agent.step.p50", step50)?;
        record("agent.step.p99", step99)?;
        record("agent.step_mcp_idle.p50", idle50)?;
        record("agent.step_mcp_idle.p99", idle99)?;
        record("agent.true.p50", true50)?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    drop(mcp);
    for sandbox in backend.list().await.unwrap_or_default() {
        let _ = backend.remove(&sandbox.id).await;
    }
    result
}

/// One conversation of `steps` steps through the real queue and run job, with `mcp_config` as
/// the service's MCP servers; the time of each step in ms, and the conversation's id.
async fn run_steps(
    db: &Db,
    config: &Config,
    sandbox_settings: &crate::sandbox::SandboxSettings,
    backend: &std::sync::Arc<crate::sandbox::docker::DockerBackend>,
    steps: u32,
    mcp_config: Option<String>,
) -> anyhow::Result<(Vec<f64>, String)> {
    use std::sync::Arc;

    use crate::agent::settings::AgentSettings;
    use crate::agent::{AgentRuntime, RunConversation};
    use crate::storage::{NewConversation, NewEvent};

    let super::model::ScriptedModel {
        url: model_url,
        arrivals,
        server,
    } = super::model::serve(steps).await?;
    // A context window as large as Claude's: each step estimates its prompt against it, as a
    // run on a known model does; 300 short steps never come near it.
    let llm = crate::agent::llm::LlmClient::new("openai/bench", None, Some(&model_url))?
        .with_max_input_tokens(Some(200_000));
    let settings = AgentSettings {
        agent_max_iterations: steps + 10,
        // Condensation would add summary calls; this measures the plain step.
        agent_condenser_max_events: usize::MAX / 2,
        mcp_config,
        ..AgentSettings::default()
    };
    let with_mcp = settings.mcp_config.is_some();
    let stop = CancellationToken::new();
    let runtime = AgentRuntime::new(settings, Some(llm), sandbox_settings.clone(), stop.clone())?
        .with_sandboxes(backend.clone());
    let ctx = queue::JobContext::new(db.clone());
    let workers = tokio::spawn(crate::app::run_workers(
        ctx,
        Some(Arc::new(runtime)),
        config.workers.worker_settings(),
        stop.clone().cancelled_owned(),
    ));

    let result = async {
        let mut tx = db.begin().await?;
        let login = format!("bench-{}", ulid::Ulid::new());
        let user = tx.create_user(&login, None, false).await?;
        let conversation = tx
            .create_conversation(&NewConversation {
                owner_id: &user.id,
                title: "bench",
                trigger_kind: "web",
                ..Default::default()
            })
            .await?;
        let message = crate::agent::events::user_message("run true", false, serde_json::json!({}));
        tx.append_event(
            &conversation.id,
            &NewEvent {
                source: message.source,
                kind: &message.kind,
                payload: &message.doc,
            },
        )
        .await?;
        queue::enqueue(
            &mut tx,
            &RunConversation {
                conversation_id: conversation.id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        println!("running {steps} agent steps on {:?} …", db.kind());
        let started = Instant::now();
        loop {
            let status = db.conversation(&conversation.id).await?.status;
            if ["finished", "error", "stopped"].contains(&status.as_str()) {
                anyhow::ensure!(status == "finished", "the run ended in {status}");
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the run did not finish within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let times: Vec<Instant> = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let step_ms: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
            .collect();
        if with_mcp {
            // The MCP server's tools were offered: no note says it was left out.
            let events = db.events_after(&conversation.id, 0, 100_000).await?;
            let left_out = events
                .iter()
                .any(|e| e.payload.contains("MCP tools are not available"));
            anyhow::ensure!(!left_out, "the benchmark's MCP server was not connected");
        }
        Ok::<_, anyhow::Error>((step_ms, conversation.id.clone()))
    }
    .await;
    stop.cancel();
    let _ = workers.await;
    server.abort();
    result
}
