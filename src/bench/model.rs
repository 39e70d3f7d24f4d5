//! The model server of the agent benchmark: an OpenAI-style `/chat/completions` on a loopback
//! port that answers at once, asking for `true` (numbered, so that no stuck pattern fires)
//! `steps` times and then to finish. It records when each request arrives; it prints nothing.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A running scripted model.
pub(super) struct ScriptedModel {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub(super) url: String,
    /// When each request arrived, in order.
    pub(super) arrivals: Arc<Mutex<Vec<Instant>>>,
    /// The server task; aborting it stops the server.
    pub(super) server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the model on a free loopback port.
pub(super) async fn serve(steps: u32) -> anyhow::Result<ScriptedModel> {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let model = {
        let arrivals = arrivals.clone();
        axum::Router::new().route(
            "/chat/completions",
            axum::routing::post(move || {
                let arrivals = arrivals.clone();
                async move {
                    let n = {
                        let mut seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                        seen.push(Instant::now());
                        seen.len() as u32
                    };
                    let (name, arguments) = if n <= steps {
                        (
                            "execute_bash",
                            serde_json::json!({"command": format!("true #{n}")}),
                        )
                    } else {
                        ("finish", serde_json::json!({"message": "done"}))
                    };
                    axum::Json(serde_json::json!({
                        "id": format!("bench-{n}"),
                        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                            "role": "assistant", "content": "",
                            "tool_calls": [{"id": format!("call_{n}"), "type": "function",
                                "function": {"name": name, "arguments": arguments.to_string()}}]
                        }}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 10}
                    }))
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let model_url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, model).await });
    Ok(ScriptedModel {
        url: model_url,
        arrivals,
        server,
    })
}
